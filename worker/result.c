/* SPDX-License-Identifier: MIT
 *
 * From a finished runner to a TaskResult (see result.h).  The rules of what
 * is reported live here and nowhere else: the executor only collects facts.
 */
#include "result.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

/* Reals are printed with 15 significant digits: enough for any measurement,
 * and 0.1 stays 0.1 instead of becoming 0.10000000000000001. */
#define RESULT_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- tail buffer ---- */

int tail_buf_init(struct tail_buf *t, size_t cap)
{
	memset(t, 0, sizeof(*t));
	if (cap == 0)
		return -EINVAL;
	t->data = malloc(cap);
	if (!t->data)
		return -ENOMEM;
	t->cap = cap;
	return 0;
}

void tail_buf_fini(struct tail_buf *t)
{
	if (!t)
		return;
	free(t->data);
	memset(t, 0, sizeof(*t));
}

void tail_buf_append(struct tail_buf *t, const void *data, size_t n)
{
	const char *p = data;

	t->total += n;
	if (n >= t->cap) { /* only the last cap bytes of it can stay */
		memcpy(t->data, p + n - t->cap, t->cap);
		t->pos = 0;
		t->len = t->cap;
		return;
	}
	size_t first = t->cap - t->pos;
	if (first > n)
		first = n;
	memcpy(t->data + t->pos, p, first);
	memcpy(t->data, p + first, n - first);
	t->pos = (t->pos + n) % t->cap;
	t->len = t->len + n > t->cap ? t->cap : t->len + n;
}

int tail_buf_last(const struct tail_buf *t, size_t max, char **ret_buf, size_t *ret_len)
{
	size_t n = t->len < max ? t->len : max;
	char *buf = malloc(n + 1);

	if (!buf)
		return -ENOMEM;
	if (n > 0) {
		size_t start = (t->pos + t->cap - n) % t->cap;
		size_t first = t->cap - start < n ? t->cap - start : n;
		memcpy(buf, t->data + start, first);
		memcpy(buf + first, t->data, n - first);
	}
	buf[n] = '\0';
	*ret_buf = buf;
	if (ret_len)
		*ret_len = n;
	return 0;
}

/* ---- text ---- */

/* Length of the valid UTF-8 sequence at p (at most left bytes), 0 if none. */
static size_t utf8_seq_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void result_text_sanitize(char *s, size_t len)
{
	unsigned char *p = (unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(p + i, len - i);
		if (n == 0) {
			p[i++] = '?';
			continue;
		}
		if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f) && p[i] != '\t' && p[i] != '\n' &&
		    p[i] != '\r')
			p[i] = '?';
		i += n;
	}
}

/* Cuts s (valid UTF-8) to at most max bytes, ending in "..." when cut. */
static void utf8_truncate(char *s, size_t max)
{
	size_t len = strlen(s);

	if (len <= max || max < 3)
		return;
	len = max - 3;
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	memcpy(s + len, "...", 4);
}

/* A reason is one line of valid UTF-8 of bounded length. */
static char *reason_clean(const char *text)
{
	char *s = strdup(text ? text : "");

	if (!s)
		return NULL;
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	result_text_sanitize(s, strlen(s));
	utf8_truncate(s, RESULT_REASON_MAX);
	return s;
}

/* Appends the last max bytes of text, not starting inside a character. */
static void append_tail(struct hf_buf *b, const char *text, size_t len, size_t max)
{
	size_t skip = len > max ? len - max : 0;

	for (int i = 0; i < 3 && skip < len && ((unsigned char)text[skip] & 0xc0) == 0x80; i++)
		skip++;
	hf_buf_append(b, text + skip, len - skip);
}

/* ---- the runner's result file ---- */

void runner_result_fini(struct runner_result *r)
{
	if (!r)
		return;
	free(r->reason);
	free(r->metrics_json);
	free(r->env_json);
	free(r->weights);
	free(r->traceback);
	memset(r, 0, sizeof(*r));
}

/* The statuses a runner may report; timeout and cancelled are the worker's. */
static bool runner_status_parse(const char *s, Hf__TaskStatus *ret)
{
	Hf__TaskStatus st;

	if (hf_status_parse(s, &st) < 0)
		return false;
	switch (st) {
	case HF__TASK_STATUS__STATUS_PASSED:
	case HF__TASK_STATUS__STATUS_FAILED:
	case HF__TASK_STATUS__STATUS_ERROR:
	case HF__TASK_STATUS__STATUS_SKIPPED:
		*ret = st;
		return true;
	default:
		return false;
	}
}

/* The member named key if it is present and not null. */
static json_t *member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

/* Dumps obj (an object, or NULL for "{}") into *ret. */
static int dump_object(json_t *obj, const char *what, char **ret, char *err, size_t errlen)
{
	char *text = obj ? json_dumps(obj, RESULT_JSON_FLAGS) : strdup("{}");

	if (!text)
		return -ENOMEM;
	if (strlen(text) > RESULT_JSON_MAX) {
		snprintf(err, errlen, "\"%s\" is larger than %d bytes", what, RESULT_JSON_MAX);
		free(text);
		return -EBADMSG;
	}
	*ret = text;
	return 0;
}

int result_parse(const char *text, size_t len, struct runner_result *ret, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int r;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "not valid JSON: %s (line %d)", jerr.text, jerr.line);
		return -EBADMSG;
	}
	r = result_parse_json(root, ret, err, errlen);
	json_decref(root);
	return r;
}

int result_parse_json(json_t *root, struct runner_result *ret, char *err, size_t errlen)
{
	struct runner_result rr = { 0 };
	static const char *const objects[] = { "metrics", "env", "outputs" };
	json_t *v, *metrics, *env, *outputs, *env_out = NULL;
	const char *status;
	int r = -EBADMSG;

	if (!json_is_object(root)) {
		snprintf(err, errlen, "the result is not a JSON object");
		goto out;
	}

	v = json_object_get(root, "status");
	if (!v) {
		snprintf(err, errlen, "\"status\" is missing");
		goto out;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"status\" must be a string");
		goto out;
	}
	status = json_string_value(v);
	if (!runner_status_parse(status, &rr.status)) {
		snprintf(err, errlen, "\"status\" must be passed, failed, error or skipped, not \"%.64s\"",
			 status);
		goto out;
	}

	v = member(root, "reason");
	if (v && !json_is_string(v)) {
		snprintf(err, errlen, "\"reason\" must be a string");
		goto out;
	}
	rr.reason = reason_clean(v ? json_string_value(v) : "");
	if (!rr.reason)
		goto oom;
	if (rr.status != HF__TASK_STATUS__STATUS_PASSED && strspn(rr.reason, " ") == strlen(rr.reason)) {
		snprintf(err, errlen, "\"reason\" is required when \"status\" is \"%s\"", status);
		goto out;
	}

	for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
		v = member(root, objects[i]);
		if (v && !json_is_object(v)) {
			snprintf(err, errlen, "\"%s\" must be an object", objects[i]);
			goto out;
		}
	}
	metrics = member(root, "metrics");
	env = member(root, "env");
	outputs = member(root, "outputs");
	v = member(root, "weights");
	if (v && !json_is_string(v)) {
		snprintf(err, errlen, "\"weights\" must be a string or null");
		goto out;
	}
	rr.weights = reason_clean(v ? json_string_value(v) : "");
	if (!rr.weights)
		goto oom;
	v = member(root, "traceback");
	if (v && !json_is_string(v)) {
		snprintf(err, errlen, "\"traceback\" must be a string or null");
		goto out;
	}
	if (v) {
		rr.traceback = strdup(json_string_value(v));
		if (!rr.traceback)
			goto oom;
	}

	r = dump_object(metrics, "metrics", &rr.metrics_json, err, errlen);
	if (r < 0)
		goto out;
	if (outputs && !json_object_get(env, "outputs")) {
		env_out = env ? json_copy(env) : json_object();
		if (!env_out || json_object_set(env_out, "outputs", outputs) < 0)
			goto oom;
		env = env_out;
	}
	r = dump_object(env, "env", &rr.env_json, err, errlen);
	if (r < 0)
		goto out;

	*ret = rr;
	memset(&rr, 0, sizeof(rr));
	r = 0;
	goto out;

oom:
	snprintf(err, errlen, "out of memory");
	r = -ENOMEM;
out:
	json_decref(env_out);
	runner_result_fini(&rr);
	return r;
}

/* ---- TaskResult ---- */

void result_free(Hf__TaskResult *r)
{
	if (r)
		hf__task_result__free_unpacked(r, NULL);
}

int result_dup(const Hf__TaskResult *r, Hf__TaskResult **ret)
{
	size_t len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len ? len : 1);
	Hf__TaskResult *copy;

	if (!buf)
		return -ENOMEM;
	hf__task_result__pack(r, buf);
	copy = hf__task_result__unpack(NULL, len, buf);
	free(buf);
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

static void describe_signal(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "%d", sig);
}

/* The log excerpt: the end of the output, then the end of the traceback. */
static int build_excerpt(const struct tail_buf *output, const char *traceback, char **ret)
{
	struct hf_buf b;
	char *tail = NULL;
	size_t tail_len = 0;

	hf_buf_init(&b);
	if (output && output->len > 0) {
		if (tail_buf_last(output, RESULT_EXCERPT_MAX, &tail, &tail_len) < 0)
			return -ENOMEM;
		if (output->total > tail_len)
			hf_buf_printf(&b, "[%llu earlier bytes of output not kept]\n",
				      (unsigned long long)(output->total - tail_len));
		append_tail(&b, tail, tail_len, tail_len);
		free(tail);
	}
	if (traceback && *traceback) {
		if (b.len > 0 && b.data[b.len - 1] != '\n')
			hf_buf_puts(&b, "\n");
		hf_buf_puts(&b, "[traceback]\n");
		append_tail(&b, traceback, strlen(traceback), RESULT_EXCERPT_MAX);
	}
	hf_buf_append(&b, "", 0); /* data is non-NULL even when empty */
	if (b.oom) {
		hf_buf_fini(&b);
		return -ENOMEM;
	}
	result_text_sanitize(b.data, b.len);
	*ret = b.data;
	return 0;
}

/* The runner's own verdict, as its result (file or done line) gave it;
 * tr borrows rr's strings. */
static void verdict_take(Hf__TaskResult *tr, const struct runner_result *rr, char *reason, size_t len)
{
	tr->status = rr->status;
	hf_strlcpy(reason, rr->reason, len);
	tr->metrics_json = rr->metrics_json;
	tr->env_json = rr->env_json;
	tr->weights = rr->weights;
}

int result_build(const struct run_outcome *o, Hf__TaskResult **ret)
{
	Hf__TaskResult tr = HF__TASK_RESULT__INIT;
	struct runner_result rr = { 0 };
	char reason[RESULT_REASON_MAX + 256];
	char msg[512], sig[32];
	char *clean_reason = NULL, *excerpt = NULL;
	int r;

	tr.task_id = o->task_id;
	tr.attempt = o->attempt;
	tr.device_index = o->device_index;
	tr.started_at = o->started_at;
	tr.finished_at = o->finished_at;
	if (!o->spawned)
		tr.exit_code = -1;
	else if (o->term_signal)
		tr.exit_code = 128 + o->term_signal;
	else
		tr.exit_code = o->exit_status;
	tr.status = HF__TASK_STATUS__STATUS_ERROR;
	tr.infrastructure = o->infrastructure;
	reason[0] = '\0';

	if (o->forced_status != HF__TASK_STATUS__STATUS_UNSPECIFIED) {
		tr.status = o->forced_status;
		hf_strlcpy(reason, o->forced_reason ? o->forced_reason : "", sizeof(reason));
	} else if (o->result_json) {
		r = result_parse_json(o->result_json, &rr, msg, sizeof(msg));
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			snprintf(reason, sizeof(reason), "runner sent an invalid result: %s", msg);
		else
			verdict_take(&tr, &rr, reason, sizeof(reason));
	} else if (o->result_err == -ENOENT) {
		if (o->term_signal) {
			tr.infrastructure = true; /* killed (OOM) before it could say */
			describe_signal(o->term_signal, sig, sizeof(sig));
			snprintf(reason, sizeof(reason), "runner was killed by signal %s", sig);
		} else if (o->exit_status != 0) {
			tr.infrastructure = true; /* crashed before it could say */
			snprintf(reason, sizeof(reason),
				 "runner exited with status %d without writing a result", o->exit_status);
		} else {
			/* Exiting 0 says it finished: leaving no result is the
			 * runner's own error, and says nothing of the device. */
			snprintf(reason, sizeof(reason), "runner exited 0 without writing a result");
		}
	} else if (o->result_err == -EFBIG) {
		snprintf(reason, sizeof(reason),
			 "runner wrote an invalid result: the result file is larger than %d bytes",
			 RESULT_FILE_MAX);
	} else if (o->result_err < 0) {
		snprintf(reason, sizeof(reason), "could not read the runner's result: %s",
			 strerror(-o->result_err));
	} else {
		r = result_parse(o->result_text, o->result_len, &rr, msg, sizeof(msg));
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			snprintf(reason, sizeof(reason), "runner wrote an invalid result: %s", msg);
		else
			verdict_take(&tr, &rr, reason, sizeof(reason));
	}
	if (!tr.metrics_json[0])
		tr.metrics_json = "{}";
	if (!tr.env_json[0])
		tr.env_json = "{}";

	r = -ENOMEM;
	clean_reason = reason_clean(reason);
	if (!clean_reason)
		goto out;
	tr.reason = clean_reason;
	if (build_excerpt(o->output, rr.traceback, &excerpt) < 0)
		goto out;
	tr.log_excerpt = excerpt;
	r = result_dup(&tr, ret);
out:
	free(clean_reason);
	free(excerpt);
	runner_result_fini(&rr);
	return r;
}

/* The result of an assignment that never ran: status and reason alone. */
static int result_not_run(uint64_t task_id, uint32_t attempt, uint32_t device_index, double now,
			  Hf__TaskStatus status, const char *reason, bool infrastructure,
			  Hf__TaskResult **ret)
{
	struct run_outcome o = {
		.task_id = task_id,
		.attempt = attempt,
		.device_index = device_index,
		.started_at = now,
		.finished_at = now,
		.forced_status = status,
		.forced_reason = reason,
		.infrastructure = infrastructure,
	};
	return result_build(&o, ret);
}

int result_new_error(uint64_t task_id, uint32_t attempt, uint32_t device_index, double now,
		     const char *reason, Hf__TaskResult **ret)
{
	return result_not_run(task_id, attempt, device_index, now, HF__TASK_STATUS__STATUS_ERROR, reason,
			      true, ret);
}

int result_new_cancelled(uint64_t task_id, uint32_t attempt, uint32_t device_index, double now,
			 const char *reason, Hf__TaskResult **ret)
{
	return result_not_run(task_id, attempt, device_index, now, HF__TASK_STATUS__STATUS_CANCELLED,
			      reason, false, ret);
}
