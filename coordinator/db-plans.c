/* SPDX-License-Identifier: MIT
 *
 * Task plans of the database layer (see db.h): a large job's tasks written
 * after its submitter is answered (issue 15).  A task costs PostgreSQL
 * about 11 us to insert on a 2-core machine, so a 100,000-task job held
 * its submit for about 1.2 s.  The submit (db-jobs.c) writes its first
 * op->u.job_create.slice tasks and stores the rest here, in the same
 * transaction, as task_plans rows (migration 020) of a slice each: the
 * strings the slice names once, and per task an index into them for each
 * text column.  DB_OP_JOB_PLAN_SLICE then writes a job's first slice left
 * as tasks, one transaction per slice on the job lane, its row deleted by
 * the statement that inserts its tasks: a slice is written once, by
 * whichever coordinator gets its row.  A coordinator that starts writes
 * every slice left before it loads the live tasks (plans_write_all, from
 * db-start.c).
 *
 * A slice of a cancelled job is written as cancelled tasks, as a cancel's
 * slices would have left them.  The job's row is locked (FOR SHARE) first,
 * so a cancel committed meanwhile is seen, and a cancel that comes while
 * the slice is written waits for it and then finds its tasks queued.
 * Runs on the database thread only, inside its transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "expand.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "registry.h"

/* A slice's names: the strings its tasks' text columns take, each once. */
struct plan_names {
	struct db_array text;       /* names, in order */
	uint32_t n;
	uint32_t *model_index;      /* registry index -> 1-based name index, 0: none yet */
	/* backend, kind, precision and mode: few distinct values, most often
	 * the same static string as the task before */
	const char *small[64];
	uint32_t small_index[64];
	uint32_t n_small;
};

static uint32_t plan_name_small(struct plan_names *nm, const char *s)
{
	for (uint32_t i = 0; i < nm->n_small; i++)
		if (nm->small[i] == s || strcmp(nm->small[i], s) == 0)
			return nm->small_index[i];
	if (nm->n_small == sizeof(nm->small) / sizeof(nm->small[0]))
		return 0; /* cannot happen: four columns of a few names each */
	db_array_text(&nm->text, s);
	nm->small[nm->n_small] = s;
	nm->small_index[nm->n_small] = ++nm->n;
	return nm->small_index[nm->n_small++];
}

/* Stores tasks [start, end) of the job being created as one task_plans row. */
static int plan_row_store(struct db *db, struct db_op *op, size_t start, size_t end, uint32_t *model_index)
{
	const struct job_plan *plan = op->u.job_create.plan;
	const struct registry *reg = op->u.job_create.reg;
	struct plan_names nm = { .model_index = model_index };
	struct db_params p;
	struct db_array model, backend, kind, precision, mode, batch, seq;
	int r;

	memset(model_index, 0, reg->n * sizeof(*model_index));
	db_params_init(&p);
	db_array_init(&nm.text, &p);
	db_array_init(&model, &p);
	db_array_init(&backend, &p);
	db_array_init(&kind, &p);
	db_array_init(&precision, &p);
	db_array_init(&mode, &p);
	db_array_init(&batch, &p);
	db_array_init(&seq, &p);
	for (size_t i = start; i < end; i++) {
		const struct task_spec *t = &plan->tasks[i];
		uint32_t *m = &model_index[t->model];
		if (*m == 0) {
			db_array_text(&nm.text, reg->models[t->model].model_type);
			*m = ++nm.n;
		}
		db_array_u32(&model, "model", *m);
		db_array_u32(&backend, "backend", plan_name_small(&nm, hf_backend_name(t->backend)));
		db_array_u32(&kind, "kind", plan_name_small(&nm, hf_kind_name(t->kind)));
		db_array_u32(&precision, "precision", plan_name_small(&nm, t->precision));
		db_array_u32(&mode, "mode", plan_name_small(&nm, t->mode ? t->mode : "eager"));
		db_array_u32(&batch, "batch_size", t->batch_size);
		db_array_u32(&seq, "seq_len", t->seq_len);
	}
	db_param_u64(&p, "job id", op->u.job_create.job_id);
	db_param_u64(&p, "task id", op->u.job_create.task_ids[start]);
	db_param_u32(&p, "iterations", plan->iterations);
	db_param_u32(&p, "warmup", plan->warmup);
	db_param_u32(&p, "timeout_s", plan->timeout_s);
	db_param_array(&p, &nm.text);
	db_param_array(&p, &model);
	db_param_array(&p, &backend);
	db_param_array(&p, &kind);
	db_param_array(&p, &precision);
	db_param_array(&p, &mode);
	db_param_array(&p, &batch);
	db_param_array(&p, &seq);
	r = db_exec(db, op,
		    "INSERT INTO task_plans (job_id, first_id, iterations, warmup, timeout_s, names, model,"
		    " backend, kind, precision, mode, batch_size, seq_len) VALUES ($1::bigint, $2::bigint,"
		    " $3::int, $4::int, $5::int, $6::text[], $7::smallint[], $8::smallint[], $9::smallint[],"
		    " $10::smallint[], $11::smallint[], $12::int[], $13::int[])",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}

int job_plan_store(struct db *db, struct db_op *op, size_t start)
{
	const struct job_plan *plan = op->u.job_create.plan;
	size_t slice = op->u.job_create.slice;
	uint32_t *model_index;
	int r = 0;

	if (start >= plan->n_tasks)
		return 0;
	model_index = calloc(op->u.job_create.reg->n + 1, sizeof(*model_index));
	if (!model_index)
		return -ENOMEM;
	for (size_t s = start; s < plan->n_tasks && r == 0; s += slice)
		r = plan_row_store(db, op, s, s + slice < plan->n_tasks ? s + slice : plan->n_tasks, model_index);
	free(model_index);
	return r;
}

/* Writes the first slice of job_id left in task_plans as tasks: sets
 * first_id (0 when none was left), n, cancelled and last. */
static int plan_slice_write(struct db *db, struct db_op *op, uint64_t job_id, uint64_t *first_id, uint32_t *n,
			    bool *cancelled, bool *last)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	*first_id = 0;
	*n = 0;
	*cancelled = false;
	*last = true;
	db_params_init(&p);
	db_param_u64(&p, "job id", job_id);
	/* The job's row first: a cancel committed meanwhile is seen, and one
	 * to come waits until this slice is committed (then its own slices
	 * find the slice's tasks queued). */
	r = db_exec(db, op, "SELECT state = 'cancelled' FROM jobs WHERE id = $1::bigint FOR SHARE", &p,
		    PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	*cancelled = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	r = db_exec(db, op,
		    "WITH s AS (DELETE FROM task_plans WHERE job_id = $1::bigint AND first_id ="
		    " (SELECT min(first_id) FROM task_plans WHERE job_id = $1::bigint) RETURNING *),"
		    " i AS (INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size, seq_len,"
		    " precision, iterations, warmup, timeout_s, mode)"
		    " SELECT s.first_id + u.ord - 1, s.job_id, s.names[u.model], s.names[u.backend],"
		    " s.names[u.kind], u.batch_size, u.seq_len, s.names[u.precision], s.iterations, s.warmup,"
		    " s.timeout_s, s.names[u.mode]"
		    " FROM s, unnest(s.model, s.backend, s.kind, s.precision, s.mode, s.batch_size, s.seq_len)"
		    " WITH ORDINALITY AS u (model, backend, kind, precision, mode, batch_size, seq_len, ord)"
		    " RETURNING 1)"
		    " SELECT s.first_id, (SELECT count(*) FROM i), NOT EXISTS (SELECT 1 FROM task_plans o"
		    " WHERE o.job_id = $1::bigint AND o.first_id > s.first_id) FROM s",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	if (PQntuples(res) == 1) {
		*first_id = get_u64(res, 0, 0);
		*n = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
		*last = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	}
	PQclear(res);
	res = NULL;
	/* As a cancel's slice leaves them (db-cancel.c), through the same
	 * update, so the summaries record each one as they do. */
	if (*cancelled && *n > 0) {
		db_param_u64(&p, "task id", *first_id);
		db_param_u32(&p, "tasks", *n);
		r = db_exec(db, op,
			    "UPDATE tasks SET state = 'cancelled', finished_at = now() WHERE job_id = $1::bigint"
			    " AND id >= $2::bigint AND id < $2::bigint + $3::int AND state = 'queued'",
			    &p, PGRES_COMMAND_OK, NULL);
	}
out:
	db_params_fini(&p);
	return r;
}

int run_job_plan_slice(struct db *db, struct db_op *op)
{
	int r;

	if (op->u.plan_slice.active_pid && (r = job_lane_still_active(db, op, op->u.plan_slice.active_pid)) < 0)
		return r;
	if (op->u.plan_slice.job_id > INT64_MAX) {
		op->u.plan_slice.first_id = 0;
		op->u.plan_slice.n = 0;
		op->u.plan_slice.last = true;
		return 0;
	}
	return plan_slice_write(db, op, op->u.plan_slice.job_id, &op->u.plan_slice.first_id, &op->u.plan_slice.n,
				&op->u.plan_slice.cancelled, &op->u.plan_slice.last);
}

int plans_write_all(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	uint64_t *jobs = NULL;
	int n, r;

	r = db_exec(db, op, "SELECT DISTINCT job_id FROM task_plans ORDER BY job_id", NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	if (n > 0 && !(jobs = calloc((size_t)n, sizeof(*jobs)))) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		jobs[i] = get_u64(res, i, 0);
	PQclear(res);
	for (int i = 0; i < n && r == 0; i++) {
		uint64_t first_id, job_tasks = 0;
		uint32_t written;
		bool cancelled = false, last = false;
		while (!last && r == 0) {
			r = plan_slice_write(db, op, jobs[i], &first_id, &written, &cancelled, &last);
			job_tasks += written;
		}
		if (r == 0)
			log_info("job %" PRIu64 ": %" PRIu64 " tasks its submit left to write written%s", jobs[i],
				 job_tasks, cancelled ? " (cancelled: the job is)" : "");
	}
	free(jobs);
	return r;
}
