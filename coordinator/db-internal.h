/* SPDX-License-Identifier: MIT
 *
 * What the files of the database layer share, and nothing outside it may
 * use: struct db, the statement helpers (db-exec.c), the connection
 * (db-start.c) and one run_* function per operation kind, which the
 * database thread (db-thread.c) dispatches to.  Everything declared here
 * runs on the database thread only, except where a comment says otherwise.
 */
#ifndef HF_DB_INTERNAL_H
#define HF_DB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "db.h"
#include "hf_util.h"

/* Serialises schema migrations between coordinators sharing a database. */
#define DB_MIGRATION_LOCK 0x68666c01
/* Held, for as long as its connection lives, by the one active coordinator;
 * a standby waits for it. */
#define DB_ACTIVE_LOCK "1751543298"

/* SQL: the rows of pg_locks in which server process $1 holds the active
 * coordinator's lock (one, or none). */
#define DB_ACTIVE_LOCK_OF_PID_1 \
	"pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1::int" \
	" AND classid = 0 AND objid = " DB_ACTIVE_LOCK " AND objsubid = 1"

/* Held shared by every job lane transaction, from its check that its main
 * connection is still active until it ends; a coordinator that becomes
 * active takes it exclusively once before it loads the running jobs, so a
 * job the previous one's lane was committing is loaded, not left until a
 * later restart. */
#define DB_JOB_LANE_LOCK "1751543299"

/* SQL: attempt row a's lease has not ended.  Written so that PostgreSQL
 * cannot use the partial index attempts_running_idx (WHERE ended_at IS NULL)
 * for it: the generic plans of the statements that end many leases at once
 * (results, expiries, a job's cancel) estimate their rows and the running
 * attempts at about one each, and with that index the attempts drove a
 * nested loop that read every row of the statement once per running
 * attempt.  A statement of 512 results cost 236 us a row against 94 us with
 * the primary key (bench/pg-result-cost.py --batches 100,300,512), so
 * a backlog of results made each one dearer. */
#define DB_ATTEMPT_OPEN(a) "coalesce(" a ".ended_at, 'infinity') = 'infinity'"

/* A job some of whose tasks its submit left to write (task_plans,
 * db-plans.c): it is not done, whatever its written tasks' states. */
#define DB_JOB_UNWRITTEN(j) "EXISTS (SELECT 1 FROM task_plans p WHERE p.job_id = " j ")"

/* A gathered group of result stores is split over the result lane from
 * this many results on (db-result-lane.c): only
 * when the results come faster than one connection stores them, so that
 * the gathering reached its cap (twice DB_GATHER_ROWS with a lane), and
 * each half is a statement as large as one connection's.  Split at 64,
 * groups of 40 to 100 results (real hf-workers) cost PostgreSQL 40 to 45 us
 * more a task for no more throughput (performance-history.md). */
#define DB_LANE_MIN_ROWS (2 * DB_GATHER_ROWS)

/* At most this many operations share one transaction. */
#define DB_BATCH_MAX 512

/* At most this many results (or leases) of consecutive ops of one group
 * commit are stored (granted) by one statement. */
#define DB_MERGE_ROWS_MAX 4096

/* A gathering of result stores (db-thread.c) ends early at this many
 * results.  A statement's execution costs about the same per result at 30
 * and at 100 (bench/pg-result-cost.py), but the transaction's own costs
 * keep falling: with 32 simulated workers a cap of 32 gave 24 to 25 us of
 * the coordinator's CPU and 96 to 100 of PostgreSQL's a task, 128 gave 6
 * to 9 and 59 to 69 (performance-history.md). */
#define DB_GATHER_ROWS 128

/* Rows per multi-row INSERT when a job is expanded. */
#define DB_TASK_CHUNK 10000

/* At most this many statement texts are prepared per connection; beyond,
 * statements run unprepared (there are about forty). */
#define DB_PREPARED_MAX 96

/* At most this many statements and commands are in flight in one pipeline
 * (db_pipe_*): a group of DB_BATCH_MAX ops sends at most seven each. */
#define DB_PIPE_MAX 4096

/* What a result in flight in a pipeline answers. */
enum db_pipe_entry {
	DB_PIPE_PREPARE, /* a statement's preparation, ahead of its first run */
	DB_PIPE_CMD,     /* a command without parameters (BEGIN, SET, COMMIT) */
	DB_PIPE_STMT,    /* a statement whose result its sender reads */
};

struct db {
	uv_loop_t *loop;
	char *conninfo;
	const char *app_name;              /* db_set_name: a static string */
	PGconn *conn;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct db_op *in_head, *in_tail;   /* queued by the loop; under mu */
	struct db_op *out_head, *out_tail; /* done, for the loop; under mu */
	bool stopping;                     /* under mu */
	uv_async_t async;
	atomic_bool healthy;
	bool active;                       /* holds the active-coordinator lock */
	atomic_bool lost_active;           /* reconnected but another coordinator took over */
	atomic_bool standby;               /* the start waits for another coordinator to go */
	atomic_int backend_pid;            /* PQbackendPID of the connection, 0: none */
	/* Monotonic ms when the thread began its current batch, or 0 while it
	 * waits (see db_busy_ms); the start's deliberate waits refresh it. */
	_Atomic int64_t busy_since_ms;
	int64_t next_connect_ms;
	int backoff_ms;
	/* Result stores wait up to gather_us for others while they stream in
	 * (db_set_result_gather; 0: never); last_result_us is when the
	 * thread last took one (monotonic us; the database thread's alone). */
	_Atomic int64_t gather_us;
	int64_t last_result_us;
	void (*observe)(void *arg, enum db_op_kind kind, int64_t us); /* loop thread */
	void *observe_arg;
	/* The statements prepared on this connection: their texts (copies),
	 * statement i named "s<i>". */
	char *prepared[DB_PREPARED_MAX];
	size_t n_prepared;
	unsigned generic_runs;             /* db_pipe_send_generic's calls since its last re-plan */
	size_t generic_rows;               /* and their rows */
	/* The open transaction set plan_cache_mode = force_generic_plan for
	 * all of it (a group of result stores and lease grants only), so
	 * db_pipe_send_generic has nothing to set and reset around its
	 * statement. */
	bool generic_txn;
	/* The pipeline in flight (db_pipe_*): what each result answers, in
	 * the order sent; how many were sent and read; whether the sync was
	 * sent; and how many of the prepared statements PostgreSQL has said
	 * it made (those after it were prepared in this pipeline). */
	uint8_t pipe[DB_PIPE_MAX];
	size_t pipe_sent, pipe_read;
	bool pipe_synced;
	size_t pipe_prepared_ok;
	/* The warm-up (db-warm.c) this connection had, run again on every new
	 * one: warmed is false until the first DB_OP_WARM. */
	bool warmed;
	struct db_warm warm;
	/* Result stores on two connections (db_set_result_lane): the lane, a
	 * second db whose thread stores half of a large group of result
	 * stores while this one stores the other half; or NULL.  On the lane:
	 * lane_of, the db whose thread gives it its ops, which go back to that
	 * thread (lane_pending, lane_cond, under this db's mu), never to the
	 * loop; and active_pid, the server process of lane_of's connection,
	 * which each of the lane's transactions checks still holds the active
	 * coordinator's lock (db-result-lane.c, result_lane_check_send). */
	struct db *result_lane;
	struct db *lane_of;
	size_t lane_pending;
	pthread_cond_t lane_cond;
	int active_pid;
	/* Groups split over the lane, and those of them whose lane half
	 * failed and was stored again on this connection (db_result_lane_counts). */
	_Atomic uint64_t lane_splits, lane_retries;
};

/* Tells db_busy_ms that the thread, inside a batch, waits on purpose and
 * is alive.  Database thread. */
void db_alive(struct db *db);

/* ---- the group commit (db-thread.c), for the result lane ---- */

/* Runs ops[0..n) (all writes) in one transaction; each op's rc and err
 * say how it went.  Database thread (main or lane). */
void db_run_group(struct db *db, struct db_op **ops, size_t n);
/* Hands ops[0..n) back: to the loop, or on a lane to the thread that gave
 * them. */
void db_ops_complete(struct db *db, struct db_op **ops, size_t n);

/* ---- the result lane (db-result-lane.c) ---- */

/* On the main database thread: stores the leading result stores of list
 * over two connections when they are enough to split, and returns what is
 * left of list to run (list itself when they are not). */
struct db_op *db_results_on_two_connections(struct db *db, struct db_op *list);
/* On a result lane (db->lane_of), in the pipelined transaction open: the
 * statements that hold DB_JOB_LANE_LOCK shared and fail the transaction
 * unless db->active_pid still holds the active coordinator's lock, and
 * their reading back. */
int result_lane_check_send(struct db *db, struct db_op *op);
int result_lane_check_read(struct db *db, struct db_op *op);

/* ---- statement helpers (db-exec.c) ---- */

/* Every value reaches PostgreSQL as a parameter; statement texts are
 * constants (string literals), so each is prepared once per connection and
 * a value can never change what a statement says.  A varying number of rows
 * travels as one array parameter per column: "unnest($1::bigint[],
 * $2::int[], ...)".
 *
 * A value that cannot be stored is refused while the parameters are built:
 * a non-finite double, or a number beyond its column's type (an unsigned
 * value above INT32_MAX for an integer column, above INT64_MAX for a
 * bigint).  The first refusal is kept with the name of the value, later
 * appends are ignored, and db_exec then fails with -EINVAL without sending
 * the statement. */
#define DB_PARAMS_MAX 24

struct db_params {
	const char *v[DB_PARAMS_MAX];
	char *owned[DB_PARAMS_MAX];
	int n;
	int rc;                  /* 0, or the first failure: -ENOMEM, -EINVAL */
	char err[256];           /* why, for -EINVAL */
};

void db_params_init(struct db_params *p);
void db_params_fini(struct db_params *p);
/* Scalars: $N is the next one.  s is copied; NULL is SQL NULL. */
void db_param_text(struct db_params *p, const char *s);
void db_param_u64(struct db_params *p, const char *name, uint64_t v);  /* bigint */
void db_param_u32(struct db_params *p, const char *name, uint32_t v);  /* integer */
void db_param_i32(struct db_params *p, int32_t v);
void db_param_bool(struct db_params *p, bool v);
/* A double (float8; timestamps as to_timestamp($N::float8)); refuses NaN
 * and the infinities. */
void db_param_double(struct db_params *p, const char *name, double v);

/* An array parameter's text, "{e1,e2,...}", with text elements quoted and
 * '"' and '\' escaped, so any string comes back as it was.  Refusals are
 * recorded in the params the array was made for. */
struct db_array {
	struct hf_buf text;
	size_t n;
	struct db_params *p;
};

void db_array_init(struct db_array *a, struct db_params *p);
void db_array_fini(struct db_array *a);
void db_array_text(struct db_array *a, const char *s);             /* NULL: a NULL element */
void db_array_u64(struct db_array *a, const char *name, uint64_t v); /* bigint[] */
void db_array_u32(struct db_array *a, const char *name, uint32_t v); /* int[] */
void db_array_i32(struct db_array *a, int32_t v);
void db_array_i64(struct db_array *a, int64_t v);
void db_array_bool(struct db_array *a, bool v);
void db_array_double(struct db_array *a, const char *name, double v); /* refuses non-finite */
void db_array_null(struct db_array *a);
/* bigint[] of microseconds since the epoch; refuses non-finite seconds. */
void db_array_epoch_us(struct db_array *a, const char *name, double seconds);
/* Appends a's text as the next parameter ($N) and empties a. */
void db_param_array(struct db_params *p, struct db_array *a);

void op_error(struct db_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void first_line(char *s);
/* Runs sql, a constant text, with p (NULL: none); want is the expected
 * status.  Returns 0 with *ret_res (when asked for; PQclear it),
 * -ENOTCONN when the connection is gone, -EINVAL when a value was refused
 * (by the helpers above, or by PostgreSQL: SQLSTATE classes 22, data
 * exception, and 23, integrity constraint violation), -EIO when the
 * statement failed otherwise, -ENOMEM; op->err says why. */
int db_exec(struct db *db, struct db_op *op, const char *sql, const struct db_params *p,
	    ExecStatusType want, PGresult **ret_res);
int db_cmd(struct db *db, struct db_op *op, const char *sql);

/* Pipelines (libpq's pipeline mode): the statements of a transaction sent
 * at once, BEGIN and COMMIT included, and their results read back in the
 * order sent, so a transaction costs one round trip to PostgreSQL, not one
 * per statement.  db_pipe_begin; db_pipe_cmd and db_pipe_send (each
 * statement prepared once per connection, the preparation sent ahead of
 * its first run in the same pipeline); db_pipe_sync; db_pipe_read for each
 * statement sent (and db_pipe_read_cmd for a command whose outcome
 * matters, such as COMMIT); db_pipe_end always, also after a failure.
 * When a statement fails, PostgreSQL skips the rest up to the sync (a
 * COMMIT among them: the transaction stays open and failed until a
 * ROLLBACK) and db_pipe_read reports each skipped one as not run.  The
 * functions return 0 or a negative errno with op->err as db_exec does
 * (-ENOTCONN once the connection is gone). */
int db_pipe_begin(struct db *db, struct db_op *op);
int db_pipe_cmd(struct db *db, struct db_op *op, const char *sql);
int db_pipe_send(struct db *db, struct db_op *op, const char *sql, const struct db_params *p);
/* db_pipe_send for the statements of every result and lease: they cost
 * more to plan (a custom plan each time, 2 ms for the result statement)
 * than to run, so they run with the plan made once for any values
 * (plan_cache_mode force_generic_plan, set for that statement alone, or
 * for the whole transaction when it holds nothing else: db->generic_txn;
 * PostgreSQL's own choice keeps custom plans, since a generic plan's row
 * estimate of an unnest is far above the few rows a report has).  A plan
 * made when the tables were small (a new database) stays a bad plan as
 * they grow (a hash join over the whole of attempts, results read in full
 * by a summary trigger), so after DB_GENERIC_REPLAN statements, or
 * statements of DB_GENERIC_REPLAN_ROWS rows in all (rows: what the
 * statement writes), the session's plans (the trigger functions' too) are
 * discarded and made again (DISCARD PLANS) from the tables as they are
 * then.  The tables grow with the rows written: by statements alone, a
 * backlog of results in statements of 512 kept the plans of its start for
 * 131,072 results.  Not by time: a quiet coordinator's few statements
 * would each pay a new plan (a millisecond or more) for tables that did
 * not change. */
#define DB_GENERIC_REPLAN 256
#define DB_GENERIC_REPLAN_ROWS 8192
int db_pipe_send_generic(struct db *db, struct db_op *op, const char *sql, const struct db_params *p,
			 size_t rows);
/* Sends the sync that makes PostgreSQL run what was sent and answer. */
int db_pipe_sync(struct db *db, struct db_op *op);
/* The next statement's result (the commands and preparations sent before
 * it are read on the way and fail it if they failed). */
int db_pipe_read(struct db *db, struct db_op *op, ExecStatusType want, PGresult **ret_res);
/* The next result, that of a command. */
int db_pipe_read_cmd(struct db *db, struct db_op *op);
/* Reads whatever is left, up to the sync (syncing first if need be), and
 * leaves pipeline mode.  Returns r, or when r is 0 the first failure among
 * what was left (a COMMIT's). */
int db_pipe_end(struct db *db, struct db_op *op, int r);

/* One statement of a group commit that stores the results, or grants the
 * leases, of ops[0..n_ops) (all of one kind, at most DB_MERGE_ROWS_MAX
 * rows), sent into a pipeline by its *_send function and read back by its
 * *_read (db-results.c, db-leases.c); a failure is reported on ops[0].
 * The sender fills the rest; db_merged_fini frees it. */
struct db_merged {
	struct db_op **ops;
	size_t n_ops;
	void *rows;       /* row ord (1-based) -> where it came from */
	void *scratch;    /* what the read needs, allocated before sending */
	size_t n_rows;
	bool sent;        /* a statement was sent (none when there are no rows) */
};
void db_merged_fini(struct db_merged *m);
int lease_grant_send(struct db *db, struct db_merged *m);
int lease_grant_read(struct db *db, struct db_merged *m);
int result_store_send(struct db *db, struct db_merged *m);
int result_store_read(struct db *db, struct db_merged *m);
/* After result stores of ops[0..n_ops) ran at once in two transactions
 * (db-result-lane.c), neither saw the other's outcomes: the jobs
 * of jobs[0..n_jobs) (each with a final result on both connections, none
 * finished by either) are finished now if their last task got its
 * outcome, each told to the last op with a final result of it. */
int result_jobs_finish(struct db *db, struct db_op **ops, size_t n_ops, const uint64_t *jobs, size_t n_jobs);
/* Sends m, reads it back and ends the pipeline, inside the transaction
 * that is open (one round trip). */
int db_merged_run(struct db *db, struct db_merged *m, int (*send)(struct db *, struct db_merged *),
		  int (*read)(struct db *, struct db_merged *));

uint64_t get_u64(PGresult *res, int row, int col);
double get_double(PGresult *res, int row, int col);
/* Forgets the statements prepared on the connection (a new one has none). */
void db_prepared_reset(struct db *db);

/* ---- the connection (db-start.c) ---- */

bool db_connected(struct db *db);
/* Connects when needed, with backoff between failed attempts.  Returns 0
 * or -ENOTCONN with the reason in op->err. */
int db_ensure_connected(struct db *db, struct db_op *op);

/* The columns live_tasks_from reads, in its order. */
#define LIVE_TASK_COLUMNS \
	"t.id, t.job_id, t.attempt, t.model_type, t.backend, t.kind, t.batch_size," \
	" t.seq_len, t.iterations, t.warmup, t.timeout_s, t.precision, t.state," \
	" coalesce(t.worker_id, '')," \
	" array_to_string(coalesce(t.device_indices, ARRAY[t.device_index]), ',')," \
	" t.mode"

/* Reads the rows of a LIVE_TASK_COLUMNS query into a malloc'd array. */
int live_tasks_from(PGresult *res, struct db_live_task **ret, size_t *ret_n);

/* ---- the operations: each returns 0 or a negative errno with op->err ---- */

int run_start(struct db *db, struct db_op *op);               /* db-start.c */
int run_warm(struct db *db, struct db_op *op);                /* db-warm.c */
/* A new connection of a database thread that ran DB_OP_WARM: the same
 * warm-up again (errors logged, not returned). */
void db_warm_again(struct db *db);
int run_job_create(struct db *db, struct db_op *op);          /* db-jobs.c */
int run_job_retry(struct db *db, struct db_op *op);
/* For a warm-up (db-warm.c), in the transaction open, to be rolled back:
 * a job of id and its one task of id (the registry's first model, cpu,
 * test), the task through the statement a submit uses, with no id drawn
 * from a sequence; first, when active_pid is not 0, the job lane's check
 * that the main connection is active. */
int job_warm_rows(struct db *db, struct db_op *op, const struct registry *reg, uint64_t id, int active_pid);
/* The one ownership rule of cancel and retry (db-jobs.c): with an owner (a
 * submitter's token), a job another submitter made is not this request's
 * to touch. */
bool db_others_job(const char *owner, const char *submitter);
/* On the job lane's connection, in its transaction: is active_pid (the
 * main connection's server process) still the active coordinator's?
 * -EIO with op->err when not. */
int job_lane_still_active(struct db *db, struct db_op *op, int active_pid);
/* Stores tasks [start, n_tasks) of the job op (DB_OP_JOB_CREATE) creates
 * as task_plans rows of op->u.job_create.slice tasks each (db-plans.c). */
int job_plan_store(struct db *db, struct db_op *op, size_t start);
int run_job_plan_slice(struct db *db, struct db_op *op);
/* At start, before the live tasks are loaded: every task_plans row left
 * written as tasks. */
int plans_write_all(struct db *db, struct db_op *op);
int run_job_cancel(struct db *db, struct db_op *op);          /* db-cancel.c */
int run_job_cancel_slice(struct db *db, struct db_op *op);
int run_lease_grant(struct db *db, struct db_op *op);         /* db-leases.c */
int run_lease_expire(struct db *db, struct db_op *op);
int run_result_store(struct db *db, struct db_op *op);        /* db-results.c */
/* The same for several ops of one kind with one statement (see
 * DB_MERGE_ROWS_MAX); a failure is reported on ops[0] alone, and the
 * caller then runs each op by itself to learn whose it was. */
int run_lease_grant_merged(struct db *db, struct db_op **ops, size_t n_ops);
int run_result_store_merged(struct db *db, struct db_op **ops, size_t n_ops);
int run_worker_upsert(struct db *db, struct db_op *op);       /* db-workers.c */
int run_drain(struct db *db, struct db_op *op);
int run_health_store(struct db *db, struct db_op *op);
int run_telemetry_sample(struct db *db, struct db_op *op);
int run_job_status(struct db *db, struct db_op *op);          /* db-reads.c */
int run_job_list(struct db *db, struct db_op *op);
int run_results(struct db *db, struct db_op *op);
int run_task_explain(struct db *db, struct db_op *op);
int run_logs(struct db *db, struct db_op *op);                /* db-reads-people.c */
int run_compare(struct db *db, struct db_op *op);
int run_history(struct db *db, struct db_op *op);
int run_report(struct db *db, struct db_op *op);
/* db-reads.c: packs env into op's reply (op_error on failure). */
int db_reply_pack(struct db_op *op, Hf__Envelope *env);
/* How many of res's leading rows fit in a reply of about budget bytes
 * (their texts and room for the rest of each; at least one when there is
 * one): a read reply keeps those and says the rest was left out. */
int db_rows_within(PGresult *res, size_t budget);
/* db-reads.c: fills js from row of a "SELECT " JOB_COLUMNS result and the
 * job's per-status counts (at most max_counts, in count_mem, pointed to
 * from counts_store). */
#define JOB_COLUMNS \
	"id, name, submitter, priority, state, extract(epoch from created_at)," \
	" extract(epoch from finished_at), task_count"
int job_status_fill(struct db *db, struct db_op *op, PGresult *jr, int row, Hf__JobStatus *js,
		    Hf__StatusCount **counts_store, Hf__StatusCount *count_mem, size_t max_counts);
int run_token_create(struct db *db, struct db_op *op);        /* db-auth.c */
int run_token_revoke(struct db *db, struct db_op *op);
int run_token_touch(struct db *db, struct db_op *op);
int run_token_list(struct db *db, struct db_op *op);
int run_audit_list(struct db *db, struct db_op *op);
int run_auth_bootstrap(struct db *db, struct db_op *op);

/* db-start.c: applies the migrations this build knows. */
int db_migrate(struct db *db, struct db_op *op);
/* db-auth.c: reads the live tokens into op->u.start (at start). */
int db_tokens_load(struct db *db, struct db_op *op);
/* db-auth.c: writes op's audit row (op->audit, with the target the op
 * acted on), in the transaction of the op; nothing when op->audit.action
 * is NULL or the op changed nothing (not found, forbidden, a repeated
 * submit). */
int db_audit_write(struct db *db, struct db_op *op);

#endif
