/* SPDX-License-Identifier: MIT
 *
 * The scheduler's in-memory state: every task that is not final (queued or
 * leased), the active jobs, and the queues that matching draws from.  Pure
 * logic with no I/O: the coordinator persists each transition through the
 * database layer and only then applies it here (or applies it tentatively
 * and undoes it when the commit fails).
 *
 * Queues: each job keeps one queue per backend (a binary heap by task id,
 * so its tasks run in submission order); jobs are kept in order of priority
 * (higher first).  Matching walks the jobs in that order and asks the
 * caller whether the best queued task of each fits the device at hand, so
 * per-job requirements never block another job's tasks.  Jobs of equal
 * priority share fairly, first between submitters, then between one
 * submitter's jobs: when a job gets a task, every job of its submitter moves
 * behind the other submitters' jobs of that priority, the served job last.
 * One huge job cannot starve a small one, and one engineer's ten jobs get
 * no more turns than another's one.  A job
 * with max_running set never has more tasks out of the queue than that.
 *
 * Task states here:
 *   SCHED_QUEUED    in its backend's heap
 *   SCHED_GRANTING  taken for a worker; the lease is being committed
 *   SCHED_LEASED    leased to (worker, device) until lease_expires_ms
 *   SCHED_EXPIRING  lease expired or could not be committed; the requeue is
 *                   being committed
 *   SCHED_CANCELLING cancelled in the database while leased: the worker is
 *                   told to stop it
 *   SCHED_DELAYED   an infrastructure failure is being retried: queued
 *                   again at not_before_ms (exponential backoff)
 * Final tasks are removed.
 *
 * Not thread-safe: owned by the coordinator's loop thread.
 */
#ifndef HF_SCHEDULER_H
#define HF_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfleet.pb-c.h"

enum sched_state {
	SCHED_QUEUED,
	SCHED_GRANTING,
	SCHED_LEASED,
	SCHED_EXPIRING,
	SCHED_CANCELLING,
	SCHED_DELAYED,
};

#define SCHED_N_BACKENDS 8
#define SCHED_MAX_DEVICES 16 /* devices one task may hold */

struct sched_task;

struct sched_heap {
	struct sched_task **v;
	size_t n, cap;
};

struct sched_job {
	uint64_t id;
	int32_t priority;
	size_t live;               /* tasks of this job in memory */
	size_t running;            /* of those, out of the queues (granting, leased, ...) */
	uint32_t max_running;      /* 0: no cap */
	uint32_t max_retries;      /* infrastructure failures retried per task */
	uint64_t submitter;        /* sched_name_hash of who submitted it (fair share) */
	uint32_t flaky_reruns;     /* reruns of a failed test */
	void *data;                /* the owner's (requirements); freed by the owner */
	void (*data_free)(void *data);
	/* internal */
	struct sched_heap q[SCHED_N_BACKENDS];
	struct sched_job *next;    /* by priority, then id */
};

struct sched_task {
	uint64_t id;
	uint64_t job_id;
	uint32_t attempt;          /* the current (or tentative) attempt: the fencing token */
	uint32_t model;            /* registry index */
	Hf__Backend backend;
	Hf__TaskKind kind;
	uint32_t batch_size;
	const char *precision;     /* static name */
	const char *mode;          /* static name: a benchmark's execution mode */
	uint32_t seq_len, timeout_s, iterations, warmup;

	enum sched_state state;
	char worker_id[128];
	uint32_t device_index;     /* the first (or only) device */
	uint32_t devices[SCHED_MAX_DEVICES]; /* every device of the lease */
	uint8_t n_devices;
	int64_t lease_expires_ms;
	int64_t not_before_ms;     /* DELAYED until then */
	int64_t due_ms;            /* when it was last queued again after a failure */
	uint64_t avoid_worker;     /* hash of the worker whose device failed it, 0: none */
	uint32_t avoid_device;
	bool lease_lost;           /* EXPIRING because its lease ran out (not a failed grant) */
	bool reserved;             /* LEASED before its worker asked and not handed over yet
				    * (reserve.c): a lease of it that ends was never run */
	uint32_t released;         /* its attempts that were reservations released, never run
				    * (since this coordinator started): not counted against
				    * the job's retries (sched_attempts_run) */
	int64_t queued_ms;         /* when it last entered its queue (monotonic) */
	uint32_t reruns;           /* flaky reruns used (since this coordinator started) */

	/* internal */
	struct sched_job *job;
	size_t heap_idx;
	struct sched_task *lprev, *lnext; /* out-of-queue list */
	struct sched_task *hnext;         /* hash chain */
};

struct sched;

struct sched *sched_new(void);
void sched_free(struct sched *s);


/* Adds a job (idempotent).  Returns NULL on allocation failure. */
struct sched_job *sched_job_add(struct sched *s, uint64_t id, int32_t priority);
struct sched_job *sched_job_find(struct sched *s, uint64_t id);

/* A job is forgotten when its last live task leaves; a hold keeps it while
 * its tasks are still being added (submit-feed.c adds a large job's tasks
 * over several loop turns, and its first ones may be done before the
 * last are added).  Each hold is released once; the release forgets the
 * job when nothing else is live. */
void sched_job_hold(struct sched_job *job);
void sched_job_release(struct sched *s, struct sched_job *job);

/* Adds a copy of t, whose job must have been added, in t->state (QUEUED or
 * LEASED).  Returns the stored task or NULL (no memory, unknown job,
 * duplicate id). */
struct sched_task *sched_task_add(struct sched *s, const struct sched_task *t);
struct sched_task *sched_task_find(struct sched *s, uint64_t id);

/* Decides whether a candidate task may be taken for the device at hand;
 * returning true takes it.  It may record what the task uses in arg. */
typedef bool (*sched_fits_fn)(const struct sched_task *t, void *arg);

/* Takes up to max queued tasks of backend, best job first, that fits
 * accepts (NULL accepts all), into out; each moves to GRANTING with attempt
 * + 1 and the given worker and device.  Returns how many. */
size_t sched_take(struct sched *s, Hf__Backend backend, const char *worker_id,
		  uint32_t device_index, size_t max, sched_fits_fn fits, void *arg,
		  struct sched_task **out);

/* Calls fn for every job, in scheduling order. */
void sched_jobs_foreach(struct sched *s, void (*fn)(struct sched_job *job, void *arg), void *arg);

/* GRANTING -> LEASED until expires_ms. */
void sched_lease(struct sched *s, struct sched_task *t, int64_t expires_ms);

/* Renews a LEASED task's lease.  Returns false when t is not leased to
 * worker_id with that attempt. */
bool sched_renew(struct sched *s, struct sched_task *t, const char *worker_id, uint32_t attempt,
		 int64_t expires_ms);

/* The attempts of t that were handed to a worker: what the job's
 * max_retries counts (a reservation released unrun is not one). */
static inline uint32_t sched_attempts_run(const struct sched_task *t)
{
	return t->attempt > t->released ? t->attempt - t->released : 0;
}

/* Any state -> EXPIRING (its lease is dead; a requeue must be committed). */
void sched_expiring(struct sched *s, struct sched_task *t);

/* Back to QUEUED (after a committed requeue). */
void sched_requeue(struct sched *s, struct sched_task *t);

/* Any state -> DELAYED until not_before_ms. */
void sched_delay(struct sched *s, struct sched_task *t, int64_t not_before_ms);

/* Collects up to max DELAYED tasks that are due at now_ms. */
size_t sched_collect_due(struct sched *s, int64_t now_ms, struct sched_task **out, size_t max);

/* A stable 64-bit hash of a name (a worker id for avoid_worker, a
 * submitter for fair share); never 0. */
uint64_t sched_name_hash(const char *worker_id);

/* LEASED -> CANCELLING. */
void sched_cancelling(struct sched *s, struct sched_task *t);

/* Removes a task that reached a final state, and its job when it has no
 * tasks left. */
void sched_remove(struct sched *s, struct sched_task *t);

/* Collects up to max LEASED tasks whose lease ended before now_ms. */
size_t sched_collect_expired(struct sched *s, int64_t now_ms, struct sched_task **out, size_t max);

/* Collects up to max EXPIRING tasks (to retry their requeue). */
size_t sched_collect_state(struct sched *s, enum sched_state st, struct sched_task **out, size_t max);

/* Collects up to max tasks of a job (any state). */
size_t sched_collect_job(struct sched *s, uint64_t job_id, struct sched_task **out, size_t max);

/* The one place that says tasks became queued: called whenever a task of
 * backend may be taken that could not be before: it entered its queue
 * (a new job's tasks and recovered ones through sched_task_add, a requeue
 * after an expired lease, a failed grant or a retry's backoff through
 * sched_requeue) or its job dropped below max_running.  It runs inside
 * the scheduler's calls, once per task (100,000 times for a large
 * submit), so it must be cheap.  The coordinator wakes held polls with it
 * (worker-api.c); it must not change s.  NULL (the default): nobody. */
typedef void (*sched_queued_fn)(void *arg, Hf__Backend backend);
void sched_set_queued_cb(struct sched *s, sched_queued_fn fn, void *arg);

size_t sched_queued(const struct sched *s, Hf__Backend backend);
size_t sched_count(const struct sched *s);

/* How many tasks are in state st: kept as they move, so reading it costs
 * nothing however many tasks there are. */
size_t sched_count_state(const struct sched *s, enum sched_state st);

/* How many LEASED tasks hold device (backend, device) of worker_id: kept
 * as tasks enter and leave SCHED_LEASED (a hash lookup, whatever the
 * number of tasks). */
size_t sched_device_leased(const struct sched *s, const char *worker_id, Hf__Backend backend, uint32_t device);

#endif
