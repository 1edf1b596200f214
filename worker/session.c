/* SPDX-License-Identifier: MIT
 *
 * The register / poll / report protocol and the worker's life cycle (see
 * session.h).  Three kinds of call go to the coordinator, each with at most
 * one outstanding: Register, Poll and ResultBatch.  Their reply callbacks
 * run on the loop thread (hf_nuv.h); the session never closes the client
 * from inside one of them, because ending is always deferred to a timer.
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
#include "spool.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define CALL_TIMEOUT_MIN_MS 5000
#define HEARTBEAT_MIN_MS 50
#define HEARTBEAT_MAX_MS 60000
#define REPLY_MAX (4u << 20)
/* Repeated failures of the same call are logged at warning level only this
 * often, so a coordinator that is down does not flood the log. */
#define WARN_EVERY 60

enum session_state {
	SESSION_REGISTERING,  /* no accepted registration (yet, or any more) */
	SESSION_ACTIVE,
	SESSION_FLUSHING,     /* drained: the last results are going out */
	SESSION_DONE,         /* ending: handles are being closed */
};

/* A result not yet acknowledged by the coordinator. */
struct pending {
	Hf__TaskResult *result;
	bool spooled;
	bool spool_failed;  /* logged once as an error, then retried quietly */
	struct pending *next;
};

/* Health checking of one device of the inventory (same position). */
struct dev_health {
	int64_t last_check_ms;       /* monotonic: when the last check ended (or the count began) */
	const char *due;             /* a check is wanted, for this trigger; NULL: none */
	const char *trigger;         /* of the check running or being reported */
	bool report_pending;         /* its outcome waits for the coordinator's Ack: device held */
	bool report_sent;            /* ... and is in the HealthReport in flight */
	bool ok;
	char detail[512];
	double duration_s, finished_at;
};

struct session {
	uv_loop_t *loop;
	struct session_config cfg;
	session_exit_cb cb;
	void *arg;

	nuv_client_t *client;
	struct executor *ex;
	struct spool *spool;

	enum session_state state;
	bool draining;
	bool reg_inflight, poll_inflight, results_inflight, poll_again;
	/* The batch in flight: how many results, and the first one's name.
	 * After the coordinator refused a batch as invalid, batches of one
	 * (results_isolate) find the result it refuses, which is set aside. */
	size_t results_sent;
	uint64_t results_sent_task;
	uint32_t results_sent_attempt;
	bool results_isolate;
	bool health_inflight;
	bool health_unsupported;     /* the coordinator does not know HealthReport */
	bool health_at_register;     /* check every device once registered */
	struct dev_health health[HW_MAX_DEVICES];
	bool reg_stale;              /* the Register in flight describes replaced hardware */

	/* The last telemetry sample, reused until a heartbeat has passed. */
	struct hw_telemetry telemetry[HW_MAX_DEVICES];
	size_t n_telemetry;
	int64_t telemetry_at;        /* monotonic ms; 0: never sampled */
	int64_t heartbeat_ms;
	unsigned backoff_ms;
	unsigned reg_failures, poll_failures, results_failures;
	uint64_t rng;

	struct pending *pending, **pending_tail;
	size_t n_pending;

	uv_timer_t reg_timer, beat_timer, drain_timer, flush_timer, finish_timer;
	int open_handles;
	int exit_code;
	int64_t finish_deadline;     /* monotonic ms: stop waiting for calls */
};

static void register_send(struct session *s);
static void poll_send(struct session *s);
static void results_flush(struct session *s);
static void session_check_drained(struct session *s);
static void session_end(struct session *s, int exit_code);
static void beat_timer_cb(uv_timer_t *h);
static void health_run_due(struct session *s);
static void health_flush(struct session *s);

/* ---- helpers ---- */

static int call_timeout_ms(const struct session *s)
{
	int64_t t = 3 * s->heartbeat_ms;
	return (int)(t > CALL_TIMEOUT_MIN_MS ? t : CALL_TIMEOUT_MIN_MS);
}

/* xorshift64*: jitter only, nothing secret. */
static uint32_t session_random(struct session *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * UINT64_C(2685821657736338717)) >> 32);
}

/* Packs env and sends it; the reply goes to cb.  Returns 0 or a negative
 * errno (cb is then not called). */
static int session_call(struct session *s, const Hf__Envelope *env, nuv_reply_cb cb)
{
	nng_msg *msg;
	int r = hf_env_pack(env, &msg);

	if (r < 0)
		return r;
	return nuv_client_call(s->client, msg, call_timeout_ms(s), cb, s);
}

/* The reply as a validated envelope (hf_validate.h): rv from the call, or
 * -EBADMSG when it is not a reply a coordinator may send (logged: what
 * broke which limit). */
static int reply_unpack(int rv, nng_msg *reply, Hf__Envelope **ret_env)
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

static const char *call_error(int rv)
{
	return rv == -EBADMSG ? "the reply could not be decoded" : strerror(-rv);
}

static void session_set_heartbeat(struct session *s, uint32_t ms)
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
		uv_timer_start(&s->beat_timer, beat_timer_cb, ms, ms);
}

/* ---- pending results ---- */

static struct pending *pending_find(struct session *s, uint64_t task_id, uint32_t attempt)
{
	for (struct pending *p = s->pending; p; p = p->next)
		if (p->result->task_id == task_id && p->result->attempt == attempt)
			return p;
	return NULL;
}

static void pending_spool(struct session *s, struct pending *p)
{
	int r = spool_write(s->spool, p->result);

	if (r < 0) {
		hf_log(p->spool_failed ? HF_LOG_DEBUG : HF_LOG_ERROR,
		       "could not write the result of task %" PRIu64 " attempt %" PRIu32
		       " to the spool: %s; keeping it in memory and trying again",
		       p->result->task_id, p->result->attempt, strerror(-r));
		p->spool_failed = true;
		return;
	}
	if (p->spool_failed)
		log_info("result of task %" PRIu64 " attempt %" PRIu32 " is now in the spool",
			 p->result->task_id, p->result->attempt);
	p->spooled = true;
	p->spool_failed = false;
}

/* Takes result.  A result for an attempt already pending replaces it. */
static void pending_add(struct session *s, Hf__TaskResult *result, bool spooled)
{
	struct pending *p = pending_find(s, result->task_id, result->attempt);

	if (p) {
		result_free(p->result);
		p->result = result;
		p->spooled = false;
	} else {
		p = calloc(1, sizeof(*p));
		if (!p) {
			log_error("could not keep the result of task %" PRIu64 " attempt %" PRIu32
				  ": out of memory; its lease will expire",
				  result->task_id, result->attempt);
			result_free(result);
			return;
		}
		p->result = result;
		*s->pending_tail = p;
		s->pending_tail = &p->next;
		s->n_pending++;
	}
	p->spooled = spooled;
	if (!spooled)
		pending_spool(s, p);
}

/* Takes a result off the pending list (the caller deals with its spool
 * file); false when it is not there. */
static bool pending_unlink(struct session *s, uint64_t task_id, uint32_t attempt)
{
	struct pending **pp, *p;

	for (pp = &s->pending; (p = *pp); pp = &p->next)
		if (p->result->task_id == task_id && p->result->attempt == attempt)
			break;
	if (!p)
		return false;
	*pp = p->next;
	if (s->pending_tail == &p->next)
		s->pending_tail = pp;
	s->n_pending--;
	result_free(p->result);
	free(p);
	return true;
}

/* A result that will not be sent: its spool file was set aside. */
static void pending_forget(struct session *s, uint64_t task_id, uint32_t attempt)
{
	if (!pending_unlink(s, task_id, attempt))
		return;
	if (executor_task_dir_remove(s->ex, task_id, attempt) < 0)
		log_warn("could not remove the directory of task %" PRIu64 " attempt %" PRIu32 ", ignoring",
			 task_id, attempt);
	if (s->state == SESSION_FLUSHING && s->n_pending == 0) {
		log_info("all results reported or set aside");
		session_end(s, 0);
	}
}

static void pending_remove(struct session *s, uint64_t task_id, uint32_t attempt)
{
	int r;

	if (!pending_unlink(s, task_id, attempt))
		return;
	r = spool_remove(s->spool, task_id, attempt);
	if (r < 0)
		log_warn("could not remove the result of task %" PRIu64 " attempt %" PRIu32
			 " from the spool: %s; it will be sent again at the next start",
			 task_id, attempt, strerror(-r));
	r = executor_task_dir_remove(s->ex, task_id, attempt);
	if (r < 0)
		log_warn("could not remove the directory of task %" PRIu64 " attempt %" PRIu32
			 ": %s, ignoring",
			 task_id, attempt, strerror(-r));
	log_debug("result of task %" PRIu64 " attempt %" PRIu32 " acknowledged", task_id, attempt);
}

static void pending_free_all(struct session *s)
{
	while (s->pending) {
		struct pending *p = s->pending;
		s->pending = p->next;
		result_free(p->result);
		free(p);
	}
	s->pending_tail = &s->pending;
	s->n_pending = 0;
}

/* ---- registration ---- */

static void reg_timer_cb(uv_timer_t *h)
{
	register_send(h->data);
}

static void register_retry_later(struct session *s, const char *why)
{
	unsigned delay;

	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	/* Full jitter in the upper half, so a fleet that lost its coordinator
	 * at once does not come back at once. */
	delay = s->backoff_ms / 2 + session_random(s) % (s->backoff_ms / 2 + 1);
	hf_log(s->reg_failures++ % WARN_EVERY == 0 ? HF_LOG_WARN : HF_LOG_DEBUG,
	       "could not register with %s: %s; retrying in %u ms", s->cfg.url, why, delay);
	uv_timer_start(&s->reg_timer, reg_timer_cb, delay, 0);
}

static void session_registered(struct session *s, const Hf__RegisterReply *rr)
{
	s->state = SESSION_ACTIVE;
	s->backoff_ms = 0;
	s->reg_failures = 0;
	session_set_heartbeat(s, rr->heartbeat_ms);
	log_info("registered with %s as \"%s\": heartbeat %" PRId64 " ms, lease %" PRIu32
		 " ms, %zu running tasks, %zu results to report",
		 s->cfg.url, s->cfg.worker_id, s->heartbeat_ms, rr->lease_ms, executor_size(s->ex),
		 s->n_pending);
	if (!uv_is_active((uv_handle_t *)&s->beat_timer))
		uv_timer_start(&s->beat_timer, beat_timer_cb, (uint64_t)s->heartbeat_ms,
			       (uint64_t)s->heartbeat_ms);
	if (s->health_at_register && s->cfg.health_timeout_ms > 0) {
		s->health_at_register = false;
		for (size_t i = 0; i < s->cfg.inv->n_devices && i < HW_MAX_DEVICES; i++)
			s->health[i].due = "register";
	}
	health_run_due(s); /* before the first poll, so those devices offer no slots */
	poll_send(s);
	results_flush(s);
	health_flush(s);
}

static void register_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct session *s = arg;
	Hf__Envelope *env = NULL;
	char why[512];

	s->reg_inflight = false;
	rv = reply_unpack(rv, reply, &env);
	if (s->state != SESSION_REGISTERING)
		goto out; /* ending, or the answer to a superseded attempt */
	if (rv < 0) {
		register_retry_later(s, call_error(rv));
		goto out;
	}
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_REGISTER_REPLY:
		if (!env->register_reply->accepted) {
			log_error("coordinator %s refused worker \"%s\": %s", s->cfg.url,
				  s->cfg.worker_id, env->register_reply->reason);
			session_end(s, 1);
			break;
		}
		if (s->reg_stale) {
			/* Accepted, but with the hardware as it was: describe it again. */
			s->reg_stale = false;
			register_send(s);
			break;
		}
		session_registered(s, env->register_reply);
		break;
	case HF__ENVELOPE__BODY_ERROR:
		if (env->error->code == HF__ERROR_CODE__ERR_VERSION) {
			log_error("coordinator %s does not speak protocol version %d: %s "
				  "(it accepts versions %" PRIu32 " to %" PRIu32 ")",
				  s->cfg.url, HF_PROTOCOL_VERSION, env->error->message,
				  env->error->min_protocol, env->error->max_protocol);
			session_end(s, 1);
			break;
		}
		snprintf(why, sizeof(why), "coordinator answered: %s", env->error->message);
		register_retry_later(s, why);
		break;
	default:
		register_retry_later(s, "the coordinator sent an unexpected reply");
		break;
	}
out:
	hf_env_free(env);
}

/* Sends Register; returns 0 or a negative errno. */
static int register_call(struct session *s)
{
	const struct hw_inventory *inv = s->cfg.inv;
	const struct runtime_list *rts = s->cfg.runtimes;
	size_t n_labels = s->cfg.n_labels, n_dev = inv->n_devices, n_rt = rts->n;
	size_t n_run = executor_size(s->ex);
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Register reg = HF__REGISTER__INIT;
	Hf__CpuInfo cpu = HF__CPU_INFO__INIT;
	Hf__KeyValue *kv = calloc(n_labels + 1, sizeof(*kv)), **kvp = calloc(n_labels + 1, sizeof(*kvp));
	Hf__Device *dev = calloc(n_dev + 1, sizeof(*dev)), **devp = calloc(n_dev + 1, sizeof(*devp));
	Hf__KeyValue *attr = calloc(n_dev * HW_MAX_ATTRS + 1, sizeof(*attr));
	Hf__KeyValue **attrp = calloc(n_dev * HW_MAX_ATTRS + 1, sizeof(*attrp));
	Hf__BackendStatus bs[HW_N_BACKENDS], *bsp[HW_N_BACKENDS];
	Hf__Runtime *rt = calloc(n_rt + 1, sizeof(*rt)), **rtp = calloc(n_rt + 1, sizeof(*rtp));
	Hf__TaskRef *tr = calloc(n_run + 1, sizeof(*tr)), **trp = calloc(n_run + 1, sizeof(*trp));
	struct executor_ref *refs = calloc(n_run + 1, sizeof(*refs));
	int r = -ENOMEM;

	if (!kv || !kvp || !dev || !devp || !attr || !attrp || !rt || !rtp || !tr || !trp || !refs)
		goto out;

	for (size_t i = 0; i < n_labels; i++) {
		hf__key_value__init(&kv[i]);
		kv[i].key = s->cfg.labels[i].key;
		kv[i].value = s->cfg.labels[i].value;
		kvp[i] = &kv[i];
	}
	for (size_t i = 0; i < n_dev; i++) {
		const struct hw_device *d = &inv->devices[i];
		hf__device__init(&dev[i]);
		dev[i].backend = d->backend;
		dev[i].index = d->index;
		dev[i].name = (char *)d->name;
		dev[i].memory_bytes = d->memory_bytes;
		dev[i].arch = (char *)d->arch;
		dev[i].driver = (char *)d->driver;
		dev[i].uuid = (char *)d->uuid;
		dev[i].slots = d->shared ? d->slots : 1;
		dev[i].declared = d->declared;
		dev[i].n_attrs = d->n_attrs;
		dev[i].attrs = &attrp[i * HW_MAX_ATTRS];
		for (size_t j = 0; j < d->n_attrs; j++) {
			Hf__KeyValue *a = &attr[i * HW_MAX_ATTRS + j];
			hf__key_value__init(a);
			a->key = (char *)d->attrs[j].key;
			a->value = (char *)d->attrs[j].value;
			attrp[i * HW_MAX_ATTRS + j] = a;
		}
		devp[i] = &dev[i];
	}
	for (size_t i = 0; i < HW_N_BACKENDS; i++) {
		const struct hw_backend_status *st = &inv->backends[i];
		hf__backend_status__init(&bs[i]);
		bs[i].backend = st->backend;
		bs[i].present = st->present;
		bs[i].reason = (char *)st->reason;
		bs[i].driver = (char *)st->driver;
		bs[i].library = (char *)st->library;
		bsp[i] = &bs[i];
	}
	for (size_t i = 0; i < n_rt; i++) {
		hf__runtime__init(&rt[i]);
		rt[i].name = rts->items[i].name;
		rt[i].version = rts->items[i].version;
		rt[i].available = rts->items[i].available;
		rt[i].detail = rts->items[i].detail;
		rtp[i] = &rt[i];
	}
	n_run = executor_list(s->ex, refs, n_run);
	for (size_t i = 0; i < n_run; i++) {
		hf__task_ref__init(&tr[i]);
		tr[i].task_id = refs[i].task_id;
		tr[i].attempt = refs[i].attempt;
		trp[i] = &tr[i];
	}
	cpu.model = (char *)inv->cpu.model;
	cpu.sockets = inv->cpu.sockets;
	cpu.cores = inv->cpu.cores;
	cpu.threads = inv->cpu.threads;
	cpu.memory_bytes = inv->cpu.memory_bytes;
	cpu.n_flags = inv->cpu.n_flags;
	cpu.flags = (char **)inv->cpu.flags;
	cpu.numa_nodes = inv->cpu.numa_nodes;
	cpu.arch = (char *)inv->cpu.arch;

	reg.worker_id = (char *)s->cfg.worker_id;
	reg.hostname = (char *)s->cfg.hostname;
	reg.software_version = HF_VERSION;
	reg.protocol_version = HF_PROTOCOL_VERSION;
	reg.n_labels = n_labels;
	reg.labels = kvp;
	reg.n_devices = n_dev;
	reg.devices = devp;
	reg.n_runtimes = n_rt;
	reg.runtimes = rtp;
	reg.cpu = &cpu;
	reg.n_running = n_run;
	reg.running = trp;
	reg.n_backends = HW_N_BACKENDS;
	reg.backends = bsp;
	reg.n_cached_models = s->cfg.n_cached_models;
	reg.cached_models = (char **)s->cfg.cached_models;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;

	r = session_call(s, &env, register_reply_cb);
out:
	free(kv);
	free(kvp);
	free(dev);
	free(devp);
	free(attr);
	free(attrp);
	free(rt);
	free(rtp);
	free(tr);
	free(trp);
	free(refs);
	return r;
}

static void register_send(struct session *s)
{
	int r;

	if (s->state != SESSION_REGISTERING || s->reg_inflight)
		return;
	r = register_call(s);
	if (r < 0) {
		register_retry_later(s, strerror(-r));
		return;
	}
	s->reg_inflight = true;
	log_debug("registering with %s", s->cfg.url);
}

/* The coordinator no longer knows this worker (it restarted, or forgot a
 * silent worker): register again at once. */
static void session_reregister(struct session *s)
{
	if (s->state == SESSION_FLUSHING) {
		log_info("coordinator %s does not know this worker any more; %zu results stay in "
			 "the spool for the next start",
			 s->cfg.url, s->n_pending);
		session_end(s, 0);
		return;
	}
	if (s->state != SESSION_ACTIVE)
		return;
	log_info("coordinator %s does not know this worker (any more), registering again",
		 s->cfg.url);
	s->state = SESSION_REGISTERING;
	s->backoff_ms = 0;
	register_send(s);
}

/* ---- polling ---- */

static void session_reject(struct session *s, const Hf__Assignment *a, const char *reason)
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

static void session_device_use_cb(void *arg, Hf__Backend backend, unsigned index,
				  struct alloc_use *ret)
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
	if (executor_has(s->ex, a->task_id, a->attempt)) {
		/* Sent again (a reply that crossed a re-registration): it runs,
		 * and is no second task on its devices. */
		log_debug("task %" PRIu64 " attempt %" PRIu32 " is already running", a->task_id,
			  a->attempt);
		return;
	}
	r = alloc_admit(s->cfg.inv, a, session_device_use_cb, s, devs, &n_devs, reason,
			sizeof(reason));
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
		executor_stop(s->ex, pr->cancel[i]->task_id, pr->cancel[i]->attempt,
			      HF__TASK_STATUS__STATUS_CANCELLED,
			      "stopped at the coordinator's request (cancelled or lease lost)");
	for (size_t i = 0; i < pr->n_assignments; i++)
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

static void poll_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct session *s = arg;
	Hf__Envelope *env = NULL;

	s->poll_inflight = false;
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
		break;
	case HF__ENVELOPE__BODY_ERROR:
		if (env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED) {
			session_reregister(s);
			goto out;
		}
		log_warn("coordinator %s refused a poll: %s", s->cfg.url, env->error->message);
		break;
	default:
		log_warn("coordinator %s sent an unexpected reply to a poll, ignoring", s->cfg.url);
		break;
	}
	if (s->poll_again)
		poll_send(s); /* a slot was freed while this poll was out */
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

/* Sends Poll; returns 0 or a negative errno. */
static int poll_call(struct session *s)
{
	const struct hw_inventory *inv = s->cfg.inv;
	size_t n_dev = inv->n_devices, n_run = executor_size(s->ex);
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Poll poll = HF__POLL__INIT;
	Hf__DeviceFree *df = calloc(n_dev + 1, sizeof(*df)), **dfp = calloc(n_dev + 1, sizeof(*dfp));
	Hf__DeviceTelemetry *dt = calloc(HW_MAX_DEVICES, sizeof(*dt));
	Hf__DeviceTelemetry **dtp = calloc(HW_MAX_DEVICES, sizeof(*dtp));
	Hf__TaskRef *tr = calloc(n_run + 1, sizeof(*tr)), **trp = calloc(n_run + 1, sizeof(*trp));
	struct executor_ref *refs = calloc(n_run + 1, sizeof(*refs));
	int r = -ENOMEM;

	if (!df || !dfp || !dt || !dtp || !tr || !trp || !refs)
		goto out;
	for (size_t i = 0; i < n_dev; i++) {
		const struct hw_device *d = &inv->devices[i];
		struct alloc_use use;
		executor_device_use(s->ex, d->backend, d->index, &use.tasks, &use.benchmarks);
		hf__device_free__init(&df[i]);
		df[i].backend = d->backend;
		df[i].index = d->index;
		df[i].free_slots = s->draining || (i < HW_MAX_DEVICES && s->health[i].report_pending)
					   ? 0
					   : alloc_free_slots(d, &use);
		dfp[i] = &df[i];
	}
	session_telemetry_refresh(s);
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
	n_run = executor_list(s->ex, refs, n_run);
	for (size_t i = 0; i < n_run; i++) {
		hf__task_ref__init(&tr[i]);
		tr[i].task_id = refs[i].task_id;
		tr[i].attempt = refs[i].attempt;
		trp[i] = &tr[i];
	}
	poll.worker_id = (char *)s->cfg.worker_id;
	poll.n_free = n_dev;
	poll.free = dfp;
	poll.n_running = n_run;
	poll.running = trp;
	poll.draining = s->draining;
	env.body_case = HF__ENVELOPE__BODY_POLL;
	env.poll = &poll;
	r = session_call(s, &env, poll_reply_cb);
out:
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
static void poll_send(struct session *s)
{
	int r;

	if (s->state != SESSION_ACTIVE)
		return;
	if (s->poll_inflight) {
		s->poll_again = true;
		return;
	}
	r = poll_call(s);
	if (r < 0) {
		log_warn("could not poll %s: %s", s->cfg.url, strerror(-r));
		return;
	}
	s->poll_inflight = true;
	s->poll_again = false;
}

/* ---- results ---- */

/* The coordinator refused the batch in flight as invalid: sending it
 * again cannot help.  A batch of several is sent again one result at a
 * time; a result refused alone is set aside in the spool (as .bad, for a
 * person to look at) so that it cannot hold back the others.  Its task's
 * lease then runs out and the coordinator decides what follows. */
static void results_refused(struct session *s, const char *why)
{
	if (s->results_sent > 1) {
		log_warn("coordinator %s refused a batch of %zu results: %s; sending them one by one "
			 "to find the one it refuses",
			 s->cfg.url, s->results_sent, why);
		s->results_isolate = true;
		results_flush(s);
		return;
	}
	uint64_t task = s->results_sent_task;
	uint32_t attempt = s->results_sent_attempt;
	int r = spool_set_aside(s->spool, task, attempt);
	log_error("coordinator %s refused the result of task %" PRIu64 " attempt %" PRIu32
		  " as invalid: %s; %s, not sent again",
		  s->cfg.url, task, attempt, why,
		  r < 0 ? "it could not be moved aside in the spool" : "it is set aside in the spool as .bad");
	if (r == 0)
		pending_forget(s, task, attempt);
	results_flush(s);
}

static void results_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct session *s = arg;
	Hf__Envelope *env = NULL;
	size_t before = s->n_pending;

	s->results_inflight = false;
	rv = reply_unpack(rv, reply, &env);
	if (s->state == SESSION_DONE)
		goto out;
	if (rv < 0) {
		if (s->results_failures++ % WARN_EVERY == 0)
			log_warn("could not report %zu results to %s: %s; they stay in the spool and "
				 "are sent again",
				 before, s->cfg.url, call_error(rv));
		goto out;
	}
	s->results_failures = 0;
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_ACK:
		for (size_t i = 0; i < env->ack->n_acked; i++)
			pending_remove(s, env->ack->acked[i]->task_id, env->ack->acked[i]->attempt);
		break;
	case HF__ENVELOPE__BODY_ERROR:
		if (env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED) {
			session_reregister(s);
			goto out;
		}
		if (env->error->code == HF__ERROR_CODE__ERR_BAD_REQUEST) {
			results_refused(s, env->error->message);
			goto out;
		}
		log_warn("coordinator %s refused results: %s; sending them again later", s->cfg.url,
			 env->error->message);
		goto out;
	default:
		log_warn("coordinator %s sent an unexpected reply to results, ignoring", s->cfg.url);
		goto out;
	}
	if (s->state == SESSION_FLUSHING && s->n_pending == 0) {
		log_info("all results reported");
		session_end(s, 0);
	} else if (s->n_pending > 0 && s->n_pending < before) {
		results_flush(s); /* progress: send the next batch now */
	}
out:
	hf_env_free(env);
}

static void results_flush(struct session *s)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultBatch batch = HF__RESULT_BATCH__INIT;
	Hf__TaskResult *list[SESSION_BATCH_MAX];
	size_t n = 0, bytes = 0;
	int r;

	if ((s->state != SESSION_ACTIVE && s->state != SESSION_FLUSHING) || s->results_inflight)
		return;
	size_t most = s->results_isolate ? 1 : SESSION_BATCH_MAX;
	if (!s->pending)
		s->results_isolate = false;
	for (struct pending *p = s->pending; p && n < most; p = p->next) {
		size_t size = hf__task_result__get_packed_size(p->result);
		if (n > 0 && bytes + size > SESSION_BATCH_BYTES)
			break;
		list[n++] = p->result;
		bytes += size;
	}
	if (n == 0)
		return;
	batch.worker_id = (char *)s->cfg.worker_id;
	batch.n_results = n;
	batch.results = list;
	env.body_case = HF__ENVELOPE__BODY_RESULTS;
	env.results = &batch;
	r = session_call(s, &env, results_reply_cb);
	if (r < 0) {
		log_warn("could not report results to %s: %s", s->cfg.url, strerror(-r));
		return;
	}
	s->results_inflight = true;
	s->results_sent = n;
	s->results_sent_task = list[0]->task_id;
	s->results_sent_attempt = list[0]->attempt;
	log_debug("reporting %zu results (%zu bytes)", n, bytes);
}

/* ---- health checks ---- */

/* After start or new hardware: check every device once registered, and
 * count the periodic interval from now. */
static void health_reset(struct session *s)
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
	for (size_t i = 0; i < inv->n_devices && i < HW_MAX_DEVICES; i++) {
		struct dev_health *h = &s->health[i];
		if (inv->devices[i].backend != c->backend || inv->devices[i].index != c->index)
			continue;
		h->last_check_ms = hf_mono_ms();
		if (s->health_unsupported)
			break;
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
static void health_run_due(struct session *s)
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
		   env->error->code == HF__ERROR_CODE__ERR_BAD_REQUEST) {
		log_warn("coordinator %s does not take health reports (%s): health checks are not reported",
			 s->cfg.url, env->error->message);
		s->health_unsupported = true;
		acked = true; /* nothing more to wait for */
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
	if (acked)
		poll_send(s); /* those devices offer their slots again */
out:
	hf_env_free(env);
}

/* Sends the health check outcomes not yet acknowledged. */
static void health_flush(struct session *s)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__HealthReport hr = HF__HEALTH_REPORT__INIT;
	Hf__HealthResult res[HW_MAX_DEVICES], *ptrs[HW_MAX_DEVICES];
	const struct hw_inventory *inv = s->cfg.inv;
	size_t n = 0;
	int r;

	if (s->state != SESSION_ACTIVE || s->health_inflight)
		return;
	if (s->health_unsupported) {
		for (size_t i = 0; i < HW_MAX_DEVICES; i++)
			s->health[i].report_pending = false;
		return;
	}
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

/* ---- executor and timers ---- */

static void task_done_cb(struct executor *ex, Hf__TaskResult *result, void *arg)
{
	struct session *s = arg;

	(void)ex;
	pending_add(s, result, false);
	results_flush(s);
	health_run_due(s); /* a device waiting for a check may be idle now */
	poll_send(s); /* a slot is free (or, draining, the coordinator learns it) */
	session_check_drained(s);
}

static void beat_timer_cb(uv_timer_t *h)
{
	struct session *s = h->data;

	for (struct pending *p = s->pending; p; p = p->next)
		if (!p->spooled)
			pending_spool(s, p);
	health_run_due(s);
	poll_send(s);
	results_flush(s);
	health_flush(s);
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
	/* nng 1.5 (Debian 12) can deadlock in nng_close while a request
	 * context has an operation in flight (nng issue #1813, fixed in 1.8),
	 * so the client is closed only once no call is outstanding.  Every
	 * call ends by its timeout at the latest. */
	if ((s->reg_inflight || s->poll_inflight || s->results_inflight || s->health_inflight) &&
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
static void session_end(struct session *s, int exit_code)
{
	if (s->state == SESSION_DONE)
		return;
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

	r = nuv_client_open(loop, cfg->url, REPLY_MAX, &s->client);
	if (r < 0) {
		snprintf(err, errlen, "could not open a connection to \"%s\": %s", cfg->url,
			 strerror(-r));
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
	spool_close(s->spool);
	free(s);
}
