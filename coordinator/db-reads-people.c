/* SPDX-License-Identifier: MIT
 *
 * The reads people ask for through hfctl (see db.h): a task's stored runner
 * output (logs), the comparison of two jobs (compare, which is the SQL
 * function hfleet_compare_jobs: the comparison is the database's, not a
 * twin here), one model's history, and what a job's report draws.  Each
 * builds its reply envelope, bounded as common/hf_limits.h says: at most
 * a fixed number of rows and about HF_READ_REPLY_BYTES of them, the reply
 * saying what was left out.  Runs on the database thread only, outside any
 * transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_limits.h"
#include "hf_proto.h"
#include "hf_util.h"

#define HISTORY_DEFAULT_LIMIT 50
#define COMPARE_DEFAULT_THRESHOLD 0.10
/* Environments of one report: distinct (fingerprint, backend, device). */
#define REPORT_ENVIRONMENTS_MAX 256

static bool get_bool(PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col)[0] == 't';
}

/* ---- logs ---- */

int run_logs(struct db *db, struct db_op *op)
{
	const Hf__LogsRequest *req = op->u.read.request->logs;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__LogsReply reply = HF__LOGS_REPLY__INIT;
	Hf__AttemptLog *logs = NULL, **ptrs = NULL;
	PGresult *tr = NULL, *res = NULL;
	struct db_params p;
	int r, n;

	if (req->task_id > INT64_MAX) /* an id beyond bigint names no task */
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no task %" PRIu64,
				    req->task_id);
	db_params_init(&p);
	db_param_u64(&p, "task id", req->task_id);
	r = db_exec(db, op,
		    "SELECT t.job_id, t.model_type, t.backend, t.kind, t.state,"
		    " (SELECT count(*) FROM results r WHERE r.task_id = t.id)"
		    " FROM tasks t WHERE t.id = $1::bigint",
		    &p, PGRES_TUPLES_OK, &tr);
	if (r < 0)
		goto out;
	if (PQntuples(tr) == 0) {
		r = hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no task %" PRIu64,
				 req->task_id);
		goto out;
	}
	reply.task_id = req->task_id;
	reply.job_id = get_u64(tr, 0, 0);
	reply.model_type = PQgetvalue(tr, 0, 1);
	hf_backend_parse(PQgetvalue(tr, 0, 2), &reply.backend);
	hf_kind_parse(PQgetvalue(tr, 0, 3), &reply.kind);
	hf_status_parse(PQgetvalue(tr, 0, 4), &reply.status);
	reply.total_attempts = (uint32_t)get_u64(tr, 0, 5);

	db_param_bool(&p, req->all);
	db_param_u32(&p, "attempts", HF_LOGS_ATTEMPTS_MAX);
	r = db_exec(db, op,
		    "SELECT r.attempt, r.status, r.reason, r.worker_id, r.device_index,"
		    " extract(epoch from r.received_at), r.log_excerpt,"
		    " r.id IS NOT DISTINCT FROM t.result_id, r.stale"
		    " FROM results r JOIN tasks t ON t.id = r.task_id"
		    " WHERE r.task_id = $1::bigint AND ($2::boolean OR r.id = t.result_id)"
		    " ORDER BY r.received_at DESC, r.id DESC LIMIT $3::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	n = PQntuples(res);
	logs = calloc((size_t)n + 1, sizeof(*logs));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	if (!logs || !ptrs) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		Hf__AttemptLog *l = &logs[i];
		hf__attempt_log__init(l);
		l->attempt = (uint32_t)get_u64(res, i, 0);
		hf_status_parse(PQgetvalue(res, i, 1), &l->status);
		l->reason = PQgetvalue(res, i, 2);
		l->worker_id = PQgetvalue(res, i, 3);
		l->device_index = (uint32_t)get_u64(res, i, 4);
		l->received_at = get_double(res, i, 5);
		l->log_excerpt = PQgetvalue(res, i, 6);
		l->deciding = get_bool(res, i, 7);
		l->stale = get_bool(res, i, 8);
		ptrs[i] = l;
	}
	reply.attempts = ptrs;
	reply.n_attempts = (size_t)n;
	env.body_case = HF__ENVELOPE__BODY_LOGS_REPLY;
	env.logs_reply = &reply;
	r = db_reply_pack(op, &env);
out:
	db_params_fini(&p);
	free(logs);
	free(ptrs);
	PQclear(tr);
	PQclear(res);
	return r;
}

/* ---- compare ---- */

/* A figure column: negative when NULL. */
static double figure(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? -1.0 : get_double(res, row, col);
}

static Hf__TaskStatus status_or_none(PGresult *res, int row, int col)
{
	Hf__TaskStatus st = HF__TASK_STATUS__STATUS_UNSPECIFIED;

	if (!PQgetisnull(res, row, col))
		hf_status_parse(PQgetvalue(res, row, col), &st);
	return st;
}

int run_compare(struct db *db, struct db_op *op)
{
	const Hf__CompareRequest *req = op->u.read.request->compare;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__CompareReply reply = HF__COMPARE_REPLY__INIT;
	Hf__CompareRow *rows = NULL, **ptrs = NULL;
	PGresult *res = NULL;
	struct db_params p;
	double threshold = req->threshold > 0 ? req->threshold : COMPARE_DEFAULT_THRESHOLD;
	int r, n;

	db_params_init(&p);
	db_param_u64(&p, "base job id", req->base_job_id);
	db_param_u64(&p, "candidate job id", req->cand_job_id);
	r = db_exec(db, op,
		    "SELECT bool_or(id = $1::bigint), bool_or(id = $2::bigint) FROM jobs"
		    " WHERE id IN ($1::bigint, $2::bigint)",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	if (!get_bool(res, 0, 0) || !get_bool(res, 0, 1)) {
		r = hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64,
				 get_bool(res, 0, 0) ? req->cand_job_id : req->base_job_id);
		goto out;
	}
	PQclear(res);
	res = NULL;

	db_param_double(&p, "threshold", threshold);
	db_param_u32(&p, "rows", HF_COMPARE_ROWS_MAX);
	/* Regressions first, so that a reply cut short still has them; the
	 * counts are over every row. */
	r = db_exec(db, op,
		    "SELECT model_type, backend, kind, precision, batch_size, seq_len, base_status, cand_status,"
		    " change_kind, coalesce(base_reason, ''), coalesce(cand_reason, ''), base_p50_ms, cand_p50_ms,"
		    " change, coalesce(base_env_id, 0), coalesce(cand_env_id, 0),"
		    " count(*) OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'new-failure') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'fixed') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'slower') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'faster') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'same') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'noisy') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'missing') OVER (),"
		    " count(*) FILTER (WHERE change_kind = 'new') OVER (), mode"
		    " FROM hfleet_compare_jobs($1::bigint, $2::bigint, $3::float8)"
		    " ORDER BY CASE change_kind WHEN 'new-failure' THEN 0 WHEN 'slower' THEN 1 WHEN 'fixed' THEN 2"
		    " WHEN 'faster' THEN 3 WHEN 'noisy' THEN 4 WHEN 'missing' THEN 5 WHEN 'new' THEN 6 ELSE 7 END,"
		    " model_type, backend, kind, precision, batch_size, seq_len, mode"
		    " LIMIT $4::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	n = PQntuples(res);
	rows = calloc((size_t)n + 1, sizeof(*rows));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	if (!rows || !ptrs) {
		r = -ENOMEM;
		goto out;
	}
	size_t kept = 0;
	int fit = db_rows_within(res, HF_READ_REPLY_BYTES);
	for (int i = 0; i < fit; i++) {
		Hf__CompareRow *row = &rows[i];
		hf__compare_row__init(row);
		row->model_type = PQgetvalue(res, i, 0);
		hf_backend_parse(PQgetvalue(res, i, 1), &row->backend);
		hf_kind_parse(PQgetvalue(res, i, 2), &row->kind);
		row->precision = PQgetvalue(res, i, 3);
		row->batch_size = (uint32_t)get_u64(res, i, 4);
		row->seq_len = (uint32_t)get_u64(res, i, 5);
		row->base_status = status_or_none(res, i, 6);
		row->cand_status = status_or_none(res, i, 7);
		row->change_kind = PQgetvalue(res, i, 8);
		row->base_reason = PQgetvalue(res, i, 9);
		row->cand_reason = PQgetvalue(res, i, 10);
		row->base_p50_ms = figure(res, i, 11);
		row->cand_p50_ms = figure(res, i, 12);
		row->has_change = !PQgetisnull(res, i, 13);
		row->change = row->has_change ? get_double(res, i, 13) : 0;
		row->base_env_id = get_u64(res, i, 14);
		row->cand_env_id = get_u64(res, i, 15);
		row->mode = PQgetvalue(res, i, 25);
		ptrs[i] = row;
		kept++;
	}
	reply.rows = ptrs;
	reply.n_rows = kept;
	reply.threshold = threshold;
	if (n > 0) {
		reply.total = (uint32_t)get_u64(res, 0, 16);
		reply.new_failures = (uint32_t)get_u64(res, 0, 17);
		reply.fixed = (uint32_t)get_u64(res, 0, 18);
		reply.slower = (uint32_t)get_u64(res, 0, 19);
		reply.faster = (uint32_t)get_u64(res, 0, 20);
		reply.same = (uint32_t)get_u64(res, 0, 21);
		reply.noisy = (uint32_t)get_u64(res, 0, 22);
		reply.missing = (uint32_t)get_u64(res, 0, 23);
		reply.added = (uint32_t)get_u64(res, 0, 24);
	}
	env.body_case = HF__ENVELOPE__BODY_COMPARE_REPLY;
	env.compare_reply = &reply;
	r = db_reply_pack(op, &env);
out:
	db_params_fini(&p);
	free(rows);
	free(ptrs);
	PQclear(res);
	return r;
}

/* ---- history ---- */

int run_history(struct db *db, struct db_op *op)
{
	const Hf__HistoryRequest *req = op->u.read.request->history;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__HistoryReply reply = HF__HISTORY_REPLY__INIT;
	Hf__HistoryRow *rows = NULL, **ptrs = NULL;
	PGresult *res = NULL;
	struct db_params p;
	int r, n;

	db_params_init(&p);
	db_param_text(&p, req->model_type);
	db_param_text(&p, req->backend ? hf_backend_name(req->backend) : "");
	db_param_text(&p, req->precision);
	db_param_text(&p, req->kind ? hf_kind_name(req->kind) : "");
	db_param_u32(&p, "limit", req->limit ? req->limit : HISTORY_DEFAULT_LIMIT);
	/*
	 * Decided tasks only, newest first by the coordinator's clock (when it
	 * decided the outcome): task_history (migration 009) read backwards
	 * along task_history_model_idx, the deciding result joined for the
	 * few rows kept.
	 */
	r = db_exec(db, op,
		    "SELECT h.task_id, h.job_id, h.backend, h.kind, h.precision, h.batch_size, h.seq_len,"
		    " h.status, coalesce(r.reason, ''), coalesce(extract(epoch from r.received_at), 0),"
		    " coalesce(h.device_name, ''), coalesce(r.worker_id, ''),"
		    " h.latency_p50_ms, h.latency_p90_ms, h.latency_p99_ms, h.latency_cv, h.throughput_items_s,"
		    " coalesce(h.noisy, false), coalesce(h.env_id, 0), coalesce(r.torch_version, ''),"
		    " coalesce(r.transformers_version, ''), h.mode"
		    " FROM task_history h LEFT JOIN results r ON r.id = h.result_id"
		    " WHERE h.model_type = $1::text"
		    " AND ($2::text = '' OR h.backend = $2::text) AND ($3::text = '' OR h.precision = $3::text)"
		    " AND ($4::text = '' OR h.kind = $4::text)"
		    " ORDER BY h.finished_at DESC, h.task_id DESC LIMIT $5::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	n = PQntuples(res);
	rows = calloc((size_t)n + 1, sizeof(*rows));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	if (!rows || !ptrs) {
		r = -ENOMEM;
		goto out;
	}
	size_t kept = 0;
	int fit = db_rows_within(res, HF_READ_REPLY_BYTES);
	reply.truncated = fit < n;
	for (int i = 0; i < fit; i++) {
		Hf__HistoryRow *row = &rows[i];
		hf__history_row__init(row);
		row->task_id = get_u64(res, i, 0);
		row->job_id = get_u64(res, i, 1);
		hf_backend_parse(PQgetvalue(res, i, 2), &row->backend);
		hf_kind_parse(PQgetvalue(res, i, 3), &row->kind);
		row->precision = PQgetvalue(res, i, 4);
		row->batch_size = (uint32_t)get_u64(res, i, 5);
		row->seq_len = (uint32_t)get_u64(res, i, 6);
		hf_status_parse(PQgetvalue(res, i, 7), &row->status);
		row->reason = PQgetvalue(res, i, 8);
		row->received_at = get_double(res, i, 9);
		row->device_name = PQgetvalue(res, i, 10);
		row->worker_id = PQgetvalue(res, i, 11);
		row->latency_p50_ms = figure(res, i, 12);
		row->latency_p90_ms = figure(res, i, 13);
		row->latency_p99_ms = figure(res, i, 14);
		row->latency_cv = figure(res, i, 15);
		row->throughput_items_s = figure(res, i, 16);
		row->noisy = get_bool(res, i, 17);
		row->env_id = get_u64(res, i, 18);
		row->torch_version = PQgetvalue(res, i, 19);
		row->transformers_version = PQgetvalue(res, i, 20);
		row->mode = PQgetvalue(res, i, 21);
		ptrs[i] = row;
		kept++;
	}
	reply.rows = ptrs;
	reply.n_rows = kept;
	env.body_case = HF__ENVELOPE__BODY_HISTORY_REPLY;
	env.history_reply = &reply;
	r = db_reply_pack(op, &env);
out:
	db_params_fini(&p);
	free(rows);
	free(ptrs);
	PQclear(res);
	return r;
}

/* ---- report ---- */

static int report_environments(struct db *db, struct db_op *op, uint64_t job_id, PGresult **ret)
{
	struct db_params p;
	int r;

	db_params_init(&p);
	db_param_u64(&p, "job id", job_id);
	db_param_u32(&p, "environments", REPORT_ENVIRONMENTS_MAX);
	r = db_exec(db, op,
		       "SELECT coalesce(env_id, 0), backend, coalesce(device_name, ''),"
		       " coalesce(driver_version, ''), coalesce(cuda_version, ''), coalesce(rocm_version, ''),"
		       " coalesce(torch_version, ''), coalesce(transformers_version, ''),"
		       " coalesce(python_version, ''), coalesce(runner_version, ''), coalesce(weights, ''),"
		       " count(*)"
		       " FROM task_outcomes WHERE job_id = $1::bigint AND worker_id IS NOT NULL"
		       " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
		       " ORDER BY 2, 3, 1 LIMIT $2::bigint",
		       &p, PGRES_TUPLES_OK, ret);
	db_params_fini(&p);
	return r;
}

int run_report(struct db *db, struct db_op *op)
{
	uint64_t job_id = op->u.read.request->report->job_id;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ReportReply reply = HF__REPORT_REPLY__INIT;
	Hf__JobStatus js = HF__JOB_STATUS__INIT;
	Hf__StatusCount cmem[16], *cptrs[16];
	Hf__ReportTask *tasks = NULL, **tptrs = NULL;
	Hf__ReportEnvironment *envs = NULL, **eptrs = NULL;
	PGresult *jr = NULL, *res = NULL, *er = NULL;
	struct db_params p;
	int r, n, ne;

	if (job_id > INT64_MAX) /* an id beyond bigint names no job */
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64, job_id);
	db_params_init(&p);
	db_param_u64(&p, "job id", job_id);
	r = db_exec(db, op, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1::bigint", &p, PGRES_TUPLES_OK, &jr);
	if (r < 0)
		goto out;
	if (PQntuples(jr) == 0) {
		r = hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64, job_id);
		goto out;
	}
	r = job_status_fill(db, op, jr, 0, &js, cptrs, cmem, 16);
	if (r < 0)
		goto out;

	db_param_u32(&p, "tasks", HF_REPORT_TASKS_MAX);
	r = db_exec(db, op,
		    "SELECT task_id, model_type, family, backend, kind, precision, batch_size, seq_len, status,"
		    " coalesce(reason, CASE WHEN status = 'cancelled' THEN 'cancelled before it ran' END, ''),"
		    " coalesce(device_name, ''), latency_mean_ms, latency_p50_ms, latency_p90_ms, latency_p99_ms,"
		    " latency_cv, throughput_items_s, coalesce(noisy, false), coalesce(env_id, 0), count(*) OVER (),"
		    " mode"
		    " FROM task_outcomes WHERE job_id = $1::bigint"
		    " ORDER BY model_type, backend, kind, precision, batch_size, seq_len, mode, task_id"
		    " LIMIT $2::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	if (r < 0)
		goto out;
	r = report_environments(db, op, job_id, &er);
	if (r < 0)
		goto out;
	n = PQntuples(res);
	ne = PQntuples(er);
	tasks = calloc((size_t)n + 1, sizeof(*tasks));
	tptrs = calloc((size_t)n + 1, sizeof(*tptrs));
	envs = calloc((size_t)ne + 1, sizeof(*envs));
	eptrs = calloc((size_t)ne + 1, sizeof(*eptrs));
	if (!tasks || !tptrs || !envs || !eptrs) {
		r = -ENOMEM;
		goto out;
	}
	size_t kept = 0;
	/* total_tasks says how many were left out. */
	int fit = db_rows_within(res, HF_READ_REPLY_BYTES);
	for (int i = 0; i < fit; i++) {
		Hf__ReportTask *t = &tasks[i];
		hf__report_task__init(t);
		t->task_id = get_u64(res, i, 0);
		t->model_type = PQgetvalue(res, i, 1);
		t->family = PQgetvalue(res, i, 2);
		hf_backend_parse(PQgetvalue(res, i, 3), &t->backend);
		hf_kind_parse(PQgetvalue(res, i, 4), &t->kind);
		t->precision = PQgetvalue(res, i, 5);
		t->batch_size = (uint32_t)get_u64(res, i, 6);
		t->seq_len = (uint32_t)get_u64(res, i, 7);
		hf_status_parse(PQgetvalue(res, i, 8), &t->status);
		t->reason = PQgetvalue(res, i, 9);
		t->device_name = PQgetvalue(res, i, 10);
		t->latency_mean_ms = figure(res, i, 11);
		t->latency_p50_ms = figure(res, i, 12);
		t->latency_p90_ms = figure(res, i, 13);
		t->latency_p99_ms = figure(res, i, 14);
		t->latency_cv = figure(res, i, 15);
		t->throughput_items_s = figure(res, i, 16);
		t->noisy = get_bool(res, i, 17);
		t->env_id = get_u64(res, i, 18);
		t->mode = PQgetvalue(res, i, 20);
		tptrs[i] = t;
		kept++;
	}
	for (int i = 0; i < ne; i++) {
		Hf__ReportEnvironment *e = &envs[i];
		hf__report_environment__init(e);
		e->env_id = get_u64(er, i, 0);
		hf_backend_parse(PQgetvalue(er, i, 1), &e->backend);
		e->device_name = PQgetvalue(er, i, 2);
		e->driver_version = PQgetvalue(er, i, 3);
		e->cuda_version = PQgetvalue(er, i, 4);
		e->rocm_version = PQgetvalue(er, i, 5);
		e->torch_version = PQgetvalue(er, i, 6);
		e->transformers_version = PQgetvalue(er, i, 7);
		e->python_version = PQgetvalue(er, i, 8);
		e->runner_version = PQgetvalue(er, i, 9);
		e->weights = PQgetvalue(er, i, 10);
		e->tasks = (uint32_t)get_u64(er, i, 11);
		eptrs[i] = e;
	}
	reply.job = &js;
	reply.tasks = tptrs;
	reply.n_tasks = kept;
	reply.total_tasks = n > 0 ? (uint32_t)get_u64(res, 0, 19) : 0;
	reply.environments = eptrs;
	reply.n_environments = (size_t)ne;
	env.body_case = HF__ENVELOPE__BODY_REPORT_REPLY;
	env.report_reply = &reply;
	r = db_reply_pack(op, &env);
out:
	db_params_fini(&p);
	free(tasks);
	free(tptrs);
	free(envs);
	free(eptrs);
	PQclear(jr);
	PQclear(res);
	PQclear(er);
	return r;
}
