/* SPDX-License-Identifier: MIT
 *
 * The lease clock.  Several times per lease period it finds leases that
 * were not renewed in time (the worker died, hung or lost the network) and
 * queues their tasks again as a new attempt after a backoff (1 s, 2 s, 4 s
 * ... preferring another device), once the requeue is committed; a task
 * whose lease was lost on more attempts than its job's max_retries + 1
 * ends as an error saying so.  A late result from a dead attempt is kept
 * as stale.
 * Tasks whose lease grant could not be confirmed go the same way, so the
 * database stays the one truth about who runs what.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_util.h"

#define EXPIRE_BATCH 1000
/* The clock ticks every 250 ms (main.c); one this much later than the
 * last found the loop busy. */
#define LEASE_TICK_LATE_MS 1000

struct expire_ctx {
	struct coord *c;
	struct db_op op;
	struct db_expire v[EXPIRE_BATCH];
};

static void expire_done(struct db_op *op)
{
	struct expire_ctx *x = op->ctx;
	struct coord *c = x->c;
	size_t requeued = 0, released = 0;

	c->expire_busy = false;
	if (op->rc < 0) {
		free(x); /* the tasks stay EXPIRING: the next tick tries again */
		return;
	}
	for (size_t i = 0; i < op->u.expire.n; i++) {
		struct sched_task *t = sched_task_find(c->sched, x->v[i].task_id);
		if (!t || t->state != SCHED_EXPIRING || t->attempt != x->v[i].attempt)
			continue;
		if (x->v[i].final) {
			if (x->v[i].give_up) {
				log_warn("task %" PRIu64 ": lease lost on %u attempts, giving up", t->id, t->attempt);
				coord_metrics_finished(c, HF__TASK_STATUS__STATUS_ERROR, 1);
			}
			sched_remove(c->sched, t);
		} else if (t->lease_lost) {
			/* Lost with its worker: again after a backoff, elsewhere if it can. */
			uint32_t k = t->attempt > 6 ? 6 : (t->attempt ? t->attempt - 1 : 0);
			t->lease_lost = false;
			sched_delay(c->sched, t, hf_mono_ms() + (1000LL << k));
			requeued++;
		} else if (t->reserved) {
			/* A reservation never handed over: it did not run. */
			t->reserved = false;
			t->released++;
			sched_requeue(c->sched, t);
			released++;
		} else {
			sched_requeue(c->sched, t);
			requeued++;
		}
	}
	coord_metrics_count(c, COORD_RETRIES, requeued);
	coord_metrics_count(c, COORD_RESERVATIONS_RELEASED, released);
	if (released)
		log_debug("queued %zu reserved tasks again that were not handed over", released);
	if (requeued)
		log_info("queued %zu tasks again after their leases ended", requeued);
	free(x);
}

void leases_tick_cb(uv_timer_t *timer)
{
	struct coord *c = timer->data;
	int64_t now = hf_mono_ms();
	struct sched_task *buf[EXPIRE_BATCH];
	size_t n;

	if (!c->ready_ms)
		c->ready_ms = now;
	/* A tick that comes late found the loop busy (a large submit, a
	 * slow disk): the polls that came meanwhile wait behind it, their
	 * leases not yet renewed.  Expire nothing until they were read: the
	 * next tick, a quarter second on, does (never two ticks in a row, so
	 * a loop that stays busy still expires leases). */
	int64_t gap = c->lease_tick_ms ? now - c->lease_tick_ms : 0;
	c->lease_tick_ms = now;
	if (gap > LEASE_TICK_LATE_MS && !c->lease_tick_skipped) {
		c->lease_tick_skipped = true;
		log_debug("the lease clock ticked %" PRId64 " ms late: no lease expires this tick", gap);
		return;
	}
	c->lease_tick_skipped = false;
	n = sched_collect_expired(c->sched, now, buf, EXPIRE_BATCH);
	for (size_t i = 0; i < n; i++) {
		if (buf[i]->reserved) {
			/* Reserved for a worker that stopped polling: it never ran
			 * there, so it is not a lost lease (no backoff, no retry). */
			buf[i]->lease_lost = false;
			sched_expiring(c->sched, buf[i]);
			continue;
		}
		coord_metrics_count(c, COORD_LEASES_EXPIRED, 1);
		log_warn("task %" PRIu64 " attempt %u: lease held by worker \"%s\" expired", buf[i]->id,
			 buf[i]->attempt, buf[i]->worker_id);
		buf[i]->lease_lost = true;
		buf[i]->avoid_worker = sched_name_hash(buf[i]->worker_id);
		buf[i]->avoid_device = buf[i]->device_index;
		sched_expiring(c->sched, buf[i]);
	}

	/* Retries whose backoff is over go back to their queues. */
	n = sched_collect_due(c->sched, now, buf, EXPIRE_BATCH);
	for (size_t i = 0; i < n; i++) {
		buf[i]->due_ms = now;
		sched_requeue(c->sched, buf[i]);
	}

	/* A cancelled task whose worker stopped listing it is forgotten. */
	n = sched_collect_state(c->sched, SCHED_CANCELLING, buf, EXPIRE_BATCH);
	for (size_t i = 0; i < n; i++)
		if (buf[i]->lease_expires_ms <= now)
			sched_remove(c->sched, buf[i]);

	if (c->expire_busy)
		return;
	n = sched_collect_state(c->sched, SCHED_EXPIRING, buf, EXPIRE_BATCH);
	if (n == 0)
		return;
	struct expire_ctx *x = calloc(1, sizeof(*x));
	if (!x)
		return;
	x->c = c;
	for (size_t i = 0; i < n; i++) {
		x->v[i].task_id = buf[i]->id;
		x->v[i].attempt = buf[i]->attempt;
		/* A lease lost more often than the job allows retries is an outcome. */
		x->v[i].give_up = buf[i]->lease_lost && sched_attempts_run(buf[i]) > buf[i]->job->max_retries;
		x->v[i].released = buf[i]->reserved;
	}
	x->op.kind = DB_OP_LEASE_EXPIRE;
	x->op.u.expire.v = x->v;
	x->op.u.expire.n = n;
	x->op.done = expire_done;
	x->op.ctx = x;
	c->expire_busy = true;
	db_submit(c->db, &x->op);
}
