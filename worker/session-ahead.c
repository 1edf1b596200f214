/* SPDX-License-Identifier: MIT
 *
 * Tasks leased ahead (worker.lease_ahead; docs/protocol.md, "Tasks leased
 * ahead"): tests and benchmarks of one device that the coordinator granted
 * beyond the device's free slots, because the worker said in its poll how
 * many it would hold (DeviceFree.ahead, DeviceFree.ahead_benchmarks).
 * Each waits here, its assignment copied, until a slot of its device frees
 * (a benchmark: until the device is idle); then it starts at once, without
 * a poll's round trip.  The queue is in order of the job's priority
 * (Assignment.priority), then of the grant: a job of a higher priority
 * submitted while tests of another wait here is granted at the next
 * refill and starts before them.  A benchmark that cannot start yet holds
 * its device: nothing behind it starts there until it has run, so the
 * device empties for it instead of every test granted later passing it.
 * A queued task is leased: it is listed in every poll's running tasks
 * (its lease renewed like a running one's), a cancel removes it with a
 * cancelled result, and on drain it goes back to the coordinator as an
 * infrastructure failure (not the model's verdict: retried elsewhere).
 * Its time limit counts from its start, as any task's.
 *
 * Only while tasks are short (worker.lease_ahead_below): the worker asks
 * for tasks ahead once AHEAD_SHORT_RUN tasks in a row ran shorter than
 * that, and stops at the first longer one.  A fleet of many short tasks
 * then keeps its slots busy without a poll's round trip between tasks,
 * while on a GPU fleet of long tasks a test is not held behind a long one
 * when another worker could run it now.
 *
 * Loop thread only, like the rest of the session.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_limits.h"
#include "hf_log.h"
#include "hf_util.h"
#include "result.h"
#include "session-internal.h"

unsigned ahead_queued(const struct session *s, Hf__Backend backend, unsigned index)
{
	unsigned n = 0;

	for (const struct queued *q = s->queued; q; q = q->next)
		if (q->a->backend == backend && q->a->device_index == index)
			n++;
	return n;
}

/* Tasks queued for device d. */
static unsigned queued_on(const struct session *s, const struct hw_device *d)
{
	return ahead_queued(s, d->backend, d->index);
}

/* A test or a benchmark of one device: what the queue holds (a task of
 * several devices takes idle devices when it is granted). */
static bool one_device_task(const Hf__Assignment *a)
{
	return (a->kind == HF__TASK_KIND__KIND_TEST || a->kind == HF__TASK_KIND__KIND_BENCHMARK) &&
	       (a->n_device_indices == 0 ||
		(a->n_device_indices == 1 && a->device_indices[0] == a->device_index));
}

bool ahead_drains(const struct session *s, size_t dev)
{
	const struct hw_device *d = &s->cfg.inv->devices[dev];

	for (const struct queued *q = s->queued; q; q = q->next)
		if (q->a->kind == HF__TASK_KIND__KIND_BENCHMARK && q->a->backend == d->backend &&
		    q->a->device_index == d->index)
			return true;
	return false;
}

/* The assignment's device in the inventory, or NULL. */
static const struct hw_device *device_of(const struct session *s, const Hf__Assignment *a)
{
	return hw_inventory_find(s->cfg.inv, a->backend, a->device_index);
}

void ahead_task_ran(struct session *s, const Hf__TaskResult *r)
{
	double ran_ms = (r->finished_at - r->started_at) * 1000.0;

	if (s->cfg.lease_ahead_below_ms > 0 &&
	    !(ran_ms >= 0 && ran_ms < (double)s->cfg.lease_ahead_below_ms)) {
		if (s->short_run >= AHEAD_SHORT_RUN)
			log_debug("task %" PRIu64 " ran %.0f ms (worker.lease_ahead_below %" PRId64
				  " ms): no tasks leased ahead until %d short ones have run",
				  r->task_id, ran_ms, s->cfg.lease_ahead_below_ms, AHEAD_SHORT_RUN);
		s->short_run = 0;
	} else if (s->short_run < AHEAD_SHORT_RUN) {
		s->short_run++;
	}
}

/* Whether tasks are short enough, lately, to lease any ahead. */
static bool tasks_short(const struct session *s)
{
	return s->cfg.lease_ahead_below_ms == 0 || s->short_run >= AHEAD_SHORT_RUN;
}

/* The most tasks device d's queue holds: worker.lease_ahead, but no more
 * than the coordinator grants (HF_AHEAD_PER_SLOT a slot), so that a device
 * of few slots refills at half of what it can hold rather than asking at
 * every task's end for room it is never granted. */
static unsigned ahead_limit(const struct session *s, const struct hw_device *d)
{
	unsigned most = HF_AHEAD_PER_SLOT * alloc_capacity(d);

	return s->cfg.lease_ahead < most ? s->cfg.lease_ahead : most;
}

unsigned ahead_room(struct session *s, size_t dev, const struct alloc_use *use)
{
	const struct hw_device *d = &s->cfg.inv->devices[dev];
	unsigned have, limit = ahead_limit(s, d);

	/* None while a benchmark (or a health check) has the device: the
	 * coordinator would otherwise stack tasks behind it, and asking then
	 * was measured slower (docs/protocol.md, "Tasks leased ahead"). */
	if (s->cfg.lease_ahead == 0 || s->draining || !tasks_short(s) || use->benchmarks > 0 ||
	    (dev < HW_MAX_DEVICES && s->health[dev].report_pending))
		return 0;
	have = queued_on(s, d);
	return have < limit ? limit - have : 0;
}

/* Copies a (protobuf-c has no copy: packed and unpacked again). */
static Hf__Assignment *assignment_copy(const Hf__Assignment *a)
{
	size_t len = hf__assignment__get_packed_size(a);
	uint8_t *buf = malloc(len ? len : 1);
	Hf__Assignment *copy = NULL;

	if (!buf)
		return NULL;
	hf__assignment__pack(a, buf);
	copy = hf__assignment__unpack(NULL, len, buf);
	free(buf);
	return copy;
}

bool ahead_take(struct session *s, const Hf__Assignment *a, bool held)
{
	const struct hw_device *d = device_of(s, a);
	struct queued *q;

	/* A device held for a benchmark also takes the tasks granted for the
	 * slots it offered before the benchmark came: at most its slots more
	 * than its limit, whatever a coordinator sends. */
	if (s->cfg.lease_ahead == 0 || !d || !one_device_task(a) || s->draining ||
	    queued_on(s, d) >= ahead_limit(s, d) + (held ? alloc_capacity(d) : 0))
		return false;
	q = calloc(1, sizeof(*q));
	if (!q || !(q->a = assignment_copy(a))) {
		free(q);
		return false;
	}
	/* Behind every task of its priority or higher: ahead_start walks the
	 * queue in order, so a later job of a higher priority goes first. */
	struct queued **link = &s->queued;
	while (*link && (*link)->a->priority >= a->priority)
		link = &(*link)->next;
	q->next = *link;
	*link = q;
	s->n_queued++;
	log_debug("task %" PRIu64 " attempt %" PRIu32 " (%s) queued for %s:%" PRIu32
		  " until a slot frees",
		  a->task_id, a->attempt, a->model_type, hf_backend_name(a->backend), a->device_index);
	return true;
}

/* Unlinks *link (a queued task) and returns it. */
static struct queued *unlink_at(struct session *s, struct queued **link)
{
	struct queued *q = *link;

	*link = q->next;
	s->n_queued--;
	return q;
}

static void queued_free(struct queued *q)
{
	hf__assignment__free_unpacked(q->a, NULL);
	free(q);
}

void ahead_start(struct session *s)
{
	struct queued **link = &s->queued;
	/* Devices held for a benchmark queued on them: nothing behind it
	 * starts there until it has run, so it is not passed by every test
	 * granted after it. */
	bool held[HW_MAX_DEVICES] = { false };

	while (*link) {
		const Hf__Assignment *a = (*link)->a;
		const struct hw_device *devs[ALLOC_MAX_DEVICES];
		size_t n_devs = 0;
		char reason[384];
		const struct hw_device *d = device_of(s, a);
		size_t pos = d ? (size_t)(d - s->cfg.inv->devices) : 0;

		/* A device whose health report waits for the coordinator's
		 * answer is held: its queue waits too. */
		if (d && pos < HW_MAX_DEVICES && (held[pos] || s->health[pos].report_pending)) {
			link = &(*link)->next;
			continue;
		}
		int r = alloc_admit(s->cfg.inv, a, session_device_use, s, devs, &n_devs, reason,
				    sizeof(reason));
		if (r == -EBUSY) {
			/* Its device is still full, or (a benchmark) not idle yet. */
			if (d && pos < HW_MAX_DEVICES && a->kind == HF__TASK_KIND__KIND_BENCHMARK)
				held[pos] = true;
			link = &(*link)->next;
			continue;
		}
		struct queued *q = unlink_at(s, link);
		if (r == 0) {
			r = executor_start(s->ex, q->a, devs, n_devs);
			if (r < 0)
				snprintf(reason, sizeof(reason), "could not start the task: %s", strerror(-r));
		}
		if (r < 0)
			session_reject(s, q->a, reason);
		queued_free(q);
	}
}

bool ahead_wants_refill(struct session *s)
{
	const struct hw_inventory *inv = s->cfg.inv;

	for (size_t i = 0; i < inv->n_devices; i++) {
		struct alloc_use use;
		unsigned half = ahead_limit(s, &inv->devices[i]) / 2;
		executor_device_use(s->ex, inv->devices[i].backend, inv->devices[i].index, &use.tasks,
				    &use.benchmarks);
		if (ahead_room(s, i, &use) >= (half ? half : 1))
			return true;
	}
	return false;
}

size_t ahead_refs(const struct session *s, Hf__TaskRef *refs, size_t max)
{
	size_t n = 0;

	for (const struct queued *q = s->queued; q && n < max; q = q->next) {
		hf__task_ref__init(&refs[n]);
		refs[n].task_id = q->a->task_id;
		refs[n].attempt = q->a->attempt;
		n++;
	}
	return n;
}

bool ahead_has(const struct session *s, uint64_t task_id, uint32_t attempt)
{
	for (const struct queued *q = s->queued; q; q = q->next)
		if (q->a->task_id == task_id && q->a->attempt == attempt)
			return true;
	return false;
}

bool ahead_cancel(struct session *s, uint64_t task_id, uint32_t attempt, const char *reason)
{
	for (struct queued **link = &s->queued; *link; link = &(*link)->next) {
		if ((*link)->a->task_id != task_id || (*link)->a->attempt != attempt)
			continue;
		struct queued *q = unlink_at(s, link);
		Hf__TaskResult *res;
		log_info("task %" PRIu64 " attempt %" PRIu32 " (%s) cancelled before it started", task_id,
			 attempt, q->a->model_type);
		if (result_new_cancelled(task_id, attempt, q->a->device_index, hf_wall_s(), reason, &res) == 0) {
			pending_add(s, res, false);
		} else {
			log_error("could not build the result of cancelled task %" PRIu64
				  "; its lease will expire",
				  task_id);
		}
		queued_free(q);
		return true;
	}
	return false;
}

void ahead_return_all(struct session *s, const char *reason)
{
	if (s->n_queued > 0)
		log_info("handing back %zu tasks leased ahead: %s", s->n_queued, reason);
	while (s->queued) {
		struct queued *q = unlink_at(s, &s->queued);
		session_reject(s, q->a, reason);
		queued_free(q);
	}
}

void ahead_free_all(struct session *s)
{
	while (s->queued)
		queued_free(unlink_at(s, &s->queued));
}
