/* SPDX-License-Identifier: MIT
 *
 * Reads of the database layer (see db.h): job status, the job list (with
 * its filters), a job's results (filtered and paged) and the explanation of
 * a task that is no longer live.  Each builds its reply envelope here; the
 * reads for people (logs, compare, history, report) are in
 * db-reads-people.c.  Runs on the database thread only, outside any
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
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* ---- reads: each builds its reply envelope ---- */

static double epoch_or_zero(PGresult *res, int row, int col)
{
	return get_double(res, row, col);
}

int db_reply_pack(struct db_op *op, Hf__Envelope *env)
{
	int r = hf_env_pack(env, &op->u.read.reply);
	if (r < 0)
		op_error(op, "could not pack the reply");
	return r;
}

int job_status_fill(struct db *db, struct db_op *op, PGresult *jr, int row, Hf__JobStatus *js,
			   Hf__StatusCount **counts_store, Hf__StatusCount *count_mem, size_t max_counts)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	js->job_id = get_u64(jr, row, 0);
	js->name = PQgetvalue(jr, row, 1);
	js->submitter = PQgetvalue(jr, row, 2);
	js->priority = atoi(PQgetvalue(jr, row, 3));
	js->state = PQgetvalue(jr, row, 4);
	js->created_at = epoch_or_zero(jr, row, 5);
	js->finished_at = epoch_or_zero(jr, row, 6);
	js->total = (uint32_t)atoi(PQgetvalue(jr, row, 7));

	db_params_init(&p);
	db_param_u64(&p, "job id", js->job_id);
	/* Tasks its submit has not written yet (db-plans.c) are queued. */
	r = db_exec(db, op,
		    "SELECT state, sum(n) FROM (SELECT state, count(*) AS n FROM tasks WHERE job_id = $1::bigint"
		    " GROUP BY state UNION ALL SELECT 'queued', sum(cardinality(model)) FROM task_plans"
		    " WHERE job_id = $1::bigint HAVING count(*) > 0) c GROUP BY state",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	size_t n = 0;
	for (int i = 0; i < PQntuples(res) && n < max_counts; i++) {
		Hf__TaskStatus st;
		if (hf_status_parse(PQgetvalue(res, i, 0), &st) < 0)
			continue;
		hf__status_count__init(&count_mem[n]);
		count_mem[n].status = st;
		count_mem[n].count = (uint32_t)atoi(PQgetvalue(res, i, 1));
		counts_store[n] = &count_mem[n];
		n++;
	}
	js->counts = counts_store;
	js->n_counts = n;
	PQclear(res);
	/* A cancelled job whose queued tasks are still being cancelled, a
	 * slice at a time (db-cancel.c): none of them will run. */
	if (strcmp(js->state, "cancelled") == 0)
		for (size_t i = 0; i < n; i++)
			if (count_mem[i].status == HF__TASK_STATUS__STATUS_QUEUED && count_mem[i].count)
				js->state = (char *)"cancelling";
	return 0;
}

int run_job_status(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__JobStatus js = HF__JOB_STATUS__INIT;
	Hf__StatusCount mem[16], *ptrs[16];
	PGresult *jr = NULL;
	struct db_params p;
	int r;

	if (op->u.read.job_id > INT64_MAX) /* an id beyond bigint names no job */
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64,
				    op->u.read.job_id);
	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.read.job_id);
	r = db_exec(db, op, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1::bigint", &p,
		    PGRES_TUPLES_OK, &jr);
	db_params_fini(&p);
	if (r < 0)
		return r;
	if (PQntuples(jr) == 0) {
		PQclear(jr);
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64,
				    op->u.read.job_id);
	}
	r = job_status_fill(db, op, jr, 0, &js, ptrs, mem, 16);
	if (r == 0) {
		env.body_case = HF__ENVELOPE__BODY_JOB_STATUS_REPLY;
		env.job_status_reply = &js;
		r = db_reply_pack(op, &env);
	}
	PQclear(jr);
	return r;
}

int run_job_list(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__JobList list = HF__JOB_LIST__INIT;
	Hf__JobStatus *jobs = NULL, **ptrs = NULL;
	Hf__StatusCount (*mem)[16] = NULL, *(*cptrs)[16] = NULL;
	PGresult *jr = NULL;
	struct db_params p;
	int r, n;

	static const Hf__JobListRequest no_filters = HF__JOB_LIST_REQUEST__INIT;
	const Hf__JobListRequest *req = op->u.read.request ? op->u.read.request->job_list : &no_filters;

	db_params_init(&p);
	db_param_u64(&p, "limit", op->u.read.limit ? op->u.read.limit : 20);
	db_param_text(&p, req->state);
	db_param_text(&p, req->submitter);
	db_param_text(&p, req->name);
	db_param_double(&p, "since", req->since);
	/* The filters are parameters of one statement: an empty one is true. */
	r = db_exec(db, op,
		    "SELECT " JOB_COLUMNS " FROM jobs"
		    " WHERE ($2::text = '' OR state = $2::text) AND ($3::text = '' OR submitter = $3::text)"
		    " AND ($4::text = '' OR strpos(name, $4::text) > 0)"
		    " AND ($5::float8 = 0 OR created_at >= to_timestamp($5::float8))"
		    " ORDER BY id DESC LIMIT $1::bigint",
		    &p, PGRES_TUPLES_OK, &jr);
	db_params_fini(&p);
	if (r < 0)
		return r;
	n = PQntuples(jr);
	jobs = calloc((size_t)n + 1, sizeof(*jobs));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	mem = calloc((size_t)n + 1, sizeof(*mem));
	cptrs = calloc((size_t)n + 1, sizeof(*cptrs));
	if (!jobs || !ptrs || !mem || !cptrs) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		hf__job_status__init(&jobs[i]);
		r = job_status_fill(db, op, jr, i, &jobs[i], cptrs[i], mem[i], 16);
		if (r < 0)
			goto out;
		ptrs[i] = &jobs[i];
	}
	list.jobs = ptrs;
	list.n_jobs = (size_t)n;
	env.body_case = HF__ENVELOPE__BODY_JOB_LIST_REPLY;
	env.job_list_reply = &list;
	r = db_reply_pack(op, &env);
out:
	free(jobs);
	free(ptrs);
	free(mem);
	free(cptrs);
	PQclear(jr);
	return r;
}

/* Appends the names of an enum list as the next text[] parameter. */
static void param_names(struct db_params *p, const int *v, size_t n, const char *(*name)(int))
{
	struct db_array a;

	db_array_init(&a, p);
	for (size_t i = 0; i < n; i++)
		db_array_text(&a, name(v[i]));
	db_param_array(p, &a);
}

static const char *backend_name(int b)
{
	return hf_backend_name((Hf__Backend)b);
}

static const char *status_name(int s)
{
	return hf_status_name((Hf__TaskStatus)s);
}

static const char *kind_name(int k)
{
	return hf_kind_name((Hf__TaskKind)k);
}

static void param_strings(struct db_params *p, char **v, size_t n)
{
	struct db_array a;

	db_array_init(&a, p);
	for (size_t i = 0; i < n; i++)
		db_array_text(&a, v[i]);
	db_param_array(p, &a);
}

/* What a row adds to a reply, roughly: its texts and room for the rest. */
static size_t db_row_bytes(PGresult *res, int row)
{
	size_t n = 64;

	for (int c = 0; c < PQnfields(res); c++)
		n += (size_t)PQgetlength(res, row, c);
	return n;
}

int db_rows_within(PGresult *res, size_t budget)
{
	int n = PQntuples(res);
	size_t bytes = 0;

	for (int i = 0; i < n; i++) {
		bytes += db_row_bytes(res, i);
		if (i > 0 && bytes > budget)
			return i;
	}
	return n;
}

/* One page of a job's tasks, filtered by the database: at most
 * HF_RESULTS_PAGE_ROWS rows and about HF_READ_REPLY_BYTES of them. */
int run_results(struct db *db, struct db_op *op)
{
	static const Hf__ResultsRequest no_filters = HF__RESULTS_REQUEST__INIT;
	const Hf__ResultsRequest *req = op->u.read.request ? op->u.read.request->results_request : &no_filters;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultsReply reply = HF__RESULTS_REPLY__INIT;
	Hf__ResultRow *rows = NULL, **ptrs = NULL;
	PGresult *res = NULL;
	struct db_params p;
	int r, n = 0;

	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.read.job_id);
	if (op->u.read.job_id <= INT64_MAX) { /* beyond bigint names no job */
		r = db_exec(db, op, "SELECT 1 FROM jobs WHERE id = $1::bigint", &p, PGRES_TUPLES_OK, &res);
		if (r < 0)
			goto out;
		n = PQntuples(res);
		PQclear(res);
		res = NULL;
	}
	if (n == 0) {
		db_params_fini(&p);
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64,
				    op->u.read.job_id);
	}

	param_strings(&p, req->models, req->n_models);
	param_strings(&p, req->families, req->n_families);
	param_names(&p, (const int *)req->backends, req->n_backends, backend_name);
	param_names(&p, (const int *)req->statuses, req->n_statuses, status_name);
	param_names(&p, (const int *)req->kinds, req->n_kinds, kind_name);
	db_param_u64(&p, "offset", req->offset);
	db_param_bool(&p, req->without_metrics);
	db_param_u32(&p, "page rows", HF_RESULTS_PAGE_ROWS);
	r = db_exec(db, op,
		 "SELECT task_id, model_type, family, backend, kind, batch_size, precision, status,"
		 " coalesce(reason, CASE WHEN status = 'cancelled' THEN 'cancelled before it ran' END, ''),"
		 " CASE WHEN $8::boolean THEN '{}' ELSE coalesce(metrics::text, '{}') END,"
		 " attempt, coalesce(worker_id, ''),"
		 " coalesce(device_index, 0), coalesce(duration_s, 0), coalesce(weights, ''), seq_len,"
		 " count(*) OVER (), mode"
		 " FROM task_outcomes WHERE job_id = $1::bigint"
		 " AND (cardinality($2::text[]) = 0 OR model_type = ANY($2::text[]))"
		 " AND (cardinality($3::text[]) = 0 OR family = ANY($3::text[]))"
		 " AND (cardinality($4::text[]) = 0 OR backend = ANY($4::text[]))"
		 " AND (cardinality($5::text[]) = 0 OR status = ANY($5::text[]))"
		 " AND (cardinality($6::text[]) = 0 OR kind = ANY($6::text[]))"
		 " ORDER BY model_type, backend, kind, seq_len, batch_size, precision, mode, task_id"
		 " LIMIT $9::bigint OFFSET $7::bigint",
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
	int kept = 0;
	/* The rows that fit; the rest is on the next page. */
	int fit = db_rows_within(res, HF_READ_REPLY_BYTES);
	for (int i = 0; i < fit; i++) {
		Hf__ResultRow *row = &rows[i];
		hf__result_row__init(row);
		row->task_id = get_u64(res, i, 0);
		row->model_type = PQgetvalue(res, i, 1);
		row->family = PQgetvalue(res, i, 2);
		hf_backend_parse(PQgetvalue(res, i, 3), &row->backend);
		hf_kind_parse(PQgetvalue(res, i, 4), &row->kind);
		row->batch_size = (uint32_t)atoi(PQgetvalue(res, i, 5));
		row->precision = PQgetvalue(res, i, 6);
		hf_status_parse(PQgetvalue(res, i, 7), &row->status);
		row->reason = PQgetvalue(res, i, 8);
		row->metrics_json = PQgetvalue(res, i, 9);
		row->attempt = (uint32_t)atoi(PQgetvalue(res, i, 10));
		row->worker_id = PQgetvalue(res, i, 11);
		row->device_index = (uint32_t)atoi(PQgetvalue(res, i, 12));
		row->duration_s = get_double(res, i, 13);
		row->weights = PQgetvalue(res, i, 14);
		row->seq_len = (uint32_t)atoi(PQgetvalue(res, i, 15));
		row->mode = PQgetvalue(res, i, 17);
		ptrs[i] = row;
		kept++;
	}
	reply.rows = ptrs;
	reply.n_rows = (size_t)kept;
	reply.total = n > 0 ? (uint32_t)get_u64(res, 0, 16) : 0;
	if (kept > 0 && (uint64_t)req->offset + (uint64_t)kept < reply.total)
		reply.next_offset = req->offset + (uint32_t)kept;
	env.body_case = HF__ENVELOPE__BODY_RESULTS_REPLY;
	env.results_reply = &reply;
	r = db_reply_pack(op, &env);
out:
	db_params_fini(&p);
	free(rows);
	free(ptrs);
	PQclear(res);
	return r;
}

int run_task_explain(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ExplainReply er = HF__EXPLAIN_REPLY__INIT;
	PGresult *res = NULL;
	struct db_params p;
	char summary[1024];
	int r;

	if (op->u.read.job_id > INT64_MAX) /* an id beyond bigint names no task */
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no task %" PRIu64,
				    op->u.read.job_id);
	db_params_init(&p);
	db_param_u64(&p, "task id", op->u.read.job_id);
	r = db_exec(db, op,
		    "SELECT status, coalesce(reason, ''), attempt, coalesce(worker_id, ''), job_id,"
		    " (SELECT j.state FROM jobs j WHERE j.id = o.job_id)"
		    " FROM task_outcomes o WHERE task_id = $1::bigint",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no task %" PRIu64,
				    op->u.read.job_id);
	}
	hf_status_parse(PQgetvalue(res, 0, 0), &er.status);
	if (hf_status_is_final(er.status))
		snprintf(summary, sizeof(summary), "%s after %s attempt(s)%s%s%s%s", PQgetvalue(res, 0, 0),
			 PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)[0] ? " on worker " : "", PQgetvalue(res, 0, 3),
			 PQgetvalue(res, 0, 1)[0] ? ": " : "", PQgetvalue(res, 0, 1));
	else if (strcmp(PQgetvalue(res, 0, 5), "cancelled") == 0)
		/* Its job's cancel is cancelling it, a slice at a time (db-cancel.c). */
		snprintf(summary, sizeof(summary), "%s, but job %s is cancelled: it will not run, and is being "
			 "cancelled", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 4));
	else
		snprintf(summary, sizeof(summary), "%s, but job %s is not active in this coordinator",
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 4));
	er.task_id = op->u.read.job_id;
	er.summary = summary;
	env.body_case = HF__ENVELOPE__BODY_EXPLAIN_REPLY;
	env.explain_reply = &er;
	r = db_reply_pack(op, &env);
	PQclear(res);
	return r;
}
