/* SPDX-License-Identifier: MIT
 *
 * The commands for readers of results: logs (a task's stored runner
 * output), compare (two jobs: what broke, what was fixed, what got slower;
 * the comparison is the database's hfleet_compare_jobs, exit status 1 when
 * something regressed, for CI) and history (one model's outcomes and
 * figures over time).  Each asks the coordinator once and prints text or,
 * with --json, JSON.  "hfctl report" is in hfctl-report.c.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_limits.h"
#include "hfctl-args.h"
#include "hfctl-format.h"
#include "hfctl-json.h"
#include "hfctl.h"

/* Room for a reason in the tables (--wide: no limit). */
#define READERS_REASON_WIDTH 60
#define HISTORY_DEFAULT_LIMIT 50

enum { OPT_JSON = 256, OPT_ALL, OPT_THRESHOLD, OPT_BACKEND, OPT_PRECISION, OPT_KIND, OPT_LIMIT, OPT_WIDE };

/* A figure in ms or a fraction for a table: "-" when there is none. */
static void figure_format(double v, const char *fmt, char *buf, size_t len)
{
	if (v < 0 || !isfinite(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, fmt, v);
}

static json_t *json_figure(double v)
{
	return v < 0 || !isfinite(v) ? json_null() : json_real(v);
}

/* ---- logs ---- */

static const struct option logs_options[] = {
	{ "all", no_argument, NULL, OPT_ALL },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static json_t *logs_json(const Hf__LogsReply *lr)
{
	json_t *o = json_object(), *a = json_array();

	json_object_set_new(o, "task_id", json_integer((json_int_t)lr->task_id));
	json_object_set_new(o, "job_id", json_integer((json_int_t)lr->job_id));
	json_object_set_new(o, "model_type", hfctl_json_string(lr->model_type));
	json_object_set_new(o, "backend", json_string(hf_backend_name(lr->backend)));
	json_object_set_new(o, "kind", json_string(hf_kind_name(lr->kind)));
	json_object_set_new(o, "status", json_string(hf_status_name(lr->status)));
	json_object_set_new(o, "total_attempts", json_integer(lr->total_attempts));
	for (size_t i = 0; i < lr->n_attempts; i++) {
		const Hf__AttemptLog *l = lr->attempts[i];
		json_t *e = json_object();
		json_object_set_new(e, "attempt", json_integer(l->attempt));
		json_object_set_new(e, "status", json_string(hf_status_name(l->status)));
		json_object_set_new(e, "reason", hfctl_json_string(l->reason));
		json_object_set_new(e, "worker_id", hfctl_json_string(l->worker_id));
		json_object_set_new(e, "device_index", json_integer(l->device_index));
		json_object_set_new(e, "received_at", json_real(l->received_at));
		json_object_set_new(e, "deciding", json_boolean(l->deciding));
		json_object_set_new(e, "stale", json_boolean(l->stale));
		json_object_set_new(e, "log_excerpt", hfctl_json_string(l->log_excerpt));
		json_array_append_new(a, e);
	}
	json_object_set_new(o, "attempts", a);
	return o;
}

static void logs_text(const Hf__LogsReply *lr, struct hf_buf *b)
{
	hf_buf_printf(b, "task %" PRIu64 " (job %" PRIu64 ", %s %s %s): %s\n", lr->task_id, lr->job_id,
		      lr->model_type, hf_backend_name(lr->backend), hf_kind_name(lr->kind),
		      hf_status_name(lr->status));
	for (size_t i = 0; i < lr->n_attempts; i++) {
		const Hf__AttemptLog *l = lr->attempts[i];
		char when[32];
		size_t len = strlen(l->log_excerpt);

		hfctl_time_format(l->received_at, when, sizeof(when));
		hf_buf_printf(b, "\n--- attempt %" PRIu32 ": %s on %s/%s:%" PRIu32 ", received %s%s%s ---\n",
			      l->attempt, hf_status_name(l->status), l->worker_id, hf_backend_name(lr->backend),
			      l->device_index, when, l->deciding ? " (decided the outcome)" : "",
			      l->stale ? " (stale: its lease was gone)" : "");
		if (l->reason[0])
			hf_buf_printf(b, "reason: %s\n", l->reason);
		if (len == 0) {
			hf_buf_puts(b, "(the runner wrote nothing)\n");
		} else {
			hf_buf_puts(b, l->log_excerpt);
			if (l->log_excerpt[len - 1] != '\n')
				hf_buf_puts(b, "\n");
		}
	}
}

static int logs_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__LogsRequest req = HF__LOGS_REQUEST__INIT;
	bool json = ctx->json;
	char err[HFCTL_ERR_MAX];
	int c, r, ret;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", logs_options, NULL)) != -1) {
		switch (c) {
		case OPT_ALL:
			req.all = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_logs);
		default:
			hfctl_getopt_error("logs", logs_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (hfctl_task_arg("logs", argc, argv, optind, &req.task_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	env.body_case = HF__ENVELOPE__BODY_LOGS;
	env.logs = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_LOGS_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	const Hf__LogsReply *lr = reply->logs_reply;
	if (json) {
		r = hfctl_json_print(logs_json(lr));
		ret = r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
	} else if (lr->n_attempts == 0) {
		if (lr->total_attempts > 0 && !req.all)
			hfctl_error("task %" PRIu64 " is %s: no attempt has decided it yet; %" PRIu32
				    " earlier attempt%s stored (hfctl logs --all %" PRIu64 ")",
				    lr->task_id, hf_status_name(lr->status), lr->total_attempts,
				    lr->total_attempts == 1 ? " is" : "s are", lr->task_id);
		else
			hfctl_error("task %" PRIu64 " is %s: no runner output is stored for it", lr->task_id,
				    hf_status_name(lr->status));
		ret = HFCTL_EXIT_FAILED;
	} else {
		struct hf_buf b;
		hf_buf_init(&b);
		logs_text(lr, &b);
		if (req.all && lr->total_attempts > lr->n_attempts)
			hf_buf_printf(&b, "\n(%" PRIu32 " attempts are stored; the newest %zu are shown)\n",
				      lr->total_attempts, lr->n_attempts);
		ret = hfctl_buf_print(&b) < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
	}
	hf_env_free(reply);
	return ret;
}

const struct hfctl_command hfctl_cmd_logs = {
	.name = "logs",
	.summary = "print a task's stored runner output",
	.usage = "usage: hfctl logs TASK [--all] [--json]\n"
		 "\n"
		 "Prints the runner output the coordinator stored for the task: the tail the\n"
		 "worker sent with the result (at most 16 KiB) of the attempt that decided the\n"
		 "task's outcome, with its status, reason, worker and device.\n"
		 "\n"
		 "  --all   every stored attempt, newest first (retries after infrastructure\n"
		 "          failures, flaky reruns, stale results), at most 64\n"
		 "  --json  an object with the task and its attempts\n"
		 "\n"
		 "exit status: 0 printed, 1 no such task or nothing stored for it (yet), or the\n"
		 "coordinator refused or could not be reached, 2 bad usage.\n",
	.run = logs_run,
};

/* ---- compare ---- */

static const struct option compare_options[] = {
	{ "threshold", required_argument, NULL, OPT_THRESHOLD },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "wide", no_argument, NULL, OPT_WIDE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* A threshold: a fraction ("0.1") or a percentage ("10%"), above 0 and at
 * most HF_COMPARE_THRESHOLD_MAX. */
static int threshold_parse(const char *text, double *ret, char *err, size_t errlen)
{
	char *end;
	double v = strtod(text, &end);

	if (end != text && strcmp(end, "%") == 0)
		v /= 100.0;
	else if (end == text || *end)
		v = NAN;
	if (!isfinite(v) || v <= 0 || v > HF_COMPARE_THRESHOLD_MAX || text[0] == ' ') {
		snprintf(err, errlen,
			 "invalid value \"%s\" for --threshold: expected a fraction above 0 and at most %g "
			 "(0.10) or a percentage (10%%)",
			 text, HF_COMPARE_THRESHOLD_MAX);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static bool compare_regressed(const Hf__CompareReply *cr)
{
	return cr->new_failures > 0 || cr->slower > 0;
}

static const char *status_or_dash(Hf__TaskStatus s)
{
	return s == HF__TASK_STATUS__STATUS_UNSPECIFIED ? "-" : hf_status_name(s);
}

static json_t *compare_json(const Hf__CompareRequest *req, const Hf__CompareReply *cr)
{
	json_t *o = json_object(), *a = json_array(), *counts = json_object();

	json_object_set_new(o, "base_job_id", json_integer((json_int_t)req->base_job_id));
	json_object_set_new(o, "cand_job_id", json_integer((json_int_t)req->cand_job_id));
	json_object_set_new(o, "threshold", json_real(cr->threshold));
	json_object_set_new(o, "regressed", json_boolean(compare_regressed(cr)));
	json_object_set_new(o, "total", json_integer(cr->total));
	json_object_set_new(counts, "new-failure", json_integer(cr->new_failures));
	json_object_set_new(counts, "fixed", json_integer(cr->fixed));
	json_object_set_new(counts, "slower", json_integer(cr->slower));
	json_object_set_new(counts, "faster", json_integer(cr->faster));
	json_object_set_new(counts, "same", json_integer(cr->same));
	json_object_set_new(counts, "noisy", json_integer(cr->noisy));
	json_object_set_new(counts, "missing", json_integer(cr->missing));
	json_object_set_new(counts, "new", json_integer(cr->added));
	json_object_set_new(o, "counts", counts);
	for (size_t i = 0; i < cr->n_rows; i++) {
		const Hf__CompareRow *row = cr->rows[i];
		json_t *e = json_object();
		json_object_set_new(e, "model_type", hfctl_json_string(row->model_type));
		json_object_set_new(e, "backend", json_string(hf_backend_name(row->backend)));
		json_object_set_new(e, "kind", json_string(hf_kind_name(row->kind)));
		json_object_set_new(e, "precision", hfctl_json_string(row->precision));
		json_object_set_new(e, "mode", json_string(row->mode[0] ? row->mode : "eager"));
		json_object_set_new(e, "batch_size", json_integer(row->batch_size));
		json_object_set_new(e, "seq_len", json_integer(row->seq_len));
		json_object_set_new(e, "base_status", row->base_status ? json_string(hf_status_name(row->base_status)) :
									  json_null());
		json_object_set_new(e, "cand_status", row->cand_status ? json_string(hf_status_name(row->cand_status)) :
									  json_null());
		json_object_set_new(e, "change_kind", hfctl_json_string(row->change_kind));
		json_object_set_new(e, "base_reason", hfctl_json_string(row->base_reason));
		json_object_set_new(e, "cand_reason", hfctl_json_string(row->cand_reason));
		json_object_set_new(e, "base_p50_ms", json_figure(row->base_p50_ms));
		json_object_set_new(e, "cand_p50_ms", json_figure(row->cand_p50_ms));
		json_object_set_new(e, "change", row->has_change ? json_real(row->change) : json_null());
		json_object_set_new(e, "base_env_id", row->base_env_id ? json_integer((json_int_t)row->base_env_id) :
									  json_null());
		json_object_set_new(e, "cand_env_id", row->cand_env_id ? json_integer((json_int_t)row->cand_env_id) :
									  json_null());
		json_array_append_new(a, e);
	}
	json_object_set_new(o, "rows", a);
	return o;
}

static const struct hfctl_column compare_columns[] = {
	{ "CHANGE", false, 0 }, { "MODEL", false, 0 }, { "BACKEND", false, 0 }, { "KIND", false, 0 },
	{ "PREC", false, 0 },   { "MODE", false, 0 },  { "BATCH", true, 0 },  { "SEQ", true, 0 },
	{ "BASE", false, 0 },
	{ "CAND", false, 0 },   { "P50 BASE", true, 0 }, { "P50 CAND", true, 0 }, { "DELTA", true, 0 },
	{ "REASON", false, READERS_REASON_WIDTH },
};

#define COMPARE_NCOLS (sizeof(compare_columns) / sizeof(compare_columns[0]))

static void compare_text(const Hf__CompareRequest *req, const Hf__CompareReply *cr, bool all, bool wide,
			 struct hf_buf *b)
{
	struct hfctl_table *t = hfctl_table_new(compare_columns, COMPARE_NCOLS);
	size_t shown = 0;

	if (wide)
		hfctl_table_whole(t, COMPARE_NCOLS - 1);
	hf_buf_printf(b, "job %" PRIu64 " (candidate) against job %" PRIu64 " (base), threshold %.3g%%\n",
		      req->cand_job_id, req->base_job_id, cr->threshold * 100);
	for (size_t i = 0; i < cr->n_rows; i++) {
		const Hf__CompareRow *row = cr->rows[i];
		char batch[16], seq[16], p50b[32], p50c[32], delta[32];
		/* The reason of what changed: the candidate's, else the base's. */
		const char *reason = row->cand_reason[0] ? row->cand_reason : row->base_reason;
		const char *cells[COMPARE_NCOLS] = {
			row->change_kind, row->model_type, hf_backend_name(row->backend), hf_kind_name(row->kind),
			row->precision, hfctl_mode_shown(row->kind, row->mode), batch, seq,
			status_or_dash(row->base_status), status_or_dash(row->cand_status),
			p50b, p50c, delta, reason,
		};

		if (!all && strcmp(row->change_kind, "same") == 0)
			continue;
		snprintf(batch, sizeof(batch), "%" PRIu32, row->batch_size);
		snprintf(seq, sizeof(seq), "%" PRIu32, row->seq_len);
		figure_format(row->base_p50_ms, "%.3f", p50b, sizeof(p50b));
		figure_format(row->cand_p50_ms, "%.3f", p50c, sizeof(p50c));
		if (row->has_change && isfinite(row->change))
			snprintf(delta, sizeof(delta), "%+.1f%%", row->change * 100);
		else
			snprintf(delta, sizeof(delta), "-");
		hfctl_table_add(t, cells);
		shown++;
	}
	if (shown > 0)
		hfctl_table_render(t, b);
	hfctl_table_free(t);
	hf_buf_printf(b,
		      "%" PRIu32 " new failure%s, %" PRIu32 " fixed, %" PRIu32 " slower, %" PRIu32 " faster, %" PRIu32
		      " same, %" PRIu32 " too noisy to compare, %" PRIu32 " missing, %" PRIu32 " new\n",
		      cr->new_failures, cr->new_failures == 1 ? "" : "s", cr->fixed, cr->slower, cr->faster, cr->same,
		      cr->noisy, cr->missing, cr->added);
	if (cr->total > cr->n_rows)
		hf_buf_printf(b, "(%" PRIu32 " rows compared; the first %zu, regressions first, were sent)\n",
			      cr->total, cr->n_rows);
	hf_buf_puts(b, compare_regressed(cr) ? "regressed\n" : "no regression\n");
}

static int compare_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__CompareRequest req = HF__COMPARE_REQUEST__INIT;
	bool json = ctx->json, all = false, wide = false;
	char err[HFCTL_ERR_MAX];
	int c, r, ret;

	req.threshold = 0.10;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", compare_options, NULL)) != -1) {
		switch (c) {
		case OPT_THRESHOLD:
			if (threshold_parse(optarg, &req.threshold, err, sizeof(err)) < 0)
				return hfctl_usage_error(err);
			break;
		case OPT_ALL:
			all = true;
			break;
		case OPT_WIDE:
			wide = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_compare);
		default:
			hfctl_getopt_error("compare", compare_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (argc - optind != 2)
		return hfctl_usage_error("compare needs two jobs: hfctl compare BASE_JOB CANDIDATE_JOB");
	if (hfctl_parse_job_id(argv[optind], &req.base_job_id, err, sizeof(err)) < 0 ||
	    hfctl_parse_job_id(argv[optind + 1], &req.cand_job_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	env.body_case = HF__ENVELOPE__BODY_COMPARE;
	env.compare = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_COMPARE_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r) == HFCTL_EXIT_USAGE ? HFCTL_EXIT_USAGE : HFCTL_EXIT_FAILED;
	const Hf__CompareReply *cr = reply->compare_reply;
	if (json) {
		r = hfctl_json_print(compare_json(&req, cr));
	} else {
		struct hf_buf b;
		hf_buf_init(&b);
		compare_text(&req, cr, all, wide, &b);
		r = hfctl_buf_print(&b);
	}
	ret = r < 0 || compare_regressed(cr) ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
	hf_env_free(reply);
	return ret;
}

const struct hfctl_command hfctl_cmd_compare = {
	.name = "compare",
	.summary = "compare two jobs: new failures, fixes, slower and faster benchmarks",
	.usage = "usage: hfctl compare BASE_JOB CANDIDATE_JOB [--threshold T] [--all] [--wide] [--json]\n"
		 "\n"
		 "Compares the candidate job's outcomes with the base job's, task by task (same\n"
		 "model, backend, kind, precision, batch size and sequence length), in the\n"
		 "coordinator's database (hfleet_compare_jobs).  A test that passed in the base\n"
		 "and failed, errored or timed out in the candidate is a new failure; the reverse\n"
		 "is fixed.  A benchmark is slower or faster when its p50 latency changed by more\n"
		 "than the threshold, or than three times its measured coefficient of variation\n"
		 "where that is larger; a figure marked noisy is not compared.  Regressions\n"
		 "(new failures, slower) are listed first; rows that did not change are left\n"
		 "out unless --all.\n"
		 "\n"
		 "  --threshold T  the change that counts, a fraction or a percentage (default\n"
		 "                 0.10, that is 10%)\n"
		 "  --all          also the rows that did not change\n"
		 "  --wide         reasons whole in the table\n"
		 "  --json         an object with the counts, \"regressed\" and every row\n"
		 "\n"
		 "exit status: 0 no regression, 1 something regressed (a new failure or a slower\n"
		 "benchmark), or no such job, or the coordinator refused or could not be\n"
		 "reached, 2 bad usage.\n",
	.run = compare_run,
};

/* ---- history ---- */

static const struct option history_options[] = {
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "precision", required_argument, NULL, OPT_PRECISION },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "wide", no_argument, NULL, OPT_WIDE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static json_t *history_json(const Hf__HistoryRequest *req, const Hf__HistoryReply *hr)
{
	json_t *o = json_object(), *a = json_array();

	json_object_set_new(o, "model_type", hfctl_json_string(req->model_type));
	json_object_set_new(o, "truncated", json_boolean(hr->truncated));
	for (size_t i = 0; i < hr->n_rows; i++) {
		const Hf__HistoryRow *row = hr->rows[i];
		json_t *e = json_object();
		json_object_set_new(e, "task_id", json_integer((json_int_t)row->task_id));
		json_object_set_new(e, "job_id", json_integer((json_int_t)row->job_id));
		json_object_set_new(e, "received_at", row->received_at > 0 ? json_real(row->received_at) : json_null());
		json_object_set_new(e, "backend", json_string(hf_backend_name(row->backend)));
		json_object_set_new(e, "kind", json_string(hf_kind_name(row->kind)));
		json_object_set_new(e, "precision", hfctl_json_string(row->precision));
		json_object_set_new(e, "mode", json_string(row->mode[0] ? row->mode : "eager"));
		json_object_set_new(e, "batch_size", json_integer(row->batch_size));
		json_object_set_new(e, "seq_len", json_integer(row->seq_len));
		json_object_set_new(e, "status", json_string(hf_status_name(row->status)));
		json_object_set_new(e, "reason", hfctl_json_string(row->reason));
		json_object_set_new(e, "device_name", hfctl_json_string(row->device_name));
		json_object_set_new(e, "worker_id", hfctl_json_string(row->worker_id));
		json_object_set_new(e, "latency_p50_ms", json_figure(row->latency_p50_ms));
		json_object_set_new(e, "latency_p90_ms", json_figure(row->latency_p90_ms));
		json_object_set_new(e, "latency_p99_ms", json_figure(row->latency_p99_ms));
		json_object_set_new(e, "latency_cv", json_figure(row->latency_cv));
		json_object_set_new(e, "throughput_items_s", json_figure(row->throughput_items_s));
		json_object_set_new(e, "noisy", json_boolean(row->noisy));
		json_object_set_new(e, "env_id", row->env_id ? json_integer((json_int_t)row->env_id) : json_null());
		json_object_set_new(e, "torch_version", hfctl_json_string(row->torch_version));
		json_object_set_new(e, "transformers_version", hfctl_json_string(row->transformers_version));
		json_array_append_new(a, e);
	}
	json_object_set_new(o, "rows", a);
	return o;
}

static const struct hfctl_column history_columns[] = {
	{ "WHEN", false, 0 },  { "JOB", true, 0 },     { "TASK", true, 0 },     { "BACKEND", false, 0 },
	{ "KIND", false, 0 },  { "PREC", false, 0 },   { "MODE", false, 0 },    { "BATCH", true, 0 },
	{ "SEQ", true, 0 },
	{ "DEVICE", false, 32 }, { "STATUS", false, 0 }, { "P50 MS", true, 0 }, { "P90 MS", true, 0 },
	{ "P99 MS", true, 0 }, { "CV", true, 0 },      { "ITEMS/S", true, 0 },  { "REASON", false, READERS_REASON_WIDTH },
};

#define HISTORY_NCOLS (sizeof(history_columns) / sizeof(history_columns[0]))

static void history_text(const Hf__HistoryReply *hr, bool wide, struct hf_buf *b)
{
	struct hfctl_table *t = hfctl_table_new(history_columns, HISTORY_NCOLS);

	if (wide)
		hfctl_table_whole(t, HISTORY_NCOLS - 1);
	for (size_t i = 0; i < hr->n_rows; i++) {
		const Hf__HistoryRow *row = hr->rows[i];
		char when[32], job[24], task[24], batch[16], seq[16], p50[32], p90[32], p99[32], cv[32], tput[32];
		const char *cells[HISTORY_NCOLS] = {
			when, job, task, hf_backend_name(row->backend), hf_kind_name(row->kind), row->precision,
			hfctl_mode_shown(row->kind, row->mode), batch, seq, hfctl_dash(row->device_name), hf_status_name(row->status), p50, p90, p99, cv,
			tput, row->reason,
		};

		if (row->received_at > 0)
			hfctl_time_format(row->received_at, when, sizeof(when));
		else
			snprintf(when, sizeof(when), "-");
		snprintf(job, sizeof(job), "%" PRIu64, row->job_id);
		snprintf(task, sizeof(task), "%" PRIu64, row->task_id);
		snprintf(batch, sizeof(batch), "%" PRIu32, row->batch_size);
		snprintf(seq, sizeof(seq), "%" PRIu32, row->seq_len);
		figure_format(row->latency_p50_ms, "%.3f", p50, sizeof(p50));
		figure_format(row->latency_p90_ms, "%.3f", p90, sizeof(p90));
		figure_format(row->latency_p99_ms, "%.3f", p99, sizeof(p99));
		figure_format(row->latency_cv * 100, row->noisy ? "%.1f%% noisy" : "%.1f%%", cv, sizeof(cv));
		figure_format(row->throughput_items_s, "%.1f", tput, sizeof(tput));
		hfctl_table_add(t, cells);
	}
	if (hr->n_rows > 0)
		hfctl_table_render(t, b);
	hfctl_table_free(t);
	hf_buf_printf(b, "%zu outcome%s, newest first\n", hr->n_rows, hr->n_rows == 1 ? "" : "s");
	if (hr->truncated)
		hf_buf_puts(b, "(cut short: the reply reached its size limit; ask for fewer with --limit)\n");
}

static int history_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__HistoryRequest req = HF__HISTORY_REQUEST__INIT;
	bool json = ctx->json, wide = false;
	char err[HFCTL_ERR_MAX];
	int64_t limit = HISTORY_DEFAULT_LIMIT;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", history_options, NULL)) != -1) {
		switch (c) {
		case OPT_BACKEND:
			if (hf_backend_parse(optarg, &req.backend) < 0) {
				hfctl_unknown_name("backend", optarg, "--backend", hf_backend_names(), err,
						   sizeof(err));
				return hfctl_usage_error(err);
			}
			break;
		case OPT_PRECISION:
			if (!hf_precision_valid(optarg)) {
				hfctl_unknown_name("precision", optarg, "--precision", "fp32, fp16, bf16, int8",
						   err, sizeof(err));
				return hfctl_usage_error(err);
			}
			req.precision = optarg;
			break;
		case OPT_KIND:
			if (hf_kind_parse(optarg, &req.kind) < 0) {
				hfctl_unknown_name("kind", optarg, "--kind", "test, benchmark", err, sizeof(err));
				return hfctl_usage_error(err);
			}
			break;
		case OPT_LIMIT:
			if (hfctl_parse_int("--limit", optarg, 1, HF_HISTORY_LIMIT_MAX, &limit, err, sizeof(err)) < 0)
				return hfctl_usage_error(err);
			break;
		case OPT_WIDE:
			wide = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_history);
		default:
			hfctl_getopt_error("history", history_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (argc - optind != 1)
		return hfctl_usage_error("history needs one model type: hfctl history MODEL");
	if (!hf_id_valid(argv[optind])) {
		snprintf(err, sizeof(err), "\"%s\" is not a model type (1 to %d of A-Z a-z 0-9 . _ : -)", argv[optind],
			 HF_ID_MAX);
		return hfctl_usage_error(err);
	}
	req.model_type = argv[optind];
	req.limit = (uint32_t)limit;
	env.body_case = HF__ENVELOPE__BODY_HISTORY;
	env.history = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_HISTORY_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	if (json) {
		r = hfctl_json_print(history_json(&req, reply->history_reply));
	} else {
		struct hf_buf b;
		hf_buf_init(&b);
		history_text(reply->history_reply, wide, &b);
		r = hfctl_buf_print(&b);
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_history = {
	.name = "history",
	.summary = "one model's outcomes and benchmark figures over time",
	.usage = "usage: hfctl history MODEL [--backend B] [--precision P] [--kind K] [--limit N]\n"
		 "                     [--wide] [--json]\n"
		 "\n"
		 "Lists the model's finished tasks of every job, newest first by the time the\n"
		 "coordinator received their result: status and reason, the device, and for\n"
		 "benchmarks the p50/p90/p99 latency, its coefficient of variation (\"noisy\" when\n"
		 "too high to compare) and the throughput.\n"
		 "\n"
		 "  --backend B    only this backend: cpu, cuda, rocm, mps, openvino, qnn\n"
		 "  --precision P  only this precision: fp32, fp16, bf16, int8\n"
		 "  --kind K       only this kind: test, benchmark\n"
		 "  --limit N      at most N outcomes, 1..10000 (default 50)\n"
		 "  --wide         reasons whole in the table\n"
		 "  --json         an object with the rows, figures null where there are none\n"
		 "\n"
		 "exit status: 0 listed (an empty history too), 1 the coordinator refused or could\n"
		 "not be reached, 2 bad usage.\n",
	.run = history_run,
};
