/* SPDX-License-Identifier: MIT
 *
 * The executor and the life cycle of its tasks (see executor.h): starting
 * an attempt, its time limit, signals and stop, the end of its runner
 * process (or the warm runner's report), its output, the TaskResult built
 * from its end, the queries the session makes and closing.  How a runner is
 * started is executor-spawn.c's, the task directories executor-taskdir.c's,
 * health checks executor-check.c's; struct executor and struct task, which
 * they share, are in executor-internal.h.  Each task owns one timer that
 * serves, in turn, as the time limit, the SIGTERM-to-SIGKILL grace and the
 * bound on waiting for the output pipe after exit; a task with a runner of
 * its own (cold) also owns the process and the read end of its output
 * pipe.  A task's memory is released only when its handles are closed.  A
 * task on a warm runner borrows the runner (warm-pool.c) until the pool
 * reports its end.  Runs on the loop thread only.
 */
#include "executor.h"

#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contain.h"
#include "device-env.h"
#include "executor-internal.h"
#include "hf_log.h"
#include "hf_util.h"
#include "result.h"
#include "warm-pool.h"
#include "worker-metrics.h"

/* After the runner exited, how long its output pipe may stay open (held by
 * a process that left its process group) before the worker stops reading. */
#define OUTPUT_DRAIN_MS 2000

/* ---- life cycle of a task's memory ---- */

static void executor_free(struct executor *ex)
{
	for (size_t i = 0; ex->argv && i < ex->argc; i++)
		free(ex->argv[i]);
	free(ex->argv);
	free(ex->state_dir);
	contain_close(ex->contain); /* after the pool: warm runners exit gracefully first */
	free(ex);
}

static void task_free(struct task *t)
{
	struct executor *ex = t->ex;

	contain_group_free(t->group); /* what is left of it dies */
	tail_buf_fini(&t->output);
	devenv_fini(&t->devenv);
	free(t->model_type);
	free(t->dir);
	free(t->task_path);
	free(t->result_path);
	free(t->forced_reason);
	json_decref(t->result_json);
	free(t);
	ex->n_alive--;
	if (ex->closing && ex->n_alive == 0)
		executor_free(ex);
}

static void task_handle_closed_cb(uv_handle_t *h)
{
	struct task *t = h->data;

	if (--t->open_handles == 0)
		task_free(t);
}

static void task_unlink(struct task *t)
{
	struct executor *ex = t->ex;
	struct task **head = t->check ? &ex->checks : &ex->running;

	if (t->prev)
		t->prev->next = t->next;
	else if (*head == t)
		*head = t->next;
	else
		return; /* not linked */
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	if (!t->check)
		ex->n_running--;
}

/* "task 12 attempt 1" or "health check of cuda:0", for messages. */
static const char *task_what(const struct task *t, char *buf, size_t len)
{
	if (t->check)
		snprintf(buf, len, "health check of %s:%" PRIu32, hf_backend_name(t->backend),
			 t->device_index);
	else
		snprintf(buf, len, "task %" PRIu64 " attempt %" PRIu32, t->task_id, t->attempt);
	return buf;
}

/* Unlinks the task and closes its handles; it is freed when they are.  A
 * warm runner still serving it is killed. */
void task_close(struct task *t)
{
	if (t->warm) {
		warm_runner_abandon(t->warm);
		t->warm = NULL;
	}
	task_unlink(t);
	t->open_handles = 1 + t->out_init + t->proc_init;
	uv_close((uv_handle_t *)&t->timer, task_handle_closed_cb);
	if (t->out_init)
		uv_close((uv_handle_t *)&t->out, task_handle_closed_cb);
	if (t->proc_init)
		uv_close((uv_handle_t *)&t->proc, task_handle_closed_cb);
}

/* ---- signals ---- */

int task_pid(const struct task *t)
{
	if (t->warm)
		return warm_runner_pid(t->warm);
	return t->spawned ? t->proc.pid : 0; /* 0 for a task a warm runner served */
}

/* Signals everything the task's runner started: its process group, and
 * for SIGKILL every process contain.h finds of it (its cgroup, or what left
 * the group and was re-parented to the worker). */
static void task_signal(struct task *t, int sig)
{
	if (t->warm)
		warm_runner_signal(t->warm, sig);
	else if (t->group && t->spawned)
		contain_signal(t->group, sig);
}

static void task_force(struct task *t, Hf__TaskStatus status, const char *reason)
{
	if (t->forced_status != HF__TASK_STATUS__STATUS_UNSPECIFIED)
		return; /* the first decision stands */
	/* An error the worker decides (the runner crashed or broke the
	 * protocol, could not start, the worker stopped it) is the
	 * infrastructure's, and the coordinator may retry it; a timeout or a
	 * cancel is not. */
	t->infrastructure = status == HF__TASK_STATUS__STATUS_ERROR;
	t->forced_status = status;
	t->forced_reason = strdup(reason);
	if (!t->forced_reason)
		log_error("could not record why task %" PRIu64 " was stopped: out of memory",
			  t->task_id);
}

/* ---- finishing ---- */

static void task_finish(struct task *t)
{
	struct executor *ex = t->ex;
	struct run_outcome o = {
		.task_id = t->task_id,
		.attempt = t->attempt,
		.device_index = t->device_index,
		.started_at = t->started_at,
		.finished_at = t->finished_at,
		.spawned = t->spawned,
		.exit_status = (int)t->exit_status,
		.term_signal = t->term_signal,
		.forced_status = t->forced_status,
		.forced_reason = t->forced_reason ? t->forced_reason : "task stopped by the worker",
		.infrastructure = t->infrastructure,
		.result_err = -ENOENT,
		.output = &t->output,
	};
	Hf__TaskResult *res = NULL;
	char *text = NULL;
	int r;

	t->reported = true;
	uv_timer_stop(&t->timer);
	if (t->result_json && o.forced_status == HF__TASK_STATUS__STATUS_UNSPECIFIED) {
		/* In the done line: no file to read (nor to remove). */
		o.result_json = t->result_json;
		o.result_err = 0;
	} else if (t->spawned && o.forced_status == HF__TASK_STATUS__STATUS_UNSPECIFIED) {
		o.result_err = hf_read_file(t->result_path, RESULT_FILE_MAX, &text, &o.result_len);
		o.result_text = text;
		if (t->warm_done && o.result_err == -ENOENT) {
			/* It did not exit: "exited with status 0" would be wrong.
			 * Nor did it crash: the runner broke its contract, which
			 * says nothing of the device. */
			o.forced_status = HF__TASK_STATUS__STATUS_ERROR;
			o.forced_reason = "warm runner reported the task done without writing a result";
			o.infrastructure = false;
		}
	}
	r = result_build(&o, &res);
	free(text);
	/* Read: the result lives on in res.  A result that came in the done
	 * line left no file, and a task passed in the request line none
	 * either: nothing to remove (a stale file is removed before an attempt
	 * runs again, task_prepare, and at start). */
	if (!o.result_json || t->task_file)
		task_files_remove(t);
	if (r < 0)
		log_error("could not build the result of task %" PRIu64 " attempt %" PRIu32
			  ": %s; its lease will expire",
			  t->task_id, t->attempt, strerror(-r));
	else
		hf_log(hf_status_log_level(res->status),
		       "task %" PRIu64 " attempt %" PRIu32 " (%s) finished: %s in %.1f s%s%s",
		       t->task_id, t->attempt, t->model_type, hf_status_name(res->status),
		       t->finished_at - t->started_at, res->reason[0] ? ": " : "", res->reason);

	worker_metrics_task_finished(t->backend, t->device_index);
	task_close(t); /* no longer running when the callback sees it */
	if (res)
		ex->cb(ex, res, ex->arg);
}

static void task_maybe_finish(struct task *t)
{
	if (t->exited && t->out_eof && !t->reported) {
		if (t->check)
			check_finish(t);
		else
			task_finish(t);
	}
}

static void task_output_stop(struct task *t)
{
	if (t->out_eof)
		return;
	t->out_eof = true;
	if (t->out_init)
		uv_read_stop((uv_stream_t *)&t->out);
}

/* ---- callbacks ---- */

/* SIGTERM to the group now, SIGKILL after the grace; the outcome is status
 * with reason unless one was decided before. */
static void task_stop(struct task *t, Hf__TaskStatus status, const char *reason)
{
	if (t->exited || t->reported)
		return;
	task_force(t, status, reason);
	if (t->phase != PHASE_RUNNING)
		return; /* already being stopped */
	if (t->warm)
		warm_runner_condemn(t->warm); /* it serves no other task */
	task_signal(t, SIGTERM);
	t->phase = PHASE_TERMINATING;
	uv_timer_start(&t->timer, task_timer_cb, (uint64_t)t->ex->kill_grace_ms, 0);
}

void task_timer_cb(uv_timer_t *h)
{
	struct task *t = h->data;
	char reason[128], what[64];

	if (t->exited) {
		/* Not started, or its output pipe outlived it. */
		task_output_stop(t);
		task_maybe_finish(t);
		return;
	}
	switch (t->phase) {
	case PHASE_RUNNING:
		snprintf(reason, sizeof(reason), "runner did not finish within %lld s",
			 (long long)((t->timeout_ms + 999) / 1000));
		log_warn("%s: %s, stopping it", task_what(t, what, sizeof(what)), reason);
		task_stop(t, HF__TASK_STATUS__STATUS_TIMEOUT, reason);
		break;
	case PHASE_TERMINATING:
		log_warn("%s did not stop on SIGTERM, killing it", task_what(t, what, sizeof(what)));
		task_signal(t, SIGKILL);
		t->phase = PHASE_KILLED;
		break;
	case PHASE_KILLED:
		break;
	}
}

void task_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct task *t = p->data;

	t->exited = true;
	t->exit_status = exit_status;
	t->term_signal = term_signal;
	t->finished_at = hf_wall_s();
	contain_exited(t->group);
	task_signal(t, SIGKILL); /* whatever it left behind */
	if (!t->out_eof)
		uv_timer_start(&t->timer, task_timer_cb, OUTPUT_DRAIN_MS, 0);
	task_maybe_finish(t);
}

void task_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct task *t = h->data;

	(void)suggested;
	*buf = uv_buf_init(t->ex->read_buf, sizeof(t->ex->read_buf));
}

void task_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct task *t = s->data;

	if (nread > 0) {
		tail_buf_append(&t->output, buf->base, (size_t)nread);
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		log_warn("could not read the output of task %" PRIu64 ": %s, ignoring the rest",
			 t->task_id, uv_strerror((int)nread));
	task_output_stop(t);
	task_maybe_finish(t);
}

/* ---- starting ---- */

struct task *executor_find(const struct executor *ex, uint64_t task_id, uint32_t attempt)
{
	for (struct task *t = ex->running; t; t = t->next)
		if (t->task_id == task_id && t->attempt == attempt)
			return t;
	return NULL;
}


/* The warm runner serving t is done with it: it said so, it went away, or
 * it broke the protocol. */
static void task_warm_end_cb(void *task, const struct warm_end *end, void *arg)
{
	struct task *t = task;
	char reason[192], sig[32];
	const char *abbrev;

	(void)arg;
	t->warm = NULL; /* the pool has let go of it */
	t->exited = true;
	t->out_eof = true;
	t->finished_at = hf_wall_s();
	switch (end->kind) {
	case WARM_END_DONE:
		t->warm_done = true; /* a fatal error was logged as the runner's retirement */
		t->result_json = json_incref(end->result);
		/* A poisoned device is retried, preferably elsewhere, and counts
		 * towards its quarantine; a model that tripped a kernel assertion
		 * has its outcome: the error, once. */
		t->infrastructure = end->fatal && end->device_fault;
		break;
	case WARM_END_EXITED:
		t->exit_status = end->exit_status;
		t->term_signal = end->term_signal;
		abbrev = end->term_signal ? sigabbrev_np(end->term_signal) : NULL;
		if (abbrev)
			snprintf(sig, sizeof(sig), "SIG%s", abbrev);
		else
			snprintf(sig, sizeof(sig), "%d", end->term_signal);
		if (end->term_signal)
			snprintf(reason, sizeof(reason),
				 "warm runner was killed by signal %s while running the task, without "
				 "reporting a result",
				 sig);
		else
			snprintf(reason, sizeof(reason),
				 "warm runner exited with status %lld while running the task, without "
				 "reporting a result",
				 (long long)end->exit_status);
		if (t->forced_status == HF__TASK_STATUS__STATUS_UNSPECIFIED) {
			task_force(t, HF__TASK_STATUS__STATUS_ERROR, reason);
			/* Exiting 0 is no crash: leaving the task without a
			 * result is the runner's error, not the device's. */
			if (!end->term_signal && end->exit_status == 0)
				t->infrastructure = false;
		}
		break;
	case WARM_END_PROTOCOL:
		task_force(t, HF__TASK_STATUS__STATUS_ERROR, end->message);
		break;
	}
	task_finish(t);
}

/* The task could not be started: report it with reason, from the loop. */
void task_fail_start(struct task *t, const char *reason)
{
	char what[64];

	log_error("%s: %s", task_what(t, what, sizeof(what)), reason);
	task_force(t, HF__TASK_STATUS__STATUS_ERROR, reason);
	t->exited = true;
	t->finished_at = hf_wall_s();
	task_output_stop(t);
	uv_timer_start(&t->timer, task_timer_cb, 0, 0);
}


int executor_start(struct executor *ex, const Hf__Assignment *a,
		   const struct hw_device *const *devs, size_t n_devs)
{
	size_t n = a->n_device_indices ? a->n_device_indices : 1;
	const char *indices;
	struct task *t;
	char reason[512], where[128];
	struct task_text text = { 0 };
	int r;

	if (ex->closing)
		return -ESHUTDOWN;
	if (n > DEVENV_MAX_DEVICES || (devs && n_devs != n))
		return -EINVAL;
	if (executor_find(ex, a->task_id, a->attempt))
		return -EEXIST;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ex = ex;
	t->task_id = a->task_id;
	t->attempt = a->attempt;
	t->backend = a->backend;
	t->kind = a->kind;
	t->device_index = a->device_index;
	t->n_devices = n;
	if (a->n_device_indices)
		memcpy(t->devices, a->device_indices, n * sizeof(t->devices[0]));
	else
		t->devices[0] = a->device_index;
	t->timeout_ms = a->timeout_s ? (int64_t)a->timeout_s * 1000 : ex->default_timeout_ms;
	t->started_at = hf_wall_s();
	t->model_type = strdup(a->model_type ? a->model_type : "");
	if (!t->model_type ||
	    path_join(&t->dir, "%s/tasks", ex->state_dir) < 0 ||
	    path_join(&t->task_path, "%s/%" PRIu64 "-%" PRIu32 ".task.json", t->dir, a->task_id,
		      a->attempt) < 0 ||
	    path_join(&t->result_path, "%s/%" PRIu64 "-%" PRIu32 ".result.json", t->dir,
		      a->task_id, a->attempt) < 0 ||
	    tail_buf_init(&t->output, ex->output_limit) < 0 ||
	    devenv_build(t->backend, t->devices, devs, n, &t->devenv) < 0) {
		tail_buf_fini(&t->output);
		devenv_fini(&t->devenv);
		free(t->model_type);
		free(t->dir);
		free(t->task_path);
		free(t->result_path);
		free(t);
		return -ENOMEM;
	}
	uv_timer_init(ex->loop, &t->timer);
	t->timer.data = t;
	ex->n_alive++;
	t->next = ex->running;
	if (ex->running)
		ex->running->prev = t;
	ex->running = t;
	ex->n_running++;

	r = task_prepare(t, a, &text);
	if (r == 0 && !(ex->pool && n == 1))
		r = task_file_write(t, &text);
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not write the task file \"%s\": %s", t->task_path,
			 strerror(-r));
		task_text_fini(&text);
		task_fail_start(t, reason);
		return 0;
	}
	indices = devenv_get(&t->devenv, "HFLEET_DEVICE_INDICES");
	snprintf(where, sizeof(where), "%s:%s", hf_backend_name(t->backend),
		 indices ? indices : "?");
	/* Several devices: a cold runner (a warm one is kept per device). */
	r = ex->pool && n == 1 ? task_start_warm(t, where, &text) : task_spawn(t);
	task_text_fini(&text);
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not start runner \"%s\": %s", ex->argv[0],
			 strerror(-r));
		task_fail_start(t, reason);
		return 0;
	}
	bool moded = a->kind == HF__TASK_KIND__KIND_BENCHMARK && a->mode && *a->mode;
	/* At debug, as a passed task's end is (hf_status_log_level). */
	log_debug("task %" PRIu64 " attempt %" PRIu32 " started: %s %s on %s%s%s%s%s, %spid %d, time "
		  "limit %lld s",
		  t->task_id, t->attempt, t->model_type, hf_kind_name(a->kind), where,
		  a->precision && *a->precision ? " " : "", a->precision ? a->precision : "",
		  moded ? " " : "", moded ? a->mode : "",
		  t->warm ? "warm runner " : "", task_pid(t),
		  (long long)((t->timeout_ms + 999) / 1000));
	uv_timer_start(&t->timer, task_timer_cb, (uint64_t)t->timeout_ms, 0);
	return 0;
}

/* ---- control ---- */

bool executor_stop(struct executor *ex, uint64_t task_id, uint32_t attempt,
		   Hf__TaskStatus status, const char *reason)
{
	struct task *t = executor_find(ex, task_id, attempt);

	if (!t)
		return false;
	log_info("stopping task %" PRIu64 " attempt %" PRIu32 ": %s", task_id, attempt, reason);
	task_stop(t, status, reason);
	return true;
}

void executor_stop_all(struct executor *ex, Hf__TaskStatus status, const char *reason)
{
	for (struct task *t = ex->running; t; t = t->next)
		task_stop(t, status, reason);
}

bool executor_has(const struct executor *ex, uint64_t task_id, uint32_t attempt)
{
	return executor_find(ex, task_id, attempt) != NULL;
}

bool task_uses(const struct task *t, Hf__Backend backend, uint32_t index)
{
	if (t->backend != backend)
		return false;
	for (size_t i = 0; i < t->n_devices; i++)
		if (t->devices[i] == index)
			return true;
	return false;
}

unsigned executor_count(const struct executor *ex, Hf__Backend backend, uint32_t index)
{
	unsigned n = 0;

	for (const struct task *t = ex->running; t; t = t->next)
		n += task_uses(t, backend, index);
	return n;
}

void executor_device_use(const struct executor *ex, Hf__Backend backend, uint32_t index,
			 unsigned *ret_tasks, unsigned *ret_benchmarks)
{
	unsigned tasks = 0, benchmarks = 0;

	for (const struct task *t = ex->running; t; t = t->next) {
		if (!task_uses(t, backend, index))
			continue;
		tasks++;
		benchmarks += t->kind == HF__TASK_KIND__KIND_BENCHMARK;
	}
	/* A health check has the device to itself, like a benchmark. */
	for (const struct task *t = ex->checks; t; t = t->next) {
		if (!task_uses(t, backend, index))
			continue;
		tasks++;
		benchmarks++;
	}
	*ret_tasks = tasks;
	*ret_benchmarks = benchmarks;
}

size_t executor_size(const struct executor *ex)
{
	return ex->n_running;
}

const char *executor_containment(const struct executor *ex)
{
	return contain_mode_name(contain_mode(ex->contain));
}

size_t executor_warm_size(const struct executor *ex)
{
	return ex->pool ? warm_pool_size(ex->pool) : 0;
}

size_t executor_list(const struct executor *ex, struct executor_ref *refs, size_t max)
{
	size_t n = 0;

	for (const struct task *t = ex->running; t && n < max; t = t->next)
		refs[n++] = (struct executor_ref){ t->task_id, t->attempt };
	return n;
}

/* ---- executor ---- */

int executor_new(uv_loop_t *loop, const struct executor_config *cfg, executor_done_cb cb,
		 void *arg, struct executor **ret_ex)
{
	struct executor *ex;

	if (!cfg->argv || !cfg->argv[0] || cfg->output_limit == 0)
		return -EINVAL;
	ex = calloc(1, sizeof(*ex));
	if (!ex)
		return -ENOMEM;
	ex->loop = loop;
	ex->cb = cb;
	ex->arg = arg;
	ex->default_timeout_ms = cfg->default_timeout_ms;
	ex->kill_grace_ms = cfg->kill_grace_ms;
	ex->output_limit = cfg->output_limit;
	while (cfg->argv[ex->argc])
		ex->argc++;
	ex->argv = calloc(ex->argc + 1, sizeof(*ex->argv));
	ex->state_dir = strdup(cfg->state_dir);
	if (!ex->argv || !ex->state_dir)
		goto oom;
	for (size_t i = 0; i < ex->argc; i++) {
		ex->argv[i] = strdup(cfg->argv[i]);
		if (!ex->argv[i])
			goto oom;
	}
	if (contain_new(loop, &ex->contain) < 0)
		goto oom;
	if (cfg->warm) {
		struct warm_pool_config pc = {
			.contain = ex->contain,
			.argv = cfg->argv,
			.kill_grace_ms = cfg->kill_grace_ms,
			.idle_timeout_ms = cfg->warm_idle_timeout_ms,
			.limits = { .max_tasks = cfg->warm_max_tasks, .max_rss = cfg->warm_max_rss },
		};
		if (warm_pool_new(loop, &pc, task_warm_end_cb, ex, &ex->pool) < 0)
			goto oom;
		ex->n_alive++; /* until the pool is closed */
	}
	*ret_ex = ex;
	return 0;
oom:
	executor_free(ex);
	return -ENOMEM;
}

static void executor_pool_closed_cb(void *arg)
{
	struct executor *ex = arg;

	if (--ex->n_alive == 0)
		executor_free(ex);
}

void executor_close(struct executor *ex)
{
	if (!ex)
		return;
	ex->closing = true;
	while (ex->running) {
		struct task *t = ex->running;
		if (!t->exited)
			log_warn("killing task %" PRIu64 " attempt %" PRIu32 " (%s): worker stops now",
				 t->task_id, t->attempt, t->model_type);
		task_signal(t, SIGKILL);
		t->reported = true;
		task_close(t);
	}
	while (ex->checks) {
		struct task *t = ex->checks;
		task_signal(t, SIGKILL);
		t->reported = true;
		task_close(t);
	}
	if (ex->pool) {
		/* Idle warm runners are asked to exit, and killed after the
		 * grace; the loop runs until they are gone. */
		if (warm_pool_close(ex->pool, executor_pool_closed_cb, ex))
			ex->n_alive--;
		ex->pool = NULL;
	}
	if (ex->n_alive == 0)
		executor_free(ex);
}
