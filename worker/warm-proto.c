/* SPDX-License-Identifier: MIT
 *
 * The warm runner protocol's lines and rules (see warm-proto.h).
 */
#include "warm-proto.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"
#include "result.h"

/* How much of a bad line an error message quotes. */
#define QUOTE_MAX 80

/* s as a JSON string on b, when it is ASCII (false, b untouched, when it
 * is not: jansson checks the UTF-8 of the others).  Escapes what JSON
 * needs escaped, so the line stays one line. */
static bool ascii_json_string(struct hf_buf *b, const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return false;
	hf_buf_json_string(b, s);
	return true;
}

/* The request line without jansson when the paths are ASCII (what they
 * are unless the state directory's name is not): 1 when they are not, for
 * the caller to take jansson's way.  task_json is the task object, or NULL
 * for the task's path. */
static int request_format_ascii(const char *task_json, const char *task_path,
				const char *result_path, char **ret_line, size_t *ret_len)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_buf_append(&b, "{\"task\":", 8);
	if (task_json)
		hf_buf_puts(&b, task_json);
	else if (!ascii_json_string(&b, task_path))
		goto not_ascii;
	hf_buf_append(&b, ",\"result\":", 10);
	if (!ascii_json_string(&b, result_path))
		goto not_ascii;
	hf_buf_puts(&b, ",\"result_inline\":true}\n");
	if (b.oom || !b.data) {
		hf_buf_fini(&b);
		return -ENOMEM;
	}
	*ret_line = b.data;
	if (ret_len)
		*ret_len = b.len;
	return 0;
not_ascii:
	hf_buf_fini(&b);
	return 1;
}

int warm_request_format(const char *task_path, const char *result_path, char **ret_line,
			size_t *ret_len)
{
	json_t *o;
	char *text = NULL, *line;
	size_t n;
	int r = request_format_ascii(NULL, task_path, result_path, ret_line, ret_len);

	if (r <= 0)
		return r;
	o = json_object();
	if (!o || json_object_set_new(o, "task", json_string(task_path)) < 0 ||
	    json_object_set_new(o, "result", json_string(result_path)) < 0 ||
	    json_object_set_new(o, "result_inline", json_true()) < 0)
		goto oom;
	/* Compact: a single line whatever the paths hold (jansson escapes
	 * control characters). */
	text = json_dumps(o, JSON_COMPACT);
	if (!text)
		goto oom;
	n = strlen(text);
	line = malloc(n + 2);
	if (!line)
		goto oom;
	memcpy(line, text, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	free(text);
	json_decref(o);
	*ret_line = line;
	if (ret_len)
		*ret_len = n + 1;
	return 0;
oom:
	free(text);
	json_decref(o);
	return -ENOMEM;
}

int warm_request_format_inline(const char *task_json, const char *result_path, char **ret_line,
			       size_t *ret_len)
{
	json_t *o;
	char *text = NULL, *line;
	size_t n, t;
	int r = request_format_ascii(task_json, NULL, result_path, ret_line, ret_len);

	if (r <= 0)
		return r;
	r = -ENOMEM;
	o = json_object();
	if (!o || json_object_set_new(o, "result", json_string(result_path)) < 0 ||
	    json_object_set_new(o, "result_inline", json_true()) < 0)
		goto out;
	text = json_dumps(o, JSON_COMPACT); /* {"result":"...","result_inline":true} */
	if (!text)
		goto out;
	/* {"task":<task_json>,"result":"..."} and a newline: the task object
	 * is the worker's own compact JSON, one line. */
	n = strlen(text);
	t = strlen(task_json);
	line = malloc(8 + t + n + 2);
	if (!line)
		goto out;
	memcpy(line, "{\"task\":", 8);
	memcpy(line + 8, task_json, t);
	line[8 + t] = ',';
	memcpy(line + 9 + t, text + 1, n - 1);  /* "result":"...",...} */
	line[8 + t + n] = '\n';
	line[9 + t + n] = '\0';
	*ret_line = line;
	if (ret_len)
		*ret_len = 9 + t + n;
	r = 0;
out:
	free(text);
	json_decref(o);
	return r;
}

/* Copies text as one line of valid UTF-8, cut to fit. */
static void text_copy_line(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	/* Every byte, not up to the first NUL: what follows one must not reach
	 * the log raw either. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = ' ';
	/* A cut in the middle of a character leaves a partial sequence, which
	 * sanitising turns into '?'. */
	result_text_sanitize(dst, len);
}

static void quote_line(char *buf, size_t size, const char *line, size_t len)
{
	char q[QUOTE_MAX + 1];
	bool cut = len > QUOTE_MAX;

	text_copy_line(q, sizeof(q), line, cut ? QUOTE_MAX : len);
	snprintf(buf, size, "\"%s%s\"", q, cut ? "..." : "");
}

static int bad(char *err, size_t errlen, const char *line, size_t len, const char *what)
{
	char q[QUOTE_MAX + 8];

	quote_line(q, sizeof(q), line, len);
	snprintf(err, errlen, "%s: %s", what, q);
	return -EBADMSG;
}

int warm_control_parse(const char *line, size_t len, struct warm_control *ret, char *err,
		       size_t errlen)
{
	struct warm_control c;
	json_error_t jerr;
	json_t *root, *v;
	int r = -EBADMSG;

	memset(&c, 0, sizeof(c));
	if (len > WARM_CONTROL_LINE_MAX)
		return bad(err, errlen, line, len, "control line is too long");
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return bad(err, errlen, line, len, "control line is not JSON");
	if (!json_is_object(root)) {
		bad(err, errlen, line, len, "control line is not a JSON object");
		goto out;
	}

	if ((v = json_object_get(root, "error"))) {
		if (json_object_get(root, "done")) {
			bad(err, errlen, line, len, "control line has both \"done\" and \"error\"");
			goto out;
		}
		if (!json_is_string(v)) {
			bad(err, errlen, line, len, "\"error\" of a control line must be a string");
			goto out;
		}
		c.kind = WARM_CONTROL_ERROR;
		text_copy_line(c.text, sizeof(c.text), json_string_value(v), json_string_length(v));
		r = 0;
		goto out;
	}

	v = json_object_get(root, "done");
	if (!v) {
		bad(err, errlen, line, len, "control line has neither \"done\" nor \"error\"");
		goto out;
	}
	c.kind = WARM_CONTROL_DONE;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		c.has_task_id = true;
		c.task_id = (uint64_t)json_integer_value(v);
	} else if (!json_is_null(v)) {
		bad(err, errlen, line, len, "\"done\" must be a task id or null");
		goto out;
	}
	v = json_object_get(root, "fatal");
	if (v && !json_is_boolean(v)) {
		bad(err, errlen, line, len, "\"fatal\" must be true or false");
		goto out;
	}
	c.fatal = v && json_is_true(v);
	v = json_object_get(root, "device_fault");
	if (v && !json_is_boolean(v)) {
		bad(err, errlen, line, len, "\"device_fault\" must be true or false");
		goto out;
	}
	c.device_fault = c.fatal && (!v || json_is_true(v));
	v = json_object_get(root, "rss_bytes");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			bad(err, errlen, line, len, "\"rss_bytes\" must be a number of bytes");
			goto out;
		}
		c.has_rss = true;
		c.rss_bytes = (uint64_t)json_integer_value(v);
	}
	v = json_object_get(root, "task_inline");
	if (v && !json_is_boolean(v)) {
		bad(err, errlen, line, len, "\"task_inline\" must be true or false");
		goto out;
	}
	c.task_inline = v && json_is_true(v);
	v = json_object_get(root, "result");
	if (v && !json_is_object(v)) {
		bad(err, errlen, line, len, "\"result\" of a done line must be an object");
		goto out;
	}
	v = json_object_get(root, "reason");
	if (v && json_is_string(v))
		text_copy_line(c.text, sizeof(c.text), json_string_value(v), json_string_length(v));
	/* The result object is kept as parsed: result_parse_json checks it as
	 * it checks a result file, without reading its text again. */
	c.result = json_incref(json_object_get(root, "result"));
	r = 0;
out:
	json_decref(root);
	if (r == 0)
		*ret = c;
	return r;
}

void warm_control_fini(struct warm_control *c)
{
	json_decref(c->result);
	c->result = NULL;
}

/* A decimal number of at most 19 digits at *p, which moves past it. */
static bool statm_number(const char **p, uint64_t *ret)
{
	uint64_t v = 0;
	int digits = 0;

	while (**p >= '0' && **p <= '9') {
		if (++digits > 19)
			return false;
		v = v * 10 + (uint64_t)(**p - '0');
		(*p)++;
	}
	*ret = v;
	return digits > 0;
}

int warm_statm_parse(const char *statm, uint64_t page_size, uint64_t *ret_bytes)
{
	const char *p = statm;
	uint64_t size, resident;

	if (!statm_number(&p, &size) || *p++ != ' ' || !statm_number(&p, &resident) ||
	    (*p != ' ' && *p != '\n' && *p != '\0'))
		return -EBADMSG;
	if (page_size == 0 || resident > UINT64_MAX / page_size)
		return -EBADMSG;
	*ret_bytes = resident * page_size;
	return 0;
}

static void bytes_format(uint64_t b, char *buf, size_t len)
{
	if (b >= (UINT64_C(1) << 30))
		snprintf(buf, len, "%.1f GiB", (double)b / (double)(UINT64_C(1) << 30));
	else
		snprintf(buf, len, "%.1f MiB", (double)b / (double)(UINT64_C(1) << 20));
}

bool warm_retire_reason(const struct warm_limits *lim, unsigned served, uint64_t rss,
			const struct warm_control *done, char *why, size_t len)
{
	char have[32], limit[32];

	if (done && done->fatal) {
		snprintf(why, len, "it reported a fatal device error%s%s", done->text[0] ? ": " : "",
			 done->text);
		return true;
	}
	if (lim->max_rss && rss > lim->max_rss) {
		bytes_format(rss, have, sizeof(have));
		bytes_format(lim->max_rss, limit, sizeof(limit));
		snprintf(why, len, "its resident memory, %s, exceeds runner.warm_max_rss (%s)", have,
			 limit);
		return true;
	}
	if (lim->max_tasks && served >= lim->max_tasks) {
		snprintf(why, len, "it served %u tasks (runner.warm_max_tasks)", served);
		return true;
	}
	return false;
}
