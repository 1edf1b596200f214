/* SPDX-License-Identifier: MIT
 *
 * Registration (see session-internal.h): the Register call with the
 * worker's inventory, runtimes and running tasks, its reply (accepted,
 * refused for good, or retried after a jittered backoff, with a TLS probe
 * at the warnings), what an accepted registration starts (heartbeat,
 * health checks, warm runners, the first poll, the results and health
 * reports waiting), and registering again when the coordinator no longer
 * knows this worker.  Loop thread only, as the rest of the session.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_nuv.h"
#include "hf_proto.h"
#include "session-internal.h"
#include "spool.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

static void reg_timer_cb(uv_timer_t *h)
{
	register_send(h->data);
}

/* How long the loop may wait, at a registration warning, to find out
 * whether TLS is what fails. */
#define TLS_PROBE_MS 1000

/* Registers again after a backoff; why is logged at level (repeated
 * failures only every WARN_EVERY times, else at debug level). */
static void register_retry_later_at(struct session *s, enum hf_log_level level, const char *why)
{
	char probe[512];
	unsigned delay;

	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	/* Full jitter in the upper half, so a fleet that lost its coordinator
	 * at once does not come back at once. */
	delay = s->backoff_ms / 2 + session_random(s) % (s->backoff_ms / 2 + 1);
	if (s->reg_failures++ % WARN_EVERY != 0) {
		log_debug("could not register with %s: %s; retrying in %u ms", s->cfg.url, why, delay);
	} else if (hf_tls_url(s->cfg.url) && !strchr(s->cfg.url, ',') &&
		   hf_tls_probe(s->cfg.url, s->cfg.tls, TLS_PROBE_MS, probe, sizeof(probe)) != 0) {
		/* nng retries a TLS failure quietly, as any other: find out
		 * whether that is why (bounded, and only at the warnings). */
		hf_log(level, "could not register with %s: %s (%s); retrying in %u ms", s->cfg.url, why,
		       probe, delay);
	} else {
		hf_log(level, "could not register with %s: %s; retrying in %u ms", s->cfg.url, why, delay);
	}
	uv_timer_start(&s->reg_timer, reg_timer_cb, delay, 0);
}

static void register_retry_later(struct session *s, const char *why)
{
	register_retry_later_at(s, HF_LOG_WARN, why);
}

static void session_registered(struct session *s, const Hf__RegisterReply *rr)
{
	s->state = SESSION_ACTIVE;
	if (rr->session != s->reg_session && spool_session_save(s->spool, rr->session) < 0)
		log_warn("could not keep the session number in \"%s\": a restart will register as a "
			 "new worker session (and may be refused for a few seconds)", spool_dir(s->spool));
	s->reg_session = rr->session;
	s->backoff_ms = 0;
	s->reg_failures = 0;
	session_set_heartbeat(s, rr->heartbeat_ms);
	log_info("registered with %s as \"%s\": heartbeat %" PRId64 " ms, lease %" PRIu32
		 " ms, %zu running tasks, %zu results to report",
		 s->cfg.url, s->cfg.worker_id, s->heartbeat_ms, rr->lease_ms, executor_size(s->ex),
		 s->n_pending);
	if (!uv_is_active((uv_handle_t *)&s->beat_timer))
		beat_start(s);
	if (s->health_at_register && s->cfg.health_timeout_ms > 0) {
		s->health_at_register = false;
		for (size_t i = 0; i < s->cfg.inv->n_devices && i < HW_MAX_DEVICES; i++)
			s->health[i].due = "register";
	}
	health_run_due(s); /* before the first poll, so those devices offer no slots */
	if (s->prewarm_due && !s->draining) {
		s->prewarm_due = false;
		executor_prewarm(s->ex, s->cfg.inv);
	}
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
		if (env->error->code == HF__ERROR_CODE__ERR_UNAUTHENTICATED ||
		    env->error->code == HF__ERROR_CODE__ERR_FORBIDDEN) {
			log_error("coordinator %s refused worker \"%s\": %s%s", s->cfg.url, s->cfg.worker_id,
				  env->error->message,
				  s->cfg.token ? "" :
						 " (this worker has no token: set worker.token_file, or "
						 "HFLEET_WORKER_TOKEN_FILE, to a file holding its worker token)");
			session_end(s, 1);
			break;
		}
		if (env->error->code == HF__ERROR_CODE__ERR_ID_IN_USE) {
			/* Not fatal: the other may be an instance of this worker that
			 * is going away; once its session lapses the id is free. */
			snprintf(why, sizeof(why),
				 "%s (another hf-worker runs as \"%s\": give each worker its own id); "
				 "trying again in case the other is stopping",
				 env->error->message, s->cfg.worker_id);
			register_retry_later_at(s, HF_LOG_ERROR, why);
			break;
		}
		if (env->error->code == HF__ERROR_CODE__ERR_WRONG_PORT) {
			/* Not fatal (an address may be fixed behind a name), but
			 * an error, and backed off as any failed registration. */
			snprintf(why, sizeof(why),
				 "%s: coordinator.url (--coordinator-url, $HFLEET_WORKER_URL) must be "
				 "the coordinator's worker address",
				 env->error->message);
			register_retry_later_at(s, HF_LOG_ERROR, why);
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
		dev[i].slots = alloc_capacity(d);
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
	reg.session = s->reg_session;
	/* It queues tasks ahead itself while they are short (session-ahead.c):
	 * the coordinator's reservations would only compete with that. */
	reg.leases_ahead = s->cfg.lease_ahead > 0;
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

void register_send(struct session *s)
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
void session_reregister(struct session *s)
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
