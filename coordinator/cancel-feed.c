/* SPDX-License-Identifier: MIT
 *
 * A cancelled job's queued tasks cancelled in slices (issue 15).  The
 * job's cancel op (db-cancel.c) cancels the job, its leased tasks and a
 * first slice of its queued ones, and its requester is answered; the loop
 * has dropped the job's queued tasks from the scheduler by then, and the
 * lease statement grants none of a cancelled job, so the rest can never
 * run.  A cancel feed then sends one DB_OP_JOB_CANCEL_SLICE after the
 * other (scheduler.cancel_slice tasks each), each its own database op, so
 * results, leases and registrations queued meanwhile are stored between
 * two slices, until a slice finds fewer than it may take.  A failed slice
 * (the database unreachable) is tried again a second later.
 *
 * At most one feed per job.  The feeds of a coordinator that stops end
 * with it: the next one to start finds the cancelled jobs with queued
 * tasks (db-start.c) and finishes them (cancel_feed_start from main.c).
 * Loop thread only.
 */
#include <inttypes.h>
#include <stdlib.h>

#include <uv.h>

#include "control-int.h"
#include "coord-metrics.h"
#include "coordinator.h"
#include "hf_log.h"
#include "hf_util.h"

/* After a failed slice: the database is probably unreachable. */
#define CANCEL_FEED_RETRY_MS 1000

struct cancel_feed {
	struct cancel_feed *next;
	struct coord *c;
	uint64_t job_id;
	struct db_op op;
	bool in_flight;          /* op is with the database */
	uv_timer_t retry;
	uint64_t cancelled;      /* tasks the slices cancelled */
	uint64_t slices;
	uint64_t started_ms;
};

static void slice_done(struct db_op *op);

static void feed_free_cb(uv_handle_t *h)
{
	free(h->data);
}

/* Unlinks f and frees it once libuv let go of its timer. */
static void feed_end(struct cancel_feed *f)
{
	struct coord *c = f->c;

	for (struct cancel_feed **pp = &c->cancel_feeds; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	uv_timer_stop(&f->retry);
	uv_close((uv_handle_t *)&f->retry, feed_free_cb);
}

static void slice_send(struct cancel_feed *f)
{
	struct coord *c = f->c;

	f->op = (struct db_op){ 0 };
	f->op.kind = DB_OP_JOB_CANCEL_SLICE;
	f->op.u.cancel.job_id = f->job_id;
	f->op.u.cancel.slice = (uint32_t)c->conf.cancel_slice;
	f->op.done = slice_done;
	f->op.ctx = f;
	f->in_flight = true;
	db_submit(c->db, &f->op);
}

static void retry_cb(uv_timer_t *t)
{
	struct cancel_feed *f = t->data;

	if (f->c->stopping)
		feed_end(f);
	else
		slice_send(f);
}

static void slice_done(struct db_op *op)
{
	struct cancel_feed *f = op->ctx;
	struct coord *c = f->c;

	f->in_flight = false;
	if (op->rc == 0 && op->u.cancel.n_cancelled) {
		f->cancelled += op->u.cancel.n_cancelled;
		f->slices++;
		coord_metrics_finished(c, HF__TASK_STATUS__STATUS_CANCELLED, op->u.cancel.n_cancelled);
	}
	if (c->stopping) {
		if (!(op->rc == 0 && op->u.cancel.last))
			log_info("job %" PRIu64 ": the coordinator stops with its cancel unfinished "
				 "(%" PRIu64 " queued tasks cancelled so far); it is finished at the next start",
				 f->job_id, f->cancelled);
		feed_end(f);
		return;
	}
	if (op->rc < 0) {
		log_warn("job %" PRIu64 ": a slice of its cancel failed (%s); trying again in %d ms",
			 f->job_id, op->err, CANCEL_FEED_RETRY_MS);
		uv_timer_start(&f->retry, retry_cb, CANCEL_FEED_RETRY_MS, 0);
		return;
	}
	if (!op->u.cancel.last) {
		slice_send(f);
		return;
	}
	log_info("job %" PRIu64 ": cancel finished: %" PRIu64 " queued tasks cancelled in %" PRIu64
		 " slices over %.2f s", f->job_id, f->cancelled, f->slices,
		 (double)(hf_mono_ms() - f->started_ms) / 1000);
	feed_end(f);
}

bool cancel_feed_running(const struct coord *c, uint64_t job_id)
{
	for (const struct cancel_feed *f = c->cancel_feeds; f; f = f->next)
		if (f->job_id == job_id)
			return true;
	return false;
}

void cancel_feed_start(struct coord *c, uint64_t job_id)
{
	struct cancel_feed *f;

	if (c->stopping || cancel_feed_running(c, job_id))
		return;
	f = calloc(1, sizeof(*f));
	if (!f) {
		log_error("job %" PRIu64 ": out of memory: its queued tasks are cancelled at the next start",
			  job_id);
		return;
	}
	f->c = c;
	f->job_id = job_id;
	f->started_ms = (uint64_t)hf_mono_ms();
	uv_timer_init(c->loop, &f->retry);
	f->retry.data = f;
	f->next = c->cancel_feeds;
	c->cancel_feeds = f;
	slice_send(f);
}

void cancel_feeds_stop(struct coord *c)
{
	struct cancel_feed *f = c->cancel_feeds;

	/* One with a slice in flight ends when the slice comes back. */
	while (f) {
		struct cancel_feed *next = f->next;
		if (!f->in_flight)
			feed_end(f);
		f = next;
	}
}
