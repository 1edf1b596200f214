/* SPDX-License-Identifier: MIT
 *
 * The worker's session with hf-coordinator, and the worker's life cycle
 * around it.  One session owns the nng client, the executor, the result
 * spool and the results not yet acknowledged; everything happens on the one
 * libuv loop thread.
 *
 *  - Register (worker id, versions, labels, devices, runtimes, CPU, running
 *    tasks).  An ERR_VERSION error or a refusal ends the worker (exit 1);
 *    a timeout, a connection problem or ERR_UNAVAILABLE is retried with
 *    jittered exponential backoff from 200 ms to 5 s.
 *    The Register describes every device (with its attributes, slots and
 *    whether it was declared) and every backend's status.
 *  - Once accepted, Poll every heartbeat (the coordinator may change the
 *    interval in any reply), and at once when a task finishes.  At most one
 *    Poll is outstanding.  A Poll says how many slots each device has free
 *    (alloc.h: none while a benchmark runs on it) and carries the devices'
 *    telemetry, sampled at most once per heartbeat.  Assignments are started
 *    on the executor with exactly their devices; one the worker cannot run
 *    (unknown device, a device that is busy or not shared, draining) is
 *    answered at once with an error result saying why, rather than left to
 *    its lease.  Cancels stop the attempt (status cancelled).
 *    ERR_NOT_REGISTERED means register again, naming the running tasks; so
 *    does new hardware (session_inventory_set).
 *  - Each result is spooled (spool.h), then sent in a ResultBatch of at most
 *    SESSION_BATCH_MAX results and SESSION_BATCH_BYTES bytes, at most
 *    SESSION_RESULTS_IN_FLIGHT batches outstanding (the results that come
 *    while both are out wait, and go together, one fsync, in the next); an
 *    Ack removes it from the spool and its task directory.  Unacknowledged
 *    results are sent again every heartbeat; a result the spool could not
 *    take (disk full) is kept in memory, sent anyway and written again every
 *    heartbeat.
 *  - Health checks (when health_timeout_ms > 0): every device after the
 *    first registration with its hardware (health_on_register), an idle
 *    device every health_interval_ms, and a device the coordinator names
 *    in a PollReply (a quarantined one).  A check waits until its device is
 *    idle; while it runs, and until the coordinator acknowledged its
 *    HealthReport, the device offers no free slots, so the coordinator
 *    decides about a failed device before it can get work.  A coordinator
 *    that answers ERR_BAD_REQUEST does not know health reports: they are
 *    dropped from then on.
 *  - Warm runners ahead of tasks (prewarm): after the first registration
 *    with its hardware, before the first Poll, executor_prewarm starts
 *    every device's warm runners (one per slot).
 *  - session_drain (first SIGTERM/SIGINT): Poll with draining set and no free
 *    slots; running tasks may finish for drain_timeout, then are stopped with
 *    status error; then results are flushed for up to SESSION_FLUSH_MS, and
 *    the session ends with exit code 0.  session_stop_now (second signal):
 *    kill the running tasks (their leases will expire) and end at once.
 *
 * Every network call has a timeout of max(5 s, 3 heartbeats).
 *
 * Ownership: the configuration's pointers are borrowed and must outlive the
 * session.  When the session has ended (its handles are closed) the exit
 * callback runs; then, after uv_run returns, session_free releases it.
 */
#ifndef SESSION_H
#define SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "executor.h"
#include "hf_tls.h"
#include "hw.h"
#include "runtime-probe.h"
#include "worker-conf.h"

#define SESSION_BATCH_MAX 256
/* ResultBatch calls outstanding at once.  With one, the coordinator's
 * result transactions ran stop-and-wait: every worker's next batch left
 * only once the transaction before was committed and acknowledged, and a
 * worker far from its coordinator reported one batch a round trip.  Two
 * gained 8 % with simulated workers and nothing measurable with hf-workers
 * on the coordinator's own 2 cores (docs/performance-history.md, "The
 * twenty-first round").  The coordinator reads up to
 * connections.requests_per_connection (5) requests of a connection:
 * register or two polls, two result batches and a health report. */
#define SESSION_RESULTS_IN_FLIGHT 2
#define SESSION_BATCH_BYTES (1024 * 1024)
#define SESSION_FLUSH_MS 5000

struct session;

struct session_config {
	const char *url;
	const struct hf_tls *tls;   /* for a tls+tcp:// url */
	const char *worker_id;
	const char *token;         /* sent with every request; NULL: none */
	const char *hostname;
	const struct worker_label *labels;
	size_t n_labels;
	const struct hw_inventory *inv;
	const struct runtime_list *runtimes;
	char *const *cached_models;  /* Hub ids with weights in the local cache (borrowed) */
	size_t n_cached_models;
	bool telemetry;            /* send the devices' readings with each Poll */
	int64_t heartbeat_ms;      /* until the coordinator names one */
	int64_t drain_timeout_ms;
	unsigned lease_ahead;      /* tests per device held leased beyond the free slots (session-ahead.c) */
	int64_t lease_ahead_below_ms; /* ... only while the last AHEAD_SHORT_RUN tasks were shorter; 0: always */
	struct executor_config exec;

	/* Health checks ("<runner> --health" on one device, see executor.h):
	 * none at all while health_timeout_ms is 0. */
	int64_t health_timeout_ms;   /* a check that runs longer failed */
	int64_t health_interval_ms;  /* check an idle device this often; 0: never */
	bool health_on_register;     /* check every device after registering with new hardware */

	/* With exec.warm: once registered with its hardware, start every
	 * device's warm runners ahead of tasks (executor_prewarm). */
	bool prewarm;
};

/* exit_code: 0 after a drain or stop, 1 when the coordinator refused the
 * worker. */
typedef void (*session_exit_cb)(struct session *s, int exit_code, void *arg);

/* Opens the spool (loading what a previous run left there), the executor
 * and the client.  Nothing is sent before session_start.  Returns 0 or a
 * negative errno with a message in err. */
int session_new(uv_loop_t *loop, const struct session_config *cfg, session_exit_cb cb, void *arg,
		struct session **ret_s, char *err, size_t errlen);

/* Starts registering. */
void session_start(struct session *s);

/* Stop taking work, let running tasks finish, report, end (exit code 0). */
void session_drain(struct session *s);

/* Kill running tasks and end now. */
void session_stop_now(struct session *s);

/* The hardware was detected again (SIGHUP): from now on the session offers
 * inv's devices, and it registers again so the coordinator learns them
 * (running tasks go on; they are named in the Register).  inv is borrowed
 * like the configuration's and must outlive the session or the next call;
 * the previous one is no longer used when this returns. */
void session_inventory_set(struct session *s, const struct hw_inventory *inv);

/* After the exit callback and once uv_run has returned.  NULL is fine. */
void session_free(struct session *s);

#endif
