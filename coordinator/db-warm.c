/* SPDX-License-Identifier: MIT
 *
 * Warming a connection (DB_OP_WARM): before any request needs them, a new
 * connection runs its hot statements once on a task made for the purpose,
 * in a transaction that is rolled back.  The first time a PostgreSQL
 * session runs a statement it loads the catalog entries of every table,
 * index and function the statement touches, compiles the trigger
 * functions it fires, makes the plans of the foreign-key checks and of
 * the triggers' own statements (those only when there are rows) and plans
 * the statement; each once per session.  Without this the first submit
 * after a coordinator started paid all of it, and a new connection of the
 * job lane with it: submit -> first lease 44 to 52 ms for the first job
 * against 4 to 6 ms for the next ones (bench/run.py latency;
 * docs/performance-history.md, "A new connection warmed").
 *
 * The task: a job and one task (the registry's first model, cpu, test)
 * whose ids are the largest a bigint holds (one less on the job lane, so
 * the two warm-ups do not wait for each other), ids no sequence gives, so
 * no id is drawn.  The main connection inserts them, grants the task's
 * lease and stores a passed result for it through the statements the
 * group commit sends (the result's own id is drawn from its sequence and
 * lost with the rollback, as any rolled-back insert's); the job lane runs
 * its check that the main connection is active and inserts them through
 * the statements a submit uses.  Nothing is kept: the transaction is
 * rolled back whatever happened.  The plans made here are made for one
 * row, as the first statements' were before; they are made again at the
 * connection's first re-plan (DB_GENERIC_REPLAN).
 *
 * The coordinator asks for the warm-up once it is active, before it
 * listens (main.c); a connection made again later (a lost session, a
 * restarted PostgreSQL) is warmed by db_ensure_connected through
 * db_warm_again.  A warm-up that fails is logged (a warning for the
 * coordinator's request, debug for a connection made again) and changes
 * nothing: the statements then warm on first use, as without it.
 *
 * Database thread only.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_util.h"

#define WARM_ID_MAIN ((uint64_t)INT64_MAX)
#define WARM_ID_JOB_LANE ((uint64_t)INT64_MAX - 1)
#define WARM_WORKER "hf-coordinator warm-up"

/* The task's lease granted and its result stored, through the group
 * commit's statements (a pipeline each, in the open transaction). */
static int warm_lease_and_result(struct db *db, struct db_op *op)
{
	struct db_lease lease = { .task_id = WARM_ID_MAIN, .attempt = 1, .worker_id = WARM_WORKER,
				  .n_devices = 1 };
	Hf__TaskResult tr;
	struct db_result result = { .r = &tr, .worker_id = WARM_WORKER, .metrics_json = "{}",
				    .env_json = "{}", .backend = HF__BACKEND__BACKEND_CPU };
	struct db_op grant = { .kind = DB_OP_LEASE_GRANT }, store = { .kind = DB_OP_RESULT_STORE };
	struct db_op *g = &grant, *s = &store;
	struct db_merged mg = { .ops = &g, .n_ops = 1 }, ms = { .ops = &s, .n_ops = 1 };
	double now = hf_wall_s();
	int r;

	hf__task_result__init(&tr);
	tr.task_id = WARM_ID_MAIN;
	tr.attempt = 1;
	tr.status = HF__TASK_STATUS__STATUS_PASSED;
	tr.started_at = now;
	tr.finished_at = now;
	grant.u.lease.v = &lease;
	grant.u.lease.n = 1;
	store.u.result.v = &result;
	store.u.result.n = 1;
	r = db_merged_run(db, &mg, lease_grant_send, lease_grant_read);
	db_merged_fini(&mg);
	if (r == 0)
		r = db_merged_run(db, &ms, result_store_send, result_store_read);
	db_merged_fini(&ms);
	free(store.u.result.finished_jobs);
	if (r < 0)
		snprintf(op->err, sizeof(op->err), "%s", grant.err[0] ? grant.err : store.err);
	return r;
}

int run_warm(struct db *db, struct db_op *op)
{
	int r = db_cmd(db, op, "BEGIN");

	if (r == 0 && op->u.warm.job_lane)
		r = job_warm_rows(db, op, op->u.warm.reg, WARM_ID_JOB_LANE, op->u.warm.active_pid);
	else if (r == 0)
		r = job_warm_rows(db, op, op->u.warm.reg, WARM_ID_MAIN, 0);
	if (r == 0 && !op->u.warm.job_lane && op->u.warm.reg && op->u.warm.reg->n > 0)
		r = warm_lease_and_result(db, op);
	if (db_connected(db))
		PQclear(PQexec(db->conn, "ROLLBACK"));
	db->warm = op->u.warm;
	db->warmed = true;
	if (r < 0)
		log_debug("warming the database connection failed (its statements warm on first use): %s",
			  op->err);
	return r;
}

void db_warm_again(struct db *db)
{
	struct db_op op = { .kind = DB_OP_WARM, .u.warm = db->warm };

	run_warm(db, &op);
}
