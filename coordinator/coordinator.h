/* SPDX-License-Identifier: MIT
 *
 * The coordinator's state, owned by its one libuv loop thread: settings,
 * the registry, the scheduler's live tasks, the registered workers, the
 * database layer and the two nng listeners.  worker-api.c answers workers,
 * control-api.c answers hfctl, leases.c runs the lease clock, main.c wires
 * it all together.
 */
#ifndef HF_COORDINATOR_H
#define HF_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "coord-conf.h"
#include "coord-metrics.h"
#include "db.h"
#include "health.h"
#include "hf_nuv.h"
#include "locality.h"
#include "hf_sdnotify.h"
#include "hf_validate.h"
#include "hfleet.pb-c.h"
#include "match.h"
#include "poll-hold.h"
#include "registry.h"
#include "scheduler.h"

/* A registered worker, as it last described itself.  reg is the validated
 * Register it sent (bounded by common/hf_limits.h, unknown fields removed,
 * cached_models sorted); dev_order lists the positions of its devices
 * sorted by (backend, index), for lookups in time logarithmic in their
 * number.  At most coordinator.max_workers are kept. */
/* A task leased to a worker before it asked (reserve.c): handed over at
 * its next poll with a free slot of device position device_pos. */
struct reserved_ref {
	uint64_t task_id;
	uint32_t attempt;
	uint32_t device_pos;       /* in reg->devices */
	int64_t since_ms;          /* when its lease was committed */
};

struct coord_worker {
	char *id;
	Hf__Register *reg;         /* owned */
	uint32_t *dev_order;       /* owned: reg->n_devices positions */
	size_t reg_bytes;          /* reg's encoded size: what it counts against coordinator.workers_memory */
	int64_t last_seen_ms;
	/* The registration's session (random, never 0): polls, results and
	 * health reports must carry it.  session_seen_ms is when a poll last
	 * came under it (0: none yet); while that is within the connected
	 * window the session is live and no other may take the id. */
	uint64_t session;
	int64_t session_seen_ms;
	Hf__DeviceTelemetry *telemetry; /* the last poll's readings (no strings inside) */
	size_t n_telemetry;
	struct locality_node *loc; /* its places in c->locality's lists (owned) */
	size_t n_loc;
	/* Its poll that is held (worker-api.c), or NULL; a newer poll
	 * answers it.  polls_granting counts its polls whose leases are
	 * being committed: another poll meanwhile gets no work, since the
	 * worker counted those slots free. */
	struct held_poll *held;
	unsigned polls_granting;
	/* Tasks reserved for it (reserve.c), at most one per registered slot;
	 * short_run counts its last results in a row that ran shorter than
	 * scheduler.reserve_below; reserving: a reservation is being
	 * committed. */
	struct reserved_ref *reserved;
	uint32_t n_reserved, cap_reserved;
	uint8_t short_run;
	bool reserving;
	struct coord_worker *next;
	struct coord_worker *hnext; /* c->worker_buckets chain */
};

/* An operator's drain: a worker (backend and index -1) or one device;
 * d.by and d.since say who drained it and when. */
struct coord_drain {
	struct db_drain d;
	struct coord_drain *next;
};

struct coord {
	uv_loop_t *loop;
	struct coord_conf conf;
	struct registry *reg;
	struct sched *sched;
	struct db *db;
	/* The job lane: a second connection and thread that writes only new
	 * jobs, so that the insert of a 100,000-task job does not hold up the
	 * leases, results and reads queued on db meanwhile.  NULL: db writes
	 * them. */
	struct db *db_jobs;
	/* The result lane: a connection and thread on which db stores half of
	 * each large group of results (database.result_connections); NULL:
	 * db stores them all. */
	struct db *db_results;
	nuv_server_t *worker_srv;
	nuv_server_t *control_srv;
	nng_tls_config *tls;        /* the tls+tcp:// ports' (coord-tls.c), or NULL */
	/* The worker records: a list (for walks over the fleet) and a hash by
	 * id (for each request's lookup), with their count and registrations'
	 * bytes kept as they change (workers.c: coord_worker_add, _set_reg,
	 * _forget). */
	struct coord_worker *workers;
	struct coord_worker **worker_buckets;
	size_t n_worker_buckets, n_workers, workers_bytes;
	struct locality locality;  /* who caches which model's weights */
	struct coord_drain *drains;
	struct health health;       /* quarantined devices, infrastructure failure counts */
	uv_timer_t lease_timer;
	uv_timer_t telemetry_timer;
	struct coord_http *http;   /* /metrics and /healthz */
	struct coord_metrics *metrics; /* counters and histograms (coord-metrics.c) */
	uv_signal_t sig_term, sig_int;
	struct auth_store tokens;  /* the live tokens (auth.c) */
	bool touch_busy;           /* a write of tokens' last use is in flight */
	/* The ids of the tokens whose use waits to be written (auth.c): a
	 * write takes these, not a walk of every token. */
	char (*touch_ids)[AUTH_ID_LEN + 1];
	size_t touch_n, touch_cap;
	bool expire_busy;          /* a lease-expiry operation is in flight */
	int64_t lease_tick_ms;     /* the lease clock's last tick (leases.c) */
	bool lease_tick_skipped;   /* ... was late and expired nothing */
	struct hf_sd *sd;          /* what systemd is told (coord-sd.c) */
	bool serving;              /* started: the listeners are open */
	bool stopping;
	int exit_code;
	/* Held polls (worker-api.c): those parked, the timer that ends the
	 * earliest hold, and the wake-up after tasks were queued (run once
	 * per loop turn, for the backends in wake_backends). */
	struct poll_holds holds;
	uv_timer_t hold_timer, wake_timer;
	uint32_t wake_backends;
	size_t wake_tasks;
	int64_t hold_armed_ms;     /* when hold_timer fires (-1: not armed) */
	bool holds_open;
	/* When the coordinator began serving (the lease clock's first tick,
	 * a quarter second after; 0 before): the start-up grace of
	 * fleet-fit.h counts from it. */
	int64_t ready_ms;
	/* Large jobs whose tasks are being added to the scheduler, a slice
	 * per loop turn (submit-feed.c). */
	struct submit_feed *submit_feeds;
	/* Cancelled jobs whose queued tasks are being cancelled, a slice per
	 * database op (cancel-feed.c). */
	struct cancel_feed *cancel_feeds;
};

/* worker-api.c: the request callback of the worker listener. */
void worker_api_request_cb(nuv_request_t *req, nng_msg *msg, void *arg);

/* worker-api.c: held polls.  open starts them (after the scheduler is
 * made); close answers every held poll with nothing and closes their
 * timers (at shutdown, before the listeners close). */
void worker_api_open(struct coord *c);
void worker_api_close(struct coord *c);

/* workers.c: the worker records.  coord_worker_find is a hash lookup. */
struct coord_worker *coord_worker_find(struct coord *c, const char *id);
void coord_workers_free(struct coord *c);

/* A new record for id (no registration yet), linked in c->workers and the
 * hash.  Returns it, or NULL when out of memory. */
struct coord_worker *coord_worker_add(struct coord *c, const char *id);

/* Unlinks w from c and frees it. */
void coord_worker_forget(struct coord *c, struct coord_worker *w);

/* control-api.c: the request callback of the hfctl listener. */
void control_api_request_cb(nuv_request_t *req, nng_msg *msg, void *arg);

/* leases.c: the lease clock. */
void leases_tick_cb(uv_timer_t *t);

/* A worker is connected while it polled within three heartbeats (and 2 s). */
bool coord_worker_connected(const struct coord *c, const struct coord_worker *w, int64_t now_ms);

/* workers.c: sessions.  A session is live while a poll came under it
 * within the connected window (see coord_worker_connected). */
bool coord_worker_session_live(const struct coord *c, const struct coord_worker *w, int64_t now_ms);

/* The worker registered as id whose current session is session, or NULL
 * (unknown id, no session, or another session: the sender must register). */
struct coord_worker *coord_worker_of_session(struct coord *c, const char *id, uint64_t session);

/* A new random session (never 0).  Returns 0 or a negative errno. */
int coord_session_new(uint64_t *ret_session);

/* The last telemetry w sent for device d, or NULL. */
Hf__DeviceTelemetry *coord_worker_telemetry(struct coord_worker *w, const Hf__Device *d);

/* How many of the leased tasks (from sched_collect_state) hold device d
 * of worker_id. */
size_t coord_device_running(struct sched_task *const *leased, size_t n, const char *worker_id,
			    const Hf__Device *d);

/* Is there a connected worker other than self that caches the weights of
 * t's model and has a device of t's backend that is neither drained nor
 * quarantined?  (Weight locality: it walks only the workers that cache
 * the model, from c->locality.) */
bool coord_weights_elsewhere(struct coord *c, const struct coord_worker *self, const struct sched_task *t,
			     int64_t now_ms);

/* Is this worker (device NULL) or device drained? */
bool coord_drained(const struct coord *c, const char *worker_id, const Hf__Device *device);
int coord_drain_set(struct coord *c, const struct db_drain *d, bool undrain);
void coord_drains_free(struct coord *c);

/* Is this device quarantined?  *ret_reason (optional) says why. */
bool coord_quarantined(const struct coord *c, const char *worker_id, const Hf__Device *device,
		       const char **ret_reason);

/* Stores a device's quarantine state (set with reason, or cleared) in the
 * database in the background; a failure is logged. */
void coord_quarantine_persist(struct coord *c, const char *worker_id, int backend, uint32_t index,
			      bool quarantined, const char *reason);

/* coord-sd.c: readiness, status and the watchdog for systemd.  Returns 0
 * or -ENOMEM. */
int coord_sd_open(struct coord *c);

/* telemetry.c: sampling to the database and the HTTP endpoint. */
void telemetry_sample_cb(uv_timer_t *t);
int coord_http_start(struct coord *c, const char *url);
void coord_http_refresh(struct coord *c);
void coord_http_stop(struct coord *c);

/* main.c: adds tasks loaded from the database to the scheduler (their jobs
 * must be there), counting the queued and the leased ones. */
void coord_load_tasks(struct coord *c, const struct db_live_task *tasks, size_t n, size_t *ret_queued,
		      size_t *ret_leased);

/* main.c: begins an orderly stop (idempotent). */
void coord_shutdown(struct coord *c);

/* request.c: decodes and validates a request received on a port of role (see
 * hf_validate.h) and checks its protocol version; on failure it has already
 * replied with the error (ERR_BAD_REQUEST naming the field and the limit,
 * ERR_VERSION, or ERR_WRONG_PORT for a request of the other port), logged
 * the peer's address (at most once a second per port) and returns NULL.
 * Takes msg. */
Hf__Envelope *coord_request_unpack(nuv_request_t *req, nng_msg *msg, enum hf_msg_role role);

/* workers.c: the position in w->reg->devices of device (backend, index),
 * or -1. */
long coord_worker_device(const struct coord_worker *w, int backend, uint32_t index);

/* Makes w (linked in c) describe itself with reg (taken, validated): the
 * device index, the sorted cache list, the locality index and c's count of
 * registration bytes.  Returns 0 or -ENOMEM (reg is then freed and w keeps
 * what it had). */
int coord_worker_set_reg(struct coord *c, struct coord_worker *w, Hf__Register *reg);

/* Would a registration of new_bytes under id find no room, even after
 * forgetting every worker that is no longer connected?  (At most
 * coordinator.max_workers records and coordinator.workers_memory of
 * registrations.) */
bool coord_workers_full(struct coord *c, const char *id, size_t new_bytes);

/* Makes room for a registration of new_bytes (replacing keep's, NULL for
 * a new worker): forgets the workers seen longest ago that are no longer
 * connected until it fits.  Returns 0, or -EBUSY when the connected ones
 * alone leave no room. */
int coord_workers_make_room(struct coord *c, const struct coord_worker *keep, size_t new_bytes);

/* Frees one record (not linked in c any more: see coord_worker_forget);
 * NULL is fine. */
void coord_worker_free(struct coord_worker *w);

/* Replies to req with an Error envelope. */
void coord_reply_error(nuv_request_t *req, Hf__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The error code for a failed database op: ERR_BAD_REQUEST when the
 * database refused the request's own values (rc -EINVAL: sending them
 * again cannot help), else ERR_UNAVAILABLE (try again later). */
Hf__ErrorCode coord_db_error_code(int rc);

/* Packs env and replies; on failure replies with an internal error. */
void coord_reply(nuv_request_t *req, Hf__Envelope *env);

/* cancel-feed.c: the queued tasks of cancelled job job_id cancelled in
 * slices, one database op each, until none is left (nothing when a feed
 * for the job runs already). */
void cancel_feed_start(struct coord *c, uint64_t job_id);
/* Is a feed cancelling job_id's queued tasks? */
bool cancel_feed_running(const struct coord *c, uint64_t job_id);
/* At shutdown: feeds end (those with a slice in flight when it is back);
 * the next start finishes their cancels. */
void cancel_feeds_stop(struct coord *c);
/* submit-feed.c, at shutdown: feeds end (those with a slice write in
 * flight when it is back); the next start writes what they left. */
void submit_feeds_stop(struct coord *c);

#endif
