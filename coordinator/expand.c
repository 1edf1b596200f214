/* SPDX-License-Identifier: MIT
 *
 * Job expansion (see expand.h).
 */
#include "expand.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hf_proto.h"
#include "hf_util.h"

static const char *const precision_names[] = { "fp32", "fp16", "bf16", "int8" };

static const char *precision_static(const char *s)
{
	for (size_t i = 0; i < sizeof(precision_names) / sizeof(precision_names[0]); i++)
		if (strcmp(precision_names[i], s) == 0)
			return precision_names[i];
	return NULL;
}

/* values[0..n) into out (room for cap), in order without duplicates, each
 * 1..max; what names one value in messages ("batch size"). */
static int distinct_u32(const uint32_t *values, size_t n, uint32_t max, const char *what,
			uint32_t *out, size_t cap, size_t *ret_n, char *err, size_t errlen)
{
	size_t k = 0;

	if (n > cap) {
		snprintf(err, errlen, "too many %ss (%zu, at most %zu)", what, n, cap);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		if (values[i] == 0 || values[i] > max) {
			snprintf(err, errlen, "%s %u is outside 1 .. %u", what, values[i], max);
			return -EINVAL;
		}
		for (size_t j = 0; j < k; j++)
			dup |= out[j] == values[i];
		if (!dup)
			out[k++] = values[i];
	}
	*ret_n = k;
	return 0;
}

/* How many of the job's modes a kind runs: each, for a benchmark; a test
 * ignores the mode and runs once (eager). */
static size_t mode_count(Hf__TaskKind kind, size_t n_mode)
{
	return kind == HF__TASK_KIND__KIND_BENCHMARK ? n_mode : 1;
}

/* How many of the job's sequence lengths a (model, kind) runs: each, for
 * a benchmark of a model with text input (the runner caps a test's
 * sequence, and image, audio and time-series inputs have no sequence
 * length of their own); else only the first. */
static size_t seq_count(const struct reg_model *m, Hf__TaskKind kind, size_t n_seq)
{
	if (kind == HF__TASK_KIND__KIND_BENCHMARK && strstr(m->modality, "text"))
		return n_seq;
	return 1;
}

static char *spec_json(const Hf__SubmitRequest *req, const struct job_plan *plan,
		       const bool *picked, size_t n_models, const struct registry *reg)
{
	json_t *o = json_object(), *a;
	char *out;

	a = json_array();
	for (size_t i = 0; i < n_models; i++)
		if (picked[i])
			json_array_append_new(a, json_string(reg->models[i].model_type));
	json_object_set_new(o, "models", a);
	a = json_array();
	for (size_t i = 0; i < req->n_families; i++)
		json_array_append_new(a, json_string(req->families[i]));
	json_object_set_new(o, "families", a);
	json_object_set_new(o, "all_models", json_boolean(req->all_models));
	if (req->suite && req->suite[0])
		json_object_set_new(o, "suite", json_string(req->suite));
	a = json_array();
	for (size_t i = 0; i < req->n_backends; i++)
		json_array_append_new(a, json_string(hf_backend_name(req->backends[i])));
	if (req->n_backends == 0)
		json_array_append_new(a, json_string("cpu"));
	json_object_set_new(o, "backends", a);
	a = json_array();
	for (size_t i = 0; i < req->n_kinds; i++)
		json_array_append_new(a, json_string(hf_kind_name(req->kinds[i])));
	if (req->n_kinds == 0)
		json_array_append_new(a, json_string("test"));
	json_object_set_new(o, "kinds", a);
	a = json_array();
	for (size_t i = 0; i < req->n_batch_sizes; i++)
		json_array_append_new(a, json_integer(req->batch_sizes[i]));
	if (req->n_batch_sizes == 0)
		json_array_append_new(a, json_integer(1));
	json_object_set_new(o, "batch_sizes", a);
	a = json_array();
	for (size_t i = 0; i < req->n_precisions; i++)
		json_array_append_new(a, json_string(req->precisions[i]));
	if (req->n_precisions == 0)
		json_array_append_new(a, json_string("fp32"));
	json_object_set_new(o, "precisions", a);
	if (req->n_modes > 0) {
		a = json_array();
		for (size_t i = 0; i < req->n_modes; i++)
			json_array_append_new(a, json_string(req->modes[i]));
		json_object_set_new(o, "modes", a);
	}
	json_object_set_new(o, "seq_len", json_integer(plan->seq_lens[0]));
	if (plan->n_seq_lens > 1) {
		a = json_array();
		for (size_t i = 0; i < plan->n_seq_lens; i++)
			json_array_append_new(a, json_integer(plan->seq_lens[i]));
		json_object_set_new(o, "seq_lens", a);
	}
	json_object_set_new(o, "timeout_s", json_integer(plan->timeout_s));
	json_object_set_new(o, "iterations", json_integer(plan->iterations));
	json_object_set_new(o, "warmup", json_integer(plan->warmup));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

int expand_job(const struct registry *reg, const Hf__SubmitRequest *req, size_t max_tasks,
	       struct job_plan **ret_plan, Hf__ErrorCode *ret_code, char *err, size_t errlen)
{
	struct job_plan *plan = NULL;
	bool *picked = NULL;
	struct hf_buf unknown;
	size_t n_models = 0, n_back, n_kind, n_batch, n_prec, n_mode, total;
	Hf__Backend backends[8];
	Hf__TaskKind kinds[4];
	uint32_t batches[64], seqs[EXPAND_MAX_SEQ_LENS];
	size_t n_seq;
	const char *precs[8];
	const char *modes[HF_MODE_COUNT];
	int r = -EINVAL;

	*ret_code = HF__ERROR_CODE__ERR_BAD_REQUEST;
	hf_buf_init(&unknown);

	bool suite = req->suite && req->suite[0];
	if (!req->all_models && req->n_models == 0 && req->n_families == 0 && !suite) {
		snprintf(err, errlen, "no models selected: name models, families, a suite, or the whole suite");
		goto fail;
	}
	if (req->all_models && (req->n_models || req->n_families)) {
		snprintf(err, errlen, "the whole suite was asked for together with a model or family list");
		goto fail;
	}
	if (req->priority < EXPAND_PRIORITY_MIN || req->priority > EXPAND_PRIORITY_MAX) {
		snprintf(err, errlen, "priority %d is outside %d .. %d", req->priority,
			 EXPAND_PRIORITY_MIN, EXPAND_PRIORITY_MAX);
		goto fail;
	}
	if (req->max_retries > EXPAND_MAX_RETRIES) {
		snprintf(err, errlen, "%u retries is more than %d", req->max_retries, EXPAND_MAX_RETRIES);
		goto fail;
	}
	if (req->flaky_reruns > EXPAND_MAX_FLAKY_RERUNS) {
		snprintf(err, errlen, "%u flaky reruns is more than %d", req->flaky_reruns,
			 EXPAND_MAX_FLAKY_RERUNS);
		goto fail;
	}
	if (req->max_running > EXPAND_MAX_RUNNING) {
		snprintf(err, errlen, "a cap of %u running tasks is more than %d", req->max_running,
			 EXPAND_MAX_RUNNING);
		goto fail;
	}
	if (req->request_id && *req->request_id && !hf_request_id_valid(req->request_id)) {
		snprintf(err, errlen,
			 "request id \"%.64s%s\" is not 1 to %d of the characters A-Z a-z 0-9 . _ : -",
			 req->request_id, strlen(req->request_id) > 64 ? "..." : "",
			 HF_REQUEST_ID_MAX);
		goto fail;
	}
	if (req->seq_len > EXPAND_MAX_SEQ_LEN) {
		snprintf(err, errlen, "sequence length %u is larger than %d", req->seq_len,
			 EXPAND_MAX_SEQ_LEN);
		goto fail;
	}
	if (req->seq_len && req->n_seq_lens) {
		snprintf(err, errlen, "a sequence length and a list of them were both given");
		goto fail;
	}
	if (distinct_u32(req->seq_lens, req->n_seq_lens, EXPAND_MAX_SEQ_LEN, "sequence length", seqs,
			 EXPAND_MAX_SEQ_LENS, &n_seq, err, errlen) < 0)
		goto fail;
	if (n_seq == 0)
		seqs[n_seq++] = req->seq_len ? req->seq_len : EXPAND_DEFAULT_SEQ_LEN;

	picked = calloc(reg->n ? reg->n : 1, sizeof(*picked));
	if (!picked) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < req->n_models; i++) {
		long idx = registry_find(reg, req->models[i]);
		if (idx < 0) {
			hf_buf_printf(&unknown, "%s\"%s\"", unknown.len ? ", " : "", req->models[i]);
			continue;
		}
		picked[idx] = true;
	}
	if (unknown.len) {
		*ret_code = HF__ERROR_CODE__ERR_UNKNOWN_MODEL;
		snprintf(err, errlen, "unknown model%s %s: the registry has no such model type",
			 strchr(unknown.data, ',') ? "s" : "", unknown.data);
		goto fail;
	}
	/* --all and --family choose from the default suite (core): the models
	 * they chose before the registry grew past it. */
	const char *scope = registry_default_suite(reg);
	if (suite && registry_suite_pick(reg, req->suite, picked, err, errlen) < 0) {
		*ret_code = HF__ERROR_CODE__ERR_UNKNOWN_MODEL;
		goto fail;
	}
	for (size_t i = 0; i < req->n_families; i++) {
		if (!hf_family_valid(req->families[i])) {
			*ret_code = HF__ERROR_CODE__ERR_UNKNOWN_MODEL;
			snprintf(err, errlen, "unknown family \"%s\" (valid: %s)", req->families[i],
				 hf_family_names());
			goto fail;
		}
		for (size_t m = 0; m < reg->n; m++)
			if (strcmp(reg->models[m].family, req->families[i]) == 0 &&
			    registry_in_suite(&reg->models[m], scope))
				picked[m] = true;
	}
	for (size_t m = 0; m < reg->n; m++) {
		if (req->all_models && registry_in_suite(&reg->models[m], scope))
			picked[m] = true;
		n_models += picked[m];
	}
	if (n_models == 0) {
		*ret_code = HF__ERROR_CODE__ERR_UNKNOWN_MODEL;
		snprintf(err, errlen, "the selected families have no models in the registry");
		goto fail;
	}

	/* Each list: validated, duplicates dropped, a default when empty. */
	n_back = 0;
	for (size_t i = 0; i < req->n_backends; i++) {
		Hf__Backend b = req->backends[i];
		if (strcmp(hf_backend_name(b), "unknown") == 0) {
			snprintf(err, errlen, "unknown backend %d (valid: %s)", (int)b, hf_backend_names());
			goto fail;
		}
		bool dup = false;
		for (size_t j = 0; j < n_back; j++)
			dup |= backends[j] == b;
		if (!dup)
			backends[n_back++] = b;
	}
	if (n_back == 0)
		backends[n_back++] = HF__BACKEND__BACKEND_CPU;

	n_kind = 0;
	for (size_t i = 0; i < req->n_kinds; i++) {
		Hf__TaskKind k = req->kinds[i];
		if (strcmp(hf_kind_name(k), "unknown") == 0) {
			snprintf(err, errlen, "unknown task kind %d (valid: test, benchmark)", (int)k);
			goto fail;
		}
		bool dup = false;
		for (size_t j = 0; j < n_kind; j++)
			dup |= kinds[j] == k;
		if (!dup)
			kinds[n_kind++] = k;
	}
	if (n_kind == 0)
		kinds[n_kind++] = HF__TASK_KIND__KIND_TEST;

	if (distinct_u32(req->batch_sizes, req->n_batch_sizes, EXPAND_MAX_BATCH, "batch size", batches,
			 sizeof(batches) / sizeof(batches[0]), &n_batch, err, errlen) < 0)
		goto fail;
	if (n_batch == 0)
		batches[n_batch++] = 1;

	n_prec = 0;
	if (req->n_precisions > sizeof(precs) / sizeof(precs[0])) {
		snprintf(err, errlen, "too many precisions (%zu)", req->n_precisions);
		goto fail;
	}
	for (size_t i = 0; i < req->n_precisions; i++) {
		const char *p = precision_static(req->precisions[i]);
		if (!p) {
			snprintf(err, errlen, "unknown precision \"%s\" (valid: fp32, fp16, bf16, int8)",
				 req->precisions[i]);
			goto fail;
		}
		bool dup = false;
		for (size_t j = 0; j < n_prec; j++)
			dup |= precs[j] == p;
		if (!dup)
			precs[n_prec++] = p;
	}
	if (n_prec == 0)
		precs[n_prec++] = "fp32";

	n_mode = 0;
	if (req->n_modes > HF_MAX_SUBMIT_MODES) {
		snprintf(err, errlen, "too many modes (%zu, at most %d)", req->n_modes, HF_MAX_SUBMIT_MODES);
		goto fail;
	}
	for (size_t i = 0; i < req->n_modes; i++) {
		const char *md = hf_mode_static(req->modes[i]);
		if (!md) {
			snprintf(err, errlen, "unknown mode \"%.32s\" (valid: %s)", req->modes[i], hf_mode_names());
			goto fail;
		}
		bool dup = false;
		for (size_t j = 0; j < n_mode; j++)
			dup |= modes[j] == md;
		if (!dup)
			modes[n_mode++] = md;
	}
	if (n_mode == 0)
		modes[n_mode++] = "eager";

	total = 0;
	for (size_t m = 0; m < reg->n; m++)
		for (size_t k = 0; picked[m] && k < n_kind; k++)
			total += n_back * seq_count(&reg->models[m], kinds[k], n_seq) * n_batch * n_prec *
				 mode_count(kinds[k], n_mode);
	if (total > max_tasks) {
		snprintf(err, errlen, "the job would have %zu tasks, more than the limit of %zu", total,
			 max_tasks);
		goto fail;
	}

	plan = calloc(1, sizeof(*plan));
	if (!plan || !(plan->tasks = calloc(total, sizeof(*plan->tasks)))) {
		r = -ENOMEM;
		goto fail;
	}
	plan->priority = req->priority;
	plan->submitter = strdup(req->submitter && *req->submitter ? req->submitter : "unknown");
	plan->name = strdup(req->name ? req->name : "");
	if (req->request_id && *req->request_id && !(plan->request_id = strdup(req->request_id))) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(plan->seq_lens, seqs, n_seq * sizeof(seqs[0]));
	plan->n_seq_lens = n_seq;
	plan->timeout_s = req->timeout_s;
	plan->iterations = req->iterations ? req->iterations : EXPAND_DEFAULT_ITERATIONS;
	plan->warmup = req->warmup ? req->warmup : EXPAND_DEFAULT_WARMUP;
	plan->max_running = req->max_running;
	plan->max_retries = req->max_retries ? req->max_retries : EXPAND_DEFAULT_MAX_RETRIES;
	plan->flaky_reruns = req->flaky_reruns;
	for (size_t m = 0; m < reg->n; m++) {
		if (!picked[m])
			continue;
		for (size_t b = 0; b < n_back; b++)
			for (size_t k = 0; k < n_kind; k++)
				for (size_t q = 0; q < seq_count(&reg->models[m], kinds[k], n_seq); q++)
					for (size_t s = 0; s < n_batch; s++)
						for (size_t p = 0; p < n_prec; p++)
							for (size_t d = 0; d < mode_count(kinds[k], n_mode); d++)
								plan->tasks[plan->n_tasks++] = (struct task_spec){
									(uint32_t)m, backends[b], kinds[k],
									batches[s], precs[p], seqs[q],
									kinds[k] == HF__TASK_KIND__KIND_BENCHMARK ?
										modes[d] : "eager",
								};
	}
	for (size_t m = 0; m < reg->n; m++) {
		if (!picked[m] || reg->models[m].n_limits == 0)
			continue;
		for (size_t b = 0; b < n_back; b++) {
			for (size_t k = 0; k < n_kind; k++) {
				const struct reg_limit *l = registry_limit(&reg->models[m], backends[b], kinds[k]);
				if (!l)
					continue;
				struct plan_limited *nl = realloc(plan->limited,
								  (plan->n_limited + 1) * sizeof(*nl));
				if (!nl) {
					r = -ENOMEM;
					goto fail;
				}
				plan->limited = nl;
				plan->limited[plan->n_limited++] = (struct plan_limited){
					(uint32_t)m, backends[b], kinds[k], l->reason,
					(uint32_t)(seq_count(&reg->models[m], kinds[k], n_seq) * n_batch * n_prec *
						   mode_count(kinds[k], n_mode)),
				};
			}
		}
	}
	plan->spec_json = spec_json(req, plan, picked, reg->n, reg);
	if (!plan->submitter || !plan->name || !plan->spec_json) {
		r = -ENOMEM;
		goto fail;
	}
	free(picked);
	hf_buf_fini(&unknown);
	*ret_plan = plan;
	return 0;

fail:
	if (r == -ENOMEM) {
		*ret_code = HF__ERROR_CODE__ERR_INTERNAL;
		snprintf(err, errlen, "out of memory");
	}
	job_plan_free(plan);
	free(picked);
	hf_buf_fini(&unknown);
	return r;
}

void job_plan_free(struct job_plan *plan)
{
	if (!plan)
		return;
	free(plan->submitter);
	free(plan->name);
	free(plan->request_id);
	free(plan->tasks);
	free(plan->limited);
	free(plan->spec_json);
	free(plan);
}
