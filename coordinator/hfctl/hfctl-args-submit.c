/* SPDX-License-Identifier: MIT
 *
 * The options of "hfctl submit" (see hfctl-args.h): their table, reading
 * them, turning the lists into values with their defaults, the checks
 * across options, the SubmitRequest built from them, and the check of the
 * models against the registry.  The parsing machinery they use (lists,
 * numbers, durations, sizes, requirements, getopt messages) is in
 * hfctl-args.c; the suggestions for mistyped names in hfctl-suggest.c.
 */
#include "hfctl-args.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_conf.h"
#include "hf_util.h"
#include "hf_validate.h"
#include "hfctl-suggest.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* common/ has hf_precision_valid but no list of the names: keep this in step
 * with it. */
#define PRECISION_NAMES "fp32, fp16, bf16, int8"

static void kind_names(char *buf, size_t len)
{
	snprintf(buf, len, "%s, %s", hf_kind_name(HF__TASK_KIND__KIND_TEST),
		 hf_kind_name(HF__TASK_KIND__KIND_BENCHMARK));
}

/* ---- submit ---- */

enum {
	OPT_MODELS = 256,
	OPT_FAMILY,
	OPT_ALL,
	OPT_SUITE,
	OPT_BACKENDS,
	OPT_KIND,
	OPT_BATCH_SIZES,
	OPT_PRECISION,
	OPT_MODE,
	OPT_SEQ_LEN,
	OPT_PRIORITY,
	OPT_TASK_TIMEOUT,
	OPT_OLD_TIMEOUT,
	OPT_ITERATIONS,
	OPT_WARMUP,
	OPT_NAME,
	OPT_SUBMITTER,
	OPT_REQUEST_ID,
	OPT_WATCH,
	OPT_JSON,
	OPT_MIN_MEMORY,
	OPT_MIN_CC,
	OPT_GFX,
	OPT_LABEL,
	OPT_RUNTIME,
	OPT_DEVICES_PER_TASK,
	OPT_ALLOW_WAITING,
	OPT_MAX_RUNNING,
	OPT_MAX_RETRIES,
	OPT_FLAKY_RERUNS,
};

static const struct option submit_options[] = {
	{ "models", required_argument, NULL, OPT_MODELS },
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "suite", required_argument, NULL, OPT_SUITE },
	{ "backends", required_argument, NULL, OPT_BACKENDS },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "batch-sizes", required_argument, NULL, OPT_BATCH_SIZES },
	{ "precision", required_argument, NULL, OPT_PRECISION },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "seq-len", required_argument, NULL, OPT_SEQ_LEN },
	{ "priority", required_argument, NULL, OPT_PRIORITY },
	{ "task-timeout", required_argument, NULL, OPT_TASK_TIMEOUT },
	{ "iterations", required_argument, NULL, OPT_ITERATIONS },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "submitter", required_argument, NULL, OPT_SUBMITTER },
	{ "request-id", required_argument, NULL, OPT_REQUEST_ID },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "min-memory", required_argument, NULL, OPT_MIN_MEMORY },
	{ "min-compute-capability", required_argument, NULL, OPT_MIN_CC },
	{ "gfx", required_argument, NULL, OPT_GFX },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "runtime", required_argument, NULL, OPT_RUNTIME },
	{ "devices-per-task", required_argument, NULL, OPT_DEVICES_PER_TASK },
	{ "allow-waiting", no_argument, NULL, OPT_ALLOW_WAITING },
	{ "max-running", required_argument, NULL, OPT_MAX_RUNNING },
	{ "max-retries", required_argument, NULL, OPT_MAX_RETRIES },
	{ "flaky-reruns", required_argument, NULL, OPT_FLAKY_RERUNS },
	{ "help", no_argument, NULL, 'h' },
	/* The old spelling of --task-timeout, kept for a release. */
	{ "timeout", required_argument, NULL, OPT_OLD_TIMEOUT },
	{ 0 },
};

/* The lists as given, before they are turned into values. */
struct submit_text {
	struct hfctl_list backends, kinds, batch_sizes, seq_lens;
	const char *name, *submitter;
};

static int submit_options_read(int argc, char **argv, struct hfctl_submit *s,
			       struct submit_text *t, char *err, size_t errlen)
{
	int64_t v;
	int c, r = 0;

	optind = 0; /* glibc: start afresh, also after an earlier parse */
	opterr = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":h", submit_options, NULL)) != -1) {
		switch (c) {
		case OPT_MODELS:
			r = hfctl_list_split(&s->models, "--models", optarg, err, errlen);
			break;
		case OPT_FAMILY:
			r = hfctl_list_split(&s->families, "--family", optarg, err, errlen);
			break;
		case OPT_ALL:
			s->all_models = true;
			break;
		case OPT_SUITE:
			if (!hf_suite_name_valid(optarg, strlen(optarg))) {
				snprintf(err, errlen,
					 "invalid value \"%.64s\" for --suite: 1 to %d of a-z 0-9 _ . - (\"hfctl models\" lists the suites)",
					 optarg, HF_SUITE_MAX - 1);
				r = -EINVAL;
			} else {
				snprintf(s->suite, sizeof(s->suite), "%s", optarg);
			}
			break;
		case OPT_BACKENDS:
			r = hfctl_list_split(&t->backends, "--backends", optarg, err, errlen);
			break;
		case OPT_KIND:
			r = hfctl_list_split(&t->kinds, "--kind", optarg, err, errlen);
			break;
		case OPT_BATCH_SIZES:
			r = hfctl_list_split(&t->batch_sizes, "--batch-sizes", optarg, err, errlen);
			break;
		case OPT_MODE:
			r = hfctl_list_split(&s->modes, "--mode", optarg, err, errlen);
			break;
		case OPT_PRECISION:
			r = hfctl_list_split(&s->precisions, "--precision", optarg, err, errlen);
			break;
		case OPT_SEQ_LEN:
			r = hfctl_list_split(&t->seq_lens, "--seq-len", optarg, err, errlen);
			break;
		case OPT_PRIORITY:
			r = hfctl_parse_int("--priority", optarg, HFCTL_PRIORITY_MIN, HFCTL_PRIORITY_MAX,
					    &v, err, errlen);
			if (r == 0)
				s->priority = (int32_t)v;
			break;
		case OPT_OLD_TIMEOUT:
			s->old_timeout = true;
			/* fall through */
		case OPT_TASK_TIMEOUT:
			r = hfctl_parse_duration("--task-timeout", optarg, 1000, &v, err, errlen);
			if (r == 0 && v > (int64_t)HFCTL_TASK_TIMEOUT_MAX_S * 1000) {
				snprintf(err, errlen,
					 "invalid value \"%s\" for --task-timeout: must be at most 24h",
					 optarg);
				r = -EINVAL;
			}
			if (r == 0)
				s->timeout_s = (uint32_t)((v + 999) / 1000);
			break;
		case OPT_ITERATIONS:
			r = hfctl_parse_u32("--iterations", optarg, HFCTL_ITERATIONS_MAX, &s->iterations, err,
				      errlen);
			break;
		case OPT_WARMUP:
			r = hfctl_parse_u32("--warmup", optarg, HFCTL_ITERATIONS_MAX, &s->warmup, err, errlen);
			break;
		case OPT_NAME:
			t->name = optarg;
			break;
		case OPT_SUBMITTER:
			t->submitter = optarg;
			break;
		case OPT_REQUEST_ID:
			if (!hf_request_id_valid(optarg)) {
				snprintf(err, errlen,
					 "invalid value \"%.64s\" for --request-id: 1 to %d of A-Z a-z "
					 "0-9 . _ : -", optarg, HF_REQUEST_ID_MAX);
				r = -EINVAL;
			} else {
				snprintf(s->request_id, sizeof(s->request_id), "%s", optarg);
			}
			break;
		case OPT_WATCH:
			s->watch = true;
			break;
		case OPT_JSON:
			s->json = true;
			break;
		case OPT_MIN_MEMORY:
			r = hfctl_parse_size("--min-memory", optarg, &s->min_memory_bytes, err, errlen);
			break;
		case OPT_MIN_CC:
			r = hfctl_parse_compute_capability("--min-compute-capability", optarg,
							   s->min_compute_capability, err, errlen);
			break;
		case OPT_GFX:
			r = hfctl_list_split(&s->gfx_targets, "--gfx", optarg, err, errlen);
			break;
		case OPT_LABEL:
			r = hfctl_labels_add(&s->labels, "--label", optarg, err, errlen);
			break;
		case OPT_RUNTIME:
			r = hfctl_list_split(&s->runtimes, "--runtime", optarg, err, errlen);
			break;
		case OPT_DEVICES_PER_TASK:
			r = hfctl_parse_u32("--devices-per-task", optarg, HFCTL_DEVICES_PER_TASK_MAX,
				      &s->devices_per_task, err, errlen);
			break;
		case OPT_ALLOW_WAITING:
			s->allow_waiting = true;
			break;
		case OPT_MAX_RUNNING:
			r = hfctl_parse_u32("--max-running", optarg, HFCTL_MAX_RUNNING_MAX, &s->max_running,
				      err, errlen);
			break;
		case OPT_MAX_RETRIES:
			r = hfctl_parse_u32("--max-retries", optarg, HFCTL_MAX_RETRIES_MAX, &s->max_retries,
				      err, errlen);
			break;
		case OPT_FLAKY_RERUNS:
			r = hfctl_parse_u32("--flaky-reruns", optarg, HFCTL_FLAKY_RERUNS_MAX, &s->flaky_reruns,
				      err, errlen);
			break;
		case 'h':
			s->help = true;
			return 0;
		default:
			hfctl_getopt_error("submit", submit_options, c, argv, err, errlen);
			r = -EINVAL;
			break;
		}
	}
	if (r == 0)
		r = hfctl_no_args("submit", argc, argv, optind, err, errlen);
	return r;
}

static int submit_what_check(const struct hfctl_submit *s, char *err, size_t errlen)
{
	if (s->all_models && (s->models.n > 0 || s->families.n > 0)) {
		snprintf(err, errlen, "--all cannot be combined with --models or --family");
		return -EINVAL;
	}
	if (s->all_models && s->suite[0]) {
		snprintf(err, errlen, "--all cannot be combined with --suite (--all is the core suite)");
		return -EINVAL;
	}
	if (!s->all_models && s->models.n == 0 && s->families.n == 0 && !s->suite[0]) {
		snprintf(err, errlen, "nothing to run: give --models, --family, --suite or --all");
		return -EINVAL;
	}
	for (size_t i = 0; i < s->families.n; i++) {
		if (!hf_family_valid(s->families.items[i])) {
			hfctl_unknown_name("family", s->families.items[i], NULL, hf_family_names(), err,
					   errlen);
			return -EINVAL;
		}
	}
	return 0;
}

static int submit_backends_set(struct hfctl_submit *s, const struct hfctl_list *names, char *err,
			       size_t errlen)
{
	if (names->n == 0) {
		s->backends[0] = HF__BACKEND__BACKEND_CPU;
		s->n_backends = 1;
		return 0;
	}
	for (size_t i = 0; i < names->n; i++) {
		Hf__Backend b;

		if (hf_backend_parse(names->items[i], &b) < 0) {
			hfctl_unknown_name("backend", names->items[i], NULL, hf_backend_names(), err,
					   errlen);
			return -EINVAL;
		}
		/* The names are valid and distinct, so this is only reached by
		 * a backend added to the protocol but not to the array. */
		if (i == N_ELEM(s->backends)) {
			snprintf(err, errlen, "too many backends in --backends");
			return -EINVAL;
		}
		s->backends[i] = b;
	}
	s->n_backends = names->n;
	return 0;
}

static int submit_kinds_set(struct hfctl_submit *s, const struct hfctl_list *names, char *err,
			    size_t errlen)
{
	char valid[64];

	if (names->n == 0) {
		s->kinds[0] = HF__TASK_KIND__KIND_TEST;
		s->n_kinds = 1;
		return 0;
	}
	for (size_t i = 0; i < names->n; i++) {
		Hf__TaskKind k;

		if (hf_kind_parse(names->items[i], &k) < 0) {
			kind_names(valid, sizeof(valid));
			hfctl_unknown_name("kind", names->items[i], NULL, valid, err, errlen);
			return -EINVAL;
		}
		if (i == N_ELEM(s->kinds)) {
			snprintf(err, errlen, "too many kinds in --kind");
			return -EINVAL;
		}
		s->kinds[i] = k;
	}
	s->n_kinds = names->n;
	return 0;
}

/* The numbers of a list option, each 1..max and distinct; when the option
 * was not given, {dflt}, or none when dflt is 0. */
static int u32_list_set(const struct hfctl_list *texts, const char *option, uint32_t max,
			uint32_t dflt, uint32_t **ret, size_t *ret_n, char *err, size_t errlen)
{
	size_t n = texts->n ? texts->n : dflt ? 1 : 0;
	uint32_t *v = malloc((n ? n : 1) * sizeof(*v));

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v[0] = dflt;
	for (size_t i = 0; i < texts->n; i++) {
		int r = hfctl_parse_u32(option, texts->items[i], max, &v[i], err, errlen);
		if (r < 0) {
			free(v);
			return r;
		}
		/* The texts are distinct, but "8" and "08" are the same number. */
		for (size_t j = 0; j < i; j++) {
			if (v[j] == v[i]) {
				snprintf(err, errlen, "\"%s\" is listed twice in %s", texts->items[i],
					 option);
				free(v);
				return -EINVAL;
			}
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int submit_precisions_check(struct hfctl_submit *s, char *err, size_t errlen)
{
	if (s->precisions.n == 0)
		return hfctl_list_split(&s->precisions, "--precision", "fp32", err, errlen);
	for (size_t i = 0; i < s->precisions.n; i++) {
		if (!hf_precision_valid(s->precisions.items[i])) {
			hfctl_unknown_name("precision", s->precisions.items[i], NULL, PRECISION_NAMES,
					   err, errlen);
			return -EINVAL;
		}
	}
	return 0;
}

/* Benchmark modes: hf_mode_list's names, or "all" alone for every one. */
static int submit_modes_check(struct hfctl_submit *s, char *err, size_t errlen)
{
	bool all = false;

	for (size_t i = 0; i < s->modes.n; i++) {
		if (strcmp(s->modes.items[i], "all") == 0) {
			all = true;
		} else if (!hf_mode_valid(s->modes.items[i])) {
			hfctl_unknown_name("mode", s->modes.items[i], "--mode", "eager, cuda-graph, compile, all",
					   err, errlen);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s->modes.items[j], s->modes.items[i]) == 0) {
				snprintf(err, errlen, "invalid value for --mode: %s is given twice",
					 s->modes.items[i]);
				return -EINVAL;
			}
		}
	}
	if (!all)
		return 0;
	if (s->modes.n > 1) {
		snprintf(err, errlen, "invalid value for --mode: all is every mode, give it alone");
		return -EINVAL;
	}
	hfctl_list_fini(&s->modes);
	return hfctl_list_split(&s->modes, "--mode", "eager,cuda-graph,compile", err, errlen);
}

static bool backends_have(const struct hfctl_submit *s, Hf__Backend b)
{
	for (size_t i = 0; i < s->n_backends; i++)
		if (s->backends[i] == b)
			return true;
	return false;
}

/* The requirements that are lists are checked item by item here (the
 * others as they were read), and those that only one backend's devices can
 * meet are refused without that backend: every task of the job would wait
 * for a device that does not exist. */
static int submit_requirements_check(const struct hfctl_submit *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->gfx_targets.n; i++)
		if (hfctl_gfx_target_check("--gfx", s->gfx_targets.items[i], err, errlen) < 0)
			return -EINVAL;
	for (size_t i = 0; i < s->runtimes.n; i++)
		if (hfctl_runtime_spec_check("--runtime", s->runtimes.items[i], err, errlen) < 0)
			return -EINVAL;
	if (s->min_compute_capability[0] && !backends_have(s, HF__BACKEND__BACKEND_CUDA)) {
		snprintf(err, errlen,
			 "--min-compute-capability applies to cuda devices, but --backends does not "
			 "include cuda");
		return -EINVAL;
	}
	if (s->gfx_targets.n > 0 && !backends_have(s, HF__BACKEND__BACKEND_ROCM)) {
		snprintf(err, errlen, "--gfx applies to rocm devices, but --backends does not include rocm");
		return -EINVAL;
	}
	return 0;
}

static int submit_strings_set(struct hfctl_submit *s, const struct submit_text *t,
			      const char *default_submitter, char *err, size_t errlen)
{
	const char *submitter = t->submitter ? t->submitter : default_submitter ? default_submitter : "";

	if (t->submitter && t->submitter[0] == '\0') {
		snprintf(err, errlen, "invalid value \"\" for --submitter: must not be empty");
		return -EINVAL;
	}
	s->name = strdup(t->name ? t->name : "");
	s->submitter = strdup(submitter);
	if (!s->name || !s->submitter) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int hfctl_submit_parse(int argc, char **argv, const char *default_submitter,
		       struct hfctl_submit *ret, char *err, size_t errlen)
{
	struct hfctl_submit s = { 0 };
	struct submit_text t = { 0 };
	int r;

	r = submit_options_read(argc, argv, &s, &t, err, errlen);
	if (r < 0 || s.help)
		goto out;
	r = submit_what_check(&s, err, errlen);
	if (r < 0)
		goto out;
	r = submit_backends_set(&s, &t.backends, err, errlen);
	if (r < 0)
		goto out;
	r = submit_kinds_set(&s, &t.kinds, err, errlen);
	if (r < 0)
		goto out;
	r = u32_list_set(&t.batch_sizes, "--batch-sizes", HFCTL_BATCH_MAX, 1, &s.batch_sizes,
			 &s.n_batch_sizes, err, errlen);
	if (r == 0 && t.seq_lens.n > HFCTL_SEQ_LENS_MAX) {
		snprintf(err, errlen, "too many sequence lengths in --seq-len (%zu, at most %d)",
			 t.seq_lens.n, HFCTL_SEQ_LENS_MAX);
		r = -EINVAL;
	}
	if (r == 0)
		r = u32_list_set(&t.seq_lens, "--seq-len", HFCTL_SEQ_LEN_MAX, 0, &s.seq_lens,
				 &s.n_seq_lens, err, errlen);
	if (r < 0)
		goto out;
	r = submit_precisions_check(&s, err, errlen);
	if (r == 0)
		r = submit_modes_check(&s, err, errlen);
	if (r < 0)
		goto out;
	r = submit_requirements_check(&s, err, errlen);
	if (r < 0)
		goto out;
	r = submit_strings_set(&s, &t, default_submitter, err, errlen);

out:
	hfctl_list_fini(&t.backends);
	hfctl_list_fini(&t.kinds);
	hfctl_list_fini(&t.batch_sizes);
	hfctl_list_fini(&t.seq_lens);
	if (r < 0) {
		hfctl_submit_fini(&s);
		return r;
	}
	if (s.help) {
		hfctl_submit_fini(&s);
		s = (struct hfctl_submit){ .help = true };
	}
	*ret = s;
	return 0;
}

void hfctl_submit_fini(struct hfctl_submit *s)
{
	hfctl_list_fini(&s->models);
	hfctl_list_fini(&s->families);
	hfctl_list_fini(&s->precisions);
	hfctl_list_fini(&s->modes);
	hfctl_list_fini(&s->gfx_targets);
	hfctl_list_fini(&s->runtimes);
	hfctl_labels_fini(&s->labels);
	free(s->batch_sizes);
	free(s->seq_lens);
	s->seq_lens = NULL;
	free(s->name);
	free(s->submitter);
	s->batch_sizes = NULL;
	s->name = s->submitter = NULL;
}

void hfctl_submit_request(const struct hfctl_submit *s, Hf__SubmitRequest *req)
{
	*req = (Hf__SubmitRequest)HF__SUBMIT_REQUEST__INIT;
	req->n_models = s->models.n;
	req->models = s->models.items;
	req->n_families = s->families.n;
	req->families = s->families.items;
	req->all_models = s->all_models;
	req->suite = (char *)s->suite;
	req->n_backends = s->n_backends;
	req->backends = (Hf__Backend *)s->backends;
	req->n_kinds = s->n_kinds;
	req->kinds = (Hf__TaskKind *)s->kinds;
	req->n_batch_sizes = s->n_batch_sizes;
	req->batch_sizes = s->batch_sizes;
	req->n_precisions = s->precisions.n;
	req->precisions = s->precisions.items;
	req->n_modes = s->modes.n;
	req->modes = s->modes.items;
	req->priority = s->priority;
	req->submitter = s->submitter;
	/* One length goes as seq_len, which every coordinator reads; several as
	 * seq_lens. */
	if (s->n_seq_lens == 1) {
		req->seq_len = s->seq_lens[0];
	} else {
		req->n_seq_lens = s->n_seq_lens;
		req->seq_lens = s->seq_lens;
	}
	req->timeout_s = s->timeout_s;
	req->iterations = s->iterations;
	req->warmup = s->warmup;
	req->name = s->name;
	req->min_memory_bytes = s->min_memory_bytes;
	req->min_compute_capability = (char *)s->min_compute_capability;
	req->n_gfx_targets = s->gfx_targets.n;
	req->gfx_targets = s->gfx_targets.items;
	req->n_labels = s->labels.n;
	req->labels = s->labels.refs;
	req->n_runtimes = s->runtimes.n;
	req->runtimes = s->runtimes.items;
	req->devices_per_task = s->devices_per_task;
	req->allow_waiting = s->allow_waiting;
	req->max_running = s->max_running;
	req->max_retries = s->max_retries;
	req->flaky_reruns = s->flaky_reruns;
	req->request_id = (char *)s->request_id;
}

/* ---- models against the registry ---- */

static bool registry_has(const Hf__ModelsReply *registry, const char *model)
{
	for (size_t i = 0; i < registry->n_models; i++)
		if (strcmp(registry->models[i]->model_type, model) == 0)
			return true;
	return false;
}

/* The registry's model closest to model, or NULL. */
static const char *registry_closest(const Hf__ModelsReply *registry, const char *model)
{
	struct hfctl_suggest sg;

	hfctl_suggest_init(&sg, model);
	for (size_t i = 0; i < registry->n_models; i++)
		hfctl_suggest_try(&sg, registry->models[i]->model_type,
				  strlen(registry->models[i]->model_type));
	return sg.best;
}

int hfctl_submit_check_models(const struct hfctl_submit *s, const Hf__ModelsReply *registry,
			      char *err, size_t errlen)
{
	/* Room kept for the words around the list and for " and N more". */
	const size_t list_max = errlen > 96 ? errlen - 96 : 0;
	const char *closest = NULL;
	struct hf_buf names;
	size_t unknown = 0, shown = 0;
	int r = 0;

	for (size_t i = 0; i < s->models.n; i++)
		unknown += !registry_has(registry, s->models.items[i]);
	if (unknown == 0)
		return 0;

	hf_buf_init(&names);
	for (size_t i = 0; i < s->models.n && shown < unknown; i++) {
		const char *m = s->models.items[i];
		size_t need;

		if (registry_has(registry, m))
			continue;
		/* Only the models shown get a suggestion, so the work is
		 * bounded by the room for the message. */
		closest = registry_closest(registry, m);
		need = strlen(m) + 4 + (closest ? strlen(closest) + 20 : 0);
		if (names.len + need > list_max)
			break;
		hf_buf_printf(&names, "%s\"%s\"", shown ? ", " : "", m);
		/* A single unknown model has its suggestion beside the hint. */
		if (closest && unknown > 1)
			hf_buf_printf(&names, " (did you mean \"%s\"?)", closest);
		shown++;
	}
	if (names.oom) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	if (shown < unknown)
		snprintf(err, errlen, "unknown models %s and %zu more (see \"hfctl models\")",
			 names.data ? names.data : "", unknown - shown);
	else if (unknown == 1 && closest)
		snprintf(err, errlen, "unknown model %s (did you mean \"%s\"? see \"hfctl models\")",
			 names.data, closest);
	else
		snprintf(err, errlen, "unknown model%s %s (see \"hfctl models\")", unknown > 1 ? "s" : "",
			 names.data);
	r = -ENOENT;

out:
	hf_buf_fini(&names);
	return r;
}
