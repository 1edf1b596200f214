/* SPDX-License-Identifier: MIT
 *
 * Health checks of the executor (see executor.h, executor_check_start): a
 * fresh "<runner> --health" process on one device, run as a task that is
 * not counted as one, and its outcome read from the runner's health result
 * file.  Runs on the loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device-env.h"
#include "executor-internal.h"
#include "hf_log.h"
#include "hf_util.h"
#include "result.h"

/* The outcome of a health check from its result file, or why it failed. */
static void check_outcome(struct task *t, struct executor_check *c)
{
	char *text = NULL, *tail = NULL;
	size_t len = 0, tail_len = 0;
	json_error_t jerr;
	json_t *j = NULL, *ok, *detail;
	int r;

	if (t->forced_status != HF__TASK_STATUS__STATUS_UNSPECIFIED) {
		hf_strlcpy(c->detail, t->forced_reason ? t->forced_reason : "stopped by the worker",
			   sizeof(c->detail));
		return;
	}
	r = t->spawned ? hf_read_file(t->result_path, RESULT_FILE_MAX, &text, &len) : -ENOENT;
	if (r == -ENOENT) {
		/* Its last line of output usually says why. */
		if (tail_buf_last(&t->output, 300, &tail, &tail_len) == 0) {
			while (tail_len > 0 && (tail[tail_len - 1] == '\n' || tail[tail_len - 1] == ' '))
				tail[--tail_len] = '\0';
			char *nl = strrchr(tail, '\n');
			memmove(tail, nl ? nl + 1 : tail, strlen(nl ? nl + 1 : tail) + 1);
			result_text_sanitize(tail, strlen(tail));
		}
		if (t->term_signal)
			snprintf(c->detail, sizeof(c->detail), "runner was killed by signal %d without a result%s%s",
				 t->term_signal, tail && *tail ? ": " : "", tail ? tail : "");
		else
			snprintf(c->detail, sizeof(c->detail),
				 "runner exited with status %lld without writing a result%s%s",
				 (long long)t->exit_status, tail && *tail ? ": " : "", tail ? tail : "");
		goto out;
	}
	if (r < 0) {
		snprintf(c->detail, sizeof(c->detail), "could not read the runner's health result: %s",
			 strerror(-r));
		goto out;
	}
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	ok = j ? json_object_get(j, "ok") : NULL;
	detail = j ? json_object_get(j, "detail") : NULL;
	if (!j || !json_is_object(j) || !json_is_boolean(ok)) {
		snprintf(c->detail, sizeof(c->detail),
			 "runner wrote an invalid health result: %s", !j ? jerr.text : "\"ok\" must be true or false");
		goto out;
	}
	c->ok = json_is_true(ok);
	hf_strlcpy(c->detail, json_is_string(detail) ? json_string_value(detail) : "", sizeof(c->detail));
	for (char *p = c->detail; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	result_text_sanitize(c->detail, strlen(c->detail));
out:
	json_decref(j);
	free(text);
	free(tail);
}

void check_finish(struct task *t)
{
	struct executor *ex = t->ex;
	struct executor_check c = {
		.backend = t->backend,
		.index = t->device_index,
		.finished_at = t->finished_at ? t->finished_at : hf_wall_s(),
	};

	t->reported = true;
	uv_timer_stop(&t->timer);
	c.duration_s = c.finished_at - t->started_at;
	check_outcome(t, &c);
	if (c.ok)
		log_info("health check of %s:%" PRIu32 " passed in %.1f s: %s", hf_backend_name(c.backend),
			 c.index, c.duration_s, c.detail);
	else
		log_warn("health check of %s:%" PRIu32 " failed in %.1f s: %s", hf_backend_name(c.backend),
			 c.index, c.duration_s, c.detail);
	executor_check_cb cb = t->check_cb;
	void *arg = t->check_arg;
	task_close(t);
	cb(ex, &c, arg);
}

bool executor_checking(const struct executor *ex, Hf__Backend backend, uint32_t index)
{
	for (const struct task *t = ex->checks; t; t = t->next)
		if (task_uses(t, backend, index))
			return true;
	return false;
}

int executor_check_start(struct executor *ex, const struct hw_device *dev, Hf__Backend backend,
			 uint32_t index, int64_t timeout_ms, executor_check_cb cb, void *arg)
{
	const struct hw_device *devs[1] = { dev };
	char reason[512];
	struct task *t;
	int r;

	if (ex->closing)
		return -ESHUTDOWN;
	if (executor_checking(ex, backend, index))
		return -EBUSY;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ex = ex;
	t->check = true;
	t->check_cb = cb;
	t->check_arg = arg;
	t->backend = backend;
	t->kind = HF__TASK_KIND__KIND_BENCHMARK;
	t->device_index = index;
	t->devices[0] = index;
	t->n_devices = 1;
	t->timeout_ms = timeout_ms;
	t->started_at = hf_wall_s();
	if (path_join(&t->dir, "%s/health", ex->state_dir) < 0 ||
	    path_join(&t->result_path, "%s/%s-%" PRIu32 ".json", t->dir, hf_backend_name(backend), index) < 0 ||
	    tail_buf_init(&t->output, ex->output_limit) < 0 ||
	    devenv_build(backend, t->devices, dev ? devs : NULL, 1, &t->devenv) < 0) {
		tail_buf_fini(&t->output);
		devenv_fini(&t->devenv);
		free(t->dir);
		free(t->result_path);
		free(t);
		return -ENOMEM;
	}
	uv_timer_init(ex->loop, &t->timer);
	t->timer.data = t;
	ex->n_alive++;
	t->next = ex->checks;
	if (ex->checks)
		ex->checks->prev = t;
	ex->checks = t;

	r = hf_mkdir_p(t->dir, 0700);
	if (r == 0 && unlink(t->result_path) < 0 && errno != ENOENT)
		r = -errno;
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not prepare \"%s\": %s", t->result_path, strerror(-r));
		task_fail_start(t, reason);
		return 0;
	}
	r = task_spawn(t);
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not start runner \"%s\": %s", ex->argv[0],
			 strerror(-r));
		task_fail_start(t, reason);
		return 0;
	}
	log_info("health check of %s:%" PRIu32 " started: pid %d, time limit %lld s", hf_backend_name(backend),
		 index, task_pid(t), (long long)((timeout_ms + 999) / 1000));
	uv_timer_start(&t->timer, task_timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}
