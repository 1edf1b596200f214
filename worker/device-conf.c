/* SPDX-License-Identifier: MIT
 *
 * Parsing and applying devices.hide, devices.slots, devices.shared and
 * devices.declare (see device-conf.h).
 */
#include "device-conf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hw-util.h"

#define INDEX_MAX 65535
#define SLOTS_MAX 256

/* ---- text helpers ---- */

/* [p, end) without blanks at either side. */
static void trim(const char **p, const char **end)
{
	while (*p < *end && (**p == ' ' || **p == '\t'))
		(*p)++;
	while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
		(*end)--;
}

/* Calls fn on each item of text separated by sep, trimmed; empty items are
 * skipped.  Stops at the first error. */
typedef int (*item_fn)(const char *item, size_t len, void *arg, char *err, size_t errlen);

static int items_each(const char *text, char sep, item_fn fn, void *arg, char *err, size_t errlen)
{
	for (const char *p = text ? text : ""; *p;) {
		const char *end = strchr(p, sep), *next;
		int r;

		if (!end)
			end = p + strlen(p);
		next = *end ? end + 1 : end;
		trim(&p, &end);
		if (end > p) {
			r = fn(p, (size_t)(end - p), arg, err, errlen);
			if (r < 0)
				return r;
		}
		p = next;
	}
	return 0;
}

static int number_parse(const char *p, size_t len, unsigned long max, unsigned long *ret)
{
	unsigned long v = 0;

	if (len == 0 || len > 10)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* "cuda" or "cuda:3" in [p, p+len). */
static int sel_parse(const char *p, size_t len, struct devconf_sel *ret, char *err, size_t errlen)
{
	const char *colon = memchr(p, ':', len);
	size_t blen = colon ? (size_t)(colon - p) : len;
	char name[16];
	unsigned long idx;

	if (blen == 0 || blen >= sizeof(name)) {
		snprintf(err, errlen, "\"%.*s\" does not name a backend (use %s)", (int)len, p,
			 hf_backend_names());
		return -EINVAL;
	}
	memcpy(name, p, blen);
	name[blen] = '\0';
	if (hf_backend_parse(name, &ret->backend) < 0) {
		snprintf(err, errlen, "unknown backend \"%s\" in \"%.*s\" (use %s)", name, (int)len, p,
			 hf_backend_names());
		return -EINVAL;
	}
	ret->index = -1;
	if (colon) {
		const char *ip = colon + 1, *iend = p + len;
		trim(&ip, &iend);
		if (number_parse(ip, (size_t)(iend - ip), INDEX_MAX, &idx) < 0) {
			snprintf(err, errlen, "bad device index in \"%.*s\" (use backend:N, N from 0 to %d)",
				 (int)len, p, INDEX_MAX);
			return -EINVAL;
		}
		ret->index = (int)idx;
	}
	return 0;
}

static bool sel_same(const struct devconf_sel *a, const struct devconf_sel *b)
{
	return a->backend == b->backend && a->index == b->index;
}

/* Whether sel covers the device. */
static bool sel_covers(const struct devconf_sel *sel, Hf__Backend backend, unsigned index)
{
	return sel->backend == backend && (sel->index < 0 || (unsigned)sel->index == index);
}

static void sel_format(const struct devconf_sel *s, char *buf, size_t len)
{
	if (s->index < 0)
		snprintf(buf, len, "%s", hf_backend_name(s->backend));
	else
		snprintf(buf, len, "%s:%d", hf_backend_name(s->backend), s->index);
}

/* ---- selector lists ---- */

struct sel_list {
	struct devconf_sel *items;
	size_t n;
};

static int sel_item(const char *p, size_t len, void *arg, char *err, size_t errlen)
{
	struct sel_list *l = arg;
	struct devconf_sel s, *grown;
	int r = sel_parse(p, len, &s, err, errlen);

	if (r < 0)
		return r;
	for (size_t i = 0; i < l->n; i++)
		if (sel_same(&l->items[i], &s))
			return 0; /* listed twice: once is enough */
	grown = realloc(l->items, (l->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->items = grown;
	l->items[l->n++] = s;
	return 0;
}

int devconf_sels_parse(const char *text, struct devconf_sel **ret, size_t *ret_n, char *err,
		       size_t errlen)
{
	struct sel_list l = { NULL, 0 };
	int r = items_each(text, ',', sel_item, &l, err, errlen);

	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		free(l.items);
		return r;
	}
	*ret = l.items;
	*ret_n = l.n;
	return 0;
}

/* ---- slots ---- */

struct slot_list {
	struct devconf_slot *items;
	size_t n;
};

static int slot_item(const char *p, size_t len, void *arg, char *err, size_t errlen)
{
	struct slot_list *l = arg;
	const char *eq = memchr(p, '=', len), *sp = p, *send, *vp, *vend = p + len;
	struct devconf_slot s, *grown;
	unsigned long v;
	int r;

	if (!eq) {
		snprintf(err, errlen, "\"%.*s\" is not selector=N", (int)len, p);
		return -EINVAL;
	}
	send = eq;
	vp = eq + 1;
	trim(&sp, &send);
	trim(&vp, &vend);
	r = sel_parse(sp, (size_t)(send - sp), &s.sel, err, errlen);
	if (r < 0)
		return r;
	s.automatic = vend - vp == 4 && strncasecmp(vp, "auto", 4) == 0;
	if (s.automatic) {
		v = 0; /* devconf_apply decides */
	} else if (number_parse(vp, (size_t)(vend - vp), SLOTS_MAX, &v) < 0 || v == 0) {
		snprintf(err, errlen, "bad slot count in \"%.*s\" (1 to %d, or auto; hide a device "
				      "with devices.hide)",
			 (int)len, p, SLOTS_MAX);
		return -EINVAL;
	}
	s.slots = (unsigned)v;
	for (size_t i = 0; i < l->n; i++) {
		if (sel_same(&l->items[i].sel, &s.sel)) {
			l->items[i] = s; /* the last one given wins */
			return 0;
		}
	}
	grown = realloc(l->items, (l->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->items = grown;
	l->items[l->n++] = s;
	return 0;
}

int devconf_slots_parse(const char *text, struct devconf_slot **ret, size_t *ret_n, char *err,
			size_t errlen)
{
	struct slot_list l = { NULL, 0 };
	int r = items_each(text, ',', slot_item, &l, err, errlen);

	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		free(l.items);
		return r;
	}
	*ret = l.items;
	*ret_n = l.n;
	return 0;
}

/* ---- declare ---- */

int devconf_memory_parse(const char *text, uint64_t *ret)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "K", UINT64_C(1) << 10 },
		{ "KiB", UINT64_C(1) << 10 },
		{ "KB", UINT64_C(1000) },
		{ "M", UINT64_C(1) << 20 },
		{ "MiB", UINT64_C(1) << 20 },
		{ "MB", UINT64_C(1000000) },
		{ "G", UINT64_C(1) << 30 },
		{ "GiB", UINT64_C(1) << 30 },
		{ "GB", UINT64_C(1000000000) },
		{ "T", UINT64_C(1) << 40 },
		{ "TiB", UINT64_C(1) << 40 },
		{ "TB", UINT64_C(1000000000000) },
	};
	const char *p = text;
	uint64_t v = 0;

	p += strspn(p, " \t");
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	p += strspn(p, " \t");
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t ul = strlen(units[i].unit);
		if (strncasecmp(p, units[i].unit, ul) == 0 && p[ul + strspn(p + ul, " \t")] == '\0' &&
		    (ul > 0 || *p == '\0')) {
			if (v > UINT64_MAX / units[i].mult)
				return -EINVAL;
			*ret = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

struct decl_list {
	struct devconf_declared *items;
	size_t n;
};

static bool text_clean(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] < ' ' || p[i] == 0x7f)
			return false;
	return true;
}

static bool attr_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* Copies a field value into dst (size n), refusing what does not fit. */
static int field_copy(char *dst, size_t n, const char *v, size_t vlen, const char *key,
		      const char *entry, size_t elen, char *err, size_t errlen)
{
	if (vlen == 0 || vlen >= n || !text_clean(v, vlen)) {
		snprintf(err, errlen, "bad %s in \"%.*s\" (1 to %zu characters, no control characters)",
			 key, (int)elen, entry, n - 1);
		return -EINVAL;
	}
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	return 0;
}

/* One "key=value" field of a declaration. */
static int decl_field(struct devconf_declared *dd, const char *f, size_t flen, const char *entry,
		      size_t elen, char *err, size_t errlen)
{
	const char *eq = memchr(f, '=', flen), *k = f, *kend, *v, *vend = f + flen;
	struct hw_device *d = &dd->dev;
	char key[64], value[128];
	size_t klen;

	if (!eq) {
		snprintf(err, errlen, "field \"%.*s\" of \"%.*s\" is not key=value", (int)flen, f,
			 (int)elen, entry);
		return -EINVAL;
	}
	kend = eq;
	v = eq + 1;
	trim(&k, &kend);
	trim(&v, &vend);
	klen = (size_t)(kend - k);
	if (klen == 0 || klen >= sizeof(key)) {
		snprintf(err, errlen, "field \"%.*s\" of \"%.*s\" has no key", (int)flen, f, (int)elen,
			 entry);
		return -EINVAL;
	}
	memcpy(key, k, klen);
	key[klen] = '\0';
	if (strcmp(key, "name") == 0) {
		dd->fields |= DEVCONF_NAME;
		return field_copy(d->name, sizeof(d->name), v, (size_t)(vend - v), key, entry, elen,
				  err, errlen);
	}
	if (strcmp(key, "arch") == 0) {
		dd->fields |= DEVCONF_ARCH;
		return field_copy(d->arch, sizeof(d->arch), v, (size_t)(vend - v), key, entry, elen,
				  err, errlen);
	}
	if (strcmp(key, "driver") == 0) {
		dd->fields |= DEVCONF_DRIVER;
		return field_copy(d->driver, sizeof(d->driver), v, (size_t)(vend - v), key, entry,
				  elen, err, errlen);
	}
	if (strcmp(key, "uuid") == 0) {
		dd->fields |= DEVCONF_UUID;
		return field_copy(d->uuid, sizeof(d->uuid), v, (size_t)(vend - v), key, entry, elen,
				  err, errlen);
	}
	if (strcmp(key, "memory") == 0) {
		if ((size_t)(vend - v) >= sizeof(value)) {
			snprintf(err, errlen, "bad memory in \"%.*s\"", (int)elen, entry);
			return -EINVAL;
		}
		memcpy(value, v, (size_t)(vend - v));
		value[vend - v] = '\0';
		if (devconf_memory_parse(value, &d->memory_bytes) < 0) {
			snprintf(err, errlen, "bad memory \"%s\" in \"%.*s\" (bytes, or a number with "
					      "KiB, MiB, GiB, TiB, KB, MB, GB or TB)",
				 value, (int)elen, entry);
			return -EINVAL;
		}
		dd->fields |= DEVCONF_MEMORY;
		return 0;
	}
	if (strncmp(key, "attr.", 5) == 0 && key[5]) {
		struct hw_attr *a;
		for (const char *c = key + 5; *c; c++) {
			if (!attr_key_char(*c) || strlen(key + 5) >= sizeof(a->key)) {
				snprintf(err, errlen, "bad attribute name \"%s\" in \"%.*s\" (up to %zu "
						      "letters, digits and . _ -)",
					 key + 5, (int)elen, entry, sizeof(a->key) - 1);
				return -EINVAL;
			}
		}
		if (field_copy(value, sizeof(d->attrs[0].value), v, (size_t)(vend - v), key, entry,
			       elen, err, errlen) < 0)
			return -EINVAL;
		if (hw_device_attr_set(d, key + 5, value) < 0) {
			snprintf(err, errlen, "too many attributes in \"%.*s\" (at most %d)", (int)elen,
				 entry, HW_MAX_ATTRS);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, errlen, "unknown field \"%s\" in \"%.*s\" (use name, memory, arch, driver, "
			      "uuid or attr.KEY)",
		 key, (int)elen, entry);
	return -EINVAL;
}

static int decl_item(const char *p, size_t len, void *arg, char *err, size_t errlen)
{
	struct decl_list *l = arg;
	struct devconf_declared dd, *grown;
	const char *end = p + len, *c1, *c2, *f;
	struct devconf_sel sel;
	int r;

	memset(&dd, 0, sizeof(dd));
	c1 = memchr(p, ':', len);
	c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
	if (!c1) {
		snprintf(err, errlen, "\"%.*s\" does not start with backend:index", (int)len, p);
		return -EINVAL;
	}
	r = sel_parse(p, (size_t)((c2 ? c2 : end) - p), &sel, err, errlen);
	if (r < 0)
		return r;
	dd.dev.backend = sel.backend;
	dd.dev.index = (unsigned)sel.index;
	dd.dev.visible_index = -1;
	for (f = c2; f && f < end;) {
		const char *fs = f + 1, *fe = memchr(fs, ':', (size_t)(end - fs));
		if (!fe)
			fe = end;
		const char *ts = fs, *te = fe;
		trim(&ts, &te);
		if (te > ts) {
			r = decl_field(&dd, ts, (size_t)(te - ts), p, len, err, errlen);
			if (r < 0)
				return r;
		}
		f = fe < end ? fe : NULL;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (l->items[i].dev.backend == dd.dev.backend && l->items[i].dev.index == dd.dev.index) {
			snprintf(err, errlen, "%s:%u is declared twice", hf_backend_name(dd.dev.backend),
				 dd.dev.index);
			return -EINVAL;
		}
	}
	grown = realloc(l->items, (l->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->items = grown;
	l->items[l->n++] = dd;
	return 0;
}

int devconf_declare_parse(const char *text, struct devconf_declared **ret, size_t *ret_n,
			  char *err, size_t errlen)
{
	struct decl_list l = { NULL, 0 };
	int r = items_each(text, ';', decl_item, &l, err, errlen);

	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		free(l.items);
		return r;
	}
	*ret = l.items;
	*ret_n = l.n;
	return 0;
}

/* ---- the configuration ---- */

static bool sels_cover(const struct devconf_sel *list, size_t n, Hf__Backend backend,
		       unsigned index)
{
	for (size_t i = 0; i < n; i++)
		if (sel_covers(&list[i], backend, index))
			return true;
	return false;
}

bool devconf_backend_hidden(const struct devconf *dc, Hf__Backend backend)
{
	for (size_t i = 0; dc && i < dc->n_hide; i++)
		if (dc->hide[i].backend == backend && dc->hide[i].index < 0)
			return true;
	return false;
}

/* The devices.slots entry that decides the device: its own, else its
 * backend's, else NULL. */
static const struct devconf_slot *slot_entry(const struct devconf *dc, Hf__Backend backend,
					     unsigned index)
{
	const struct devconf_slot *by_backend = NULL;

	for (size_t i = 0; dc && i < dc->n_slots; i++) {
		const struct devconf_slot *s = &dc->slots[i];
		if (s->sel.backend != backend)
			continue;
		if (s->sel.index >= 0 && (unsigned)s->sel.index == index)
			return s;
		if (s->sel.index < 0)
			by_backend = s;
	}
	return by_backend;
}

unsigned devconf_device_slots(const struct devconf *dc, Hf__Backend backend, unsigned index)
{
	const struct devconf_slot *s = slot_entry(dc, backend, index);

	if (s)
		return s->automatic ? 1 : s->slots;
	if (backend == HF__BACKEND__BACKEND_CPU)
		return dc && dc->cpu_slots ? dc->cpu_slots : 1;
	return 1;
}

bool devconf_device_auto(const struct devconf *dc, Hf__Backend backend, unsigned index)
{
	const struct devconf_slot *s = slot_entry(dc, backend, index);

	return s && s->automatic;
}

bool devconf_device_shared(const struct devconf *dc, Hf__Backend backend, unsigned index)
{
	if (!dc)
		return backend == HF__BACKEND__BACKEND_CPU;
	return sels_cover(dc->shared, dc->n_shared, backend, index) ||
	       devconf_device_auto(dc, backend, index);
}

unsigned devconf_auto_slots(unsigned cpus, unsigned n_auto, uint64_t memory_bytes,
			    uint64_t slot_memory, char *why, size_t len)
{
	unsigned by_cpu = cpus / (n_auto ? n_auto : 1), slots = by_cpu;
	char mem[32], per[32];

	if (by_cpu > SLOTS_MAX)
		by_cpu = slots = SLOTS_MAX;
	if (memory_bytes && slot_memory) {
		uint64_t by_mem = memory_bytes / slot_memory;
		if (by_mem < slots)
			slots = (unsigned)by_mem;
	}
	if (slots < 1)
		slots = 1;
	if (why && len) {
		hw_bytes_format(memory_bytes, mem, sizeof(mem));
		hw_bytes_format(slot_memory, per, sizeof(per));
		if (n_auto > 1)
			snprintf(why, len, "%u CPUs / %u auto devices, ", cpus, n_auto);
		else
			snprintf(why, len, "%u CPUs, ", cpus);
		if (memory_bytes && slot_memory)
			snprintf(why + strlen(why), len - strlen(why), "%s / %s", mem, per);
		else
			snprintf(why + strlen(why), len - strlen(why), "memory unknown");
	}
	return slots;
}

void devconf_fini(struct devconf *dc)
{
	if (!dc)
		return;
	free(dc->hide);
	free(dc->slots);
	free(dc->shared);
	free(dc->declared);
	memset(dc, 0, sizeof(*dc));
}

/* Every slot count above 1 must be on a shared device. */
static int check_slots_shared(const struct devconf *dc, char *err, size_t errlen)
{
	char name[32];

	for (size_t i = 0; i < dc->n_slots; i++) {
		const struct devconf_slot *s = &dc->slots[i];
		bool ok = s->slots <= 1; /* auto: shared by itself */
		for (size_t j = 0; !ok && j < dc->n_shared; j++)
			ok = dc->shared[j].backend == s->sel.backend &&
			     (dc->shared[j].index < 0 || dc->shared[j].index == s->sel.index);
		if (!ok) {
			sel_format(&s->sel, name, sizeof(name));
			snprintf(err, errlen,
				 "invalid value for setting \"devices.slots\": %s has %u slots, but "
				 "\"devices.shared\" does not list it (a device that is not shared "
				 "runs one task at a time)",
				 name, s->slots);
			return -EINVAL;
		}
	}
	if (devconf_device_slots(dc, HF__BACKEND__BACKEND_CPU, 0) > 1 &&
	    !devconf_device_shared(dc, HF__BACKEND__BACKEND_CPU, 0)) {
		snprintf(err, errlen,
			 "setting \"worker.slots\" gives the CPU %u slots, but \"devices.shared\" does "
			 "not list cpu (a device that is not shared runs one task at a time)",
			 devconf_device_slots(dc, HF__BACKEND__BACKEND_CPU, 0));
		return -EINVAL;
	}
	return 0;
}

int devconf_init(struct devconf *dc, const char *hide, const char *slots, const char *shared,
		 const char *declare, unsigned cpu_slots, char *err, size_t errlen)
{
	char msg[384], name[32];
	const char *setting;
	int r;

	memset(dc, 0, sizeof(*dc));
	dc->cpu_slots = cpu_slots ? cpu_slots : 1;
	setting = "devices.hide";
	r = devconf_sels_parse(hide, &dc->hide, &dc->n_hide, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	setting = "devices.slots";
	r = devconf_slots_parse(slots, &dc->slots, &dc->n_slots, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	setting = "devices.shared";
	r = devconf_sels_parse(shared ? shared : "cpu", &dc->shared, &dc->n_shared, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	setting = "devices.declare";
	r = devconf_declare_parse(declare, &dc->declared, &dc->n_declared, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < dc->n_declared; i++) {
		const struct hw_device *d = &dc->declared[i].dev;
		if (sels_cover(dc->hide, dc->n_hide, d->backend, d->index)) {
			snprintf(name, sizeof(name), "%s:%u", hf_backend_name(d->backend), d->index);
			snprintf(err, errlen,
				 "invalid value for setting \"devices.declare\": it declares %s, which "
				 "\"devices.hide\" hides",
				 name);
			return -EINVAL;
		}
	}
	return check_slots_shared(dc, err, errlen);

fail:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	else
		snprintf(err, errlen, "invalid value for setting \"%s\": %s", setting, msg);
	return r;
}

/* ---- applying ---- */

static int device_cmp(const void *a, const void *b)
{
	const struct hw_device *x = a, *y = b;

	if (x->backend != y->backend)
		return x->backend < y->backend ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static void declared_merge(const struct devconf_declared *dd, struct hw_inventory *inv)
{
	const struct hw_device *src = &dd->dev;
	struct hw_backend_status *st = &inv->backends[src->backend - 1];
	struct hw_device *d = NULL;
	char probe[sizeof(st->reason)];

	for (size_t i = 0; i < inv->n_devices && !d; i++)
		if (inv->devices[i].backend == src->backend && inv->devices[i].index == src->index)
			d = &inv->devices[i];
	if (!d) {
		d = hw_inventory_device_add(inv, src->backend, src->index);
		if (!d)
			return;
		snprintf(d->name, sizeof(d->name), "declared %s device", hf_backend_name(src->backend));
		/* A declared ROCm GPU is the ROCR index it names; a declared QNN
		 * device uses the backend library the probe found, if any. */
		if (src->backend == HF__BACKEND__BACKEND_ROCM)
			d->visible_index = (int)src->index;
		if (src->backend == HF__BACKEND__BACKEND_QNN)
			hf_strlcpy(d->library, st->library, sizeof(d->library));
	}
	if (dd->fields & DEVCONF_NAME)
		hf_strlcpy(d->name, src->name, sizeof(d->name));
	if (dd->fields & DEVCONF_ARCH)
		hf_strlcpy(d->arch, src->arch, sizeof(d->arch));
	if (dd->fields & DEVCONF_DRIVER)
		hf_strlcpy(d->driver, src->driver, sizeof(d->driver));
	if (dd->fields & DEVCONF_UUID)
		hf_strlcpy(d->uuid, src->uuid, sizeof(d->uuid));
	if (dd->fields & DEVCONF_MEMORY)
		d->memory_bytes = src->memory_bytes;
	for (size_t i = 0; i < src->n_attrs; i++)
		if (hw_device_attr_set(d, src->attrs[i].key, src->attrs[i].value) < 0)
			log_warn("%s:%u has too many attributes, dropping declared \"%s\"",
				 hf_backend_name(d->backend), d->index, src->attrs[i].key);
	d->declared = true;
	if (!st->present) {
		hf_strlcpy(probe, st->reason, sizeof(probe));
		st->present = true;
		snprintf(st->reason, sizeof(st->reason), "declared in configuration (probe: %.200s)", probe);
	}
}

/* devices.slots=auto: the machine's logical CPUs are divided among the
 * auto devices, and each gets no more slots than its memory holds at
 * slot_memory apiece (devconf_auto_slots).  Logged, and kept as the
 * device's attribute slots_auto so the probe and the fleet show why. */
static void auto_slots_apply(const struct devconf *dc, struct hw_inventory *inv)
{
	unsigned n_auto = 0, cpus = hw_cpu_usable(&inv->cpu);
	char why[160];

	for (size_t i = 0; dc && i < inv->n_devices; i++)
		n_auto += devconf_device_auto(dc, inv->devices[i].backend, inv->devices[i].index);
	for (size_t i = 0; n_auto && i < inv->n_devices; i++) {
		struct hw_device *d = &inv->devices[i];
		if (!devconf_device_auto(dc, d->backend, d->index))
			continue;
		d->slots = devconf_auto_slots(cpus, n_auto, d->memory_bytes,
					      dc->slot_memory ? dc->slot_memory : DEVCONF_SLOT_MEMORY,
					      why, sizeof(why));
		d->shared = true;
		log_info("%s:%u: %u slot%s (%s; devices.slots=auto)", hf_backend_name(d->backend),
			 d->index, d->slots, d->slots == 1 ? "" : "s", why);
		if (hw_device_attr_set(d, "slots_auto", why) < 0)
			log_debug("%s:%u has too many attributes for slots_auto",
				  hf_backend_name(d->backend), d->index);
	}
}

void devconf_apply(const struct devconf *dc, struct hw_inventory *inv)
{
	size_t kept = 0;
	char name[32];

	if (dc) {
		for (size_t h = 0; h < dc->n_hide; h++) {
			const struct devconf_sel *s = &dc->hide[h];
			bool found = s->index < 0;
			for (size_t i = 0; i < inv->n_devices && !found; i++)
				found = sel_covers(s, inv->devices[i].backend, inv->devices[i].index);
			if (!found) {
				sel_format(s, name, sizeof(name));
				log_info("setting \"devices.hide\" names %s, which this worker does not "
					 "have, ignoring",
					 name);
			}
		}
		for (size_t i = 0; i < inv->n_devices; i++) {
			const struct hw_device *d = &inv->devices[i];
			if (sels_cover(dc->hide, dc->n_hide, d->backend, d->index))
				continue;
			if (kept != i)
				inv->devices[kept] = *d;
			kept++;
		}
		inv->n_devices = kept;
		for (size_t i = 0; i < dc->n_declared; i++)
			declared_merge(&dc->declared[i], inv);
	}
	qsort(inv->devices, inv->n_devices, sizeof(inv->devices[0]), device_cmp);
	for (size_t i = 0; i < inv->n_devices; i++) {
		struct hw_device *d = &inv->devices[i];
		if (dc)
			d->slots = devconf_device_slots(dc, d->backend, d->index);
		d->shared = devconf_device_shared(dc, d->backend, d->index);
		if (!d->shared && d->slots > 1)
			d->slots = 1; /* refused at start for configurations; a safeguard */
	}
	auto_slots_apply(dc, inv);
}
