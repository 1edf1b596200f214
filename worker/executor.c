/* SPDX-License-Identifier: MIT
 *
 * Spawning and supervising runner processes (see executor.h).  Each task
 * owns one timer that serves, in turn, as the time limit, the
 * SIGTERM-to-SIGKILL grace and the bound on waiting for the output pipe
 * after exit; a task with a runner of its own (cold) also owns the process
 * and the read end of its output pipe.  A task's memory is released only
 * when its handles are closed.  A task on a warm runner borrows the runner
 * (warm-pool.c) until the pool reports its end.
 */
#include "executor.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "contain.h"
#include "device-env.h"
#include "hf_log.h"
#include "hf_util.h"
#include "result.h"
#include "warm-pool.h"

extern char **environ;

/* After the runner exited, how long its output pipe may stay open (held by
 * a process that left its process group) before the worker stops reading. */
#define OUTPUT_DRAIN_MS 2000
#define READ_CHUNK (64 * 1024)

enum task_phase {
	PHASE_RUNNING,
	PHASE_TERMINATING, /* SIGTERM sent, SIGKILL when the timer fires */
	PHASE_KILLED,
};

struct task {
	struct executor *ex;
	struct task *prev, *next;     /* ex->running, while it counts as running */

	uint64_t task_id;
	uint32_t attempt;
	Hf__Backend backend;
	Hf__TaskKind kind;
	uint32_t device_index;           /* the first of devices */
	uint32_t devices[DEVENV_MAX_DEVICES];
	size_t n_devices;
	struct devenv devenv;            /* how the runner is given them */
	char *model_type;
	char *dir, *task_path, *result_path;
	int64_t timeout_ms;
	double started_at, finished_at;

	struct contain_group *group;     /* its runner's processes (cold) */
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t timer;
	bool proc_init, out_init;
	int open_handles;

	struct warm_runner *warm;        /* the warm runner serving it, until its end */
	bool warm_done;                  /* the warm runner said it is done */

	enum task_phase phase;
	bool spawned, exited, out_eof, reported;
	int64_t exit_status;
	int term_signal;
	Hf__TaskStatus forced_status;
	char *forced_reason;
	bool infrastructure;   /* the worker or the runner process failed, not the model */
	struct tail_buf output;

	bool check;                      /* a health check, not a task (ex->checks) */
	executor_check_cb check_cb;
	void *check_arg;
};

struct executor {
	uv_loop_t *loop;
	char **argv;
	size_t argc;
	char *state_dir;
	int64_t default_timeout_ms;
	int64_t kill_grace_ms;
	size_t output_limit;
	executor_done_cb cb;
	void *arg;

	struct warm_pool *pool;      /* NULL: warm runners are off */
	struct contain *contain;     /* every process a runner starts dies with it */

	struct task *running;
	size_t n_running;
	struct task *checks;         /* health checks in progress */
	size_t n_alive;              /* tasks not yet freed, and the pool */
	bool closing;
	char read_buf[READ_CHUNK];   /* every read is consumed in its callback */
};

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
static void task_close(struct task *t)
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

static int task_pid(const struct task *t)
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
	if (t->spawned && o.forced_status == HF__TASK_STATUS__STATUS_UNSPECIFIED) {
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
	if (r < 0)
		log_error("could not build the result of task %" PRIu64 " attempt %" PRIu32
			  ": %s; its lease will expire",
			  t->task_id, t->attempt, strerror(-r));
	else
		log_info("task %" PRIu64 " attempt %" PRIu32 " (%s) finished: %s in %.1f s%s%s",
			 t->task_id, t->attempt, t->model_type, hf_status_name(res->status),
			 t->finished_at - t->started_at, res->reason[0] ? ": " : "", res->reason);

	task_close(t); /* no longer running when the callback sees it */
	if (res)
		ex->cb(ex, res, ex->arg);
}

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

static void check_finish(struct task *t)
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

static void task_timer_cb(uv_timer_t *h);

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

static void task_timer_cb(uv_timer_t *h)
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

static void task_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
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

static void task_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct task *t = h->data;

	(void)suggested;
	*buf = uv_buf_init(t->ex->read_buf, sizeof(t->ex->read_buf));
}

static void task_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
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

static struct task *executor_find(const struct executor *ex, uint64_t task_id, uint32_t attempt)
{
	for (struct task *t = ex->running; t; t = t->next)
		if (t->task_id == task_id && t->attempt == attempt)
			return t;
	return NULL;
}

static json_t *json_string_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *json_count_or_null(uint32_t v)
{
	return v ? json_integer(v) : json_null();
}

static json_t *json_device_list(const struct task *t)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < t->n_devices; i++) {
		if (json_array_append_new(list, json_integer(t->devices[i])) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* task.json.  Fields proto3 cannot tell from unset (empty strings, zero
 * counts) are written as null, so the runner applies its own default. */
static int task_write_json(const struct task *t, const Hf__Assignment *a)
{
	json_t *o = json_object();
	char *text = NULL;
	int r = -ENOMEM;

	if (!o)
		return -ENOMEM;
	if (json_object_set_new(o, "task_id", json_integer((json_int_t)a->task_id)) ||
	    json_object_set_new(o, "attempt", json_integer(a->attempt)) ||
	    json_object_set_new(o, "job_id", json_integer((json_int_t)a->job_id)) ||
	    json_object_set_new(o, "model_type", json_string_or_null(a->model_type)) ||
	    json_object_set_new(o, "hf_id", json_string_or_null(a->hf_id)) ||
	    json_object_set_new(o, "family", json_string_or_null(a->family)) ||
	    json_object_set_new(o, "task", json_string_or_null(a->task)) ||
	    json_object_set_new(o, "modality", json_string_or_null(a->modality)) ||
	    json_object_set_new(o, "kind",
				a->kind ? json_string(hf_kind_name(a->kind)) : json_null()) ||
	    json_object_set_new(o, "backend", json_string(hf_backend_name(a->backend))) ||
	    json_object_set_new(o, "device_index", json_integer(a->device_index)) ||
	    json_object_set_new(o, "device_indices", json_device_list(t)) ||
	    json_object_set_new(o, "batch_size", json_count_or_null(a->batch_size)) ||
	    json_object_set_new(o, "seq_len", json_count_or_null(a->seq_len)) ||
	    json_object_set_new(o, "precision", json_string_or_null(a->precision)) ||
	    json_object_set_new(o, "iterations", json_count_or_null(a->iterations)) ||
	    json_object_set_new(o, "warmup", json_integer(a->warmup)) ||
	    json_object_set_new(o, "timeout_s", json_integer((t->timeout_ms + 999) / 1000)))
		goto out;
	text = json_dumps(o, JSON_INDENT(1));
	if (!text)
		goto out;
	r = hf_write_file_durable(t->task_path, text, strlen(text));
out:
	free(text);
	json_decref(o);
	return r;
}

static int task_prepare_dir(const struct task *t, const Hf__Assignment *a)
{
	int r = hf_mkdir_p(t->dir, 0700);

	if (r < 0)
		return r;
	/* A result from an earlier run of this attempt must not be taken for
	 * this run's. */
	if (unlink(t->result_path) < 0 && errno != ENOENT)
		return -errno;
	return task_write_json(t, a);
}

static bool env_is_ours(const char *entry)
{
	return strncmp(entry, "HFLEET_TASK_FILE=", 17) == 0 ||
	       strncmp(entry, "HFLEET_RESULT_FILE=", 19) == 0 ||
	       strncmp(entry, "HFLEET_CONTROL_FD=", 18) == 0 || devenv_is_ours(entry);
}

static void env_free(char **env, size_t first_owned)
{
	for (size_t i = first_owned; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* The worker's environment without the variables set here, then ours: the
 * task's files for a cold runner, the control descriptor for a warm one
 * (which serves many tasks), and the device variables.  The inherited
 * entries are borrowed; ours (from *ret_first_owned on) are malloc'd. */
static int task_build_env(const struct task *t, bool warm, char ***ret_env,
			  size_t *ret_first_owned)
{
	size_t n_env = 0, n = 0, first_owned;
	char **env;
	int r = 0;

	while (environ && environ[n_env])
		n_env++;
	env = calloc(n_env + 3 + t->devenv.n, sizeof(*env));
	if (!env)
		return -ENOMEM;
	for (size_t i = 0; i < n_env; i++)
		if (!env_is_ours(environ[i]))
			env[n++] = environ[i];
	first_owned = n;

#define ADD(...)                                           \
	do {                                               \
		if (asprintf(&env[n], __VA_ARGS__) < 0) {  \
			env[n] = NULL;                     \
			r = -ENOMEM;                       \
			goto out;                          \
		}                                          \
		n++;                                       \
	} while (0)
	if (warm) {
		ADD("HFLEET_CONTROL_FD=3");
	} else if (t->check) {
		ADD("HFLEET_RESULT_FILE=%s", t->result_path);
	} else {
		ADD("HFLEET_TASK_FILE=%s", t->task_path);
		ADD("HFLEET_RESULT_FILE=%s", t->result_path);
	}
	for (size_t i = 0; i < t->devenv.n; i++)
		ADD("%s", t->devenv.vars[i]);
#undef ADD
out:
	if (r < 0) {
		env_free(env, first_owned);
		return r;
	}
	*ret_env = env;
	*ret_first_owned = first_owned;
	return 0;
}

/* argv (ex->argc words, room for 5 in all) grown to end in "--health
 * --backend B --result FILE"; NULL (argv freed) when out of memory. */
static char **realloc_argv_for_check(char **argv, size_t argc, const struct task *t)
{
	char **v = realloc(argv, (argc + 6) * sizeof(*v));

	if (!v) {
		free(argv);
		return NULL;
	}
	v[argc] = "--health";
	v[argc + 1] = "--backend";
	v[argc + 2] = (char *)hf_backend_name(t->backend);
	v[argc + 3] = "--result";
	v[argc + 4] = t->result_path;
	v[argc + 5] = NULL;
	return v;
}

/* The name of the task's process group in contain.h. */
static int task_group_name(const struct task *t, char *buf, size_t len)
{
	int n;

	if (t->check)
		n = snprintf(buf, len, "check-%s-%" PRIu32, hf_backend_name(t->backend),
			     t->device_index);
	else
		n = snprintf(buf, len, "task-%" PRIu64 "-%" PRIu32, t->task_id, t->attempt);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Spawns the runner; a negative errno (libuv's, as errno) on failure. */
static int task_spawn(struct task *t)
{
	struct executor *ex = t->ex;
	uv_process_options_t opts;
	uv_stdio_container_t stdio[3];
	char **argv = NULL, **env = NULL;
	size_t first_owned = 0;
	uv_file fds[2] = { -1, -1 };
	char name[64];
	int r;

	argv = calloc(ex->argc + 5, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	memcpy(argv, ex->argv, ex->argc * sizeof(*argv));
	if (t->check) {
		argv = realloc_argv_for_check(argv, ex->argc, t);
		if (!argv)
			return -ENOMEM;
	} else {
		argv[ex->argc] = "--task";
		argv[ex->argc + 1] = t->task_path;
		argv[ex->argc + 2] = "--result";
		argv[ex->argc + 3] = t->result_path;
	}
	r = task_build_env(t, false, &env, &first_owned);
	if (r < 0)
		goto out;

	/* One pipe for stdout and stderr keeps their lines in the order written. */
	r = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
	if (r < 0)
		goto out;
	r = uv_pipe_init(ex->loop, &t->out, 0);
	if (r < 0)
		goto out;
	t->out.data = t;
	t->out_init = true;
	r = uv_pipe_open(&t->out, fds[0]);
	if (r < 0)
		goto out;
	fds[0] = -1; /* the handle's now */

	memset(&opts, 0, sizeof(opts));
	stdio[0].flags = UV_IGNORE; /* /dev/null */
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = fds[1];
	stdio[2] = stdio[1];
	opts.file = argv[0];
	opts.args = argv;
	opts.env = env;
	opts.stdio = stdio;
	opts.stdio_count = 3;
	opts.flags = UV_PROCESS_DETACHED;
	opts.exit_cb = task_exit_cb;
	t->proc.data = t;
	r = task_group_name(t, name, sizeof(name));
	if (r == 0)
		r = contain_group_new(ex->contain, name, &t->group);
	if (r == 0)
		r = contain_spawn_enter(t->group);
	if (r < 0)
		goto out;
	r = uv_spawn(ex->loop, &t->proc, &opts);
	contain_spawn_leave(t->group, r == 0 ? t->proc.pid : 0);
	t->proc_init = true; /* initialised even when the spawn failed */
	if (r < 0)
		goto out;
	t->spawned = true;
	r = uv_read_start((uv_stream_t *)&t->out, task_alloc_cb, task_read_cb);
	if (r < 0) {
		log_warn("could not read the output of task %" PRIu64 ": %s, ignoring it",
			 t->task_id, uv_strerror(r));
		t->out_eof = true;
		r = 0;
	}
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]); /* the child has its copy */
	env_free(env, first_owned);
	free(argv);
	return r;
}

/* Which warm runners may serve the task: those started for the same
 * backend and exactly the same device variables. */
static int task_warm_key(const struct task *t, char **ret)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_buf_puts(&b, hf_backend_name(t->backend));
	for (size_t i = 0; i < t->devenv.n; i++) {
		hf_buf_puts(&b, "\n");
		hf_buf_puts(&b, t->devenv.vars[i]);
	}
	hf_buf_append(&b, "", 0);
	if (b.oom) {
		hf_buf_fini(&b);
		return -ENOMEM;
	}
	*ret = b.data;
	return 0;
}

/* Hands the task to a warm runner of its device; a negative errno when none
 * could be started. */
static int task_start_warm(struct task *t, const char *where)
{
	struct executor *ex = t->ex;
	char **env = NULL, *key = NULL;
	size_t first_owned = 0;
	int r;

	r = task_build_env(t, true, &env, &first_owned);
	if (r < 0)
		return r;
	r = task_warm_key(t, &key);
	if (r < 0)
		goto out;
	r = warm_pool_submit(ex->pool, key, env, where, t->task_id, t->task_path, t->result_path,
			     &t->output, t, &t->warm);
	if (r < 0)
		goto out;
	t->spawned = true;
out:
	free(key);
	env_free(env, first_owned);
	return r;
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
static void task_fail_start(struct task *t, const char *reason)
{
	char what[64];

	log_error("%s: %s", task_what(t, what, sizeof(what)), reason);
	task_force(t, HF__TASK_STATUS__STATUS_ERROR, reason);
	t->exited = true;
	t->finished_at = hf_wall_s();
	task_output_stop(t);
	uv_timer_start(&t->timer, task_timer_cb, 0, 0);
}

static int path_join(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_join(char **ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

int executor_start(struct executor *ex, const Hf__Assignment *a,
		   const struct hw_device *const *devs, size_t n_devs)
{
	size_t n = a->n_device_indices ? a->n_device_indices : 1;
	const char *indices;
	struct task *t;
	char reason[512], where[128];
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
	    path_join(&t->dir, "%s/tasks/%" PRIu64 "-%" PRIu32, ex->state_dir, a->task_id,
		      a->attempt) < 0 ||
	    path_join(&t->task_path, "%s/task.json", t->dir) < 0 ||
	    path_join(&t->result_path, "%s/result.json", t->dir) < 0 ||
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

	r = task_prepare_dir(t, a);
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not prepare task directory \"%s\": %s", t->dir,
			 strerror(-r));
		task_fail_start(t, reason);
		return 0;
	}
	indices = devenv_get(&t->devenv, "HFLEET_DEVICE_INDICES");
	snprintf(where, sizeof(where), "%s:%s", hf_backend_name(t->backend),
		 indices ? indices : "?");
	/* Several devices: a cold runner (a warm one is kept per device). */
	r = ex->pool && n == 1 ? task_start_warm(t, where) : task_spawn(t);
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not start runner \"%s\": %s", ex->argv[0],
			 strerror(-r));
		task_fail_start(t, reason);
		return 0;
	}
	log_info("task %" PRIu64 " attempt %" PRIu32 " started: %s %s on %s%s%s, %spid %d, time "
		 "limit %lld s",
		 t->task_id, t->attempt, t->model_type, hf_kind_name(a->kind), where,
		 a->precision && *a->precision ? " " : "", a->precision ? a->precision : "",
		 t->warm ? "warm runner " : "", task_pid(t),
		 (long long)((t->timeout_ms + 999) / 1000));
	uv_timer_start(&t->timer, task_timer_cb, (uint64_t)t->timeout_ms, 0);
	return 0;
}

/* ---- health checks ---- */

static bool task_uses(const struct task *t, Hf__Backend backend, uint32_t index);

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

static bool task_uses(const struct task *t, Hf__Backend backend, uint32_t index)
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

/* ---- task directories ---- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		log_warn("could not remove \"%s\": %s, ignoring", path, strerror(errno));
	return 0;
}

static int rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return -errno;
	return 0;
}

int executor_task_dir_remove(struct executor *ex, uint64_t task_id, uint32_t attempt)
{
	char *dir;
	int r;

	if (path_join(&dir, "%s/tasks/%" PRIu64 "-%" PRIu32, ex->state_dir, task_id, attempt) < 0)
		return -ENOMEM;
	r = rm_rf(dir);
	free(dir);
	return r;
}

int executor_task_dirs_clean(struct executor *ex)
{
	char *tasks;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (path_join(&tasks, "%s/tasks", ex->state_dir) < 0)
		return -ENOMEM;
	d = opendir(tasks);
	if (!d) {
		r = errno == ENOENT ? 0 : -errno;
		free(tasks);
		return r;
	}
	while ((de = readdir(d))) {
		unsigned long long task_id;
		unsigned attempt;
		char *path;

		if (de->d_name[0] == '.')
			continue;
		if (sscanf(de->d_name, "%llu-%u", &task_id, &attempt) == 2 &&
		    executor_find(ex, task_id, attempt))
			continue;
		if (path_join(&path, "%s/%s", tasks, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		log_debug("removing \"%s\", left over from an earlier run", path);
		rm_rf(path);
		free(path);
	}
	closedir(d);
	free(tasks);
	return r;
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
