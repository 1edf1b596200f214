/* SPDX-License-Identifier: MIT
 *
 * Cancel writes of the database layer (see db.h): cancelling one task, and
 * cancelling a job in slices.  A job's cancel op cancels the job itself,
 * its leased tasks (their workers are told to stop) and at most
 * op->u.cancel.slice of its queued tasks in one transaction, and counts the
 * queued ones left; slice ops (DB_OP_JOB_CANCEL_SLICE, sent by
 * cancel-feed.c one after the other) cancel the rest, at most slice tasks
 * each.  Each slice is one bounded statement inside a group commit, so
 * results, leases and registrations queued meanwhile run between slices
 * instead of waiting for one statement over every task of the job (with
 * the per-row summary triggers, seconds for 100,000 tasks).
 *
 * From the job's own cancel on, no task of the job is leased: the lease
 * statement (db-leases.c) grants none of a cancelled job, and the loop
 * drops the job's queued tasks from the scheduler when the cancel is
 * answered.  A slice takes only queued tasks of a job still cancelled, so
 * a coordinator stopped mid-cancel finishes it after its start
 * (db-start.c lists the jobs) and a slice run twice changes nothing.
 * Runs on the database thread only, inside the group commit's transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_util.h"

/* Cancels one task, when it is queued or leased; its job is done when it
 * was the job's last live task. */
static int cancel_task(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	/* An id beyond bigint names no task. */
	if (op->u.cancel.task_id > INT64_MAX)
		return 0;
	db_params_init(&p);
	db_param_u64(&p, "task id", op->u.cancel.task_id);
	r = db_exec(db, op,
		    "SELECT t.job_id, j.submitter FROM tasks t JOIN jobs j ON j.id = t.job_id"
		    " WHERE t.id = $1::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	if (r == 0) {
		op->u.cancel.found = PQntuples(res) == 1;
		if (op->u.cancel.found) {
			op->u.cancel.job_id = get_u64(res, 0, 0);
			hf_strlcpy(op->u.cancel.submitter, PQgetvalue(res, 0, 1), sizeof(op->u.cancel.submitter));
		}
		PQclear(res);
	}
	if (r == 0 && op->u.cancel.found)
		op->u.cancel.forbidden = db_others_job(op->u.cancel.owner, op->u.cancel.submitter);
	if (r == 0 && op->u.cancel.found && !op->u.cancel.forbidden)
		r = db_exec(db, op,
			    "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now()"
			    " WHERE id = $1::bigint AND state IN ('queued', 'leased')"
			    " RETURNING id, attempt, job_id),"
			    " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
			    " WHERE a.task_id = c.id AND a.attempt = c.attempt AND " DB_ATTEMPT_OPEN("a") "),"
			    " j AS (UPDATE jobs SET state = 'done', finished_at = now()"
			    " WHERE id IN (SELECT job_id FROM c) AND state = 'running' AND NOT EXISTS"
			    " (SELECT 1 FROM tasks t WHERE t.job_id = jobs.id"
			    " AND t.state IN ('queued', 'leased') AND t.id <> $1::bigint)"
			    " AND NOT " DB_JOB_UNWRITTEN("jobs.id") ")"
			    " SELECT count(*) FROM c",
			    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0 || !op->u.cancel.found || op->u.cancel.forbidden)
		return r;
	op->u.cancel.n_cancelled = (uint32_t)atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* Cancels at most op->u.cancel.slice queued tasks of op->u.cancel.job_id,
 * if the job is cancelled (a retry that made it run again stops the
 * slices); adds them to n_cancelled and sets last when fewer were left. */
static int cancel_slice(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	uint32_t n;
	int r;

	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.cancel.job_id);
	db_param_u32(&p, "slice", op->u.cancel.slice ? op->u.cancel.slice : 1);
	/* A queued task has no attempt still open (a lease's attempt ends
	 * when its task is queued again): only tasks change.
	 *
	 * The slice's ids are gathered once, into an array (an InitPlan), and
	 * the update finds its rows by id in an index: whatever the planner
	 * believes of tasks, one slice reads about slice rows.  Written as
	 * `t.id IN (SELECT ... LIMIT n)`, a planner that believed few tasks
	 * queued (statistics taken before a 100,000-task submit) joined every
	 * queued task with the subquery run again for each one: 69 million
	 * rows compared, 25 to 52 s for one slice of 500 (docs/performance.md). */
	r = db_exec(db, op,
		    "WITH c AS (UPDATE tasks t SET state = 'cancelled', finished_at = now()"
		    " WHERE t.id = ANY (ARRAY(SELECT s.id FROM tasks s"
		    " WHERE s.job_id = $1::bigint AND s.state = 'queued' LIMIT $2::int))"
		    " AND t.state = 'queued'"
		    " AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = $1::bigint AND j.state = 'cancelled')"
		    " RETURNING t.id)"
		    " SELECT count(*) FROM c",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	n = (uint32_t)atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	op->u.cancel.n_cancelled += n;
	op->u.cancel.last = n < (op->u.cancel.slice ? op->u.cancel.slice : 1);
	return 0;
}

int run_job_cancel(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	op->u.cancel.found = op->u.cancel.forbidden = op->u.cancel.last = false;
	op->u.cancel.submitter[0] = '\0';
	op->u.cancel.n_cancelled = op->u.cancel.remaining = op->u.cancel.unwritten = 0;
	if (op->u.cancel.task_id)
		return cancel_task(db, op);
	if (op->u.cancel.job_id > INT64_MAX)
		return 0;
	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.cancel.job_id);
	r = db_exec(db, op, "SELECT state, submitter FROM jobs WHERE id = $1::bigint", &p, PGRES_TUPLES_OK,
		    &res);
	if (r == 0) {
		op->u.cancel.found = PQntuples(res) == 1;
		if (op->u.cancel.found)
			hf_strlcpy(op->u.cancel.submitter, PQgetvalue(res, 0, 1), sizeof(op->u.cancel.submitter));
		PQclear(res);
	}
	if (r == 0 && op->u.cancel.found)
		op->u.cancel.forbidden = db_others_job(op->u.cancel.owner, op->u.cancel.submitter);
	/* The job, and its leased tasks: as many as its workers run, few
	 * beside its queued ones. */
	if (r == 0 && op->u.cancel.found && !op->u.cancel.forbidden)
		r = db_exec(db, op,
			    "WITH j AS (UPDATE jobs SET state = 'cancelled', finished_at = now()"
			    " WHERE id = $1::bigint AND state = 'running'),"
			    " c AS (UPDATE tasks SET state = 'cancelled', finished_at = now()"
			    " WHERE job_id = $1::bigint AND state = 'leased' RETURNING id, attempt),"
			    " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
			    " WHERE a.task_id = c.id AND a.attempt = c.attempt AND " DB_ATTEMPT_OPEN("a") ")"
			    " SELECT count(*) FROM c",
			    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0 || !op->u.cancel.found || op->u.cancel.forbidden)
		return r;
	op->u.cancel.n_cancelled = (uint32_t)atoi(PQgetvalue(res, 0, 0));
	PQclear(res);

	/* The first slice now: a job of up to one slice is cancelled whole
	 * in this transaction. */
	r = cancel_slice(db, op);
	if (r < 0)
		return r;
	/* Left: its queued tasks (for the slices) and the tasks its submit
	 * has not written yet (db-plans.c: written cancelled from now on). */
	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.cancel.job_id);
	db_param_bool(&p, op->u.cancel.last);
	r = db_exec(db, op, "SELECT CASE WHEN $2::boolean THEN 0 ELSE (SELECT count(*) FROM tasks"
		    " WHERE job_id = $1::bigint AND state = 'queued') END,"
		    " (SELECT coalesce(sum(cardinality(model)), 0) FROM task_plans WHERE job_id = $1::bigint)",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	uint64_t queued = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	uint64_t unwritten = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	op->u.cancel.last = queued == 0;
	op->u.cancel.unwritten = unwritten > UINT32_MAX ? UINT32_MAX : (uint32_t)unwritten;
	op->u.cancel.remaining = queued + unwritten > UINT32_MAX ? UINT32_MAX : (uint32_t)(queued + unwritten);
	return 0;
}

int run_job_cancel_slice(struct db *db, struct db_op *op)
{
	op->u.cancel.n_cancelled = 0;
	op->u.cancel.last = false;
	if (op->u.cancel.job_id > INT64_MAX) {
		op->u.cancel.last = true;
		return 0;
	}
	return cancel_slice(db, op);
}
