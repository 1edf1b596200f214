/* SPDX-License-Identifier: MIT
 *
 * Lease writes of the database layer (see db.h): granting leases (one
 * attempt row each) and expiring them (requeue, or give up with an error
 * result).  Runs on the database thread only, inside the group commit's
 * transaction.
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

int run_lease_grant(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "WITH u (id, attempt, worker, devs) AS (VALUES ");
	for (size_t i = 0; i < op->u.lease.n; i++) {
		struct db_lease *l = &op->u.lease.v[i];
		l->granted = false;
		hf_buf_printf(&sql, "%s(%" PRIu64 "::bigint,%u::int,", i ? "," : "", l->task_id, l->attempt);
		param(&p, &sql, l->worker_id);
		hf_buf_puts(&sql, "::text,'{");
		for (uint8_t d = 0; d < l->n_devices; d++)
			hf_buf_printf(&sql, "%s%u", d ? "," : "", l->devices[d]);
		hf_buf_puts(&sql, "}'::int[])");
	}
	hf_buf_puts(&sql, "), g AS (UPDATE tasks t SET state = 'leased', attempt = u.attempt,"
			  " worker_id = u.worker, device_index = u.devs[1], device_indices = u.devs FROM u"
			  " WHERE t.id = u.id AND t.state = 'queued' AND t.attempt < u.attempt"
			  " RETURNING t.id, t.attempt, t.worker_id, t.device_index, t.device_indices),"
			  " a AS (INSERT INTO attempts (task_id, attempt, worker_id, device_index, device_indices)"
			  " SELECT id, attempt, worker_id, device_index, device_indices FROM g)"
			  " SELECT id FROM g");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t id = get_u64(res, i, 0);
		for (size_t j = 0; j < op->u.lease.n; j++)
			if (op->u.lease.v[j].task_id == id)
				op->u.lease.v[j].granted = true;
	}
	PQclear(res);
	return 0;
}

int run_lease_expire(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct hf_buf sql;
	int r;

	hf_buf_init(&sql);
	hf_buf_puts(&sql, "WITH u (id, attempt, give_up) AS (VALUES ");
	for (size_t i = 0; i < op->u.expire.n; i++) {
		op->u.expire.v[i].final = false;
		hf_buf_printf(&sql, "%s(%" PRIu64 "::bigint,%u::int,%s)", i ? "," : "",
			      op->u.expire.v[i].task_id, op->u.expire.v[i].attempt,
			      op->u.expire.v[i].give_up ? "true" : "false");
	}
	/* Requeue, or give up with an error result that says why, so every
	 * final task still has the result that decided it. */
	hf_buf_puts(&sql, "), q AS (UPDATE tasks t SET state = 'queued', worker_id = NULL,"
			  " device_index = NULL, device_indices = NULL FROM u"
			  " WHERE t.id = u.id AND t.attempt = u.attempt"
			  " AND t.state = 'leased' AND NOT u.give_up RETURNING t.id),"
			  " g AS (INSERT INTO results (task_id, attempt, status, reason, worker_id, device_index,"
			  " stale, started_at, finished_at)"
			  " SELECT t.id, t.attempt, 'error', 'the lease was lost on ' || t.attempt ||"
			  " ' attempts: the worker running it stopped answering (last: \"' ||"
			  " coalesce(t.worker_id, '') || '\")', coalesce(t.worker_id, ''),"
			  " coalesce(t.device_index, 0), false, now(), now()"
			  " FROM tasks t JOIN u ON t.id = u.id AND t.attempt = u.attempt"
			  " WHERE t.state = 'leased' AND u.give_up"
			  " ON CONFLICT (task_id, attempt) DO NOTHING RETURNING id, task_id),"
			  " e AS (UPDATE tasks t SET state = 'error', finished_at = now(), result_id = g.id"
			  " FROM g WHERE t.id = g.task_id RETURNING t.job_id),"
			  " j AS (UPDATE jobs SET state = 'done', finished_at = now()"
			  " WHERE id IN (SELECT job_id FROM e) AND state = 'running' AND NOT EXISTS"
			  " (SELECT 1 FROM tasks t WHERE t.job_id = jobs.id AND t.state IN ('queued', 'leased')"
			  " AND t.id NOT IN (SELECT task_id FROM g))),"
			  " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'lease-expired'"
			  " FROM u WHERE a.task_id = u.id AND a.attempt = u.attempt AND a.ended_at IS NULL)"
			  " SELECT task_id FROM g UNION"
			  " SELECT t.id FROM tasks t JOIN u ON t.id = u.id"
			  " WHERE t.state NOT IN ('queued', 'leased')");
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, NULL, PGRES_TUPLES_OK, &res);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t id = get_u64(res, i, 0);
		for (size_t j = 0; j < op->u.expire.n; j++)
			if (op->u.expire.v[j].task_id == id)
				op->u.expire.v[j].final = true;
	}
	PQclear(res);
	return 0;
}
