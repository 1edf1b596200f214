/* SPDX-License-Identifier: MIT
 *
 * The JSON that "hfctl --json" prints: one object per job, result row,
 * worker and model, with every field of the protocol message under its
 * protocol name.  Enum values are their names ("cuda", "benchmark",
 * "passed"); times are unix seconds, or null for "not yet"; a result's
 * metrics_json is embedded as the JSON value it holds.  Pure: builds jansson
 * values and nothing else.
 *
 * Ownership: every function returns a new reference (json_decref), or NULL
 * when out of memory.  Any thread.
 */
#ifndef HFCTL_JSON_H
#define HFCTL_JSON_H

#include <jansson.h>

#include "hf_proto.h"

/* {"job_id", "name", "state", "submitter", "priority", "created_at",
 *  "finished_at", "total", "counts": {"queued": n, ... every status}} */
json_t *hfctl_json_job(const Hf__JobStatus *js);

/* Every ResultRow field; see hfctl_json_metrics for "metrics_json". */
json_t *hfctl_json_result(const Hf__ResultRow *row);

/* Every WorkerInfo field; labels and device attrs become objects. */
json_t *hfctl_json_worker(const Hf__WorkerInfo *w);

/* {"devices": [...], "absent": [...]}: each device is an object with
 * "worker_id", every Device field (attrs as an object), "telemetry" (an
 * object of "utilization_pct", "memory_used_bytes", "temperature_c",
 * "power_w", each null when not available: a negative gauge, a memory use
 * of 0, or no telemetry at all), "running" and "connected"; each absent
 * backend is {"worker", "backend", "reason"}, from its "worker/backend"
 * key. */
json_t *hfctl_json_devices(const Hf__DevicesReply *r);

/* {"task_id", "status", "summary", "reasons": [...]}, the status by name. */
json_t *hfctl_json_explain(const Hf__ExplainReply *r);

/* DeviceFit entries (explain's fits, a refused submit's unfit): an array
 * of {worker_id, device ("cuda:0" or null: the whole worker), backend,
 * state, unmet: [...], connected, last_seen, would_fit}. */
json_t *hfctl_json_device_fits(Hf__DeviceFit *const *v, size_t n);

/* Every ModelInfo field; "limits" is an array of {"backend", "kind",
 * "reason"}, "*" for every backend or both kinds. */
json_t *hfctl_json_model(const Hf__ModelInfo *m);

/* {"job_id", "task_count", "limited": [{"model_type", "backend", "kind",
 *  "reason", "task_count"}]}: what "hfctl submit --json" prints. */
json_t *hfctl_json_submit(const Hf__SubmitReply *r);

/* Arrays of the above, in the given order. */
json_t *hfctl_json_jobs(Hf__JobStatus *const *jobs, size_t n);
json_t *hfctl_json_results(Hf__ResultRow *const *rows, size_t n);
json_t *hfctl_json_workers(Hf__WorkerInfo *const *workers, size_t n);
json_t *hfctl_json_models(Hf__ModelInfo *const *models, size_t n);

/* The value for a metrics_json text: the JSON it parses to; the text itself
 * as a string when it is not valid JSON (so nothing is lost); null when it
 * is empty. */
json_t *hfctl_json_metrics(const char *text);

/* A JSON string for s; bytes that are not valid UTF-8 (text a runner wrote)
 * would make jansson refuse the whole string, so then every non-ASCII byte
 * becomes '?'. */
json_t *hfctl_json_string(const char *s);

#endif
