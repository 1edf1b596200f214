/* SPDX-License-Identifier: MIT
 *
 * Requirements and matching (see match.h).
 */
#include "match.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hf_proto.h"
#include "scheduler.h"

void match_req_free(struct match_req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_gfx; i++)
		free(r->gfx[i]);
	free(r->gfx);
	for (size_t i = 0; i < r->n_labels; i++) {
		free(r->label_keys[i]);
		free(r->label_values[i]);
	}
	free(r->label_keys);
	free(r->label_values);
	for (size_t i = 0; i < r->n_runtimes; i++) {
		free(r->runtimes[i].name);
		free(r->runtimes[i].op);
		free(r->runtimes[i].version);
	}
	free(r->runtimes);
	free(r);
}

static struct match_req *req_new(void)
{
	struct match_req *r = calloc(1, sizeof(*r));
	if (r) {
		r->cc_major = r->cc_minor = -1;
		r->devices = 1;
	}
	return r;
}

static int parse_cc(const char *s, int *major, int *minor)
{
	char *end;
	long a, b = 0;
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	a = strtol(s, &end, 10);
	if (*end == '.') {
		if (!isdigit((unsigned char)end[1]))
			return -EINVAL;
		b = strtol(end + 1, &end, 10);
	}
	if (*end || a > 99 || b > 99)
		return -EINVAL;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

/* "torch", "transformers>=5.0", "torch==2.11.0" */
static int parse_runtime(const char *spec, struct match_runtime *rt)
{
	static const char *const ops[] = { ">=", "<=", "==", ">", "<" };
	const char *p = spec;
	size_t len;

	while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
		p++;
	len = (size_t)(p - spec);
	if (len == 0)
		return -EINVAL;
	rt->name = strndup(spec, len);
	rt->op = strdup("");
	rt->version = strdup("");
	if (*p) {
		size_t i;
		for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (strncmp(p, ops[i], strlen(ops[i])) == 0)
				break;
		if (i == sizeof(ops) / sizeof(ops[0]))
			return -EINVAL;
		const char *v = p + strlen(ops[i]);
		if (!isdigit((unsigned char)*v))
			return -EINVAL;
		for (const char *c = v; *c; c++)
			if (!isalnum((unsigned char)*c) && *c != '.' && *c != '+')
				return -EINVAL;
		free(rt->op);
		free(rt->version);
		rt->op = strdup(ops[i]);
		rt->version = strdup(v);
	}
	return (rt->name && rt->op && rt->version) ? 0 : -ENOMEM;
}

int match_req_from_submit(const Hf__SubmitRequest *req, struct match_req **ret, char *err,
			  size_t errlen)
{
	struct match_req *r = req_new();
	int rc = -EINVAL;

	if (!r)
		return -ENOMEM;
	r->min_memory_bytes = req->min_memory_bytes;
	if (req->min_compute_capability[0] &&
	    parse_cc(req->min_compute_capability, &r->cc_major, &r->cc_minor) < 0) {
		snprintf(err, errlen, "invalid compute capability \"%s\" (expected e.g. 8.0)",
			 req->min_compute_capability);
		goto fail;
	}
	if (req->devices_per_task > MATCH_MAX_DEVICES) {
		snprintf(err, errlen, "%u devices per task is more than %d", req->devices_per_task,
			 MATCH_MAX_DEVICES);
		goto fail;
	}
	r->devices = req->devices_per_task ? req->devices_per_task : 1;
	r->gfx = calloc(req->n_gfx_targets + 1, sizeof(char *));
	r->label_keys = calloc(req->n_labels + 1, sizeof(char *));
	r->label_values = calloc(req->n_labels + 1, sizeof(char *));
	r->runtimes = calloc(req->n_runtimes + 1, sizeof(*r->runtimes));
	if (!r->gfx || !r->label_keys || !r->label_values || !r->runtimes) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < req->n_gfx_targets; i++) {
		const char *g = req->gfx_targets[i];
		if (strncmp(g, "gfx", 3) != 0 || !g[3]) {
			snprintf(err, errlen, "invalid gfx target \"%s\" (expected e.g. gfx942)", g);
			goto fail;
		}
		r->gfx[r->n_gfx++] = strdup(g);
	}
	for (size_t i = 0; i < req->n_labels; i++) {
		if (!req->labels[i]->key[0]) {
			snprintf(err, errlen, "a required label has an empty name");
			goto fail;
		}
		r->label_keys[r->n_labels] = strdup(req->labels[i]->key);
		r->label_values[r->n_labels] = strdup(req->labels[i]->value);
		r->n_labels++;
	}
	for (size_t i = 0; i < req->n_runtimes; i++) {
		int e = parse_runtime(req->runtimes[i], &r->runtimes[r->n_runtimes]);
		r->n_runtimes++;
		if (e < 0) {
			snprintf(err, errlen,
				 "invalid runtime requirement \"%s\" (expected e.g. torch or transformers>=5.0)",
				 req->runtimes[i]);
			goto fail;
		}
	}
	*ret = r;
	return 0;
fail:
	match_req_free(r);
	return rc;
}

bool match_req_trivial(const struct match_req *r)
{
	return !r || (r->min_memory_bytes == 0 && r->cc_major < 0 && r->n_gfx == 0 &&
		      r->n_labels == 0 && r->n_runtimes == 0 && r->devices <= 1);
}

char *match_req_to_json(const struct match_req *r)
{
	json_t *o = json_object(), *a;
	char *out;

	json_object_set_new(o, "min_memory_bytes", json_integer((json_int_t)r->min_memory_bytes));
	if (r->cc_major >= 0) {
		char cc[16];
		snprintf(cc, sizeof(cc), "%d.%d", r->cc_major, r->cc_minor);
		json_object_set_new(o, "min_compute_capability", json_string(cc));
	}
	a = json_array();
	for (size_t i = 0; i < r->n_gfx; i++)
		json_array_append_new(a, json_string(r->gfx[i]));
	json_object_set_new(o, "gfx_targets", a);
	a = json_object();
	for (size_t i = 0; i < r->n_labels; i++)
		json_object_set_new(a, r->label_keys[i], json_string(r->label_values[i]));
	json_object_set_new(o, "labels", a);
	a = json_array();
	for (size_t i = 0; i < r->n_runtimes; i++) {
		char spec[256];
		snprintf(spec, sizeof(spec), "%s%s%s", r->runtimes[i].name, r->runtimes[i].op,
			 r->runtimes[i].version);
		json_array_append_new(a, json_string(spec));
	}
	json_object_set_new(o, "runtimes", a);
	json_object_set_new(o, "devices", json_integer(r->devices));
	out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return out;
}

int match_req_from_json(const char *text, struct match_req **ret)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	Hf__KeyValue *kv = NULL, **kvp = NULL;
	const char **gfx = NULL, **rts = NULL;
	json_t *o, *v;
	char err[256];
	int rc = -EINVAL;

	o = json_loads(text, 0, NULL);
	if (!o || !json_is_object(o))
		goto out;
	req.min_memory_bytes = (uint64_t)json_integer_value(json_object_get(o, "min_memory_bytes"));
	v = json_object_get(o, "min_compute_capability");
	req.min_compute_capability = (char *)(json_is_string(v) ? json_string_value(v) : "");
	req.devices_per_task = (uint32_t)json_integer_value(json_object_get(o, "devices"));
	v = json_object_get(o, "gfx_targets");
	gfx = calloc(json_array_size(v) + 1, sizeof(char *));
	for (size_t i = 0; gfx && i < json_array_size(v); i++)
		gfx[req.n_gfx_targets++] = json_string_value(json_array_get(v, i));
	req.gfx_targets = (char **)gfx;
	v = json_object_get(o, "runtimes");
	rts = calloc(json_array_size(v) + 1, sizeof(char *));
	for (size_t i = 0; rts && i < json_array_size(v); i++)
		rts[req.n_runtimes++] = json_string_value(json_array_get(v, i));
	req.runtimes = (char **)rts;
	v = json_object_get(o, "labels");
	kv = calloc(json_object_size(v) + 1, sizeof(*kv));
	kvp = calloc(json_object_size(v) + 1, sizeof(*kvp));
	if (!gfx || !rts || !kv || !kvp) {
		rc = -ENOMEM;
		goto out;
	}
	const char *key;
	json_t *val;
	json_object_foreach(v, key, val) {
		hf__key_value__init(&kv[req.n_labels]);
		kv[req.n_labels].key = (char *)key;
		kv[req.n_labels].value = (char *)(json_is_string(val) ? json_string_value(val) : "");
		kvp[req.n_labels] = &kv[req.n_labels];
		req.n_labels++;
	}
	req.labels = kvp;
	for (size_t i = 0; i < req.n_gfx_targets; i++)
		if (!gfx[i])
			goto out;
	for (size_t i = 0; i < req.n_runtimes; i++)
		if (!rts[i])
			goto out;
	rc = match_req_from_submit(&req, ret, err, sizeof(err));
out:
	free(kv);
	free(kvp);
	free(gfx);
	free(rts);
	json_decref(o);
	return rc;
}

int match_version_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		if (!isdigit((unsigned char)*a) && !isdigit((unsigned char)*b))
			return 0;
		long x = isdigit((unsigned char)*a) ? strtol(a, (char **)&a, 10) : 0;
		long y = isdigit((unsigned char)*b) ? strtol(b, (char **)&b, 10) : 0;
		if (x != y)
			return x < y ? -1 : 1;
		if (*a == '.')
			a++;
		else
			while (*a)
				a++;
		if (*b == '.')
			b++;
		else
			while (*b)
				b++;
	}
	return 0;
}

static const char *attr(const Hf__Device *d, const char *key)
{
	for (size_t i = 0; i < d->n_attrs; i++)
		if (strcmp(d->attrs[i]->key, key) == 0)
			return d->attrs[i]->value;
	return NULL;
}

static const char *device_cc(const Hf__Device *d)
{
	return attr(d, "compute_capability");
}

static const char *device_gfx(const Hf__Device *d)
{
	const char *g = attr(d, "gfx_target");
	if (g)
		return g;
	return strncmp(d->arch, "gfx", 3) == 0 ? d->arch : NULL;
}

/* Appends one unmet requirement to u (formatted only while there is room:
 * the scheduler's hot path asks for none). */
static void unmet_add(struct match_unmet *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void unmet_add(struct match_unmet *u, const char *fmt, ...)
{
	if (u->n < MATCH_MAX_UNMET && u->n < u->max) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(u->why[u->n], sizeof(u->why[u->n]), fmt, ap);
		va_end(ap);
	}
	u->n++;
}

static double gib(uint64_t bytes)
{
	return (double)bytes / (1 << 30);
}

size_t match_device_unmet(const struct match_req *r, const Hf__Register *reg, const Hf__Device *dev,
			  struct match_unmet *u)
{
	u->n = 0;
	if (!r)
		return 0;
	if (r->min_memory_bytes && dev->memory_bytes == 0)
		unmet_add(u, "memory size not reported, %.1f GiB required", gib(r->min_memory_bytes));
	else if (r->min_memory_bytes && dev->memory_bytes < r->min_memory_bytes)
		unmet_add(u, "memory %.1f GiB < %.1f GiB required", gib(dev->memory_bytes),
			  gib(r->min_memory_bytes));
	if (r->cc_major >= 0) {
		const char *cc = device_cc(dev);
		int major, minor;
		if (!cc || parse_cc(cc, &major, &minor) < 0)
			unmet_add(u, "no compute capability reported, %d.%d required", r->cc_major, r->cc_minor);
		else if (major < r->cc_major || (major == r->cc_major && minor < r->cc_minor))
			unmet_add(u, "compute capability %s < %d.%d required", cc, r->cc_major, r->cc_minor);
	}
	if (r->n_gfx) {
		const char *g = device_gfx(dev);
		bool ok = false;
		for (size_t i = 0; g && i < r->n_gfx; i++)
			ok |= strcmp(g, r->gfx[i]) == 0;
		if (!ok) {
			char list[128] = "";
			size_t len = 0;
			for (size_t i = 0; i < r->n_gfx && len < sizeof(list); i++) {
				int k = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", r->gfx[i]);
				len += k > 0 ? (size_t)k : 0;
			}
			unmet_add(u, "gfx target %s, not one of %s", g ? g : "unknown", list);
		}
	}
	for (size_t i = 0; i < r->n_labels; i++) {
		bool ok = false;
		for (size_t j = 0; j < reg->n_labels; j++)
			ok |= strcmp(reg->labels[j]->key, r->label_keys[i]) == 0 &&
			      (!r->label_values[i][0] || strcmp(reg->labels[j]->value, r->label_values[i]) == 0);
		if (!ok)
			unmet_add(u, "no label %s%s%s", r->label_keys[i], r->label_values[i][0] ? "=" : "",
				  r->label_values[i]);
	}
	for (size_t i = 0; i < r->n_runtimes; i++) {
		const struct match_runtime *need = &r->runtimes[i];
		const Hf__Runtime *have = NULL;
		for (size_t j = 0; j < reg->n_runtimes; j++)
			if (strcmp(reg->runtimes[j]->name, need->name) == 0)
				have = reg->runtimes[j];
		if (!have || !have->available) {
			unmet_add(u, "no %s%s%s", need->name, need->op, need->version);
			continue;
		}
		if (need->op[0]) {
			int c = match_version_cmp(have->version, need->version);
			bool ok = (!strcmp(need->op, ">=") && c >= 0) || (!strcmp(need->op, ">") && c > 0) ||
				  (!strcmp(need->op, "==") && c == 0) || (!strcmp(need->op, "<=") && c <= 0) ||
				  (!strcmp(need->op, "<") && c < 0);
			if (!ok)
				unmet_add(u, "%s %s, %s%s required", need->name, have->version, need->op,
					  need->version);
		}
	}
	return u->n;
}

bool match_device_fits(const struct match_req *r, const Hf__Register *reg, const Hf__Device *dev,
		       char *why, size_t whylen)
{
	struct match_unmet u = { .max = why && whylen ? MATCH_MAX_UNMET : 0 };

	if (match_device_unmet(r, reg, dev, &u) == 0)
		return true;
	match_unmet_join(&u, why, whylen);
	return false;
}

void match_unmet_join(const struct match_unmet *u, char *out, size_t outlen)
{
	size_t len = 0, shown = u->n < u->max ? u->n : u->max;

	if (!out || !outlen)
		return;
	out[0] = '\0';
	if (shown > MATCH_MAX_UNMET)
		shown = MATCH_MAX_UNMET;
	for (size_t i = 0; i < shown && len < outlen; i++) {
		int k = snprintf(out + len, outlen - len, "%s%s", i ? "; " : "", u->why[i]);
		len += k > 0 ? (size_t)k : 0;
	}
	if (u->n > shown && len < outlen)
		snprintf(out + len, outlen - len, "%sand %zu more", shown ? "; " : "", u->n - shown);
}

static bool device_is_mig(const Hf__Device *d)
{
	const char *m = attr(d, "mig");
	return m && strcmp(m, "enabled") == 0;
}

static bool device_idle(const struct match_fit *f, size_t i)
{
	uint32_t slots = f->reg->devices[i]->slots ? f->reg->devices[i]->slots : 1;
	return f->free[i] >= slots;
}

bool match_fit_task(const struct sched_task *t, void *arg)
{
	struct match_fit *f = arg;
	const struct match_req *req = t->job->data;
	const Hf__Device *dev = f->reg->devices[f->pos];
	uint32_t want = req ? req->devices : 1;

	if (f->free[f->pos] == 0)
		return false;
	if (t->avoid_worker && t->avoid_worker == f->worker_hash && t->avoid_device == dev->index &&
	    f->now_ms < t->due_ms + f->avoid_ms)
		return false;
	if (!match_device_fits(req, f->reg, dev, NULL, 0))
		return false;
	/* A benchmark, or a task of several devices, has its devices alone.  MIG
	 * instances are never combined: they cannot talk to each other. */
	bool exclusive = (t->kind == HF__TASK_KIND__KIND_BENCHMARK && !f->queueing) || want > 1;
	if (exclusive && !device_idle(f, f->pos))
		return false;
	if (want > 1 && device_is_mig(dev))
		return false;
	f->n_extra = 0;
	for (size_t i = 0; i < f->reg->n_devices && f->n_extra + 1u < want; i++) {
		const Hf__Device *d = f->reg->devices[i];
		if (i == f->pos || d->backend != dev->backend || !device_idle(f, i) || device_is_mig(d) ||
		    !match_device_fits(req, f->reg, d, NULL, 0))
			continue;
		f->extra[f->n_extra++] = (uint32_t)i;
	}
	if (f->n_extra + 1u < want)
		return false;
	for (uint8_t k = 0; k < f->n_extra; k++)
		f->free[f->extra[k]] = 0;
	f->free[f->pos] = exclusive ? 0 : f->free[f->pos] - 1;
	return true;
}
