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

/* At most this many operations share one transaction. */
#define DB_BATCH_MAX 512

/* Rows per multi-row INSERT when a job is expanded. */
#define DB_TASK_CHUNK 1000

struct db {
	uv_loop_t *loop;
	char *conninfo;
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
	int64_t next_connect_ms;
	int backoff_ms;
};

/* ---- statement helpers (db-exec.c) ---- */

struct params {
	const char **v;
	char **owned;
	size_t n, cap;
	bool oom;
};

void params_init(struct params *p);
void params_fini(struct params *p);
/* Appends a parameter and "$N" to sql.  s is copied. */
void param(struct params *p, struct hf_buf *sql, const char *s);
void paramf(struct params *p, struct hf_buf *sql, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void param_float(struct params *p, struct hf_buf *sql, double v);
void op_error(struct db_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void first_line(char *s);
/* Runs sql with params; want is the expected status.  Returns 0 with
 * *ret_res (when asked for; PQclear it), -ENOTCONN when the connection is
 * gone, -EIO when the statement failed, -ENOMEM. */
int db_exec(struct db *db, struct db_op *op, const char *sql, const struct params *p,
	    ExecStatusType want, PGresult **ret_res);
int db_cmd(struct db *db, struct db_op *op, const char *sql);
uint64_t get_u64(PGresult *res, int row, int col);
double get_double(PGresult *res, int row, int col);

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
	" array_to_string(coalesce(t.device_indices, ARRAY[t.device_index]), ',')"

/* Reads the rows of a LIVE_TASK_COLUMNS query into a malloc'd array. */
int live_tasks_from(PGresult *res, struct db_live_task **ret, size_t *ret_n);

/* ---- the operations: each returns 0 or a negative errno with op->err ---- */

int run_start(struct db *db, struct db_op *op);               /* db-start.c */
int run_job_create(struct db *db, struct db_op *op);          /* db-jobs.c */
int run_job_cancel(struct db *db, struct db_op *op);
int run_job_retry(struct db *db, struct db_op *op);
int run_lease_grant(struct db *db, struct db_op *op);         /* db-leases.c */
int run_lease_expire(struct db *db, struct db_op *op);
int run_result_store(struct db *db, struct db_op *op);        /* db-results.c */
int run_worker_upsert(struct db *db, struct db_op *op);       /* db-workers.c */
int run_drain(struct db *db, struct db_op *op);
int run_health_store(struct db *db, struct db_op *op);
int run_telemetry_sample(struct db *db, struct db_op *op);
int run_job_status(struct db *db, struct db_op *op);          /* db-reads.c */
int run_job_list(struct db *db, struct db_op *op);
int run_results(struct db *db, struct db_op *op);
int run_task_explain(struct db *db, struct db_op *op);

#endif
