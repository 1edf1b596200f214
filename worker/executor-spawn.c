/* SPDX-License-Identifier: MIT
 *
 * How the executor starts a runner (see executor.h): its argv and
 * environment (the worker's, less ours, plus the task's files or control
 * descriptor and its device variables), the spawn of a cold runner in a
 * process group and containment group of its own with one pipe for its
 * output, and the hand-off of a task of one device to a warm runner.  Runs
 * on the loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contain.h"
#include "device-env.h"
#include "executor-internal.h"
#include "hf_log.h"
#include "hf_util.h"
#include "warm-pool.h"

extern char **environ;

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
 * task's files for a cold runner (t), the control descriptor for a warm one
 * (t NULL: it serves many tasks), and the device variables.  The inherited
 * entries are borrowed; ours (from *ret_first_owned on) are malloc'd. */
static int runner_build_env(const struct task *t, const struct devenv *de, char ***ret_env,
			    size_t *ret_first_owned)
{
	size_t n_env = 0, n = 0, first_owned;
	char **env;
	int r = 0;

	while (environ && environ[n_env])
		n_env++;
	env = calloc(n_env + 3 + de->n, sizeof(*env));
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
	if (!t) {
		ADD("HFLEET_CONTROL_FD=3");
	} else if (t->check) {
		ADD("HFLEET_RESULT_FILE=%s", t->result_path);
	} else {
		ADD("HFLEET_TASK_FILE=%s", t->task_path);
		ADD("HFLEET_RESULT_FILE=%s", t->result_path);
	}
	for (size_t i = 0; i < de->n; i++)
		ADD("%s", de->vars[i]);
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
int task_spawn(struct task *t)
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
	r = runner_build_env(t, &t->devenv, &env, &first_owned);
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

/* Which warm runners may serve a task: those started for the same
 * backend and exactly the same device variables. */
static int warm_key(Hf__Backend backend, const struct devenv *de, char **ret)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_buf_puts(&b, hf_backend_name(backend));
	for (size_t i = 0; i < de->n; i++) {
		hf_buf_puts(&b, "\n");
		hf_buf_puts(&b, de->vars[i]);
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
int task_start_warm(struct task *t, const char *where, struct task_text *x)
{
	struct executor *ex = t->ex;
	char **env = NULL, *key = NULL;
	const char *line = NULL;
	size_t first_owned = 0;
	int r;

	r = warm_key(t->backend, &t->devenv, &key);
	if (r < 0)
		return r;
	/* The environment is a new runner's: an idle one has its own. */
	if (!warm_pool_has_idle(ex->pool, key)) {
		r = runner_build_env(NULL, &t->devenv, &env, &first_owned);
		if (r < 0)
			goto out;
	}
	/* A runner that takes its task in the request line needs no file. */
	if (warm_pool_takes_inline(ex->pool, key)) {
		line = task_text_compact(x); /* one line */
		if (!line)
			r = -ENOMEM;
	} else
		r = task_file_write(t, x);
	if (r < 0)
		goto out;
	r = warm_pool_submit(ex->pool, key, env, where, t->task_id, t->task_path, line,
			     t->result_path, &t->output, t, &t->warm);
	if (r < 0)
		goto out;
	t->spawned = true;
out:
	free(key);
	env_free(env, first_owned);
	return r;
}

/* The reserve of one device: its slots' worth of warm runners, with the
 * key and environment a task of that device alone gets (executor_start:
 * devenv_build of the one device). */
static int device_prewarm(struct executor *ex, const struct hw_device *d)
{
	struct devenv de;
	char **env = NULL, *key = NULL, where[64];
	size_t first_owned = 0;
	int r;

	r = devenv_build(d->backend, &d->index, &d, 1, &de);
	if (r == 0)
		r = warm_key(d->backend, &de, &key);
	if (r == 0)
		r = runner_build_env(NULL, &de, &env, &first_owned);
	snprintf(where, sizeof(where), "%s:%u", hf_backend_name(d->backend), d->index);
	if (r == 0)
		r = warm_pool_reserve(ex->pool, key, env, where, d->slots ? d->slots : 1);
	devenv_fini(&de);
	free(key);
	env_free(env, first_owned);
	return r;
}

void executor_prewarm_stop(struct executor *ex)
{
	if (!ex->pool || ex->closing)
		return;
	warm_pool_reserve_begin(ex->pool);
	warm_pool_reserve_end(ex->pool, "the worker drains");
}

int executor_prewarm(struct executor *ex, const struct hw_inventory *inv)
{
	unsigned runners = 0;
	size_t devices = 0;

	if (!ex->pool || ex->closing)
		return 0;
	warm_pool_reserve_begin(ex->pool);
	for (size_t i = 0; i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		int r = device_prewarm(ex, d);

		if (r < 0) {
			log_warn("could not keep warm runners ready for %s:%u: %s; its tasks start "
				 "theirs",
				 hf_backend_name(d->backend), d->index, strerror(-r));
			continue;
		}
		runners += d->slots ? d->slots : 1;
		devices++;
	}
	warm_pool_reserve_end(ex->pool, "its device is gone (runner.prewarm)");
	if (devices)
		log_info("starting %u warm runner%s ahead of tasks for %zu device%s (runner.prewarm)",
			 runners, runners == 1 ? "" : "s", devices, devices == 1 ? "" : "s");
	return 0;
}
