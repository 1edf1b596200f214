/* SPDX-License-Identifier: MIT
 *
 * Running the runner's --probe and reading its answer (see
 * runtime-probe.h).  The probe gets a private libuv loop: it runs once at
 * start-up, before the worker's loop exists, and nothing else may happen
 * while it runs.
 */
#include "runtime-probe.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "hf_log.h"
#include "hf_util.h"
#include "result.h"

#define PROBE_STDOUT_MAX (1024 * 1024)
#define PROBE_STDERR_KEEP 4096
#define PROBE_DRAIN_MS 2000
#define RUNTIME_TEXT_MAX 256

/* ---- the list ---- */

/* A copy of s made one line of valid UTF-8, at most RUNTIME_TEXT_MAX bytes. */
static char *text_clean(const char *s)
{
	size_t len = strnlen(s ? s : "", RUNTIME_TEXT_MAX);
	char *c = strndup(s ? s : "", len);

	if (!c)
		return NULL;
	for (char *p = c; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	result_text_sanitize(c, len); /* also a character cut in two at the end */
	return c;
}

int runtime_list_add(struct runtime_list *l, const char *name, const char *version,
		     bool available, const char *detail)
{
	struct runtime *grown = realloc(l->items, (l->n + 1) * sizeof(*l->items));
	struct runtime *rt;

	if (!grown)
		return -ENOMEM;
	l->items = grown;
	rt = &l->items[l->n];
	rt->name = text_clean(name);
	rt->version = text_clean(version);
	rt->detail = text_clean(detail);
	rt->available = available;
	if (!rt->name || !rt->version || !rt->detail) {
		free(rt->name);
		free(rt->version);
		free(rt->detail);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

void runtime_list_fini(struct runtime_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].name);
		free(l->items[i].version);
		free(l->items[i].detail);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* ---- parsing ---- */

static const char *string_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static int runtime_from_json(struct runtime_list *l, const char *name, json_t *obj)
{
	const char *version = string_member(obj, "version");
	const char *reason = string_member(obj, "reason");
	const char *cuda = string_member(obj, "cuda");
	const char *hip = string_member(obj, "hip");
	json_t *avail = json_object_get(obj, "available");
	bool available = json_is_boolean(avail) ? json_is_true(avail) : version != NULL;
	char detail[RUNTIME_TEXT_MAX + 1];

	if (reason)
		snprintf(detail, sizeof(detail), "%s", reason);
	else if (cuda || hip)
		snprintf(detail, sizeof(detail), "%s%s%s%s%s", cuda ? "cuda " : "", cuda ? cuda : "",
			 cuda && hip ? ", " : "", hip ? "hip " : "", hip ? hip : "");
	else
		snprintf(detail, sizeof(detail), "%s",
			 string_member(obj, "executable") ? string_member(obj, "executable") : "");
	return runtime_list_add(l, name, version ? version : "", available, detail);
}

int runtime_probe_parse(const char *text, size_t len, struct runtime_list *ret, char *err,
			size_t errlen)
{
	struct runtime_list l = { 0 };
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int r = 0;

	root = json_loadb(text, len, 0, &jerr);
	if (!root) {
		snprintf(err, errlen, "not valid JSON: %s (line %d)", jerr.text, jerr.line);
		return -EBADMSG;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "not a JSON object");
		r = -EBADMSG;
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (!json_is_object(v))
			continue;
		r = runtime_from_json(&l, key, v);
		if (r < 0)
			goto oom;
	}
	/* A probe that failed half-way says why in a top-level "error". */
	v = json_object_get(root, "error");
	if (json_is_string(v)) {
		r = runtime_list_add(&l, "runner", "", false, json_string_value(v));
		if (r < 0)
			goto oom;
	}
	if (l.n == 0) {
		snprintf(err, errlen, "it names no runtime");
		r = -EBADMSG;
		goto out;
	}
	*ret = l;
	memset(&l, 0, sizeof(l));
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	runtime_list_fini(&l);
	json_decref(root);
	return r;
}

/* ---- running ---- */

struct probe {
	uv_loop_t loop;
	uv_process_t proc;
	uv_pipe_t out, err;
	uv_timer_t timer;
	bool spawned, exited, out_eof, err_eof, timed_out, closing;
	int64_t exit_status;
	int term_signal;
	struct hf_buf stdout_text;
	bool stdout_overflow;
	struct tail_buf stderr_tail;
	char read_buf[64 * 1024];
};

static void probe_close_all(struct probe *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_close((uv_handle_t *)&p->proc, NULL);
	uv_close((uv_handle_t *)&p->out, NULL);
	uv_close((uv_handle_t *)&p->err, NULL);
	uv_close((uv_handle_t *)&p->timer, NULL);
}

static void probe_maybe_done(struct probe *p)
{
	if (p->exited && p->out_eof && p->err_eof)
		probe_close_all(p);
}

static void probe_stop_reading(struct probe *p)
{
	if (!p->out_eof)
		uv_read_stop((uv_stream_t *)&p->out);
	if (!p->err_eof)
		uv_read_stop((uv_stream_t *)&p->err);
	p->out_eof = p->err_eof = true;
}

static void probe_timer_cb(uv_timer_t *h)
{
	struct probe *p = h->data;

	if (p->exited) { /* a process it left behind keeps the pipes open */
		probe_stop_reading(p);
		probe_maybe_done(p);
		return;
	}
	p->timed_out = true;
	kill(-p->proc.pid, SIGKILL);
}

static void probe_exit_cb(uv_process_t *proc, int64_t exit_status, int term_signal)
{
	struct probe *p = proc->data;

	p->exited = true;
	p->exit_status = exit_status;
	p->term_signal = term_signal;
	kill(-proc->pid, SIGKILL); /* whatever it left behind */
	uv_timer_start(&p->timer, probe_timer_cb, PROBE_DRAIN_MS, 0);
	probe_maybe_done(p);
}

static void probe_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct probe *p = h->data;

	(void)suggested;
	*buf = uv_buf_init(p->read_buf, sizeof(p->read_buf));
}

static void probe_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct probe *p = s->data;
	bool is_out = s == (uv_stream_t *)&p->out;

	if (nread > 0) {
		if (!is_out) {
			tail_buf_append(&p->stderr_tail, buf->base, (size_t)nread);
		} else if (p->stdout_text.len + (size_t)nread > PROBE_STDOUT_MAX) {
			p->stdout_overflow = true;
		} else {
			hf_buf_append(&p->stdout_text, buf->base, (size_t)nread);
		}
		return;
	}
	if (nread == 0)
		return;
	uv_read_stop(s);
	if (is_out)
		p->out_eof = true;
	else
		p->err_eof = true;
	probe_maybe_done(p);
}

/* The last non-empty line the probe wrote on stderr, cleaned up. */
static void probe_stderr_line(const struct probe *p, char *buf, size_t len)
{
	char *tail = NULL;
	size_t n = 0;

	buf[0] = '\0';
	if (tail_buf_last(&p->stderr_tail, PROBE_STDERR_KEEP, &tail, &n) < 0)
		return;
	result_text_sanitize(tail, n);
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r' || tail[n - 1] == ' '))
		tail[--n] = '\0';
	char *line = strrchr(tail, '\n');
	snprintf(buf, len, "%s", line ? line + 1 : tail);
	free(tail);
}

static int probe_failed(struct runtime_list *ret, const char *reason)
{
	log_warn("runtime probe failed: %s", reason);
	return runtime_list_add(ret, "runner", "", false, reason);
}

int runtime_probe_run(char *const *argv, int64_t timeout_ms, struct runtime_list *ret)
{
	struct probe *p;
	uv_process_options_t opts;
	uv_stdio_container_t stdio[3];
	char **args = NULL;
	size_t argc = 0;
	char reason[512], line[256], err[256];
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	while (argv[argc])
		argc++;
	args = calloc(argc + 2, sizeof(*args));
	if (!args || tail_buf_init(&p->stderr_tail, PROBE_STDERR_KEEP) < 0) {
		free(args);
		free(p);
		return -ENOMEM;
	}
	memcpy(args, argv, argc * sizeof(*args));
	args[argc] = "--probe";
	hf_buf_init(&p->stdout_text);

	uv_loop_init(&p->loop);
	uv_pipe_init(&p->loop, &p->out, 0);
	uv_pipe_init(&p->loop, &p->err, 0);
	uv_timer_init(&p->loop, &p->timer);
	p->out.data = p->err.data = p->timer.data = p->proc.data = p;

	memset(&opts, 0, sizeof(opts));
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&p->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&p->err;
	opts.file = args[0];
	opts.args = args;
	opts.stdio = stdio;
	opts.stdio_count = 3;
	opts.flags = UV_PROCESS_DETACHED; /* a group of its own, killed as one */
	opts.exit_cb = probe_exit_cb;

	r = uv_spawn(&p->loop, &p->proc, &opts);
	if (r == 0) {
		p->spawned = true;
		uv_read_start((uv_stream_t *)&p->out, probe_alloc_cb, probe_read_cb);
		uv_read_start((uv_stream_t *)&p->err, probe_alloc_cb, probe_read_cb);
		uv_timer_start(&p->timer, probe_timer_cb, (uint64_t)timeout_ms, 0);
	} else {
		snprintf(reason, sizeof(reason), "could not start \"%s\": %s", args[0], strerror(-r));
		probe_close_all(p);
	}
	uv_run(&p->loop, UV_RUN_DEFAULT);
	uv_loop_close(&p->loop);

	if (!p->spawned) {
		r = probe_failed(ret, reason);
		goto out;
	}
	probe_stderr_line(p, line, sizeof(line));
	if (p->timed_out) {
		snprintf(reason, sizeof(reason), "runner probe did not finish within %lld s",
			 (long long)((timeout_ms + 999) / 1000));
	} else if (p->term_signal) {
		snprintf(reason, sizeof(reason), "runner probe was killed by signal SIG%s%s%s",
			 sigabbrev_np(p->term_signal) ? sigabbrev_np(p->term_signal) : "?",
			 line[0] ? ": " : "", line);
	} else if (p->exit_status != 0) {
		snprintf(reason, sizeof(reason), "runner probe exited with status %lld%s%s",
			 (long long)p->exit_status, line[0] ? ": " : "", line);
	} else if (p->stdout_overflow || p->stdout_text.oom) {
		snprintf(reason, sizeof(reason), "runner probe wrote more than %d bytes", PROBE_STDOUT_MAX);
	} else if (runtime_probe_parse(p->stdout_text.data ? p->stdout_text.data : "",
				       p->stdout_text.len, ret, err, sizeof(err)) < 0) {
		snprintf(reason, sizeof(reason), "runner probe wrote an invalid answer: %s", err);
	} else {
		r = 0;
		goto out;
	}
	r = probe_failed(ret, reason);
out:
	hf_buf_fini(&p->stdout_text);
	tail_buf_fini(&p->stderr_tail);
	free(args);
	free(p);
	return r;
}
