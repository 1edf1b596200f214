/* SPDX-License-Identifier: MIT
 *
 * The task executor: runs each assignment as a runner child process and
 * turns its end into a TaskResult.
 *
 * For an assignment it makes <state_dir>/tasks/<task_id>-<attempt>/, writes
 * task.json there, and spawns "<runner argv> --task FILE --result FILE" with
 * uv_spawn in a session and process group of its own (so every process the
 * runner starts can be signalled at once), stdin on /dev/null and stdout and
 * stderr on one pipe whose last bytes are kept (runner.output_limit).  The
 * environment is the worker's plus HFLEET_TASK_FILE, HFLEET_RESULT_FILE and
 * the variables that make exactly the task's devices visible (device-env.h:
 * CUDA_VISIBLE_DEVICES=<UUIDs>, ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK, ...);
 * the worker's own values of those are never passed on.  task.json names
 * the devices too (device_index, device_indices).  The working directory is
 * the worker's.
 *
 * A task ends when the runner has exited and its output pipe is closed.
 * Whatever the runner started is then killed, also a process that left its
 * process group or session (setsid, a double fork): contain.h puts every
 * runner in a group of its own (a cgroup v2 per task, or the worker as
 * child subreaper and a sweep of what it adopts) and kills the group at
 * the task's end, so a finished task leaves nothing running.  Then the
 * result is decided by result.c.  A task stopped by the worker (time
 * limit, cancel, shutdown) gets SIGTERM to its group, SIGKILL to all of it
 * runner.kill_grace later, and the outcome the worker chose.
 *
 * Warm runners (executor_config.warm; warm-pool.h runs them): a task of one
 * device goes instead to a long-lived "<runner argv> --serve" process of
 * that device, which gets the same environment a cold runner of the task
 * would (minus HFLEET_TASK_FILE and HFLEET_RESULT_FILE, plus
 * HFLEET_CONTROL_FD=3) and serves one task at a time: a device with N slots
 * has up to N of them.  The task directory and task.json are made as above;
 * the runner is sent the paths of task.json and result.json, and the task
 * ends when it says so on its control pipe, when result.json is read and
 * decided exactly as for a cold runner (a done task without a result file
 * is the runner's error, not the infrastructure's).  A warm runner that exits or is killed mid-task gives the
 * task an error ("warm runner exited with status N while running the task,
 * without reporting a result", with its output); a timeout or cancel
 * signals its whole process group as for a cold runner.  Either way that
 * runner is gone, and so is one that broke the protocol, reported a fatal
 * device error (the task keeps its reported outcome), grew past
 * warm_max_rss, served warm_max_tasks or idled for warm_idle_timeout: the
 * next task of the device gets a fresh process.  A task of several devices
 * always gets a cold runner.
 *
 * Threads and ownership: everything runs on the loop thread.  The done
 * callback receives the TaskResult, which becomes the callee's
 * (result_free); it is called exactly once per started task, never from
 * inside executor_start, and not at all after executor_close.  The task no
 * longer counts as running when its callback runs.
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hf_proto.h"
#include "hw.h"

struct executor;

struct executor_config {
	char *const *argv;           /* runner command words, NULL-terminated; copied */
	const char *state_dir;       /* copied */
	int64_t default_timeout_ms;  /* when the assignment's timeout_s is 0 */
	int64_t kill_grace_ms;       /* SIGTERM -> SIGKILL */
	size_t output_limit;         /* output bytes kept per task */

	/* Warm runners for tasks of one device (all zero: a process per task). */
	bool warm;
	unsigned warm_max_tasks;     /* retire after this many tasks; 0: no limit */
	uint64_t warm_max_rss;       /* retire above this resident memory; 0: no limit */
	int64_t warm_idle_timeout_ms; /* retire when idle this long; 0: never */
};

/* The outcome of a health check (executor_check_start). */
struct executor_check {
	Hf__Backend backend;
	uint32_t index;
	bool ok;
	char detail[512];            /* the runner's, or why the check failed */
	double duration_s;           /* wall-clock time the check took */
	double finished_at;          /* unix seconds */
};

typedef void (*executor_check_cb)(struct executor *ex, const struct executor_check *check, void *arg);

struct executor_ref {
	uint64_t task_id;
	uint32_t attempt;
};

typedef void (*executor_done_cb)(struct executor *ex, Hf__TaskResult *result, void *arg);

int executor_new(uv_loop_t *loop, const struct executor_config *cfg, executor_done_cb cb,
		 void *arg, struct executor **ret_ex);

/* Starts the attempt on the assignment's devices (device_indices, or
 * device_index when that is empty), described by devs[0..n_devs) in the same
 * order (borrowed for the call; what the runner needs is copied).  devs may
 * be NULL: only the indices are then known (see devenv_build).  Returns 0
 * when the task is under way: even if it cannot be started (task directory,
 * spawn), in which case its error result comes through the callback.
 * Returns -EEXIST when this attempt is already running, -EINVAL when devs
 * does not match the assignment or names more than DEVENV_MAX_DEVICES
 * devices, -ENOMEM, -ESHUTDOWN after executor_close. */
int executor_start(struct executor *ex, const Hf__Assignment *a,
		   const struct hw_device *const *devs, size_t n_devs);

/* Starts a health check of one device: a fresh runner process
 * "<runner argv> --health --backend B --result FILE" with the environment
 * and device visibility a task of that device would get (dev may be NULL:
 * only the index is known), its own process group, and time limit
 * timeout_ms (then SIGTERM, SIGKILL after the grace; a check that did not
 * finish failed).  FILE is <state_dir>/health/<backend>-<index>.json; the
 * runner writes {"ok": bool, "detail": str, ...} there.  A check is not a
 * task: it is not in executor_size or executor_list, but while it runs its
 * device counts as running one benchmark (executor_device_use), so nothing
 * else is admitted there.  cb runs exactly once, from the loop (never inside
 * this call), unless the executor is closed first.  Returns 0, -EBUSY when
 * the device is being checked already, -ENOMEM, -ESHUTDOWN. */
int executor_check_start(struct executor *ex, const struct hw_device *dev, Hf__Backend backend,
			 uint32_t index, int64_t timeout_ms, executor_check_cb cb, void *arg);

/* Whether a health check of the device is running. */
bool executor_checking(const struct executor *ex, Hf__Backend backend, uint32_t index);

/* Stops one running attempt: SIGTERM, SIGKILL after the grace, and the
 * result gets status and reason (an attempt stopped earlier keeps its first
 * outcome).  Returns false when the attempt is not running. */
bool executor_stop(struct executor *ex, uint64_t task_id, uint32_t attempt,
		   Hf__TaskStatus status, const char *reason);

/* executor_stop for every running attempt. */
void executor_stop_all(struct executor *ex, Hf__TaskStatus status, const char *reason);

/* Whether the attempt is running. */
bool executor_has(const struct executor *ex, uint64_t task_id, uint32_t attempt);

/* Running attempts on one device (a task of several devices counts on
 * each), and in all. */
unsigned executor_count(const struct executor *ex, Hf__Backend backend, uint32_t index);
size_t executor_size(const struct executor *ex);

/* Running attempts on one device, and how many of them are benchmarks. */
void executor_device_use(const struct executor *ex, Hf__Backend backend, uint32_t index,
			 unsigned *ret_tasks, unsigned *ret_benchmarks);

/* How runner processes are contained: "cgroup" or "subreaper" (contain.h;
 * HFLEET_CONTAIN in the environment at executor_new can force one). */
const char *executor_containment(const struct executor *ex);

/* Warm runners that can take a task now (idle or serving one); 0 when
 * warm runners are off. */
size_t executor_warm_size(const struct executor *ex);

/* Warm runners ahead of tasks (runner.prewarm): for every device of inv,
 * as many as it has slots, each with the environment a task of that device
 * alone gets, started from the loop (warm_pool_reserve: a runner that goes
 * is replaced, one that dies at start backs off).  Called again (new
 * hardware), it replaces the reserves: a device gone or with fewer slots
 * has its surplus idle runners retired.  Nothing when warm runners are
 * off.  A device that cannot be reserved is logged and left to
 * its tasks.  Returns 0. */
int executor_prewarm(struct executor *ex, const struct hw_inventory *inv);

/* No runner ahead of tasks any more (draining): the reserves drop to 0, and
 * their idle runners retire. */
void executor_prewarm_stop(struct executor *ex);

/* Fills refs with up to max running attempts; returns how many. */
size_t executor_list(const struct executor *ex, struct executor_ref *refs, size_t max);

/* Removes every task file (and task directory of older versions) that
 * does not belong to a running attempt: at start, whatever a previous run
 * left behind.  A task's own files go at its end, once its result was
 * read. */
int executor_task_dirs_clean(struct executor *ex);

/* SIGKILLs every running attempt's process group without reporting it,
 * retires the idle warm runners (stdin closed, SIGKILL after
 * kill_grace_ms), closes all handles and frees the executor once they are
 * closed (the loop must run for that, up to kill_grace_ms).  NULL is fine. */
void executor_close(struct executor *ex);

#endif
