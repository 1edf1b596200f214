/* SPDX-License-Identifier: MIT
 *
 * The listings: "hfctl results" (a job's tasks, filtered by the
 * coordinator's database and fetched page by page) and "hfctl jobs" (the
 * recent jobs, filtered likewise).  Each parses its options (hfctl-args.c),
 * makes its requests through hfctl_call and prints a table, CSV or JSON
 * (hfctl-format.c, hfctl-json.c).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_limits.h"
#include "hfctl-args.h"
#include "hfctl-format.h"
#include "hfctl-json.h"
#include "hfctl.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define JOBS_DEFAULT_LIMIT 20
#define JOBS_MAX_LIMIT 10000
/* Room for a reason in the results table (--wide: no limit); JSON and CSV
 * have it whole. */
#define RESULTS_REASON_WIDTH 60

enum {
	OPT_JSON = 256,
	OPT_CSV,
	OPT_WIDE,
	OPT_STATUS,
	OPT_MODEL,
	OPT_FAMILY,
	OPT_BACKEND,
	OPT_KIND,
	OPT_LIMIT,
	OPT_STATE,
	OPT_SUBMITTER,
	OPT_NAME,
	OPT_SINCE,
};

/* ---- results ---- */

static const struct hfctl_column results_columns[] = {
	{ "TASK", true, 0 },      { "MODEL", false, 0 },   { "FAMILY", false, 0 },
	{ "BACKEND", false, 0 },  { "KIND", false, 0 },    { "BATCH", true, 0 },
	{ "SEQ", true, 0 },       { "PREC", false, 0 },    { "MODE", false, 0 },
	{ "STATUS", false, 0 },
	{ "TIME", true, 0 },
	{ "WEIGHTS", false, 0 },  { "REASON", false, RESULTS_REASON_WIDTH },
};

#define RESULTS_NCOLS (sizeof(results_columns) / sizeof(results_columns[0]))

static int results_table_print(Hf__ResultRow *const *rows, size_t n, bool wide, uint32_t total)
{
	struct hfctl_table *t = hfctl_table_new(results_columns, RESULTS_NCOLS);

	if (wide)
		hfctl_table_whole(t, RESULTS_NCOLS - 1);
	struct hfctl_counts c = { 0 };
	struct hf_buf b;

	for (size_t i = 0; i < n; i++) {
		const Hf__ResultRow *row = rows[i];
		char task[24], batch[16], seq[16], time[32];
		const char *cells[RESULTS_NCOLS] = {
			task, row->model_type, row->family, hf_backend_name(row->backend),
			hf_kind_name(row->kind), batch, seq, row->precision, hfctl_mode_shown(row->kind, row->mode),
			hf_status_name(row->status), time, hfctl_dash(row->weights), row->reason,
		};

		snprintf(task, sizeof(task), "%" PRIu64, row->task_id);
		snprintf(batch, sizeof(batch), "%" PRIu32, row->batch_size);
		if (row->seq_len)
			snprintf(seq, sizeof(seq), "%" PRIu32, row->seq_len);
		else    /* a coordinator that does not send it */
			snprintf(seq, sizeof(seq), "-");
		if (row->duration_s > 0)
			hfctl_duration_format((int64_t)(row->duration_s * 1000), time, sizeof(time));
		else
			snprintf(time, sizeof(time), "-");
		hfctl_table_add(t, cells);
		hfctl_counts_add(&c, row->status);
	}
	hf_buf_init(&b);
	if (n > 0)
		hfctl_table_render(t, &b);
	hfctl_table_free(t);
	hfctl_summary_format(&c, &b);
	hf_buf_puts(&b, "\n");
	if (total > n) /* a coordinator cannot send fewer than it says match: said, never hidden */
		hf_buf_printf(&b, "%" PRIu32 " tasks match; %zu were received\n", total, n);
	return hfctl_buf_print(&b);
}

static int results_csv_print(Hf__ResultRow *const *rows, size_t n)
{
	static const char *const header[] = {
		"task_id", "model_type", "family", "backend", "kind", "batch_size", "precision",
		"status", "reason", "metrics_json", "attempt", "worker_id", "device_index",
		"duration_s", "weights", "seq_len", "mode",
	};
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_csv_record(&b, header, sizeof(header) / sizeof(header[0]));
	for (size_t i = 0; i < n; i++) {
		const Hf__ResultRow *row = rows[i];
		char task[24], batch[16], attempt[16], device[16], duration[32], seq[16];
		const char *fields[] = {
			task, row->model_type, row->family, hf_backend_name(row->backend),
			hf_kind_name(row->kind), batch, row->precision, hf_status_name(row->status),
			row->reason, row->metrics_json, attempt, row->worker_id, device, duration,
			row->weights, seq, row->mode && *row->mode ? row->mode : "eager",
		};

		snprintf(task, sizeof(task), "%" PRIu64, row->task_id);
		snprintf(batch, sizeof(batch), "%" PRIu32, row->batch_size);
		snprintf(attempt, sizeof(attempt), "%" PRIu32, row->attempt);
		snprintf(device, sizeof(device), "%" PRIu32, row->device_index);
		snprintf(duration, sizeof(duration), "%.3f", row->duration_s);
		snprintf(seq, sizeof(seq), "%" PRIu32, row->seq_len);
		hfctl_csv_record(&b, fields, sizeof(fields) / sizeof(fields[0]));
	}
	return hfctl_buf_print(&b);
}

static const struct option results_options[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "wide", no_argument, NULL, OPT_WIDE },
	{ "status", required_argument, NULL, OPT_STATUS },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "models", required_argument, NULL, OPT_MODEL },
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

struct results_filters {
	struct hfctl_list models, families;
	Hf__Backend backends[HF__BACKEND__BACKEND_QNN];
	size_t n_backends;
	Hf__TaskStatus statuses[HFCTL_N_STATUS];
	size_t n_statuses;
	Hf__TaskKind kinds[HF__TASK_KIND__KIND_BENCHMARK];
	size_t n_kinds;
};

static void results_filters_fini(struct results_filters *f)
{
	hfctl_list_fini(&f->models);
	hfctl_list_fini(&f->families);
}

/* Fetches every page of the job's results (the coordinator sends at most
 * HF_RESULTS_PAGE_ROWS rows, and about HF_READ_REPLY_BYTES, at a time)
 * into pages[]; the rows are gathered into *ret_rows. */
#define RESULTS_MAX_PAGES 4096
static int results_fetch(struct hfctl_ctx *ctx, Hf__ResultsRequest *req, Hf__Envelope ***ret_pages,
			 size_t *ret_n_pages, Hf__ResultRow ***ret_rows, size_t *ret_n, uint32_t *ret_total)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, **pages = NULL;
	Hf__ResultRow **rows = NULL;
	size_t n_pages = 0, n = 0;
	int r = 0;

	env.body_case = HF__ENVELOPE__BODY_RESULTS_REQUEST;
	env.results_request = req;
	*ret_total = 0;
	for (;;) {
		Hf__Envelope *reply = NULL, **np;
		r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_RESULTS_REPLY, &reply);
		if (r < 0)
			break;
		np = realloc(pages, (n_pages + 1) * sizeof(*pages));
		if (!np) {
			hf_env_free(reply);
			r = -ENOMEM;
			break;
		}
		pages = np;
		pages[n_pages++] = reply;
		const Hf__ResultsReply *rr = reply->results_reply;
		Hf__ResultRow **nr = realloc(rows, (n + rr->n_rows + 1) * sizeof(*rows));
		if (!nr) {
			r = -ENOMEM;
			break;
		}
		rows = nr;
		if (rr->n_rows) /* an empty page has no array */
			memcpy(rows + n, rr->rows, rr->n_rows * sizeof(*rows));
		n += rr->n_rows;
		if (rr->total > *ret_total)
			*ret_total = rr->total;
		/* A next page must lie further on: anything else ends the listing. */
		if (rr->next_offset <= req->offset || rr->n_rows == 0 || n_pages >= RESULTS_MAX_PAGES)
			break;
		req->offset = rr->next_offset;
	}
	if (r == -ENOMEM)
		hfctl_error("out of memory while fetching the results");
	*ret_pages = pages;
	*ret_n_pages = n_pages;
	*ret_rows = rows;
	*ret_n = n;
	return r;
}

static int results_filter_add(struct results_filters *f, int opt, const char *text, char *err, size_t errlen)
{
	struct hfctl_list l = { 0 };
	int r = 0;

	switch (opt) {
	case OPT_MODEL:
		return hfctl_list_split(&f->models, "--model", text, err, errlen);
	case OPT_FAMILY:
		r = hfctl_list_split(&l, "--family", text, err, errlen);
		for (size_t i = 0; r == 0 && i < l.n; i++) {
			if (!hf_family_valid(l.items[i])) {
				hfctl_unknown_name("family", l.items[i], "--family", hf_family_names(), err,
						   errlen);
				r = -EINVAL;
			}
		}
		if (r == 0)
			r = hfctl_list_split(&f->families, "--family", text, err, errlen);
		break;
	case OPT_BACKEND:
		r = hfctl_list_split(&l, "--backend", text, err, errlen);
		for (size_t i = 0; r == 0 && i < l.n; i++) {
			Hf__Backend b;
			if (hf_backend_parse(l.items[i], &b) < 0) {
				hfctl_unknown_name("backend", l.items[i], "--backend", hf_backend_names(), err,
						   errlen);
				r = -EINVAL;
			} else if (f->n_backends < N_ELEM(f->backends)) {
				f->backends[f->n_backends++] = b;
			}
		}
		break;
	case OPT_KIND:
		r = hfctl_list_split(&l, "--kind", text, err, errlen);
		for (size_t i = 0; r == 0 && i < l.n; i++) {
			Hf__TaskKind k;
			if (hf_kind_parse(l.items[i], &k) < 0) {
				hfctl_unknown_name("kind", l.items[i], "--kind", "test, benchmark", err, errlen);
				r = -EINVAL;
			} else if (f->n_kinds < N_ELEM(f->kinds)) {
				f->kinds[f->n_kinds++] = k;
			}
		}
		break;
	case OPT_STATUS: {
		bool wanted[HFCTL_N_STATUS] = { 0 };
		r = hfctl_parse_statuses("--status", text, wanted, err, errlen);
		for (int s = 1; r == 0 && s < HFCTL_N_STATUS; s++)
			if (wanted[s] && f->n_statuses < N_ELEM(f->statuses))
				f->statuses[f->n_statuses++] = (Hf__TaskStatus)s;
		break;
	}
	}
	hfctl_list_fini(&l);
	return r;
}

/* Does row pass f?  The coordinator filtered already; this keeps the
 * filters true against an older coordinator, which ignores them. */
static bool results_keep(const struct results_filters *f, const Hf__ResultRow *row)
{
	bool ok;
	size_t i;

	for (ok = f->models.n == 0, i = 0; !ok && i < f->models.n; i++)
		ok = strcmp(f->models.items[i], row->model_type) == 0;
	if (!ok)
		return false;
	for (ok = f->families.n == 0, i = 0; !ok && i < f->families.n; i++)
		ok = strcmp(f->families.items[i], row->family) == 0;
	if (!ok)
		return false;
	for (ok = f->n_backends == 0, i = 0; !ok && i < f->n_backends; i++)
		ok = f->backends[i] == row->backend;
	if (!ok)
		return false;
	for (ok = f->n_statuses == 0, i = 0; !ok && i < f->n_statuses; i++)
		ok = f->statuses[i] == row->status;
	if (!ok)
		return false;
	for (ok = f->n_kinds == 0, i = 0; !ok && i < f->n_kinds; i++)
		ok = f->kinds[i] == row->kind;
	return ok;
}

static int results_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__ResultsRequest req = HF__RESULTS_REQUEST__INIT;
	bool json = ctx->json, csv = false, wide = false;
	struct results_filters f = { 0 };
	Hf__Envelope **pages = NULL;
	Hf__ResultRow **rows = NULL;
	char err[HFCTL_ERR_MAX];
	size_t n = 0, n_pages = 0;
	uint32_t total = 0;
	int c, r, ret = HFCTL_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", results_options, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_CSV:
			csv = true;
			break;
		case OPT_WIDE:
			wide = true;
			break;
		case OPT_STATUS:
		case OPT_MODEL:
		case OPT_FAMILY:
		case OPT_BACKEND:
		case OPT_KIND:
			if (results_filter_add(&f, c, optarg, err, sizeof(err)) < 0) {
				hfctl_usage_error(err);
				goto out;
			}
			break;
		case 'h':
			ret = hfctl_usage(&hfctl_cmd_results);
			goto out;
		default:
			hfctl_getopt_error("results", results_options, c, argv, err, sizeof(err));
			hfctl_usage_error(err);
			goto out;
		}
	}
	if (json && csv) {
		hfctl_usage_error("--json and --csv cannot be used together");
		goto out;
	}
	if (hfctl_job_arg("results", argc, argv, optind, &req.job_id, err, sizeof(err)) < 0) {
		hfctl_usage_error(err);
		goto out;
	}
	req.models = f.models.items;
	req.n_models = f.models.n;
	req.families = f.families.items;
	req.n_families = f.families.n;
	req.backends = f.backends;
	req.n_backends = f.n_backends;
	req.statuses = f.statuses;
	req.n_statuses = f.n_statuses;
	req.kinds = f.kinds;
	req.n_kinds = f.n_kinds;
	req.without_metrics = !json && !csv; /* the table shows none */

	r = results_fetch(ctx, &req, &pages, &n_pages, &rows, &n, &total);
	if (r < 0) {
		ret = hfctl_exit_status(r);
		goto out;
	}
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (results_keep(&f, rows[i]))
			rows[kept++] = rows[i];
	n = kept;
	if (json)
		r = hfctl_json_print(hfctl_json_results(rows, n));
	else if (csv)
		r = results_csv_print(rows, n);
	else
		r = results_table_print(rows, n, wide, total);
	ret = r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
out:
	for (size_t i = 0; i < n_pages; i++)
		hf_env_free(pages[i]);
	free(pages);
	free(rows);
	results_filters_fini(&f);
	return ret;
}

const struct hfctl_command hfctl_cmd_results = {
	.name = "results",
	.summary = "list a job's task results as a table, JSON or CSV",
	.usage = "usage: hfctl results JOB [--json | --csv] [--wide] [--status S,...] [--model M,...]\n"
		 "                  [--family F,...] [--backend B,...] [--kind K,...]\n"
		 "\n"
		 "Lists the job's tasks in the coordinator's order (by model), with a summary line\n"
		 "after the table.  The table cuts reasons to 60 characters (--wide: whole); JSON\n"
		 "and CSV carry every field in full.  The filters are applied by the coordinator's\n"
		 "database; several values of one filter are alternatives, several filters must\n"
		 "all hold.  A large job comes in pages, which hfctl fetches one after another.\n"
		 "\n"
		 "  --json          an array of objects, metrics_json embedded as JSON\n"
		 "  --csv           RFC 4180 CSV with a header line\n"
		 "  --wide          reasons whole in the table\n"
		 "  --status S,...  only tasks in these statuses: queued, leased, running, passed,\n"
		 "                  failed, error, timeout, skipped, cancelled\n"
		 "  --model M,...   only these model types\n"
		 "  --family F,...  only models of these families\n"
		 "  --backend B,... only these backends: cpu, cuda, rocm, mps, openvino, qnn\n"
		 "  --kind K,...    only these kinds: test, benchmark\n"
		 "\n"
		 "exit status: 0 whatever the tasks' outcome, 1 the coordinator refused or could\n"
		 "not be reached, 2 bad usage.\n",
	.run = results_run,
};

/* ---- jobs ---- */

static const struct hfctl_column jobs_columns[] = {
	{ "JOB", true, 0 },     { "STATE", false, 0 },   { "PRIORITY", true, 0 },
	{ "SUBMITTER", false, 0 }, { "CREATED", false, 0 }, { "DONE", true, 0 },
	{ "FAILED", true, 0 },  { "NAME", false, 0 },
};

#define JOBS_NCOLS (sizeof(jobs_columns) / sizeof(jobs_columns[0]))

static int jobs_table_print(Hf__JobStatus *const *jobs, size_t n)
{
	struct hfctl_table *t = hfctl_table_new(jobs_columns, JOBS_NCOLS);
	struct hf_buf b;

	for (size_t i = 0; i < n; i++) {
		const Hf__JobStatus *js = jobs[i];
		char id[24], prio[16], created[32], done[32], failed[16];
		const char *cells[JOBS_NCOLS] = {
			id, js->state, prio, hfctl_dash(js->submitter), created, done, failed, js->name,
		};
		struct hfctl_counts c;

		hfctl_counts_from_job(js, &c);
		snprintf(id, sizeof(id), "%" PRIu64, js->job_id);
		snprintf(prio, sizeof(prio), "%" PRId32, js->priority);
		hfctl_time_format(js->created_at, created, sizeof(created));
		snprintf(done, sizeof(done), "%" PRIu32 "/%" PRIu32, hfctl_counts_done(&c), c.total);
		snprintf(failed, sizeof(failed), "%" PRIu32, hfctl_counts_failed(&c));
		hfctl_table_add(t, cells);
	}
	hf_buf_init(&b);
	if (n > 0)
		hfctl_table_render(t, &b);
	hfctl_table_free(t);
	hf_buf_printf(&b, "%zu job%s\n", n, n == 1 ? "" : "s");
	return hfctl_buf_print(&b);
}

static const struct option jobs_options[] = {
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "submitter", required_argument, NULL, OPT_SUBMITTER },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int jobs_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__JobListRequest req = HF__JOB_LIST_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	int64_t limit = JOBS_DEFAULT_LIMIT;
	Hf__JobList *list;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", jobs_options, NULL)) != -1) {
		switch (c) {
		case OPT_LIMIT:
			if (hfctl_parse_int("--limit", optarg, 1, JOBS_MAX_LIMIT, &limit, err,
					    sizeof(err)) < 0)
				return hfctl_usage_error(err);
			break;
		case OPT_STATE:
			if (strcmp(optarg, "running") != 0 && strcmp(optarg, "done") != 0 &&
			    strcmp(optarg, "cancelled") != 0) {
				snprintf(err, sizeof(err),
					 "invalid value \"%s\" for --state: expected running, done or cancelled", optarg);
				return hfctl_usage_error(err);
			}
			req.state = optarg;
			break;
		case OPT_SUBMITTER:
			if (!optarg[0] || strlen(optarg) > HF_SUBMITTER_MAX)
				return hfctl_usage_error("--submitter needs a name of 1 to 256 bytes");
			req.submitter = optarg;
			break;
		case OPT_NAME:
			if (!optarg[0] || strlen(optarg) > HF_NAME_MAX)
				return hfctl_usage_error("--name needs a text of 1 to 256 bytes");
			req.name = optarg;
			break;
		case OPT_SINCE:
			if (hfctl_parse_since("--since", optarg, (double)time(NULL), &req.since, err,
					      sizeof(err)) < 0)
				return hfctl_usage_error(err);
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_jobs);
		default:
			hfctl_getopt_error("jobs", jobs_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (hfctl_no_args("jobs", argc, argv, optind, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	req.limit = (uint32_t)limit;
	env.body_case = HF__ENVELOPE__BODY_JOB_LIST;
	env.job_list = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_JOB_LIST_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	list = reply->job_list_reply;
	if (json)
		r = hfctl_json_print(hfctl_json_jobs(list->jobs, list->n_jobs));
	else
		r = jobs_table_print(list->jobs, list->n_jobs);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_jobs = {
	.name = "jobs",
	.summary = "list recent jobs",
	.usage = "usage: hfctl jobs [--limit N] [--state S] [--submitter NAME] [--name TEXT]\n"
		 "                  [--since WHEN] [--json]\n"
		 "\n"
		 "Lists the most recent jobs with their state and progress: DONE is finished\n"
		 "tasks of all tasks, FAILED those that ended failed, error or timeout.  The\n"
		 "filters are applied by the coordinator's database, before the limit.\n"
		 "\n"
		 "  --limit N         at most N jobs, 1..10000 (default 20)\n"
		 "  --state S         only jobs in this state: running, done, cancelled\n"
		 "  --submitter NAME  only jobs of this submitter (a token's name)\n"
		 "  --name TEXT       only jobs whose name contains TEXT\n"
		 "  --since WHEN      only jobs created since WHEN: a date (2026-05-01, local\n"
		 "                    time), a date and time (2026-05-01T18:30), or a duration\n"
		 "                    back from now (30m, 12h, 7d, 2w)\n"
		 "  --json            an array of status objects, as \"hfctl status --json\" prints\n",
	.run = jobs_run,
};
