/* SPDX-License-Identifier: MIT
 *
 * What the files of the worker-facing protocol share, and nothing else
 * includes: a worker request in flight, and the parts of the poll that
 * held polls and reservations reuse.  worker-api.c answers registrations,
 * polls, results and health reports; worker-hold.c holds idle workers'
 * polls until work comes; reserve.c leases a busy slot's next test before
 * it frees.  Loop thread only.
 */
#ifndef HF_WORKER_API_INT_H
#define HF_WORKER_API_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator.h"

/* One request in flight: what it needs until its database work is done. */
struct worker_req {
	struct coord *c;
	nuv_request_t *req;
	Hf__Envelope *env;
	struct db_op op;
	/* poll */
	int64_t poll_us;               /* when the poll was taken up (lease grant latency) */
	struct held_poll held;         /* while is_held: in c->holds */
	bool is_held;
	Hf__TaskRef **cancel;
	size_t n_cancel;
	/* poll: reservations its reply hands over (reserve.c) */
	struct reserved_ref *pre;
	size_t n_pre;
	/* poll: quarantined devices to check again */
	Hf__HealthCheckRequest *checks;
	Hf__HealthCheckRequest **check_ptrs;
	size_t n_checks;
	/* results */
	char **json_owned;
	size_t n_json_owned;
	/* health report */
	struct db_health_check *health_checks;
	struct db_quarantine *health_states;
};

/* Frees w and what it owns (not its request, which is answered or gone). */
void worker_req_free(struct worker_req *w);

/* Answers: the sender must register (again).  Frees w. */
void not_registered(struct worker_req *w, const char *worker_id);

/* Answers w's poll with these assignments (the caller's), its cancel list
 * and health checks; hold_ended says its hold ran out.  w stays the
 * caller's. */
void poll_reply(struct worker_req *w, Hf__Assignment **assign, size_t n_assign, bool hold_ended);

/* Takes what fits the poll's free slots, best job first, and starts
 * committing the leases (grant_done answers and frees w).  Returns how
 * many tasks were taken; 0 leaves w the caller's.  *ret_backends gets the
 * backends of the devices with free slots that may take work (what a held
 * poll waits for). */
size_t poll_take(struct worker_req *w, struct coord_worker *cw, int64_t now, uint32_t *ret_backends);

/* Takes for cw's devices (positions of its registration), best job first:
 * free_slots[d] tasks for device d's free slots, then ahead[d] more of
 * that device alone, queued behind what it runs (benchmarks only where
 * ahead_benchmarks[d]); either array may be NULL (none), and both are
 * used up as tasks are taken.  The tasks move to GRANTING; *out gets
 * their leases to commit (the caller's to free).  Returns how many. */
size_t take_for_devices(struct coord *c, struct coord_worker *cw, int64_t now, uint32_t *free_slots,
			uint32_t *ahead, const bool *ahead_benchmarks, struct db_lease **out);

/* worker-hold.c: held polls. */

/* Holds w's poll, which found nothing to take (backends: poll_take's),
 * when the worker asked for it.  True: it is held (and answered later);
 * false: answer it now. */
bool poll_hold(struct worker_req *w, struct coord_worker *cw, uint32_t backends, int64_t now);

/* Answers cw's held poll, if any, with nothing (a newer poll replaces it). */
void poll_hold_answer(struct coord *c, struct coord_worker *cw, bool hold_ended);

/* A result or health check for what the sender does not hold is refused
 * with this code; nothing of its message is applied. */
#define ERR_NOT_HELD HF__ERROR_CODE__ERR_FORBIDDEN

/* Logs a refused worker message, at most one line a second: a peer
 * sending forgeries in a loop must not flood the log (worker-api.c). */
void log_refusal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A Results message: stored, then acknowledged (worker-api-results.c). */
void handle_results(struct worker_req *w);

#endif
