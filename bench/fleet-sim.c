/* SPDX-License-Identifier: MIT
 *
 * hfleet-fleet-sim: many simulated workers in one process, for the
 * benchmark harness (bench/run.py).  Each simulated worker has its own
 * connection (an SP REQ client on libuv, sp-client.h; with --nng
 * hf-worker's own client over nng's streams, hf_nuv.h), its own worker id and worker token,
 * and speaks the real worker protocol as hf-worker does (worker/session.c):
 * Register (one CPU device of --slots slots), then a Poll every heartbeat
 * carrying its session, its free slots and the tasks it holds; heartbeats
 * jittered as hf-worker's (the first at a random point of one interval,
 * then every 0.9 .. 1.1 x the heartbeat); a poll with a free slot asks to
 * be held (Poll.hold_ms, a jittered heartbeat; Poll.replaces_held when a
 * held one is still out), no poll goes out at a beat while a held one is
 * out, and a reply with hold_ended or with assignments polls again at once
 * while a slot is free; a freed slot polls at once; results go in
 * ResultBatch calls of at most 256 (--results-in-flight of them out at
 * once, 2 as hf-worker keeps) and are forgotten only when acknowledged;
 * ERR_NOT_REGISTERED registers again under the same session.  Replies are decoded and
 * validated with hf_msg_decode, as hf-worker does.  Nothing is written to
 * disk: the simulated worker has no spool, so it measures the coordinator
 * and the database, not a worker.
 *
 * What a leased task does (--mode):
 *   complete   it "runs" --task-ms milliseconds (0: none) and passes
 *   hold       it is held and its lease renewed by every poll, never ended
 *   none       free slots are advertised as 0: heartbeats only (a busy
 *              fleet: polls answered at once)
 *   idle       one free slot and nothing to take: every poll is held
 *              (an idle hf-worker fleet), poll times are counted from the
 *              end of the hold (see poll_reply_cb)
 *
 * With --submit-count K (and --control-url, --admin-token) the process is
 * also a control client: every --submit-every ms it submits a job of
 * --submit-model on cpu, kind test (one task) and records when the request
 * was sent; each worker records when it received the job's first lease.
 * Both are this process's monotonic clock, so submit -> first lease is
 * measured end to end (the submit's commit, the dispatch, the lease's
 * commit and its delivery) without the cost of starting hfctl.
 *
 * Slot free -> next lease: the time from a slot freeing (a task ending) to
 * the next assignment the same worker receives, sampled only while a slot
 * is free and work is queued (the harness keeps the queue deep).
 *
 * At the end (--seconds) it prints one JSON object on stdout with the
 * counts and percentiles (poll times, polls/s and failures from
 * --measure-after-ms on, so that the ramp is left out); with --report-every
 * it prints a line per interval on stderr (polls answered, p99, registered
 * workers).
 *
 * This file is the simulated workers and the command line; the samples,
 * the submits and the summary are fleet-sim-report.c, what both share
 * fleet-sim.h.  One thread (the libuv loop) plus nng's own; everything
 * here runs on the loop thread (hf_nuv.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fleet-sim.h"
#include "hf_nuv.h"
#include "hf_proto.h"
#include "hf_util.h"
#include "hf_validate.h"
#include "sp-client.h"

/* One ResultBatch call in flight. */
struct results_ctx {
	struct worker *w;
	uint32_t batch;
};

struct task_timer {
	uv_timer_t t;
	struct worker *w;
	uint64_t task_id;
	uint32_t attempt;
};

/* One poll in flight. */
struct poll_ctx {
	struct worker *w;
	int64_t sent_us;
	uint32_t hold_ms; /* 0: not held */
};

struct opts o = {
	.workers = 10, .slots = 1, .seconds = 10, .mode = MODE_COMPLETE, .ramp_ms = 1000,
	.submit_every_ms = 200, .submit_model = "bert", .results_in_flight = 2,
};
struct fleet_stats st;
struct worker *fleet;
struct samples poll_rtt, poll_rtt_interval, slot_free;
struct lease_event *leases_seen;
size_t n_leases_seen;
struct submit_rec *submits;
unsigned n_submitted;
struct conn control;
uv_timer_t submit_timer;
int64_t t0_us, measure_us;
static uv_loop_t *loop;
/* hf-worker's call timeout: three heartbeats, at least 5 s (worker/session.c). */
static int call_timeout_ms;
static size_t cap_leases_seen;
static uv_timer_t end_timer, report_timer, measure_timer;
static uv_signal_t sigint, sigterm;

static int conn_open(struct conn *c, const char *url, char *err, size_t errlen)
{
	int r;

	if (o.use_nng)
		return nuv_client_open(loop, url, NULL, REPLY_MAX, &c->nuv, err, errlen);
	r = sp_client_open(loop, url, &c->sp);
	if (r < 0)
		snprintf(err, errlen, "%s: only tcp://IPv4:PORT without --nng", url);
	return r;
}

/* A call waits call_timeout_ms, a held poll hold_ms longer (hf-worker's
 * poll_call). */
int call(struct conn *c, Hf__Envelope *env, const char *token, uint32_t hold_ms, nuv_reply_cb cb, void *arg)
{
	nng_msg *msg;
	int r;

	env->token = (char *)token;
	r = hf_env_pack(env, &msg);
	if (r < 0)
		return r;
	if (c->sp)
		return sp_client_call(c->sp, msg, (int)hold_ms, cb, arg);
	return nuv_client_call(c->nuv, msg, call_timeout_ms + (int)hold_ms, cb, arg);
}

int reply_decode(int rv, nng_msg *reply, enum hf_msg_role role, Hf__Envelope **ret)
{
	char err[256];

	if (rv < 0)
		return rv;
	rv = hf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), role, ret, err, sizeof(err));
	nng_msg_free(reply);
	if (rv < 0)
		fprintf(stderr, "fleet-sim: a reply breaks the protocol: %s\n", err);
	return rv;
}

/* The tasks w holds as TaskRefs, for a poll's running list or a
 * registration's (hf-worker lists the same in both).  Returns how many;
 * the caller frees *ret_tr and *ret_trp. */
static size_t held_refs(const struct worker *w, Hf__TaskRef **ret_tr, Hf__TaskRef ***ret_trp)
{
	size_t n = 0, i = 0;
	Hf__TaskRef *tr, **trp;

	for (const struct held *h = w->held; h; h = h->next)
		n++;
	tr = calloc(n + 1, sizeof(*tr));
	trp = calloc(n + 1, sizeof(*trp));
	if (!tr || !trp)
		abort();
	for (const struct held *h = w->held; h; h = h->next, i++) {
		hf__task_ref__init(&tr[i]);
		tr[i].task_id = h->task_id;
		tr[i].attempt = h->attempt;
		trp[i] = &tr[i];
	}
	*ret_tr = tr;
	*ret_trp = trp;
	return n;
}

static void register_send(struct worker *w);
static void poll_send(struct worker *w);

/* hf-worker's jittered interval (worker/session.c, beat_interval_ms):
 * 0.9 .. 1.1 x the heartbeat, drawn anew each time. */
static unsigned beat_interval_ms(const struct worker *w)
{
	unsigned spread = w->heartbeat_ms / 5;

	return w->heartbeat_ms - spread / 2 + (unsigned)rand() % (spread + 1);
}

static unsigned free_slots(const struct worker *w)
{
	return o.mode == MODE_NONE || w->running >= o.slots ? 0 : o.slots - w->running;
}
static void results_flush(struct worker *w);

/* ---- results ---- */

static void result_add(struct worker *w, uint64_t task_id, uint32_t attempt)
{
	if (w->n_pending == w->cap_pending) {
		size_t cap = w->cap_pending ? 2 * w->cap_pending : 16;
		struct pend *p = realloc(w->pending, cap * sizeof(*p));
		if (!p)
			abort();
		w->pending = p;
		w->cap_pending = cap;
	}
	w->pending[w->n_pending++] = (struct pend){ .task_id = task_id, .attempt = attempt };
}

static void results_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct results_ctx *ctx = arg;
	struct worker *w = ctx->w;
	uint32_t batch = ctx->batch;
	Hf__Envelope *env = NULL;
	bool acked;

	free(ctx);
	w->res_out--;
	rv = reply_decode(rv, reply, HF_MSG_WORKER_REPLY, &env);
	acked = rv == 0 && env->body_case == HF__ENVELOPE__BODY_ACK;
	if (acked) {
		/* Forget what is acknowledged: a linear match, batches are small. */
		for (size_t a = 0; a < env->ack->n_acked; a++) {
			const Hf__TaskRef *k = env->ack->acked[a];
			for (size_t i = 0; i < w->n_pending; i++)
				if (w->pending[i].task_id == k->task_id && w->pending[i].attempt == k->attempt) {
					w->pending[i] = w->pending[--w->n_pending];
					st.results_acked++;
					break;
				}
		}
	} else {
		st.result_failures++;
		if (rv == 0 && env->body_case == HF__ENVELOPE__BODY_ERROR &&
		    env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED && w->registered) {
			w->registered = false;
			st.reregisters++;
			register_send(w);
		}
	}
	hf_env_free(env);
	/* What the batch held and was not acknowledged goes again. */
	for (size_t i = 0; i < w->n_pending; i++)
		if (w->pending[i].batch == batch)
			w->pending[i].batch = 0;
	/* After a failure they go at the next beat, never at once. */
	if (acked && w->n_pending)
		results_flush(w);
}

/* Sends the results not in flight, RESULTS_PER_BATCH a call, while fewer
 * than --results-in-flight calls are out. */
static void results_flush(struct worker *w)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultBatch rb = HF__RESULT_BATCH__INIT;
	Hf__TaskResult tr[RESULTS_PER_BATCH], *trp[RESULTS_PER_BATCH];
	size_t idx[RESULTS_PER_BATCH];
	double now = hf_wall_s();

	while (w->registered && w->res_out < o.results_in_flight) {
		size_t n = 0;
		for (size_t i = 0; i < w->n_pending && n < RESULTS_PER_BATCH; i++)
			if (!w->pending[i].batch)
				idx[n++] = i;
		if (!n)
			return;
		for (size_t i = 0; i < n; i++) {
			hf__task_result__init(&tr[i]);
			tr[i].task_id = w->pending[idx[i]].task_id;
			tr[i].attempt = w->pending[idx[i]].attempt;
			tr[i].status = HF__TASK_STATUS__STATUS_PASSED;
			tr[i].reason = "";
			tr[i].metrics_json = "{}";
			tr[i].env_json = "{\"runner_version\":\"fleet-sim\"}";
			tr[i].log_excerpt = "";
			tr[i].started_at = now;
			tr[i].finished_at = now;
			tr[i].weights = "";
			trp[i] = &tr[i];
		}
		rb.worker_id = w->id;
		rb.n_results = n;
		rb.results = trp;
		rb.session = w->session;
		env.body_case = HF__ENVELOPE__BODY_RESULTS;
		env.results = &rb;
		struct results_ctx *ctx = malloc(sizeof(*ctx));
		if (!ctx)
			abort();
		if (++w->res_batches == 0)
			w->res_batches = 1; /* 0 means not in flight */
		*ctx = (struct results_ctx){ .w = w, .batch = w->res_batches };
		if (call(&w->client, &env, w->token, 0, results_reply_cb, ctx) < 0) {
			free(ctx);
			return;
		}
		for (size_t i = 0; i < n; i++)
			w->pending[idx[i]].batch = ctx->batch;
		w->res_out++;
		st.results_sent += n;
	}
}

/* ---- tasks ---- */

static void held_remove(struct worker *w, uint64_t task_id, uint32_t attempt)
{
	for (struct held **p = &w->held; *p; p = &(*p)->next)
		if ((*p)->task_id == task_id && (*p)->attempt == attempt) {
			struct held *h = *p;
			*p = h->next;
			free(h);
			return;
		}
}

static void task_end(struct worker *w, uint64_t task_id, uint32_t attempt)
{
	held_remove(w, task_id, attempt);
	if (w->running)
		w->running--;
	if (!w->free_since_us)
		w->free_since_us = hf_mono_us();
	result_add(w, task_id, attempt);
}

static void task_timer_close_cb(uv_handle_t *h)
{
	free(h->data);
}

static void task_timer_cb(uv_timer_t *t)
{
	struct task_timer *k = t->data;
	struct worker *w = k->w;

	task_end(w, k->task_id, k->attempt);
	uv_close((uv_handle_t *)t, task_timer_close_cb);
	/* A slot is free: the poll goes out before the result, as hf-worker's
	 * (worker/session.c, task_done_cb), so the coordinator queues the
	 * next lease ahead of the result's store. */
	poll_send(w);
	results_flush(w);
}

static void task_start(struct worker *w, const Hf__Assignment *a)
{
	struct held *h = malloc(sizeof(*h));

	if (!h)
		abort();
	h->task_id = a->task_id;
	h->attempt = a->attempt;
	h->next = w->held;
	w->held = h;
	w->running++;
	if (o.mode != MODE_COMPLETE)
		return;
	if (o.task_ms == 0) {
		task_end(w, a->task_id, a->attempt);
		return;
	}
	struct task_timer *k = malloc(sizeof(*k));
	if (!k)
		abort();
	k->w = w;
	k->task_id = a->task_id;
	k->attempt = a->attempt;
	uv_timer_init(loop, &k->t);
	k->t.data = k;
	uv_timer_start(&k->t, task_timer_cb, o.task_ms, 0);
}

/* ---- poll ---- */

static void lease_seen(uint64_t job_id, int64_t at)
{
	if (!o.submit_count)
		return;
	if (n_leases_seen == cap_leases_seen) {
		size_t cap = cap_leases_seen ? 2 * cap_leases_seen : 1024;
		struct lease_event *p = realloc(leases_seen, cap * sizeof(*p));
		if (!p)
			return;
		leases_seen = p;
		cap_leases_seen = cap;
	}
	leases_seen[n_leases_seen].job_id = job_id;
	leases_seen[n_leases_seen].at_us = at;
	n_leases_seen++;
}

static void poll_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct poll_ctx *ctx = arg;
	struct worker *w = ctx->w;
	Hf__Envelope *env = NULL;
	int64_t now = hf_mono_us(), took = now - ctx->sent_us;
	bool again = false;

	w->polls_out--;
	if (ctx->hold_ms)
		w->held_out--;
	rv = reply_decode(rv, reply, HF_MSG_WORKER_REPLY, &env);
	if (rv < 0) {
		st.poll_failures++;
		goto out;
	}
	if (env->body_case == HF__ENVELOPE__BODY_ERROR) {
		st.poll_errors++;
		if (env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED && w->registered) {
			w->registered = false;
			st.reregisters++;
			register_send(w);
		}
		goto out;
	}
	if (env->body_case != HF__ENVELOPE__BODY_POLL_REPLY) {
		st.poll_errors++;
		goto out;
	}
	st.polls_answered++;
	{
		const Hf__PollReply *pr = env->poll_reply;
		/* A held poll answered because its hold ended is late by what
		 * it took beyond the hold (the least of hold_ms and the
		 * coordinator's heartbeat, docs/protocol.md); one answered
		 * with work or replaced, by nothing to subtract. */
		if (ctx->hold_ms && pr->hold_ended) {
			int64_t hold = ctx->hold_ms < pr->heartbeat_ms || !pr->heartbeat_ms ? ctx->hold_ms : pr->heartbeat_ms;
			took = took > hold * 1000 ? took - hold * 1000 : 0;
			st.holds_ended++;
		}
		if (pr->heartbeat_ms)
			w->heartbeat_ms = pr->heartbeat_ms;
		sample_add(&poll_rtt, took);
		sample_add(&poll_rtt_interval, took);
		again = pr->hold_ended || pr->n_assignments > 0;
		if (pr->n_assignments && w->free_since_us) {
			sample_add(&slot_free, now - w->free_since_us);
			/* Each slow one with the wall clock, to be laid beside the
			 * coordinator's and PostgreSQL's logs. */
			if (o.slow_log_ms && now - w->free_since_us > (int64_t)o.slow_log_ms * 1000)
				fprintf(stderr, "fleet-sim: slow slot free: worker %s waited %.2f ms, at %.3f\n", w->id,
					(double)(now - w->free_since_us) / 1000, hf_wall_s());
			w->free_since_us = 0;
		}
		for (size_t i = 0; i < pr->n_cancel; i++)
			if (w->running) {
				held_remove(w, pr->cancel[i]->task_id, pr->cancel[i]->attempt);
				w->running--;
			}
		for (size_t i = 0; i < pr->n_assignments; i++) {
			st.leases++;
			lease_seen(pr->assignments[i]->job_id, now);
			task_start(w, pr->assignments[i]);
		}
		if (pr->n_assignments && o.mode == MODE_COMPLETE && o.task_ms == 0) {
			results_flush(w);
			w->poll_again = true; /* the slots are free again */
		}
	}
out:
	free(ctx);
	hf_env_free(env);
	if (w->poll_again || (again && w->polls_out == 0 && free_slots(w) > 0))
		poll_send(w);
}

static void poll_send(struct worker *w)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Poll poll = HF__POLL__INIT;
	Hf__DeviceFree df = HF__DEVICE_FREE__INIT, *dfp = &df;
	size_t n_held;
	Hf__TaskRef *tr, **trp;
	struct poll_ctx *ctx;

	if (!w->registered)
		return;
	/* A held poll out is answered by the coordinator when this one
	 * comes; any other poll out is waited for (hf-worker's poll_send). */
	if (w->polls_out > 0 && !(w->polls_out == 1 && w->held_out == 1)) {
		w->poll_again = true;
		return;
	}
	n_held = held_refs(w, &tr, &trp);
	df.backend = HF__BACKEND__BACKEND_CPU;
	df.index = 0;
	df.free_slots = free_slots(w);
	poll.worker_id = w->id;
	poll.n_free = 1;
	poll.free = &dfp;
	poll.n_running = n_held;
	poll.running = trp;
	poll.session = w->session;
	/* Idle slots: held, as hf-worker asks (worker/session.c, poll_call). */
	poll.hold_ms = df.free_slots > 0 ? beat_interval_ms(w) : 0;
	poll.replaces_held = w->held_out > 0;
	env.body_case = HF__ENVELOPE__BODY_POLL;
	env.poll = &poll;
	ctx = malloc(sizeof(*ctx));
	if (!ctx)
		abort();
	ctx->w = w;
	ctx->hold_ms = poll.hold_ms;
	ctx->sent_us = hf_mono_us();
	if (call(&w->client, &env, w->token, poll.hold_ms, poll_reply_cb, ctx) == 0) {
		w->polls_out++;
		if (poll.hold_ms)
			w->held_out++;
		w->poll_again = false;
		st.polls_sent++;
	} else {
		free(ctx);
		st.poll_failures++;
	}
	free(tr);
	free(trp);
}

static void beat_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->client.sp)
		sp_client_expire(w->client.sp, call_timeout_ms);
	uv_timer_start(&w->beat, beat_cb, beat_interval_ms(w), 0);
	if (!w->registered) {
		register_send(w);
		return;
	}
	/* A held poll out is this beat's (hf-worker's beat_timer_cb). */
	if (w->held_out == 0)
		poll_send(w);
	results_flush(w);
}

/* ---- register ---- */

static void register_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct worker *w = arg;
	Hf__Envelope *env = NULL;

	w->reg_inflight = false;
	rv = reply_decode(rv, reply, HF_MSG_WORKER_REPLY, &env);
	if (rv < 0 || env->body_case != HF__ENVELOPE__BODY_REGISTER_REPLY ||
	    !env->register_reply->accepted) {
		if (st.register_failures++ < 5)
			fprintf(stderr, "fleet-sim: worker %s could not register: %s\n", w->id,
				rv < 0 ? strerror(-rv)
				: env->body_case == HF__ENVELOPE__BODY_ERROR ? env->error->message
									       : "refused");
		hf_env_free(env);
		return; /* the beat timer tries again */
	}
	w->session = env->register_reply->session;
	if (env->register_reply->heartbeat_ms)
		w->heartbeat_ms = env->register_reply->heartbeat_ms;
	w->registered = true;
	st.registers++;
	hf_env_free(env);
	poll_send(w);
	results_flush(w);
}

static void register_send(struct worker *w)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Register reg = HF__REGISTER__INIT;
	Hf__Device dev = HF__DEVICE__INIT, *devp = &dev;
	Hf__CpuInfo cpu = HF__CPU_INFO__INIT;
	Hf__BackendStatus bs = HF__BACKEND_STATUS__INIT, *bsp = &bs;
	Hf__TaskRef *tr, **trp;
	size_t n_held;

	if (w->reg_inflight)
		return;
	n_held = held_refs(w, &tr, &trp);
	dev.backend = HF__BACKEND__BACKEND_CPU;
	dev.index = 0;
	dev.name = "fleet-sim cpu";
	dev.memory_bytes = UINT64_C(64) << 30;
	dev.arch = "x86_64";
	dev.driver = "";
	dev.uuid = "";
	dev.slots = o.slots;
	cpu.model = "fleet-sim cpu";
	cpu.sockets = 1;
	cpu.cores = o.slots;
	cpu.threads = o.slots;
	cpu.memory_bytes = UINT64_C(64) << 30;
	cpu.numa_nodes = 1;
	cpu.arch = "x86_64";
	bs.backend = HF__BACKEND__BACKEND_CPU;
	bs.present = true;
	bs.reason = "";
	bs.driver = "";
	bs.library = "";
	reg.worker_id = w->id;
	reg.hostname = w->id;
	reg.software_version = HF_VERSION;
	reg.protocol_version = HF_PROTOCOL_VERSION;
	reg.n_devices = 1;
	reg.devices = &devp;
	reg.cpu = &cpu;
	reg.n_backends = 1;
	reg.backends = &bsp;
	reg.n_running = n_held;
	reg.running = trp;
	reg.session = w->session;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;
	if (call(&w->client, &env, w->token, 0, register_reply_cb, w) == 0)
		w->reg_inflight = true;
	free(tr);
	free(trp);
}

static void start_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	register_send(w);
	/* The first beat at a random point of one interval, as hf-worker's. */
	uv_timer_start(&w->beat, beat_cb, (uint64_t)rand() % (w->heartbeat_ms + 1), 0);
}

/* ---- start ---- */

static int load_tokens(void)
{
	FILE *f = fopen(o.tokens, "re");
	char name[128], token[160];
	unsigned n = 0;

	if (!f) {
		fprintf(stderr, "fleet-sim: cannot open %s: %s\n", o.tokens, strerror(errno));
		return -1;
	}
	while (n < o.workers && fscanf(f, "%127s %159s", name, token) == 2) {
		snprintf(fleet[n].id, sizeof(fleet[n].id), "%s", name);
		snprintf(fleet[n].token, sizeof(fleet[n].token), "%s", token);
		n++;
	}
	fclose(f);
	if (n < o.workers) {
		fprintf(stderr, "fleet-sim: %s holds %u worker tokens, %u needed\n", o.tokens, n, o.workers);
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: hfleet-fleet-sim --url URL --tokens FILE [--workers N] [--slots M]\n"
		"         [--heartbeat-ms MS] [--seconds S] [--mode complete|hold|none|idle] [--task-ms MS]\n"
		"         [--ramp-ms MS] [--report-every S] [--measure-after-ms MS] [--slow-log MS] [--nng]\n"
		"         [--results-in-flight K (1 to 4, default 2, as hf-worker)]\n"
		"         [--control-url URL --admin-token TOKEN --submit-count K [--submit-every-ms MS]\n"
		"          [--submit-model MODEL]]\n"
		"FILE: one \"worker-id token\" per line (worker tokens).  Prints a JSON summary.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "tokens", required_argument, NULL, 't' },
		{ "workers", required_argument, NULL, 'w' },
		{ "slots", required_argument, NULL, 's' },
		{ "heartbeat-ms", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "mode", required_argument, NULL, 'm' },
		{ "task-ms", required_argument, NULL, 'k' },
		{ "ramp-ms", required_argument, NULL, 'r' },
		{ "report-every", required_argument, NULL, 'R' },
		{ "control-url", required_argument, NULL, 'c' },
		{ "admin-token", required_argument, NULL, 'a' },
		{ "submit-count", required_argument, NULL, 'n' },
		{ "submit-every-ms", required_argument, NULL, 'e' },
		{ "submit-model", required_argument, NULL, 'M' },
		{ "measure-after-ms", required_argument, NULL, 'A' },
		{ "slow-log", required_argument, NULL, 'L' },
		{ "nng", no_argument, NULL, 'N' },
		{ "results-in-flight", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t nofile = 0;
	char err[256];
	int c;

	o.heartbeat_ms = 1000;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': o.url = optarg; break;
		case 't': o.tokens = optarg; break;
		case 'w': o.workers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o.slots = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b': o.heartbeat_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': o.seconds = strtod(optarg, NULL); break;
		case 'k': o.task_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': o.ramp_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'R': o.report_every_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': o.control_url = optarg; break;
		case 'a': o.admin_token = optarg; break;
		case 'n': o.submit_count = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'e': o.submit_every_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'M': o.submit_model = optarg; break;
		case 'N': o.use_nng = true; break;
		case 'F': o.results_in_flight = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'L': o.slow_log_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'A': o.measure_after_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm':
			if (strcmp(optarg, "complete") == 0)
				o.mode = MODE_COMPLETE;
			else if (strcmp(optarg, "hold") == 0)
				o.mode = MODE_HOLD;
			else if (strcmp(optarg, "none") == 0)
				o.mode = MODE_NONE;
			else if (strcmp(optarg, "idle") == 0)
				o.mode = MODE_IDLE;
			else {
				usage();
				return 2;
			}
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!o.url || !o.tokens || !o.workers || !o.slots || o.slots > 256 || !o.heartbeat_ms ||
	    o.seconds <= 0 || (o.submit_count && (!o.control_url || !o.admin_token)) ||
	    (o.submit_count && !o.submit_every_ms) || o.results_in_flight < 1 || o.results_in_flight > 4) {
		usage();
		return 2;
	}
	if (nuv_nofile_raise(&nofile) < 0 || nofile < (uint64_t)o.workers + 64)
		fprintf(stderr, "fleet-sim: open files limited to %" PRIu64 " for %u workers (ulimit -Hn)\n",
			nofile, o.workers);
	call_timeout_ms = 3 * (int)o.heartbeat_ms > 5000 ? 3 * (int)o.heartbeat_ms : 5000;
	signal(SIGPIPE, SIG_IGN);
	fleet = calloc(o.workers, sizeof(*fleet));
	submits = calloc(o.submit_count + 1, sizeof(*submits));
	if (!fleet || !submits || load_tokens() < 0)
		return 1;
	loop = uv_default_loop();
	srand((unsigned)getpid());
	for (unsigned i = 0; i < o.workers; i++) {
		struct worker *w = &fleet[i];
		w->i = i;
		w->heartbeat_ms = o.heartbeat_ms;
		if (conn_open(&w->client, o.url, err, sizeof(err)) < 0) {
			fprintf(stderr, "fleet-sim: worker %u: %s\n", i, err);
			return 1;
		}
		uv_timer_init(loop, &w->start);
		uv_timer_init(loop, &w->beat);
		w->start.data = w->beat.data = w;
		/* Workers come up spread over the ramp, as a fleet does. */
		uv_timer_start(&w->start, start_cb, o.ramp_ms ? (uint64_t)rand() % o.ramp_ms : 0, 0);
	}
	if (o.submit_count) {
		if (conn_open(&control, o.control_url, err, sizeof(err)) < 0) {
			fprintf(stderr, "fleet-sim: control: %s\n", err);
			return 1;
		}
		uv_timer_init(loop, &submit_timer);
		/* The first submit once every worker is registered and idle. */
		uv_timer_start(&submit_timer, submit_cb, o.ramp_ms + 2 * o.heartbeat_ms, 0);
	}
	t0_us = measure_us = hf_mono_us();
	if (o.measure_after_ms) {
		uv_timer_init(loop, &measure_timer);
		uv_timer_start(&measure_timer, measure_cb, o.measure_after_ms, 0);
	}
	uv_timer_init(loop, &end_timer);
	uv_timer_start(&end_timer, end_cb, (uint64_t)(o.seconds * 1000), 0);
	if (o.report_every_s) {
		uv_timer_init(loop, &report_timer);
		uv_timer_start(&report_timer, report_cb, o.report_every_s * 1000, o.report_every_s * 1000);
	}
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigint, signal_cb, SIGINT);
	uv_signal_init(loop, &sigterm);
	uv_signal_start(&sigterm, signal_cb, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
