/* SPDX-License-Identifier: MIT
 *
 * The control requests answered from the fleet in memory: explain (why a
 * task is where it is: for a queued one, every device of its backend with
 * what keeps it from taking the task, through fleet-fit.h), workers (with
 * their connectivity and drains) and devices.  Loop thread only.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "control-int.h"
#include "fleet-fit.h"
#include "hf_fit.h"
#include "hf_limits.h"
#include "hf_proto.h"
#include "hf_util.h"

/* ---- explain ---- */

static void explain_reply(struct control_req *q, uint64_t task_id, Hf__TaskStatus st, const char *summary,
			  struct fit_list *fits)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ExplainReply er = HF__EXPLAIN_REPLY__INIT;
	size_t n = fits ? fit_list_count(fits) : 0;
	char **lines = calloc(n + 1, sizeof(*lines));
	struct hf_buf b;
	double now_wall = hf_wall_s();

	er.task_id = task_id;
	er.status = st;
	er.summary = (char *)summary;
	if (fits && lines) {
		Hf__DeviceFit **v = fit_list_msgs(fits);
		for (size_t i = 0; i < n; i++) {
			hf_buf_init(&b);
			hf_fit_line(v[i], now_wall, HF_FIT_CLOCK_UTC, NULL, &b);
			lines[er.n_reasons++] = b.data; /* owned: freed below */
		}
		er.reasons = lines;
		er.fits = v;
		er.n_fits = n;
		er.fits_omitted = (uint32_t)fit_list_omitted(fits);
	}
	env.body_case = HF__ENVELOPE__BODY_EXPLAIN_REPLY;
	env.explain_reply = &er;
	coord_reply(q->req, &env);
	for (size_t i = 0; i < er.n_reasons; i++)
		free(lines[i]);
	free(lines);
}

/* Why a queued task waits: every device of its backend, each with what
 * keeps it from taking the task; a disconnected worker as a whole. */
static void explain_queued(struct control_req *q, const struct sched_task *t)
{
	struct coord *c = q->c;
	const struct match_req *req = t->job->data;
	int64_t now = hf_mono_ms();
	double now_wall = hf_wall_s();
	size_t devices = 0, fitting = 0, idle_fitting = 0, quarantined = 0, drained = 0;
	size_t disconnected = 0, disconnected_fit = 0;
	struct fit_list *fits = fit_list_new(HF_MAX_DEVICE_FITS);
	size_t cap = sched_count(c->sched);
	struct sched_task **leased = calloc(cap + 1, sizeof(*leased));
	char summary[512], detail[HF_UNMET_MAX];

	if (!fits || !leased) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	size_t n_leased = sched_collect_state(c->sched, SCHED_LEASED, leased, cap);
	for (struct coord_worker *w = c->workers; w; w = w->next) {
		const Hf__Register *reg = w->reg;
		bool connected = coord_worker_connected(c, w, now);
		double seen = now_wall - (double)(now - w->last_seen_ms) / 1000.0;
		struct match_unmet joined = { .max = MATCH_MAX_UNMET };
		size_t w_devices = 0, w_fitting = 0;
		for (size_t i = 0; i < reg->n_devices; i++) {
			const Hf__Device *d = reg->devices[i];
			struct match_unmet u = { .max = MATCH_MAX_UNMET };
			const char *qreason;
			if (d->backend != t->backend)
				continue;
			devices++;
			w_devices++;
			bool fits_req = match_device_unmet(req, reg, d, &u) == 0;
			if (!connected) {
				/* Gathered into the worker's one entry. */
				if (fits_req) {
					w_fitting++;
				} else {
					fit_unmet_of_device(&joined, d, &u);
				}
				continue;
			}
			if (coord_drained(c, w->id, d)) {
				drained++;
				fit_list_add(fits, w, true, seen, d->backend, d, "drained", fits_req, &u, NULL);
			} else if (coord_quarantined(c, w->id, d, &qreason)) {
				quarantined++;
				fit_list_add(fits, w, true, seen, d->backend, d, "quarantined", fits_req, &u, qreason);
			} else if (!fits_req) {
				fit_list_add(fits, w, true, seen, d->backend, d, "unfit", false, &u, NULL);
			} else {
				fitting++;
				size_t busy = coord_device_running(leased, n_leased, w->id, d);
				uint32_t slots = d->slots ? d->slots : 1;
				if (busy >= slots) {
					snprintf(detail, sizeof(detail), "%zu of %u slots in use", busy, slots);
					fit_list_add(fits, w, true, seen, d->backend, d, "busy", true, NULL, detail);
				} else if (t->kind == HF__TASK_KIND__KIND_BENCHMARK && busy > 0) {
					snprintf(detail, sizeof(detail), "a benchmark needs the device idle; %zu tasks run on it",
						 busy);
					fit_list_add(fits, w, true, seen, d->backend, d, "busy", true, NULL, detail);
				} else {
					idle_fitting++;
					fit_list_add(fits, w, true, seen, d->backend, d, "free", true, NULL,
						     "could take it at its next poll");
				}
			}
		}
		if (!connected && w_devices) {
			disconnected++;
			bool could = w_fitting >= (req ? req->devices : 1);
			disconnected_fit += could;
			fit_list_add(fits, w, false, seen, t->backend, NULL, "disconnected", could, &joined, NULL);
		}
	}
	size_t ahead = sched_queued(c->sched, t->backend);
	if (t->job->max_running && t->job->running >= t->job->max_running)
		snprintf(summary, sizeof(summary), "queued: job %" PRIu64 " already runs %zu tasks, its cap", t->job_id,
			 t->job->running);
	else if (devices == 0)
		snprintf(summary, sizeof(summary), "queued: no registered worker has a %s device",
			 hf_backend_name(t->backend));
	else if (fitting == 0 && disconnected_fit && quarantined + drained == 0)
		snprintf(summary, sizeof(summary),
			 "queued: only disconnected workers could run it (%zu of them); it waits for them to come back",
			 disconnected_fit);
	else if (fitting == 0 && quarantined + drained > 0 && quarantined + drained + disconnected == devices)
		snprintf(summary, sizeof(summary), "queued: every %s device is out of service (%zu quarantined, %zu drained)",
			 hf_backend_name(t->backend), quarantined, drained);
	else if (fitting == 0)
		snprintf(summary, sizeof(summary),
			 "queued: none of the %zu %s devices meets the job's requirements or is in service%s",
			 devices, hf_backend_name(t->backend), disconnected ? " (some workers are disconnected)" : "");
	else if (idle_fitting == 0)
		snprintf(summary, sizeof(summary), "queued: all %zu matching devices are busy", fitting);
	else
		snprintf(summary, sizeof(summary),
			 "queued: a matching device is free; it waits its turn among %zu queued %s tasks",
			 ahead, hf_backend_name(t->backend));
	explain_reply(q, t->id, HF__TASK_STATUS__STATUS_QUEUED, summary, fits);
out:
	fit_list_free(fits);
	free(leased);
}

void handle_explain(struct control_req *q)
{
	struct coord *c = q->c;
	uint64_t id = q->env->explain->task_id;
	struct sched_task *t = sched_task_find(c->sched, id);
	char summary[512];
	int64_t now = hf_mono_ms();

	if (!t) {
		/* Not live: finished, or no such task; the database knows which. */
		q->op.kind = DB_OP_TASK_EXPLAIN;
		q->op.u.read.job_id = id;
		q->op.done = control_read_done;
		q->op.ctx = q;
		db_submit(c->db, &q->op);
		return;
	}
	switch (t->state) {
	case SCHED_LEASED:
	case SCHED_GRANTING:
		snprintf(summary, sizeof(summary), "running: attempt %u on worker \"%s\", %s:%u, lease renewed %.1f s ago",
			 t->attempt, t->worker_id, hf_backend_name(t->backend), t->device_index,
			 (double)(now - (t->lease_expires_ms - c->conf.lease_ms)) / 1000.0);
		explain_reply(q, id, HF__TASK_STATUS__STATUS_LEASED, summary, NULL);
		break;
	case SCHED_EXPIRING:
		snprintf(summary, sizeof(summary), "its lease on worker \"%s\" ended; it is being queued again",
			 t->worker_id);
		explain_reply(q, id, HF__TASK_STATUS__STATUS_QUEUED, summary, NULL);
		break;
	case SCHED_CANCELLING:
		snprintf(summary, sizeof(summary), "cancelled; worker \"%s\" is stopping it", t->worker_id);
		explain_reply(q, id, HF__TASK_STATUS__STATUS_CANCELLED, summary, NULL);
		break;
	case SCHED_DELAYED:
		snprintf(summary, sizeof(summary),
			 "attempt %u failed in the infrastructure; retried in %.1f s, preferably on another device",
			 t->attempt, (double)(t->not_before_ms - now) / 1000.0);
		explain_reply(q, id, HF__TASK_STATUS__STATUS_QUEUED, summary, NULL);
		break;
	case SCHED_QUEUED:
		explain_queued(q, t);
		break;
	}
	control_req_free(q);
}

/* ---- answered from memory ---- */

void handle_workers(struct control_req *q)
{
	struct coord *c = q->c;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__WorkersReply wr = HF__WORKERS_REPLY__INIT;
	size_t n = 0, i = 0;
	int64_t now = hf_mono_ms();
	double wall = hf_wall_s();

	size_t n_drains = 0, k_drain = 0;
	for (struct coord_worker *w = c->workers; w; w = w->next)
		n++;
	for (const struct coord_drain *d = c->drains; d; d = d->next)
		n_drains++;
	Hf__WorkerInfo *mem = calloc(n + 1, sizeof(*mem));
	Hf__WorkerInfo **ptrs = calloc(n + 1, sizeof(*ptrs));
	Hf__Drain *drains = calloc(n_drains + 1, sizeof(*drains));
	Hf__Drain **drain_ptrs = calloc(n_drains + 1, sizeof(*drain_ptrs));
	if (!mem || !ptrs || !drains || !drain_ptrs) {
		free(mem);
		free(ptrs);
		free(drains);
		free(drain_ptrs);
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		control_req_free(q);
		return;
	}
	for (struct coord_worker *w = c->workers; w; w = w->next, i++) {
		const Hf__Register *r = w->reg;
		Hf__WorkerInfo *wi = &mem[i];
		hf__worker_info__init(wi);
		wi->worker_id = w->id;
		wi->hostname = r->hostname;
		wi->software_version = r->software_version;
		wi->protocol_version = r->protocol_version;
		wi->labels = r->labels;
		wi->n_labels = r->n_labels;
		wi->devices = r->devices;
		wi->n_devices = r->n_devices;
		wi->runtimes = r->runtimes;
		wi->n_runtimes = r->n_runtimes;
		wi->cpu = r->cpu;
		wi->connected = coord_worker_connected(c, w, now);
		wi->last_seen = wall - (double)(now - w->last_seen_ms) / 1000.0;
		/* Its drains: the worker's own first, then its devices'. */
		wi->drains = drain_ptrs + k_drain;
		for (int pass = 0; pass < 2; pass++)
			for (const struct coord_drain *d = c->drains; d && k_drain < n_drains; d = d->next) {
				if (strcmp(d->d.worker_id, w->id) != 0 || (d->d.backend >= 0) != (pass == 1))
					continue;
				Hf__Drain *hd = &drains[k_drain];
				hf__drain__init(hd);
				hd->one_device = d->d.backend >= 0;
				hd->backend = d->d.backend >= 0 ? (Hf__Backend)d->d.backend : 0;
				hd->index = d->d.index >= 0 ? (uint32_t)d->d.index : 0;
				hd->by = (char *)d->d.by;
				hd->since = d->d.since;
				drain_ptrs[k_drain++] = hd;
				wi->n_drains++;
			}
		ptrs[i] = wi;
	}
	/* Running tasks per worker, from the leases. */
	size_t cap = sched_count(c->sched);
	struct sched_task **buf = calloc(cap + 1, sizeof(*buf));
	size_t got = buf ? sched_collect_state(c->sched, SCHED_LEASED, buf, cap) : 0;
	for (size_t k = 0; k < got; k++)
		for (size_t j = 0; j < n; j++)
			if (strcmp(buf[k]->worker_id, mem[j].worker_id) == 0)
				mem[j].running++;
	free(buf);
	wr.workers = ptrs;
	wr.n_workers = n;
	env.body_case = HF__ENVELOPE__BODY_WORKERS_REPLY;
	env.workers_reply = &wr;
	coord_reply(q->req, &env);
	free(mem);
	free(ptrs);
	free(drains);
	free(drain_ptrs);
	control_req_free(q);
}

void handle_devices(struct control_req *q)
{
	struct coord *c = q->c;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__DevicesReply dr = HF__DEVICES_REPLY__INIT;
	size_t nd = 0, na = 0;
	int64_t now = hf_mono_ms();

	for (struct coord_worker *w = c->workers; w; w = w->next) {
		nd += w->reg->n_devices;
		na += w->reg->n_backends;
	}
	Hf__DeviceInfo *info = calloc(nd + 1, sizeof(*info));
	Hf__DeviceInfo **ptrs = calloc(nd + 1, sizeof(*ptrs));
	Hf__KeyValue *absent = calloc(na + 1, sizeof(*absent));
	Hf__KeyValue **aptrs = calloc(na + 1, sizeof(*aptrs));
	char (*keys)[192] = calloc(na + 1, sizeof(*keys));
	size_t n_leased = sched_count(c->sched);
	struct sched_task **leased = calloc(n_leased + 1, sizeof(*leased));
	if (!info || !ptrs || !absent || !aptrs || !keys || !leased) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	n_leased = sched_collect_state(c->sched, SCHED_LEASED, leased, n_leased);
	nd = na = 0;
	for (struct coord_worker *w = c->workers; w; w = w->next) {
		const Hf__Register *r = w->reg;
		bool connected = coord_worker_connected(c, w, now);
		for (size_t i = 0; i < r->n_devices; i++) {
			Hf__DeviceInfo *di = &info[nd];
			hf__device_info__init(di);
			di->worker_id = w->id;
			di->device = r->devices[i];
			di->connected = connected;
			di->telemetry = coord_worker_telemetry(w, r->devices[i]);
			di->running = (uint32_t)coord_device_running(leased, n_leased, w->id, r->devices[i]);
			const struct health_dev *hd = health_find(&c->health, w->id, (int)r->devices[i]->backend,
								  r->devices[i]->index);
			di->infra_failures = hd ? hd->failures : 0;
			if (hd && hd->quarantined) {
				di->state = "quarantined";
				di->state_reason = (char *)hd->reason;
			} else if (coord_drained(c, w->id, r->devices[i])) {
				di->state = "drained";
			} else {
				di->state = "in-service";
			}
			ptrs[nd++] = di;
		}
		for (size_t i = 0; i < r->n_backends; i++) {
			if (r->backends[i]->present)
				continue;
			hf__key_value__init(&absent[na]);
			snprintf(keys[na], sizeof(keys[na]), "%s/%s", w->id,
				 hf_backend_name(r->backends[i]->backend));
			absent[na].key = keys[na];
			absent[na].value = r->backends[i]->reason;
			aptrs[na] = &absent[na];
			na++;
		}
	}
	dr.devices = ptrs;
	dr.n_devices = nd;
	dr.absent = aptrs;
	dr.n_absent = na;
	env.body_case = HF__ENVELOPE__BODY_DEVICES_REPLY;
	env.devices_reply = &dr;
	coord_reply(q->req, &env);
out:
	free(info);
	free(ptrs);
	free(absent);
	free(aptrs);
	free(keys);
	free(leased);
	control_req_free(q);
}

