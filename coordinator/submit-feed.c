/* SPDX-License-Identifier: MIT
 *
 * A committed job's tasks handed to the scheduler a slice per loop turn,
 * and the tasks its submit left to write written, a slice per database op.
 *
 * Adding 100,000 tasks to the scheduler at once kept the loop thread for
 * about 20 ms (issue 15: every other request, polls included, waited); a
 * feed adds SUBMIT_FEED_SLICE tasks per turn of the loop (a uv_idle
 * handle), so other requests are answered in between.  Only tasks written
 * in the database are added: the submit wrote the first
 * scheduler.submit_slice of them, and for a larger job the feed sends one
 * DB_OP_JOB_PLAN_SLICE after the other (db-plans.c; on the job lane when
 * there is one) until the last slice is written.  The submitter has been
 * answered when the feed starts, and the whole job is committed (the rest
 * as task_plans rows): memory only catches up with the database.  A failed
 * slice (the database unreachable) is tried again a second later; a
 * coordinator that stops leaves the rest to the next start (db-start.c
 * writes every slice left before it loads the live tasks).
 *
 * Whatever touches a job's tasks in memory by the database's word (cancel
 * of the job or of one of its tasks, retry) calls submit_feed_flush first,
 * so that memory holds every written task the database changed.  After a
 * job's cancel (submit_feed_cancelled) nothing more of it is added; its
 * slices are still written, as cancelled tasks.  The feed holds the
 * scheduler's job (sched_job_hold) so that it is not forgotten when its
 * first tasks are done before its last are added.  Loop thread only.
 */
#include <inttypes.h>
#include <stdlib.h>

#include <uv.h>

#include "control-int.h"
#include "coordinator.h"
#include "expand.h"
#include "hf_log.h"
#include "hf_util.h"
#include "scheduler.h"

/* Tasks added per loop turn: about 0.5 ms of the loop thread on the 2-core
 * machine of docs/performance.md. */
#define SUBMIT_FEED_SLICE 4096

/* After a failed slice write: the database is probably unreachable. */
#define SUBMIT_FEED_RETRY_MS 1000

struct submit_feed {
	struct submit_feed *next;
	struct coord *c;
	uv_idle_t idle;
	uv_timer_t retry;
	int open_handles;        /* freed when both are closed */
	struct sched_job *job;   /* held while feeding */
	struct job_plan *plan;   /* owned */
	uint64_t *task_ids;      /* owned, plan->n_tasks */
	size_t added;            /* tasks [0, added) are in the scheduler */
	size_t written;          /* tasks [0, written) are in the database */
	bool cancelled;          /* the job was cancelled: nothing more is added */
	struct db_op op;         /* the slice write */
	bool in_flight;          /* op is with the database */
	uint64_t slices;
	int64_t started_ms;
};

/* Adds tasks [f->added, end). */
static void feed_tasks(struct submit_feed *f, size_t end)
{
	struct coord *c = f->c;
	const struct job_plan *plan = f->plan;

	for (size_t i = f->added; i < end; i++) {
		const struct task_spec *ts = &plan->tasks[i];
		struct sched_task t = {
			.id = f->task_ids[i],
			.job_id = f->job->id,
			.attempt = 0,
			.model = ts->model,
			.backend = ts->backend,
			.kind = ts->kind,
			.batch_size = ts->batch_size,
			.precision = ts->precision,
			.mode = ts->mode,
			.seq_len = ts->seq_len,
			.timeout_s = plan->timeout_s,
			.iterations = plan->iterations,
			.warmup = plan->warmup,
			.state = SCHED_QUEUED,
		};
		if (!sched_task_add(c->sched, &t))
			log_error("could not queue task %" PRIu64 " in memory; it runs after a restart", t.id);
	}
	f->added = end;
}

static void feed_close_cb(uv_handle_t *h)
{
	struct submit_feed *f = h->data;

	if (--f->open_handles > 0)
		return;
	job_plan_free(f->plan);
	free(f->task_ids);
	free(f);
}

/* Unlinks f, releases its job and frees it once libuv let go of its
 * handles.  Never while its op is with the database. */
static void feed_end(struct submit_feed *f)
{
	struct coord *c = f->c;

	for (struct submit_feed **pp = &c->submit_feeds; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	sched_job_release(c->sched, f->job);
	f->job = NULL;
	uv_idle_stop(&f->idle);
	uv_timer_stop(&f->retry);
	uv_close((uv_handle_t *)&f->idle, feed_close_cb);
	uv_close((uv_handle_t *)&f->retry, feed_close_cb);
}

/* Ends f when nothing is left for it to do. */
static void feed_maybe_end(struct submit_feed *f)
{
	if (f->in_flight)
		return;
	if (f->c->stopping || (f->written == f->plan->n_tasks && (f->cancelled || f->added == f->written)))
		feed_end(f);
}

static void feed_turn_cb(uv_idle_t *h);

/* The idle handle runs while written tasks wait to be added. */
static void feed_idle_update(struct submit_feed *f)
{
	bool want = !f->cancelled && !f->c->stopping && f->added < f->written;

	if (want && !uv_is_active((uv_handle_t *)&f->idle))
		uv_idle_start(&f->idle, feed_turn_cb);
	else if (!want)
		uv_idle_stop(&f->idle);
}

static void feed_turn_cb(uv_idle_t *h)
{
	struct submit_feed *f = h->data;
	size_t end = f->added + SUBMIT_FEED_SLICE;

	if (!f->c->stopping && !f->cancelled) {
		if (end > f->written)
			end = f->written;
		feed_tasks(f, end);
	}
	feed_idle_update(f);
	feed_maybe_end(f);
}

static void slice_done(struct db_op *op);

static void slice_send(struct submit_feed *f)
{
	struct coord *c = f->c;
	struct db *db = c->db_jobs ? c->db_jobs : c->db;

	f->op = (struct db_op){ 0 };
	f->op.kind = DB_OP_JOB_PLAN_SLICE;
	f->op.u.plan_slice.job_id = f->job->id;
	/* The job lane writes it, provided the main connection still holds
	 * the active coordinator's lock then (as a submit's). */
	f->op.u.plan_slice.active_pid = c->db_jobs ? db_backend_pid(c->db) : 0;
	f->op.done = slice_done;
	f->op.ctx = f;
	f->in_flight = true;
	db_submit(db, &f->op);
}

static void retry_cb(uv_timer_t *t)
{
	struct submit_feed *f = t->data;

	if (f->c->stopping)
		feed_maybe_end(f);
	else
		slice_send(f);
}

static void slice_done(struct db_op *op)
{
	struct submit_feed *f = op->ctx;
	struct coord *c = f->c;
	uint64_t job_id = f->job->id;

	f->in_flight = false;
	if (op->rc < 0) {
		if (c->stopping) {
			feed_maybe_end(f);
			return;
		}
		log_warn("job %" PRIu64 ": a slice of its tasks could not be written (%s); trying again in %d ms",
			 job_id, op->err, SUBMIT_FEED_RETRY_MS);
		uv_timer_start(&f->retry, retry_cb, SUBMIT_FEED_RETRY_MS, 0);
		return;
	}
	if (op->u.plan_slice.n > 0) {
		size_t n = op->u.plan_slice.n;
		if (op->u.plan_slice.first_id != f->task_ids[f->written] || n > f->plan->n_tasks - f->written) {
			/* Not the slice this feed expected: another coordinator
			 * wrote some (it took over); its start loaded them. */
			log_error("job %" PRIu64 ": a slice of %zu tasks from id %" PRIu64 " was written where "
				  "id %" PRIu64 " was next; its tasks are left to the next start", job_id, n,
				  op->u.plan_slice.first_id, f->task_ids[f->written]);
			f->written = f->plan->n_tasks;
			f->cancelled = true;
			feed_idle_update(f);
			feed_maybe_end(f);
			return;
		}
		f->written += n;
		f->slices++;
		/* Counted as cancelled by the cancel (control-api.c). */
		if (op->u.plan_slice.cancelled)
			f->cancelled = true;
	}
	if (!op->u.plan_slice.last && !c->stopping) {
		slice_send(f);
	} else if (op->u.plan_slice.last) {
		if (f->written != f->plan->n_tasks) {
			log_error("job %" PRIu64 ": its last slice written leaves %zu of its %zu tasks unwritten "
				  "here; they are left to the next start", job_id, f->plan->n_tasks - f->written,
				  f->plan->n_tasks);
			f->written = f->plan->n_tasks;
			f->cancelled = true;
		} else {
			log_info("job %" PRIu64 ": its %zu tasks are written (%" PRIu64 " slices after the "
				 "submit's answer, over %.2f s)%s", job_id, f->plan->n_tasks, f->slices,
				 (double)(hf_mono_ms() - f->started_ms) / 1000,
				 f->cancelled ? "; cancelled" : "");
		}
	} else {
		log_info("job %" PRIu64 ": the coordinator stops with %zu of its tasks unwritten; they are "
			 "written at the next start", job_id, f->plan->n_tasks - f->written);
	}
	feed_idle_update(f);
	feed_maybe_end(f);
}

void submit_feed_start(struct coord *c, struct sched_job *job, struct job_plan *plan, uint64_t *task_ids,
		       size_t written)
{
	size_t first = written < SUBMIT_FEED_SLICE ? written : SUBMIT_FEED_SLICE;
	struct submit_feed *f;

	if (written > plan->n_tasks)
		written = plan->n_tasks;
	if (c->stopping) {
		/* Answered while the coordinator stops (its database threads
		 * finishing what they were asked): the next start loads the
		 * job, and writes what its submit left. */
		if (written < plan->n_tasks)
			log_info("job %" PRIu64 ": the coordinator stops with %zu of its tasks unwritten; they are "
				 "written at the next start", job->id, plan->n_tasks - written);
		job_plan_free(plan);
		free(task_ids);
		return;
	}
	if ((written == plan->n_tasks && plan->n_tasks <= SUBMIT_FEED_SLICE) || !(f = calloc(1, sizeof(*f)))) {
		/* Small (or no memory for a feed): all written ones at once; any
		 * left to write are written at the next start. */
		struct submit_feed now = { .c = c, .job = job, .plan = plan, .task_ids = task_ids };
		feed_tasks(&now, written);
		if (written < plan->n_tasks)
			log_error("job %" PRIu64 ": out of memory: %zu of its tasks are written at the next start",
				  job->id, plan->n_tasks - written);
		job_plan_free(plan);
		free(task_ids);
		return;
	}
	f->c = c;
	f->job = job;
	f->plan = plan;
	f->task_ids = task_ids;
	f->written = written;
	f->started_ms = hf_mono_ms();
	sched_job_hold(job);
	/* The first slice now: a waiting worker is answered at once. */
	feed_tasks(f, first);
	uv_idle_init(c->loop, &f->idle);
	uv_timer_init(c->loop, &f->retry);
	f->idle.data = f->retry.data = f;
	f->open_handles = 2;
	f->next = c->submit_feeds;
	c->submit_feeds = f;
	feed_idle_update(f);
	if (written < plan->n_tasks)
		slice_send(f);
}

/* The live feed of job_id, or NULL. */
static struct submit_feed *feed_find(struct coord *c, uint64_t job_id)
{
	for (struct submit_feed *f = c->submit_feeds; f; f = f->next)
		if (f->job->id == job_id)
			return f;
	return NULL;
}

void submit_feed_flush(struct coord *c, uint64_t job_id)
{
	struct submit_feed *f = feed_find(c, job_id);

	if (!f)
		return;
	if (!f->cancelled)
		feed_tasks(f, f->written);
	feed_idle_update(f);
	feed_maybe_end(f);
}

void submit_feed_cancelled(struct coord *c, uint64_t job_id)
{
	struct submit_feed *f = feed_find(c, job_id);

	if (!f)
		return;
	f->cancelled = true;
	feed_idle_update(f);
	feed_maybe_end(f);
}

void submit_feeds_stop(struct coord *c)
{
	struct submit_feed *f = c->submit_feeds;

	/* One with a slice in flight ends when the slice comes back. */
	while (f) {
		struct submit_feed *next = f->next;
		feed_idle_update(f);
		feed_maybe_end(f);
		f = next;
	}
}
