/* SPDX-License-Identifier: MIT
 *
 * The commands about jobs and their tasks: submit, status, watch, cancel
 * (a job or one task), retry, explain.  results and jobs, the listings,
 * are in hfctl-query.c.
 * Each parses its options (hfctl-args.c), makes its requests through
 * hfctl_call and prints a table, a line or JSON (hfctl-format.c,
 * hfctl-json.c).
 *
 * watch is the one long-running command: it polls JobStatus at an interval,
 * redraws a progress line on a terminal, and on SIGINT leaves at once (the
 * job keeps running on the coordinator).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hfctl-args.h"
#include "hfctl-format.h"
#include "hfctl-json.h"
#include "hfctl.h"

#define WATCH_DEFAULT_INTERVAL_MS 500
/* Without a terminal, a progress line at most this often. */
#define WATCH_LOG_EVERY_MS 5000
/* Once the job has been seen, watch rides out this many failed polls in a
 * row (a coordinator restart, a network blip) before it gives up. */
#define WATCH_MAX_FAILURES 5

enum { OPT_JSON = 256, OPT_CSV, OPT_STATUS, OPT_INTERVAL, OPT_LIMIT, OPT_CANCELLED };

static int job_status_get(struct hfctl_ctx *ctx, uint64_t job_id, Hf__Envelope **ret, char *err,
			  size_t errlen)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__JobStatusRequest req = HF__JOB_STATUS_REQUEST__INIT;

	req.job_id = job_id;
	env.body_case = HF__ENVELOPE__BODY_JOB_STATUS;
	env.job_status = &req;
	return hfctl_call_quiet(ctx, &env, HF__ENVELOPE__BODY_JOB_STATUS_REPLY, ret, err, errlen);
}

/* How long the job has run (until it finished), in whole seconds. */
static int64_t job_elapsed_ms(const Hf__JobStatus *js, double now)
{
	double end = js->finished_at > 0 ? js->finished_at : now;

	if (js->created_at <= 0 || end <= js->created_at)
		return 0;
	return (int64_t)(end - js->created_at) * 1000;
}

static bool job_state_final(const char *state)
{
	return strcmp(state, "done") == 0 || strcmp(state, "cancelled") == 0;
}

/* ---- watch ---- */

/* What the SIGINT handler writes: it may only use async-signal-safe calls,
 * so the message is made before the handler is installed. */
static char watch_sigint_msg[192];
static size_t watch_sigint_len;
static volatile sig_atomic_t watch_line_open; /* a progress line awaits its newline */

/* Leaves at once, even from inside a request: there is nothing to undo (the
 * job runs on the coordinator, the socket dies with the process) and waiting
 * out a request's timeout would make Ctrl-C feel broken.  stdout is flushed
 * after every line, so _exit loses nothing. */
static void watch_sigint_cb(int sig)
{
	ssize_t n;

	(void)sig;
	if (watch_line_open)
		n = write(STDOUT_FILENO, "\n", 1);
	n = write(STDERR_FILENO, watch_sigint_msg, watch_sigint_len);
	(void)n;
	_exit(HFCTL_EXIT_INTERRUPTED);
}

static size_t terminal_width(void)
{
	struct winsize ws;
	const char *columns = getenv("COLUMNS");
	long v;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (columns && (v = strtol(columns, NULL, 10)) > 0)
		return (size_t)v;
	return 80;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Clears the progress line so that a message does not land in its middle. */
static void watch_line_clear(void)
{
	if (watch_line_open) {
		fputs("\r\033[K", stdout);
		fflush(stdout);
		watch_line_open = 0;
	}
}

static void watch_progress_show(const Hf__JobStatus *js, bool tty, int64_t *last_log_ms,
				struct hfctl_counts *logged)
{
	struct hfctl_counts c;
	char line[512];
	int64_t now = hf_mono_ms();

	hfctl_counts_from_job(js, &c);
	if (tty) {
		hfctl_progress_format(&c, job_elapsed_ms(js, hf_wall_s()), terminal_width(), line,
				      sizeof(line));
		printf("\r%s\033[K", line);
		watch_line_open = 1;
	} else {
		if (*last_log_ms != 0 && (now - *last_log_ms < WATCH_LOG_EVERY_MS ||
					  memcmp(&c, logged, sizeof(c)) == 0))
			return;
		hfctl_progress_format(&c, job_elapsed_ms(js, hf_wall_s()), 0, line, sizeof(line));
		printf("job %" PRIu64 ": %s\n", js->job_id, line);
		*last_log_ms = now;
		*logged = c;
	}
	fflush(stdout);
}

static int watch_result_print(const Hf__JobStatus *js, bool json)
{
	struct hfctl_counts c;
	struct hf_buf b;
	char elapsed[32];

	if (json)
		return hfctl_json_print(hfctl_json_job(js));
	hfctl_counts_from_job(js, &c);
	hfctl_duration_format(job_elapsed_ms(js, hf_wall_s()), elapsed, sizeof(elapsed));
	hf_buf_init(&b);
	hf_buf_printf(&b, "job %" PRIu64 " %s after %s\n", js->job_id, js->state, elapsed);
	hfctl_summary_format(&c, &b);
	hf_buf_puts(&b, "\n");
	return hfctl_buf_print(&b);
}

/* Polls until the job is done or cancelled.  Returns the exit status: 1 when
 * a task ended failed, error or timeout, or the job could not be followed. */
static int watch_job(struct hfctl_ctx *ctx, uint64_t job_id, int64_t interval_ms, bool json)
{
	struct sigaction sa = { .sa_handler = watch_sigint_cb }, old_sa;
	bool tty = !json && isatty(STDOUT_FILENO);
	struct hfctl_counts logged = { 0 }, c;
	int64_t last_log_ms = 0;
	Hf__Envelope *env = NULL;
	char err[HFCTL_ERR_MAX];
	unsigned failures = 0;
	bool seen = false;
	int r, ret;

	snprintf(watch_sigint_msg, sizeof(watch_sigint_msg),
		 "hfctl: stopped watching job %" PRIu64 "; it keeps running (\"hfctl cancel %" PRIu64
		 "\" stops it)\n",
		 job_id, job_id);
	watch_sigint_len = strlen(watch_sigint_msg);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_sa);

	for (;;) {
		r = job_status_get(ctx, job_id, &env, err, sizeof(err));
		if (r < 0) {
			watch_line_clear();
			if (seen && hfctl_client_error_transient(r) && ++failures < WATCH_MAX_FAILURES) {
				hfctl_error("%s, retrying", err);
				sleep_ms(interval_ms);
				continue;
			}
			hfctl_error("%s", err);
			ret = hfctl_exit_status(r);
			goto out;
		}
		seen = true;
		failures = 0;
		if (!json)
			watch_progress_show(env->job_status_reply, tty, &last_log_ms, &logged);
		if (job_state_final(env->job_status_reply->state))
			break;
		hf_env_free(env);
		env = NULL;
		sleep_ms(interval_ms);
	}

	if (watch_line_open) {
		fputs("\n", stdout);
		watch_line_open = 0;
	}
	hfctl_counts_from_job(env->job_status_reply, &c);
	ret = hfctl_counts_failed(&c) > 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
	if (watch_result_print(env->job_status_reply, json) < 0)
		ret = HFCTL_EXIT_FAILED;

out:
	sigaction(SIGINT, &old_sa, NULL);
	hf_env_free(env);
	return ret;
}

static const struct option watch_options[] = {
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int watch_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	int64_t interval_ms = WATCH_DEFAULT_INTERVAL_MS;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	uint64_t job_id;
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", watch_options, NULL)) != -1) {
		switch (c) {
		case OPT_INTERVAL:
			if (hfctl_parse_duration("--interval", optarg, 100, &interval_ms, err,
						 sizeof(err)) < 0)
				return hfctl_usage_error(err);
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_watch);
		default:
			hfctl_getopt_error("watch", watch_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (hfctl_job_arg("watch", argc, argv, optind, &job_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	return watch_job(ctx, job_id, interval_ms, json);
}

const struct hfctl_command hfctl_cmd_watch = {
	.name = "watch",
	.summary = "follow a job to its end with a progress line",
	.usage = "usage: hfctl watch JOB [--interval DURATION] [--json]\n"
		 "\n"
		 "Polls the job until it is done or cancelled.  On a terminal a progress line is\n"
		 "redrawn in place; otherwise a plain line is printed when the counts change, at\n"
		 "most every 5s.  At the end the final counts are printed (with --json: the job's\n"
		 "status object instead).  Ctrl-C stops watching; the job keeps running.\n"
		 "\n"
		 "  --interval DURATION  time between polls (default 500ms, at least 100ms)\n"
		 "  --json               print only the final status, as JSON\n"
		 "\n"
		 "exit status: 0 no task failed, 1 a task ended failed, error or timeout (or the\n"
		 "job could not be followed), 2 bad usage, 130 interrupted.\n",
	.run = watch_run,
};

/* ---- submit ---- */

/* hfctl_call_quiet, asked again while no answer comes back (the
 * coordinator restarting, a standby taking over, a dropped connection):
 * SUBMIT_TRIES in all, 1, 2 and 4 s apart.  Safe for the registry read, and
 * for the submit because its request id makes the coordinator create the
 * job once and answer a repeat with it. */
#define SUBMIT_TRIES 4

static int call_patiently(struct hfctl_ctx *ctx, const Hf__Envelope *env,
			  Hf__Envelope__BodyCase expect, const char *request_id, Hf__Envelope **reply,
			  char *err, size_t errlen)
{
	int r = 0;

	for (int i = 1; i <= SUBMIT_TRIES; i++) {
		r = hfctl_call_quiet(ctx, env, expect, reply, err, errlen);
		if (r == 0 || !hfctl_client_error_transient(r) || i == SUBMIT_TRIES)
			break;
		hfctl_error("%s; asking again%s%s (%d of %d)", err, request_id ? " with request id " : "",
			    request_id ? request_id : "", i + 1, SUBMIT_TRIES);
		sleep(1u << (i - 1));
	}
	/* No answer at all: the submit may have been carried out. */
	if (request_id && (r == -ETIMEDOUT || r == -ECONNRESET)) {
		size_t used = strlen(err);
		snprintf(err + used, errlen - used,
			 "\nwhether the job was made is not known: the same command with --request-id "
			 "%s makes it at most once", request_id);
	}
	return r;
}

/* Refuses model names the registry does not have, before anything is
 * submitted: a typo should not cost a job.  Returns the exit status, where
 * HFCTL_EXIT_OK means go on. */
static int submit_models_check(struct hfctl_ctx *ctx, const struct hfctl_submit *s)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__ModelsRequest req = HF__MODELS_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	int r, ret = HFCTL_EXIT_OK;

	if (s->models.n == 0)
		return HFCTL_EXIT_OK;
	env.body_case = HF__ENVELOPE__BODY_MODELS;
	env.models = &req;
	r = call_patiently(ctx, &env, HF__ENVELOPE__BODY_MODELS_REPLY, NULL, &reply, err, sizeof(err));
	if (r < 0) {
		hfctl_error("%s", err);
		return hfctl_exit_status(r);
	}
	r = hfctl_submit_check_models(s, reply->models_reply, err, sizeof(err));
	if (r < 0) {
		hfctl_error("%s", err);
		ret = r == -ENOENT ? HFCTL_EXIT_USAGE : HFCTL_EXIT_FAILED;
	}
	hf_env_free(reply);
	return ret;
}

/* The default submitter: $USER, else the account's name. */
static const char *user_name(void)
{
	const char *user = getenv("USER");
	struct passwd *pw;

	if (user && user[0])
		return user;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : NULL;
}

/* Prints why the coordinator did not take the job.  When no connected
 * worker could run it, the coordinator lists each worker and device with
 * what it lacks (or since when it is disconnected): one line each, and
 * with --json that list on stdout; the hint says how to queue it anyway. */
static void submit_refusal_print(struct hfctl_ctx *ctx, int r, const char *refusal, bool json)
{
	const Hf__Error *e = hfctl_client_last_error(ctx->client);
	struct hf_buf b;

	if (r != -ENODEV) {
		hfctl_error("%s", refusal);
		return;
	}
	hf_buf_init(&b);
	if (e && e->n_unfit)
		hfctl_unsatisfiable_list_format(e, &b);
	else
		hfctl_unsatisfiable_format(refusal, &b);
	hfctl_error("%s", b.oom ? refusal : b.data);
	hf_buf_fini(&b);
	if (json && e)
		hfctl_json_print(json_pack("{s:s?, s:o, s:I}", "error", e->message,
					   "unfit", hfctl_json_device_fits(e->unfit, e->n_unfit),
					   "unfit_omitted", (json_int_t)e->unfit_omitted));
}

/* Warns on stderr, one line each, about the job's combinations the registry
 * marks as limited: they were submitted and run, but are expected to fail. */
static void submit_limited_print(const Hf__SubmitReply *sr)
{
	struct hf_buf b;

	for (size_t i = 0; i < sr->n_limited; i++) {
		hf_buf_init(&b);
		hfctl_limited_format(sr->limited[i], &b);
		if (!b.oom)
			hfctl_error("warning: %s", b.data);
		hf_buf_fini(&b);
	}
}

/* A fresh request id: 128 random bits in hex. */
static void request_id_draw(char *buf, size_t len)
{
	uint8_t bits[16];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(bits) && (n = getrandom(bits + got, sizeof(bits) - got, 0)) > 0)
		got += (size_t)n;
	if (got < sizeof(bits)) {
		/* No entropy source: the time to the nanosecond and the process
		 * are unique enough for one submitter's retries. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(buf, len, "t%llx-%lx-p%ld", (unsigned long long)ts.tv_sec, (long)ts.tv_nsec,
			 (long)getpid());
		return;
	}
	for (size_t i = 0; i < sizeof(bits) && 2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, 3, "%02x", bits[i]);
}

static int submit_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__SubmitRequest req;
	struct hfctl_submit s;
	char err[HFCTL_ERR_MAX];
	/* The reasons of an unsatisfiable job can be many: room for them. */
	char refusal[4 * HFCTL_ERR_MAX];
	uint64_t job_id;
	uint32_t n;
	bool json;
	int r, ret;

	r = hfctl_submit_parse(argc, argv, user_name(), &s, err, sizeof(err));
	if (r == -ENOMEM) {
		hfctl_error("%s", err);
		return HFCTL_EXIT_FAILED;
	}
	if (r < 0)
		return hfctl_usage_error(err);
	if (s.help) {
		ret = hfctl_usage(&hfctl_cmd_submit);
		goto out;
	}
	json = ctx->json || s.json;
	if (s.old_timeout)
		hfctl_warn("submit's --timeout is deprecated: use --task-timeout (how long each task "
			   "may run)");

	ret = submit_models_check(ctx, &s);
	if (ret != HFCTL_EXIT_OK)
		goto out;

	if (!s.request_id[0])
		request_id_draw(s.request_id, sizeof(s.request_id));
	hfctl_submit_request(&s, &req);
	env.body_case = HF__ENVELOPE__BODY_SUBMIT;
	env.submit = &req;
	r = call_patiently(ctx, &env, HF__ENVELOPE__BODY_SUBMIT_REPLY, s.request_id, &reply, refusal,
			   sizeof(refusal));
	if (r < 0) {
		submit_refusal_print(ctx, r, refusal, json);
		ret = hfctl_exit_status(r);
		goto out;
	}
	job_id = reply->submit_reply->job_id;
	n = reply->submit_reply->task_count;
	if (json)
		r = hfctl_json_print(hfctl_json_submit(reply->submit_reply));
	else if (reply->submit_reply->existing)
		printf("job %" PRIu64 " was submitted before with request id %s: %" PRIu32
		       " task%s, not made again\n", job_id, s.request_id, n, n == 1 ? "" : "s");
	else
		printf("job %" PRIu64 " submitted: %" PRIu32 " task%s\n", job_id, n, n == 1 ? "" : "s");
	fflush(stdout);
	submit_limited_print(reply->submit_reply);
	ret = r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
	if (ret == HFCTL_EXIT_OK && s.watch)
		ret = watch_job(ctx, job_id, WATCH_DEFAULT_INTERVAL_MS, json);

out:
	hf_env_free(reply);
	hfctl_submit_fini(&s);
	return ret;
}

const struct hfctl_command hfctl_cmd_submit = {
	.name = "submit",
	.summary = "submit a job: models x backends x kinds x parameters",
	.usage = "usage: hfctl submit (--models M,... | --family F,... | --suite NAME | --all) [OPTIONS]\n"
		 "\n"
		 "Submits one job: every chosen model on every backend, for every kind, batch size\n"
		 "and precision.  Everything is checked before anything is sent; model names are\n"
		 "checked against the coordinator's registry.\n"
		 "\n"
		 "what to run (--all excludes the others; --models, --family and --suite add up):\n"
		 "  --models M,...         model types, as \"hfctl models --suite all\" lists them\n"
		 "  --family F,...         the core suite's models of these architecture families:\n"
		 "                         encoder-only, decoder-only, encoder-decoder, vision,\n"
		 "                         vision-text, speech, multimodal, diffusion,\n"
		 "                         mixture-of-experts, state-space, rag\n"
		 "  --suite NAME           every model of a suite: core (the seed project's models),\n"
		 "                         all (every model type of the registry), a family (all of\n"
		 "                         its models), or another suite \"hfctl models\" lists; an\n"
		 "                         unknown name is refused with the list of suites\n"
		 "  --all                  the core suite (as --suite core)\n"
		 "\n"
		 "how to run it:\n"
		 "  --backends B,...       cpu, cuda, rocm, mps, openvino, qnn (default cpu)\n"
		 "  --kind K,...           test, benchmark (default test)\n"
		 "  --batch-sizes N,...    1..4096 (default 1)\n"
		 "  --precision P,...      fp32, fp16, bf16, int8 (default fp32)\n"
		 "  --mode M,...           benchmark execution modes: eager (the forward as\n"
		 "                         written), cuda-graph (captured in a CUDA graph and\n"
		 "                         replayed; CUDA and ROCm only), compile (torch.compile),\n"
		 "                         or all; a benchmark task per mode, each figure labelled\n"
		 "                         with its mode (default eager); test tasks ignore it\n"
		 "  --seq-len N,...        sequence lengths, 1..1048576 (at most 16): benchmarks of\n"
		 "                         models with text input get a task per length; tests\n"
		 "                         and other models run the first\n"
		 "  --iterations N         benchmark iterations, 1..1000000\n"
		 "  --warmup N             benchmark warm-up iterations, 1..1000000\n"
		 "  --task-timeout DURATION\n"
		 "                         how long each task may run, 1s..24h (e.g. 90s, 10m)\n"
		 "  --priority N           -1000..1000, higher runs first (default 0)\n"
		 "  --name TEXT            a name for the job\n"
		 "  --submitter NAME       who asks (default $USER)\n"
		 "  --request-id ID        this submission's key (A-Z a-z 0-9 . _ : -, at most\n"
		 "                         128): the same request again with the same key gets\n"
		 "                         the job the first made, not a second one; a different\n"
		 "                         request with it is refused (default: a random key)\n"
		 "\n"
		 "requirements of every task, beyond its backend:\n"
		 "  --min-memory SIZE      device memory, e.g. 16GiB, 500MB, 24G (K M G T and\n"
		 "                         KiB MiB GiB TiB are powers of 1024, KB MB GB TB of 1000)\n"
		 "  --min-compute-capability X.Y\n"
		 "                         CUDA compute capability at least X.Y (needs cuda)\n"
		 "  --gfx T,...            ROCm gfx target, one of these, e.g. gfx942,gfx90a\n"
		 "                         (needs rocm)\n"
		 "  --label KEY[=VALUE],...\n"
		 "                         the worker carries this label (KEY alone: with any\n"
		 "                         value); repeatable\n"
		 "  --runtime SPEC,...     NAME or NAME>=VER (also ==, >, <, <=), e.g. torch,\n"
		 "                         \"transformers>=5.0\"; repeatable\n"
		 "  --devices-per-task N   devices each task gets, 1..16 (default 1)\n"
		 "  --allow-waiting        queue tasks that no registered device can run (yet)\n"
		 "\n"
		 "limits:\n"
		 "  --max-running N        at most N of the job's tasks in flight, 1..100000\n"
		 "                         (default: no cap)\n"
		 "  --max-retries N        retries of infrastructure failures (lost lease, runner\n"
		 "                         crash, device error) per task, 1..20 (default: the\n"
		 "                         coordinator's, 3); a test failure is never retried\n"
		 "  --flaky-reruns N       rerun a failed test up to N times (1..10); the reruns\n"
		 "                         are recorded as such, and the last run decides\n"
		 "\n"
		 "output:\n"
		 "  --watch                follow the job as \"hfctl watch\" does\n"
		 "  --json                 print {\"job_id\", \"task_count\", \"existing\", \"limited\"}\n"
		 "\n"
		 "When no answer comes back (the coordinator restarting, a standby taking over),\n"
		 "hfctl asks up to 3 more times, 1, 2 and 4 s apart, with the same request id:\n"
		 "the job is made once.  A repeat that finds the job says so (\"existing\": true).\n"
		 "\n"
		 "Models the registry marks as limited on a requested backend and kind (see the\n"
		 "LIMITS of \"hfctl models\") are submitted and run all the same; each such\n"
		 "model, backend and kind gets a warning with the registry's reason on stderr,\n"
		 "and an entry {\"model_type\", \"backend\", \"kind\", \"reason\", \"task_count\"}\n"
		 "in \"limited\" with --json.\n"
		 "\n"
		 "--seq-len, --iterations and --warmup left out take the coordinator's defaults,\n"
		 "--task-timeout the worker's.\n"
		 "\n"
		 "exit status: 0 submitted (with --watch: as \"hfctl watch\"), 1 no registered\n"
		 "device could run the tasks (and no --allow-waiting), or the coordinator refused\n"
		 "or could not be reached, 2 bad usage or unknown models.\n",
	.run = submit_run,
};

/* ---- status ---- */

static int status_print(const Hf__JobStatus *js)
{
	struct hfctl_counts c;
	char created[32], finished[32], elapsed[32];
	struct hf_buf b;

	hfctl_counts_from_job(js, &c);
	hfctl_time_format(js->created_at, created, sizeof(created));
	hfctl_time_format(js->finished_at, finished, sizeof(finished));
	hfctl_duration_format(job_elapsed_ms(js, hf_wall_s()), elapsed, sizeof(elapsed));

	hf_buf_init(&b);
	hf_buf_printf(&b, "job        %" PRIu64 "\n", js->job_id);
	hf_buf_printf(&b, "name       %s\n", js->name[0] ? js->name : "-");
	if (strcmp(js->state, "cancelling") == 0)
		/* Cancelled; its queued tasks are being cancelled a slice at a
		 * time, and none of them will run. */
		hf_buf_printf(&b, "state      cancelling, %" PRIu32 " queued tasks left to cancel (none will run)\n",
			      c.n[HF__TASK_STATUS__STATUS_QUEUED]);
	else
		hf_buf_printf(&b, "state      %s\n", js->state);
	hf_buf_printf(&b, "submitter  %s\n", js->submitter[0] ? js->submitter : "-");
	hf_buf_printf(&b, "priority   %" PRId32 "\n", js->priority);
	hf_buf_printf(&b, "created    %s\n", created);
	hf_buf_printf(&b, "finished   %s\n", finished);
	hf_buf_printf(&b, "elapsed    %s\n", elapsed);
	hf_buf_printf(&b, "tasks      %" PRIu32 "\n", c.total);
	for (int s = 1; s < HFCTL_N_STATUS; s++)
		hf_buf_printf(&b, "  %-10s %" PRIu32 "\n", hf_status_name((Hf__TaskStatus)s), c.n[s]);
	return hfctl_buf_print(&b);
}

static int status_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope *reply = NULL;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	uint64_t job_id;
	int r;

	r = hfctl_json_options_read(&hfctl_cmd_status, argc, argv, &json);
	if (r != HFCTL_GO_ON)
		return r;
	if (hfctl_job_arg("status", argc, argv, optind, &job_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	r = job_status_get(ctx, job_id, &reply, err, sizeof(err));
	if (r < 0) {
		hfctl_error("%s", err);
		return hfctl_exit_status(r);
	}
	r = json ? hfctl_json_print(hfctl_json_job(reply->job_status_reply))
		 : status_print(reply->job_status_reply);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_status = {
	.name = "status",
	.summary = "show a job's state and its task counts",
	.usage = "usage: hfctl status JOB [--json]\n"
		 "\n"
		 "Shows the job's state (running, done, cancelled; cancelling while the queued\n"
		 "tasks of a large cancelled job are still being cancelled, none of which will\n"
		 "run), name, submitter, priority, times and the number of tasks in each status.\n"
		 "\n"
		 "  --json  print it as a JSON object\n",
	.run = status_run,
};

/* ---- cancel ---- */

static int cancel_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__CancelRequest req = HF__CANCEL_REQUEST__INIT;
	struct hfctl_cancel cl;
	char err[HFCTL_ERR_MAX];
	bool json;
	uint32_t n;
	int r;

	if (hfctl_cancel_parse(argc, argv, &cl, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	if (cl.help)
		return hfctl_usage(&hfctl_cmd_cancel);
	json = ctx->json || cl.json;

	req.job_id = cl.job_id;
	req.task_id = cl.task_id;
	env.body_case = HF__ENVELOPE__BODY_CANCEL;
	env.cancel = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_CANCEL_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	n = reply->cancel_reply->cancelled;
	if (json && cl.task_id)
		r = hfctl_json_print(json_pack("{s:I, s:I}", "task_id", (json_int_t)cl.task_id,
					       "cancelled", (json_int_t)n));
	else if (json)
		r = hfctl_json_print(json_pack("{s:I, s:I, s:I}", "job_id", (json_int_t)cl.job_id,
					       "cancelled", (json_int_t)n, "remaining",
					       (json_int_t)reply->cancel_reply->remaining));
	else if (cl.task_id)
		printf("task %" PRIu64 " %s\n", cl.task_id,
		       n > 0 ? "cancelled" : "had already finished");
	else if (reply->cancel_reply->remaining)
		printf("job %" PRIu64 ": %" PRIu32 " task%s cancelled (%" PRIu32 " queued ones are still being "
		       "cancelled a slice at a time: none of them will run; \"hfctl status %" PRIu64
		       "\" says cancelled when they are done)\n", cl.job_id, n, n == 1 ? "" : "s",
		       reply->cancel_reply->remaining, cl.job_id);
	else
		printf("job %" PRIu64 ": %" PRIu32 " task%s cancelled\n", cl.job_id, n,
		       n == 1 ? "" : "s");
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_cancel = {
	.name = "cancel",
	.summary = "cancel a job's unfinished tasks, or one task",
	.usage = "usage: hfctl cancel JOB [--json]\n"
		 "       hfctl cancel --task TASK [--json]\n"
		 "\n"
		 "Cancels every task of the job that has not finished, or with --task that one\n"
		 "task: queued tasks will not run, running ones are stopped by their worker\n"
		 "(SIGTERM, then SIGKILL after a grace period).  Prints how many tasks that was;\n"
		 "a task that had already finished is left as it is (and that is no error).\n"
		 "\n"
		 "  --task TASK  cancel this task only\n"
		 "  --json       print {\"job_id\", \"cancelled\", \"remaining\"} (with --task:\n"
		 "               {\"task_id\", \"cancelled\"}, 1 or 0)\n"
		 "\n"
		 "A large job's queued tasks are cancelled after the reply, a slice at a time\n"
		 "(scheduler.cancel_slice): \"remaining\" of them, counted in \"cancelled\"; none\n"
		 "of them runs, and \"hfctl status\" says \"cancelling\" until they are done.\n"
		 "\n"
		 "exit status: 0 done (also when nothing was left to cancel), 1 no such job or\n"
		 "task, or the coordinator refused or could not be reached, 2 bad usage.\n",
	.run = cancel_run,
};

/* ---- retry ---- */

static int retry_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "cancelled", no_argument, NULL, OPT_CANCELLED },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__RetryRequest req = HF__RETRY_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	uint32_t n;
	int r, c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_CANCELLED:
			req.cancelled = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_retry);
		default:
			hfctl_getopt_error("retry", options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (hfctl_job_arg("retry", argc, argv, optind, &req.job_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	env.body_case = HF__ENVELOPE__BODY_RETRY;
	env.retry = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_RETRY_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	n = reply->retry_reply->requeued;
	if (json)
		r = hfctl_json_print(json_pack("{s:I, s:I}", "job_id", (json_int_t)req.job_id,
					       "requeued", (json_int_t)n));
	else
		printf("job %" PRIu64 ": %" PRIu32 " task%s queued again\n", req.job_id, n,
		       n == 1 ? "" : "s");
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_retry = {
	.name = "retry",
	.summary = "queue a job's failed, errored and timed-out tasks again",
	.usage = "usage: hfctl retry JOB [--cancelled] [--json]\n"
		 "\n"
		 "Queues the job's tasks that ended failed, error or timeout again, each as a new\n"
		 "attempt.  Prints how many tasks that was; 0 when none had failed.  Passed and\n"
		 "skipped tasks are never touched.\n"
		 "\n"
		 "  --cancelled  its cancelled tasks too (not one a worker is still stopping);\n"
		 "               a cancelled or finished job is running again until they end\n"
		 "  --json       print {\"job_id\", \"requeued\"}\n"
		 "\n"
		 "exit status: 0 done (also when nothing was queued), 1 no such job, or the\n"
		 "coordinator refused or could not be reached, 2 bad usage.\n",
	.run = retry_run,
};

/* ---- explain ---- */

static int explain_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__ExplainRequest req = HF__EXPLAIN_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	struct hf_buf b;
	int r;

	r = hfctl_json_options_read(&hfctl_cmd_explain, argc, argv, &json);
	if (r != HFCTL_GO_ON)
		return r;
	if (hfctl_task_arg("explain", argc, argv, optind, &req.task_id, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	env.body_case = HF__ENVELOPE__BODY_EXPLAIN;
	env.explain = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_EXPLAIN_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	if (json) {
		r = hfctl_json_print(hfctl_json_explain(reply->explain_reply));
	} else {
		hf_buf_init(&b);
		hfctl_explain_format(reply->explain_reply, &b);
		r = hfctl_buf_print(&b);
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_explain = {
	.name = "explain",
	.summary = "say why a task is not running (yet)",
	.usage = "usage: hfctl explain TASK [--json]\n"
		 "\n"
		 "Asks the coordinator why the task is where it is: its status and a one-line\n"
		 "summary, then one line per worker or device that does not take it and why\n"
		 "(a requirement it does not meet, busy, quarantined, drained, ...).\n"
		 "\n"
		 "  --json  print {\"task_id\", \"status\", \"summary\", \"reasons\": [...]}\n"
		 "\n"
		 "exit status: 0 explained (whatever the task's state), 1 no such task, or the\n"
		 "coordinator refused or could not be reached, 2 bad usage.\n",
	.run = explain_run,
};
