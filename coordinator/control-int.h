/* SPDX-License-Identifier: MIT
 *
 * What the control API's files share (control-api.c, control-fleet.c,
 * submit-feed.c): one
 * request in flight and the handlers each file answers.  Loop thread only.
 */
#ifndef HF_CONTROL_INT_H
#define HF_CONTROL_INT_H

#include "coordinator.h"
#include "expand.h"

struct control_req {
	struct coord *c;
	nuv_request_t *req;
	Hf__Envelope *env;
	struct coord_principal who;  /* the token's name and role */
	struct job_plan *plan;
	struct match_req *match;   /* handed to the scheduler's job on success */
	char *match_json;
	char *stopping;            /* retry --cancelled: the ids of cancelled tasks still being stopped */
	struct db_op op;
};

void control_req_free(struct control_req *q);

/* The done callback of a read the database layer answers whole: replies
 * with its message, or the error; frees q. */
void control_read_done(struct db_op *op);

/* submit-feed.c: a committed job's tasks into the scheduler, a slice per
 * loop turn when there are many, and those its submit left to write
 * (tasks [written, plan->n_tasks): db-plans.c) written first, a slice per
 * database op.  Takes plan and task_ids (freed when done); job is the
 * scheduler's job, already added. */
void submit_feed_start(struct coord *c, struct sched_job *job, struct job_plan *plan,
		       uint64_t *task_ids, size_t written);
/* Adds every written task of job_id still being fed now: before memory
 * changes a job's tasks as the database did (cancel, retry). */
void submit_feed_flush(struct coord *c, uint64_t job_id);
/* job_id was cancelled: none of its tasks is added any more (those still
 * to write are written cancelled). */
void submit_feed_cancelled(struct coord *c, uint64_t job_id);

/* control-fleet.c: each replies and frees q. */
void handle_explain(struct control_req *q);
void handle_workers(struct control_req *q);
void handle_devices(struct control_req *q);

#endif
