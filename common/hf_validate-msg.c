/* SPDX-License-Identifier: MIT
 *
 * The semantic pass of hf_msg_decode (see hf_validate.h): one function per
 * message type, on a message that passed the wire pass (so every string is
 * valid UTF-8 of bounded length, every list of bounded count and every enum
 * value a declared one).  What is checked here needs no state: ranges of
 * numbers, id alphabets, which enum values make sense where, duplicates.
 * Any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_validate-int.h"
#include "hf_validate.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- one value ---- */

static int check_u64(struct vctx *v, const char *name, uint64_t x, uint64_t min, uint64_t max)
{
	if (x >= min && x <= max)
		return 0;
	size_t old = vpath_push(v, name, -1);
	int r = vfail(v, -EINVAL, "%" PRIu64 " is outside %" PRIu64 " .. %" PRIu64, x, min, max);
	vpath_pop(v, old);
	return r;
}

static int check_i64(struct vctx *v, const char *name, int64_t x, int64_t min, int64_t max)
{
	if (x >= min && x <= max)
		return 0;
	size_t old = vpath_push(v, name, -1);
	int r = vfail(v, -EINVAL, "%" PRId64 " is outside %" PRId64 " .. %" PRId64, x, min, max);
	vpath_pop(v, old);
	return r;
}

static int check_double(struct vctx *v, const char *name, double x, double min, double max)
{
	if (isfinite(x) && x >= min && x <= max)
		return 0;
	size_t old = vpath_push(v, name, -1);
	int r = isfinite(x) ? vfail(v, -EINVAL, "%g is outside %g .. %g", x, min, max) :
			      vfail(v, -EINVAL, "%s is not a finite number", isnan(x) ? "NaN" : "infinity");
	vpath_pop(v, old);
	return r;
}

/* A point in time: 0 (not known) or a unix time PostgreSQL can store. */
static int check_time(struct vctx *v, const char *name, double t)
{
	return check_double(v, name, t, HF_TIME_MIN, HF_TIME_MAX);
}

/* An id of 1 to max characters (max <= HF_ID_MAX) of [A-Za-z0-9._:-];
 * empty is accepted when not required. */
static int check_id(struct vctx *v, const char *name, const char *s, bool required, size_t max)
{
	char shown[64];

	if ((!s || !*s) && !required)
		return 0;
	if (hf_id_valid(s) && strlen(s) <= max)
		return 0;
	size_t old = vpath_push(v, name, -1);
	int r = !s || !*s ? vfail(v, -EINVAL, "an id of 1 to %zu characters is required", max) :
			    vfail(v, -EINVAL, "\"%s\" is not an id (1 to %zu of A-Z a-z 0-9 . _ : -)",
				  hf_text_escape(shown, sizeof(shown), s, strlen(s)), max);
	vpath_pop(v, old);
	return r;
}

/* A worker id: the coordinator keeps it in 128-byte records. */
static int check_worker_id(struct vctx *v, const char *s)
{
	return check_id(v, "worker_id", s, true, HF_WORKER_ID_MAX);
}

/* A backend a device can have: cpu .. qnn, not "unspecified". */
static int check_backend(struct vctx *v, const char *name, Hf__Backend b)
{
	if (b >= HF__BACKEND__BACKEND_CPU && b <= HF__BACKEND__BACKEND_QNN)
		return 0;
	size_t old = vpath_push(v, name, -1);
	int r = vfail(v, -EINVAL, "%d is not a backend (1 to %d: %s)", (int)b, HF__BACKEND__BACKEND_QNN,
		      hf_backend_names());
	vpath_pop(v, old);
	return r;
}

static int check_device_index(struct vctx *v, const char *name, uint32_t index)
{
	return check_u64(v, name, index, 0, HF_DEVICE_INDEX_MAX);
}

static int check_task_ref(struct vctx *v, const Hf__TaskRef *t)
{
	int r = check_u64(v, "task_id", t->task_id, 1, HF_TASK_ID_MAX);
	if (r == 0)
		r = check_u64(v, "attempt", t->attempt, 1, HF_ATTEMPT_MAX);
	return r;
}

/* Runs check on each of list[0..n), as "name[i]". */
#define CHECK_EACH(v, name, list, n, check)                          \
	do {                                                          \
		for (size_t i_ = 0; i_ < (n); i_++) {                  \
			size_t old_ = vpath_push((v), (name), (long)i_); \
			int r_ = check((v), (list)[i_]);                \
			if (r_ < 0)                                     \
				return r_;                              \
			vpath_pop((v), old_);                           \
		}                                                       \
	} while (0)

/* ---- duplicates of (backend, index) ---- */

/* Is (b, index) of entry i the same as one of an entry before it?  The lists
 * are at most HF_MAX_DEVICES long, so the quadratic look is bounded
 * (128 * 127 / 2 comparisons). */
#define DUP_KEY(list, i, k) ((list)[k]->backend == (list)[i]->backend && (list)[k]->index == (list)[i]->index)

#define CHECK_NO_DUP_DEVICE(v, name, list, n)                                                      \
	do {                                                                                        \
		for (size_t i_ = 1; i_ < (n); i_++)                                                  \
			for (size_t k_ = 0; k_ < i_; k_++)                                           \
				if (DUP_KEY(list, i_, k_)) {                                          \
					size_t old_ = vpath_push((v), (name), (long)i_);               \
					int r_ = vfail((v), -EINVAL, "device %s:%" PRIu32 " is already listed as %s[%zu]", \
						       hf_backend_name((list)[i_]->backend), (list)[i_]->index, (name), k_); \
					vpath_pop((v), old_);                                         \
					return r_;                                                    \
				}                                                                     \
	} while (0)

/* ---- worker requests ---- */

static int check_key_value(struct vctx *v, const Hf__KeyValue *kv)
{
	if (!kv->key[0])
		return vfail(v, -EINVAL, "an empty key");
	return 0;
}

static int check_device(struct vctx *v, const Hf__Device *d)
{
	int r = check_backend(v, "backend", d->backend);
	if (r == 0)
		r = check_device_index(v, "index", d->index);
	if (r == 0)
		r = check_u64(v, "slots", d->slots, 0, HF_SLOTS_MAX);
	if (r == 0)
		r = check_u64(v, "memory_bytes", d->memory_bytes, 0, HF_MEMORY_MAX);
	if (r < 0)
		return r;
	CHECK_EACH(v, "attrs", d->attrs, d->n_attrs, check_key_value);
	return 0;
}

static int check_backend_status(struct vctx *v, const Hf__BackendStatus *b)
{
	return check_backend(v, "backend", b->backend);
}

static int check_cpu(struct vctx *v, const Hf__CpuInfo *c)
{
	size_t old = vpath_push(v, "cpu", -1);
	int r = check_u64(v, "sockets", c->sockets, 0, HF_CPU_COUNT_MAX);
	if (r == 0)
		r = check_u64(v, "cores", c->cores, 0, HF_CPU_COUNT_MAX);
	if (r == 0)
		r = check_u64(v, "threads", c->threads, 0, HF_CPU_COUNT_MAX);
	if (r == 0)
		r = check_u64(v, "numa_nodes", c->numa_nodes, 0, HF_CPU_COUNT_MAX);
	if (r == 0)
		r = check_u64(v, "memory_bytes", c->memory_bytes, 0, HF_MEMORY_MAX);
	if (r == 0)
		vpath_pop(v, old);
	return r;
}

/* What the coordinator keeps of a worker and shows to hfctl: bounded in
 * total so that the replies about the whole fleet stay bounded. */
static size_t register_description_size(const Hf__Register *m)
{
	size_t n = strlen(m->worker_id) + strlen(m->hostname) + strlen(m->software_version);

	for (size_t i = 0; i < m->n_labels; i++)
		n += hf__key_value__get_packed_size(m->labels[i]) + 4;
	for (size_t i = 0; i < m->n_devices; i++)
		n += hf__device__get_packed_size(m->devices[i]) + 4;
	for (size_t i = 0; i < m->n_runtimes; i++)
		n += hf__runtime__get_packed_size(m->runtimes[i]) + 4;
	for (size_t i = 0; i < m->n_backends; i++)
		n += hf__backend_status__get_packed_size(m->backends[i]) + 4;
	if (m->cpu)
		n += hf__cpu_info__get_packed_size(m->cpu);
	return n;
}

static int check_register(struct vctx *v, const Hf__Register *m)
{
	int r = check_worker_id(v, m->worker_id);

	if (r < 0)
		return r;
	CHECK_EACH(v, "labels", m->labels, m->n_labels, check_key_value);
	for (size_t i = 1; i < m->n_labels; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->labels[i]->key, m->labels[k]->key) == 0) {
				vpath_push(v, "labels", (long)i);
				return vfail(v, -EINVAL, "the key is already given by labels[%zu]", k);
			}
	CHECK_EACH(v, "devices", m->devices, m->n_devices, check_device);
	CHECK_NO_DUP_DEVICE(v, "devices", m->devices, m->n_devices);
	CHECK_EACH(v, "running", m->running, m->n_running, check_task_ref);
	CHECK_EACH(v, "backends", m->backends, m->n_backends, check_backend_status);
	if (m->cpu && (r = check_cpu(v, m->cpu)) < 0)
		return r;
	size_t desc = register_description_size(m);
	if (desc > HF_MAX_WORKER_DESCRIPTION)
		return vfail(v, -EINVAL,
			     "the worker's description (labels, devices, runtimes, backends, CPU) is %zu bytes, at most %d",
			     desc, HF_MAX_WORKER_DESCRIPTION);
	return 0;
}

static int check_device_free(struct vctx *v, const Hf__DeviceFree *f)
{
	int r = check_backend(v, "backend", f->backend);
	if (r == 0)
		r = check_device_index(v, "index", f->index);
	if (r == 0)
		r = check_u64(v, "free_slots", f->free_slots, 0, HF_SLOTS_MAX);
	if (r == 0)
		r = check_u64(v, "ahead", f->ahead, 0, HF_SLOTS_MAX);
	if (r == 0)
		r = check_u64(v, "queued", f->queued, 0, HF_SLOTS_MAX);
	return r;
}

static int check_telemetry(struct vctx *v, const Hf__DeviceTelemetry *t)
{
	int r = check_backend(v, "backend", t->backend);
	if (r == 0)
		r = check_device_index(v, "index", t->index);
	if (r == 0)
		r = check_u64(v, "memory_used_bytes", t->memory_used_bytes, 0, HF_MEMORY_MAX);
	if (r == 0)
		r = check_double(v, "utilization_pct", t->utilization_pct, HF_READING_MIN, HF_READING_MAX);
	if (r == 0)
		r = check_double(v, "temperature_c", t->temperature_c, HF_READING_MIN, HF_READING_MAX);
	if (r == 0)
		r = check_double(v, "power_w", t->power_w, HF_READING_MIN, HF_READING_MAX);
	return r;
}

static int check_poll(struct vctx *v, const Hf__Poll *m)
{
	int r = check_worker_id(v, m->worker_id);

	if (r < 0)
		return r;
	CHECK_EACH(v, "free", m->free, m->n_free, check_device_free);
	CHECK_NO_DUP_DEVICE(v, "free", m->free, m->n_free);
	CHECK_EACH(v, "running", m->running, m->n_running, check_task_ref);
	CHECK_EACH(v, "telemetry", m->telemetry, m->n_telemetry, check_telemetry);
	CHECK_NO_DUP_DEVICE(v, "telemetry", m->telemetry, m->n_telemetry);
	return check_u64(v, "hold_ms", m->hold_ms, 0, HF_POLL_HOLD_MAX_MS);
}

static int check_task_result(struct vctx *v, const Hf__TaskResult *t)
{
	int r = check_u64(v, "task_id", t->task_id, 1, HF_TASK_ID_MAX);
	if (r == 0)
		r = check_u64(v, "attempt", t->attempt, 1, HF_ATTEMPT_MAX);
	if (r == 0 && !hf_status_is_final(t->status)) {
		size_t old = vpath_push(v, "status", -1);
		r = vfail(v, -EINVAL, "%d is not a final status (passed, failed, error, timeout, skipped, cancelled)",
			  (int)t->status);
		vpath_pop(v, old);
	}
	if (r == 0)
		r = check_time(v, "started_at", t->started_at);
	if (r == 0)
		r = check_time(v, "finished_at", t->finished_at);
	if (r == 0)
		r = check_device_index(v, "device_index", t->device_index);
	return r;
}

static int check_result_batch(struct vctx *v, const Hf__ResultBatch *m)
{
	int r = check_worker_id(v, m->worker_id);

	if (r < 0)
		return r;
	CHECK_EACH(v, "results", m->results, m->n_results, check_task_result);
	/* At most HF_MAX_RESULTS (256): a bounded quadratic look. */
	for (size_t i = 1; i < m->n_results; i++)
		for (size_t k = 0; k < i; k++)
			if (m->results[i]->task_id == m->results[k]->task_id &&
			    m->results[i]->attempt == m->results[k]->attempt) {
				vpath_push(v, "results", (long)i);
				return vfail(v, -EINVAL, "task %" PRIu64 " attempt %" PRIu32 " is already reported by results[%zu]",
					     m->results[i]->task_id, m->results[i]->attempt, k);
			}
	return 0;
}

static int check_health_result(struct vctx *v, const Hf__HealthResult *h)
{
	static const char *const triggers[] = { "", "register", "periodic", "coordinator" };
	int r = check_backend(v, "backend", h->backend);
	bool known = false;

	if (r == 0)
		r = check_device_index(v, "index", h->index);
	if (r == 0)
		r = check_double(v, "duration_s", h->duration_s, 0, HF_DURATION_MAX);
	if (r == 0)
		r = check_time(v, "checked_at", h->checked_at);
	for (size_t i = 0; r == 0 && i < N_ELEM(triggers); i++)
		known |= strcmp(h->trigger, triggers[i]) == 0;
	if (r == 0 && !known) {
		char shown[48];
		size_t old = vpath_push(v, "trigger", -1);
		r = vfail(v, -EINVAL, "\"%s\" is not register, periodic or coordinator",
			  hf_text_escape(shown, sizeof(shown), h->trigger, strlen(h->trigger)));
		vpath_pop(v, old);
	}
	return r;
}

static int check_health_report(struct vctx *v, const Hf__HealthReport *m)
{
	int r = check_worker_id(v, m->worker_id);

	if (r < 0)
		return r;
	CHECK_EACH(v, "results", m->results, m->n_results, check_health_result);
	return 0;
}

/* ---- control requests ---- */

static int check_model_name(struct vctx *v, const char *s)
{
	char shown[64];

	if (hf_id_valid(s))
		return 0;
	return vfail(v, -EINVAL, "\"%s\" is not a model type (1 to %d of A-Z a-z 0-9 . _ : -)",
		     hf_text_escape(shown, sizeof(shown), s, strlen(s)), HF_ID_MAX);
}

static int check_batch_size(struct vctx *v, uint32_t x)
{
	if (x >= 1 && x <= HF_BATCH_SIZE_MAX)
		return 0;
	return vfail(v, -EINVAL, "%" PRIu32 " is outside 1 .. %d", x, HF_BATCH_SIZE_MAX);
}

static int check_seq_len(struct vctx *v, uint32_t x)
{
	if (x >= 1 && x <= HF_SEQ_LEN_MAX)
		return 0;
	return vfail(v, -EINVAL, "%" PRIu32 " is outside 1 .. %d", x, HF_SEQ_LEN_MAX);
}

/* A suite name: empty (none) or 1..HF_SUITE_MAX-1 of [a-z0-9_.-]; whether
 * the registry has it is the coordinator's question. */
static int check_suite_name(struct vctx *v, const char *s)
{
	char shown[80];
	size_t len = strlen(s);

	if (len == 0 || hf_suite_name_valid(s, len))
		return 0;
	size_t old = vpath_push(v, "suite", -1);
	int r = vfail(v, -EINVAL, "\"%s\" is not a suite name (1 to %d of a-z 0-9 _ . -)",
		      hf_text_escape(shown, sizeof(shown), s, len), HF_SUITE_MAX - 1);
	vpath_pop(v, old);
	return r;
}

/* A benchmark mode: one of hf_mode_list, and not asked twice. */
static int check_mode_at(struct vctx *v, const Hf__SubmitRequest *m, size_t i)
{
	char shown[64];
	const char *s = m->modes[i];

	if (!hf_mode_valid(s))
		return vfail(v, -EINVAL, "\"%s\" is not a benchmark mode (%s)",
			     hf_text_escape(shown, sizeof(shown), s, strlen(s)), hf_mode_names());
	for (size_t j = 0; j < i; j++)
		if (strcmp(m->modes[j], s) == 0)
			return vfail(v, -EINVAL, "\"%s\" is given twice", s);
	return 0;
}

static int check_submit(struct vctx *v, const Hf__SubmitRequest *m)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < m->n_modes; i++) {
		size_t old = vpath_push(v, "modes", (long)i);
		r = check_mode_at(v, m, i);
		vpath_pop(v, old);
	}

	CHECK_EACH(v, "models", m->models, m->n_models, check_model_name);
	CHECK_EACH(v, "batch_sizes", m->batch_sizes, m->n_batch_sizes, check_batch_size);
	CHECK_EACH(v, "seq_lens", m->seq_lens, m->n_seq_lens, check_seq_len);
	CHECK_EACH(v, "labels", m->labels, m->n_labels, check_key_value);
	if (r == 0)
		r = check_i64(v, "priority", m->priority, HF_PRIORITY_MIN, HF_PRIORITY_MAX);
	if (r == 0)
		r = check_u64(v, "seq_len", m->seq_len, 0, HF_SEQ_LEN_MAX);
	if (r == 0)
		r = check_u64(v, "timeout_s", m->timeout_s, 0, HF_TIMEOUT_S_MAX);
	if (r == 0)
		r = check_u64(v, "iterations", m->iterations, 0, HF_ITERATIONS_MAX);
	if (r == 0)
		r = check_u64(v, "warmup", m->warmup, 0, HF_WARMUP_MAX);
	if (r == 0)
		r = check_u64(v, "min_memory_bytes", m->min_memory_bytes, 0, HF_MEMORY_MAX);
	if (r == 0)
		r = check_u64(v, "devices_per_task", m->devices_per_task, 0, HF_MAX_DEVICES_PER_TASK);
	if (r == 0)
		r = check_u64(v, "max_running", m->max_running, 0, HF_MAX_RUNNING_CAP);
	if (r == 0)
		r = check_u64(v, "max_retries", m->max_retries, 0, HF_MAX_RETRIES_MAX);
	if (r == 0)
		r = check_u64(v, "flaky_reruns", m->flaky_reruns, 0, HF_FLAKY_RERUNS_MAX);
	if (r == 0)
		r = check_id(v, "request_id", m->request_id, false, HF_ID_MAX);
	if (r == 0)
		r = check_suite_name(v, m->suite);
	return r;
}

static int check_drain(struct vctx *v, const Hf__DrainRequest *m)
{
	int r = check_worker_id(v, m->worker_id);
	if (r == 0 && m->one_device)
		r = check_backend(v, "backend", m->backend);
	if (r == 0 && m->one_device)
		r = check_device_index(v, "index", m->index);
	return r;
}

/* ---- reads for people ---- */

static int check_filter_backend(struct vctx *v, Hf__Backend b)
{
	if (b >= HF__BACKEND__BACKEND_CPU && b <= HF__BACKEND__BACKEND_QNN)
		return 0;
	return vfail(v, -EINVAL, "%d is not a backend (1 to %d: %s)", (int)b, HF__BACKEND__BACKEND_QNN,
		     hf_backend_names());
}

static int check_filter_status(struct vctx *v, Hf__TaskStatus s)
{
	if (s >= HF__TASK_STATUS__STATUS_QUEUED && s <= HF__TASK_STATUS__STATUS_CANCELLED)
		return 0;
	return vfail(v, -EINVAL, "%d is not a task status (1 to %d)", (int)s, HF__TASK_STATUS__STATUS_CANCELLED);
}

static int check_filter_kind(struct vctx *v, Hf__TaskKind k)
{
	if (k == HF__TASK_KIND__KIND_TEST || k == HF__TASK_KIND__KIND_BENCHMARK)
		return 0;
	return vfail(v, -EINVAL, "%d is not a task kind (1 test, 2 benchmark)", (int)k);
}

static int check_family_name(struct vctx *v, const char *s)
{
	char shown[64];

	if (hf_family_valid(s))
		return 0;
	return vfail(v, -EINVAL, "\"%s\" is not a family (%s)", hf_text_escape(shown, sizeof(shown), s, strlen(s)),
		     hf_family_names());
}

/* A precision filter: empty (any) or one the runner knows. */
static int check_precision_filter(struct vctx *v, const char *name, const char *s)
{
	char shown[64];

	if (!s[0] || hf_precision_valid(s))
		return 0;
	size_t old = vpath_push(v, name, -1);
	int r = vfail(v, -EINVAL, "\"%s\" is not a precision", hf_text_escape(shown, sizeof(shown), s, strlen(s)));
	vpath_pop(v, old);
	return r;
}

static int check_results_request(struct vctx *v, const Hf__ResultsRequest *m)
{
	CHECK_EACH(v, "models", m->models, m->n_models, check_model_name);
	CHECK_EACH(v, "families", m->families, m->n_families, check_family_name);
	CHECK_EACH(v, "backends", m->backends, m->n_backends, check_filter_backend);
	CHECK_EACH(v, "statuses", m->statuses, m->n_statuses, check_filter_status);
	CHECK_EACH(v, "kinds", m->kinds, m->n_kinds, check_filter_kind);
	return check_u64(v, "job_id", m->job_id, 0, HF_TASK_ID_MAX);
}

static int check_job_list(struct vctx *v, const Hf__JobListRequest *m)
{
	char shown[64];
	int r = check_u64(v, "limit", m->limit, 0, HF_JOB_LIST_MAX);

	if (r == 0 && m->state[0] && strcmp(m->state, "running") != 0 && strcmp(m->state, "done") != 0 &&
	    strcmp(m->state, "cancelled") != 0) {
		size_t old = vpath_push(v, "state", -1);
		r = vfail(v, -EINVAL, "\"%s\" is not a job state (running, done, cancelled)",
			  hf_text_escape(shown, sizeof(shown), m->state, strlen(m->state)));
		vpath_pop(v, old);
	}
	if (r == 0)
		r = check_time(v, "since", m->since);
	return r;
}

static int check_compare(struct vctx *v, const Hf__CompareRequest *m)
{
	int r = check_u64(v, "base_job_id", m->base_job_id, 1, HF_TASK_ID_MAX);
	if (r == 0)
		r = check_u64(v, "cand_job_id", m->cand_job_id, 1, HF_TASK_ID_MAX);
	if (r == 0)
		r = check_double(v, "threshold", m->threshold, 0.0, HF_COMPARE_THRESHOLD_MAX);
	return r;
}

static int check_history(struct vctx *v, const Hf__HistoryRequest *m)
{
	int r = check_id(v, "model_type", m->model_type, true, HF_ID_MAX);
	if (r == 0 && m->backend != HF__BACKEND__BACKEND_UNSPECIFIED)
		r = check_backend(v, "backend", m->backend);
	if (r == 0 && m->kind != HF__TASK_KIND__KIND_UNSPECIFIED) {
		size_t old = vpath_push(v, "kind", -1);
		r = check_filter_kind(v, m->kind);
		vpath_pop(v, old);
	}
	if (r == 0)
		r = check_precision_filter(v, "precision", m->precision);
	if (r == 0)
		r = check_u64(v, "limit", m->limit, 0, HF_HISTORY_LIMIT_MAX);
	return r;
}

static int check_control_request(struct vctx *v, const Hf__Envelope *env)
{
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_SUBMIT:
		return check_submit(v, env->submit);
	case HF__ENVELOPE__BODY_JOB_STATUS:
		return check_u64(v, "job_id", env->job_status->job_id, 0, HF_TASK_ID_MAX);
	case HF__ENVELOPE__BODY_JOB_LIST:
		return check_job_list(v, env->job_list);
	case HF__ENVELOPE__BODY_RESULTS_REQUEST:
		return check_results_request(v, env->results_request);
	case HF__ENVELOPE__BODY_LOGS:
		return check_u64(v, "task_id", env->logs->task_id, 0, HF_TASK_ID_MAX);
	case HF__ENVELOPE__BODY_COMPARE:
		return check_compare(v, env->compare);
	case HF__ENVELOPE__BODY_HISTORY:
		return check_history(v, env->history);
	case HF__ENVELOPE__BODY_REPORT:
		return check_u64(v, "job_id", env->report->job_id, 0, HF_TASK_ID_MAX);
	case HF__ENVELOPE__BODY_CANCEL: {
		int r = check_u64(v, "job_id", env->cancel->job_id, 0, HF_TASK_ID_MAX);
		return r < 0 ? r : check_u64(v, "task_id", env->cancel->task_id, 0, HF_TASK_ID_MAX);
	}
	case HF__ENVELOPE__BODY_RETRY:
		return check_u64(v, "job_id", env->retry->job_id, 0, HF_TASK_ID_MAX);
	case HF__ENVELOPE__BODY_DRAIN:
		return check_drain(v, env->drain);
	case HF__ENVELOPE__BODY_EXPLAIN:
		return check_u64(v, "task_id", env->explain->task_id, 0, HF_TASK_ID_MAX);
	case HF__ENVELOPE__BODY_TOKEN_CREATE:
		return check_id(v, "name", env->token_create->name, true, HF_WORKER_ID_MAX);
	case HF__ENVELOPE__BODY_TOKEN_REVOKE:
		return check_id(v, "id_or_name", env->token_revoke->id_or_name, true, HF_WORKER_ID_MAX);
	case HF__ENVELOPE__BODY_AUDIT: {
		int r = check_u64(v, "limit", env->audit->limit, 0, HF_AUDIT_LIST_MAX);
		return r < 0 ? r : check_u64(v, "job_id", env->audit->job_id, 0, HF_TASK_ID_MAX);
	}
	case HF__ENVELOPE__BODY_TOKEN_LIST:
	case HF__ENVELOPE__BODY_WHOAMI:
	case HF__ENVELOPE__BODY_WORKERS:
	case HF__ENVELOPE__BODY_DEVICES:
	case HF__ENVELOPE__BODY_MODELS: /* the family is checked against the registry */
		return 0;
	default:
		return vfail(v, -EINVAL, "message type %d is not a control request", (int)env->body_case);
	}
}

/* ---- replies to a worker ---- */

static int check_assignment(struct vctx *v, const Hf__Assignment *a)
{
	int r = check_u64(v, "task_id", a->task_id, 1, HF_TASK_ID_MAX);
	if (r == 0)
		r = check_u64(v, "attempt", a->attempt, 1, HF_ATTEMPT_MAX);
	if (r == 0)
		r = check_u64(v, "job_id", a->job_id, 0, HF_TASK_ID_MAX);
	if (r == 0)
		r = check_backend(v, "backend", a->backend);
	if (r == 0)
		r = check_device_index(v, "device_index", a->device_index);
	for (size_t i = 0; r == 0 && i < a->n_device_indices; i++)
		r = check_device_index(v, "device_indices", a->device_indices[i]);
	if (r == 0)
		r = check_u64(v, "batch_size", a->batch_size, 0, HF_BATCH_SIZE_MAX);
	if (r == 0)
		r = check_u64(v, "seq_len", a->seq_len, 0, HF_SEQ_LEN_MAX);
	if (r == 0)
		r = check_u64(v, "timeout_s", a->timeout_s, 0, HF_TIMEOUT_S_MAX);
	if (r == 0)
		r = check_u64(v, "iterations", a->iterations, 0, HF_ITERATIONS_MAX);
	if (r == 0)
		r = check_u64(v, "warmup", a->warmup, 0, HF_WARMUP_MAX);
	if (r == 0)
		r = check_i64(v, "priority", a->priority, HF_PRIORITY_MIN, HF_PRIORITY_MAX);
	if (r == 0)
		r = check_id(v, "model_type", a->model_type, true, HF_ID_MAX);
	if (r == 0 && a->mode[0] && !hf_mode_valid(a->mode)) {
		char shown[64];
		size_t old = vpath_push(v, "mode", -1);
		r = vfail(v, -EINVAL, "\"%s\" is not a benchmark mode (%s)",
			  hf_text_escape(shown, sizeof(shown), a->mode, strlen(a->mode)), hf_mode_names());
		vpath_pop(v, old);
	}
	return r;
}

static int check_health_check_request(struct vctx *v, const Hf__HealthCheckRequest *h)
{
	int r = check_backend(v, "backend", h->backend);
	return r < 0 ? r : check_device_index(v, "index", h->index);
}

static int check_poll_reply(struct vctx *v, const Hf__PollReply *m)
{
	CHECK_EACH(v, "assignments", m->assignments, m->n_assignments, check_assignment);
	CHECK_EACH(v, "cancel", m->cancel, m->n_cancel, check_task_ref);
	CHECK_EACH(v, "health_checks", m->health_checks, m->n_health_checks, check_health_check_request);
	return 0;
}

static int check_ack(struct vctx *v, const Hf__Ack *m)
{
	CHECK_EACH(v, "acked", m->acked, m->n_acked, check_task_ref);
	return 0;
}

int hf_msg_validate(const Hf__Envelope *env, enum hf_msg_role role, char *err, size_t errlen)
{
	struct vctx v = { .err = err, .errlen = errlen };
	Hf__Envelope__BodyCase b = env->body_case;

	switch (role) {
	case HF_MSG_WORKER_REQUEST:
		switch (b) {
		case HF__ENVELOPE__BODY_REGISTER:
			return check_register(&v, env->register_);
		case HF__ENVELOPE__BODY_POLL:
			return check_poll(&v, env->poll);
		case HF__ENVELOPE__BODY_RESULTS:
			return check_result_batch(&v, env->results);
		case HF__ENVELOPE__BODY_HEALTH_REPORT:
			return check_health_report(&v, env->health_report);
		default:
			return vfail(&v, -EINVAL, "message type %d is not a worker request", (int)b);
		}
	case HF_MSG_CONTROL_REQUEST:
		return check_control_request(&v, env);
	case HF_MSG_WORKER_REPLY:
		switch (b) {
		case HF__ENVELOPE__BODY_POLL_REPLY:
			return check_poll_reply(&v, env->poll_reply);
		case HF__ENVELOPE__BODY_ACK:
			return check_ack(&v, env->ack);
		case HF__ENVELOPE__BODY_REGISTER_REPLY:
		case HF__ENVELOPE__BODY_ERROR:
			return 0;
		default:
			return vfail(&v, -EINVAL, "message type %d is not a reply to a worker", (int)b);
		}
	case HF_MSG_CONTROL_REPLY:
		/* hfctl shows what it gets; its receive limit bounds it. */
		return 0;
	}
	return vfail(&v, -EINVAL, "unknown role %d", (int)role);
}
