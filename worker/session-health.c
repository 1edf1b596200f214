/* SPDX-License-Identifier: MIT
 *
 * Health checks of the session's devices (see session.h): when a check is
 * due (after registering with new hardware, periodically, at the
 * coordinator's request), starting it on an idle device through the
 * executor, and the HealthReport calls that report the outcomes, holding
 * each device's slots until the coordinator acknowledged its report.  Runs
 * on the loop thread only; the reply callback is deferred there by
 * hf_nuv.h.
 */
#include <string.h>

#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"
#include "session-internal.h"
#include "worker-metrics.h"

/* After start or new hardware: check every device once registered, and
 * count the periodic interval from now. */
void health_reset(struct session *s)
{
	int64_t now = hf_mono_ms();

	s->health_at_register = s->cfg.health_on_register;
	for (size_t i = 0; i < HW_MAX_DEVICES; i++)
		s->health[i].last_check_ms = now;
}

static void health_check_done_cb(struct executor *ex, const struct executor_check *c, void *arg)
{
	struct session *s = arg;
	const struct hw_inventory *inv = s->cfg.inv;

	(void)ex;
	worker_metrics_health_check(c->ok);
	for (size_t i = 0; i < inv->n_devices && i < HW_MAX_DEVICES; i++) {
		struct dev_health *h = &s->health[i];
		if (inv->devices[i].backend != c->backend || inv->devices[i].index != c->index)
			continue;
		h->last_check_ms = hf_mono_ms();
		h->report_pending = true;
		h->report_sent = false;
		h->ok = c->ok;
		hf_strlcpy(h->detail, c->detail, sizeof(h->detail));
		h->duration_s = c->duration_s;
		h->finished_at = c->finished_at;
		if (!h->trigger)
			h->trigger = "coordinator";
		break;
	}
	health_flush(s);
	poll_send(s); /* the device may be free again (no report to wait for) */
}

/* Starts the checks that are due on idle devices. */
void health_run_due(struct session *s)
{
	const struct hw_inventory *inv = s->cfg.inv;
	int64_t now = hf_mono_ms();

	if (s->cfg.health_timeout_ms <= 0 || s->draining || s->state != SESSION_ACTIVE)
		return;
	for (size_t i = 0; i < inv->n_devices && i < HW_MAX_DEVICES; i++) {
		const struct hw_device *d = &inv->devices[i];
		struct dev_health *h = &s->health[i];
		unsigned tasks, benchmarks;

		if (!h->due && s->cfg.health_interval_ms > 0 &&
		    now - h->last_check_ms >= s->cfg.health_interval_ms)
			h->due = "periodic";
		if (!h->due || h->report_pending || executor_checking(s->ex, d->backend, d->index))
			continue;
		executor_device_use(s->ex, d->backend, d->index, &tasks, &benchmarks);
		if (tasks > 0)
			continue; /* when it is idle */
		int r = executor_check_start(s->ex, d, d->backend, d->index, s->cfg.health_timeout_ms,
					     health_check_done_cb, s);
		if (r < 0) {
			log_warn("could not start a health check of %s:%u: %s; trying again later",
				 hf_backend_name(d->backend), d->index, strerror(-r));
			h->last_check_ms = now;
			continue;
		}
		h->trigger = h->due;
		h->due = NULL;
	}
}

static void health_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct session *s = arg;
	Hf__Envelope *env = NULL;
	bool acked = false;

	s->health_inflight = false;
	rv = reply_unpack(rv, reply, &env);
	if (s->state == SESSION_DONE)
		goto out;
	if (rv < 0) {
		log_debug("could not report health checks to %s: %s; sending them again", s->cfg.url,
			  call_error(rv));
	} else if (env->body_case == HF__ENVELOPE__BODY_ACK) {
		acked = true;
	} else if (env->body_case == HF__ENVELOPE__BODY_ERROR &&
		   (env->error->code == HF__ERROR_CODE__ERR_BAD_REQUEST ||
		    env->error->code == HF__ERROR_CODE__ERR_FORBIDDEN)) {
		/* Every coordinator of protocol 2 takes health reports: this one
		 * refused these checks (a device it does not list for this worker,
		 * after a hardware change it has not seen yet).  Sending them again
		 * cannot help; the next checks are reported as usual. */
		log_warn("coordinator %s refused health checks: %s; dropping them", s->cfg.url,
			 env->error->message);
		acked = true;
	} else if (env->body_case == HF__ENVELOPE__BODY_ERROR &&
		   env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED) {
		session_reregister(s);
	} else {
		log_warn("coordinator %s did not take the health checks: %s; sending them again", s->cfg.url,
			 env->body_case == HF__ENVELOPE__BODY_ERROR ? env->error->message : "unexpected reply");
	}
	for (size_t i = 0; i < HW_MAX_DEVICES; i++) {
		struct dev_health *h = &s->health[i];
		if (!h->report_sent)
			continue;
		h->report_sent = false;
		if (acked) {
			h->report_pending = false;
			h->trigger = NULL;
		}
	}
	if (acked) {
		ahead_start(s); /* tasks leased ahead on those devices may start */
		poll_send(s);   /* those devices offer their slots again */
	}
out:
	hf_env_free(env);
}

/* Sends the health check outcomes not yet acknowledged. */
void health_flush(struct session *s)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__HealthReport hr = HF__HEALTH_REPORT__INIT;
	Hf__HealthResult res[HW_MAX_DEVICES], *ptrs[HW_MAX_DEVICES];
	const struct hw_inventory *inv = s->cfg.inv;
	size_t n = 0;
	int r;

	if (s->state != SESSION_ACTIVE || s->health_inflight)
		return;
	for (size_t i = 0; i < inv->n_devices && i < HW_MAX_DEVICES; i++) {
		struct dev_health *h = &s->health[i];
		if (!h->report_pending)
			continue;
		hf__health_result__init(&res[n]);
		res[n].backend = inv->devices[i].backend;
		res[n].index = inv->devices[i].index;
		res[n].ok = h->ok;
		res[n].detail = h->detail;
		res[n].duration_s = h->duration_s;
		res[n].checked_at = h->finished_at;
		res[n].trigger = (char *)(h->trigger ? h->trigger : "");
		ptrs[n] = &res[n];
		n++;
	}
	if (n == 0)
		return;
	hr.worker_id = (char *)s->cfg.worker_id;
	hr.session = s->reg_session;
	hr.results = ptrs;
	hr.n_results = n;
	env.body_case = HF__ENVELOPE__BODY_HEALTH_REPORT;
	env.health_report = &hr;
	r = session_call(s, &env, health_reply_cb);
	if (r < 0) {
		log_warn("could not report health checks to %s: %s", s->cfg.url, strerror(-r));
		return;
	}
	s->health_inflight = true;
	for (size_t i = 0; i < inv->n_devices && i < HW_MAX_DEVICES; i++)
		if (s->health[i].report_pending)
			s->health[i].report_sent = true;
}
