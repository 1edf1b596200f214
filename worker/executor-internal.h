/* SPDX-License-Identifier: MIT
 *
 * What the files of the task executor share, and nothing outside them may
 * include: struct executor, struct task (a task or a health check), and the
 * functions that one file of the executor calls in another.  executor.c
 * owns the executor and its tasks' life cycle (start, signals, stop, the
 * process's end, output, the result, close); executor-spawn.c how a runner
 * is started (its argv and environment, the cold spawn, the hand-off to a
 * warm runner); executor-taskdir.c the task files (task.json, result.json);
 * executor-check.c the health checks.  Everything declared here runs on
 * the loop thread only.
 */
#ifndef EXECUTOR_INTERNAL_H
#define EXECUTOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "contain.h"
#include "device-env.h"
#include "executor.h"
#include "hf_proto.h"
#include "result.h"
#include "warm-pool.h"

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
	char *dir, *task_path, *result_path;  /* dir: where both files are */
	bool task_file;                  /* task_path was written (else: in the request line) */
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
	json_t *result_json;             /* the result its done line carried, or NULL */

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

/* executor.c: the tasks' life cycle.  These were static to executor.c; the
 * other files of the executor use them too. */

/* The running attempt, or NULL. */
struct task *executor_find(const struct executor *ex, uint64_t task_id, uint32_t attempt);

/* Whether the task runs on that device. */
bool task_uses(const struct task *t, Hf__Backend backend, uint32_t index);

/* Its runner's pid, for messages (0 when there is none). */
int task_pid(const struct task *t);

/* Unlinks the task and closes its handles; it is freed when they are. */
void task_close(struct task *t);

/* The task could not be started: report it with reason, from the loop. */
void task_fail_start(struct task *t, const char *reason);

/* The task's timer: time limit, then the SIGKILL grace, then the bound on
 * waiting for the output pipe. */
void task_timer_cb(uv_timer_t *h);

/* A cold runner's process exited; its output is read into t->output. */
void task_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal);
void task_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void task_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* executor-spawn.c: starting a runner. */

/* Spawns the runner; a negative errno (libuv's, as errno) on failure. */
int task_spawn(struct task *t);

/* The task's JSON (task_prepare's), each form built when first asked for
 * (from t and a, which must outlive it): compact, one line, for a warm
 * runner's request line; indented, a member a line, for the task file. */
struct task_text {
	const struct task *t;
	const Hf__Assignment *a;
	char *compact;
	char *indented;
	size_t indented_len;
};
void task_text_fini(struct task_text *x);
/* The compact form; NULL when out of memory. */
const char *task_text_compact(struct task_text *x);

/* Hands the task (x: task_prepare's) to a warm runner of its device, in
 * its request line or a task file; a negative errno when none could be
 * started or the file not be written. */
int task_start_warm(struct task *t, const char *where, struct task_text *x);

/* executor-taskdir.c: task directories and task.json. */

/* *ret = the formatted path (malloc'd), or -ENOMEM. */
int path_join(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Removes an old result file of the attempt; *ret (the caller's, freed
 * with task_text_fini) is its task, for its task file or its request
 * line. */
int task_prepare(const struct task *t, const Hf__Assignment *a, struct task_text *ret);

/* Writes the task file (not durably: see executor-taskdir.c); the tasks
 * directory is made when it is missing. */
int task_file_write(struct task *t, struct task_text *x);

/* Removes the task's files (its result was read): a warning if it cannot. */
void task_files_remove(const struct task *t);

/* executor-check.c: health checks. */

/* Reports the health check's outcome to its callback and closes it. */
void check_finish(struct task *t);

#endif
