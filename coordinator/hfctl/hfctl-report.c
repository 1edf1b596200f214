/* SPDX-License-Identifier: MIT
 *
 * "hfctl report JOB --html FILE": asks the coordinator for what a job's
 * report shows (ReportRequest) and writes the page hfctl-html.c renders,
 * through a temporary file renamed into place, so that FILE is either the
 * old page or the whole new one.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hfctl-args.h"
#include "hfctl-html.h"
#include "hfctl.h"

enum { OPT_HTML = 256 };

static const struct option report_options[] = {
	{ "html", required_argument, NULL, OPT_HTML },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* Writes b to path via path.tmp-PID and rename. */
static int file_write(const char *path, const struct hf_buf *b)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		hfctl_error("the path \"%s\" is too long", path);
		return -ENAMETOOLONG;
	}
	f = fopen(tmp, "w");
	if (!f) {
		hfctl_error("could not write \"%s\": %s", tmp, strerror(errno));
		return -errno;
	}
	size_t n = fwrite(b->data, 1, b->len, f);
	if (n != b->len || fflush(f) != 0 || ferror(f)) {
		int e = errno;
		fclose(f);
		unlink(tmp);
		hfctl_error("could not write \"%s\": %s", tmp, strerror(e));
		return -e;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		hfctl_error("could not write \"%s\": %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static int report_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__ReportRequest req = HF__REPORT_REQUEST__INIT;
	const char *html = NULL;
	char err[HFCTL_ERR_MAX];
	struct hf_buf b;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", report_options, NULL)) != -1) {
		switch (c) {
		case OPT_HTML:
			if (!optarg[0])
				return hfctl_usage_error("--html needs a file name");
			html = optarg;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_report);
		default:
			hfctl_getopt_error("report", report_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (hfctl_job_arg("report", argc, argv, optind, &req.job_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	if (!html)
		return hfctl_usage_error("report needs --html FILE (the only format so far)");
	env.body_case = HF__ENVELOPE__BODY_REPORT;
	env.report = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_REPORT_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	hf_buf_init(&b);
	hfctl_html_report(reply->report_reply, (double)time(NULL), &b);
	if (b.oom) {
		hfctl_error("could not render the report: out of memory");
		r = -ENOMEM;
	} else {
		r = file_write(html, &b);
	}
	if (r == 0 && !ctx->json)
		printf("job %" PRIu64 ": report of %zu tasks written to %s\n", req.job_id,
		       reply->report_reply->n_tasks, html);
	hf_buf_fini(&b);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_report = {
	.name = "report",
	.summary = "write a job's report as one self-contained HTML page",
	.usage = "usage: hfctl report JOB --html FILE\n"
		 "\n"
		 "Writes one HTML page that needs nothing else to open (no script, no network):\n"
		 "the job's compatibility matrix (model x backend, a chip per task coloured by\n"
		 "status, its reason on hover), a latency chart per backend and device (p50\n"
		 "bars, p90 to p99 whiskers), the cross-backend comparison of the same model and\n"
		 "settings with the speedup over cpu, and the environments the tasks ran in\n"
		 "(device, driver, CUDA/ROCm, torch, transformers, python, runner version).\n"
		 "\n"
		 "  --html FILE  where to write the page (replaced whole)\n"
		 "\n"
		 "exit status: 0 written, 1 no such job, the file could not be written, or the\n"
		 "coordinator refused or could not be reached, 2 bad usage.\n",
	.run = report_run,
};
