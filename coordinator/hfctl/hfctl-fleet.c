/* SPDX-License-Identifier: MIT
 *
 * The commands about the fleet and the suite rather than one job: workers
 * (who is connected, with which devices and runtimes), devices (every
 * device with its live telemetry, and the backends workers found absent),
 * models (the registry), all read-only and printed as tables or JSON; and
 * drain and undrain, which take a worker or one device out of service (its
 * running work finishes, nothing new is assigned) and bring it back.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "hfctl-args.h"
#include "hfctl-format.h"
#include "hfctl-json.h"
#include "hfctl.h"

enum { OPT_JSON = 256, OPT_FAMILY, OPT_SUITE };

/* ---- workers ---- */

static const struct hfctl_column workers_columns[] = {
	{ "ID", false, 0 },      { "HOST", false, 0 },    { "VERSION", false, 0 },
	{ "CONNECTED", false, 0 }, { "DRAINED", false, 0 }, { "RUNNING", true, 0 },
	{ "DEVICES", false, 0 }, { "RUNTIMES", false, 0 }, { "LAST-SEEN", false, 0 },
};

#define WORKERS_NCOLS (sizeof(workers_columns) / sizeof(workers_columns[0]))

static int workers_table_print(Hf__WorkerInfo *const *workers, size_t n)
{
	struct hfctl_table *t = hfctl_table_new(workers_columns, WORKERS_NCOLS);
	double now = hf_wall_s();
	size_t connected = 0;
	struct hf_buf b;

	for (size_t i = 0; i < n; i++) {
		const Hf__WorkerInfo *w = workers[i];
		struct hf_buf devices, runtimes;
		char running[16], seen[48], connected_cell[48];
		struct hf_buf drained;

		hf_buf_init(&drained);
		hfctl_worker_drains_cell(w, &drained);
		hfctl_connected_format(w->connected, w->last_seen, connected_cell, sizeof(connected_cell));
		hf_buf_init(&devices);
		hf_buf_init(&runtimes);
		hfctl_devices_format(w->devices, w->n_devices, &devices);
		hfctl_runtimes_format(w->runtimes, w->n_runtimes, &runtimes);
		snprintf(running, sizeof(running), "%" PRIu32, w->running);
		hfctl_ago_format(now, w->last_seen, seen, sizeof(seen));

		/* A buffer that ran out of memory has no text: a NULL cell,
		 * shown empty; the table's own failures are reported below. */
		const char *cells[WORKERS_NCOLS] = {
			w->worker_id, w->hostname, w->software_version, connected_cell,
			drained.oom ? NULL : drained.data, running, devices.oom ? NULL : devices.data,
			runtimes.oom ? NULL : runtimes.data, seen,
		};
		hfctl_table_add(t, cells);
		hf_buf_fini(&drained);
		hf_buf_fini(&devices);
		hf_buf_fini(&runtimes);
		connected += w->connected;
	}
	hf_buf_init(&b);
	if (n > 0)
		hfctl_table_render(t, &b);
	hfctl_table_free(t);
	hf_buf_printf(&b, "%zu worker%s, %zu connected\n", n, n == 1 ? "" : "s", connected);
	/* Who drained what, and since when. */
	bool heading = false;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < workers[i]->n_drains; k++) {
			if (!heading)
				hf_buf_puts(&b, "drains:\n");
			heading = true;
			hf_buf_puts(&b, "  ");
			hfctl_drain_line_format(workers[i]->worker_id, workers[i]->drains[k], now, &b);
			hf_buf_puts(&b, "\n");
		}
	return hfctl_buf_print(&b);
}

static int workers_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__WorkersRequest req = HF__WORKERS_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	Hf__WorkersReply *list;
	int r;

	r = hfctl_json_options_read(&hfctl_cmd_workers, argc, argv, &json);
	if (r != HFCTL_GO_ON)
		return r;
	if (hfctl_no_args("workers", argc, argv, optind, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	env.body_case = HF__ENVELOPE__BODY_WORKERS;
	env.workers = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_WORKERS_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	list = reply->workers_reply;
	if (json)
		r = hfctl_json_print(hfctl_json_workers(list->workers, list->n_workers));
	else
		r = workers_table_print(list->workers, list->n_workers);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_workers = {
	.name = "workers",
	.summary = "list the workers the coordinator knows",
	.usage = "usage: hfctl workers [--json]\n"
		 "\n"
		 "Lists every worker with its host, software version, whether it is connected\n"
		 "(\"no, since TIME\": it has not polled within three heartbeats; it is given\n"
		 "nothing and a submit does not count on it), whether it is drained (\"yes\" for\n"
		 "the whole worker, else its drained devices), how many tasks it runs, its devices\n"
		 "(backend:index, \" xN\" for N slots) and runtimes, and when it was last heard\n"
		 "from.  Then each drain: who drained it and since when.\n"
		 "\n"
		 "  --json  an array of objects with every field the worker reported\n",
	.run = workers_run,
};

/* ---- devices ---- */

static int devices_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__DevicesRequest req = HF__DEVICES_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	struct hf_buf b;
	int r;

	r = hfctl_json_options_read(&hfctl_cmd_devices, argc, argv, &json);
	if (r != HFCTL_GO_ON)
		return r;
	if (hfctl_no_args("devices", argc, argv, optind, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	env.body_case = HF__ENVELOPE__BODY_DEVICES;
	env.devices = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_DEVICES_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	if (json) {
		r = hfctl_json_print(hfctl_json_devices(reply->devices_reply));
	} else {
		hf_buf_init(&b);
		hfctl_devices_table_format(reply->devices_reply, &b);
		r = hfctl_buf_print(&b);
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_devices = {
	.name = "devices",
	.summary = "list the fleet's devices with their telemetry",
	.usage = "usage: hfctl devices [--json]\n"
		 "\n"
		 "Lists every device of every worker the coordinator knows: its worker,\n"
		 "backend:index, name, memory, architecture (compute capability, gfx target or\n"
		 "arch; MIG when enabled), driver, the latest telemetry (utilisation, memory used,\n"
		 "temperature, power; \"-\" when not available), the tasks running on it and\n"
		 "whether its worker is connected.  Then the backends workers found absent, and\n"
		 "why.\n"
		 "\n"
		 "  --json  {\"devices\": [...], \"absent\": [...]} with every field; telemetry\n"
		 "          that is not available is null\n",
	.run = devices_run,
};

/* ---- drain and undrain ---- */

static int drain_target_run(struct hfctl_ctx *ctx, const struct hfctl_command *cmd, bool undrain,
			    int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	struct hfctl_drain_target target;
	Hf__DrainRequest req;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	struct hf_buf b;
	uint32_t n;
	int r;

	r = hfctl_json_options_read(cmd, argc, argv, &json);
	if (r != HFCTL_GO_ON)
		return r;
	if (hfctl_drain_arg(cmd->name, argc, argv, optind, &target, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	hfctl_drain_request(&target, undrain, &req);
	env.body_case = HF__ENVELOPE__BODY_DRAIN;
	env.drain = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_DRAIN_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	n = reply->drain_reply->devices;
	if (json) {
		r = hfctl_json_print(json_pack(
			"{s:s, s:o, s:o, s:b, s:I}", "worker_id", target.worker_id, "backend",
			target.one_device ? json_string(hf_backend_name(target.backend)) : json_null(),
			"index", target.one_device ? json_integer(target.index) : json_null(),
			"draining", !undrain, "devices", (json_int_t)n));
	} else {
		hf_buf_init(&b);
		hfctl_drain_format(&req, n, &b);
		r = hfctl_buf_print(&b);
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

static int drain_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	return drain_target_run(ctx, &hfctl_cmd_drain, false, argc, argv);
}

static int undrain_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	return drain_target_run(ctx, &hfctl_cmd_undrain, true, argc, argv);
}

const struct hfctl_command hfctl_cmd_drain = {
	.name = "drain",
	.summary = "stop assigning work to a worker or one device",
	.usage = "usage: hfctl drain WORKER[/BACKEND:INDEX] [--json]\n"
		 "\n"
		 "Takes a whole worker (gpu-07) or one of its devices (gpu-07/cuda:3) out of\n"
		 "service: the tasks running there finish, nothing new is assigned, until\n"
		 "\"hfctl undrain\".\n"
		 "\n"
		 "  --json  print {\"worker_id\", \"backend\", \"index\", \"draining\": true,\n"
		 "          \"devices\"}; backend and index are null for a whole worker\n"
		 "\n"
		 "exit status: 0 done, 1 no such worker or device, or the coordinator refused or\n"
		 "could not be reached, 2 bad usage (a malformed target).\n",
	.run = drain_run,
};

const struct hfctl_command hfctl_cmd_undrain = {
	.name = "undrain",
	.summary = "put a drained worker or device back in service",
	.usage = "usage: hfctl undrain WORKER[/BACKEND:INDEX] [--json]\n"
		 "\n"
		 "Reverses \"hfctl drain\": the worker (gpu-07) or device (gpu-07/cuda:3) takes\n"
		 "work again.\n"
		 "\n"
		 "  --json  print {\"worker_id\", \"backend\", \"index\", \"draining\": false,\n"
		 "          \"devices\"}; backend and index are null for a whole worker\n"
		 "\n"
		 "exit status: 0 done, 1 no such worker or device, or the coordinator refused or\n"
		 "could not be reached, 2 bad usage (a malformed target).\n",
	.run = undrain_run,
};

/* ---- models ---- */

static const struct hfctl_column models_columns[] = {
	{ "MODEL", false, 0 },    { "FAMILY", false, 0 }, { "TASK", false, 0 },
	{ "MODALITY", false, 0 }, { "SIZE", false, 0 },   { "HF-ID", false, 0 },
	{ "SUITES", false, 0 },   { "LIMITS", false, 0 },
};

#define MODELS_NCOLS (sizeof(models_columns) / sizeof(models_columns[0]))

/* Whether m is in the suite: "all", its family, or one of its named suites. */
static bool model_in_suite(const Hf__ModelInfo *m, const char *suite)
{
	if (strcmp(suite, "all") == 0 || strcmp(suite, m->family) == 0)
		return true;
	for (size_t i = 0; i < m->n_suites; i++)
		if (strcmp(m->suites[i], suite) == 0)
			return true;
	return false;
}

/* The suites a submit may name: "all", the named ones, the families. */
static void suites_list(const Hf__ModelsReply *list, struct hf_buf *out)
{
	hf_buf_printf(out, "all");
	for (size_t i = 0; i < list->n_suites; i++)
		hf_buf_printf(out, ", %s", list->suites[i]);
	hf_buf_printf(out, ", %s", hf_family_names());
}

static bool suite_known(const Hf__ModelsReply *list, const char *suite)
{
	if (strcmp(suite, "all") == 0 || hf_family_valid(suite))
		return true;
	for (size_t i = 0; i < list->n_suites; i++)
		if (strcmp(list->suites[i], suite) == 0)
			return true;
	return false;
}

static int models_table_print(const Hf__ModelsReply *list, Hf__ModelInfo *const *models, size_t n,
			      const char *suite)
{
	struct hfctl_table *t = hfctl_table_new(models_columns, MODELS_NCOLS);
	struct hf_buf b, limits, suites;
	size_t n_limited = 0;

	for (size_t i = 0; i < n; i++) {
		const Hf__ModelInfo *m = models[i];
		hf_buf_init(&limits);
		hf_buf_init(&suites);
		hfctl_model_limits_format(m, &limits);
		for (size_t j = 0; j < m->n_suites; j++)
			hf_buf_printf(&suites, "%s%s", j ? "," : "", m->suites[j]);
		const char *cells[MODELS_NCOLS] = {
			m->model_type,		     m->family,
			hfctl_dash(m->task),	     hfctl_dash(m->modality),
			hfctl_dash(m->size_class), hfctl_dash(m->hf_id),
			suites.oom ? "?" : hfctl_dash(suites.data),
			limits.oom ? "?" : limits.data,
		};
		hfctl_table_add(t, cells);
		hf_buf_fini(&limits);
		hf_buf_fini(&suites);
		n_limited += m->n_limits > 0;
	}
	hf_buf_init(&b);
	if (n > 0)
		hfctl_table_render(t, &b);
	hfctl_table_free(t);
	hf_buf_printf(&b, "%zu model%s", n, n == 1 ? "" : "s");
	if (suite)
		hf_buf_printf(&b, " in the suite %s", suite);
	if (list->transformers_version[0])
		hf_buf_printf(&b, "; the registry was built from transformers %s", list->transformers_version);
	hf_buf_printf(&b, "\nsuites (hfctl submit --suite NAME): ");
	suites_list(list, &b);
	hf_buf_printf(&b, "\n");
	/* The reasons under the table: a mark says why, not only where. */
	if (n_limited > 0)
		hf_buf_printf(&b, "\n%zu with limits (they still run when submitted):\n", n_limited);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < models[i]->n_limits; j++) {
			const Hf__ModelLimit *l = models[i]->limits[j];
			hf_buf_printf(&b, "  %s ", models[i]->model_type);
			hfctl_limit_scope(l->backend, l->kind, &b);
			hf_buf_printf(&b, ": %s\n", l->reason);
		}
	}
	return hfctl_buf_print(&b);
}

static const struct option models_options[] = {
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "suite", required_argument, NULL, OPT_SUITE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int models_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__ModelsRequest req = HF__MODELS_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	const char *suite = NULL;
	Hf__ModelsReply *list;
	Hf__ModelInfo **chosen;
	size_t n = 0;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", models_options, NULL)) != -1) {
		switch (c) {
		case OPT_FAMILY:
			if (!hf_family_valid(optarg)) {
				hfctl_unknown_name("family", optarg, NULL, hf_family_names(), err,
						   sizeof(err));
				return hfctl_usage_error(err);
			}
			req.family = optarg;
			break;
		case OPT_SUITE:
			suite = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_models);
		default:
			hfctl_getopt_error("models", models_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (hfctl_no_args("models", argc, argv, optind, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);

	env.body_case = HF__ENVELOPE__BODY_MODELS;
	env.models = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_MODELS_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	list = reply->models_reply;
	chosen = calloc(list->n_models + 1, sizeof(*chosen));
	if (!chosen) {
		hf_env_free(reply);
		hfctl_error("out of memory");
		return HFCTL_EXIT_FAILED;
	}
	for (size_t i = 0; i < list->n_models; i++)
		if (!suite || model_in_suite(list->models[i], suite))
			chosen[n++] = list->models[i];
	if (suite && !suite_known(list, suite)) {
		struct hf_buf names;
		hf_buf_init(&names);
		suites_list(list, &names);
		snprintf(err, sizeof(err), "unknown suite \"%.64s\" (valid: %s)", suite,
			 names.oom ? "?" : names.data);
		hf_buf_fini(&names);
		free(chosen);
		hf_env_free(reply);
		return hfctl_usage_error(err);
	}
	if (json)
		r = hfctl_json_print(hfctl_json_models(chosen, n));
	else
		r = models_table_print(list, chosen, n, suite);
	free(chosen);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_models = {
	.name = "models",
	.summary = "list the models in the coordinator's registry",
	.usage = "usage: hfctl models [--family F] [--suite NAME] [--json]\n"
		 "\n"
		 "Lists the registry: the model types \"hfctl submit --models\" accepts, with their\n"
		 "architecture family, task, input modality (the inputs the runner builds), size\n"
		 "class, default Hub id (\"-\": transformers records none), SUITES (the named\n"
		 "suites it is in beyond \"all\" and its family, e.g. core) and\n"
		 "LIMITS: where the registry marks the model as unable to run (\"*\" every\n"
		 "backend, \"cuda\" tests and benchmarks on cuda, \"cuda/benchmark\" one kind),\n"
		 "with the reasons listed under the table.  Limited models are not hidden: a job\n"
		 "that names them still runs them.  Under the table: the transformers version the\n"
		 "registry was built from, and the suites \"hfctl submit --suite\" takes.\n"
		 "\n"
		 "  --family F    only this family: encoder-only, decoder-only, encoder-decoder,\n"
		 "                vision, vision-text, speech, multimodal, diffusion,\n"
		 "                mixture-of-experts, state-space, rag\n"
		 "  --suite NAME  only this suite's models: all, core, a family, or another\n"
		 "                suite listed under the table\n"
		 "  --json        an array of objects with every field (\"suites\": every suite\n"
		 "                the model is in)\n",
	.run = models_run,
};
