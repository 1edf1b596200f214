/* SPDX-License-Identifier: MIT
 *
 * What the two files of hfleet-fleet-sim share: the simulated workers and
 * their options (fleet-sim.c, which owns them and speaks the worker
 * protocol), and the counts and samples that fleet-sim-report.c turns into
 * the summary, with its control client for submits.  Loop thread only.
 */
#ifndef FLEET_SIM_H
#define FLEET_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hf_nuv.h"
#include "hf_proto.h"
#include "hf_validate.h"
#include "sp-client.h"

#define REPLY_MAX (64u << 20)
#define RESULTS_PER_BATCH 256

enum mode { MODE_COMPLETE, MODE_HOLD, MODE_NONE, MODE_IDLE };

/* A connection to the coordinator: hf-worker's client (hf_nuv.h, over
 * nng's streams), or the simulator's own SP client on libuv (sp-client.h,
 * the default: nng's threads would cost the simulator more than the
 * coordinator it measures). */
struct conn {
	nuv_client_t *nuv;
	struct sp_client *sp;
};

struct opts {
	const char *url, *tokens, *control_url, *admin_token, *submit_model;
	unsigned workers, slots, heartbeat_ms, task_ms, ramp_ms, report_every_s;
	unsigned submit_count, submit_every_ms, measure_after_ms, slow_log_ms;
	unsigned results_in_flight; /* ResultBatch calls a worker keeps out at once */
	double seconds;
	enum mode mode;
	bool use_nng;
};

struct samples {
	uint32_t *v;
	size_t n, cap;
};

struct held {
	uint64_t task_id;
	uint32_t attempt;
	struct held *next;
};

/* A result not yet acknowledged: batch is the ResultBatch call it is in
 * flight in (0: not sent, or sent again after a failure). */
struct pend {
	uint64_t task_id;
	uint32_t attempt;
	uint32_t batch;
};

struct worker {
	unsigned i;
	char id[128], token[160];
	struct conn client;
	uv_timer_t start, beat;
	uint64_t session;
	bool registered, reg_inflight, poll_again;
	unsigned res_out;              /* ResultBatch calls in flight */
	uint32_t res_batches;          /* the last batch number given */
	unsigned polls_out, held_out; /* polls in flight (at most 2), held ones */
	unsigned heartbeat_ms;        /* the coordinator's, from its replies */
	unsigned running;              /* tasks holding a slot */
	struct held *held;             /* leases to renew (running tasks) */
	struct pend *pending;          /* results not yet acknowledged */
	size_t n_pending, cap_pending;
	int64_t free_since_us;         /* a slot freed and no lease since (0: none) */
};

struct lease_event {
	uint64_t job_id;
	int64_t at_us;
};

struct submit_rec {
	int64_t sent_us;
	uint64_t job_id; /* 0 until answered */
	bool failed;
};

/* What the simulator counted (the summary's counts). */
struct fleet_stats {
	uint64_t registers, reregisters, register_failures, polls_sent, polls_answered, poll_failures,
		poll_errors, leases, results_sent, results_acked, result_failures, submit_failures, holds_ended;
	uint64_t polls_at_last_report;
};

extern struct opts o;
extern struct fleet_stats st;
extern struct worker *fleet;
extern struct samples poll_rtt, poll_rtt_interval, slot_free;
extern struct lease_event *leases_seen; /* each job's leases seen (submit -> first lease) */
extern size_t n_leases_seen;
extern struct submit_rec *submits;
extern unsigned n_submitted;
extern struct conn control;           /* the control client (--submit-count) */
extern uv_timer_t submit_timer;
extern int64_t t0_us, measure_us;     /* the start; when the measured part began */

/* fleet-sim.c: a call on c (a held poll's waits hold_ms longer), and a
 * reply decoded and validated as role's (-EBADMSG: logged). */
int call(struct conn *c, Hf__Envelope *env, const char *token, uint32_t hold_ms, nuv_reply_cb cb, void *arg);
int reply_decode(int rv, nng_msg *reply, enum hf_msg_role role, Hf__Envelope **ret);

/* fleet-sim-report.c */
void sample_add(struct samples *s, int64_t us);
void submit_cb(uv_timer_t *t);     /* the next submit, then the one after */
void report_cb(uv_timer_t *t);     /* a line on stderr (--report-every) */
void measure_cb(uv_timer_t *t);    /* the ramp is over: counts from now on */
void end_cb(uv_timer_t *t);        /* prints the summary and exits */
void signal_cb(uv_signal_t *h, int signum);

#endif
