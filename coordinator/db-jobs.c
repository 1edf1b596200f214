/* SPDX-License-Identifier: MIT
 *
 * Job writes of the database layer (see db.h): creating a job and its tasks
 * (with the idempotent request id; a large job's tasks beyond its first
 * slice are stored as task plans, written after the answer: db-plans.c)
 * and retrying a job's failed tasks (a
 * cancel is db-cancel.c's); cancel and retry may be limited to the jobs of
 * one submitter (op->u.cancel.owner, op->u.retry.owner: db_others_job);
 * and the job and task a warm-up inserts (job_warm_rows, for db-warm.c).
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
#include "hf_proto.h"
#include "hf_util.h"

/* ---- writes ---- */

/* Many tasks queued at once change what the planner must believe of
 * tasks.  A 100,000-task job inserted just after autovacuum analysed a
 * table of finished tasks left statistics that said almost no task was
 * queued, and until autovacuum's next look (up to a minute later) every
 * lease grant walked every queued task (about 1 s each, polls waiting
 * behind it) and a cancel's slices joined them with themselves
 * (docs/performance.md).  Smaller jobs did the same on a young database:
 * the plans the main connection made at its warm-up, over empty tables,
 * walked every queued task of a 557-task job and looked each one's job up
 * by a scan of jobs, 3 to 5 ms a lease grant instead of 0.5, until the
 * job was nearly done or DB_GENERIC_REPLAN came (bench/run.py latency:
 * slot free -> next lease 9 to 12 ms at the job's start).  So a submit or
 * retry that queues at least DB_ANALYZE_MIN_TASKS tasks (autovacuum's
 * default analyze threshold) and either a tenth of the table (its default
 * scale factor) or at least as many tasks as the coordinator held live
 * (the queue at least doubles: statistics taken while it was near empty,
 * after a job drained, say so of any table size) has the columns those
 * statements filter on analysed in its own transaction, which counts its
 * rows: a sample of 3,000 rows (migration 019 set their statistics target
 * to 10), about 8 ms where the default 30,000 took 60 to 75 ms of a
 * 100,000-task submit, and 2 to 6 ms for a table of 4,500 to 13,000 rows
 * (the statement log of bench/run.py latency).  The new statistics make
 * every connection's cached plans over tasks be made again at their next
 * use.  A queue that grows by jobs each smaller than itself is not
 * analysed again: statistics that say it holds a few hundred tasks or
 * more already steer the plans to the tasks named.  SKIP_LOCKED: when
 * autovacuum holds the table it is at work on it, and the submit does not
 * wait for it. */
#define DB_ANALYZE_MIN_TASKS 50

static int tasks_analyze_after_queueing(struct db *db, struct db_op *op, size_t n_tasks, size_t live_before)
{
	PGresult *res = NULL;
	double reltuples;
	int r;

	if (n_tasks < DB_ANALYZE_MIN_TASKS)
		return 0;
	/* A job that doubles the queue is analysed whatever the table's
	 * size; a smaller one when it is a tenth of the table. */
	if (n_tasks < live_before) {
		/* -1: never analysed. */
		r = db_exec(db, op, "SELECT reltuples FROM pg_class WHERE oid = 'tasks'::regclass", NULL,
			    PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		reltuples = PQntuples(res) == 1 ? get_double(res, 0, 0) : -1;
		PQclear(res);
		if (reltuples >= 0 && (double)n_tasks * 10 < reltuples)
			return 0;
	}
	return db_cmd(db, op, "ANALYZE (SKIP_LOCKED) tasks (job_id, state)");
}

/* A submit whose request id this submitter used before: the same request
 * (its answer was lost and the client asked again) gets the job already
 * made; another request under the same id is refused. */
static int job_create_repeated(struct db *db, struct db_op *op)
{
	const struct job_plan *plan = op->u.job_create.plan;
	PGresult *res = NULL;
	struct db_params p;
	int r;

	db_params_init(&p);
	db_param_text(&p, plan->name);
	db_param_text(&p, plan->spec_json);
	db_param_text(&p, op->u.job_create.requirements ? op->u.job_create.requirements : "{}");
	db_param_i32(&p, plan->priority);
	db_param_u32(&p, "max_running", plan->max_running);
	db_param_u32(&p, "max_retries", plan->max_retries);
	db_param_u32(&p, "flaky_reruns", plan->flaky_reruns);
	db_param_text(&p, plan->submitter);
	db_param_text(&p, plan->request_id);
	r = db_exec(db, op,
		    "SELECT id, task_count, (name = $1 AND spec = $2::jsonb AND requirements = $3::jsonb"
		    " AND priority = $4::int AND max_running = $5::int AND max_retries = $6::int"
		    " AND flaky_reruns = $7::int) FROM jobs WHERE submitter = $8 AND request_id = $9",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
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

/* Inserts tasks [start, end) of the plan, one array per column. */
static int job_create_tasks(struct db *db, struct db_op *op, size_t start, size_t end)
{
	const struct job_plan *plan = op->u.job_create.plan;
	const struct registry *reg = op->u.job_create.reg;
	struct db_params p;
	struct db_array id, model, backend, kind, batch, seq, precision, mode;
	int r;

	db_params_init(&p);
	db_array_init(&id, &p);
	db_array_init(&model, &p);
	db_array_init(&backend, &p);
	db_array_init(&kind, &p);
	db_array_init(&batch, &p);
	db_array_init(&seq, &p);
	db_array_init(&precision, &p);
	db_array_init(&mode, &p);
	for (size_t i = start; i < end; i++) {
		const struct task_spec *t = &plan->tasks[i];
		db_array_u64(&id, "task id", op->u.job_create.task_ids[i]);
		db_array_text(&model, reg->models[t->model].model_type);
		db_array_text(&backend, hf_backend_name(t->backend));
		db_array_text(&kind, hf_kind_name(t->kind));
		db_array_u32(&batch, "batch_size", t->batch_size);
		db_array_u32(&seq, "seq_len", t->seq_len);
		db_array_text(&precision, t->precision);
		db_array_text(&mode, t->mode ? t->mode : "eager");
	}
	db_param_u64(&p, "job id", op->u.job_create.job_id);
	db_param_array(&p, &id);
	db_param_array(&p, &model);
	db_param_array(&p, &backend);
	db_param_array(&p, &kind);
	db_param_array(&p, &batch);
	db_param_array(&p, &seq);
	db_param_array(&p, &precision);
	db_param_u32(&p, "iterations", plan->iterations);
	db_param_u32(&p, "warmup", plan->warmup);
	db_param_u32(&p, "timeout_s", plan->timeout_s);
	db_param_array(&p, &mode);
	r = db_exec(db, op,
		    "INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size, seq_len,"
		    " precision, iterations, warmup, timeout_s, mode)"
		    " SELECT u.id, $1::bigint, u.model_type, u.backend, u.kind, u.batch_size, u.seq_len,"
		    " u.precision, $9::int, $10::int, $11::int, u.mode"
		    " FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],"
		    " $8::text[], $12::text[]) AS u (id, model_type, backend, kind, batch_size, seq_len,"
		    " precision, mode)",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}

/* A job is written only by the active coordinator (a standby that took
 * over loads the running jobs once, when it starts). */
int job_lane_still_active(struct db *db, struct db_op *op, int active_pid)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	/* Until this transaction ends, a coordinator taking over waits
	 * before it loads the running jobs (become_active). */
	r = db_exec(db, op, "SELECT pg_advisory_xact_lock_shared(" DB_JOB_LANE_LOCK ")", NULL,
		    PGRES_TUPLES_OK, NULL);
	if (r < 0)
		return r;
	db_params_init(&p);
	db_param_i32(&p, active_pid);
	r = db_exec(db, op,
		    "SELECT 1 FROM " DB_ACTIVE_LOCK_OF_PID_1,
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1)
		r = -EIO; /* rolled back; the submitter is told to try again */
	PQclear(res);
	if (r < 0)
		op_error(op, "the main database connection does not hold the active coordinator's lock "
			 "now (it reconnected, or another coordinator took over)");
	return r;
}

/* Draws n task ids from tasks_id_seq into ids, in order: one block of n
 * (hfleet_task_ids, migration 018; one nextval per task took about 90 ms
 * of a 100,000-task submit).  n = 0 draws none and only runs the statement
 * (a warm-up prepares it). */
static int job_task_ids(struct db *db, struct db_op *op, size_t n, uint64_t *ids)
{
	PGresult *res = NULL;
	struct db_params p;
	uint64_t first = 0;
	int r;

	db_params_init(&p);
	db_param_u64(&p, "task_count", n);
	r = db_exec(db, op, "SELECT CASE WHEN $1::bigint > 0 THEN hfleet_task_ids($1::bigint) END",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	if (n > 0 && (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) ||
		      (first = get_u64(res, 0, 0)) == 0 || first > UINT64_MAX - n)) {
		PQclear(res);
		op_error(op, "could not allocate task ids");
		return -EIO;
	}
	PQclear(res);
	for (size_t i = 0; i < n; i++)
		ids[i] = first + i;
	return 0;
}

int job_warm_rows(struct db *db, struct db_op *op, const struct registry *reg, uint64_t id, int active_pid)
{
	struct task_spec task = { .model = 0, .backend = HF__BACKEND__BACKEND_CPU,
				  .kind = HF__TASK_KIND__KIND_TEST, .batch_size = 1,
				  .precision = "fp32", .seq_len = 128, .mode = "eager" };
	struct job_plan plan = { .tasks = &task, .n_tasks = 1, .timeout_s = 60 };
	struct db_op scratch = { .kind = DB_OP_JOB_CREATE };
	struct db_params p;
	int r = 0;

	scratch.u.job_create.plan = &plan;
	scratch.u.job_create.reg = reg;
	scratch.u.job_create.active_pid = active_pid;
	scratch.u.job_create.job_id = id;
	scratch.u.job_create.task_ids = &id;
	/* -EIO when the main connection's pid no longer holds the lock (a
	 * warm-up of a lane connection made again after the main one was):
	 * the check ran all the same and the transaction is still good. */
	if (active_pid && (r = job_lane_still_active(db, &scratch, active_pid)) == -EIO && db_connected(db))
		r = 0;
	if (r == 0)
		r = job_task_ids(db, &scratch, 0, NULL);
	if (r == 0) {
		db_params_init(&p);
		db_param_u64(&p, "job id", id);
		r = db_exec(db, &scratch,
			    "INSERT INTO jobs (id, name, submitter, spec, task_count)"
			    " VALUES ($1::bigint, 'warm-up', 'hf-coordinator', '{}', 1)",
			    &p, PGRES_COMMAND_OK, NULL);
		db_params_fini(&p);
	}
	if (r == 0 && reg && reg->n > 0)
		r = job_create_tasks(db, &scratch, 0, 1);
	if (r < 0)
		snprintf(op->err, sizeof(op->err), "%s", scratch.err);
	return r;
}

int run_job_create(struct db *db, struct db_op *op)
{
	const struct job_plan *plan = op->u.job_create.plan;
	PGresult *res = NULL;
	struct db_params p;
	int r;

	if (op->u.job_create.active_pid &&
	    (r = job_lane_still_active(db, op, op->u.job_create.active_pid)) < 0)
		return r;

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

	db_params_init(&p);
	db_param_text(&p, plan->name);
	db_param_text(&p, plan->submitter);
	db_param_i32(&p, plan->priority);
	db_param_text(&p, plan->spec_json);
	db_param_text(&p, op->u.job_create.requirements ? op->u.job_create.requirements : "{}");
	db_param_u64(&p, "task_count", plan->n_tasks);
	db_param_u32(&p, "max_running", plan->max_running);
	db_param_u32(&p, "max_retries", plan->max_retries);
	db_param_u32(&p, "flaky_reruns", plan->flaky_reruns);
	db_param_text(&p, plan->request_id);
	r = db_exec(db, op,
		    "INSERT INTO jobs (name, submitter, priority, spec, requirements, task_count,"
		    " max_running, max_retries, flaky_reruns, request_id) VALUES ($1, $2, $3::int,"
		    " $4::jsonb, $5::jsonb, $6::bigint, $7::int, $8::int, $9::int, $10) RETURNING id",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	op->u.job_create.job_id = get_u64(res, 0, 0);
	PQclear(res);

	/* Ids are drawn first so that each planned task knows its id. */
	r = job_task_ids(db, op, plan->n_tasks, op->u.job_create.task_ids);
	if (r < 0)
		return r;

	/* The first slice as tasks, the rest as task_plans rows written after
	 * the answer (db-plans.c): the whole job is committed either way. */
	size_t now = plan->n_tasks;
	if (op->u.job_create.slice && now > op->u.job_create.slice)
		now = op->u.job_create.slice;
	for (size_t start = 0; start < now; start += DB_TASK_CHUNK) {
		size_t end = start + DB_TASK_CHUNK < now ? start + DB_TASK_CHUNK : now;
		r = job_create_tasks(db, op, start, end);
		if (r < 0)
			return r;
	}
	r = job_plan_store(db, op, now);
	if (r < 0)
		return r;
	op->u.job_create.n_written = now;
	return tasks_analyze_after_queueing(db, op, now, op->u.job_create.live_before);
}

bool db_others_job(const char *owner, const char *submitter)
{
	return owner && strcmp(owner, submitter) != 0;
}

int run_job_retry(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	free(op->u.retry.tasks);
	free(op->u.retry.requirements);
	op->u.retry.tasks = NULL;
	op->u.retry.requirements = NULL;
	op->u.retry.n_tasks = 0;
	op->u.retry.found = op->u.retry.forbidden = op->u.retry.cancelling = false;
	if (op->u.retry.job_id > INT64_MAX)
		return 0; /* an id beyond bigint names no job */
	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.retry.job_id);
	r = db_exec(db, op,
		    "SELECT priority, requirements::text, max_running, max_retries, submitter, flaky_reruns"
		    " FROM jobs WHERE id = $1::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
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
	if (op->u.retry.found)
		op->u.retry.forbidden = db_others_job(op->u.retry.owner, op->u.retry.submitter);
	if (!op->u.retry.found || op->u.retry.forbidden)
		goto out;
	/* A job whose queued tasks are still being cancelled in slices
	 * (db-cancel.c), or whose tasks its submit left to write are still
	 * being written cancelled (db-plans.c), is left alone until they are:
	 * they are no longer in the scheduler, and running again they would
	 * never run. */
	r = db_exec(db, op,
		    "SELECT 1 FROM jobs j WHERE j.id = $1::bigint AND j.state = 'cancelled' AND (EXISTS"
		    " (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued')"
		    " OR " DB_JOB_UNWRITTEN("j.id") ")",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	op->u.retry.cancelling = PQntuples(res) > 0;
	PQclear(res);
	if (op->u.retry.cancelling)
		goto out;
	/* The outcome being retried stays in results, marked as superseded.
	 * With cancelled, cancelled tasks are queued too (but not one whose
	 * cancelled attempt a worker is still stopping), and a cancelled
	 * job is running again. */
	db_param_text(&p, op->u.retry.cancelled ? "t" : "f");
	db_param_text(&p, op->u.retry.stopping ? op->u.retry.stopping : "{}");
	r = db_exec(db, op,
		    "WITH r AS (UPDATE tasks t SET state = 'queued', worker_id = NULL, device_index = NULL,"
		    " device_indices = NULL, result_id = NULL, finished_at = NULL"
		    " WHERE job_id = $1::bigint AND (state IN ('failed', 'error', 'timeout')"
		    " OR ($2::boolean AND state = 'cancelled' AND NOT id = ANY ($3::bigint[])))"
		    " RETURNING t.*, (SELECT result_id FROM tasks o WHERE o.id = t.id) AS old_result),"
		    " s AS (UPDATE results SET retried = true WHERE id IN (SELECT old_result FROM r)),"
		    " j AS (UPDATE jobs SET state = 'running', finished_at = NULL WHERE id = $1::bigint"
		    " AND EXISTS (SELECT 1 FROM r))"
		    " SELECT " LIVE_TASK_COLUMNS " FROM r t",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	r = live_tasks_from(res, &op->u.retry.tasks, &op->u.retry.n_tasks);
	PQclear(res);
	if (r == 0)
		r = tasks_analyze_after_queueing(db, op, op->u.retry.n_tasks, op->u.retry.live_before);
out:
	db_params_fini(&p);
	return r;
}
