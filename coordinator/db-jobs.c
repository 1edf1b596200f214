/* SPDX-License-Identifier: MIT
 *
 * Job writes of the database layer (see db.h): creating a job and its tasks
 * (with the idempotent request id), cancelling a job or one task, and
 * retrying a job's failed tasks.  Runs on the database thread only, inside
 * the group commit's transaction.
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

/* ---- writes ---- */

/* A submit whose request id this submitter used before: the same request
 * (its answer was lost and the client asked again) gets the job already
 * made; another request under the same id is refused. */
static int job_create_repeated(struct db *db, struct db_op *op)
{
	const struct job_plan *plan = op->u.job_create.plan;
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "SELECT id, task_count, (name = ");
	param(&p, &sql, plan->name);
	hf_buf_puts(&sql, " AND spec = ");
	param(&p, &sql, plan->spec_json);
	hf_buf_puts(&sql, "::jsonb AND requirements = ");
	param(&p, &sql, op->u.job_create.requirements ? op->u.job_create.requirements : "{}");
	hf_buf_printf(&sql, "::jsonb AND priority = %d AND max_running = %u AND max_retries = %u"
			    " AND flaky_reruns = %u) FROM jobs WHERE submitter = ",
		      plan->priority, plan->max_running, plan->max_retries, plan->flaky_reruns);
	param(&p, &sql, plan->submitter);
	hf_buf_puts(&sql, " AND request_id = ");
	param(&p, &sql, plan->request_id);
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	if (PQntuples(res) == 1) {
		uint64_t id = get_u64(res, 0, 0);
		if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
			op->u.job_create.existing = true;
			op->u.job_create.job_id = id;
			op->u.job_create.task_count = (uint32_t)get_u64(res, 0, 1);
		} else {
			op->u.job_create.conflict = true;
			op_error(op, "request id \"%s\" of %s already made job %" PRIu64
				 " from a different request: choose a new request id, or repeat that "
				 "request exactly", plan->request_id, plan->submitter, id);
			r = -EEXIST;
		}
	}
	PQclear(res);
	return r;
}

int run_job_create(struct db *db, struct db_op *op)
{
	const struct job_plan *plan = op->u.job_create.plan;
	const struct registry *reg = op->u.job_create.reg;
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	free(op->u.job_create.task_ids);
	op->u.job_create.task_ids = NULL;
	op->u.job_create.existing = op->u.job_create.conflict = false;
	op->u.job_create.task_count = (uint32_t)plan->n_tasks;
	if (plan->request_id) {
		r = job_create_repeated(db, op);
		if (r < 0 || op->u.job_create.existing)
			return r;
	}
	op->u.job_create.task_ids = calloc(plan->n_tasks, sizeof(uint64_t));
	if (!op->u.job_create.task_ids)
		return -ENOMEM;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "INSERT INTO jobs (name, submitter, priority, spec, requirements, task_count,"
			  " max_running, max_retries, flaky_reruns, request_id) VALUES (");
	param(&p, &sql, plan->name);
	hf_buf_puts(&sql, ", ");
	param(&p, &sql, plan->submitter);
	hf_buf_puts(&sql, ", ");
	paramf(&p, &sql, "%d", plan->priority);
	hf_buf_puts(&sql, ", ");
	param(&p, &sql, plan->spec_json);
	hf_buf_puts(&sql, "::jsonb, ");
	param(&p, &sql, op->u.job_create.requirements ? op->u.job_create.requirements : "{}");
	hf_buf_printf(&sql, "::jsonb, %zu, %u, %u, %u, ", plan->n_tasks, plan->max_running,
		      plan->max_retries, plan->flaky_reruns);
	param(&p, &sql, plan->request_id);
	hf_buf_puts(&sql, ") RETURNING id");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	op->u.job_create.job_id = get_u64(res, 0, 0);
	PQclear(res);

	/* Ids are drawn first so that each planned task knows its id. */
	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "SELECT nextval('tasks_id_seq') FROM generate_series(1, ");
	paramf(&p, &sql, "%zu", plan->n_tasks);
	hf_buf_puts(&sql, "::int) ORDER BY 1");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	if ((size_t)PQntuples(res) != plan->n_tasks) {
		PQclear(res);
		op_error(op, "could not allocate task ids");
		return -EIO;
	}
	for (size_t i = 0; i < plan->n_tasks; i++)
		op->u.job_create.task_ids[i] = get_u64(res, (int)i, 0);
	PQclear(res);

	for (size_t start = 0; start < plan->n_tasks; start += DB_TASK_CHUNK) {
		size_t end = start + DB_TASK_CHUNK < plan->n_tasks ? start + DB_TASK_CHUNK : plan->n_tasks;
		params_init(&p);
		hf_buf_init(&sql);
		hf_buf_puts(&sql, "INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size,"
				  " seq_len, precision, iterations, warmup, timeout_s) VALUES ");
		for (size_t i = start; i < end; i++) {
			const struct task_spec *t = &plan->tasks[i];
			hf_buf_printf(&sql, "%s(%" PRIu64 ",%" PRIu64 ",", i > start ? "," : "",
				      op->u.job_create.task_ids[i], op->u.job_create.job_id);
			param(&p, &sql, reg->models[t->model].model_type);
			hf_buf_printf(&sql, ",'%s','%s',%u,%u,'%s',%u,%u,%u)", hf_backend_name(t->backend),
				      hf_kind_name(t->kind), t->batch_size, t->seq_len, t->precision,
				      plan->iterations, plan->warmup, plan->timeout_s);
		}
		r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
		params_fini(&p);
		hf_buf_fini(&sql);
		if (r < 0)
			return r;
	}
	return 0;
}

int run_job_cancel(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	char sql[768];
	uint64_t id = op->u.cancel.job_id;
	int r;

	op->u.cancel.found = false;
	op->u.cancel.n_cancelled = 0;
	if (op->u.cancel.task_id) {
		uint64_t tid = op->u.cancel.task_id;
		snprintf(sql, sizeof(sql), "SELECT job_id FROM tasks WHERE id = %" PRIu64, tid);
		r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		op->u.cancel.found = PQntuples(res) == 1;
		if (op->u.cancel.found)
			op->u.cancel.job_id = get_u64(res, 0, 0);
		PQclear(res);
		if (!op->u.cancel.found)
			return 0;
		snprintf(sql, sizeof(sql),
			 "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now()"
			 " WHERE id = %" PRIu64 " AND state IN ('queued', 'leased') RETURNING id, attempt, job_id),"
			 " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
			 " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL),"
			 " j AS (UPDATE jobs SET state = 'done', finished_at = now() WHERE id IN (SELECT job_id FROM c)"
			 " AND state = 'running' AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = jobs.id"
			 " AND t.state IN ('queued', 'leased') AND t.id <> %" PRIu64 "))"
			 " SELECT count(*) FROM c",
			 tid, tid);
		r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		op->u.cancel.n_cancelled = (uint32_t)atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}
	snprintf(sql, sizeof(sql), "SELECT state FROM jobs WHERE id = %" PRIu64, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	op->u.cancel.found = PQntuples(res) == 1;
	PQclear(res);
	if (!op->u.cancel.found)
		return 0;

	snprintf(sql, sizeof(sql),
		 "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now()"
		 " WHERE job_id = %" PRIu64 " AND state IN ('queued', 'leased') RETURNING id, attempt),"
		 " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
		 " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL),"
		 " j AS (UPDATE jobs SET state = 'cancelled', finished_at = now()"
		 " WHERE id = %" PRIu64 " AND state = 'running')"
		 " SELECT count(*) FROM c",
		 id, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	op->u.cancel.n_cancelled = (uint32_t)atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

int run_job_retry(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	char sql[1536];
	uint64_t id = op->u.retry.job_id;
	int r;

	free(op->u.retry.tasks);
	free(op->u.retry.requirements);
	op->u.retry.tasks = NULL;
	op->u.retry.requirements = NULL;
	op->u.retry.n_tasks = 0;
	snprintf(sql, sizeof(sql),
		 "SELECT priority, requirements::text, max_running, max_retries, submitter, flaky_reruns"
		 " FROM jobs WHERE id = %" PRIu64, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	op->u.retry.found = PQntuples(res) == 1;
	if (op->u.retry.found) {
		op->u.retry.priority = atoi(PQgetvalue(res, 0, 0));
		op->u.retry.requirements = strdup(PQgetvalue(res, 0, 1));
		op->u.retry.max_running = (uint32_t)atoi(PQgetvalue(res, 0, 2));
		op->u.retry.max_retries = (uint32_t)atoi(PQgetvalue(res, 0, 3));
		hf_strlcpy(op->u.retry.submitter, PQgetvalue(res, 0, 4), sizeof(op->u.retry.submitter));
		op->u.retry.flaky_reruns = (uint32_t)atoi(PQgetvalue(res, 0, 5));
	}
	PQclear(res);
	if (!op->u.retry.found)
		return 0;
	/* The outcome being retried stays in results, marked as superseded. */
	snprintf(sql, sizeof(sql),
		 "WITH r AS (UPDATE tasks t SET state = 'queued', worker_id = NULL, device_index = NULL,"
		 " device_indices = NULL, result_id = NULL, finished_at = NULL"
		 " WHERE job_id = %" PRIu64 " AND state IN ('failed', 'error', 'timeout')"
		 " RETURNING t.*, (SELECT result_id FROM tasks o WHERE o.id = t.id) AS old_result),"
		 " s AS (UPDATE results SET retried = true WHERE id IN (SELECT old_result FROM r)),"
		 " j AS (UPDATE jobs SET state = 'running', finished_at = NULL WHERE id = %" PRIu64
		 " AND EXISTS (SELECT 1 FROM r))"
		 " SELECT " LIVE_TASK_COLUMNS " FROM r t",
		 id, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	r = live_tasks_from(res, &op->u.retry.tasks, &op->u.retry.n_tasks);
	PQclear(res);
	return r;
}
