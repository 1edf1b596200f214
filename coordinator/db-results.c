/* SPDX-License-Identifier: MIT
 *
 * Result writes of the database layer (see db.h): storing a worker's results,
 * deciding each one's outcome (final, stale, duplicate, unknown, retried) and
 * finishing the jobs whose last task got its outcome.  Runs on the database
 * thread only, inside the group commit's transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

int run_result_store(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	free(op->u.result.finished_jobs);
	op->u.result.finished_jobs = NULL;
	op->u.result.n_finished_jobs = 0;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "WITH i (task_id, attempt, status, reason, metrics, env, weights, log_excerpt,"
			  " worker_id, device_index, exit_code, started_at, finished_at, retry, flaky) AS (VALUES ");
	for (size_t k = 0; k < op->u.result.n; k++) {
		struct db_result *d = &op->u.result.v[k];
		const Hf__TaskResult *t = d->r;
		d->outcome = DB_RESULT_UNKNOWN;
		d->job_id = 0;
		hf_buf_printf(&sql, "%s(%" PRIu64 "::bigint,%u::int,'%s'::text,", k ? "," : "",
			      t->task_id, t->attempt, hf_status_name(t->status));
		param(&p, &sql, t->reason ? t->reason : "");
		hf_buf_puts(&sql, "::text,");
		param(&p, &sql, d->metrics_json);
		hf_buf_puts(&sql, "::jsonb,");
		param(&p, &sql, d->env_json);
		hf_buf_puts(&sql, "::jsonb,");
		param(&p, &sql, t->weights ? t->weights : "");
		hf_buf_puts(&sql, "::text,");
		param(&p, &sql, t->log_excerpt ? t->log_excerpt : "");
		hf_buf_puts(&sql, "::text,");
		param(&p, &sql, d->worker_id);
		hf_buf_printf(&sql, "::text,%u::int,%d::int,to_timestamp(%.6f),to_timestamp(%.6f),%s,%s)",
			      t->device_index, t->exit_code, t->started_at, t->finished_at,
			      d->retry ? "true" : "false", d->flaky ? "true" : "false");
	}
	hf_buf_puts(&sql,
		    "), ins AS (INSERT INTO results (task_id, attempt, status, reason, metrics, env,"
		    " weights, log_excerpt, worker_id, device_index, exit_code, started_at, finished_at, stale,"
		    " retried, flaky_rerun)"
		    " SELECT i.task_id, i.attempt, i.status, i.reason, i.metrics, i.env, i.weights,"
		    " i.log_excerpt, i.worker_id, i.device_index, i.exit_code, i.started_at, i.finished_at,"
		    " NOT (t.state = 'leased' AND t.attempt = i.attempt),"
		    " i.retry AND t.state = 'leased' AND t.attempt = i.attempt,"
		    " i.flaky AND i.retry AND t.state = 'leased' AND t.attempt = i.attempt"
		    " FROM i JOIN tasks t ON t.id = i.task_id"
		    " ON CONFLICT (task_id, attempt) DO NOTHING"
		    " RETURNING id, task_id, attempt, status, stale, retried),"
		    " upd AS (UPDATE tasks t SET"
		    " state = CASE WHEN ins.retried THEN 'queued' ELSE ins.status END,"
		    " finished_at = CASE WHEN ins.retried THEN NULL ELSE now() END,"
		    " result_id = CASE WHEN ins.retried THEN NULL ELSE ins.id END,"
		    " worker_id = CASE WHEN ins.retried THEN NULL ELSE t.worker_id END"
		    " FROM ins WHERE t.id = ins.task_id AND NOT ins.stale RETURNING t.id),"
		    " att AS (UPDATE attempts a SET ended_at = now(), end_reason = 'result' FROM ins"
		    " WHERE a.task_id = ins.task_id AND a.attempt = ins.attempt AND a.ended_at IS NULL)"
		    " SELECT i.task_id, i.attempt, t.job_id, ins.stale, ins.retried"
		    " FROM i LEFT JOIN tasks t ON t.id = i.task_id"
		    " LEFT JOIN ins ON ins.task_id = i.task_id AND ins.attempt = i.attempt");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;

	struct hf_buf jobs;
	hf_buf_init(&jobs);
	for (int row = 0; row < PQntuples(res); row++) {
		uint64_t task_id = get_u64(res, row, 0);
		uint32_t attempt = (uint32_t)atoi(PQgetvalue(res, row, 1));
		for (size_t k = 0; k < op->u.result.n; k++) {
			struct db_result *d = &op->u.result.v[k];
			if (d->r->task_id != task_id || d->r->attempt != attempt)
				continue;
			if (PQgetisnull(res, row, 2))
				d->outcome = DB_RESULT_UNKNOWN;
			else if (PQgetisnull(res, row, 3))
				d->outcome = DB_RESULT_DUPLICATE;
			else if (strcmp(PQgetvalue(res, row, 3), "t") == 0)
				d->outcome = DB_RESULT_STALE;
			else if (strcmp(PQgetvalue(res, row, 4), "t") == 0)
				d->outcome = DB_RESULT_RETRIED;
			else
				d->outcome = DB_RESULT_FINAL;
			if (!PQgetisnull(res, row, 2))
				d->job_id = get_u64(res, row, 2);
			if (d->outcome == DB_RESULT_FINAL)
				hf_buf_printf(&jobs, "%s%" PRIu64, jobs.len ? "," : "", d->job_id);
		}
	}
	PQclear(res);
	if (jobs.len == 0) {
		hf_buf_fini(&jobs);
		return 0;
	}

	/* Jobs whose last task just got its outcome are done. */
	hf_buf_init(&sql);
	hf_buf_printf(&sql,
		      "UPDATE jobs j SET state = 'done', finished_at = now()"
		      " WHERE j.id IN (%s) AND j.state = 'running' AND NOT EXISTS"
		      " (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'leased'))"
		      " RETURNING j.id",
		      jobs.data);
	hf_buf_fini(&jobs);
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, NULL, PGRES_TUPLES_OK, &res);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	int n = PQntuples(res);
	if (n > 0) {
		op->u.result.finished_jobs = calloc((size_t)n, sizeof(uint64_t));
		if (!op->u.result.finished_jobs) {
			PQclear(res);
			return -ENOMEM;
		}
		for (int i = 0; i < n; i++)
			op->u.result.finished_jobs[i] = get_u64(res, i, 0);
		op->u.result.n_finished_jobs = (size_t)n;
	}
	PQclear(res);
	return 0;
}
