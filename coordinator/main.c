/* SPDX-License-Identifier: MIT
 *
 * hf-coordinator: start-up, configuration, signals and wiring.  The
 * database is migrated and the live state (running jobs, queued and leased
 * tasks) is loaded before the listeners open, so a restarted coordinator
 * carries on where the last one stopped.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord-tls.h"
#include "coordinator.h"
#include "embedded.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hf-coordinator [OPTIONS]\n"
		"\n"
		"Holds the job queue of the hfleet suite, hands tasks to hf-worker daemons\n"
		"and stores their results in PostgreSQL.\n"
		"\n"
		"  -c, --config FILE        read settings from FILE (INI)\n"
		"      --database CONNINFO  database.conninfo\n"
		"      --worker-listen URL  coordinator.worker_listen\n"
		"      --control-listen URL coordinator.control_listen\n"
		"      --http-listen URL    coordinator.http_listen (/metrics, /healthz; \"\" = off)\n"
		"      --registry FILE      registry.path\n"
		"      --set KEY=VALUE      set any setting (see --print-config)\n"
		"      --log-level LEVEL    error, warn, info or debug\n"
		"      --log-format FORMAT  log.format: text or json (one object per line)\n"
		"      --check-registry     load the registry, report, and exit\n"
		"      --create-token NAME --role ROLE\n"
		"                           make a token (viewer, submitter, admin or worker) in the\n"
		"                           database (migrating it first), print it once and exit\n"
		"      --print-config       print the effective configuration (after -c, the\n"
		"                           environment and the options; the database password\n"
		"                           masked) as a documented file and exit\n"
		"      --version            print the version and exit\n"
		"  -h, --help               this help\n");
}


enum {
	OPT_DB = 256,
	OPT_WL,
	OPT_CL,
	OPT_HL,
	OPT_REG,
	OPT_SET,
	OPT_LOG,
	OPT_LOG_FORMAT,
	OPT_CHECK,
	OPT_PRINT,
	OPT_VER,
	OPT_CREATE_TOKEN,
	OPT_ROLE,
};

/* --create-token NAME --role ROLE */
static const char *create_token_name, *create_token_role;

/* For --print-config: the file read (NULL: none), and whether options set
 * anything. */
static const char *config_path;
static bool config_cmdline;

static void signal_cb(uv_signal_t *h, int signum)
{
	struct coord *c = h->data;
	log_info("received %s, shutting down", strsignal(signum));
	coord_shutdown(c);
}

/* Adds tasks loaded from the database (at start, or queued again by hfctl
 * retry) to the scheduler; their jobs must have been added. */
void coord_load_tasks(struct coord *c, const struct db_live_task *tasks, size_t n, size_t *ret_queued,
		      size_t *ret_leased)
{
	int64_t now = hf_mono_ms();

	for (size_t i = 0; i < n; i++) {
		const struct db_live_task *d = &tasks[i];
		long model = registry_find(c->reg, d->model_type);
		if (model < 0) {
			log_error("task %" PRIu64 " names model \"%s\", which the registry no longer has; "
				  "it stays queued until the registry lists it again",
				  d->id, d->model_type);
			continue;
		}
		struct sched_task t = {
			.id = d->id,
			.job_id = d->job_id,
			.attempt = d->attempt,
			.model = (uint32_t)model,
			.backend = d->backend,
			.kind = d->kind,
			.batch_size = d->batch_size,
			.seq_len = d->seq_len,
			.iterations = d->iterations,
			.warmup = d->warmup,
			.timeout_s = d->timeout_s,
			.state = d->leased ? SCHED_LEASED : SCHED_QUEUED,
			.device_index = d->n_devices ? d->devices[0] : 0,
			.n_devices = d->n_devices,
			/* Workers get one lease period to reconnect and say they still run it. */
			.lease_expires_ms = now + c->conf.lease_ms,
		};
		t.precision = hf_precision_valid(d->precision) ?
				      (strcmp(d->precision, "fp16") == 0 ? "fp16" :
				       strcmp(d->precision, "bf16") == 0 ? "bf16" :
				       strcmp(d->precision, "int8") == 0 ? "int8" : "fp32") :
				      "fp32";
		t.mode = hf_mode_static(d->mode) ? hf_mode_static(d->mode) : "eager";
		hf_strlcpy(t.worker_id, d->worker_id, sizeof(t.worker_id));
		memcpy(t.devices, d->devices, sizeof(t.devices));
		if (!sched_task_add(c->sched, &t)) {
			log_error("could not load task %" PRIu64 ": out of memory", d->id);
			continue;
		}
		if (d->leased)
			(*ret_leased)++;
		else
			(*ret_queued)++;
	}
}

/* The connections settings, the same for both ports: each port is its own
 * listener with its own requests in flight, connections and cap. */
static int server_limit(struct coord *c, nuv_server_t *srv, const char *name)
{
	struct nuv_server_limits lim = {
		.name = name,
		.max_connections = (unsigned)c->conf.max_connections,
		.requests_per_connection = (unsigned)c->conf.requests_per_connection,
		.idle_timeout_ms = c->conf.idle_timeout_ms,
		.reply_timeout_ms = c->conf.reply_timeout_ms,
		.handshake_timeout_ms = c->conf.handshake_timeout_ms,
	};
	return nuv_server_limit(srv, &lim);
}

/* Settings whose bounds depend on each other. */
static int check_config(const struct coord_conf *conf)
{
	if (conf->idle_timeout_ms < 2 * conf->heartbeat_ms) {
		fprintf(stderr,
			"hf-coordinator: connections.idle_timeout (%" PRId64 " ms) must be at least twice "
			"scheduler.heartbeat (%" PRId64 " ms): workers poll once per heartbeat\n",
			conf->idle_timeout_ms, conf->heartbeat_ms);
		return -EINVAL;
	}
	return 0;
}

/* Each connection is an open file: take the hard limit, and say when the
 * two ports' caps could use it up. */
static void nofile_check(const struct coord_conf *conf)
{
	/* The database, the HTTP endpoint, the log and the loop's own files
	 * (connections still handshaking count against the cap). */
	const uint64_t margin = 256;
	uint64_t limit, need = 2 * (uint64_t)conf->max_connections + margin;
	int r = nuv_nofile_raise(&limit);

	if (r < 0) {
		log_warn("could not raise the open-file limit: %s, ignoring", strerror(-r));
		return;
	}
	if (limit == UINT64_MAX)
		log_info("open-file limit: unlimited");
	else
		log_info("open-file limit: %" PRIu64, limit);
	if (need > limit)
		log_warn("2 ports x connections.max_per_port (%" PRId64 ") + %" PRIu64 " = %" PRIu64
			 " files exceeds the open-file limit of %" PRIu64
			 ": raise LimitNOFILE or lower connections.max_per_port",
			 conf->max_connections, margin, need, limit);
}

static void warm_done(struct db_op *op)
{
	free(op); /* a failure was logged; the statements warm on first use */
}

/* Warms the connections (db-warm.c) before the first request needs them:
 * the main one, and the job lane's (connected here rather than by the
 * first submit). */
static void coord_warm_connections(struct coord *c)
{
	struct db *dbs[2] = { c->db, c->db_jobs };

	for (size_t i = 0; i < 2; i++) {
		struct db_op *op = dbs[i] ? calloc(1, sizeof(*op)) : NULL;
		if (!op)
			continue; /* no lane, or no memory: nothing is lost */
		op->kind = DB_OP_WARM;
		op->u.warm.job_lane = i == 1;
		op->u.warm.active_pid = i == 1 ? db_backend_pid(c->db) : 0;
		op->u.warm.reg = c->reg;
		op->done = warm_done;
		db_submit(dbs[i], op);
	}
}

static void start_done(struct db_op *op)
{
	struct coord *c = op->ctx;
	size_t queued = 0, leased = 0;
	int r;

	if (op->rc < 0) {
		if (!c->stopping) {
			log_error("could not prepare the database: %s", op->err);
			c->exit_code = 1;
		}
		goto fail;
	}
	for (size_t i = 0; i < op->u.start.n_jobs; i++) {
		struct db_live_job *dj = &op->u.start.jobs[i];
		struct sched_job *job = sched_job_add(c->sched, dj->id, dj->priority);
		struct match_req *req = NULL;
		if (job) {
			job->max_running = dj->max_running;
			job->max_retries = dj->max_retries;
			job->submitter = sched_name_hash(dj->submitter);
			job->flaky_reruns = dj->flaky_reruns;
		}
		if (job && dj->requirements && match_req_from_json(dj->requirements, &req) == 0) {
			job->data = req;
			job->data_free = (void (*)(void *))match_req_free;
		} else if (job) {
			log_warn("job %" PRIu64 ": could not read its requirements \"%s\", ignoring them",
				 dj->id, dj->requirements ? dj->requirements : "");
		}
		free(dj->requirements);
		dj->requirements = NULL;
	}
	coord_load_tasks(c, op->u.start.tasks, op->u.start.n_tasks, &queued, &leased);
	for (size_t i = 0; i < op->u.start.n_drains; i++)
		coord_drain_set(c, &op->u.start.drains[i], false);
	for (size_t i = 0; i < op->u.start.n_quarantines; i++) {
		const struct db_quarantine *q = &op->u.start.quarantines[i];
		if (health_quarantine_set(&c->health, q->worker_id, q->backend, q->index, q->reason) < 0)
			log_error("out of memory restoring the quarantine of %s/%s:%" PRIu32, q->worker_id,
				  hf_backend_name((Hf__Backend)q->backend), q->index);
	}
	log_info("recovered %zu running jobs: %zu tasks queued, %zu leased; %zu drains, %zu quarantined devices",
		 op->u.start.n_jobs, queued, leased, op->u.start.n_drains, op->u.start.n_quarantines);
	/* Cancels a coordinator before this one left unfinished. */
	for (size_t i = 0; i < op->u.start.n_cancelling; i++) {
		log_info("job %" PRIu64 ": finishing its cancel (its queued tasks, in slices)",
			 op->u.start.cancelling[i]);
		cancel_feed_start(c, op->u.start.cancelling[i]);
	}
	coord_auth_load(c, op->u.start.tokens, op->u.start.n_tokens);
	db_start_result_free(op);
	free(op);
	coord_warm_connections(c);

	r = nuv_server_open(c->loop, c->conf.worker_listen, hf_tls_url(c->conf.worker_listen) ? c->tls : NULL,
			    (unsigned)c->conf.worker_contexts,
			    HF_WORKER_PORT_RECV_MAX, worker_api_request_cb, c, &c->worker_srv);
	if (r < 0) {
		log_error("could not listen for workers on \"%s\": %s", c->conf.worker_listen, strerror(-r));
		c->exit_code = 1;
		coord_shutdown(c);
		return;
	}
	r = nuv_server_open(c->loop, c->conf.control_listen, hf_tls_url(c->conf.control_listen) ? c->tls : NULL, 16,
			    HF_CONTROL_PORT_RECV_MAX, control_api_request_cb, c, &c->control_srv);
	if (r < 0) {
		log_error("could not listen for hfctl on \"%s\": %s", c->conf.control_listen, strerror(-r));
		c->exit_code = 1;
		coord_shutdown(c);
		return;
	}
	r = server_limit(c, c->worker_srv, "worker port");
	if (r == 0)
		r = server_limit(c, c->control_srv, "control port");
	if (r < 0) {
		log_error("could not apply the connections settings: %s", strerror(-r));
		c->exit_code = 1;
		coord_shutdown(c);
		return;
	}
	r = coord_http_start(c, c->conf.http_listen);
	if (r < 0) {
		log_error("could not serve HTTP on \"%s\": %s", c->conf.http_listen, strerror(-r));
		c->exit_code = 1;
		coord_shutdown(c);
		return;
	}
	uv_timer_start(&c->lease_timer, leases_tick_cb, 250, 250);
	uv_timer_start(&c->telemetry_timer, telemetry_sample_cb, 1000, 1000);
	c->serving = true;
	hf_sd_ready(c->sd);
	log_info("ready: workers on %s, hfctl on %s, metrics on %s", c->conf.worker_listen,
		 c->conf.control_listen, c->conf.http_listen[0] ? c->conf.http_listen : "(off)");
	return;
fail:
	db_start_result_free(op);
	free(op);
	coord_shutdown(c);
}

void coord_shutdown(struct coord *c)
{
	if (c->stopping)
		return;
	c->stopping = true;
	c->serving = false;
	hf_sd_stopping(c->sd);
	uv_timer_stop(&c->lease_timer);
	uv_timer_stop(&c->telemetry_timer);
	coord_http_stop(c);
	uv_signal_stop(&c->sig_term);
	uv_signal_stop(&c->sig_int);
	worker_api_close(c); /* held polls are answered with nothing */
	cancel_feeds_stop(c);
	submit_feeds_stop(c);
	/* Finish what the database was asked (their replies still go out),
	 * then close the listeners. */
	db_close(c->db_jobs);
	c->db_jobs = NULL;
	db_close(c->db);
	c->db = NULL;
	db_close(c->db_results); /* after db, whose thread gives it work */
	c->db_results = NULL;
	nuv_server_close(c->worker_srv);
	nuv_server_close(c->control_srv);
	c->worker_srv = c->control_srv = NULL;
	uv_close((uv_handle_t *)&c->lease_timer, NULL);
	uv_close((uv_handle_t *)&c->telemetry_timer, NULL);
	uv_close((uv_handle_t *)&c->sig_term, NULL);
	uv_close((uv_handle_t *)&c->sig_int, NULL);
	hf_sd_close(c->sd);
	c->sd = NULL;
}

static int load_config(struct coord *c, int argc, char **argv, int *ret_action)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "database", required_argument, NULL, OPT_DB },
		{ "worker-listen", required_argument, NULL, OPT_WL },
		{ "control-listen", required_argument, NULL, OPT_CL },
		{ "http-listen", required_argument, NULL, OPT_HL },
		{ "registry", required_argument, NULL, OPT_REG },
		{ "set", required_argument, NULL, OPT_SET },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
		{ "check-registry", no_argument, NULL, OPT_CHECK },
		{ "print-config", no_argument, NULL, OPT_PRINT },
		{ "version", no_argument, NULL, OPT_VER },
		{ "create-token", required_argument, NULL, OPT_CREATE_TOKEN },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[1024];
	const char *config = NULL;
	int o;

	*ret_action = 0;
	if (hf_conf_defaults(coord_conf_table, &c->conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "hf-coordinator: %s\n", err);
		return -EINVAL;
	}
	/* First pass: the file, so that options override it. */
	opterr = 0;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1)
		if (o == 'c')
			config = optarg;
	if (config && hf_conf_load_file(coord_conf_table, &c->conf, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "hf-coordinator: %s\n", err);
		return -EINVAL;
	}
	if (hf_conf_load_env(coord_conf_table, &c->conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "hf-coordinator: %s\n", err);
		return -EINVAL;
	}
	opterr = 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		const char *key = NULL, *value = optarg;
		char kv[512];
		switch (o) {
		case 'c':
			continue;
		case OPT_DB:
			key = "database.conninfo";
			break;
		case OPT_WL:
			key = "coordinator.worker_listen";
			break;
		case OPT_CL:
			key = "coordinator.control_listen";
			break;
		case OPT_HL:
			key = "coordinator.http_listen";
			break;
		case OPT_REG:
			key = "registry.path";
			break;
		case OPT_LOG:
			key = "log.level";
			break;
		case OPT_LOG_FORMAT:
			key = "log.format";
			break;
		case OPT_SET: {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				fprintf(stderr, "hf-coordinator: --set needs KEY=VALUE, got \"%s\"\n", optarg);
				return -EINVAL;
			}
			snprintf(kv, sizeof(kv), "%.*s", (int)(eq - optarg), optarg);
			key = kv;
			value = eq + 1;
			break;
		}
		case OPT_CHECK:
		case OPT_PRINT:
		case OPT_VER:
			*ret_action = o;
			continue;
		case OPT_CREATE_TOKEN:
			create_token_name = optarg;
			*ret_action = o;
			continue;
		case OPT_ROLE:
			create_token_role = optarg;
			continue;
		case 'h':
			usage(stdout);
			*ret_action = 'h';
			return 0;
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (hf_conf_set(coord_conf_table, &c->conf, key, value, err, sizeof(err)) < 0) {
			fprintf(stderr, "hf-coordinator: %s\n", err);
			return -EINVAL;
		}
		config_cmdline = true;
	}
	config_path = config;
	if (optind < argc) {
		fprintf(stderr, "hf-coordinator: unexpected argument \"%s\"\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ---- hf-coordinator --create-token ---- */

struct bootstrap {
	struct db_op op;
	struct db_token token;
	char secret[AUTH_TOKEN_LEN + 1];
	uv_loop_t *loop;
	bool done;
};

static void bootstrap_done(struct db_op *op)
{
	struct bootstrap *b = op->ctx;
	b->done = true;
	uv_stop(b->loop);
}

/* Makes one token in the database, creating or migrating the schema
 * first, and prints it on stdout: how an operator gets the first admin
 * token (and worker tokens before a coordinator runs).  A running
 * coordinator learns of a token made this way at its next start; "hfctl
 * token create" reaches it at once. */
static int create_token(struct coord *c)
{
	struct bootstrap b = { 0 };
	enum auth_role role;
	struct db *db = NULL;
	int r;

	if (!create_token_role || auth_role_parse(create_token_role, &role) < 0) {
		fprintf(stderr, "hf-coordinator: --create-token needs --role viewer, submitter, admin or worker%s%s%s\n",
			create_token_role ? " (not \"" : "", create_token_role ? create_token_role : "",
			create_token_role ? "\")" : "");
		return 2;
	}
	if (!hf_id_valid(create_token_name) || strlen(create_token_name) >= AUTH_NAME_MAX) {
		fprintf(stderr, "hf-coordinator: invalid token name \"%s\" (1 to %d of A-Z a-z 0-9 . _ : -)\n",
			create_token_name, AUTH_NAME_MAX - 1);
		return 2;
	}
	r = auth_token_generate(b.secret, b.token.id, b.token.hash);
	if (r < 0) {
		fprintf(stderr, "hf-coordinator: could not make a token: %s\n", strerror(-r));
		return 1;
	}
	hf_strlcpy(b.token.name, create_token_name, sizeof(b.token.name));
	hf_strlcpy(b.token.role, auth_role_name(role), sizeof(b.token.role));
	b.loop = uv_default_loop();
	r = db_open(b.loop, c->conf.conninfo, &db);
	if (r < 0) {
		fprintf(stderr, "hf-coordinator: could not start the database thread: %s\n", strerror(-r));
		return 1;
	}
	b.op.kind = DB_OP_AUTH_BOOTSTRAP;
	b.op.u.token.token = &b.token;
	b.op.u.token.created_by = "hf-coordinator --create-token";
	b.op.audit.actor = "hf-coordinator --create-token";
	b.op.audit.role = "admin";
	b.op.audit.action = "token-create";
	b.op.done = bootstrap_done;
	b.op.ctx = &b;
	db_submit(db, &b.op);
	while (!b.done)
		uv_run(b.loop, UV_RUN_DEFAULT);
	db_close(db);
	uv_run(b.loop, UV_RUN_NOWAIT);
	uv_loop_close(b.loop);
	if (b.op.rc < 0) {
		fprintf(stderr, "hf-coordinator: could not make the token: %s\n", b.op.err);
		memset(b.secret, 0, sizeof(b.secret));
		return 1;
	}
	printf("%s\n", b.secret);
	fflush(stdout);
	memset(b.secret, 0, sizeof(b.secret));
	fprintf(stderr,
		"hf-coordinator: made token %s (\"%s\", role %s); it is shown only this once: keep it in a file "
		"of mode 0600\n",
		b.token.id, b.token.name, b.token.role);
	return 0;
}

static int load_registry(struct coord *c)
{
	char err[1024];
	int r;

	if (c->conf.registry_path && c->conf.registry_path[0])
		r = registry_load_file(c->conf.registry_path, &c->reg, err, sizeof(err));
	else
		r = registry_parse(hf_embedded_registry, hf_embedded_registry_len, "built-in registry",
				   &c->reg, err, sizeof(err));
	if (r < 0)
		log_error("%s", err);
	else if ((r = locality_init(&c->locality, c->reg)) < 0)
		log_error("out of memory indexing the registry's models");
	return r;
}

/* The registry and its index of weights, as load_registry made them. */
static void unload_registry(struct coord *c)
{
	locality_fini(&c->locality);
	registry_free(c->reg);
	c->reg = NULL;
}

/* Every way out of main before the loop frees the settings (their strings
 * are allocated), so that --print-config, --version and a refused start
 * exit clean under LeakSanitizer. */
static int finish(struct coord *c, int code)
{
	hf_conf_fini(coord_conf_table, &c->conf);
	return code;
}

int main(int argc, char **argv)
{
	struct coord c = { 0 };
	enum hf_log_format format;
	int action, level, r;

	signal(SIGPIPE, SIG_IGN);
	if (load_config(&c, argc, argv, &action) < 0)
		return finish(&c, 2);
	if (action == 'h')
		return finish(&c, 0);
	if (action == OPT_VER) {
		printf("hf-coordinator %s (protocol %d)\n", HF_VERSION, HF_PROTOCOL_VERSION);
		return finish(&c, 0);
	}
	if (action == OPT_PRINT) {
		coord_conf_print(&c.conf, config_path, config_cmdline, stdout);
		return finish(&c, fflush(stdout) == 0 ? 0 : 1);
	}
	if (hf_log_level_parse(c.conf.log_level, &level) < 0) {
		fprintf(stderr, "hf-coordinator: invalid log level \"%s\" (error, warn, info, debug)\n",
			c.conf.log_level);
		return finish(&c, 2);
	}
	if (hf_log_format_parse(c.conf.log_format, &format) < 0) {
		fprintf(stderr, "hf-coordinator: invalid log format \"%s\" (text, json)\n", c.conf.log_format);
		return finish(&c, 2);
	}
	if (check_config(&c.conf) < 0)
		return finish(&c, 2);
	hf_log_init("hf-coordinator", level);
	hf_log_daemon(format);
	if (action == OPT_CREATE_TOKEN)
		return finish(&c, create_token(&c));
	if (action == OPT_CHECK) {
		if (load_registry(&c) < 0)
			return finish(&c, 1);
		printf("%zu models\n", c.reg->n);
		unload_registry(&c);
		return finish(&c, 0);
	}

	if (load_registry(&c) < 0)
		return finish(&c, 2);
	char err[1024];
	if (coord_tls_setup(&c.conf, &c.tls, err, sizeof(err)) < 0) {
		log_error("%s", err);
		unload_registry(&c);
		return finish(&c, 2);
	}
	nofile_check(&c.conf);
	c.sched = sched_new();
	c.loop = uv_default_loop();
	if (!c.sched) {
		log_error("out of memory");
		return finish(&c, 1);
	}
	uv_timer_init(c.loop, &c.lease_timer);
	c.lease_timer.data = &c;
	worker_api_open(&c);
	uv_timer_init(c.loop, &c.telemetry_timer);
	c.telemetry_timer.data = &c;
	uv_signal_init(c.loop, &c.sig_term);
	uv_signal_init(c.loop, &c.sig_int);
	c.sig_term.data = c.sig_int.data = &c;
	uv_signal_start(&c.sig_term, signal_cb, SIGTERM);
	uv_signal_start(&c.sig_int, signal_cb, SIGINT);
	if (coord_sd_open(&c) < 0) {
		log_error("out of memory");
		return 1;
	}

	r = db_open(c.loop, c.conf.conninfo, &c.db);
	if (r < 0) {
		log_error("could not start the database thread: %s", strerror(-r));
		return 1;
	}
	db_set_result_gather(c.db, c.conf.result_gather_ms * 1000);
	/* It connects when the first job comes; without it db writes jobs. */
	if (db_open(c.loop, c.conf.conninfo, &c.db_jobs) < 0)
		c.db_jobs = NULL;
	else
		db_set_name(c.db_jobs, "hf-coordinator jobs");
	/* It connects when the first group of results is split; without it
	 * db stores them all. */
	if (c.conf.result_connections > 1 && db_open(c.loop, c.conf.conninfo, &c.db_results) == 0)
		db_set_result_lane(c.db, c.db_results);
	if (coord_metrics_init(&c) < 0) {
		log_error("out of memory");
		return 1;
	}
	struct db_op *start = calloc(1, sizeof(*start));
	if (!start) {
		log_error("out of memory");
		return 1;
	}
	start->kind = DB_OP_START;
	start->u.start.reg = c.reg;
	start->done = start_done;
	start->ctx = &c;
	log_info("hf-coordinator %s starting: %zu models in the registry", HF_VERSION, c.reg->n);
	db_submit(c.db, start);

	uv_run(c.loop, UV_RUN_DEFAULT);
	uv_run(c.loop, UV_RUN_NOWAIT); /* close callbacks */
	uv_loop_close(c.loop);

	coord_metrics_fini(&c);
	coord_workers_free(&c);
	coord_drains_free(&c);
	coord_auth_fini(&c);
	health_fini(&c.health);
	sched_free(c.sched);
	unload_registry(&c);
	if (c.tls)
		nng_tls_config_free(c.tls);
	hf_conf_fini(coord_conf_table, &c.conf);
	log_info("stopped");
	return c.exit_code;
}
