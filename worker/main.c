/* SPDX-License-Identifier: MIT
 *
 * hf-worker: start-up, command line, signals and wiring.  main() loads the
 * configuration (worker-conf.c), detects the hardware (hw.c) and the
 * runner's runtimes (runtime-probe.c), then either prints them (--probe) or
 * runs the session with the coordinator (session.c) on one libuv loop until
 * it ends.  SIGHUP detects the hardware again, on a thread of libuv's pool
 * (vendor libraries can take seconds to initialise), and hands the new
 * inventory to the session, which registers again; the runtimes and the
 * configuration stay as they were at start.
 *
 * Under systemd (Type=notify, common/hf_sdnotify.h) the worker says READY=1
 * once the hardware and runtimes are probed and its first registration is
 * on its way (sent, not necessarily answered: a coordinator that is down
 * must not fail the unit's start; the status line says whether it is
 * registered), STATUS= with its registration and busy slots, RELOADING=1
 * while a SIGHUP's detection runs, STOPPING=1 when it drains, and feeds the
 * watchdog from its loop for as long as that turns.
 *
 * Exit status: 0 after a clean stop (or --probe, --print-config, --help,
 * --version), 1 when the worker could not run or the coordinator refused it,
 * 2 for bad usage or an invalid configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "device-env.h"
#include "hf_http.h"
#include "hf_log.h"
#include "hf_util.h"
#include "hf_nuv.h"
#include "hf_proto.h"
#include "hf_sdnotify.h"
#include "hf-cache.h"
#include "hw.h"
#include "probe-report.h"
#include "runtime-probe.h"
#include "session.h"
#include "worker-metrics.h"
#include "worker-conf.h"

#define EXIT_USAGE 2

struct worker {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint, sighup;
	struct session *session;
	struct hf_http *http;         /* worker.metrics_listen; NULL: off */
	uv_timer_t health_timer;      /* publishes that the loop turns, for /healthz */
	struct hf_sd *sd;             /* what systemd is told */
	bool stopping, ended;
	int exit_code;

	/* Hardware detection: inv is what the session uses; a SIGHUP detects
	 * into next on the thread pool, then the two are swapped on the loop. */
	struct hw_options hw_opt;
	struct hw_inventory *inv, *next;
	uv_work_t detect_req;
	bool detecting;
	int detect_rc;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hf-worker [OPTIONS]\n"
		"Runs HuggingFace model tests and benchmarks handed out by hf-coordinator.\n"
		"\n"
		"  -c, --config FILE        read settings from FILE (INI)\n"
		"      --coordinator-url URL\n"
		"                           coordinator.url: the coordinator's worker address\n"
		"      --id ID              worker.id\n"
		"      --slots N            worker.slots\n"
		"      --state-dir DIR      worker.state_dir\n"
		"      --runner \"CMD ARGS\"  runner.command\n"
		"      --runner-python PATH runner.python\n"
		"      --label KEY=VALUE    add to worker.labels (repeatable)\n"
		"      --set SECTION.KEY=VALUE\n"
		"                           set any setting (repeatable)\n"
		"      --log-level LEVEL    log.level: error, warn, info, debug\n"
		"      --log-format FORMAT  log.format: text, json (one object per line)\n"
		"      --probe [--json]     print the CPU, devices, backends and runtimes, then exit\n"
		"      --print-config       print the effective configuration, then exit\n"
		"      --version            print the version, then exit\n"
		"  -h, --help               print this help, then exit\n"
		"\n"
		"Settings are applied in this order: defaults, the file, the environment,\n"
		"then the options above in the order given.  --print-config documents them.\n"
		"SIGTERM or SIGINT drains the worker (running tasks finish, results are\n"
		"reported); a second one stops it at once.  SIGHUP detects the hardware\n"
		"again and registers the new device list with the coordinator.\n"
		"\n"
		"Exit status: 0 after a clean stop, 1 when the worker could not run or the\n"
		"coordinator refused it, 2 for bad usage or an invalid configuration.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "hf-worker: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'hf-worker --help'.\n");
	return EXIT_USAGE;
}

/* ---- hardware detection ---- */

/* The CPU threads each runner's thread pools get: the usable CPUs shared
 * among every slot of the worker, so that N runners busy at once do not
 * oversubscribe the cores.  OMP_NUM_THREADS and MKL_NUM_THREADS are set in
 * the worker's own environment (every runner inherits it; the reference
 * runner also gives the value to torch.set_num_threads), unless the
 * operator set OMP_NUM_THREADS (then both are left as they are, said once
 * here) or MKL_NUM_THREADS (kept).  Decided at start, before any thread or
 * child of the session.  (A CPU benchmark has the CPU alone: the reference
 * runner gives it every core.) */
static void runner_threads_set(const struct hw_inventory *inv)
{
	unsigned cpus = hw_cpu_usable(&inv->cpu), slots = 0, threads;
	const char *omp = getenv("OMP_NUM_THREADS"), *mkl = getenv("MKL_NUM_THREADS");
	char value[16];

	for (size_t i = 0; i < inv->n_devices; i++)
		slots += inv->devices[i].slots ? inv->devices[i].slots : 1;
	threads = slots && cpus / slots > 0 ? cpus / slots : 1;
	if (omp) {
		/* MKL follows OMP_NUM_THREADS when MKL_NUM_THREADS is unset. */
		log_info("runner threads: keeping OMP_NUM_THREADS=%s from the environment (the worker "
			 "would give %u: %u CPUs / %u slots)",
			 omp, threads, cpus, slots);
		return;
	}
	snprintf(value, sizeof(value), "%u", threads);
	if (setenv("OMP_NUM_THREADS", value, 1) < 0 || (!mkl && setenv("MKL_NUM_THREADS", value, 1) < 0))
		log_warn("could not set the runners' thread count: %s", strerror(errno));
	else
		log_info("runner threads: OMP_NUM_THREADS=%u (%u CPUs / %u slots)%s%s", threads, cpus,
			 slots, mkl ? ", keeping MKL_NUM_THREADS=" : "", mkl ? mkl : "");
}

/* One line per backend: what the worker offers, or why not. */
static void inventory_log(const struct hw_inventory *inv)
{
	for (size_t b = 0; b < HW_N_BACKENDS; b++) {
		const struct hw_backend_status *st = &inv->backends[b];
		size_t n = 0;

		for (size_t i = 0; i < inv->n_devices; i++)
			n += inv->devices[i].backend == st->backend;
		if (st->present)
			log_info("backend %s: %zu device%s%s%s%s", hf_backend_name(st->backend), n,
				 n == 1 ? "" : "s", st->driver[0] ? ", driver " : "", st->driver,
				 st->reason[0] ? " (declared)" : "");
		else
			log_info("backend %s: absent: %s", hf_backend_name(st->backend), st->reason);
	}
}

/* ---- hardware detection again (SIGHUP) ---- */

/* On a thread of the pool: touches only w->next and w->hw_opt, which the
 * loop leaves alone while detecting is set. */
static void detect_work_cb(uv_work_t *req)
{
	struct worker *w = req->data;

	w->detect_rc = hw_inventory_detect(&w->hw_opt, w->next);
}

static void detect_done_cb(uv_work_t *req, int status)
{
	struct worker *w = req->data;
	struct hw_inventory *old;

	w->detecting = false;
	if (status < 0 || w->detect_rc < 0 || w->ended) {
		if (!w->ended)
			log_error("could not detect the hardware again: %s; keeping what was found "
				  "before",
				  status < 0 ? uv_strerror(status) : strerror(-w->detect_rc));
		hw_inventory_fini(w->next);
		free(w->next);
		w->next = NULL;
		hf_sd_ready(w->sd);
		return;
	}
	old = w->inv;
	w->inv = w->next;
	w->next = NULL;
	log_info("hardware detected again: %zu devices", w->inv->n_devices);
	inventory_log(w->inv);
	session_inventory_set(w->session, w->inv);
	hw_inventory_fini(old);
	free(old);
	hf_sd_ready(w->sd);
}

static void detect_again(struct worker *w)
{
	int r;

	if (w->detecting) {
		log_info("received SIGHUP: the hardware is being detected already, ignoring");
		return;
	}
	w->next = calloc(1, sizeof(*w->next));
	if (!w->next) {
		log_error("could not detect the hardware again: out of memory");
		return;
	}
	w->detect_req.data = w;
	r = uv_queue_work(&w->loop, &w->detect_req, detect_work_cb, detect_done_cb);
	if (r < 0) {
		log_error("could not detect the hardware again: %s", uv_strerror(r));
		free(w->next);
		w->next = NULL;
		return;
	}
	w->detecting = true;
	hf_sd_reloading(w->sd);
	log_info("received SIGHUP: detecting the hardware again");
}

/* ---- signals and the session's end ---- */

static void signal_cb(uv_signal_t *h, int signum)
{
	struct worker *w = h->data;

	if (signum == SIGHUP) {
		detect_again(w);
		return;
	}
	if (!w->stopping) {
		w->stopping = true;
		log_info("received SIG%s: draining (send it again to stop at once)",
			 sigabbrev_np(signum));
		session_drain(w->session);
		hf_sd_stopping(w->sd);
	} else {
		log_info("received SIG%s again: stopping now", sigabbrev_np(signum));
		session_stop_now(w->session);
	}
}

static void worker_session_done_cb(struct session *s, int exit_code, void *arg)
{
	struct worker *w = arg;

	(void)s;
	w->exit_code = exit_code;
	w->ended = true;
	hf_sd_stopping(w->sd);
	hf_sd_close(w->sd);
	w->sd = NULL;
	uv_close((uv_handle_t *)&w->sigterm, NULL);
	uv_close((uv_handle_t *)&w->sigint, NULL);
	uv_close((uv_handle_t *)&w->sighup, NULL);
	if (w->http) {
		uv_close((uv_handle_t *)&w->health_timer, NULL);
		hf_http_stop(w->http);
		w->http = NULL;
	}
}

static void sd_status_cb(void *arg, char *buf, size_t len)
{
	struct worker *w = arg;

	worker_status_line(w->session, buf, len);
}

/* The loop turning is the worker's health: every call has a timeout and
 * runners are other processes, so nothing else can hang it. */
static const struct hf_sd_ops worker_sd_ops = {
	.status = sd_status_cb,
};

static void metrics_render_cb(void *arg, struct hf_buf *b)
{
	struct worker *w = arg;

	worker_metrics_render(w->session, b);
}

static void health_timer_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	hf_http_health_set(w->http, true, NULL);
}

/* The HTTP endpoint on worker.metrics_listen, when set. */
static int metrics_start(struct worker *w, const char *url)
{
	int r;

	if (!url || !*url)
		return 0;
	r = hf_http_start(&w->loop, url, metrics_render_cb, w, &w->http);
	if (r < 0) {
		log_error("could not serve HTTP on \"%s\": %s", url, strerror(-r));
		return r;
	}
	uv_timer_init(&w->loop, &w->health_timer);
	w->health_timer.data = w;
	uv_timer_start(&w->health_timer, health_timer_cb, 1000, 1000);
	return 0;
}

/* Runs the session.  Takes inv (detected with opt), which is released
 * here. */
static int worker_run(const struct worker_conf *conf, const struct hw_options *opt,
		      struct hw_inventory *inv, const struct runtime_list *rts)
{
	struct worker w = { .exit_code = 1, .hw_opt = *opt, .inv = inv };
	char host[HOST_NAME_MAX + 1] = "";
	char err[512];
	int r;

	gethostname(host, sizeof(host) - 1);
	/* The worker token, read once: a new one takes effect at a restart. */
	char token[160] = "";
	if (conf->token_file && *conf->token_file) {
		if (hf_secret_file_read(conf->token_file, token, sizeof(token), err, sizeof(err)) < 0) {
			log_error("%s", err);
			return 1;
		}
	} else {
		log_warn("no worker.token_file is set: a coordinator that requires tokens (the default) refuses this worker");
	}
	/* What runners read is what is reported: set here, while the worker
	 * has no other thread, and inherited by every runner. */
	runner_threads_set(inv);
	if (*conf->hf_cache && setenv("HF_HUB_CACHE", conf->hf_cache, 1) < 0)
		log_warn("could not set HF_HUB_CACHE for runners: %s", strerror(errno));
	if (*conf->weights_dir && setenv("HFLEET_WEIGHTS_DIR", conf->weights_dir, 1) < 0)
		log_warn("could not set HFLEET_WEIGHTS_DIR for runners: %s", strerror(errno));
	char **cached = NULL, *cache_dir = hf_cache_dir(conf->hf_cache);
	size_t n_cached = 0;
	if (hf_cache_scan(cache_dir, &cached, &n_cached) < 0)
		log_warn("could not list the HuggingFace cache \"%s\": out of memory, ignoring",
			 cache_dir ? cache_dir : "");
	else if (n_cached)
		log_info("%zu models have weights in the HuggingFace cache %s", n_cached, cache_dir);
	free(cache_dir);
	if (*conf->weights_dir) {
		if (hf_weights_dirs_scan(conf->weights_dir, &cached, &n_cached) < 0)
			log_warn("could not list the weights directories \"%s\": out of memory, ignoring",
				 conf->weights_dir);
		else
			log_info("%zu models have pretrained weights (hub cache and %s)", n_cached,
				 conf->weights_dir);
	}
	struct hf_tls tls = {
		.ca_file = conf->tls_ca_file,
		.cert_file = conf->tls_cert_file,
		.key_file = conf->tls_key_file,
		.server_name = conf->tls_server_name,
	};
	struct session_config sc = {
		.url = conf->coordinator_url,
		.tls = &tls,
		.worker_id = conf->id,
		.token = token[0] ? token : NULL,
		.hostname = host,
		.labels = conf->label_list,
		.n_labels = conf->n_labels,
		.inv = inv,
		.runtimes = rts,
		.cached_models = cached,
		.n_cached_models = n_cached,
		.telemetry = conf->telemetry,
		.heartbeat_ms = conf->heartbeat_ms,
		.drain_timeout_ms = conf->drain_timeout_ms,
		.lease_ahead = (unsigned)conf->lease_ahead,
		.lease_ahead_below_ms = conf->lease_ahead_below_ms,
		.health_timeout_ms = conf->health_timeout_ms,
		.health_interval_ms = conf->health_interval_ms,
		.health_on_register = conf->health_on_register,
		.prewarm = conf->runner_prewarm,
		.exec = {
			.argv = conf->runner_argv,
			.state_dir = conf->state_dir,
			.default_timeout_ms = conf->runner_timeout_ms,
			.kill_grace_ms = conf->kill_grace_ms,
			.output_limit = (size_t)conf->output_limit,
			.warm = conf->runner_warm,
			.warm_max_tasks = (unsigned)conf->warm_max_tasks,
			.warm_max_rss = conf->warm_max_rss_bytes,
			.warm_idle_timeout_ms = conf->warm_idle_timeout_ms,
		},
	};

	r = uv_loop_init(&w.loop);
	if (r < 0) {
		log_error("could not start the event loop: %s", uv_strerror(r));
		goto out;
	}
	r = worker_metrics_init();
	if (r == 0)
		r = hf_sd_open(&w.loop, &worker_sd_ops, &w, &w.sd);
	if (r == 0)
		r = metrics_start(&w, conf->metrics_listen);
	if (r == 0) {
		r = session_new(&w.loop, &sc, worker_session_done_cb, &w, &w.session, err, sizeof(err));
		if (r < 0)
			log_error("%s", err);
	}
	if (r < 0) {
		if (w.http) {
			uv_close((uv_handle_t *)&w.health_timer, NULL);
			hf_http_stop(w.http);
		}
		hf_sd_close(w.sd);
		uv_run(&w.loop, UV_RUN_NOWAIT); /* close callbacks */
		worker_metrics_fini();
		uv_loop_close(&w.loop);
		goto out;
	}
	uv_signal_init(&w.loop, &w.sigterm);
	uv_signal_init(&w.loop, &w.sigint);
	uv_signal_init(&w.loop, &w.sighup);
	w.sigterm.data = w.sigint.data = w.sighup.data = &w;
	uv_signal_start(&w.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&w.sigint, signal_cb, SIGINT);
	uv_signal_start(&w.sighup, signal_cb, SIGHUP);

	log_info("hf-worker %s starting as \"%s\": coordinator %s, %zu devices, runner \"%s\"%s",
		 HF_VERSION, conf->id, conf->coordinator_url, inv->n_devices, conf->runner_command,
		 conf->runner_warm ? " (warm)" : " (a process per task)");
	inventory_log(inv);
	session_start(w.session);
	hf_sd_ready(w.sd);
	uv_run(&w.loop, UV_RUN_DEFAULT);
	session_free(w.session);
	worker_metrics_fini();
	r = uv_loop_close(&w.loop);
	if (r < 0)
		log_warn("event loop closed with handles still open: %s, ignoring", uv_strerror(r));
	log_info("hf-worker stopped");
out:
	hf_cache_free(cached, n_cached);
	hw_inventory_fini(w.inv);
	free(w.inv);
	return w.exit_code;
}

/* ---- command line ---- */

enum {
	OPT_COORDINATOR = 0x100,
	OPT_OLD_COORDINATOR,
	OPT_ID,
	OPT_SLOTS,
	OPT_STATE_DIR,
	OPT_RUNNER,
	OPT_RUNNER_PYTHON,
	OPT_LABEL,
	OPT_SET,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_PROBE,
	OPT_JSON,
	OPT_PRINT_CONFIG,
	OPT_VERSION,
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "coordinator-url", required_argument, NULL, OPT_COORDINATOR },
	/* The old spelling, kept for a release. */
	{ "coordinator", required_argument, NULL, OPT_OLD_COORDINATOR },
	{ "id", required_argument, NULL, OPT_ID },
	{ "slots", required_argument, NULL, OPT_SLOTS },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "runner", required_argument, NULL, OPT_RUNNER },
	{ "runner-python", required_argument, NULL, OPT_RUNNER_PYTHON },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "set", required_argument, NULL, OPT_SET },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "probe", no_argument, NULL, OPT_PROBE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The setting each plain option stands for. */
static const char *option_setting(int opt)
{
	switch (opt) {
	case OPT_COORDINATOR:
	case OPT_OLD_COORDINATOR: return "coordinator.url";
	case OPT_ID: return "worker.id";
	case OPT_SLOTS: return "worker.slots";
	case OPT_STATE_DIR: return "worker.state_dir";
	case OPT_RUNNER: return "runner.command";
	case OPT_RUNNER_PYTHON: return "runner.python";
	case OPT_LABEL: return "worker.labels";
	case OPT_LOG_LEVEL: return "log.level";
	case OPT_LOG_FORMAT: return "log.format";
	default: return NULL;
	}
}

static int probe_print(const struct hw_inventory *inv, const struct runtime_list *rts, bool json)
{
	if (json) {
		json_t *report = probe_report_json(inv, rts);
		int r = report ? json_dumpf(report, stdout, JSON_INDENT(2)) : -1;
		json_decref(report);
		if (r < 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
			log_error("could not write the probe report: %s",
				  report ? strerror(errno) : "out of memory");
			return 1;
		}
		return 0;
	}
	if (probe_report_print(inv, rts, stdout) < 0) {
		log_error("could not write the probe report: %s", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct worker_conf conf = { 0 };
	struct worker_conf_override *ov;
	struct hw_inventory *inv = NULL;
	struct hw_options hw_opt;
	struct runtime_list rts = { 0 };
	const char *config_path = NULL;
	bool probe = false, json = false, print_config = false;
	size_t n_ov = 0;
	uint64_t nofile;
	char err[1024];
	int opt, r, rc = 1;

	hf_log_init("hf-worker", HF_LOG_INFO);
	ov = calloc((size_t)argc + 1, sizeof(*ov));
	if (!ov) {
		log_error("out of memory");
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "c:h", long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case OPT_SET: {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				rc = usage_error("--set needs SECTION.KEY=VALUE, not \"%s\"", optarg);
				goto out;
			}
			*eq = '\0';
			ov[n_ov++] = (struct worker_conf_override){ optarg, eq + 1, false };
			break;
		}
		case OPT_PROBE:
			probe = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_PRINT_CONFIG:
			print_config = true;
			break;
		case OPT_VERSION:
			printf("hf-worker %s (protocol %d)\n", HF_VERSION, HF_PROTOCOL_VERSION);
			rc = 0;
			goto out;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		case '?':
			fprintf(stderr, "Try 'hf-worker --help'.\n");
			rc = EXIT_USAGE;
			goto out;
		default:
			if (opt == OPT_OLD_COORDINATOR)
				log_warn("--coordinator is deprecated: use --coordinator-url (the "
					 "coordinator's worker address)");
			ov[n_ov++] = (struct worker_conf_override){ option_setting(opt), optarg,
								    opt == OPT_LABEL };
			break;
		}
	}
	if (optind < argc) {
		rc = usage_error("unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (json && !probe) {
		rc = usage_error("%s only goes with --probe", "--json");
		goto out;
	}

	r = worker_conf_load(&conf, config_path, ov, n_ov, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "hf-worker: %s\n", err);
		rc = EXIT_USAGE;
		goto out;
	}
	hf_log_init("hf-worker", conf.log_threshold);
	hf_log_daemon(conf.log_format_parsed);
	/* Before the runtime probe, the first child. */
	r = devenv_multicast_off(err, sizeof(err));
	if (r < 0) {
		log_error("could not set the runners' environment: %s", strerror(-r));
		goto out;
	}
	if (err[0])
		log_warn("multicast stays off in every runner, whatever the worker's environment says: "
			 "overriding %s",
			 err);
	if (print_config) {
		worker_conf_print(&conf, config_path, n_ov > 0, stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
		goto out;
	}

	inv = calloc(1, sizeof(*inv));
	if (!inv) {
		log_error("out of memory");
		goto out;
	}
	hw_opt = (struct hw_options){
		.root = conf.hw_root,
		.nvml_library = conf.nvml_library,
		.openvino_library = conf.openvino_library,
		.qnn_sdk_root = conf.qnn_sdk_root,
		.cpu_slots = (unsigned)conf.slots,
		.devconf = &conf.devconf,
	};
	r = hw_inventory_detect(&hw_opt, inv);
	if (r < 0) {
		log_error("could not detect the hardware: %s", strerror(-r));
		goto out;
	}
	r = runtime_probe_run(conf.runner_argv, RUNTIME_PROBE_TIMEOUT_MS, &rts);
	if (r < 0) {
		log_error("could not probe the runtimes: %s", strerror(-r));
		goto out;
	}
	if (probe) {
		rc = probe_print(inv, &rts, json);
		goto out;
	}

	/* A write to a closed socket must be an error, not the end of us. */
	signal(SIGPIPE, SIG_IGN);
	/* Every runner holds pipes and every task files: take the hard limit. */
	r = nuv_nofile_raise(&nofile);
	if (r < 0)
		log_warn("could not raise the open-file limit: %s, ignoring", strerror(-r));
	else if (nofile == UINT64_MAX)
		log_info("open-file limit: unlimited");
	else
		log_info("open-file limit: %" PRIu64, nofile);
	rc = worker_run(&conf, &hw_opt, inv, &rts);
	inv = NULL; /* worker_run's */

out:
	runtime_list_fini(&rts);
	hw_inventory_fini(inv);
	free(inv);
	worker_conf_fini(&conf);
	free(ov);
	return rc;
}
