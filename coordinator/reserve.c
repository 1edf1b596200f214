/* SPDX-License-Identifier: MIT
 *
 * Tasks reserved at the coordinator (issue 15; docs/protocol.md, "Tasks
 * reserved at the coordinator").  A worker that polls when a slot frees
 * waits for its next lease to be committed: a transaction and its WAL
 * flush, queued behind whatever the database connection runs then (a
 * result store takes 2 to 3 ms on a small machine), every time a slot
 * frees.  hf-worker avoids that wait by leasing tests ahead itself
 * (worker.lease_ahead; it says so in Register.leases_ahead).  For any other
 * worker the coordinator does the same on its side: while the worker's
 * last RESERVE_SHORT_RUN tasks each ran shorter than
 * scheduler.reserve_below, each of its slots gets its next test leased
 * and committed before it frees, kept here, and handed over from memory
 * at the worker's first poll with a free slot of that device.
 *
 * Only tests of one device are reserved (a benchmark starts on an idle
 * device, a task of several devices takes idle devices), at most one per
 * registered slot, and none while an idle worker of those backends waits
 * for work (a held poll): a queued task goes to a free slot first.  The worker does not know of a reservation and does not
 * list it as running, so the coordinator renews its lease at each of the
 * worker's polls.  A reservation is released, its task queued again as a
 * new attempt with no backoff and no retry counted (it never ran; the
 * attempt ends as "released"), when it was not handed over within twice
 * scheduler.reserve_below (the slot ran a longer task than the ones
 * before), when its device is drained or quarantined, when its worker
 * drains or is forgotten, and when its worker stops polling (the lease
 * clock, leases.c, knows it by sched_task.reserved).  A reserved task that
 * is cancelled is forgotten at once (control-api.c).
 *
 * Loop thread only.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "reserve.h"
#include "worker-api-int.h"
#include "hf_util.h"

/* Reservations start after this many short tasks in a row.  One: a
 * reservation not handed over is released within twice
 * scheduler.reserve_below anyway, and each one more a worker needs before
 * its first is a slot that waits for a commit (hf-worker's own rule, 8,
 * bounds a queue of up to 16 tasks a device, not one a slot). */
#define RESERVE_SHORT_RUN 1

struct reserve_op {
	struct coord *c;
	char worker_id[128];
	struct db_op op;
};

/* ref's task, while it is still one of cw's reservations on the device
 * ref names (a worker registering again may list other devices). */
static struct sched_task *reserved_task(struct coord *c, const struct coord_worker *cw,
					const struct reserved_ref *ref)
{
	struct sched_task *t = sched_task_find(c->sched, ref->task_id);
	const Hf__Register *reg = cw->reg;

	if (!t || t->state != SCHED_LEASED || !t->reserved || t->attempt != ref->attempt ||
	    strcmp(t->worker_id, cw->id) != 0 || ref->device_pos >= reg->n_devices ||
	    reg->devices[ref->device_pos]->backend != t->backend ||
	    reg->devices[ref->device_pos]->index != t->device_index)
		return NULL;
	return t;
}

/* The lease clock commits the requeue (leases.c); t->reserved tells it
 * that this lease never ran. */
static void release(struct coord *c, struct sched_task *t)
{
	t->lease_lost = false;
	sched_expiring(c->sched, t);
}

static bool ref_add(struct coord_worker *cw, const struct sched_task *t, int64_t now)
{
	long d = coord_worker_device(cw, (int)t->backend, t->device_index);

	if (d < 0)
		return false;
	if (cw->n_reserved == cw->cap_reserved) {
		uint32_t cap = cw->cap_reserved ? 2 * cw->cap_reserved : 4;
		struct reserved_ref *v = realloc(cw->reserved, cap * sizeof(*v));
		if (!v)
			return false;
		cw->reserved = v;
		cw->cap_reserved = cap;
	}
	cw->reserved[cw->n_reserved++] = (struct reserved_ref){
		.task_id = t->id,
		.attempt = t->attempt,
		.device_pos = (uint32_t)d,
		.since_ms = now,
	};
	return true;
}

static void reserve_committed(struct db_op *op)
{
	struct reserve_op *r = op->ctx;
	struct coord *c = r->c;
	/* By id: the worker may have registered again, or been forgotten. */
	struct coord_worker *cw = coord_worker_find(c, r->worker_id);
	int64_t now = hf_mono_ms();
	size_t made = 0;

	if (cw)
		cw->reserving = false;
	for (size_t i = 0; i < op->u.lease.n; i++) {
		const struct db_lease *l = &op->u.lease.v[i];
		struct sched_task *t = sched_task_find(c->sched, l->task_id);
		if (!t || t->state != SCHED_GRANTING || t->attempt != l->attempt)
			continue; /* cancelled meanwhile: its outcome is already decided */
		if (op->rc < 0 || !l->granted) {
			/* The lease may or may not be in the database: the lease
			 * clock settles it, as for a grant (worker-api.c). */
			t->lease_lost = false;
			sched_expiring(c->sched, t);
			continue;
		}
		sched_lease(c->sched, t, now + c->conf.lease_ms);
		t->reserved = true;
		made++;
		if (!cw || !ref_add(cw, t, now))
			release(c, t);
	}
	coord_metrics_count(c, COORD_RESERVATIONS_MADE, made);
	free(op->u.lease.v);
	free(r);
}

void reserve_maybe(struct coord *c, struct coord_worker *cw)
{
	const Hf__Register *reg = cw->reg;
	struct reserve_op *r;
	uint32_t *want;
	size_t total = 0;

	if (c->conf.reserve_below_ms <= 0 || reg->leases_ahead || cw->short_run < RESERVE_SHORT_RUN ||
	    cw->reserving || c->stopping || !db_healthy(c->db) || reg->n_devices == 0 ||
	    coord_drained(c, reg->worker_id, NULL))
		return;
	uint32_t backends = 0;
	for (size_t d = 0; d < reg->n_devices; d++)
		backends |= 1u << (reg->devices[d]->backend & 31);
	/* An idle worker waits for work of its backends (a held poll, or this
	 * worker's own): what is queued is its, now. */
	if (poll_holds_waiting(&c->holds, backends))
		return;
	/* One per registered slot of each device that may take work, less
	 * what is reserved already. */
	want = calloc(reg->n_devices, sizeof(*want));
	if (!want)
		return;
	for (size_t d = 0; d < reg->n_devices; d++) {
		if (coord_drained(c, reg->worker_id, reg->devices[d]) ||
		    coord_quarantined(c, reg->worker_id, reg->devices[d], NULL))
			continue;
		want[d] = reg->devices[d]->slots ? reg->devices[d]->slots : 1;
		total += want[d];
	}
	for (uint32_t i = 0; i < cw->n_reserved; i++) {
		uint32_t d = cw->reserved[i].device_pos;
		if (d < reg->n_devices && want[d] > 0) {
			want[d]--;
			total--;
		}
	}
	r = total ? calloc(1, sizeof(*r)) : NULL;
	if (!r) {
		free(want);
		return;
	}
	struct db_lease *leases = NULL;
	size_t n = take_for_devices(c, cw, hf_mono_ms(), NULL, want, NULL, &leases);
	free(want);
	if (n == 0) {
		free(r);
		return;
	}
	r->c = c;
	hf_strlcpy(r->worker_id, cw->id, sizeof(r->worker_id));
	r->op.kind = DB_OP_LEASE_GRANT;
	r->op.u.lease.v = leases;
	r->op.u.lease.n = n;
	r->op.done = reserve_committed;
	r->op.ctx = r;
	cw->reserving = true;
	db_submit(c->db, &r->op);
}

void reserve_renew(struct coord *c, struct coord_worker *cw, int64_t now)
{
	const Hf__Register *reg = cw->reg;
	uint32_t k = 0;

	for (uint32_t i = 0; i < cw->n_reserved; i++) {
		const struct reserved_ref *ref = &cw->reserved[i];
		struct sched_task *t = reserved_task(c, cw, ref);
		if (!t)
			continue; /* cancelled, or released meanwhile */
		const Hf__Device *dev = reg->devices[ref->device_pos];
		if (now - ref->since_ms > 2 * c->conf.reserve_below_ms || coord_drained(c, reg->worker_id, dev) ||
		    coord_quarantined(c, reg->worker_id, dev, NULL)) {
			release(c, t);
			continue;
		}
		sched_renew(c->sched, t, cw->id, ref->attempt, now + c->conf.lease_ms);
		cw->reserved[k++] = *ref;
	}
	cw->n_reserved = k;
}

static bool pre_add(struct worker_req *w, const struct reserved_ref *ref)
{
	struct reserved_ref *v = realloc(w->pre, (w->n_pre + 1) * sizeof(*v));

	if (!v)
		return false;
	w->pre = v;
	w->pre[w->n_pre++] = *ref;
	return true;
}

void reserve_hand_over(struct worker_req *w, struct coord_worker *cw, int64_t now)
{
	struct coord *c = w->c;
	const Hf__Poll *p = w->env->poll;
	const Hf__Register *reg = cw->reg;

	for (size_t i = 0; i < p->n_free && cw->n_reserved > 0; i++) {
		long d = coord_worker_device(cw, (int)p->free[i]->backend, p->free[i]->index);
		if (d < 0)
			continue;
		uint32_t slots = reg->devices[d]->slots ? reg->devices[d]->slots : 1;
		uint32_t free_slots = p->free[i]->free_slots < slots ? p->free[i]->free_slots : slots;
		uint32_t k = 0;
		for (uint32_t j = 0; j < cw->n_reserved; j++) {
			struct reserved_ref ref = cw->reserved[j];
			struct sched_task *t;
			if (free_slots > 0 && ref.device_pos == (uint32_t)d && (t = reserved_task(c, cw, &ref)) &&
			    pre_add(w, &ref)) {
				/* A lease like any other from now on: the worker renews it. */
				t->reserved = false;
				sched_renew(c->sched, t, cw->id, ref.attempt, now + c->conf.lease_ms);
				free_slots--;
				continue;
			}
			cw->reserved[k++] = ref;
		}
		cw->n_reserved = k;
	}
}

void reserve_release_all(struct coord *c, struct coord_worker *cw)
{
	for (uint32_t i = 0; i < cw->n_reserved; i++) {
		struct sched_task *t = reserved_task(c, cw, &cw->reserved[i]);
		if (t)
			release(c, t);
	}
	cw->n_reserved = 0;
}

void reserve_task_ran(struct coord *c, struct coord_worker *cw, double ran_s)
{
	if (isfinite(ran_s) && ran_s >= 0 && ran_s * 1000 < (double)c->conf.reserve_below_ms) {
		if (cw->short_run < UINT8_MAX)
			cw->short_run++;
	} else {
		cw->short_run = 0;
	}
}
