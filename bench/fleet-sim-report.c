/* SPDX-License-Identifier: MIT
 *
 * hfleet-fleet-sim's measurements (see fleet-sim.c): the samples and their
 * quantiles, the control client that submits one-task jobs for submit ->
 * first lease, the line a --report-every interval prints, and the JSON
 * summary printed at the end.  Loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet-sim.h"
#include "hf_util.h"

/* The counts when the measured part began (measure_cb). */
static uint64_t answered_at_measure, failures_at_measure;

/* ---- samples ---- */

void sample_add(struct samples *s, int64_t us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4096;
		uint32_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts s and returns the q quantile in milliseconds (-1: no samples). */
static double quantile_ms(struct samples *s, double q)
{
	size_t k;

	if (!s->n)
		return -1;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
	k = (size_t)(q * (double)(s->n - 1) + 0.5);
	return s->v[k] / 1000.0;
}

/* ---- submits (a control client) ---- */

static void submit_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct submit_rec *s = arg;
	Hf__Envelope *env = NULL;

	rv = reply_decode(rv, reply, HF_MSG_CONTROL_REPLY, &env);
	if (rv < 0 || env->body_case != HF__ENVELOPE__BODY_SUBMIT_REPLY) {
		s->failed = true;
		if (st.submit_failures++ < 5)
			fprintf(stderr, "fleet-sim: submit failed: %s\n",
				rv < 0 ? strerror(-rv)
				: env->body_case == HF__ENVELOPE__BODY_ERROR ? env->error->message
									       : "unexpected reply");
	} else {
		s->job_id = env->submit_reply->job_id;
	}
	hf_env_free(env);
}

void submit_cb(uv_timer_t *t)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__SubmitRequest sr = HF__SUBMIT_REQUEST__INIT;
	Hf__Backend be = HF__BACKEND__BACKEND_CPU;
	Hf__TaskKind kind = HF__TASK_KIND__KIND_TEST;
	char *model = (char *)o.submit_model, name[64];
	struct submit_rec *s;

	(void)t;
	if (n_submitted >= o.submit_count)
		return;
	s = &submits[n_submitted++];
	snprintf(name, sizeof(name), "fleet-sim-latency-%u", n_submitted);
	sr.n_models = 1;
	sr.models = &model;
	sr.n_backends = 1;
	sr.backends = &be;
	sr.n_kinds = 1;
	sr.kinds = &kind;
	sr.name = name;
	env.body_case = HF__ENVELOPE__BODY_SUBMIT;
	env.submit = &sr;
	s->sent_us = hf_mono_us();
	if (call(&control, &env, o.admin_token, 0, submit_reply_cb, s) < 0)
		s->failed = true;
	/* The next one after a random wait, so submits do not fall in step
	 * with the heartbeats. */
	uv_timer_start(&submit_timer, submit_cb, o.submit_every_ms / 2 + (unsigned)rand() % (o.submit_every_ms + 1),
		       0);
}

/* ---- reports and the end ---- */

static unsigned registered_count(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < o.workers; i++)
		n += fleet[i].registered;
	return n;
}

void report_cb(uv_timer_t *t)
{
	double el = (hf_mono_us() - t0_us) / 1e6;
	uint64_t answered = st.polls_answered - st.polls_at_last_report;

	(void)t;
	fprintf(stderr,
		"fleet-sim: t=%.0fs registered=%u polls/s=%.0f p50=%.1fms p99=%.1fms max=%.1fms leases=%" PRIu64
		" results_acked=%" PRIu64 " poll_failures=%" PRIu64 " poll_errors=%" PRIu64 "\n",
		el, registered_count(), answered / (double)o.report_every_s,
		quantile_ms(&poll_rtt_interval, 0.5), quantile_ms(&poll_rtt_interval, 0.99),
		quantile_ms(&poll_rtt_interval, 1.0), st.leases, st.results_acked, st.poll_failures,
		st.poll_errors);
	st.polls_at_last_report = st.polls_answered;
	poll_rtt_interval.n = 0;
}

/* The ramp (registrations, the first polls) is over: counts and poll
 * times from now on. */
void measure_cb(uv_timer_t *t)
{
	(void)t;
	measure_us = hf_mono_us();
	answered_at_measure = st.polls_answered;
	failures_at_measure = st.poll_failures + st.poll_errors;
	poll_rtt.n = 0;
}

static void print_summary(void)
{
	double el = (hf_mono_us() - measure_us) / 1e6;
	struct samples sub = { 0 };
	unsigned submit_ok = 0, submit_unleased = 0;
	size_t pending = 0;

	for (unsigned i = 0; i < n_submitted; i++) {
		int64_t first = 0;
		if (submits[i].failed || !submits[i].job_id)
			continue;
		submit_ok++;
		for (size_t k = 0; k < n_leases_seen; k++)
			if (leases_seen[k].job_id == submits[i].job_id &&
			    (!first || leases_seen[k].at_us < first))
				first = leases_seen[k].at_us;
		if (first)
			sample_add(&sub, first - submits[i].sent_us);
		else
			submit_unleased++;
	}
	for (unsigned i = 0; i < o.workers; i++)
		pending += fleet[i].n_pending;
	printf("{\"workers\": %u, \"slots\": %u, \"heartbeat_ms\": %u, \"seconds\": %.3f, "
	       "\"registered\": %u, \"registers\": %" PRIu64 ", \"reregisters\": %" PRIu64
	       ", \"register_failures\": %" PRIu64 ", \"polls_sent\": %" PRIu64 ", \"polls_answered\": %" PRIu64
	       ", \"polls_per_s\": %.1f, \"failures_measured\": %" PRIu64 ", \"poll_failures\": %" PRIu64
	       ", \"poll_errors\": %" PRIu64 ", \"holds_ended\": %" PRIu64
	       ", \"poll_p50_ms\": %.3f, \"poll_p99_ms\": %.3f, \"poll_max_ms\": %.3f"
	       ", \"leases\": %" PRIu64 ", \"results_sent\": %" PRIu64 ", \"results_acked\": %" PRIu64
	       ", \"results_pending\": %zu, \"result_failures\": %" PRIu64
	       ", \"slot_free_samples\": %zu, \"slot_free_p50_ms\": %.3f, \"slot_free_p99_ms\": %.3f"
	       ", \"slot_free_p999_ms\": %.3f, \"slot_free_max_ms\": %.3f"
	       ", \"submits\": %u, \"submits_answered\": %u, \"submits_unleased\": %u, \"submit_failures\": %" PRIu64
	       ", \"submit_lease_p50_ms\": %.3f, \"submit_lease_p99_ms\": %.3f, \"submit_lease_max_ms\": %.3f}\n",
	       o.workers, o.slots, o.heartbeat_ms, el, registered_count(), st.registers, st.reregisters,
	       st.register_failures, st.polls_sent, st.polls_answered, (st.polls_answered - answered_at_measure) / el,
	       st.poll_failures + st.poll_errors - failures_at_measure, st.poll_failures, st.poll_errors,
	       st.holds_ended, quantile_ms(&poll_rtt, 0.5), quantile_ms(&poll_rtt, 0.99),
	       quantile_ms(&poll_rtt, 1.0), st.leases, st.results_sent, st.results_acked, pending,
	       st.result_failures, slot_free.n, quantile_ms(&slot_free, 0.5),
	       quantile_ms(&slot_free, 0.99), quantile_ms(&slot_free, 0.999), quantile_ms(&slot_free, 1.0),
	       n_submitted, submit_ok, submit_unleased,
	       st.submit_failures, quantile_ms(&sub, 0.5), quantile_ms(&sub, 0.99),
	       quantile_ms(&sub, 1.0));
	fflush(stdout);
	free(sub.v);
}

void end_cb(uv_timer_t *t)
{
	(void)t;
	print_summary();
	/* Closing thousands of clients one by one is slow: the process
	 * just ends, the kernel closes the connections. */
	_exit(0);
}

void signal_cb(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	end_cb(NULL);
}
