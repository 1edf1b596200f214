/* SPDX-License-Identifier: MIT
 *
 * The poll protocol and the worker's life cycle (see session.h): polls
 * with their assignments and cancels, the heartbeat, drain and ending.
 * Registration is session-register.c's, the results not yet acknowledged
 * session-results.c's, the health checks session-health.c's, the tasks
 * leased ahead of a free slot session-ahead.c's; struct session, which
 * they share, is in session-internal.h.  Four kinds of
 * call go to the coordinator, each with at most one outstanding: Register,
 * Poll, ResultBatch and HealthReport.
 * Their reply callbacks run on the loop thread (hf_nuv.h); the session
 * never closes the client from inside one of them, because ending is
 * always deferred to a timer.
 */
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "hf_log.h"
#include "hf_nuv.h"
#include "hf_proto.h"
#include "hf_util.h"
#include "hf_validate.h"
#include "result.h"
#include "session-internal.h"
#include "spool.h"

#define CALL_TIMEOUT_MIN_MS 5000
#define HEARTBEAT_MIN_MS 50
#define HEARTBEAT_MAX_MS 60000
#define REPLY_MAX (4u << 20)

static void session_check_drained(struct session *s);
static void beat_timer_cb(uv_timer_t *h);

/* ---- helpers ---- */

static int call_timeout_ms(const struct session *s)
{
	int64_t t = 3 * s->heartbeat_ms;
	return (int)(t > CALL_TIMEOUT_MIN_MS ? t : CALL_TIMEOUT_MIN_MS);
}

/* xorshift64*: jitter only, nothing secret. */
uint32_t session_random(struct session *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * UINT64_C(2685821657736338717)) >> 32);
}

/* Packs env and sends it; the reply goes to cb.  Returns 0 or a negative
 * errno (cb is then not called). */
int session_call(struct session *s, const Hf__Envelope *env, nuv_reply_cb cb)
{
	return session_call_arg(s, env, cb, s);
}

int session_call_arg(struct session *s, const Hf__Envelope *env, nuv_reply_cb cb, void *arg)
{
	Hf__Envelope with_token = *env;
	nng_msg *msg;
	int r;

	if (s->cfg.token)
		with_token.token = (char *)s->cfg.token;
	r = hf_env_pack(&with_token, &msg);
	if (r < 0)
		return r;
	return nuv_client_call(s->client, msg, call_timeout_ms(s), cb, arg);
}

/* The reply as a validated envelope (hf_validate.h): rv from the call, or
 * -EBADMSG when it is not a reply a coordinator may send (logged: what
 * broke which limit). */
int reply_unpack(int rv, nng_msg *reply, Hf__Envelope **ret_env)
{
	char err[256];

	if (rv < 0)
		return rv;
	rv = hf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), HF_MSG_WORKER_REPLY, ret_env, err,
			   sizeof(err));
	nng_msg_free(reply);
	if (rv < 0) {
		log_warn("refused a reply from the coordinator: %s", err);
		return -EBADMSG;
	}
	return 0;
}

const char *call_error(int rv)
{
	return rv == -EBADMSG ? "the reply could not be decoded" : strerror(-rv);
}

/* One heartbeat interval, jittered uniformly within +-10 %: workers
 * started together drift apart instead of polling in lockstep. */
static uint64_t beat_interval_ms(struct session *s)
{
	uint64_t spread = (uint64_t)s->heartbeat_ms / 5; /* 0.9 .. 1.1 x */

	return (uint64_t)s->heartbeat_ms - spread / 2 + session_random(s) % (spread + 1);
}

/* (Re)starts the heartbeat: the first beat at a random point of one
 * interval (a fleet that registered at once spreads out at once), each
 * next one a jittered interval later (beat_timer_cb). */
void beat_start(struct session *s)
{
	uv_timer_start(&s->beat_timer, beat_timer_cb,
		       session_random(s) % ((uint64_t)s->heartbeat_ms + 1), 0);
}

void session_set_heartbeat(struct session *s, uint32_t ms)
{
	if (ms == 0 || ms == s->heartbeat_ms)
		return;
	if (ms < HEARTBEAT_MIN_MS)
		ms = HEARTBEAT_MIN_MS;
	if (ms > HEARTBEAT_MAX_MS)
		ms = HEARTBEAT_MAX_MS;
	log_debug("heartbeat is now %" PRIu32 " ms", ms);
	s->heartbeat_ms = ms;
	if (uv_is_active((uv_handle_t *)&s->beat_timer))
		beat_start(s);
}

/* ---- polling ---- */

/* Answers an assignment the worker will not run with an error result
 * (an infrastructure failure: the coordinator runs it elsewhere). */
void session_reject(struct session *s, const Hf__Assignment *a, const char *reason)
{
	Hf__TaskResult *res;
	int r;

	log_warn("cannot run task %" PRIu64 " attempt %" PRIu32 " (%s): %s", a->task_id, a->attempt,
		 a->model_type, reason);
	r = result_new_error(a->task_id, a->attempt, a->device_index, hf_wall_s(), reason, &res);
	if (r < 0) {
		log_error("could not build the result of task %" PRIu64 ": %s; its lease will expire",
			  a->task_id, strerror(-r));
		return;
	}
	pending_add(s, res, false);
}

void session_device_use(void *arg, Hf__Backend backend, unsigned index, struct alloc_use *ret)
{
	struct session *s = arg;

	executor_device_use(s->ex, backend, index, &ret->tasks, &ret->benchmarks);
}

static void session_assign(struct session *s, const Hf__Assignment *a)
{
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n_devs = 0;
	char reason[384];
	int r;

	/* Assignments also come while registering again after the hardware
	 * changed: the coordinator still considers them this worker's. */
	if (s->draining || (s->state != SESSION_ACTIVE && s->state != SESSION_REGISTERING)) {
		session_reject(s, a, "worker is shutting down");
		return;
	}
	if (executor_has(s->ex, a->task_id, a->attempt) || ahead_has(s, a->task_id, a->attempt)) {
		/* Sent again (a reply that crossed a re-registration): it runs,
		 * and is no second task on its devices. */
		log_debug("task %" PRIu64 " attempt %" PRIu32 " is already running", a->task_id,
			  a->attempt);
		return;
	}
	/* A device held for a queued benchmark starts nothing before it: a
	 * task granted for a slot it offered before the benchmark came waits
	 * in the queue behind it. */
	const struct hw_device *d = hw_inventory_find(s->cfg.inv, a->backend, a->device_index);
	if (d && ahead_drains(s, (size_t)(d - s->cfg.inv->devices)) && ahead_take(s, a, true))
		return;
	r = alloc_admit(s->cfg.inv, a, session_device_use, s, devs, &n_devs, reason,
			sizeof(reason));
	if (r == -EBUSY && ahead_take(s, a, false))
		return; /* leased ahead: starts when a slot of its device frees */
	if (r < 0) {
		session_reject(s, a, reason);
		return;
	}
	r = executor_start(s->ex, a, devs, n_devs);
	if (r < 0) {
		snprintf(reason, sizeof(reason), "could not start the task: %s", strerror(-r));
		session_reject(s, a, reason);
	}
}

static void session_poll_reply(struct session *s, const Hf__PollReply *pr)
{
	session_set_heartbeat(s, pr->heartbeat_ms);
	for (size_t i = 0; i < pr->n_cancel; i++)
		if (!ahead_cancel(s, pr->cancel[i]->task_id, pr->cancel[i]->attempt,
				  "not started: cancelled at the coordinator's request (cancelled or lease lost)"))
			executor_stop(s->ex, pr->cancel[i]->task_id, pr->cancel[i]->attempt,
				      HF__TASK_STATUS__STATUS_CANCELLED,
				      "stopped at the coordinator's request (cancelled or lease lost)");
	/* Tests before benchmarks: a benchmark that cannot start now holds
	 * its device from there on (session-ahead.c), so the reply's tests
	 * run side by side first and its benchmarks one after another once
	 * the device is idle, instead of each benchmark waiting for the
	 * device to empty between two tests. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < pr->n_assignments; i++)
			if ((pr->assignments[i]->kind == HF__TASK_KIND__KIND_BENCHMARK) == (pass == 1))
				session_assign(s, pr->assignments[i]);
	if (pr->n_assignments > 0)
		results_flush(s); /* rejections */
	for (size_t i = 0; i < pr->n_health_checks && s->cfg.health_timeout_ms > 0; i++) {
		const Hf__HealthCheckRequest *hc = pr->health_checks[i];
		for (size_t d = 0; d < s->cfg.inv->n_devices && d < HW_MAX_DEVICES; d++)
			if (s->cfg.inv->devices[d].backend == hc->backend &&
			    s->cfg.inv->devices[d].index == hc->index && !s->health[d].due)
				s->health[d].due = "coordinator";
	}
	if (pr->n_health_checks > 0)
		health_run_due(s);
}

/* One poll in flight: whether it asked to be held. */
struct poll_call_ctx {
	struct session *s;
	bool held;
};

/* The free slots device i (an inventory position) offers in a poll: none
 * while the worker drains, while its health report waits for the
 * coordinator, or while it is held for a benchmark leased ahead. */
static unsigned offered_slots(struct session *s, size_t i, const struct alloc_use *use)
{
	if (s->draining || (i < HW_MAX_DEVICES && s->health[i].report_pending) || ahead_drains(s, i))
		return 0;
	return alloc_free_slots(&s->cfg.inv->devices[i], use);
}

/* Does a device have a free slot it offers? */
static bool session_has_free_slot(struct session *s)
{
	const struct hw_inventory *inv = s->cfg.inv;

	for (size_t i = 0; i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		struct alloc_use use;
		executor_device_use(s->ex, d->backend, d->index, &use.tasks, &use.benchmarks);
		if (offered_slots(s, i, &use) > 0)
			return true;
	}
	return false;
}

static void poll_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct poll_call_ctx *ctx = arg;
	struct session *s = ctx->s;
	Hf__Envelope *env = NULL;
	bool again = false;

	s->polls_out--;
	if (ctx->held)
		s->held_out--;
	free(ctx);
	rv = reply_unpack(rv, reply, &env);
	/* Also while registering again: what the reply assigns or cancels is
	 * still this worker's. */
	if (s->state == SESSION_DONE)
		goto out;
	if (rv < 0) {
		if (s->poll_failures++ % WARN_EVERY == 0)
			log_warn("could not poll %s: %s; retrying every heartbeat", s->cfg.url,
				 call_error(rv));
		goto out;
	}
	if (s->poll_failures > 0) {
		log_info("coordinator %s answers again", s->cfg.url);
		s->poll_failures = 0;
	}
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_POLL_REPLY:
		session_poll_reply(s, env->poll_reply);
		/* Its hold ran out, or work came and slots are left: wait for
		 * more in a new held poll at once.  An empty reply that was not
		 * held (a coordinator that does not hold) waits for the beat. */
		again = env->poll_reply->hold_ended || env->poll_reply->n_assignments > 0;
		break;
	case HF__ENVELOPE__BODY_ERROR:
		if (env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED) {
			session_reregister(s);
			goto out;
		}
		if (env->error->code == HF__ERROR_CODE__ERR_UNAUTHENTICATED ||
		    env->error->code == HF__ERROR_CODE__ERR_FORBIDDEN) {
			/* A revoked token: nothing this worker sends is taken any more. */
			log_error("coordinator %s refused worker \"%s\": %s; stopping (results stay in the spool)",
				  s->cfg.url, s->cfg.worker_id, env->error->message);
			session_end(s, 1);
			goto out;
		}
		log_warn("coordinator %s refused a poll: %s", s->cfg.url, env->error->message);
		break;
	default:
		log_warn("coordinator %s sent an unexpected reply to a poll, ignoring", s->cfg.url);
		break;
	}
	if (s->poll_again || (again && s->polls_out == 0 && session_has_free_slot(s)))
		poll_send(s); /* a slot was freed while this poll was out, or work may wait */
out:
	hf_env_free(env);
}

/* Samples the devices' telemetry unless that was done less than a
 * heartbeat ago: polls also go out when a task ends, and the vendor
 * interfaces are not asked more than once per heartbeat. */
static void session_telemetry_refresh(struct session *s)
{
	int64_t now = hf_mono_ms();

	if (!s->cfg.telemetry || (s->telemetry_at != 0 && now - s->telemetry_at < s->heartbeat_ms))
		return;
	s->n_telemetry = hw_telemetry_sample(s->cfg.inv, s->telemetry, HW_MAX_DEVICES);
	s->telemetry_at = now;
}

/* Sends Poll, held when a device has a free slot (no_hold: never);
 * returns 0 or a negative errno. */
static int poll_call(struct session *s, bool no_hold)
{
	const struct hw_inventory *inv = s->cfg.inv;
	size_t n_dev = inv->n_devices, n_run = executor_size(s->ex) + s->n_queued;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Poll poll = HF__POLL__INIT;
	Hf__DeviceFree *df = NULL, **dfp = NULL;
	Hf__DeviceTelemetry *dt = NULL, **dtp = NULL;
	Hf__TaskRef *tr = NULL, **trp = NULL;
	struct executor_ref *refs = NULL;
	struct poll_call_ctx *ctx = malloc(sizeof(*ctx));
	bool any_free = false;
	nng_msg *msg;
	int r = -ENOMEM;

	/* Sized by what there is (a poll goes out for most tasks): the
	 * telemetry sampled, not the most devices there could be. */
	session_telemetry_refresh(s);
	df = calloc(n_dev + 1, sizeof(*df));
	dfp = calloc(n_dev + 1, sizeof(*dfp));
	dt = calloc(s->n_telemetry + 1, sizeof(*dt));
	dtp = calloc(s->n_telemetry + 1, sizeof(*dtp));
	tr = calloc(n_run + 1, sizeof(*tr));
	trp = calloc(n_run + 1, sizeof(*trp));
	refs = calloc(n_run + 1, sizeof(*refs));
	if (!df || !dfp || !dt || !dtp || !tr || !trp || !refs || !ctx)
		goto out;
	for (size_t i = 0; i < n_dev; i++) {
		const struct hw_device *d = &inv->devices[i];
		struct alloc_use use;
		executor_device_use(s->ex, d->backend, d->index, &use.tasks, &use.benchmarks);
		hf__device_free__init(&df[i]);
		df[i].backend = d->backend;
		df[i].index = d->index;
		df[i].free_slots = offered_slots(s, i, &use);
		df[i].ahead = ahead_room(s, i, &use);
		df[i].ahead_benchmarks = df[i].ahead > 0;
		df[i].queued = ahead_queued(s, d->backend, d->index);
		any_free = any_free || df[i].free_slots > 0;
		dfp[i] = &df[i];
	}
	for (size_t i = 0; i < s->n_telemetry; i++) {
		const struct hw_telemetry *t = &s->telemetry[i];
		hf__device_telemetry__init(&dt[i]);
		dt[i].backend = t->backend;
		dt[i].index = t->index;
		dt[i].utilization_pct = t->utilization_pct;
		dt[i].memory_used_bytes = t->memory_used_bytes;
		dt[i].temperature_c = t->temperature_c;
		dt[i].power_w = t->power_w;
		dtp[i] = &dt[i];
	}
	poll.n_telemetry = s->n_telemetry;
	poll.telemetry = dtp;
	size_t n_exec = executor_list(s->ex, refs, n_run);
	for (size_t i = 0; i < n_exec; i++) {
		hf__task_ref__init(&tr[i]);
		tr[i].task_id = refs[i].task_id;
		tr[i].attempt = refs[i].attempt;
	}
	/* Tasks leased ahead are this worker's leases too. */
	n_run = n_exec + ahead_refs(s, tr + n_exec, n_run - n_exec);
	for (size_t i = 0; i < n_run; i++)
		trp[i] = &tr[i];
	poll.worker_id = (char *)s->cfg.worker_id;
	poll.n_free = n_dev;
	poll.free = dfp;
	poll.n_running = n_run;
	poll.running = trp;
	poll.draining = s->draining;
	poll.session = s->reg_session;
	/* Idle slots: the coordinator may hold the reply until work comes,
	 * about a heartbeat (it bounds the hold by its own settings). */
	poll.hold_ms = any_free && !no_hold ? (uint32_t)beat_interval_ms(s) : 0;
	poll.replaces_held = s->held_out > 0;
	env.body_case = HF__ENVELOPE__BODY_POLL;
	env.poll = &poll;
	if (s->cfg.token)
		env.token = (char *)s->cfg.token;
	r = hf_env_pack(&env, &msg);
	if (r < 0)
		goto out;
	ctx->s = s;
	ctx->held = poll.hold_ms > 0;
	/* A held reply comes after the hold at the latest: the call waits
	 * that much longer than any other. */
	r = nuv_client_call(s->client, msg, call_timeout_ms(s) + (int)poll.hold_ms, poll_reply_cb, ctx);
	if (r < 0)
		goto out;
	s->polls_out++;
	if (ctx->held)
		s->held_out++;
	ctx = NULL;
out:
	free(ctx);
	free(df);
	free(dfp);
	free(dt);
	free(dtp);
	free(tr);
	free(trp);
	free(refs);
	return r;
}

/* Polls now, or as soon as the outstanding poll is answered. */
void poll_send(struct session *s)
{
	int r;

	if (s->state != SESSION_ACTIVE)
		return;
	/* A held poll out is answered by the coordinator when this one
	 * comes; any other poll out is waited for. */
	if (s->polls_out > 0 && !(s->polls_out == 1 && s->held_out == 1)) {
		s->poll_again = true;
		return;
	}
	r = poll_call(s, false);
	if (r < 0) {
		log_warn("could not poll %s: %s", s->cfg.url, strerror(-r));
		return;
	}
	s->poll_again = false;
}

/* ---- executor and timers ---- */

static void task_done_cb(struct executor *ex, Hf__TaskResult *result, void *arg)
{
	struct session *s = arg;

	(void)ex;
	ahead_task_ran(s, result);
	health_run_due(s); /* a device waiting for a check may be idle now */
	ahead_start(s);    /* a task leased ahead takes the slot, before any poll */
	/* A slot is free (or, draining, the coordinator learns it): ask for
	 * the next task before the result is made durable in the spool, so
	 * the slot's next lease does not wait for those writes.  The result
	 * is still spooled before it is sent.  With tasks leased ahead, a slot
	 * their queue filled asks for nothing until the queue of a device is
	 * down to half (then one poll asks for several), or the heartbeat's
	 * poll comes. */
	if (s->cfg.lease_ahead == 0 || s->draining || session_has_free_slot(s) || ahead_wants_refill(s))
		poll_send(s);
	pending_add(s, result, false);
	results_flush(s);
	session_check_drained(s);
}

static void beat_timer_cb(uv_timer_t *h)
{
	struct session *s = h->data;

	for (struct pending *p = s->pending; p; p = p->next)
		if (!p->spooled)
			pending_spool(s, p);
	health_run_due(s);
	/* A held poll out is this beat's: the coordinator renewed the
	 * leases when it came, and answers it within a heartbeat. */
	if (s->held_out == 0)
		poll_send(s);
	results_flush(s);
	health_flush(s);
	uv_timer_start(&s->beat_timer, beat_timer_cb, beat_interval_ms(s), 0);
}

static void drain_timer_cb(uv_timer_t *h)
{
	struct session *s = h->data;

	log_warn("drain timeout: stopping %zu running tasks", executor_size(s->ex));
	executor_stop_all(s->ex, HF__TASK_STATUS__STATUS_ERROR,
			  "worker shut down: task stopped after drain timeout");
}

static void flush_timer_cb(uv_timer_t *h)
{
	struct session *s = h->data;

	log_warn("%zu results were not acknowledged in time; they stay in the spool for the next start",
		 s->n_pending);
	session_end(s, 0);
}

static void session_check_drained(struct session *s)
{
	if (!s->draining || s->state == SESSION_FLUSHING || s->state == SESSION_DONE ||
	    executor_size(s->ex) > 0)
		return;
	uv_timer_stop(&s->drain_timer);
	if (s->n_pending == 0) {
		log_info("drained, no results to report");
		session_end(s, 0);
		return;
	}
	if (s->state != SESSION_ACTIVE) {
		log_info("drained; not registered, so %zu results stay in the spool for the next start",
			 s->n_pending);
		session_end(s, 0);
		return;
	}
	log_info("drained; reporting the last %zu results", s->n_pending);
	s->state = SESSION_FLUSHING;
	uv_timer_start(&s->flush_timer, flush_timer_cb, SESSION_FLUSH_MS, 0);
	results_flush(s);
}

/* ---- ending ---- */

static void session_handle_closed_cb(uv_handle_t *h)
{
	struct session *s = h->data;

	if (--s->open_handles == 0 && s->cb)
		s->cb(s, s->exit_code, s->arg);
}

static void finish_timer_cb(uv_timer_t *h)
{
	struct session *s = h->data;
	uv_timer_t *timers[] = { &s->reg_timer, &s->beat_timer, &s->drain_timer, &s->flush_timer,
				 &s->finish_timer };

	executor_close(s->ex); /* kills what still runs, without results */
	s->ex = NULL;
	/* The client is closed only once no call is outstanding (up to
	 * finish_deadline), so that results in flight get their
	 * acknowledgement.  (This once also kept nng 1.5's REQ socket from
	 * deadlocking in nng_close, nng issue #1813; hf_spclient.c has no
	 * such hang.)  Every call ends by its timeout at the latest. */
	if ((s->reg_inflight || s->polls_out > 0 || s->results_out > 0 || s->health_inflight) &&
	    hf_mono_ms() < s->finish_deadline) {
		uv_timer_start(&s->finish_timer, finish_timer_cb, 10, 0);
		return;
	}
	nuv_client_close(s->client);
	s->client = NULL;
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		uv_close((uv_handle_t *)timers[i], session_handle_closed_cb);
}

/* Ends the session: deferred to a timer so that it never runs inside an
 * nng reply callback (closing the client there would deadlock). */
void session_end(struct session *s, int exit_code)
{
	if (s->state == SESSION_DONE)
		return;
	/* A held poll would keep the client open until its hold ends: a
	 * poll that takes no work makes the coordinator answer it now. */
	if (s->held_out > 0 && s->polls_out == 1) {
		bool draining = s->draining;
		s->draining = true;
		if (poll_call(s, true) < 0)
			log_debug("could not end the held poll early; it ends with its hold");
		s->draining = draining;
	}
	s->state = SESSION_DONE;
	s->exit_code = exit_code;
	s->finish_deadline = hf_mono_ms() + call_timeout_ms(s) + 1000;
	uv_timer_start(&s->finish_timer, finish_timer_cb, 0, 0);
}

void session_drain(struct session *s)
{
	if (s->draining || s->state == SESSION_DONE)
		return;
	s->draining = true;
	s->prewarm_due = false;
	executor_prewarm_stop(s->ex); /* no new work: no runner ahead of it */
	if (s->n_queued > 0) {
		ahead_return_all(s, "not started: the worker is draining");
		results_flush(s);
	}
	if (executor_size(s->ex) > 0) {
		log_info("draining: taking no new work, waiting up to %g s for %zu running tasks",
			 (double)s->cfg.drain_timeout_ms / 1000.0, executor_size(s->ex));
		uv_timer_start(&s->drain_timer, drain_timer_cb, (uint64_t)s->cfg.drain_timeout_ms, 0);
		poll_send(s); /* tell the coordinator now */
	} else {
		log_info("draining: no running tasks");
	}
	session_check_drained(s);
}

void session_stop_now(struct session *s)
{
	if (s->state == SESSION_DONE)
		return;
	log_warn("stopping now: %zu running tasks are killed, %zu unreported results stay in the spool",
		 executor_size(s->ex), s->n_pending);
	session_end(s, 0);
}

/* ---- hardware ---- */

void session_inventory_set(struct session *s, const struct hw_inventory *inv)
{
	s->cfg.inv = inv;
	s->n_telemetry = 0;
	s->telemetry_at = 0;
	/* New hardware: what was known about the old devices' health is not
	 * about these (a check in flight reports by backend and index). */
	memset(s->health, 0, sizeof(s->health));
	health_reset(s);
	s->prewarm_due = s->cfg.prewarm && s->cfg.exec.warm;
	switch (s->state) {
	case SESSION_REGISTERING:
		/* A Register on its way describes the old hardware; a retry not
		 * sent yet will describe the new. */
		if (s->reg_inflight)
			s->reg_stale = true;
		break;
	case SESSION_ACTIVE:
		log_info("hardware changed: registering again with %s (%zu devices)", s->cfg.url,
			 inv->n_devices);
		s->state = SESSION_REGISTERING;
		s->backoff_ms = 0;
		register_send(s);
		break;
	case SESSION_FLUSHING:
	case SESSION_DONE:
		break; /* ending: no new work will come */
	}
}

/* ---- set-up ---- */

void session_start(struct session *s)
{
	register_send(s);
}

int session_new(uv_loop_t *loop, const struct session_config *cfg, session_exit_cb cb, void *arg,
		struct session **ret_s, char *err, size_t errlen)
{
	struct session *s = calloc(1, sizeof(*s));
	uv_timer_t *timers[5];
	Hf__TaskResult **spooled = NULL;
	size_t n_spooled = 0;
	int r;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->loop = loop;
	s->cfg = *cfg;
	s->cb = cb;
	s->arg = arg;
	s->heartbeat_ms = cfg->heartbeat_ms;
	s->pending_tail = &s->pending;
	health_reset(s);
	s->prewarm_due = cfg->prewarm && cfg->exec.warm;
	s->rng = (uint64_t)getpid() * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)hf_mono_ms() ^
		 (uint64_t)(hf_wall_s() * 1e6);
	if (s->rng == 0)
		s->rng = 1;

	r = spool_open(cfg->exec.state_dir, &s->spool);
	if (r == -EBUSY) {
		snprintf(err, errlen, "state directory \"%s\" is in use by another hf-worker",
			 cfg->exec.state_dir);
		goto fail;
	}
	if (r < 0) {
		snprintf(err, errlen, "could not open the result spool in \"%s\": %s",
			 cfg->exec.state_dir, strerror(-r));
		goto fail;
	}
	/* A restart on this state directory is the same worker coming back:
	 * it registers under its last session (spool.h). */
	spool_session_load(s->spool, &s->reg_session);
	r = executor_new(loop, &cfg->exec, task_done_cb, s, &s->ex);
	if (r < 0) {
		snprintf(err, errlen, "could not set up the executor: %s", strerror(-r));
		goto fail;
	}
	r = spool_load(s->spool, &spooled, &n_spooled);
	if (r < 0) {
		snprintf(err, errlen, "could not load the result spool \"%s\": %s",
			 spool_dir(s->spool), strerror(-r));
		goto fail;
	}
	for (size_t i = 0; i < n_spooled; i++)
		pending_add(s, spooled[i], true);
	free(spooled);
	if (n_spooled)
		log_info("%zu results from an earlier run are waiting in the spool", n_spooled);
	r = executor_task_dirs_clean(s->ex);
	if (r < 0)
		log_warn("could not clean up old task directories: %s, ignoring", strerror(-r));

	char why[512];
	r = nuv_client_open(loop, cfg->url, cfg->tls, REPLY_MAX, &s->client, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "could not open a connection to \"%s\": %s", cfg->url, why);
		goto fail;
	}

	timers[0] = &s->reg_timer;
	timers[1] = &s->beat_timer;
	timers[2] = &s->drain_timer;
	timers[3] = &s->flush_timer;
	timers[4] = &s->finish_timer;
	for (size_t i = 0; i < 5; i++) {
		uv_timer_init(loop, timers[i]);
		timers[i]->data = s;
	}
	s->open_handles = 5;
	s->state = SESSION_REGISTERING;
	*ret_s = s;
	return 0;

fail:
	executor_close(s->ex); /* nothing runs yet: freed at once */
	spool_close(s->spool);
	pending_free_all(s);
	free(s);
	return r;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	pending_free_all(s);
	ahead_free_all(s);
	spool_close(s->spool);
	free(s);
}
