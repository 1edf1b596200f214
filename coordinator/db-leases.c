/* SPDX-License-Identifier: MIT
 *
 * Lease writes of the database layer (see db.h): granting leases (one
 * attempt row each) and expiring them (requeue, or give up with an error
 * result).  The grants of consecutive ops of a group commit (polls of
 * several workers) are one statement (run_lease_grant_merged); no task of a
 * cancelled job is granted (its queued tasks are cancelled in slices after
 * the job: db-cancel.c).  A grant is sent into the group commit's
 * pipeline (lease_grant_send) and read back after it (lease_grant_read),
 * so the transaction that holds it is one round trip.  Runs on the
 * database thread only, inside the group commit's transaction.
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

/* Sends the statement that grants the leases of m->ops (DB_OP_LEASE_GRANT,
 * at most DB_MERGE_ROWS_MAX leases in all); lease_grant_read gives each
 * granted row back to its op through its ordinality.  A failure is
 * reported on ops[0]. */
int lease_grant_send(struct db *db, struct db_merged *m)
{
	struct db_op **ops = m->ops;
	struct db_params p;
	struct db_array ids, attempts, worker, devs;
	struct db_lease **rows;
	size_t n_rows = 0;
	int r;

	for (size_t o = 0; o < m->n_ops; o++)
		n_rows += ops[o]->u.lease.n;
	if (n_rows == 0)
		return 0;
	rows = calloc(n_rows, sizeof(*rows));
	if (!rows) {
		op_error(ops[0], "out of memory");
		return -ENOMEM;
	}
	m->rows = rows;
	m->n_rows = n_rows;
	n_rows = 0;
	db_params_init(&p);
	db_array_init(&ids, &p);
	db_array_init(&attempts, &p);
	db_array_init(&worker, &p);
	db_array_init(&devs, &p);
	for (size_t o = 0; o < m->n_ops; o++)
	for (size_t i = 0; i < ops[o]->u.lease.n; i++) {
		struct db_lease *l = &ops[o]->u.lease.v[i];
		struct db_array one;
		rows[n_rows++] = l;
		l->granted = false;
		db_array_u64(&ids, "task id", l->task_id);
		db_array_u32(&attempts, "attempt", l->attempt);
		db_array_text(&worker, l->worker_id);
		/* A lease's devices vary in number: each list travels as the text
		 * of an int[] inside a text[], cast back row by row. */
		db_array_init(&one, &p);
		for (uint8_t d = 0; d < l->n_devices && d < 16; d++)
			db_array_u32(&one, "device index", l->devices[d]);
		hf_buf_puts(&one.text, "}");
		db_array_text(&devs, one.text.oom ? "{}" : one.text.data);
		if (one.text.oom && p.rc == 0)
			p.rc = -ENOMEM;
		db_array_fini(&one);
	}
	db_param_array(&p, &ids);
	db_param_array(&p, &attempts);
	db_param_array(&p, &worker);
	db_param_array(&p, &devs);
	r = db_pipe_send_generic(db, ops[0],
		    "WITH u AS (SELECT u.id, u.attempt, u.worker, u.devs::int[] AS devs, u.ord"
		    " FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[]) WITH ORDINALITY"
		    " AS u (id, attempt, worker, devs, ord)),"
		    " g AS (UPDATE tasks t SET state = 'leased', attempt = u.attempt,"
		    " worker_id = u.worker, device_index = u.devs[1], device_indices = u.devs FROM u"
		    " WHERE t.id = u.id AND t.state = 'queued' AND t.attempt < u.attempt"
		    " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = t.job_id AND j.state = 'cancelled')"
		    " RETURNING t.id, t.attempt, t.worker_id, t.device_index, t.device_indices, u.ord),"
		    " a AS (INSERT INTO attempts (task_id, attempt, worker_id, device_index, device_indices)"
		    " SELECT id, attempt, worker_id, device_index, device_indices FROM g)"
		    " SELECT id, ord FROM g",
		    &p, m->n_rows);
	db_params_fini(&p);
	m->sent = r == 0;
	return r;
}

int lease_grant_read(struct db *db, struct db_merged *m)
{
	struct db_lease **rows = m->rows;
	PGresult *res = NULL;

	if (!m->sent)
		return 0;
	int r = db_pipe_read(db, m->ops[0], PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	/* The row the update took, by its position in the arrays: a task
	 * named twice is granted once. */
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t id = get_u64(res, i, 0), ord = get_u64(res, i, 1);
		if (ord >= 1 && ord <= m->n_rows && rows[ord - 1]->task_id == id)
			rows[ord - 1]->granted = true;
	}
	PQclear(res);
	return 0;
}

int run_lease_grant_merged(struct db *db, struct db_op **ops, size_t n_ops)
{
	struct db_merged m = { .ops = ops, .n_ops = n_ops };

	return db_merged_run(db, &m, lease_grant_send, lease_grant_read);
}

int run_lease_grant(struct db *db, struct db_op *op)
{
	return run_lease_grant_merged(db, &op, 1);
}

int run_lease_expire(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	struct db_array ids, attempts, give_up, released;
	int r;

	db_params_init(&p);
	db_array_init(&ids, &p);
	db_array_init(&attempts, &p);
	db_array_init(&give_up, &p);
	db_array_init(&released, &p);
	for (size_t i = 0; i < op->u.expire.n; i++) {
		op->u.expire.v[i].final = false;
		db_array_u64(&ids, "task id", op->u.expire.v[i].task_id);
		db_array_u32(&attempts, "attempt", op->u.expire.v[i].attempt);
		db_array_bool(&give_up, op->u.expire.v[i].give_up);
		db_array_bool(&released, op->u.expire.v[i].released);
	}
	db_param_array(&p, &ids);
	db_param_array(&p, &attempts);
	db_param_array(&p, &give_up);
	db_param_array(&p, &released);
	/* Requeue, or give up with an error result that says why, so every
	 * final task still has the result that decided it. */
	r = db_exec(db, op,
		    "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::bool[], $4::bool[])"
		    " AS u (id, attempt, give_up, released)),"
		    " q AS (UPDATE tasks t SET state = 'queued', worker_id = NULL,"
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
		    " AND t.id NOT IN (SELECT task_id FROM g)) AND NOT " DB_JOB_UNWRITTEN("jobs.id") "),"
		    " a AS (UPDATE attempts a SET ended_at = now(),"
		    " end_reason = CASE WHEN u.released THEN 'released' ELSE 'lease-expired' END"
		    " FROM u WHERE a.task_id = u.id AND a.attempt = u.attempt AND " DB_ATTEMPT_OPEN("a") ")"
		    " SELECT task_id FROM g UNION"
		    " SELECT t.id FROM tasks t JOIN u ON t.id = u.id"
		    " WHERE t.state NOT IN ('queued', 'leased')",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
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
