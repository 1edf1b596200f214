/* SPDX-License-Identifier: MIT
 *
 * A committed job's tasks handed to the scheduler a slice per loop turn.
 * Adding 100,000 tasks to the scheduler at once kept the loop thread for
 * about 20 ms (issue 15: every other request, polls included, waited); a
 * feed adds SUBMIT_FEED_SLICE tasks per turn of the loop (a uv_idle
 * handle), so other requests are answered in between.  The job's tasks
 * are already committed when the feed starts, and its submitter has been
 * answered: memory only catches up with the database.
 *
 * Whatever touches a job's tasks in memory by the database's word (cancel
 * of the job or of one of its tasks, retry) calls submit_feed_flush first,
 * so that memory holds every task the database changed.  The feed holds
 * the scheduler's job (sched_job_hold) so that it is not forgotten when its
 * first tasks are done before its last are added.  Loop thread only.
 */
#include <inttypes.h>
#include <stdlib.h>

#include <uv.h>

#include "control-int.h"
#include "coordinator.h"
#include "expand.h"
#include "hf_log.h"
#include "scheduler.h"

/* Tasks added per loop turn: about 0.5 ms of the loop thread on the 2-core
 * machine of docs/performance.md. */
#define SUBMIT_FEED_SLICE 4096

struct submit_feed {
	struct submit_feed *next;
	struct coord *c;
	uv_idle_t idle;
	struct sched_job *job;   /* held while feeding */
	struct job_plan *plan;   /* owned */
	uint64_t *task_ids;      /* owned, plan->n_tasks */
	size_t added;            /* tasks [0, added) are in the scheduler */
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

static void feed_free_cb(uv_handle_t *h)
{
	struct submit_feed *f = h->data;
	job_plan_free(f->plan);
	free(f->task_ids);
	free(f);
}

/* Unlinks f, releases its job and frees it once libuv let go of its
 * handle. */
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
	uv_close((uv_handle_t *)&f->idle, feed_free_cb);
}

static void feed_turn_cb(uv_idle_t *h)
{
	struct submit_feed *f = h->data;
	size_t end = f->added + SUBMIT_FEED_SLICE;

	if (f->c->stopping) {
		/* Memory is not needed any more: the job is in the database. */
		feed_end(f);
		return;
	}
	if (end > f->plan->n_tasks)
		end = f->plan->n_tasks;
	feed_tasks(f, end);
	if (f->added == f->plan->n_tasks)
		feed_end(f);
}

void submit_feed_start(struct coord *c, struct sched_job *job, struct job_plan *plan,
		       uint64_t *task_ids)
{
	size_t first = plan->n_tasks < SUBMIT_FEED_SLICE ? plan->n_tasks : SUBMIT_FEED_SLICE;
	struct submit_feed *f;

	if (plan->n_tasks <= SUBMIT_FEED_SLICE || !(f = calloc(1, sizeof(*f)))) {
		/* Small (or no memory for a feed): all at once. */
		struct submit_feed now = { .c = c, .job = job, .plan = plan, .task_ids = task_ids };
		feed_tasks(&now, plan->n_tasks);
		job_plan_free(plan);
		free(task_ids);
		return;
	}
	f->c = c;
	f->job = job;
	f->plan = plan;
	f->task_ids = task_ids;
	sched_job_hold(job);
	/* The first slice now: a waiting worker is answered at once. */
	feed_tasks(f, first);
	uv_idle_init(c->loop, &f->idle);
	f->idle.data = f;
	uv_idle_start(&f->idle, feed_turn_cb);
	f->next = c->submit_feeds;
	c->submit_feeds = f;
}

void submit_feed_flush(struct coord *c, uint64_t job_id)
{
	struct submit_feed *f = c->submit_feeds;

	while (f) {
		struct submit_feed *next = f->next;
		if (f->job->id == job_id) {
			feed_tasks(f, f->plan->n_tasks);
			feed_end(f);
		}
		f = next;
	}
}
