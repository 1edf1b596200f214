/* SPDX-License-Identifier: MIT
 *
 * Warm runners: long-lived runner processes that serve many tasks, one at a
 * time, so an interpreter and its frameworks (torch, transformers) are
 * started once per device instead of once per task.  The executor
 * (executor.h) decides which tasks go to a warm runner; this module runs
 * the processes and speaks the protocol (warm-proto.h).
 *
 * A runner is "<runner argv> --serve", spawned with uv_spawn in a session
 * and process group of its own, with the environment the executor gives it
 * (the device variables of device-env.h plus HFLEET_CONTROL_FD=3), stdin a
 * pipe from the worker, stdout and stderr one output pipe, and descriptor 3
 * the control pipe.  Runners are told apart by a key (the executor's: the
 * backend and the device variables), so a runner only ever serves tasks
 * that would have got exactly its environment.
 *
 * For a task, warm_pool_submit takes the most recently used idle runner of
 * the key that has served a task (else the oldest idle one, which has
 * served none), or spawns one, and writes the request line.  While it serves the
 * task, the runner's output goes to the task's tail buffer; between tasks it
 * is dropped.  The task ends, through the end callback, when:
 *   - a done line comes (WARM_END_DONE; the output already in the pipe is
 *     read first, so it is the task's).  The runner is then retired if the
 *     line says fatal, if its resident memory (the larger of the line's
 *     rss_bytes and /proc/PID/statm, the same figure as VmRSS) is over
 *     max_rss, or if it has served max_tasks; otherwise it waits, idle,
 *     for the next task.
 *   - the runner exits, or is killed, before that (WARM_END_EXITED, once
 *     its pipes are closed or OUTPUT_DRAIN_MS after the exit, so a done line
 *     written just before the exit still counts).
 *   - the runner breaks the protocol: a malformed control line, a done line
 *     for another task, an error line for the request, a request that could
 *     not be written (WARM_END_PROTOCOL, with a message).  Its process group
 *     is killed at once.
 *
 * Retiring a runner closes its stdin (a runner exits on end of file) and
 * SIGKILLs it and everything it started if it has not exited after
 * kill_grace.  An idle runner is retired after idle_timeout.  A retired,
 * stopped or exited runner never takes another task; the next task of its
 * key gets a new one.
 *
 * Reserves (warm_pool_reserve; runner.prewarm): for a key, the pool starts
 * runners ahead of any task, up to a target, and starts another whenever one
 * stops counting (retired, stopped, exited), so a task finds a runner that
 * has started (and imported its frameworks) already.  A reserved runner
 * that has served no task has no idle timeout (it holds no device memory);
 * one that has served tasks idles out as any other, and a fresh one takes
 * its place.  A runner that dies before its first task, unasked, makes its
 * reserve back off (1 s, doubling up to 60 s, one runner at a time, each
 * failure logged) until a runner of the key serves a task (warm-reserve.c).
 *
 * Every runner has a containment group of its own (contain.h: a cgroup, or
 * its session under the worker as subreaper).  Whenever a runner exits,
 * everything it started is killed, also what left its process group or
 * session; at the end of each task (a done line), whatever left its
 * session during the task is killed, while its own children may stay
 * until it is retired.
 *
 * Threads and ownership: everything runs on the loop thread.  The end
 * callback runs at most once per submitted task, never from inside
 * warm_pool_submit, and not after the task was abandoned; the runner has
 * already let go of the task and its output buffer when it runs, and has
 * been retired or made idle, so the callback may submit the next task.  A
 * runner's memory is released when its handles are closed; a struct
 * warm_runner pointer is valid until the end callback of its task, or until
 * warm_runner_abandon.
 */
#ifndef WARM_POOL_H
#define WARM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "contain.h"
#include "result.h"
#include "warm-proto.h"

struct warm_pool;
struct warm_runner;

struct warm_pool_config {
	struct contain *contain;    /* each runner gets a group of it; borrowed, outlives the pool */
	char *const *argv;          /* runner command words, NULL-terminated; copied */
	int64_t kill_grace_ms;      /* stdin closed -> SIGKILL */
	int64_t idle_timeout_ms;    /* 0: idle runners are never retired */
	struct warm_limits limits;
};

enum warm_end_kind {
	WARM_END_DONE,
	WARM_END_EXITED,
	WARM_END_PROTOCOL,
};

struct warm_end {
	enum warm_end_kind kind;
	bool fatal;                 /* DONE: the runner called the error fatal */
	bool device_fault;          /* DONE: fatal, and the device's fault, not the model's */
	int64_t exit_status;        /* EXITED, when term_signal is 0 */
	int term_signal;            /* EXITED: the signal that ended it, or 0 */
	const char *message;        /* PROTOCOL: what went wrong (borrowed) */
	/* DONE: the result the done line carried, or NULL: it is in the
	 * result file (borrowed for the callback: json_incref to keep it) */
	json_t *result;
};

typedef void (*warm_end_cb)(void *task, const struct warm_end *end, void *arg);

int warm_pool_new(uv_loop_t *loop, const struct warm_pool_config *cfg, warm_end_cb cb,
		  void *arg, struct warm_pool **ret_pool);

/* Whether an idle runner of key is there: warm_pool_submit then needs no
 * env (building one per task costs more than the rest of the hand-off). */
bool warm_pool_has_idle(struct warm_pool *p, const char *key);

/* Whether the runner warm_pool_submit would hand a task of key to now
 * takes the task in its request line (its last done line said
 * "task_inline": true): then the task file need not be written. */
bool warm_pool_takes_inline(struct warm_pool *p, const char *key);

/* Hands a task to an idle runner of key, or to a new one started with env
 * (a NULL-terminated "NAME=value" list, borrowed for the call; NULL when
 * warm_pool_has_idle said there is an idle one); where names
 * its devices in log lines ("cuda:0").  The runner gets task_json (one
 * compact JSON object; NULL: none) in its request line when it takes it
 * (warm_pool_takes_inline), else the path task_path.  output (borrowed until
 * the task ends) gets the runner's output meanwhile; task is passed back to
 * the end callback.  Returns 0 with the runner in *ret_runner, or a negative
 * errno when no runner could be started (nothing was submitted; libuv's
 * errors as errno values). */
int warm_pool_submit(struct warm_pool *p, const char *key, char *const *env, const char *where,
		     uint64_t task_id, const char *task_path, const char *task_json,
		     const char *result_path, struct tail_buf *output, void *task,
		     struct warm_runner **ret_runner);

/* The runner's process id (its process group's too), or 0 once its exit
 * was seen (the id may belong to another process by then). */
int warm_runner_pid(const struct warm_runner *w);

/* Signals the runner and everything it started (contain_signal); nothing
 * once its exit was seen. */
void warm_runner_signal(struct warm_runner *w, int sig);

/* Its task is being stopped (time limit, cancel): the runner takes no other
 * task and its stdin is closed; the caller signals its process group.  The
 * task still ends through the callback, normally as WARM_END_EXITED. */
void warm_runner_condemn(struct warm_runner *w);

/* The task is gone without an end (the executor is closing): the runner
 * forgets it, its process group is killed, and no callback comes. */
void warm_runner_abandon(struct warm_runner *w);

/* Keeps target runners of key started (idle or serving tasks), with env (a
 * NULL-terminated "NAME=value" list, copied) and where (copied) as
 * warm_pool_submit would start them; the missing ones are started from the
 * loop, not inside this call.  Called again for a key, it replaces the
 * target and the environment.  Returns 0, -ENOMEM, -EINVAL, or -ESHUTDOWN
 * after warm_pool_close. */
int warm_pool_reserve(struct warm_pool *p, const char *key, char *const *env, const char *where,
		      unsigned target);

/* A new set of reserves: warm_pool_reserve_begin, warm_pool_reserve for
 * each key of it, warm_pool_reserve_end.  The reserves the set does not
 * name drop to 0 (their idle runners retire, saying why; the others go as
 * usual), and a reserve whose target was lowered retires its idle runners
 * beyond it. */
void warm_pool_reserve_begin(struct warm_pool *p);
void warm_pool_reserve_end(struct warm_pool *p, const char *why);

/* Runners that may take a task (idle or serving one; not retired, stopped
 * or exited). */
size_t warm_pool_size(const struct warm_pool *p);

/* Retires every runner (a runner still serving a task must have been
 * abandoned or condemned before) and frees the pool once all are gone; the
 * loop must run for that.  Returns true when the pool was freed at once
 * (closed_cb is then not called), false when closed_cb(arg) will run once it
 * is.  NULL is fine (returns true). */
bool warm_pool_close(struct warm_pool *p, void (*closed_cb)(void *arg), void *arg);

#endif
