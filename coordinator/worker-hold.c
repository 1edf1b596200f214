/* SPDX-License-Identifier: MIT
 *
 * Held polls (docs/protocol.md, "Held polls"): the poll of an idle worker
 * that found nothing to take waits here, parked in the SP server, until
 * tasks its devices can run may be taken (the scheduler says so through
 * sched_set_queued_cb) or its hold ends.  New tasks are offered to the
 * held polls of their backend oldest first, one worker per task; the
 * bookkeeping is poll-hold.c's.  Loop thread only.
 */
#include <stddef.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_util.h"
#include "worker-api-int.h"

static struct worker_req *held_req(struct held_poll *h)
{
	return (struct worker_req *)((char *)h - offsetof(struct worker_req, held));
}

static void hold_timer_cb(uv_timer_t *t);

/* Holds end on a grid of this many ms (those shorter than four ticks end
 * exactly): one expiry of hold_timer answers every hold that ends within
 * the tick, and the polls that follow come in bursts.  At 10,000 idle
 * workers each poll otherwise woke the loop for its hold's end, and its
 * successor woke nng's poller, one of its task threads and the loop again:
 * in bursts, one wake-up of each serves many polls (plain TCP and TLS
 * alike).  A hold ends up to a tick early, never late: the worker polls
 * again a little sooner (about 1 % more polls at a 1 s hold). */
#define HOLD_TICK_MS 20

static int64_t hold_end(int64_t now, int64_t hold)
{
	int64_t end = now + hold;

	if (hold < 4 * HOLD_TICK_MS)
		return end;
	return end - end % HOLD_TICK_MS;
}

/* (Re)arms hold_timer for the earliest end of a hold. */
static void hold_timer_arm(struct coord *c, int64_t now)
{
	int64_t next = poll_holds_next_end(&c->holds);

	if (next < 0) {
		uv_timer_stop(&c->hold_timer);
		c->hold_armed_ms = -1;
		return;
	}
	if (next == c->hold_armed_ms)
		return;
	uv_timer_start(&c->hold_timer, hold_timer_cb, (uint64_t)(next > now ? next - now : 0), 0);
	c->hold_armed_ms = next;
}

/* w's poll is held no longer (it is answered, woken or gone). */
static void unhold(struct coord *c, struct worker_req *w)
{
	const Hf__Poll *p = w->env->poll;
	struct coord_worker *cw = coord_worker_find(c, p->worker_id);

	poll_holds_remove(&c->holds, &w->held);
	w->is_held = false;
	if (cw && cw->held == &w->held)
		cw->held = NULL;
}

/* Answers cw's held poll, if any, with nothing. */
void poll_hold_answer(struct coord *c, struct coord_worker *cw, bool hold_ended)
{
	struct worker_req *w;

	if (!cw->held)
		return;
	w = held_req(cw->held);
	unhold(c, w);
	poll_reply(w, NULL, 0, hold_ended);
	worker_req_free(w);
}

/* The peer of a held poll hung up: forget it.  A poll woken meanwhile is
 * being granted; its reply is dropped when it comes. */
static void held_gone_cb(nuv_request_t *req, void *arg)
{
	struct worker_req *w = arg;

	if (!w->is_held)
		return;
	log_debug("worker \"%s\" hung up while its poll was held", w->env->poll->worker_id);
	unhold(w->c, w);
	nuv_reply(req, NULL);
	worker_req_free(w);
}

/* Holds w's poll, which found nothing to take, when the worker asked for
 * it and a device of it could take work: until tasks of those backends
 * are queued, or for at most the hold it asked, scheduler.poll_hold_max
 * and the heartbeat (its leases were renewed on receipt, and it is
 * connected for three heartbeats).  False: answer it now. */
bool poll_hold(struct worker_req *w, struct coord_worker *cw, uint32_t backends, int64_t now)
{
	struct coord *c = w->c;
	int64_t hold = w->env->poll->hold_ms;

	if (hold > c->conf.poll_hold_max_ms)
		hold = c->conf.poll_hold_max_ms;
	if (hold > c->conf.heartbeat_ms)
		hold = c->conf.heartbeat_ms;
	if (hold <= 0 || backends == 0 || !c->holds_open)
		return false;
	w->held.until_ms = hold_end(now, hold);
	w->held.backends = backends;
	if (poll_holds_add(&c->holds, &w->held) < 0)
		return false;
	if (nuv_request_park(w->req, held_gone_cb, w) < 0) {
		poll_holds_remove(&c->holds, &w->held);
		return false;
	}
	w->is_held = true;
	cw->held = &w->held;
	hold_timer_arm(c, now);
	return true;
}

/* Gives a held poll another look: true when it took tasks (and is no
 * longer held) or was answered; false when it stays held. */
static bool held_try(struct coord *c, struct worker_req *w, int64_t now)
{
	const Hf__Poll *p = w->env->poll;
	struct coord_worker *cw = coord_worker_of_session(c, p->worker_id, p->session);
	uint32_t backends;

	if (!cw) {
		unhold(c, w);
		not_registered(w, p->worker_id);
		return true;
	}
	if (cw->polls_granting > 0 || coord_drained(c, cw->id, NULL))
		return false;
	if (poll_take(w, cw, now, &backends) == 0)
		return false; /* stays held, in its place */
	unhold(c, w); /* its leases are being committed: grant_done answers */
	return true;
}

/* Holds end: each is offered work once more, else answered with nothing
 * and hold_ended, and the worker polls again at once. */
static void hold_timer_cb(uv_timer_t *t)
{
	struct coord *c = t->data;
	int64_t now = hf_mono_ms();
	struct held_poll *h;

	c->hold_armed_ms = -1;
	while ((h = poll_holds_pop_ended(&c->holds, now))) {
		struct worker_req *w = held_req(h);
		const Hf__Poll *p = w->env->poll;
		struct coord_worker *cw = coord_worker_find(c, p->worker_id);
		uint32_t backends;

		w->is_held = false;
		if (cw && cw->held == h)
			cw->held = NULL;
		if (cw && cw->session != p->session)
			cw = NULL; /* registered again: only answered */
		if (cw && db_healthy(c->db) && !c->stopping && cw->polls_granting == 0 &&
		    !coord_drained(c, cw->id, NULL) && poll_take(w, cw, now, &backends) > 0)
			continue;
		poll_reply(w, NULL, 0, true);
		worker_req_free(w);
	}
	hold_timer_arm(c, now);
}

/* Is a task of one of these backends queued? */
static bool queued_any(struct coord *c, uint32_t backends)
{
	for (int b = 0; b < SCHED_N_BACKENDS; b++)
		if ((backends & (1u << b)) && sched_queued(c->sched, (Hf__Backend)b) > 0)
			return true;
	return false;
}

/* Tasks were queued: offers them to the held polls that wait for their
 * backends, oldest first, until as many tasks as were queued are taken or
 * none is left.  The others stay held: no herd of ten thousand replies
 * for one task. */
static void wake_timer_cb(uv_timer_t *t)
{
	struct coord *c = t->data;
	uint32_t backends = c->wake_backends;
	size_t budget = c->wake_tasks;
	int64_t now = hf_mono_ms();

	c->wake_backends = 0;
	c->wake_tasks = 0;
	if (c->stopping || !db_healthy(c->db))
		return;
	for (struct held_poll *h = poll_holds_first(&c->holds), *next; h && budget > 0; h = next) {
		next = h->next;
		if (!(h->backends & backends))
			continue;
		if (!queued_any(c, backends))
			break;
		struct worker_req *w = held_req(h);
		size_t before = sched_count_state(c->sched, SCHED_GRANTING);
		if (!held_try(c, w, now))
			continue;
		size_t taken = sched_count_state(c->sched, SCHED_GRANTING) - before;
		budget = taken < budget ? budget - taken : 0;
	}
	hold_timer_arm(c, now);
}

/* The scheduler's word that a task of backend may be taken. */
static void tasks_queued_cb(void *arg, Hf__Backend backend)
{
	struct coord *c = arg;

	if (!c->holds_open || poll_holds_count(&c->holds) == 0)
		return;
	c->wake_backends |= 1u << ((unsigned)backend & 31);
	c->wake_tasks++;
	if (!uv_is_active((uv_handle_t *)&c->wake_timer))
		uv_timer_start(&c->wake_timer, wake_timer_cb, 0, 0);
}

void worker_api_open(struct coord *c)
{
	uv_timer_init(c->loop, &c->hold_timer);
	uv_timer_init(c->loop, &c->wake_timer);
	c->hold_timer.data = c->wake_timer.data = c;
	c->hold_armed_ms = -1;
	c->holds_open = true;
	sched_set_queued_cb(c->sched, tasks_queued_cb, c);
}

void worker_api_close(struct coord *c)
{
	struct held_poll *h;

	if (!c->holds_open)
		return;
	c->holds_open = false;
	sched_set_queued_cb(c->sched, NULL, NULL);
	while ((h = poll_holds_first(&c->holds))) {
		struct worker_req *w = held_req(h);
		unhold(c, w);
		poll_reply(w, NULL, 0, false);
		worker_req_free(w);
	}
	poll_holds_fini(&c->holds);
	uv_close((uv_handle_t *)&c->hold_timer, NULL);
	uv_close((uv_handle_t *)&c->wake_timer, NULL);
}

