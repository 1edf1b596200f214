/* SPDX-License-Identifier: MIT
 *
 * What the two files of the warm pool share, and nothing else may include:
 * struct warm_pool and struct warm_runner.  warm-pool.c owns the runners
 * (start, tasks, retirement, exit) and the pool; warm-reserve.c the
 * reserves (warm_pool_reserve: runners started ahead of tasks, replaced
 * when they go, with a backoff for runners that die at start).  Loop
 * thread only.
 */
#ifndef WARM_POOL_INTERNAL_H
#define WARM_POOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "contain.h"
#include "result.h"
#include "warm-pool.h"
#include "warm-proto.h"

#define WARM_READ_CHUNK (64 * 1024)

struct warm_reserve;

enum timer_use {
	TIMER_NONE,
	TIMER_IDLE,     /* idle: retire when it fires */
	TIMER_KILL,     /* retiring: SIGKILL when it fires */
	TIMER_DRAIN,    /* exited: stop waiting for the pipes */
	TIMER_CTL_EOF,  /* control pipe closed mid-task: the exit should follow */
};

struct warm_runner {
	struct warm_pool *pool;
	struct warm_runner *prev, *next;  /* pool->runners, most recently used first */
	char *key, *where;
	unsigned seq;                     /* its number in the pool, for its group's name */
	struct contain_group *group;      /* every process it starts */

	uv_process_t proc;
	uv_pipe_t in, out, ctl;
	uv_timer_t timer;
	enum timer_use timer_use;
	bool proc_init, in_init, out_init, ctl_init;
	bool in_closed;                   /* stdin closed: end of file sent */
	bool task_inline;                 /* its last done line: it takes the task in the line */
	int open_handles;

	bool spawned, exited, out_eof, ctl_eof;
	bool retiring;                    /* takes no task any more */
	bool broken;                      /* further control lines are ignored */
	bool closing;                     /* its handles are being closed */
	int64_t exit_status;
	int term_signal;
	unsigned served;
	size_t start_logged;              /* bytes of its output before any task logged */
	int statm_fd;                     /* its /proc/PID/statm, opened at the first done line, or -1 */

	/* The task it serves, if any. */
	void *task;
	uint64_t task_id;
	struct tail_buf *output;

	/* The control line being read. */
	char line[WARM_CONTROL_LINE_MAX];
	size_t line_len;
};

/* A request line on its way to a runner's stdin. */
struct warm_write {
	uv_write_t req;
	struct warm_runner *w;
	void *task;
	char *line;
};

struct warm_pool {
	uv_loop_t *loop;
	struct contain *contain;
	unsigned seq;                     /* runners started */
	char **argv;                      /* the runner's words and "--serve" */
	size_t argc;
	int64_t kill_grace_ms;
	int64_t idle_timeout_ms;
	struct warm_limits limits;
	warm_end_cb cb;
	void *arg;

	struct warm_runner *runners;
	size_t n_runners;                 /* not yet freed, in any state */
	struct warm_reserve *reserves;    /* warm-reserve.c's */
	unsigned reserve_round;           /* warm_pool_reserve_begin's count */
	size_t n_reserve_handles;         /* their timers not yet closed */
	bool closing;
	void (*closed_cb)(void *arg);
	void *closed_arg;
	char read_buf[WARM_READ_CHUNK];        /* every read is consumed in its callback */
};

/* warm-pool.c */

/* Starts a runner of key with env (NULL-terminated "NAME=value" list,
 * borrowed for the call), idle; a negative errno when it could not be
 * started (what was made of it goes away by itself). */
int warm_runner_start(struct warm_pool *p, const char *key, char *const *env, const char *where,
		      struct warm_runner **ret);

/* Retires the runner (it takes no other task), saying why. */
void warm_runner_retire(struct warm_runner *w, const char *why);

/* Whether the runner may take a task (idle or serving one). */
bool warm_runner_counts(const struct warm_runner *w);

/* Frees the pool when it is closing and nothing of it is left. */
void warm_pool_maybe_free(struct warm_pool *p);

/* warm-reserve.c */

/* The runner w stopped counting (retired, stopped, exited, or never
 * started): its key's reserve, if any, starts another.  start_failed: it
 * died before it served a task or was retired (the reserve backs off). */
void warm_reserve_runner_lost(struct warm_pool *p, const char *key, bool start_failed);

/* A runner of key finished a task: the key's runners start fine. */
void warm_reserve_runner_served(struct warm_pool *p, const char *key);

/* Stops every reserve (the pool is closing): no runner is started any more
 * and their timers are closed (p->n_reserve_handles counts down to 0). */
void warm_reserve_close_all(struct warm_pool *p);

#endif
