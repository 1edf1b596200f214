/* SPDX-License-Identifier: MIT
 *
 * What the files of the worker's session share, and nothing outside them
 * may include: struct session and its parts, and the functions that one
 * file of the session calls in another.  session.c owns the life cycle
 * (register, poll, assignments, drain, ending) and the calls to the
 * coordinator; session-results.c the results not yet acknowledged and
 * their reporting; session-health.c the devices' health checks and their
 * reports; session-ahead.c the tasks leased ahead of a free slot.
 * Everything declared here runs on the loop thread only.
 */
#ifndef SESSION_INTERNAL_H
#define SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "alloc.h"
#include "executor.h"
#include "hf_nuv.h"
#include "hf_proto.h"
#include "hw.h"
#include "session.h"
#include "spool.h"

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
	uint32_t batch;     /* the ResultBatch it is in flight in (0: none) */
	bool spooled;
	bool spool_failed;  /* logged once as an error, then retried quietly */
	struct pending *next;
};

/* One ResultBatch in flight: its number (0: this entry is free), how many
 * results it holds and the first one's name. */
struct results_call {
	struct session *s;
	uint32_t batch;
	size_t n;
	uint64_t first_task;
	uint32_t first_attempt;
};

/* Health checking of one device of the inventory (same position). */
/* A task leased ahead (session-ahead.c): its assignment, copied, queued
 * until a slot of its device frees. */
struct queued {
	Hf__Assignment *a;
	struct queued *next;
};

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
	bool reg_inflight, poll_again;
	/* Polls outstanding (at most 2), and of those the held ones (Poll.hold_ms
	 * set: the coordinator answers when work comes or the hold ends).  A
	 * poll goes out while none is, or while the one out is held: the
	 * coordinator answers the held one when the new one comes. */
	unsigned polls_out, held_out;
	/* The ResultBatch calls in flight (results_out of them, each in a
	 * results_calls entry whose batch is not 0; results_batches numbers
	 * them).  After the coordinator refused a batch as invalid, batches of
	 * one (results_isolate), one at a time, find the result it refuses,
	 * which is set aside. */
	struct results_call results_calls[SESSION_RESULTS_IN_FLIGHT];
	unsigned results_out;
	uint32_t results_batches;
	bool results_isolate;
	bool health_inflight;
	bool health_at_register;     /* check every device once registered */
	bool prewarm_due;            /* start the warm runners once registered */
	struct dev_health health[HW_MAX_DEVICES];
	bool reg_stale;              /* the Register in flight describes replaced hardware */
	/* The coordinator's session for this registration (0: none yet): sent
	 * with every Poll, ResultBatch and HealthReport, and with Register, so
	 * that registering again within it keeps the worker id. */
	uint64_t reg_session;

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

	/* Tasks leased ahead, in the order they start: by their job's
	 * priority (higher first), then as they were granted. */
	struct queued *queued;
	size_t n_queued;
	unsigned short_run;  /* tasks in a row, the latest finished, shorter than lease_ahead_below_ms */

	uv_timer_t reg_timer, beat_timer, drain_timer, flush_timer, finish_timer;
	int open_handles;
	int exit_code;
	int64_t finish_deadline;     /* monotonic ms: stop waiting for calls */
};

/* session.c: the calls to the coordinator and the life cycle.  These were
 * static to session.c; the other files of the session use them too. */

/* Packs env and sends it; the reply goes to cb.  Returns 0 or a negative
 * errno (cb is then not called). */
int session_call(struct session *s, const Hf__Envelope *env, nuv_reply_cb cb);
/* The same, with arg for cb instead of s. */
int session_call_arg(struct session *s, const Hf__Envelope *env, nuv_reply_cb cb, void *arg);

/* The reply as a validated envelope, or -EBADMSG (logged). */
int reply_unpack(int rv, nng_msg *reply, Hf__Envelope **ret_env);

/* Why a call failed (rv from reply_unpack), for messages. */
const char *call_error(int rv);

/* Polls now, or as soon as the outstanding poll is answered. */
void poll_send(struct session *s);

/* The coordinator no longer knows this worker: register again at once
 * (or, while flushing, end with the results left in the spool). */
void session_reregister(struct session *s);

/* Ends the session, deferred to a timer (never inside a reply callback). */
void session_end(struct session *s, int exit_code);

/* A jittered random number (xorshift64*: jitter only, nothing secret). */
uint32_t session_random(struct session *s);

/* (Re)starts the heartbeat, its first beat at a random point of one
 * interval. */
void beat_start(struct session *s);

/* Takes the coordinator's heartbeat interval (bounded). */
void session_set_heartbeat(struct session *s, uint32_t ms);

/* session-register.c: registration. */

/* Sends Register unless one is out or the session is not registering;
 * a failure to send backs off and tries again. */
void register_send(struct session *s);

/* session-results.c: the results not yet acknowledged. */

/* Writes a pending result to the spool, with every other one not yet
 * there (one fsync); a failure is logged and leaves them unspooled, to be
 * written again at the next flush or heartbeat. */
void pending_spool(struct session *s, struct pending *p);

/* session-ahead.c: tasks leased ahead of a free slot. */
/* Tasks of this many in a row, each shorter than lease_ahead_below_ms,
 * open leasing ahead; a longer one closes it. */
#define AHEAD_SHORT_RUN 8
/* Queues a (leased ahead: its device has no free slot, or is held for a
 * benchmark queued before it, `held`); false if it cannot wait here. */
bool ahead_take(struct session *s, const Hf__Assignment *a, bool held);
void ahead_task_ran(struct session *s, const Hf__TaskResult *r);
void ahead_start(struct session *s);
bool ahead_wants_refill(struct session *s);
unsigned ahead_room(struct session *s, size_t dev, const struct alloc_use *use);
size_t ahead_refs(const struct session *s, Hf__TaskRef *refs, size_t max);
bool ahead_has(const struct session *s, uint64_t task_id, uint32_t attempt);
unsigned ahead_queued(const struct session *s, Hf__Backend backend, unsigned index);
/* Whether a benchmark waits in device dev's queue (an inventory position):
 * the device takes no new task until it has run, and offers no free slot. */
bool ahead_drains(const struct session *s, size_t dev);
bool ahead_cancel(struct session *s, uint64_t task_id, uint32_t attempt, const char *reason);
void ahead_return_all(struct session *s, const char *reason);
void ahead_free_all(struct session *s);
void session_reject(struct session *s, const Hf__Assignment *a, const char *reason);
void session_device_use(void *arg, Hf__Backend backend, unsigned index, struct alloc_use *ret);

/* Takes result; a result for an attempt already pending replaces it. */
void pending_add(struct session *s, Hf__TaskResult *result, bool spooled);

/* Frees every pending result (their spool files stay). */
void pending_free_all(struct session *s);

/* Sends the next batch of pending results, unless one is in flight. */
void results_flush(struct session *s);

/* session-health.c: the devices' health checks. */

/* After start or new hardware: check every device once registered, and
 * count the periodic interval from now. */
void health_reset(struct session *s);

/* Starts the checks that are due on idle devices. */
void health_run_due(struct session *s);

/* Sends the health check outcomes not yet acknowledged. */
void health_flush(struct session *s);

#endif
