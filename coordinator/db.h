/* SPDX-License-Identifier: MIT
 *
 * The database layer: the one place that owns all SQL.  A dedicated thread
 * with its own libpq connection executes operations handed to it by the
 * loop thread, so the loop never blocks on PostgreSQL.
 *
 * Group commit: the thread takes every operation queued since its last turn
 * and runs the consecutive writes in one transaction (one fsync for all of
 * them); each write is itself a set-based statement (one array parameter per
 * column, unnest()ed), so a poll that leases 16 tasks or a report of 100
 * results is one round trip, not one per task.  An operation refused for its
 * own data (-EINVAL, -EEXIST) is left out and the others run again together;
 * if the shared transaction fails otherwise, each operation is run again in
 * a transaction of its own, so only the bad one fails.  A transaction of
 * result stores and lease grants alone is sent as one pipeline (BEGIN, its
 * statements, COMMIT): one round trip to PostgreSQL.  Reads run outside
 * transactions and build their reply message on this thread.
 *
 * Every value reaches PostgreSQL as a parameter of a constant statement
 * text (prepared once per connection); none is ever formatted into SQL.
 *
 * A completed operation is handed back to the loop thread, where op->done
 * runs.  On failure op->rc is a negative errno and op->err says why:
 * -ENOTCONN: the database is unreachable (worth trying again later);
 * -EINVAL: a value cannot be stored (a non-finite double, a number beyond
 * its column's type, a timestamp beyond PostgreSQL's range, text that is not
 * JSON, a violated constraint): err names it, nothing of the op was written,
 * and sending the same values again fails the same way; -EIO: a statement
 * failed otherwise.  An id beyond INT64_MAX names nothing: reads, cancel
 * and retry answer "not found" for it.
 *
 * Ownership: an op and everything its input points to belong to the caller
 * and must stay valid until done runs; outputs allocated by this layer
 * (arrays, reply messages) are the caller's to free in or after done.
 */
#ifndef HF_DB_H
#define HF_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <uv.h>

#include "expand.h"
#include "hfleet.pb-c.h"
#include "registry.h"

struct db;

enum db_op_kind {
	DB_OP_START,         /* migrate, sync the registry, load live state */
	DB_OP_JOB_CREATE,
	DB_OP_LEASE_GRANT,
	DB_OP_LEASE_EXPIRE,
	DB_OP_RESULT_STORE,
	DB_OP_JOB_CANCEL,
	DB_OP_WORKER_UPSERT,
	DB_OP_TELEMETRY_SAMPLE,
	DB_OP_JOB_RETRY,
	DB_OP_DRAIN,
	DB_OP_HEALTH_STORE,  /* health check outcomes and quarantine changes */
	DB_OP_JOB_STATUS,    /* reads: the reply envelope is built here */
	DB_OP_JOB_LIST,
	DB_OP_RESULTS,
	DB_OP_TASK_EXPLAIN,  /* a task that is no longer live: its outcome */
	DB_OP_TOKEN_CREATE,  /* db-auth.c: tokens and the audit */
	DB_OP_TOKEN_REVOKE,
	DB_OP_TOKEN_TOUCH,   /* last_used_at of tokens, batched */
	DB_OP_TOKEN_LIST,    /* reads: the reply envelope is built here */
	DB_OP_AUDIT_LIST,
	DB_OP_AUTH_BOOTSTRAP, /* hf-coordinator --create-token: migrate, then create */
	DB_OP_JOB_CANCEL_SLICE, /* db-cancel.c: the next slice of a cancelled job's queued tasks */
	DB_OP_JOB_PLAN_SLICE, /* db-plans.c: the next slice of a large job's tasks written */
	DB_OP_LOGS,          /* reads for people (db-reads-people.c): the reply envelope is built here */
	DB_OP_COMPARE,
	DB_OP_HISTORY,
	DB_OP_REPORT,
	DB_OP_WARM,          /* db-warm.c: a new connection's hot statements, on a task rolled back */
};

/* A live token as loaded at start (its secret's hash, never the secret). */
struct db_token {
	char id[16];
	char name[128];
	char role[16];
	uint8_t hash[32];
};

/* Who asked for a write, for the audit row written in the same
 * transaction (what and on which target follows from the op).  action
 * NULL: no audit row. */
struct db_audit {
	const char *actor;       /* the token's name, borrowed */
	const char *role;        /* borrowed */
	const char *action;      /* submit cancel retry drain undrain, borrowed */
};

/* A task as loaded at start (recovery). */
struct db_live_task {
	uint64_t id, job_id;
	uint32_t attempt;
	char model_type[64];
	Hf__Backend backend;
	Hf__TaskKind kind;
	uint32_t batch_size, seq_len, iterations, warmup, timeout_s;
	char precision[8];
	char mode[16];           /* a benchmark's execution mode */
	bool leased;
	char worker_id[128];
	uint32_t devices[16];    /* the lease's devices; n_devices 0 when queued */
	uint8_t n_devices;
};

struct db_live_job {
	uint64_t id;
	int32_t priority;
	uint32_t max_running, max_retries, flaky_reruns;
	char submitter[128];
	char *requirements;      /* JSON text, malloc'd: the receiver frees it */
};

/* A drain: a whole worker (backend -1, index -1) or one device. */
struct db_drain {
	char worker_id[128];
	int backend;             /* Hf__Backend, or -1 */
	int index;               /* or -1 */
	char by[128];            /* who drained it (the audit's actor), "" unknown */
	double since;            /* unix seconds */
};

/* A device's quarantine: set (with its reason) or cleared. */
struct db_quarantine {
	char worker_id[128];
	int backend;             /* Hf__Backend */
	uint32_t index;
	bool quarantined;
	char reason[384];
};

/* One health check outcome a worker reported. */
struct db_health_check {
	const char *worker_id;   /* borrowed */
	int backend;             /* Hf__Backend */
	uint32_t index;
	bool ok;
	const char *detail;      /* borrowed */
	const char *trigger;     /* borrowed */
	double duration_s;       /* negative: unknown */
	double checked_at;       /* unix seconds; 0: now */
};

struct db_telemetry {
	const char *worker_id;
	const char *backend;
	uint32_t index;
	float utilization_pct, temperature_c, power_w; /* negative: not available */
	int64_t memory_used_bytes;                     /* negative: not available */
};

/* What a warm-up (DB_OP_WARM, db-warm.c) is asked; the database thread
 * keeps it to warm every new connection the same way. */
struct db_warm {
	/* the job lane's connection (its task insert) rather than the main one
	 * (lease grants and result stores) */
	bool job_lane;
	int active_pid;                 /* job lane: as job_create's */
	const struct registry *reg;     /* its first model is the warm-up task's */
};

struct db_lease {
	uint64_t task_id;
	uint32_t attempt;
	const char *worker_id;
	uint32_t devices[16];    /* the first is the task's device_index */
	uint8_t n_devices;
	bool granted;            /* out */
};

struct db_expire {
	uint64_t task_id;
	uint32_t attempt;
	bool give_up;            /* in: its lease was lost too often: the outcome is error */
	bool released;           /* in: a reservation never handed over (reserve.c), not a lost lease */
	bool final;              /* out: the task has an outcome now */
};

enum db_result_outcome {
	DB_RESULT_FINAL,         /* stored; it decided the task's outcome */
	DB_RESULT_STALE,         /* stored as stale: its attempt was no longer current */
	DB_RESULT_DUPLICATE,     /* already stored earlier (a re-send) */
	DB_RESULT_UNKNOWN,       /* no such task: logged and dropped */
	DB_RESULT_RETRIED,       /* stored; an infrastructure failure: the task is queued again */
	DB_RESULT_NOT_OWNED,     /* not stored: that attempt was never leased to the sender */
};

struct db_result {
	const Hf__TaskResult *r; /* borrowed */
	const char *worker_id;
	const char *metrics_json;  /* validated JSON object text */
	const char *env_json;
	bool retry;              /* in: if it is the current attempt, queue the task again */
	bool flaky;              /* in: the retry is a rerun of a failed test */
	int backend;             /* in: the task's backend (Hf__Backend), -1 unknown; for device health */
	/* in: the status and reason to store instead of r's (status 0: r's);
	 * a benchmark measured in another mode than asked is stored skipped. */
	Hf__TaskStatus status;
	const char *reason;
	enum db_result_outcome outcome; /* out */
	uint64_t job_id;         /* out, for FINAL */
};

struct db_op {
	enum db_op_kind kind;
	int rc;
	char err[512];
	void (*done)(struct db_op *op);
	void *ctx;               /* the caller's */
	void *ctx2;
	struct db_op *next;      /* internal */
	int64_t submitted_us;    /* internal: when db_submit queued it */
	struct db_audit audit;   /* in, optional */

	union {
		struct {
			const struct registry *reg;     /* in */
			struct db_live_job *jobs;       /* out, free() */
			size_t n_jobs;
			struct db_live_task *tasks;     /* out, free() */
			size_t n_tasks;
			struct db_drain *drains;        /* out, free() */
			size_t n_drains;
			struct db_quarantine *quarantines; /* out, free() */
			size_t n_quarantines;
			struct db_token *tokens;        /* out, free(): the live ones */
			size_t n_tokens;
			/* out, free(): cancelled jobs whose queued tasks are still
			 * to be cancelled in slices (a cancel the coordinator did
			 * not finish before it stopped) */
			uint64_t *cancelling;
			size_t n_cancelling;
		} start;
		struct {
			const struct registry *reg;     /* in */
			const struct job_plan *plan;    /* in */
			const char *requirements;       /* in, JSON */
			/* in: when the job is written on a connection of its own
			 * (the job lane), the server process of the main connection,
			 * which must still hold the active-coordinator lock; 0: the
			 * main connection writes it. */
			int active_pid;
			/* in: the tasks the coordinator held live when the submit
			 * came (sched_count): a job that at least doubles them has
			 * tasks analysed (db-jobs.c). */
			size_t live_before;
			/* in: tasks written in the submit's transaction; the rest
			 * of a larger job is stored as task_plans rows of this many
			 * tasks each, written after the answer by
			 * DB_OP_JOB_PLAN_SLICE (db-plans.c).  0: all now. */
			uint32_t slice;
			uint64_t job_id;                /* out */
			uint64_t *task_ids;             /* out, plan->n_tasks, free() */
			/* out: tasks [0, n_written) are written; the rest wait in
			 * task_plans */
			size_t n_written;
			/* out: plan->request_id named a job made before.  existing:
			 * by the same request (job_id is that job, task_count its
			 * size, task_ids NULL: nothing was written); conflict: by
			 * another request (rc -EEXIST, err says which job). */
			bool existing, conflict;
			uint32_t task_count;
		} job_create;
		struct {
			struct db_lease *v;
			size_t n;
		} lease;
		struct {
			struct db_expire *v;
			size_t n;
		} expire;
		struct {
			struct db_result *v;
			size_t n;
			uint64_t *finished_jobs;        /* out, free(); NULL when the op failed */
			size_t n_finished_jobs;
		} result;
		/* DB_OP_JOB_CANCEL and DB_OP_JOB_CANCEL_SLICE (db-cancel.c).
		 * A job's cancel: the job is cancelled, its leased tasks with it
		 * and at most slice of its queued ones, in one transaction; no
		 * task of a cancelled job is leased from then on.  The rest of
		 * its queued tasks (remaining) are cancelled by slice ops, at
		 * most slice tasks each, until one cancels fewer (last). */
		struct {
			uint64_t job_id;                /* in (out when task_id is given) */
			uint64_t task_id;               /* in: cancel this task only */
			const char *owner;              /* in: only a job this submitter made, NULL: any */
			uint32_t slice;                 /* in: queued tasks cancelled per statement, >= 1 */
			bool found;                     /* out */
			bool forbidden;                 /* out: the job is another's (nothing changed) */
			char submitter[128];            /* out: the job's submitter, when found */
			uint32_t n_cancelled;           /* out: by this op */
			/* out (job cancel): queued tasks left for slice ops, and
			 * tasks its submit has not written yet (db-plans.c writes
			 * them cancelled) */
			uint32_t remaining;
			uint32_t unwritten;             /* out (job cancel): of remaining, those not written yet */
			bool last;                      /* out: no queued task of the job is left */
		} cancel;
		/* DB_OP_JOB_PLAN_SLICE (db-plans.c): the first slice of job_id's
		 * task_plans written as tasks, queued (or cancelled, when the
		 * job is cancelled), in one transaction. */
		struct {
			uint64_t job_id;                /* in */
			int active_pid;                 /* in: as job_create's */
			uint64_t first_id;              /* out: the slice's first task id (0: none was left) */
			uint32_t n;                     /* out: tasks written */
			bool cancelled;                 /* out: written as cancelled tasks */
			bool last;                      /* out: no slice of the job is left */
		} plan_slice;
		struct {
			uint64_t job_id;                /* in */
			const char *owner;              /* in: only a job this submitter made, NULL: any */
			bool cancelled;                 /* in: cancelled tasks too */
			const char *stopping;           /* in: "{id,...}": cancelled tasks a worker is still stopping (left alone) */
			size_t live_before;             /* in: as job_create's */
			bool found;                     /* out */
			bool forbidden;                 /* out: the job is another's (nothing changed) */
			bool cancelling;                /* out: its cancel's slices are not done (nothing changed) */
			int32_t priority;               /* out */
			uint32_t max_running, max_retries, flaky_reruns; /* out */
			char submitter[128];            /* out */
			char *requirements;             /* out, free() */
			struct db_live_task *tasks;     /* out, free(): queued again */
			size_t n_tasks;
		} retry;
		struct {
			struct db_drain d;              /* in */
			bool undrain;                   /* in: also ends a quarantine */
		} drain;
		struct {
			const struct db_health_check *checks; /* in */
			size_t n_checks;
			const struct db_quarantine *states;   /* in: rows to set or delete */
			size_t n_states;
		} health;
		struct {
			const Hf__Register *reg;        /* in, borrowed */
		} worker;
		struct {
			struct db_telemetry *v;
			size_t n;
		} telemetry;
		struct {
			/* create: id, name, role, hash, created_by in; revoke:
			 * id_or_name in, n out (tokens revoked). */
			const struct db_token *token;   /* in (create) */
			const char *created_by;         /* in (create) */
			const char *id_or_name;         /* in (revoke) */
			uint32_t n;                     /* out (revoke) */
		} token;
		struct {
			const char **ids;               /* in */
			const double *used_at;          /* in: unix seconds */
			size_t n;
		} touch;
		struct {
			uint64_t job_id;                /* in (status, results, audit) */
			uint32_t limit;                 /* in (list, audit) */
			bool include_revoked;           /* in (token list) */
			/* in (results, job list, logs, compare, history, report):
			 * the validated request, borrowed until done runs; NULL
			 * for results and the job list: no filters, first page. */
			const Hf__Envelope *request;
			nng_msg *reply;                 /* out: packed envelope */
		} read;
		struct db_warm warm;
	} u;
};

/* Starts the database thread; it connects (and reconnects) by itself. */
int db_open(uv_loop_t *loop, const char *conninfo, struct db **ret_db);

/* Queues op; op->done will run on the loop thread.  Loop thread only. */
void db_submit(struct db *db, struct db_op *op);

/* Calls fn(arg, kind, microseconds from db_submit to completion) on the
 * loop thread for every completed op, before its done callback (for
 * /metrics).  Loop thread only. */
void db_set_observer(struct db *db, void (*fn)(void *arg, enum db_op_kind kind, int64_t us), void *arg);

/* The application_name of db's connections in pg_stat_activity, unless the
 * conninfo sets one (libpq's fallback_application_name): "hf-coordinator"
 * for the main connection, as db_open leaves it; name must be a static
 * string.  Loop thread, before the first db_submit. */
void db_set_name(struct db *db, const char *name);

/* Gives db a second connection for result stores: lane, another db from
 * db_open, used for nothing else (db_close it after db).  A gathered
 * group of result stores large enough to split is then stored half on each
 * connection at once (db-thread.c, "result stores on two connections");
 * the lane's connection is named "hf-coordinator results".
 * Loop thread, before the first db_submit. */
void db_set_result_lane(struct db *db, struct db *lane);

/* How many groups of result stores were split over the result lane, and
 * how many of those had their lane half fail and stored it again on db's
 * own connection.  Any thread (for /metrics). */
void db_result_lane_counts(struct db *db, uint64_t *splits, uint64_t *retries);

/* While result stores come in a stream (one taken within us of the one
 * before), each waits up to us microseconds, from its submit, for others
 * to share its transaction and statement (until DB_GATHER_ROWS are held;
 * lease grants run meanwhile, and any other write ends the wait); 0 (as
 * db_open leaves it) runs each batch at once.  Loop thread, any time. */
void db_set_result_gather(struct db *db, int64_t us);

/* True while the last connection attempt or statement succeeded.  Any
 * thread. */
bool db_healthy(struct db *db);

/* True once the connection was re-established but another coordinator
 * had become active meanwhile: this one must stop.  Any thread. */
bool db_lost_active(struct db *db);

/* How long, in ms, the database thread has been inside the batch of
 * operations it runs now (0: waiting for work; a thread that waits on
 * purpose, for the database at start or as a standby, counts as waiting).
 * Any thread: for the service manager's watchdog. */
int64_t db_busy_ms(struct db *db);

/* The server process id of the current connection (0: none yet), for
 * the job lane's check that the main connection is still the active
 * coordinator's.  Any thread. */
int db_backend_pid(struct db *db);

/* True while the start operation waits because another coordinator is
 * active on this database.  Any thread. */
bool db_standby(struct db *db);

/* Stops the thread after it finished what was queued and runs the
 * remaining done callbacks.  Loop thread; NULL is fine. */
void db_close(struct db *db);

/* Frees what a DB_OP_START returned (the out arrays of op->u.start, and
 * each live job's requirements) and clears them; the op itself stays the
 * caller's.  Safe on a start op that failed part way or was freed already. */
void db_start_result_free(struct db_op *op);

#endif
