/* SPDX-License-Identifier: MIT
 *
 * The HTML of "hfctl report" (see hfctl-html.h).  The page has four parts:
 *
 *  - the compatibility matrix: a row per model, a column per backend, a
 *    chip per task in each cell, coloured by status, its reason in the
 *    chip's title (shown on hover);
 *  - benchmark charts, one SVG per (backend, device): a bar per benchmark
 *    task to its p50 latency, a whisker from p90 to p99;
 *  - the cross-backend comparison: p50 of the same (model, precision,
 *    batch, sequence length) on each (backend, device), and the speedup
 *    over the cpu figure where there is one;
 *  - the environments the tasks ran in (device, driver, CUDA/ROCm, torch,
 *    transformers, python, runner version, weights).
 *
 * The tasks come sorted by model, backend, kind, precision, batch size and
 * sequence length (db-reads-people.c), which the grouping here relies on
 * for a model's tasks being next to each other.
 */
#include "hfctl-html.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfctl-format.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Chart geometry, in SVG user units (pixels). */
#define CHART_WIDTH 760
#define CHART_LABEL_WIDTH 260
#define CHART_BAR_HEIGHT 18
#define CHART_ROW_HEIGHT 26
#define CHART_TOP 28
#define CHART_BOTTOM 28
/* At most this many (backend, device) columns in the charts and the
 * comparison; more are named in a note. */
#define HTML_MAX_PLACES 32

void hfctl_html_escape(struct hf_buf *out, const char *s)
{
	for (const char *p = s; p && *p; p++) {
		switch (*p) {
		case '&':
			hf_buf_puts(out, "&amp;");
			break;
		case '<':
			hf_buf_puts(out, "&lt;");
			break;
		case '>':
			hf_buf_puts(out, "&gt;");
			break;
		case '"':
			hf_buf_puts(out, "&quot;");
			break;
		case '\'':
			hf_buf_puts(out, "&#39;");
			break;
		default:
			hf_buf_append(out, p, 1);
		}
	}
}

static const char *status_class(Hf__TaskStatus s)
{
	switch (s) {
	case HF__TASK_STATUS__STATUS_PASSED:
		return "passed";
	case HF__TASK_STATUS__STATUS_FAILED:
		return "failed";
	case HF__TASK_STATUS__STATUS_ERROR:
	case HF__TASK_STATUS__STATUS_TIMEOUT:
		return "error";
	case HF__TASK_STATUS__STATUS_SKIPPED:
	case HF__TASK_STATUS__STATUS_CANCELLED:
		return "skipped";
	default:
		return "pending";
	}
}

static const char css[] =
	"body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2433;background:#fff}"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;"
	"padding-bottom:4px}"
	".meta{color:#556;font-size:13px}"
	"table{border-collapse:collapse;font-size:13px}"
	"th,td{border:1px solid #d8dde6;padding:4px 8px;text-align:left;vertical-align:top}"
	"th{background:#f1f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}"
	".chip{display:inline-block;min-width:14px;height:14px;margin:1px;border-radius:3px;font-size:10px;"
	"line-height:14px;padding:0 3px;color:#fff}"
	".passed{background:#2e9e5b}.failed{background:#d64541}.error{background:#e67e22}"
	".skipped{background:#95a0ad}.pending{background:#4a7bd0}"
	".legend span{margin-right:12px}.note{color:#556;font-size:12px}"
	".noisy{color:#b26a00}svg text{font-size:11px;fill:#1d2433}";

static void section_header(struct hf_buf *b, const Hf__ReportReply *r, double generated_at)
{
	const Hf__JobStatus *js = r->job;
	struct hfctl_counts c;
	char created[32], now[32];
	struct hf_buf summary;

	hfctl_counts_from_job(js, &c);
	hf_buf_init(&summary);
	hfctl_summary_format(&c, &summary);
	hfctl_time_format(js->created_at, created, sizeof(created));
	hfctl_time_format(generated_at, now, sizeof(now));
	hf_buf_printf(b, "<h1>hfleet job %" PRIu64 "%s", js->job_id, js->name[0] ? ": " : "");
	hfctl_html_escape(b, js->name);
	hf_buf_puts(b, "</h1>\n<p class=\"meta\">submitted by ");
	hfctl_html_escape(b, js->submitter[0] ? js->submitter : "-");
	hf_buf_printf(b, " at %s; state ", created);
	hfctl_html_escape(b, js->state);
	hf_buf_puts(b, "; ");
	hfctl_html_escape(b, summary.oom ? "" : (summary.data ? summary.data : ""));
	hf_buf_printf(b, "<br>report made by hfctl at %s</p>\n", now);
	hf_buf_fini(&summary);
}

/* ---- the matrix ---- */

static void section_matrix(struct hf_buf *b, const Hf__ReportReply *r)
{
	bool used[HF__BACKEND__BACKEND_QNN + 1] = { false };
	bool any_test = false;

	for (size_t i = 0; i < r->n_tasks; i++)
		any_test |= r->tasks[i]->kind == HF__TASK_KIND__KIND_TEST;
	/* A job of benchmarks only: its matrix is of the benchmarks' outcomes. */
	Hf__TaskKind kind = any_test ? HF__TASK_KIND__KIND_TEST : HF__TASK_KIND__KIND_BENCHMARK;
	for (size_t i = 0; i < r->n_tasks; i++)
		if (r->tasks[i]->kind == kind && (unsigned)r->tasks[i]->backend < N_ELEM(used))
			used[r->tasks[i]->backend] = true;

	hf_buf_printf(b, "<h2>Compatibility matrix (%s)</h2>\n", any_test ? "tests" : "benchmarks");
	hf_buf_puts(b, "<p class=\"legend\"><span class=\"chip passed\">&nbsp;</span>passed "
		       "<span class=\"chip failed\">&nbsp;</span>failed "
		       "<span class=\"chip error\">&nbsp;</span>error or timeout "
		       "<span class=\"chip skipped\">&nbsp;</span>skipped or cancelled "
		       "<span class=\"chip pending\">&nbsp;</span>not finished "
		       "<span class=\"note\">(a chip per task: hover for its settings and reason)</span></p>\n");
	hf_buf_puts(b, "<table class=\"matrix\"><tr><th>model</th><th>family</th>");
	for (size_t k = 0; k < N_ELEM(used); k++)
		if (used[k])
			hf_buf_printf(b, "<th>%s</th>", hf_backend_name((Hf__Backend)k));
	hf_buf_puts(b, "</tr>\n");
	for (size_t i = 0; i < r->n_tasks;) {
		size_t end = i;
		while (end < r->n_tasks && strcmp(r->tasks[end]->model_type, r->tasks[i]->model_type) == 0)
			end++;
		bool has = false;
		for (size_t j = i; j < end; j++)
			has |= r->tasks[j]->kind == kind;
		if (has) {
			hf_buf_puts(b, "<tr><th>");
			hfctl_html_escape(b, r->tasks[i]->model_type);
			hf_buf_puts(b, "</th><td>");
			hfctl_html_escape(b, r->tasks[i]->family);
			hf_buf_puts(b, "</td>");
			for (size_t k = 0; k < N_ELEM(used); k++) {
				if (!used[k])
					continue;
				hf_buf_puts(b, "<td>");
				for (size_t j = i; j < end; j++) {
					const Hf__ReportTask *t = r->tasks[j];
					if (t->kind != kind || (size_t)t->backend != k)
						continue;
					hf_buf_printf(b, "<span class=\"chip %s\" title=\"task %" PRIu64 ", ",
						      status_class(t->status), t->task_id);
					hfctl_html_escape(b, t->precision);
					if (t->kind == HF__TASK_KIND__KIND_BENCHMARK) {
						hf_buf_puts(b, " ");
						hfctl_html_escape(b, hfctl_mode_shown(t->kind, t->mode));
					}
					hf_buf_printf(b, ", batch %" PRIu32 ", seq %" PRIu32 ": %s", t->batch_size,
						      t->seq_len, hf_status_name(t->status));
					if (t->reason[0]) {
						hf_buf_puts(b, ": ");
						hfctl_html_escape(b, t->reason);
					}
					hf_buf_puts(b, "\">&nbsp;</span>");
				}
				hf_buf_puts(b, "</td>");
			}
			hf_buf_puts(b, "</tr>\n");
		}
		i = end;
	}
	hf_buf_puts(b, "</table>\n");
}

/* ---- places: (backend, device name) ---- */

struct place {
	Hf__Backend backend;
	const char *device;
};

static bool is_figure(const Hf__ReportTask *t)
{
	return t->kind == HF__TASK_KIND__KIND_BENCHMARK && t->status == HF__TASK_STATUS__STATUS_PASSED &&
	       t->latency_p50_ms >= 0 && isfinite(t->latency_p50_ms);
}

static size_t places_collect(const Hf__ReportReply *r, struct place *pl, size_t max, size_t *ret_more)
{
	size_t n = 0;

	*ret_more = 0;
	for (size_t i = 0; i < r->n_tasks; i++) {
		const Hf__ReportTask *t = r->tasks[i];
		size_t k;
		if (!is_figure(t))
			continue;
		for (k = 0; k < n; k++)
			if (pl[k].backend == t->backend && strcmp(pl[k].device, t->device_name) == 0)
				break;
		if (k < n)
			continue;
		if (n < max)
			pl[n++] = (struct place){ t->backend, t->device_name };
		else
			(*ret_more)++;
	}
	return n;
}

static void place_name(struct hf_buf *b, const struct place *p)
{
	hf_buf_printf(b, "%s", hf_backend_name(p->backend));
	if (p->device[0]) {
		hf_buf_puts(b, " / ");
		hfctl_html_escape(b, p->device);
	}
}

static bool in_place(const Hf__ReportTask *t, const struct place *p)
{
	return is_figure(t) && t->backend == p->backend && strcmp(t->device_name, p->device) == 0;
}

static double whisker_top(const Hf__ReportTask *t)
{
	double top = t->latency_p50_ms;
	if (t->latency_p90_ms > top)
		top = t->latency_p90_ms;
	if (t->latency_p99_ms > top)
		top = t->latency_p99_ms;
	return top;
}

/* ---- the charts ---- */

static void chart(struct hf_buf *b, const Hf__ReportReply *r, const struct place *p)
{
	size_t rows = 0;
	double max = 0;

	for (size_t i = 0; i < r->n_tasks; i++) {
		if (!in_place(r->tasks[i], p))
			continue;
		rows++;
		if (whisker_top(r->tasks[i]) > max)
			max = whisker_top(r->tasks[i]);
	}
	if (max <= 0)
		max = 1;
	int height = CHART_TOP + (int)rows * CHART_ROW_HEIGHT + CHART_BOTTOM;
	double scale = (CHART_WIDTH - CHART_LABEL_WIDTH - 70) / max;

	hf_buf_puts(b, "<h3>");
	place_name(b, p);
	hf_buf_puts(b, "</h3>\n");
	hf_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\">\n",
		      CHART_WIDTH, height);
	hf_buf_printf(b, "<text x=\"%d\" y=\"16\">latency, ms: bar p50, whisker p90 to p99</text>\n",
		      CHART_LABEL_WIDTH);
	/* Axis with ticks at quarters of the largest figure. */
	int axis_y = CHART_TOP + (int)rows * CHART_ROW_HEIGHT + 4;
	hf_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#556\"/>\n", CHART_LABEL_WIDTH, axis_y,
		      CHART_WIDTH - 60, axis_y);
	for (int q = 0; q <= 4; q++) {
		double v = max * q / 4;
		double x = CHART_LABEL_WIDTH + v * scale;
		hf_buf_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#556\"/>"
			      "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n",
			      x, axis_y, x, axis_y + 4, x, axis_y + 16, v);
	}
	size_t row = 0;
	for (size_t i = 0; i < r->n_tasks; i++) {
		const Hf__ReportTask *t = r->tasks[i];
		if (!in_place(t, p))
			continue;
		int y = CHART_TOP + (int)row * CHART_ROW_HEIGHT;
		double w = t->latency_p50_ms * scale;
		hf_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", CHART_LABEL_WIDTH - 6,
			      y + CHART_BAR_HEIGHT - 5);
		hfctl_html_escape(b, t->model_type);
		hf_buf_puts(b, " ");
		hfctl_html_escape(b, t->precision);
		hf_buf_puts(b, " ");
		hfctl_html_escape(b, hfctl_mode_shown(t->kind, t->mode));
		hf_buf_printf(b, " b%" PRIu32 " s%" PRIu32 "</text>\n", t->batch_size, t->seq_len);
		hf_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>p50 %.3f ms",
			      CHART_LABEL_WIDTH, y, w < 1 ? 1 : w, CHART_BAR_HEIGHT, t->noisy ? "#e0a040" : "#4a7bd0",
			      t->latency_p50_ms);
		if (t->latency_p90_ms >= 0)
			hf_buf_printf(b, ", p90 %.3f ms", t->latency_p90_ms);
		if (t->latency_p99_ms >= 0)
			hf_buf_printf(b, ", p99 %.3f ms", t->latency_p99_ms);
		if (t->latency_cv >= 0)
			hf_buf_printf(b, ", cv %.1f%%", t->latency_cv * 100);
		hf_buf_printf(b, "%s</title></rect>\n", t->noisy ? " (noisy: not fit to compare)" : "");
		if (t->latency_p90_ms >= 0 && t->latency_p99_ms >= t->latency_p90_ms) {
			double x1 = CHART_LABEL_WIDTH + t->latency_p90_ms * scale;
			double x2 = CHART_LABEL_WIDTH + t->latency_p99_ms * scale;
			int mid = y + CHART_BAR_HEIGHT / 2;
			hf_buf_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#1d2433\"/>"
				      "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#1d2433\"/>"
				      "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#1d2433\"/>\n",
				      x1, mid, x2, mid, x1, mid - 4, x1, mid + 4, x2, mid - 4, x2, mid + 4);
		}
		hf_buf_printf(b, "<text x=\"%.1f\" y=\"%d\">%.3f</text>\n",
			      CHART_LABEL_WIDTH + whisker_top(t) * scale + 6, y + CHART_BAR_HEIGHT - 5,
			      t->latency_p50_ms);
		row++;
	}
	hf_buf_puts(b, "</svg>\n");
}

/* ---- the cross-backend comparison ---- */

static bool same_settings(const Hf__ReportTask *a, const Hf__ReportTask *b)
{
	return strcmp(a->model_type, b->model_type) == 0 && strcmp(a->precision, b->precision) == 0 &&
	       strcmp(hfctl_mode_shown(a->kind, a->mode), hfctl_mode_shown(b->kind, b->mode)) == 0 &&
	       a->batch_size == b->batch_size && a->seq_len == b->seq_len;
}

static void section_cross(struct hf_buf *b, const Hf__ReportReply *r, const struct place *pl, size_t n_pl)
{
	hf_buf_puts(b, "<h2>Cross-backend comparison (p50 latency, ms; speedup over cpu)</h2>\n");
	hf_buf_puts(b, "<table><tr><th>model</th><th>precision</th><th>mode</th><th>batch</th><th>seq</th>");
	for (size_t k = 0; k < n_pl; k++) {
		hf_buf_puts(b, "<th>");
		place_name(b, &pl[k]);
		hf_buf_puts(b, "</th>");
	}
	hf_buf_puts(b, "</tr>\n");
	for (size_t i = 0; i < r->n_tasks; i++) {
		const Hf__ReportTask *t = r->tasks[i];
		bool first = true;
		if (!is_figure(t))
			continue;
		/* Once per settings: at the first task with them. */
		for (size_t j = i; j-- > 0 && first && strcmp(r->tasks[j]->model_type, t->model_type) == 0;)
			if (is_figure(r->tasks[j]) && same_settings(r->tasks[j], t))
				first = false;
		if (!first)
			continue;
		double cpu = -1;
		for (size_t j = i; j < r->n_tasks && strcmp(r->tasks[j]->model_type, t->model_type) == 0; j++)
			if (is_figure(r->tasks[j]) && same_settings(r->tasks[j], t) &&
			    r->tasks[j]->backend == HF__BACKEND__BACKEND_CPU)
				cpu = r->tasks[j]->latency_p50_ms;
		hf_buf_puts(b, "<tr><th>");
		hfctl_html_escape(b, t->model_type);
		hf_buf_puts(b, "</th><td>");
		hfctl_html_escape(b, t->precision);
		hf_buf_puts(b, "</td><td>");
		hfctl_html_escape(b, hfctl_mode_shown(t->kind, t->mode));
		hf_buf_printf(b, "</td><td class=\"num\">%" PRIu32 "</td><td class=\"num\">%" PRIu32 "</td>",
			      t->batch_size, t->seq_len);
		for (size_t k = 0; k < n_pl; k++) {
			const Hf__ReportTask *f = NULL;
			for (size_t j = i; j < r->n_tasks && strcmp(r->tasks[j]->model_type, t->model_type) == 0; j++)
				if (in_place(r->tasks[j], &pl[k]) && same_settings(r->tasks[j], t))
					f = r->tasks[j];
			if (!f) {
				hf_buf_puts(b, "<td class=\"num\">-</td>");
				continue;
			}
			hf_buf_printf(b, "<td class=\"num%s\">%.3f", f->noisy ? " noisy" : "", f->latency_p50_ms);
			if (cpu > 0 && f->latency_p50_ms > 0 && f->backend != HF__BACKEND__BACKEND_CPU)
				hf_buf_printf(b, " (%.2f&times;)", cpu / f->latency_p50_ms);
			hf_buf_puts(b, f->noisy ? " noisy</td>" : "</td>");
		}
		hf_buf_puts(b, "</tr>\n");
	}
	hf_buf_puts(b, "</table>\n");
}

/* ---- environments ---- */

static void cell(struct hf_buf *b, const char *s)
{
	hf_buf_puts(b, "<td>");
	hfctl_html_escape(b, s[0] ? s : "-");
	hf_buf_puts(b, "</td>");
}

static void section_environments(struct hf_buf *b, const Hf__ReportReply *r)
{
	hf_buf_puts(b, "<h2>Environments</h2>\n");
	if (r->n_environments == 0) {
		hf_buf_puts(b, "<p class=\"note\">No task of this job has a result yet.</p>\n");
		return;
	}
	hf_buf_puts(b, "<table><tr><th>fingerprint</th><th>backend</th><th>device</th><th>driver</th>"
		       "<th>CUDA</th><th>ROCm</th><th>torch</th><th>transformers</th><th>python</th>"
		       "<th>runner</th><th>weights</th><th>tasks</th></tr>\n");
	for (size_t i = 0; i < r->n_environments; i++) {
		const Hf__ReportEnvironment *e = r->environments[i];
		if (e->env_id)
			hf_buf_printf(b, "<tr><td class=\"num\">%" PRIu64 "</td>", e->env_id);
		else
			hf_buf_puts(b, "<tr><td>-</td>");
		hf_buf_printf(b, "<td>%s</td>", hf_backend_name(e->backend));
		cell(b, e->device_name);
		cell(b, e->driver_version);
		cell(b, e->cuda_version);
		cell(b, e->rocm_version);
		cell(b, e->torch_version);
		cell(b, e->transformers_version);
		cell(b, e->python_version);
		cell(b, e->runner_version);
		cell(b, e->weights);
		hf_buf_printf(b, "<td class=\"num\">%" PRIu32 "</td></tr>\n", e->tasks);
	}
	hf_buf_puts(b, "</table>\n");
}

void hfctl_html_report(const Hf__ReportReply *r, double generated_at, struct hf_buf *b)
{
	struct place pl[HTML_MAX_PLACES];
	size_t more = 0, n_pl = places_collect(r, pl, HTML_MAX_PLACES, &more);

	hf_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		       "style-src 'unsafe-inline'; img-src data:\">\n<title>hfleet job ");
	hf_buf_printf(b, "%" PRIu64, r->job ? r->job->job_id : 0);
	hf_buf_printf(b, "</title>\n<style>%s</style>\n</head><body>\n", css);
	if (r->job)
		section_header(b, r, generated_at);
	if (r->total_tasks > r->n_tasks)
		hf_buf_printf(b, "<p class=\"note\">The job has %" PRIu32 " tasks; the coordinator sent the "
			      "first %zu (its reply size limit): the rest are not in this report.</p>\n",
			      r->total_tasks, r->n_tasks);
	section_matrix(b, r);
	hf_buf_puts(b, "<h2>Benchmarks</h2>\n");
	if (n_pl == 0)
		hf_buf_puts(b, "<p class=\"note\">No passed benchmark with latency figures in this job.</p>\n");
	for (size_t k = 0; k < n_pl; k++)
		chart(b, r, &pl[k]);
	if (more)
		hf_buf_printf(b, "<p class=\"note\">%zu more backend and device pairs are not drawn.</p>\n", more);
	if (n_pl > 0)
		section_cross(b, r, pl, n_pl);
	section_environments(b, r);
	hf_buf_puts(b, "</body></html>\n");
}
