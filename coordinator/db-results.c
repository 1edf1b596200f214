/* SPDX-License-Identifier: MIT
 *
 * Result writes of the database layer (see db.h): storing a worker's results,
 * deciding each one's outcome (final, stale, duplicate, unknown, retried, not
 * owned) and finishing the jobs whose last task got its outcome.  A result
 * is stored only when the attempt it names was leased to the worker that
 * sends it (the attempts table records each lease's worker): ownership is
 * checked by the statement itself, not only by the caller.  The readers'
 * columns (device identity, versions, benchmark figures, env_id: migration
 * 008; offloaded_bytes: 021) come from the result's env and metrics JSON
 * through the SQL function hfleet_result_fields, which turns a value of
 * the wrong type into NULL and bounds every string, so no JSON a worker
 * sends can make the insert fail; the environment row is found or created
 * in the same statement.  The results of consecutive ops of a group commit
 * (reports of several workers) are stored by one statement
 * (run_result_store_merged): the statement costs more to plan than to run
 * for a few rows, so planning it once for many reports is what makes a
 * result cheap.  The statement, and the one
 * that finishes jobs after it, are sent into the group commit's pipeline
 * (result_store_send) and read back after it (result_store_read), so the
 * transaction that holds them is one round trip.  With the result lane (a
 * second connection storing half of a large group at once,
 * db-result-lane.c) the jobs whose last results were stored half on each
 * connection are finished after both committed (result_jobs_finish).
 * Runs on the database threads only, inside the group commit's
 * transaction but for result_jobs_finish.
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

/* SQL: job j is running and its last task got its outcome. */
#define JOB_NOW_DONE \
	"j.state = 'running' AND (SELECT 1 FROM tasks t WHERE t.job_id = j.id" \
	" AND t.state IN ('queued', 'leased') ORDER BY t.id DESC LIMIT 1) IS NULL" \
	" AND NOT " DB_JOB_UNWRITTEN("j.id")

/* Where row ord (1-based) of a statement for several ops came from. */
struct result_row {
	struct db_op *op;
	struct db_result *d;
};

/* A result the statement stored: its key and how it was decided. */
struct stored_row {
	uint64_t task_id;
	uint32_t attempt;
	bool stale, retried;
};

static int stored_row_cmp(const void *a, const void *b)
{
	const struct stored_row *x = a, *y = b;

	if (x->task_id != y->task_id)
		return x->task_id < y->task_id ? -1 : 1;
	return x->attempt < y->attempt ? -1 : x->attempt > y->attempt;
}

/* Sends the statement that stores the results of m->ops
 * (DB_OP_RESULT_STORE, at most DB_MERGE_ROWS_MAX results in all), their
 * arrays concatenated, and after it the one that finishes the jobs whose
 * last task got its outcome: it names the jobs by the tasks sent, not by
 * the outcomes the first one decided, so both go in the same pipeline
 * (only a job whose last task is no longer queued nor leased is finished,
 * which is a job one of those results finished).  result_store_read gives
 * each row's outcome back to its op through the row's ordinality.  A
 * failure is reported on ops[0]; the caller then runs each op alone
 * (run_result_store) to learn which one it was. */
/* A finished job is told to the last op with a final result of it, the
 * one that would have finished it had each op run alone. */
static void job_finished_tell(struct db_op **ops, size_t n_ops, uint64_t job)
{
	for (size_t o = n_ops; o-- > 0;) {
		struct db_op *op = ops[o];
		for (size_t k = op->u.result.n; k-- > 0;) {
			const struct db_result *d = &op->u.result.v[k];
			if (d->outcome != DB_RESULT_FINAL || d->job_id != job)
				continue;
			/* At most one entry per job and op, each a job one of
			 * its results finished: within the room allocated. */
			if (op->u.result.finished_jobs && op->u.result.n_finished_jobs < op->u.result.n)
				op->u.result.finished_jobs[op->u.result.n_finished_jobs++] = job;
			return;
		}
	}
}

int result_store_send(struct db *db, struct db_merged *m)
{
	struct db_op **ops = m->ops;
	struct db_params p;
	struct db_array col[15], tasks;
	struct result_row *rows;
	size_t n_rows = 0;
	int r;

	for (size_t o = 0; o < m->n_ops; o++) {
		free(ops[o]->u.result.finished_jobs);
		ops[o]->u.result.finished_jobs = NULL;
		ops[o]->u.result.n_finished_jobs = 0;
		n_rows += ops[o]->u.result.n;
	}
	if (n_rows == 0)
		return 0;
	/* Everything the read needs is allocated before the COMMIT is sent:
	 * a result committed is then always told to its op.  The statement
	 * returns at most a row per result sent and one per result stored;
	 * an op finishes at most a job per result of it. */
	rows = calloc(n_rows, sizeof(*rows));
	m->scratch = calloc(2 * n_rows, sizeof(struct stored_row));
	if (!rows || !m->scratch) {
		free(rows);
		op_error(ops[0], "out of memory");
		return -ENOMEM;
	}
	m->rows = rows;
	m->n_rows = n_rows;
	for (size_t o = 0; o < m->n_ops; o++) {
		size_t n = ops[o]->u.result.n;
		if (n == 0)
			continue;
		ops[o]->u.result.finished_jobs = malloc(n * sizeof(uint64_t));
		if (!ops[o]->u.result.finished_jobs) {
			op_error(ops[0], "out of memory");
			return -ENOMEM;
		}
	}
	n_rows = 0;
	db_params_init(&p);
	for (int c = 0; c < 15; c++)
		db_array_init(&col[c], &p);
	for (size_t o = 0; o < m->n_ops; o++)
	for (size_t k = 0; k < ops[o]->u.result.n; k++) {
		struct db_result *d = &ops[o]->u.result.v[k];
		const Hf__TaskResult *t = d->r;
		rows[n_rows].op = ops[o];
		rows[n_rows++].d = d;
		d->outcome = DB_RESULT_UNKNOWN;
		d->job_id = 0;
		db_array_u64(&col[0], "task_id", t->task_id);
		db_array_u32(&col[1], "attempt", t->attempt);
		db_array_text(&col[2], hf_status_name(d->status ? d->status : t->status));
		db_array_text(&col[3], d->reason ? d->reason : t->reason ? t->reason : "");
		db_array_text(&col[4], d->metrics_json);
		db_array_text(&col[5], d->env_json);
		db_array_text(&col[6], t->weights ? t->weights : "");
		db_array_text(&col[7], t->log_excerpt ? t->log_excerpt : "");
		db_array_text(&col[8], d->worker_id);
		db_array_u32(&col[9], "device_index", t->device_index);
		db_array_i32(&col[10], t->exit_code);
		db_array_epoch_us(&col[11], "started_at", t->started_at);
		db_array_epoch_us(&col[12], "finished_at", t->finished_at);
		db_array_bool(&col[13], d->retry);
		db_array_bool(&col[14], d->flaky);
	}
	for (int c = 0; c < 15; c++)
		db_param_array(&p, &col[c]);
	r = db_pipe_send_generic(db, ops[0],
		    "WITH i AS (SELECT u.task_id, u.attempt, u.status, u.reason, u.metrics, u.env, u.weights,"
		    " u.log_excerpt, u.worker_id, u.device_index, u.exit_code,"
		    " timestamptz 'epoch' + u.started_us * interval '1 microsecond' AS started_at,"
		    " timestamptz 'epoch' + u.finished_us * interval '1 microsecond' AS finished_at,"
		    " u.retry, u.flaky, u.ord,"
		    /* The first of the copies of a result in the statement is the
		     * one stored; a later copy (a re-send in another op) is a
		     * duplicate, as it would be in a statement of its own. */
		    " row_number() OVER (PARTITION BY u.task_id, u.attempt, u.worker_id ORDER BY u.ord) AS nth,"
		    /* The task and the attempt, read once for every use below
		     * (one snapshot: each CTE would read the same rows). */
		    " t0.job_id, t0.state AS t_state, t0.attempt AS t_attempt,"
		    " a0.task_id IS NOT NULL AS owned, f.*"
		    " FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],"
		    " $7::text[], $8::text[], $9::text[], $10::int[], $11::int[], $12::bigint[], $13::bigint[],"
		    " $14::bool[], $15::bool[]) WITH ORDINALITY AS u (task_id, attempt, status, reason, metrics,"
		    " env, weights, log_excerpt, worker_id, device_index, exit_code, started_us, finished_us,"
		    " retry, flaky, ord)"
		    /* The new columns (migration 008): from the env and metrics JSON,
		     * else from what the worker registered for the device. */
		    " LEFT JOIN tasks t0 ON t0.id = u.task_id"
		    " LEFT JOIN attempts a0 ON a0.task_id = u.task_id AND a0.attempt = u.attempt"
		    " AND a0.worker_id = u.worker_id"
		    " LEFT JOIN devices dv ON dv.worker_id = u.worker_id AND dv.backend = t0.backend"
		    " AND dv.idx = u.device_index"
		    " CROSS JOIN LATERAL hfleet_result_fields(u.env, u.metrics, u.weights, dv.name, dv.uuid,"
		    " dv.memory_bytes) f),"
		    /* Find or create the environment of each result its worker owns. */
		    " ne AS (INSERT INTO environments (fingerprint, driver_version, cuda_version, rocm_version,"
		    " torch_version, transformers_version, python_version, runner_version, weights)"
		    " SELECT DISTINCT ON (i.fingerprint) i.fingerprint, i.driver_version, i.cuda_version,"
		    " i.rocm_version, i.torch_version, i.transformers_version, i.python_version,"
		    " i.runner_version, left(i.weights, 32)"
		    " FROM i WHERE i.owned AND i.fingerprint IS NOT NULL"
		    " ORDER BY i.fingerprint"
		    " ON CONFLICT (fingerprint) DO NOTHING RETURNING id, fingerprint),"
		    " envs AS (SELECT id, fingerprint FROM ne UNION ALL SELECT e.id, e.fingerprint"
		    " FROM environments e WHERE e.fingerprint IN (SELECT fingerprint FROM i)),"
		    " ins AS (INSERT INTO results (task_id, attempt, status, reason, metrics, env,"
		    " weights, log_excerpt, worker_id, device_index, exit_code, started_at, finished_at, stale,"
		    " retried, flaky_rerun, device_uuid, device_name, device_memory_bytes, driver_version,"
		    " cuda_version, rocm_version, torch_version, transformers_version, python_version,"
		    " runner_version, env_id, latency_mean_ms, latency_stdev_ms, latency_cv, latency_p50_ms,"
		    " latency_p90_ms, latency_p95_ms, latency_p99_ms, throughput_items_s, peak_memory_bytes,"
		    " energy_j_per_item, avg_power_w, noisy, offloaded_bytes)"
		    " SELECT i.task_id, i.attempt, i.status, i.reason, i.metrics, i.env, i.weights,"
		    " i.log_excerpt, i.worker_id, i.device_index, i.exit_code, i.started_at, i.finished_at,"
		    " NOT (i.t_state = 'leased' AND i.t_attempt = i.attempt),"
		    " i.retry AND i.t_state = 'leased' AND i.t_attempt = i.attempt,"
		    " i.flaky AND i.retry AND i.t_state = 'leased' AND i.t_attempt = i.attempt,"
		    " i.device_uuid, i.device_name, i.device_memory_bytes, i.driver_version, i.cuda_version,"
		    " i.rocm_version, i.torch_version, i.transformers_version, i.python_version,"
		    " i.runner_version,"
		    " envs.id,"
		    " i.latency_mean_ms, i.latency_stdev_ms, i.latency_cv, i.latency_p50_ms, i.latency_p90_ms,"
		    " i.latency_p95_ms, i.latency_p99_ms, i.throughput_items_s, i.peak_memory_bytes,"
		    " i.energy_j_per_item, i.avg_power_w, i.noisy, i.offloaded_bytes"
		    " FROM i"
		    /* One row per fingerprint: ne holds the new ones, the
		     * snapshot the ones stored before (joined once, not a
		     * subquery per row over envs and i). */
		    " LEFT JOIN envs ON envs.fingerprint = i.fingerprint"
		    " WHERE i.nth = 1 AND i.owned AND i.job_id IS NOT NULL"
		    " ON CONFLICT (task_id, attempt) DO NOTHING"
		    " RETURNING id, task_id, attempt, status, stale, retried),"
		    " upd AS (UPDATE tasks t SET"
		    " state = CASE WHEN ins.retried THEN 'queued' ELSE ins.status END,"
		    " finished_at = CASE WHEN ins.retried THEN NULL ELSE now() END,"
		    " result_id = CASE WHEN ins.retried THEN NULL ELSE ins.id END,"
		    " worker_id = CASE WHEN ins.retried THEN NULL ELSE t.worker_id END"
		    " FROM ins WHERE t.id = ins.task_id AND NOT ins.stale RETURNING t.id),"
		    " att AS (UPDATE attempts a SET ended_at = now(), end_reason = 'result' FROM ins"
		    " WHERE a.task_id = ins.task_id AND a.attempt = ins.attempt AND " DB_ATTEMPT_OPEN("a") ")"
		    /* A row per result sent (ord >= 1), then a row per result
		     * stored (ord 0): they are matched here, in C, by (task,
		     * attempt); joined in SQL the generic plan scanned ins once
		     * per row sent. */
		    " SELECT i.task_id, i.attempt, i.job_id, NULL::bool, NULL::bool, i.owned, i.ord, i.nth FROM i"
		    " UNION ALL SELECT ins.task_id, ins.attempt, NULL, ins.stale, ins.retried, NULL, 0, 0 FROM ins",
		    &p, m->n_rows);
	db_params_fini(&p);
	if (r < 0)
		return r;
	m->sent = true;
	/* Jobs whose last task just got its outcome are done.  The check for a
	 * live task reads tasks_live_idx from the newest id down, where a
	 * running job's queued tasks are: fresh statistics after a large
	 * submit (db-jobs.c) say most of the job is queued, and a plain
	 * EXISTS or LIMIT 1 was then planned as a sequential scan that walked
	 * past every finished task first (about 1 ms a result statement, 40 %
	 * of PostgreSQL's CPU per task). */
	db_params_init(&p);
	db_array_init(&tasks, &p);
	for (size_t k = 0; k < m->n_rows; k++)
		db_array_u64(&tasks, "task_id", rows[k].d->r->task_id);
	db_param_array(&p, &tasks);
	r = db_pipe_send(db, ops[0],
		    "UPDATE jobs j SET state = 'done', finished_at = now()"
		    " WHERE j.id = ANY (ARRAY(SELECT DISTINCT t.job_id FROM tasks t WHERE t.id = ANY ($1::bigint[])))"
		    " AND " JOB_NOW_DONE " RETURNING j.id",
		    &p);
	db_params_fini(&p);
	return r;
}

int result_store_read(struct db *db, struct db_merged *m)
{
	struct db_op **ops = m->ops;
	struct result_row *rows = m->rows;
	struct stored_row *stored = m->scratch;
	size_t n_rows = m->n_rows;
	PGresult *res = NULL;

	if (!m->sent)
		return 0;
	int r = db_pipe_read(db, ops[0], PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;

	size_t n_stored = 0;
	/* The results stored, sorted by (task, attempt): at most one each
	 * (the unique key of results). */
	for (int row = 0; row < PQntuples(res); row++) {
		if (get_u64(res, row, 6) != 0 || n_stored == 2 * n_rows)
			continue;
		stored[n_stored].task_id = get_u64(res, row, 0);
		stored[n_stored].attempt = (uint32_t)get_u64(res, row, 1);
		stored[n_stored].stale = strcmp(PQgetvalue(res, row, 3), "t") == 0;
		stored[n_stored++].retried = strcmp(PQgetvalue(res, row, 4), "t") == 0;
	}
	qsort(stored, n_stored, sizeof(*stored), stored_row_cmp);
	/* One row per result sent, found by its position in the arrays (the
	 * ordinality), not by searching the batch for its task id.  The
	 * first copy of a result its worker owns (nth 1) is the one whose
	 * insert decided it; a later copy is a duplicate. */
	for (int row = 0; row < PQntuples(res); row++) {
		uint64_t ord = get_u64(res, row, 6);
		if (ord < 1 || ord > n_rows)
			continue;
		struct db_result *d = rows[ord - 1].d;
		if (d->r->task_id != get_u64(res, row, 0))
			continue;
		struct stored_row key = { .task_id = d->r->task_id, .attempt = d->r->attempt }, *st = NULL;
		if (get_u64(res, row, 7) == 1)
			st = bsearch(&key, stored, n_stored, sizeof(*stored), stored_row_cmp);
		if (PQgetisnull(res, row, 2))
			d->outcome = DB_RESULT_UNKNOWN;
		else if (strcmp(PQgetvalue(res, row, 5), "t") != 0)
			d->outcome = DB_RESULT_NOT_OWNED;
		else if (!st)
			d->outcome = DB_RESULT_DUPLICATE;
		else if (st->stale)
			d->outcome = DB_RESULT_STALE;
		else if (st->retried)
			d->outcome = DB_RESULT_RETRIED;
		else
			d->outcome = DB_RESULT_FINAL;
		if (!PQgetisnull(res, row, 2))
			d->job_id = get_u64(res, row, 2);
	}
	PQclear(res);
	r = db_pipe_read(db, ops[0], PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++)
		job_finished_tell(m->ops, m->n_ops, get_u64(res, i, 0));
	PQclear(res);
	return 0;
}

int run_result_store_merged(struct db *db, struct db_op **ops, size_t n_ops)
{
	struct db_merged m = { .ops = ops, .n_ops = n_ops };

	return db_merged_run(db, &m, result_store_send, result_store_read);
}

int run_result_store(struct db *db, struct db_op *op)
{
	return run_result_store_merged(db, &op, 1);
}

int result_jobs_finish(struct db *db, struct db_op **ops, size_t n_ops, const uint64_t *jobs, size_t n_jobs)
{
	struct db_params p;
	struct db_array a;
	PGresult *res = NULL;
	int r;

	db_params_init(&p);
	db_array_init(&a, &p);
	for (size_t i = 0; i < n_jobs; i++)
		db_array_u64(&a, "job_id", jobs[i]);
	db_param_array(&p, &a);
	r = db_exec(db, ops[0],
		    "UPDATE jobs j SET state = 'done', finished_at = now() WHERE j.id = ANY ($1::bigint[]) AND "
		    JOB_NOW_DONE " RETURNING j.id",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++)
		job_finished_tell(ops, n_ops, get_u64(res, i, 0));
	PQclear(res);
	return 0;
}
