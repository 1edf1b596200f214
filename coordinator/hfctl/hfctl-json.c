/* SPDX-License-Identifier: MIT
 *
 * Protocol messages as JSON values (see hfctl-json.h).
 */
#include "hfctl-json.h"

#include <float.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfctl-format.h"

/* Sets key in o to v, which is consumed (jansson releases it when o is
 * NULL or the set fails); a NULL v (no memory) or a failed set clears *ok,
 * so a builder checks once at the end. */
static void put(json_t *o, const char *key, json_t *v, bool *ok)
{
	if (json_object_set_new(o, key, v) < 0)
		*ok = false;
}

/* Appends v, which is consumed, to the array a; clears *ok as put does. */
static void append(json_t *a, json_t *v, bool *ok)
{
	if (json_array_append_new(a, v) < 0)
		*ok = false;
}

/* Returns o when everything was set, else frees it and returns NULL. */
static json_t *built(json_t *o, bool ok)
{
	if (ok && o)
		return o;
	json_decref(o);
	return NULL;
}

static json_t *time_value(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

json_t *hfctl_json_string(const char *s)
{
	json_t *v = json_string(s);
	char *copy;

	if (v || !s)
		return v;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

json_t *hfctl_json_metrics(const char *text)
{
	json_t *v;

	if (!text || !text[0])
		return json_null();
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v ? v : hfctl_json_string(text);
}

json_t *hfctl_json_job(const Hf__JobStatus *js)
{
	struct hfctl_counts c;
	json_t *o = json_object(), *counts = json_object();
	bool ok = true;

	hfctl_counts_from_job(js, &c);
	for (int s = 1; s < HFCTL_N_STATUS; s++)
		put(counts, hf_status_name((Hf__TaskStatus)s), json_integer(c.n[s]), &ok);

	put(o, "job_id", json_integer((json_int_t)js->job_id), &ok);
	put(o, "name", hfctl_json_string(js->name), &ok);
	put(o, "state", hfctl_json_string(js->state), &ok);
	put(o, "submitter", hfctl_json_string(js->submitter), &ok);
	put(o, "priority", json_integer(js->priority), &ok);
	put(o, "created_at", time_value(js->created_at), &ok);
	put(o, "finished_at", time_value(js->finished_at), &ok);
	put(o, "total", json_integer(js->total), &ok);
	put(o, "counts", counts, &ok);
	return built(o, ok);
}

json_t *hfctl_json_result(const Hf__ResultRow *row)
{
	json_t *o = json_object();
	bool ok = true;

	put(o, "task_id", json_integer((json_int_t)row->task_id), &ok);
	put(o, "model_type", hfctl_json_string(row->model_type), &ok);
	put(o, "family", hfctl_json_string(row->family), &ok);
	put(o, "backend", json_string(hf_backend_name(row->backend)), &ok);
	put(o, "kind", json_string(hf_kind_name(row->kind)), &ok);
	put(o, "batch_size", json_integer(row->batch_size), &ok);
	put(o, "seq_len", json_integer(row->seq_len), &ok);
	put(o, "precision", hfctl_json_string(row->precision), &ok);
	/* A coordinator older than modes sends none: its benchmarks are eager. */
	put(o, "mode", json_string(row->mode && *row->mode ? row->mode : "eager"), &ok);
	put(o, "status", json_string(hf_status_name(row->status)), &ok);
	put(o, "reason", hfctl_json_string(row->reason), &ok);
	put(o, "metrics_json", hfctl_json_metrics(row->metrics_json), &ok);
	put(o, "attempt", json_integer(row->attempt), &ok);
	put(o, "worker_id", hfctl_json_string(row->worker_id), &ok);
	put(o, "device_index", json_integer(row->device_index), &ok);
	put(o, "duration_s", json_real(row->duration_s), &ok);
	put(o, "weights", hfctl_json_string(row->weights), &ok);
	return built(o, ok);
}

static json_t *key_values(Hf__KeyValue *const *kv, size_t n)
{
	json_t *o = json_object();
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		put(o, kv[i]->key, hfctl_json_string(kv[i]->value), &ok);
	return built(o, ok);
}

static json_t *device_json(const Hf__Device *d)
{
	json_t *o = json_object();
	bool ok = true;

	put(o, "backend", json_string(hf_backend_name(d->backend)), &ok);
	put(o, "index", json_integer(d->index), &ok);
	put(o, "name", hfctl_json_string(d->name), &ok);
	put(o, "memory_bytes", json_integer((json_int_t)d->memory_bytes), &ok);
	put(o, "arch", hfctl_json_string(d->arch), &ok);
	put(o, "driver", hfctl_json_string(d->driver), &ok);
	put(o, "uuid", hfctl_json_string(d->uuid), &ok);
	put(o, "slots", json_integer(d->slots), &ok);
	put(o, "attrs", key_values(d->attrs, d->n_attrs), &ok);
	put(o, "declared", json_boolean(d->declared), &ok);
	return built(o, ok);
}

static json_t *runtime_json(const Hf__Runtime *rt)
{
	json_t *o = json_object();
	bool ok = true;

	put(o, "name", hfctl_json_string(rt->name), &ok);
	put(o, "version", hfctl_json_string(rt->version), &ok);
	put(o, "available", json_boolean(rt->available), &ok);
	put(o, "detail", hfctl_json_string(rt->detail), &ok);
	return built(o, ok);
}

static json_t *cpu_json(const Hf__CpuInfo *cpu)
{
	json_t *o, *flags;
	bool ok = true;

	if (!cpu)
		return json_null();
	o = json_object();
	flags = json_array();
	for (size_t i = 0; i < cpu->n_flags; i++)
		append(flags, hfctl_json_string(cpu->flags[i]), &ok);
	put(o, "model", hfctl_json_string(cpu->model), &ok);
	put(o, "sockets", json_integer(cpu->sockets), &ok);
	put(o, "cores", json_integer(cpu->cores), &ok);
	put(o, "threads", json_integer(cpu->threads), &ok);
	put(o, "memory_bytes", json_integer((json_int_t)cpu->memory_bytes), &ok);
	put(o, "flags", flags, &ok);
	put(o, "numa_nodes", json_integer(cpu->numa_nodes), &ok);
	put(o, "arch", hfctl_json_string(cpu->arch), &ok);
	return built(o, ok);
}

json_t *hfctl_json_worker(const Hf__WorkerInfo *w)
{
	json_t *o = json_object(), *devices = json_array(), *runtimes = json_array();
	bool ok = true;

	for (size_t i = 0; i < w->n_devices; i++)
		append(devices, device_json(w->devices[i]), &ok);
	for (size_t i = 0; i < w->n_runtimes; i++)
		append(runtimes, runtime_json(w->runtimes[i]), &ok);
	put(o, "worker_id", hfctl_json_string(w->worker_id), &ok);
	put(o, "hostname", hfctl_json_string(w->hostname), &ok);
	put(o, "software_version", hfctl_json_string(w->software_version), &ok);
	put(o, "protocol_version", json_integer(w->protocol_version), &ok);
	put(o, "labels", key_values(w->labels, w->n_labels), &ok);
	put(o, "devices", devices, &ok);
	put(o, "runtimes", runtimes, &ok);
	put(o, "cpu", cpu_json(w->cpu), &ok);
	put(o, "connected", json_boolean(w->connected), &ok);
	put(o, "last_seen", time_value(w->last_seen), &ok);
	put(o, "running", json_integer(w->running), &ok);
	json_t *drains = json_array();
	for (size_t i = 0; i < w->n_drains; i++) {
		const Hf__Drain *d = w->drains[i];
		json_t *e = json_object();
		bool eok = true;
		put(e, "device", d->one_device ? json_sprintf("%s:%" PRIu32, hf_backend_name(d->backend), d->index)
					      : json_null(), &eok);
		put(e, "by", d->by && d->by[0] ? hfctl_json_string(d->by) : json_null(), &eok);
		put(e, "since", time_value(d->since), &eok);
		append(drains, built(e, eok), &ok);
	}
	put(o, "drains", drains, &ok);
	put(o, "drained", json_boolean(w->n_drains > 0 && !w->drains[0]->one_device), &ok);
	return built(o, ok);
}

json_t *hfctl_json_device_fits(Hf__DeviceFit *const *v, size_t n)
{
	json_t *a = json_array();
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		const Hf__DeviceFit *f = v[i];
		json_t *e = json_object(), *unmet = json_array();
		bool eok = true;
		for (size_t k = 0; k < f->n_unmet; k++)
			append(unmet, hfctl_json_string(f->unmet[k]), &eok);
		put(e, "worker_id", hfctl_json_string(f->worker_id), &eok);
		put(e, "device", f->one_device ? json_sprintf("%s:%" PRIu32, hf_backend_name(f->backend), f->index)
					      : json_null(), &eok);
		put(e, "backend", json_string(hf_backend_name(f->backend)), &eok);
		put(e, "state", hfctl_json_string(f->state), &eok);
		put(e, "unmet", unmet, &eok);
		put(e, "connected", json_boolean(f->connected), &eok);
		put(e, "last_seen", f->last_seen > 0 ? time_value(f->last_seen) : json_null(), &eok);
		put(e, "would_fit", json_boolean(f->would_fit), &eok);
		append(a, built(e, eok), &ok);
	}
	return built(a, ok);
}

/* A float gauge: null when negative (not available).  It goes through its
 * shortest decimal text so that 41.3f prints as 41.3, not as the double
 * nearest to the float (41.2999992370605). */
static json_t *gauge_value(float v)
{
	char text[32];

	if (v < 0)
		return json_null();
	snprintf(text, sizeof(text), "%.*g", FLT_DIG, (double)v);
	return json_real(strtod(text, NULL));
}

static json_t *telemetry_json(const Hf__DeviceTelemetry *t)
{
	static const Hf__DeviceTelemetry none = {
		.utilization_pct = -1, .temperature_c = -1, .power_w = -1,
	};
	json_t *o = json_object();
	bool ok = true;

	if (!t)
		t = &none;
	put(o, "utilization_pct", gauge_value(t->utilization_pct), &ok);
	put(o, "memory_used_bytes",
	    t->memory_used_bytes ? json_integer((json_int_t)t->memory_used_bytes) : json_null(), &ok);
	put(o, "temperature_c", gauge_value(t->temperature_c), &ok);
	put(o, "power_w", gauge_value(t->power_w), &ok);
	return built(o, ok);
}

static json_t *device_info_json(const Hf__DeviceInfo *di)
{
	static const Hf__Device no_device = HF__DEVICE__INIT;
	json_t *o = json_object(), *dev = device_json(di->device ? di->device : &no_device);
	bool ok = dev != NULL;

	put(o, "worker_id", hfctl_json_string(di->worker_id), &ok);
	if (json_object_update(o, dev) < 0)
		ok = false;
	json_decref(dev);
	put(o, "telemetry", telemetry_json(di->telemetry), &ok);
	put(o, "running", json_integer(di->running), &ok);
	put(o, "connected", json_boolean(di->connected), &ok);
	put(o, "state", di->state && *di->state ? hfctl_json_string(di->state) : json_null(), &ok);
	put(o, "state_reason",
	    di->state_reason && *di->state_reason ? hfctl_json_string(di->state_reason) : json_null(), &ok);
	put(o, "infra_failures", json_integer(di->infra_failures), &ok);
	return built(o, ok);
}

static json_t *absent_json(const Hf__KeyValue *kv)
{
	const char *backend;
	json_t *o = json_object(), *worker;
	bool ok = true;
	size_t len;
	char *w;

	hfctl_absent_key_split(kv->key, &len, &backend);
	w = strndup(kv->key, len);
	worker = w ? hfctl_json_string(w) : NULL;
	free(w);
	put(o, "worker", worker, &ok);
	put(o, "backend", hfctl_json_string(backend), &ok);
	put(o, "reason", hfctl_json_string(kv->value), &ok);
	return built(o, ok);
}

json_t *hfctl_json_devices(const Hf__DevicesReply *r)
{
	json_t *o = json_object(), *devices = json_array(), *absent = json_array();
	bool ok = true;

	for (size_t i = 0; i < r->n_devices; i++)
		append(devices, device_info_json(r->devices[i]), &ok);
	for (size_t i = 0; i < r->n_absent; i++)
		append(absent, absent_json(r->absent[i]), &ok);
	put(o, "devices", devices, &ok);
	put(o, "absent", absent, &ok);
	return built(o, ok);
}

static json_t *model_limit_json(const Hf__ModelLimit *l)
{
	json_t *o = json_object();
	bool ok = true;

	put(o, "backend",
	    json_string(l->backend == HF__BACKEND__BACKEND_UNSPECIFIED ? "*" : hf_backend_name(l->backend)),
	    &ok);
	put(o, "kind",
	    json_string(l->kind == HF__TASK_KIND__KIND_UNSPECIFIED ? "*" : hf_kind_name(l->kind)), &ok);
	put(o, "reason", hfctl_json_string(l->reason), &ok);
	return built(o, ok);
}

json_t *hfctl_json_model(const Hf__ModelInfo *m)
{
	json_t *o = json_object(), *limits = json_array(), *suites = json_array();
	bool ok = true;

	put(o, "model_type", hfctl_json_string(m->model_type), &ok);
	put(o, "hf_id", hfctl_json_string(m->hf_id), &ok);
	put(o, "family", hfctl_json_string(m->family), &ok);
	put(o, "task", hfctl_json_string(m->task), &ok);
	put(o, "modality", hfctl_json_string(m->modality), &ok);
	put(o, "size_class", hfctl_json_string(m->size_class), &ok);
	put(o, "notes", hfctl_json_string(m->notes), &ok);
	for (size_t i = 0; i < m->n_limits; i++)
		append(limits, model_limit_json(m->limits[i]), &ok);
	put(o, "limits", limits, &ok);
	/* Every suite the model is in: "all", the named ones, its family. */
	append(suites, json_string("all"), &ok);
	for (size_t i = 0; i < m->n_suites; i++)
		append(suites, hfctl_json_string(m->suites[i]), &ok);
	append(suites, hfctl_json_string(m->family), &ok);
	put(o, "suites", suites, &ok);
	return built(o, ok);
}

json_t *hfctl_json_submit(const Hf__SubmitReply *r)
{
	json_t *o = json_object(), *limited = json_array();
	bool ok = true;

	put(o, "job_id", json_integer((json_int_t)r->job_id), &ok);
	put(o, "task_count", json_integer((json_int_t)r->task_count), &ok);
	put(o, "existing", json_boolean(r->existing), &ok);
	for (size_t i = 0; i < r->n_limited; i++) {
		const Hf__LimitedTasks *l = r->limited[i];
		json_t *e = json_object();
		bool eok = true;
		put(e, "model_type", hfctl_json_string(l->model_type), &eok);
		put(e, "backend", json_string(hf_backend_name(l->backend)), &eok);
		put(e, "kind", json_string(hf_kind_name(l->kind)), &eok);
		put(e, "reason", hfctl_json_string(l->reason), &eok);
		put(e, "task_count", json_integer((json_int_t)l->task_count), &eok);
		append(limited, built(e, eok), &ok);
	}
	put(o, "limited", limited, &ok);
	return built(o, ok);
}

json_t *hfctl_json_explain(const Hf__ExplainReply *r)
{
	json_t *o = json_object(), *reasons = json_array();
	bool ok = true;

	for (size_t i = 0; i < r->n_reasons; i++)
		append(reasons, hfctl_json_string(r->reasons[i]), &ok);
	put(o, "task_id", json_integer((json_int_t)r->task_id), &ok);
	put(o, "status", json_string(hf_status_name(r->status)), &ok);
	put(o, "summary", hfctl_json_string(r->summary), &ok);
	put(o, "reasons", reasons, &ok);
	put(o, "fits", hfctl_json_device_fits(r->fits, r->n_fits), &ok);
	put(o, "fits_omitted", json_integer(r->fits_omitted), &ok);
	return built(o, ok);
}

json_t *hfctl_json_jobs(Hf__JobStatus *const *jobs, size_t n)
{
	json_t *a = json_array();
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		append(a, hfctl_json_job(jobs[i]), &ok);
	return built(a, ok);
}

json_t *hfctl_json_results(Hf__ResultRow *const *rows, size_t n)
{
	json_t *a = json_array();
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		append(a, hfctl_json_result(rows[i]), &ok);
	return built(a, ok);
}

json_t *hfctl_json_workers(Hf__WorkerInfo *const *workers, size_t n)
{
	json_t *a = json_array();
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		append(a, hfctl_json_worker(workers[i]), &ok);
	return built(a, ok);
}

json_t *hfctl_json_models(Hf__ModelInfo *const *models, size_t n)
{
	json_t *a = json_array();
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		append(a, hfctl_json_model(models[i]), &ok);
	return built(a, ok);
}
