/* SPDX-License-Identifier: MIT
 *
 * The worker-facing protocol: registration, polls (heartbeat, lease renewal
 * and work assignment in one) and result reports.  Every reply that
 * promises something (a lease, an acknowledged result) is sent only after
 * the database committed it.  An idle worker's poll that finds nothing is
 * held (worker-hold.c) until work comes.  Result reports are
 * worker-api-results.c's.  Loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "reserve.h"
#include "worker-api-int.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

void worker_req_free(struct worker_req *w)
{
	if (!w)
		return;
	hf_env_free(w->env);
	for (size_t i = 0; i < w->n_cancel; i++)
		free(w->cancel[i]);
	free(w->cancel);
	free(w->pre);
	for (size_t i = 0; i < w->n_json_owned; i++)
		free(w->json_owned[i]);
	free(w->json_owned);
	free(w->checks);
	free(w->check_ptrs);
	free(w->health_checks);
	free(w->health_states);
	if (w->op.kind == DB_OP_LEASE_GRANT)
		free(w->op.u.lease.v);
	else if (w->op.kind == DB_OP_RESULT_STORE)
		free(w->op.u.result.v);
	free(w);
}

void log_refusal(const char *fmt, ...)
{
	static int64_t last_ms;
	static unsigned long suppressed;
	int64_t now = hf_mono_ms();
	char text[1024];
	va_list ap;

	if (last_ms && now - last_ms < 1000) {
		suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (suppressed)
		log_warn("%s (and %lu more refusals in the last second)", text, suppressed);
	else
		log_warn("%s", text);
	last_ms = now;
	suppressed = 0;
}

/* Is id held by another live worker than the one registering: a session
 * that polled within the connected window, and not the one reg names?
 * Then refuses reg (ERR_ID_IN_USE) and returns true. */
static bool register_id_in_use(struct worker_req *w, const struct coord_worker *cw)
{
	const Hf__Register *reg = w->env->register_;
	int64_t now = hf_mono_ms();

	if (!cw || !coord_worker_session_live(w->c, cw, now) || reg->session == cw->session)
		return false;
	log_refusal("refused a registration as worker \"%s\" (host \"%s\"): another live worker holds "
		    "that id (it polled %" PRId64 " ms ago)",
		    reg->worker_id, reg->hostname, now - cw->session_seen_ms);
	coord_reply_error(w->req, HF__ERROR_CODE__ERR_ID_IN_USE,
			  "worker id \"%s\" is in use: another live worker holds it; stop that worker or "
			  "give this one another id",
			  reg->worker_id);
	return true;
}

/* ---- register ---- */

static void register_done(struct db_op *op)
{
	struct worker_req *w = op->ctx;
	struct coord *c = w->c;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__RegisterReply rr = HF__REGISTER_REPLY__INIT;
	const Hf__Register *reg = w->env->register_;
	struct coord_worker *cw;

	if (op->rc < 0)
		log_warn("could not record worker \"%s\" in the database: %s, ignoring", reg->worker_id,
			 op->err);

	/* The worker record keeps the validated Register (its unknown fields
	 * are gone); the request no longer owns it. */
	cw = coord_worker_find(c, reg->worker_id);
	if (register_id_in_use(w, cw)) { /* another took the id meanwhile */
		worker_req_free(w);
		return;
	}
	uint64_t session = cw && cw->session && reg->session == cw->session ? cw->session : 0;
	if (!session && coord_session_new(&session) < 0) {
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_INTERNAL, "could not draw a session number");
		worker_req_free(w);
		return;
	}
	if (coord_workers_make_room(c, cw, hf__register__get_packed_size(reg)) < 0) {
		log_warn("refused worker \"%s\": the connected workers fill this coordinator (at most %" PRId64
			 " workers and %" PRId64 " MiB of registrations)",
			 reg->worker_id, c->conf.max_workers, c->conf.workers_memory_mib);
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
				  "this coordinator is full: its connected workers use its limits (%" PRId64
				  " workers, %" PRId64 " MiB of registrations)",
				  c->conf.max_workers, c->conf.workers_memory_mib);
		worker_req_free(w);
		return;
	}
	if (!cw) {
		cw = coord_worker_add(c, reg->worker_id);
		if (!cw) {
			coord_reply_error(w->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
			worker_req_free(w);
			return;
		}
	}
	Hf__Register *taken = w->env->register_;
	w->env->register_ = NULL;
	w->env->body_case = HF__ENVELOPE__BODY__NOT_SET;
	if (coord_worker_set_reg(c, cw, taken) < 0) {
		/* The old description (if any) stays; a new worker without one goes. */
		if (!cw->reg)
			coord_worker_forget(c, cw);
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		worker_req_free(w);
		return;
	}
	reg = cw->reg;
	cw->last_seen_ms = hf_mono_ms();
	if (cw->session != session) {
		/* A new session: live once it polls.  A worker whose reply was
		 * lost registers again and is not kept out by its own ghost. */
		cw->session = session;
		cw->session_seen_ms = 0;
	}

	/* Re-adopt the leases it says it still holds. */
	size_t adopted = 0;
	for (size_t i = 0; i < reg->n_running; i++) {
		struct sched_task *t = sched_task_find(c->sched, reg->running[i]->task_id);
		if (t && sched_renew(c->sched, t, reg->worker_id, reg->running[i]->attempt,
				     hf_mono_ms() + c->conf.lease_ms))
			adopted++;
	}
	log_info("worker \"%s\" registered from %s (hf-worker %s, protocol %u, %zu devices, %zu running, %zu re-adopted)",
		 reg->worker_id, reg->hostname, reg->software_version, reg->protocol_version,
		 reg->n_devices, reg->n_running, adopted);
	char skew[256];
	if (registry_transformers_skew(c->reg, reg->runtimes, reg->n_runtimes, skew, sizeof(skew)))
		log_warn("worker \"%s\": %s", reg->worker_id, skew);

	rr.accepted = true;
	rr.min_protocol = HF_PROTOCOL_MIN;
	rr.max_protocol = HF_PROTOCOL_MAX;
	rr.heartbeat_ms = (uint32_t)c->conf.heartbeat_ms;
	rr.lease_ms = (uint32_t)c->conf.lease_ms;
	rr.session = session;
	env.body_case = HF__ENVELOPE__BODY_REGISTER_REPLY;
	env.register_reply = &rr;
	coord_reply(w->req, &env);
	worker_req_free(w);
}

static void handle_register(struct worker_req *w)
{
	const Hf__Register *reg = w->env->register_;

	if (reg->protocol_version < HF_PROTOCOL_MIN || reg->protocol_version > HF_PROTOCOL_MAX) {
		log_warn("refused worker \"%s\": protocol version %u (accepted: %d to %d)", reg->worker_id,
			 reg->protocol_version, HF_PROTOCOL_MIN, HF_PROTOCOL_MAX);
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_VERSION,
				  "protocol version %u is not accepted: this coordinator accepts versions %d to %d",
				  reg->protocol_version, HF_PROTOCOL_MIN, HF_PROTOCOL_MAX);
		worker_req_free(w);
		return;
	}
	if (register_id_in_use(w, coord_worker_find(w->c, reg->worker_id))) {
		worker_req_free(w);
		return;
	}
	if (coord_workers_full(w->c, reg->worker_id, hf__register__get_packed_size(reg))) {
		/* Refused before anything is written; register_done checks again. */
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
				  "this coordinator is full: its connected workers use its limits (%" PRId64
				  " workers, %" PRId64 " MiB of registrations)",
				  w->c->conf.max_workers, w->c->conf.workers_memory_mib);
		worker_req_free(w);
		return;
	}
	w->op.kind = DB_OP_WORKER_UPSERT;
	w->op.u.worker.reg = reg;
	w->op.done = register_done;
	w->op.ctx = w;
	db_submit(w->c->db, &w->op);
}

/* ---- poll ---- */

/* Answers a message whose worker id is unknown or whose session is not
 * the id's current one: the sender must register (again). */
void not_registered(struct worker_req *w, const char *worker_id)
{
	coord_reply_error(w->req, HF__ERROR_CODE__ERR_NOT_REGISTERED,
			  "worker \"%s\" is not registered with this coordinator under this session",
			  worker_id);
	worker_req_free(w);
}

/* The empty poll reply (no assignment, cancel or health check: what an
 * idle fleet gets, every heartbeat) depends only on hold_ended and the
 * heartbeat: packed once each and copied, not packed through protobuf-c
 * for each poll (about 4,000 instructions a reply).  Loop thread only. */
static struct {
	nng_msg *msg;
	uint32_t heartbeat_ms;
} empty_reply[2];

static nng_msg *empty_reply_copy(Hf__Envelope *env, bool hold_ended)
{
	uint32_t beat = env->poll_reply->heartbeat_ms;
	nng_msg *copy;

	if (!empty_reply[hold_ended].msg || empty_reply[hold_ended].heartbeat_ms != beat) {
		nng_msg *msg;
		if (hf_env_pack(env, &msg) < 0)
			return NULL;
		nng_msg_free(empty_reply[hold_ended].msg);
		empty_reply[hold_ended].msg = msg;
		empty_reply[hold_ended].heartbeat_ms = beat;
	}
	if (nng_msg_dup(&copy, empty_reply[hold_ended].msg) != 0)
		return NULL;
	return copy;
}

void poll_reply(struct worker_req *w, Hf__Assignment **assign, size_t n_assign, bool hold_ended)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__PollReply pr = HF__POLL_REPLY__INIT;
	nng_msg *msg;

	pr.hold_ended = hold_ended;
	pr.assignments = assign;
	pr.n_assignments = n_assign;
	pr.cancel = w->cancel;
	pr.n_cancel = w->n_cancel;
	pr.heartbeat_ms = (uint32_t)w->c->conf.heartbeat_ms;
	pr.health_checks = w->check_ptrs;
	pr.n_health_checks = w->n_checks;
	env.body_case = HF__ENVELOPE__BODY_POLL_REPLY;
	env.poll_reply = &pr;
	if (n_assign == 0 && pr.n_cancel == 0 && pr.n_health_checks == 0 &&
	    (msg = empty_reply_copy(&env, hold_ended)) != NULL) {
		nuv_reply(w->req, msg);
		return;
	}
	coord_reply(w->req, &env);
}

/* What the worker needs of t: pointers into t and the registry, valid
 * while t is. */
static void assignment_fill(struct coord *c, const struct sched_task *t, Hf__Assignment *a)
{
	const struct reg_model *m = &c->reg->models[t->model];

	hf__assignment__init(a);
	a->task_id = t->id;
	a->attempt = t->attempt;
	a->job_id = t->job_id;
	a->model_type = m->model_type;
	a->hf_id = m->hf_id;
	a->family = m->family;
	a->task = m->task;
	a->modality = m->modality;
	a->kind = t->kind;
	a->backend = t->backend;
	a->device_index = t->device_index;
	a->device_indices = (uint32_t *)t->devices;
	a->n_device_indices = t->n_devices;
	a->batch_size = t->batch_size;
	a->seq_len = t->seq_len;
	a->precision = (char *)t->precision;
	a->mode = (char *)(t->mode ? t->mode : "eager");
	a->timeout_s = t->timeout_s;
	a->iterations = t->iterations;
	a->warmup = t->warmup;
	a->priority = t->job ? t->job->priority : 0;
}

/* The assignments of the reservations w hands over (w->pre), those still
 * leased to its worker (one may have been cancelled since), into mem and
 * ptrs from the start.  Returns how many. */
static size_t pre_assignments(struct worker_req *w, Hf__Assignment *mem, Hf__Assignment **ptrs)
{
	struct coord *c = w->c;
	size_t n = 0;

	for (size_t i = 0; i < w->n_pre; i++) {
		const struct sched_task *t = sched_task_find(c->sched, w->pre[i].task_id);
		if (!t || t->state != SCHED_LEASED || t->attempt != w->pre[i].attempt ||
		    strcmp(t->worker_id, w->env->poll->worker_id) != 0)
			continue;
		assignment_fill(c, t, &mem[n]);
		ptrs[n] = &mem[n];
		n++;
	}
	coord_metrics_count(c, COORD_RESERVATIONS_HANDED_OVER, n);
	return n;
}

/* Answers w's poll with the reservations it hands over alone (nothing
 * else was taken) and frees w. */
static void pre_reply(struct worker_req *w, struct coord_worker *cw)
{
	Hf__Assignment *mem = calloc(w->n_pre, sizeof(*mem));
	Hf__Assignment **ptrs = calloc(w->n_pre, sizeof(*ptrs));
	size_t n = mem && ptrs ? pre_assignments(w, mem, ptrs) : 0;

	/* Without memory for the reply the tasks stay leased, unsent: the
	 * lease clock queues them again when their leases run out. */
	if (n)
		log_debug("handed %zu reserved tasks to worker \"%s\"", n, cw->id);
	poll_reply(w, ptrs, n, false);
	free(mem);
	free(ptrs);
	reserve_maybe(w->c, cw);
	worker_req_free(w);
}

static void grant_done(struct db_op *op)
{
	struct worker_req *w = op->ctx;
	struct coord *c = w->c;
	Hf__Assignment *mem = calloc(w->n_pre + op->u.lease.n, sizeof(*mem));
	Hf__Assignment **ptrs = calloc(w->n_pre + op->u.lease.n, sizeof(*ptrs));
	size_t n = 0;
	int64_t expires = hf_mono_ms() + c->conf.lease_ms;
	/* By id: the worker may have registered again meanwhile. */
	struct coord_worker *cw = coord_worker_find(c, w->env->poll->worker_id);

	if (cw && cw->polls_granting > 0)
		cw->polls_granting--;
	if (mem && ptrs)
		n = pre_assignments(w, mem, ptrs);

	for (size_t i = 0; i < op->u.lease.n; i++) {
		struct db_lease *l = &op->u.lease.v[i];
		struct sched_task *t = sched_task_find(c->sched, l->task_id);
		if (!t || t->state != SCHED_GRANTING || t->attempt != l->attempt)
			continue; /* cancelled meanwhile: its outcome is already decided */
		if (op->rc < 0 || !l->granted || !mem || !ptrs) {
			/* The lease may or may not be in the database: let the lease clock
			 * settle it and queue the task again. */
			t->lease_lost = false; /* not lost: never confirmed */
			sched_expiring(c->sched, t);
			continue;
		}
		sched_lease(c->sched, t, expires);
		coord_metrics_observe(c, COORD_QUEUE_WAIT, (double)(hf_mono_ms() - t->queued_ms) / 1000);
		assignment_fill(c, t, &mem[n]);
		ptrs[n] = &mem[n];
		n++;
	}
	if (n) {
		log_debug("leased %zu tasks to worker \"%s\"", n, w->env->poll->worker_id);
		coord_metrics_observe(c, COORD_LEASE_GRANT, (double)(hf_mono_us() - w->poll_us) / 1e6);
	}
	poll_reply(w, ptrs, n, false);
	free(mem);
	free(ptrs);
	/* Its slots are busy now: their next tests may be reserved. */
	if (cw)
		reserve_maybe(c, cw);
	worker_req_free(w);
}

static int cancel_add(struct worker_req *w, uint64_t task_id, uint32_t attempt)
{
	Hf__TaskRef **v = realloc(w->cancel, (w->n_cancel + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	w->cancel = v;
	Hf__TaskRef *ref = malloc(sizeof(*ref));
	if (!ref)
		return -ENOMEM;
	hf__task_ref__init(ref);
	ref->task_id = task_id;
	ref->attempt = attempt;
	w->cancel[w->n_cancel++] = ref;
	return 0;
}

/* Keeps the last telemetry a worker sent (memory only; telemetry.c samples
 * it to the database at a low rate). */
static void telemetry_keep(struct coord_worker *cw, const Hf__Poll *p)
{
	Hf__DeviceTelemetry *v;

	if (p->n_telemetry == 0)
		return;
	v = realloc(cw->telemetry, p->n_telemetry * sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < p->n_telemetry; i++) {
		v[i] = *p->telemetry[i];
		v[i].base.unknown_fields = NULL;
		v[i].base.n_unknown_fields = 0;
	}
	cw->telemetry = v;
	cw->n_telemetry = p->n_telemetry;
}

/* Matching state of one poll: the device fit plus what weight locality
 * needs. */
struct poll_fit {
	struct match_fit f;
	struct coord *c;
	struct coord_worker *self;
	/* Per device (positions of reg->devices): the worker queues
	 * benchmarks ahead too (DeviceFree.ahead_benchmarks; NULL: none). */
	const bool *ahead_benchmarks;
};

static bool has_cached(const Hf__Register *r, const char *hf_id)
{
	size_t lo = 0, hi = r->n_cached_models;
	while (lo < hi) { /* the worker sends the list sorted */
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(hf_id, r->cached_models[mid]);
		if (cmp == 0)
			return true;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* Prefers workers that already hold a model's weights: a task whose model
 * this worker has not cached waits up to scheduler.locality_wait for a
 * connected worker that has it and a device of its backend. */
static bool poll_fits_cb(const struct sched_task *t, void *arg)
{
	struct poll_fit *pf = arg;
	struct coord *c = pf->c;
	const char *hf_id = c->reg->models[t->model].hf_id;

	if (pf->f.queueing) {
		/* Queued on a busy device: only a task of that one device (a
		 * task of several devices takes idle devices), and a benchmark
		 * only where the worker starts it alone once the device is idle. */
		const struct match_req *req = t->job->data;
		if ((req && req->devices > 1) ||
		    (t->kind != HF__TASK_KIND__KIND_TEST && (!pf->ahead_benchmarks || !pf->ahead_benchmarks[pf->f.pos])))
			return false;
	}
	if (c->conf.locality_wait_ms > 0 && pf->f.now_ms - t->queued_ms < c->conf.locality_wait_ms &&
	    !has_cached(pf->self->reg, hf_id) && coord_weights_elsewhere(c, pf->self, t, pf->f.now_ms))
		return false; /* leave it to the worker that has the weights */
	return match_fit_task(t, &pf->f);
}

/* Asks the worker to check its quarantined devices again, each at most
 * once per scheduler.quarantine_recheck. */
static void health_checks_add(struct worker_req *w, struct coord_worker *cw, int64_t now)
{
	struct coord *c = w->c;
	const Hf__Register *reg = cw->reg;

	if (!c->health.devs || reg->n_devices == 0)
		return;
	for (size_t i = 0; i < reg->n_devices; i++) {
		const Hf__Device *d = reg->devices[i];
		if (!health_recheck_due(&c->health, cw->id, (int)d->backend, d->index, now,
					c->conf.quarantine_recheck_ms))
			continue;
		if (!w->checks) {
			w->checks = calloc(reg->n_devices, sizeof(*w->checks));
			w->check_ptrs = calloc(reg->n_devices, sizeof(*w->check_ptrs));
			if (!w->checks || !w->check_ptrs)
				return; /* asked again at the next interval */
		}
		Hf__HealthCheckRequest *hc = &w->checks[w->n_checks];
		hf__health_check_request__init(hc);
		hc->backend = d->backend;
		hc->index = d->index;
		w->check_ptrs[w->n_checks++] = hc;
		log_debug("asking worker \"%s\" to check quarantined device %s:%" PRIu32 " again", cw->id,
			 hf_backend_name(d->backend), d->index);
	}
}

size_t take_for_devices(struct coord *c, struct coord_worker *cw, int64_t now, uint32_t *free_slots,
			uint32_t *ahead, const bool *ahead_benchmarks, struct db_lease **out)
{
	const Hf__Register *reg = cw->reg;
	size_t cap = (size_t)c->conf.max_assign_per_poll, n = 0;
	struct poll_fit pf = {
		.f = {
			.reg = reg,
			.worker_hash = sched_name_hash(reg->worker_id),
			.now_ms = now,
			.avoid_ms = c->conf.lease_ms,
		},
		.c = c,
		.self = cw,
		.ahead_benchmarks = ahead_benchmarks,
	};
	struct match_fit *f = &pf.f;
	struct db_lease *leases = NULL;

	*out = NULL;
	/* The free slots first, then (f->queueing) the tasks queued ahead, each
	 * pass device by device. */
	for (int pass = 0; pass < 2; pass++) {
		f->free = pass == 0 ? free_slots : ahead;
		f->queueing = pass == 1;
		if (!f->free)
			continue;
		for (f->pos = 0; f->pos < reg->n_devices && n < cap; f->pos++) {
			const Hf__Device *dev = reg->devices[f->pos];
			while (f->free[f->pos] > 0 && n < cap) {
				struct sched_task *t;
				if (!leases && !(leases = calloc(cap, sizeof(*leases))))
					break;
				if (sched_take(c->sched, dev->backend, reg->worker_id, dev->index, 1, poll_fits_cb, &pf,
					       &t) == 0)
					break;
				for (uint8_t k = 0; k < f->n_extra; k++)
					t->devices[1 + k] = reg->devices[f->extra[k]]->index;
				t->n_devices = (uint8_t)(1 + f->n_extra);
				leases[n].task_id = t->id;
				leases[n].attempt = t->attempt;
				leases[n].worker_id = t->worker_id;
				memcpy(leases[n].devices, t->devices, sizeof(leases[n].devices));
				leases[n].n_devices = t->n_devices;
				n++;
			}
		}
	}
	if (n == 0)
		free(leases);
	else
		*out = leases;
	return n;
}

/* Takes what fits the poll's free slots, best job first, and starts
 * committing the leases (grant_done answers).  Returns how many tasks were
 * taken; 0 leaves w the caller's.  *ret_backends gets the backends of the
 * devices with free slots that may take work (what a held poll waits for). */
size_t poll_take(struct worker_req *w, struct coord_worker *cw, int64_t now, uint32_t *ret_backends)
{
	struct coord *c = w->c;
	const Hf__Poll *p = w->env->poll;
	const Hf__Register *reg = cw->reg;
	uint32_t backends = 0;
	size_t n;

	*ret_backends = 0;
	/* One allocation each: the free slots, then the tasks leased ahead;
	 * which devices queue benchmarks ahead. */
	uint32_t *free_slots = calloc(2 * (size_t)reg->n_devices, sizeof(*free_slots));
	bool *ahead_benchmarks = calloc(reg->n_devices, sizeof(*ahead_benchmarks));
	if (!free_slots || !ahead_benchmarks) {
		free(free_slots);
		free(ahead_benchmarks);
		return 0;
	}
	uint32_t *ahead = free_slots + reg->n_devices;
	/* Each entry names a registered device (validation made them distinct);
	 * a device never has more free slots than it registered, nor more
	 * tasks leased ahead than HF_AHEAD_PER_SLOT times those; those do not
	 * make a poll wait (ret_backends). */
	for (size_t i = 0; i < p->n_free; i++) {
		if (p->free[i]->free_slots == 0 && p->free[i]->ahead == 0)
			continue;
		long d = coord_worker_device(cw, (int)p->free[i]->backend, p->free[i]->index);
		if (d < 0 || coord_drained(c, reg->worker_id, reg->devices[d]) ||
		    coord_quarantined(c, reg->worker_id, reg->devices[d], NULL))
			continue;
		uint32_t slots = reg->devices[d]->slots ? reg->devices[d]->slots : 1;
		free_slots[d] = p->free[i]->free_slots < slots ? p->free[i]->free_slots : slots;
		ahead[d] = p->free[i]->ahead < HF_AHEAD_PER_SLOT * slots ? p->free[i]->ahead
								       : HF_AHEAD_PER_SLOT * slots;
		ahead_benchmarks[d] = p->free[i]->ahead_benchmarks;
	}
	/* The reservations this poll hands over (reserve.c) fill free slots. */
	for (size_t i = 0; i < w->n_pre; i++)
		if (w->pre[i].device_pos < reg->n_devices && free_slots[w->pre[i].device_pos] > 0)
			free_slots[w->pre[i].device_pos]--;
	for (size_t d = 0; d < reg->n_devices; d++)
		if (free_slots[d] > 0)
			backends |= 1u << (reg->devices[d]->backend & 31);
	*ret_backends = backends;

	struct db_lease *leases;
	n = take_for_devices(c, cw, now, free_slots, ahead, ahead_benchmarks, &leases);
	free(free_slots);
	free(ahead_benchmarks);
	if (n == 0)
		return 0;
	cw->polls_granting++;
	w->poll_us = hf_mono_us();
	w->op.kind = DB_OP_LEASE_GRANT;
	w->op.u.lease.v = leases;
	w->op.u.lease.n = n;
	w->op.done = grant_done;
	w->op.ctx = w;
	db_submit(c->db, &w->op);
	return n;
}

static void handle_poll(struct worker_req *w)
{
	struct coord *c = w->c;
	const Hf__Poll *p = w->env->poll;
	struct coord_worker *cw = coord_worker_of_session(c, p->worker_id, p->session);
	int64_t now = hf_mono_ms(), received = nuv_request_received_ms(w->req);
	uint32_t backends;

	w->poll_us = hf_mono_us();
	if (!cw) {
		not_registered(w, p->worker_id);
		return;
	}
	/* Seen when the poll came, not when a busy loop got to it. */
	if (received > cw->last_seen_ms)
		cw->last_seen_ms = received;
	if (received > cw->session_seen_ms)
		cw->session_seen_ms = received;
	/* A poll sent to replace a held one counts the free slots the worker
	 * saw before that poll's reply came.  If that poll is held here no
	 * longer, it was answered, perhaps with tasks still on their way:
	 * those slots may be counted free twice, so this poll takes nothing
	 * (the worker polls again once that reply is in).  Without this a
	 * worker of 64 slots was given tasks beyond them, and benchmarks on a
	 * device that was not idle. */
	bool free_stale = p->replaces_held && !cw->held;
	/* A newer poll (a slot freed, a drain) replaces the held one. */
	poll_hold_answer(c, cw, false);
	telemetry_keep(cw, p);

	/* Renew what it runs; tell it to stop what it must not run. */
	for (size_t i = 0; i < p->n_running; i++) {
		const Hf__TaskRef *ref = p->running[i];
		struct sched_task *t = sched_task_find(c->sched, ref->task_id);
		if (t && sched_renew(c->sched, t, p->worker_id, ref->attempt, now + c->conf.lease_ms))
			continue;
		if (t && t->state == SCHED_GRANTING)
			continue;
		cancel_add(w, ref->task_id, ref->attempt);
	}
	/* ... and what is reserved for it, which it does not know of. */
	reserve_renew(c, cw, now);

	const Hf__Register *reg = cw->reg;
	if (!p->draining && !c->stopping)
		health_checks_add(w, cw, now);
	bool leaving = p->draining || c->stopping || coord_drained(c, reg->worker_id, NULL);
	if (leaving)
		reserve_release_all(c, cw);
	/* While leases of an earlier poll are being committed, the slots this
	 * poll counts as free are partly those: it gets no work. */
	if (leaving || !db_healthy(c->db) || reg->n_devices == 0 || cw->polls_granting > 0 || free_stale) {
		poll_reply(w, NULL, 0, false);
		worker_req_free(w);
		return;
	}
	/* Its reservations first: committed already, they are answered at
	 * once; the free slots they leave are taken as usual. */
	reserve_hand_over(w, cw, now);
	if (poll_take(w, cw, now, &backends) > 0)
		return; /* grant_done answers */
	if (w->n_pre > 0) {
		pre_reply(w, cw);
		return;
	}
	if (poll_hold(w, cw, backends, now))
		return; /* answered when work comes or the hold ends */
	poll_reply(w, NULL, 0, false);
	worker_req_free(w);
}

/* ---- results ---- */

static void health_done(struct db_op *op)
{
	struct worker_req *w = op->ctx;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Ack ack = HF__ACK__INIT;

	if (op->rc < 0) {
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
				  "health checks not stored, send them again: %s", op->err);
		worker_req_free(w);
		return;
	}
	env.body_case = HF__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	coord_reply(w->req, &env);
	worker_req_free(w);
}

/* Applies each check to the device's health at once (a failed check stops
 * new work on it now), then stores the checks and the quarantine changes
 * and acknowledges them once committed. */
static void handle_health_report(struct worker_req *w)
{
	struct coord *c = w->c;
	const Hf__HealthReport *hr = w->env->health_report;
	struct coord_worker *cw = coord_worker_of_session(c, hr->worker_id, hr->session);
	size_t n = hr->n_results, n_states = 0;

	if (!cw) {
		not_registered(w, hr->worker_id);
		return;
	}
	/* Only the worker's own registered devices; else nothing is applied. */
	for (size_t i = 0; i < n; i++) {
		const Hf__HealthResult *h = hr->results[i];
		if (coord_worker_device(cw, (int)h->backend, h->index) >= 0)
			continue;
		log_refusal("refused a health report from worker \"%s\": device %s:%" PRIu32
			    " is not in its registration",
			    hr->worker_id, hf_backend_name(h->backend), h->index);
		coord_reply_error(w->req, ERR_NOT_HELD,
				  "health report refused, nothing applied: results[%zu]: device %s:%" PRIu32
				  " is not in the registration of worker \"%s\"",
				  i, hf_backend_name(h->backend), h->index, hr->worker_id);
		worker_req_free(w);
		return;
	}
	w->health_checks = calloc(n + 1, sizeof(*w->health_checks));
	w->health_states = calloc(n + 1, sizeof(*w->health_states));
	if (!w->health_checks || !w->health_states) {
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_UNAVAILABLE, "out of memory");
		worker_req_free(w);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const Hf__HealthResult *h = hr->results[i];
		const char *b = hf_backend_name(h->backend);
		enum health_change change = HEALTH_UNCHANGED;

		w->health_checks[i] = (struct db_health_check){
			.worker_id = hr->worker_id,
			.backend = (int)h->backend,
			.index = h->index,
			.ok = h->ok,
			.detail = h->detail,
			.trigger = h->trigger,
			.duration_s = h->duration_s,
			.checked_at = h->checked_at,
		};
		if (health_check_ended(&c->health, hr->worker_id, (int)h->backend, h->index, h->ok, h->detail,
				       &change) < 0)
			log_warn("could not apply a health check of %s/%s:%" PRIu32 ": out of memory",
				 hr->worker_id, b, h->index);
		const char *reason = "";
		bool quarantined = health_quarantined(&c->health, hr->worker_id, (int)h->backend, h->index,
						      &reason);
		if (change == HEALTH_QUARANTINED) {
			log_warn("quarantined %s/%s:%" PRIu32 ": %s", hr->worker_id, b, h->index, reason);
			coord_metrics_count(c, COORD_QUARANTINES, 1);
		}
		else if (change == HEALTH_RESTORED)
			log_info("%s/%s:%" PRIu32 " passed its health check (%s): back in service",
				 hr->worker_id, b, h->index, h->detail);
		else if (h->ok)
			log_debug("%s/%s:%" PRIu32 " passed its health check (%s)", hr->worker_id, b,
				  h->index, h->detail);
		else
			log_info("%s/%s:%" PRIu32 " failed its health check again: %s", hr->worker_id, b,
				 h->index, h->detail);
		if (change == HEALTH_UNCHANGED && !quarantined)
			continue;
		/* The row follows the device's state; rewriting it is harmless. */
		struct db_quarantine *q = &w->health_states[n_states++];
		hf_strlcpy(q->worker_id, hr->worker_id, sizeof(q->worker_id));
		q->backend = (int)h->backend;
		q->index = h->index;
		q->quarantined = quarantined;
		hf_strlcpy(q->reason, reason, sizeof(q->reason));
	}
	w->op.kind = DB_OP_HEALTH_STORE;
	w->op.u.health.checks = w->health_checks;
	w->op.u.health.n_checks = n;
	w->op.u.health.states = w->health_states;
	w->op.u.health.n_states = n_states;
	w->op.done = health_done;
	w->op.ctx = w;
	db_submit(c->db, &w->op);
}

void worker_api_request_cb(nuv_request_t *req, nng_msg *msg, void *arg)
{
	struct coord *c = arg;
	struct worker_req *w;
	Hf__Envelope *env;

	struct coord_principal who;

	env = coord_request_unpack(req, msg, HF_MSG_WORKER_REQUEST);
	if (!env)
		return;
	/* Only a worker token, and only for its own worker id. */
	if (!coord_auth_check(c, req, env, true, &who)) {
		hf_env_free(env);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		hf_env_free(env);
		coord_reply_error(req, HF__ERROR_CODE__ERR_UNAVAILABLE, "out of memory");
		return;
	}
	w->c = c;
	w->req = req;
	w->env = env;
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_REGISTER:
		handle_register(w);
		break;
	case HF__ENVELOPE__BODY_POLL:
		handle_poll(w);
		break;
	case HF__ENVELOPE__BODY_RESULTS:
		handle_results(w);
		break;
	case HF__ENVELOPE__BODY_HEALTH_REPORT:
		handle_health_report(w);
		break;
	default:
		coord_reply_error(req, HF__ERROR_CODE__ERR_BAD_REQUEST,
				  "message type %d is not a worker request", (int)env->body_case);
		worker_req_free(w);
		break;
	}
}
