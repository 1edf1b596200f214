/* SPDX-License-Identifier: MIT
 *
 * The control API that hfctl talks to: submit (validated and expanded here,
 * written in one transaction), job status, job list, results, cancel,
 * workers and models, and the reads for people (logs, compare, history,
 * report), which the database layer answers whole.  A job is acknowledged only after its tasks are
 * committed.  Every request has passed coord_auth_check (auth.h) first;
 * the job's submitter is the token's name, cancel and retry of another's
 * job need admin, and each write carries its audit row.  Tokens, audit and
 * whoami are control-auth.c's; explain, workers and devices (answered from
 * the fleet in memory) control-fleet.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "control-int.h"
#include "coordinator.h"
#include "expand.h"
#include "fleet-fit.h"
#include "hf_fit.h"
#include "hf_limits.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"


void control_req_free(struct control_req *q)
{
	if (!q)
		return;
	hf_env_free(q->env);
	job_plan_free(q->plan);
	match_req_free(q->match);
	free(q->match_json);
	free(q->stopping);
	free(q);
}

/* The audit row the database writes with q's operation. */
static void audit_set(struct control_req *q, const char *action)
{
	q->op.audit.actor = q->who.name;
	q->op.audit.role = auth_role_name(q->who.role);
	q->op.audit.action = action;
}

/* Cancel and retry of another's job need admin: a lesser role names itself
 * as the owner the database checks the job against. */
static const char *owner_unless_admin(const struct control_req *q)
{
	return auth_role_allows(q->who.role, AUTH_ADMIN) ? NULL : q->who.name;
}

/* ---- submit ---- */

static void submit_done(struct db_op *op)
{
	struct control_req *q = op->ctx;
	struct coord *c = q->c;
	const struct job_plan *plan = q->plan;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__SubmitReply sr = HF__SUBMIT_REPLY__INIT;
	Hf__LimitedTasks *limited = NULL, **limited_ptrs = NULL;

	if (op->rc < 0) {
		if (op->u.job_create.conflict)
			coord_reply_error(q->req, HF__ERROR_CODE__ERR_BAD_REQUEST, "%s", op->err);
		else
			coord_reply_error(q->req, coord_db_error_code(op->rc),
					  "the job was not accepted: %s", op->err);
		goto out;
	}
	uint64_t job_id = op->u.job_create.job_id;
	/* A repeated submit: the job and its tasks are queued already. */
	struct sched_job *job = NULL;
	if (!op->u.job_create.existing)
		coord_metrics_count(c, COORD_SUBMITS, 1);
	if (op->u.job_create.existing) {
		log_info("job %" PRIu64 " submitted again by \"%s\" (request id \"%s\"): not made twice",
			 job_id, plan->submitter, plan->request_id);
	} else if (!(job = sched_job_add(c->sched, job_id, plan->priority))) {
		log_error("out of memory adding job %" PRIu64 "; it runs after a restart", job_id);
	} else {
		job->data = q->match;
		job->data_free = (void (*)(void *))match_req_free;
		job->max_running = plan->max_running;
		job->max_retries = plan->max_retries;
		job->submitter = sched_name_hash(plan->submitter);
		job->flaky_reruns = plan->flaky_reruns;
		q->match = NULL;
	}
	if (!op->u.job_create.existing)
		log_info("job %" PRIu64 " accepted from \"%s\": %zu tasks, priority %d", job_id,
			 plan->submitter, plan->n_tasks, plan->priority);
	sr.job_id = job_id;
	sr.task_count = op->u.job_create.task_count;
	sr.existing = op->u.job_create.existing;
	/* The combinations the registry marks as limited: run, and said so. */
	limited = calloc(plan->n_limited ? plan->n_limited : 1, sizeof(*limited));
	limited_ptrs = calloc(plan->n_limited ? plan->n_limited : 1, sizeof(*limited_ptrs));
	if (limited && limited_ptrs) {
		for (size_t i = 0; i < plan->n_limited; i++) {
			const struct plan_limited *pl = &plan->limited[i];
			hf__limited_tasks__init(&limited[i]);
			limited[i].model_type = c->reg->models[pl->model].model_type;
			limited[i].backend = pl->backend;
			limited[i].kind = pl->kind;
			limited[i].reason = (char *)pl->reason;
			limited[i].task_count = pl->n_tasks;
			limited_ptrs[i] = &limited[i];
		}
		sr.limited = limited_ptrs;
		sr.n_limited = plan->n_limited;
	} else {
		log_error("out of memory listing the limited tasks of job %" PRIu64, job_id);
	}
	env.body_case = HF__ENVELOPE__BODY_SUBMIT_REPLY;
	env.submit_reply = &sr;
	coord_reply(q->req, &env);
	/* The job is committed and the submitter answered; the scheduler
	 * gets its written tasks now, a slice per loop turn for a large job,
	 * and those its submit left to write as they are written (the plan
	 * and the ids are the feed's from here). */
	if (job) {
		submit_feed_start(c, job, q->plan, op->u.job_create.task_ids, op->u.job_create.n_written);
		q->plan = NULL;
		op->u.job_create.task_ids = NULL;
	}
out:
	free(limited);
	free(limited_ptrs);
	free(op->u.job_create.task_ids);
	control_req_free(q);
}

/* Replies ERR_UNSATISFIABLE: the message (every line of the list, for
 * readers of the text alone) and the list itself. */
static void reply_unsatisfiable(struct control_req *q, const char *backends, struct fit_list *unfit)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Error e = HF__ERROR__INIT;
	struct hf_buf text;
	double now_wall = hf_wall_s();
	size_t n = fit_list_count(unfit);
	Hf__DeviceFit **v = fit_list_msgs(unfit);

	hf_buf_init(&text);
	hf_buf_printf(&text, "no connected worker can run %s tasks%s", backends,
		      q->c->workers ? "" : " (no worker is registered)");
	for (size_t i = 0; i < n; i++) {
		hf_buf_puts(&text, i ? "; " : ": ");
		hf_fit_line(v[i], now_wall, HF_FIT_CLOCK_UTC, NULL, &text);
	}
	if (fit_list_omitted(unfit))
		hf_buf_printf(&text, "; and %zu more", fit_list_omitted(unfit));
	hf_buf_puts(&text, " (use --allow-waiting to queue the tasks anyway)");
	/* HF_MESSAGE_MAX bounds Error.message; the list is whole in unfit. */
	if (text.len >= HF_MESSAGE_MAX) {
		text.data[HF_MESSAGE_MAX - 1] = '\0';
		hf_utf8_sanitize(text.data);
	}
	e.code = HF__ERROR_CODE__ERR_UNSATISFIABLE;
	e.message = text.data ? text.data : "";
	e.min_protocol = HF_PROTOCOL_MIN;
	e.max_protocol = HF_PROTOCOL_MAX;
	e.unfit = v;
	e.n_unfit = n;
	e.unfit_omitted = (uint32_t)fit_list_omitted(unfit);
	env.body_case = HF__ENVELOPE__BODY_ERROR;
	env.error = &e;
	coord_reply(q->req, &env);
	hf_buf_fini(&text);
}

/* Can a connected worker run every backend's tasks of q's plan?  When not,
 * it has replied: ERR_UNSATISFIABLE naming each worker and device and
 * what it lacks, or ERR_UNAVAILABLE during the start-up grace (the
 * workers are registering again after a restart). */
static bool submit_satisfiable(struct control_req *q)
{
	struct coord *c = q->c;
	int64_t now = hf_mono_ms(), left;
	bool seen[SCHED_N_BACKENDS] = { false }, ok = true;
	struct fit_list *unfit = fit_list_new(HF_MAX_DEVICE_FITS);
	char backends[128] = "";
	size_t len = 0;

	if (!unfit) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return false;
	}
	for (size_t i = 0; i < q->plan->n_tasks; i++) {
		Hf__Backend b = q->plan->tasks[i].backend;
		if ((unsigned)b >= SCHED_N_BACKENDS || seen[b])
			continue;
		seen[b] = true;
		if (fleet_backend_satisfiable(c, b, q->match, now, unfit))
			continue;
		ok = false;
		int k = snprintf(backends + len, sizeof(backends) - len, "%s%s", len ? ", " : "",
				 hf_backend_name(b));
		if (k > 0 && (size_t)k < sizeof(backends) - len)
			len += (size_t)k;
	}
	if (!ok && fleet_in_startup_grace(c, now, &left)) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
				  "no connected worker can run %s tasks yet, but this coordinator started "
				  "moments ago and its workers are still registering again: submit again in "
				  "%.0f s (or use --allow-waiting to queue the tasks anyway)",
				  backends, (double)left / 1000.0 + 1);
	} else if (!ok) {
		reply_unsatisfiable(q, backends, unfit);
	}
	fit_list_free(unfit);
	return ok;
}

static void handle_submit(struct control_req *q)
{
	struct coord *c = q->c;
	Hf__ErrorCode code;
	char err[1024];

	if (expand_job(c->reg, q->env->submit, (size_t)c->conf.max_tasks_per_job, &q->plan, &code, err,
		       sizeof(err)) < 0) {
		coord_reply_error(q->req, code, "%s", err);
		control_req_free(q);
		return;
	}
	/* The job is the token's, whatever name the client put in it. */
	char *submitter = strdup(q->who.name);
	if (!submitter) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		control_req_free(q);
		return;
	}
	free(q->plan->submitter);
	q->plan->submitter = submitter;
	if (match_req_from_submit(q->env->submit, &q->match, err, sizeof(err)) < 0) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_BAD_REQUEST, "%s", err);
		control_req_free(q);
		return;
	}
	q->match_json = match_req_to_json(q->match);
	if (!q->match_json) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		control_req_free(q);
		return;
	}
	/* Refuse what no connected worker could run, unless asked to wait. */
	if (!q->env->submit->allow_waiting && !submit_satisfiable(q)) {
		control_req_free(q);
		return;
	}
	if (!db_healthy(c->db)) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
				  "the database is unavailable: the job was not accepted, submit it again later");
		control_req_free(q);
		return;
	}
	q->op.kind = DB_OP_JOB_CREATE;
	q->op.u.job_create.reg = c->reg;
	q->op.u.job_create.plan = q->plan;
	q->op.u.job_create.requirements = q->match_json;
	q->op.u.job_create.live_before = sched_count(c->sched);
	q->op.u.job_create.slice = (uint32_t)c->conf.submit_slice;
	q->op.done = submit_done;
	q->op.ctx = q;
	audit_set(q, "submit");
	/* The job lane writes it (see coordinator.h), provided the main
	 * connection still holds the active coordinator's lock then. */
	int active_pid = c->db_jobs ? db_backend_pid(c->db) : 0;
	q->op.u.job_create.active_pid = active_pid;
	db_submit(active_pid ? c->db_jobs : c->db, &q->op);
}

/* ---- reads that the database layer answers ---- */

void control_read_done(struct db_op *op)
{
	struct control_req *q = op->ctx;
	if (op->rc < 0 || !op->u.read.reply) {
		nng_msg_free(op->u.read.reply);
		coord_reply_error(q->req, coord_db_error_code(op->rc), "could not read: %s",
				  op->err[0] ? op->err : "unknown error");
	} else {
		nuv_reply(q->req, op->u.read.reply);
	}
	control_req_free(q);
}

static void submit_read(struct control_req *q, enum db_op_kind kind, uint64_t job_id, uint32_t limit)
{
	q->op.kind = kind;
	q->op.u.read.job_id = job_id;
	q->op.u.read.limit = limit;
	q->op.u.read.request = q->env;
	q->op.done = control_read_done;
	q->op.ctx = q;
	db_submit(q->c->db, &q->op);
}

/* ---- cancel ---- */

/* The database has cancelled t: a queued task is forgotten, a running one
 * is stopped at its worker's next poll. */
static void cancel_in_memory(struct coord *c, struct sched_task *t)
{
	if (t->state == SCHED_LEASED && t->reserved)
		sched_remove(c->sched, t); /* reserved (reserve.c): its worker never had it */
	else if (t->state == SCHED_LEASED || t->state == SCHED_GRANTING)
		sched_cancelling(c->sched, t);
	else if (t->state != SCHED_CANCELLING)
		sched_remove(c->sched, t);
}

static void cancel_done(struct db_op *op)
{
	struct control_req *q = op->ctx;
	struct coord *c = q->c;
	uint64_t job_id = op->u.cancel.job_id;

	if (op->rc < 0) {
		coord_reply_error(q->req, coord_db_error_code(op->rc), "the job was not cancelled: %s",
				  op->err);
		control_req_free(q);
		return;
	}
	if (op->u.cancel.found && op->u.cancel.forbidden) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_FORBIDDEN,
				  "job %" PRIu64 " is \"%s\"'s: cancelling another's job needs the admin role; "
				  "token \"%s\" has the %s role",
				  job_id, op->u.cancel.submitter, q->who.name, auth_role_name(q->who.role));
		control_req_free(q);
		return;
	}
	if (!op->u.cancel.found) {
		if (op->u.cancel.task_id)
			coord_reply_error(q->req, HF__ERROR_CODE__ERR_NOT_FOUND, "no task %" PRIu64,
					  op->u.cancel.task_id);
		else
			coord_reply_error(q->req, HF__ERROR_CODE__ERR_NOT_FOUND, "no job %" PRIu64, job_id);
		control_req_free(q);
		return;
	}
	/* Memory first holds every task of the job the database changed. */
	submit_feed_flush(c, job_id);
	if (op->u.cancel.task_id) {
		struct sched_task *t = sched_task_find(c->sched, op->u.cancel.task_id);
		if (t && op->u.cancel.n_cancelled)
			cancel_in_memory(c, t);
		coord_metrics_finished(c, HF__TASK_STATUS__STATUS_CANCELLED, op->u.cancel.n_cancelled);
		log_info("task %" PRIu64 " cancelled", op->u.cancel.task_id);
		Hf__Envelope env = HF__ENVELOPE__INIT;
		Hf__CancelReply cr = HF__CANCEL_REPLY__INIT;
		cr.cancelled = op->u.cancel.n_cancelled;
		env.body_case = HF__ENVELOPE__BODY_CANCEL_REPLY;
		env.cancel_reply = &cr;
		coord_reply(q->req, &env);
		control_req_free(q);
		return;
	}
	/* The database has decided every live task's outcome; bring memory in
	 * line: queued ones go, running ones are stopped at their next poll. */
	struct sched_job *job = sched_job_find(c->sched, job_id);
	size_t live = job ? job->live : 0;
	struct sched_task **v = live ? calloc(live, sizeof(*v)) : NULL;
	size_t n = v ? sched_collect_job(c->sched, job_id, v, live) : 0;
	for (size_t i = 0; i < n; i++)
		cancel_in_memory(c, v[i]);
	free(v);
	coord_metrics_finished(c, HF__TASK_STATUS__STATUS_CANCELLED, op->u.cancel.n_cancelled);
	/* Tasks its submit has not written yet are written cancelled
	 * (submit-feed.c); none of them is added to the scheduler any more.
	 * Their outcome is decided now. */
	submit_feed_cancelled(c, job_id);
	coord_metrics_finished(c, HF__TASK_STATUS__STATUS_CANCELLED, op->u.cancel.unwritten);
	if (!op->u.cancel.last) {
		/* The rest of its queued tasks, a slice per database op: they
		 * are out of the scheduler, and no lease of them is granted. */
		log_info("job %" PRIu64 " cancelled: %u tasks now, %u queued ones in slices of %" PRId64,
			 job_id, op->u.cancel.n_cancelled, op->u.cancel.remaining, c->conf.cancel_slice);
		cancel_feed_start(c, job_id);
	} else if (op->u.cancel.remaining) {
		log_info("job %" PRIu64 " cancelled: %u tasks now, %u its submit had not written yet as they "
			 "are written", job_id, op->u.cancel.n_cancelled, op->u.cancel.remaining);
	} else {
		log_info("job %" PRIu64 " cancelled: %u tasks", job_id, op->u.cancel.n_cancelled);
	}

	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__CancelReply cr = HF__CANCEL_REPLY__INIT;
	uint64_t all = (uint64_t)op->u.cancel.n_cancelled + op->u.cancel.remaining;
	cr.cancelled = all > UINT32_MAX ? UINT32_MAX : (uint32_t)all;
	cr.remaining = op->u.cancel.remaining;
	env.body_case = HF__ENVELOPE__BODY_CANCEL_REPLY;
	env.cancel_reply = &cr;
	coord_reply(q->req, &env);
	control_req_free(q);
}

/* ---- retry ---- */

static void retry_done(struct db_op *op)
{
	struct control_req *q = op->ctx;
	struct coord *c = q->c;
	size_t queued = 0, leased = 0;

	if (op->rc == 0 && op->u.retry.found && op->u.retry.forbidden) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_FORBIDDEN,
				  "job %" PRIu64 " is \"%s\"'s: retrying another's job needs the admin role; "
				  "token \"%s\" has the %s role",
				  op->u.retry.job_id, op->u.retry.submitter, q->who.name, auth_role_name(q->who.role));
		goto out;
	}
	if (op->rc == 0 && op->u.retry.found && op->u.retry.cancelling) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
				  "job %" PRIu64 " is still being cancelled (its queued tasks, a slice at a time): "
				  "nothing was retried; try again once \"hfctl status %" PRIu64 "\" says cancelled",
				  op->u.retry.job_id, op->u.retry.job_id);
		goto out;
	}
	if (op->rc < 0 || !op->u.retry.found) {
		if (op->rc < 0)
			coord_reply_error(q->req, coord_db_error_code(op->rc), "nothing was retried: %s",
					  op->err);
		else
			coord_reply_error(q->req, HF__ERROR_CODE__ERR_NOT_FOUND, "no job %" PRIu64,
					  op->u.retry.job_id);
		goto out;
	}
	submit_feed_flush(c, op->u.retry.job_id);
	if (op->u.retry.n_tasks) {
		struct sched_job *job = sched_job_find(c->sched, op->u.retry.job_id);
		if (!job) {
			job = sched_job_add(c->sched, op->u.retry.job_id, op->u.retry.priority);
			struct match_req *req = NULL;
			if (job && op->u.retry.requirements &&
			    match_req_from_json(op->u.retry.requirements, &req) == 0) {
				job->data = req;
				job->data_free = (void (*)(void *))match_req_free;
			}
			if (job) {
				job->max_running = op->u.retry.max_running;
				job->max_retries = op->u.retry.max_retries;
				job->submitter = sched_name_hash(op->u.retry.submitter);
				job->flaky_reruns = op->u.retry.flaky_reruns;
			}
		}
		coord_load_tasks(c, op->u.retry.tasks, op->u.retry.n_tasks, &queued, &leased);
	}
	log_info("job %" PRIu64 ": %zu %s tasks queued again", op->u.retry.job_id, op->u.retry.n_tasks,
		 op->u.retry.cancelled ? "failed or cancelled" : "failed");
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__RetryReply rr = HF__RETRY_REPLY__INIT;
	rr.requeued = (uint32_t)op->u.retry.n_tasks;
	env.body_case = HF__ENVELOPE__BODY_RETRY_REPLY;
	env.retry_reply = &rr;
	coord_reply(q->req, &env);
out:
	free(op->u.retry.tasks);
	free(op->u.retry.requirements);
	control_req_free(q);
}

/* Retry, with --cancelled also the cancelled tasks: except those whose
 * cancelled attempt a worker is still stopping (SCHED_CANCELLING: the
 * task is still in memory and cannot be queued twice). */
static void handle_retry(struct control_req *q)
{
	struct coord *c = q->c;
	const Hf__RetryRequest *r = q->env->retry;

	if (r->cancelled) {
		submit_feed_flush(c, r->job_id);
		struct sched_job *job = sched_job_find(c->sched, r->job_id);
		size_t live = job ? job->live : 0;
		struct sched_task **v = calloc(live + 1, sizeof(*v));
		struct hf_buf ids;
		hf_buf_init(&ids);
		hf_buf_puts(&ids, "{");
		size_t n = v ? sched_collect_job(c->sched, r->job_id, v, live) : 0, k = 0;
		for (size_t i = 0; i < n; i++)
			if (v[i]->state == SCHED_CANCELLING)
				hf_buf_printf(&ids, "%s%" PRIu64, k++ ? "," : "", v[i]->id);
		hf_buf_puts(&ids, "}");
		bool oom = !v || ids.oom || !ids.data;
		free(v);
		if (oom) {
			hf_buf_fini(&ids);
			coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
			control_req_free(q);
			return;
		}
		q->stopping = ids.data; /* taken */
	}
	q->op.kind = DB_OP_JOB_RETRY;
	q->op.u.retry.job_id = r->job_id;
	q->op.u.retry.owner = owner_unless_admin(q);
	q->op.u.retry.cancelled = r->cancelled;
	q->op.u.retry.stopping = q->stopping;
	q->op.u.retry.live_before = sched_count(c->sched);
	q->op.done = retry_done;
	q->op.ctx = q;
	audit_set(q, "retry");
	db_submit(c->db, &q->op);
}

/* ---- drain ---- */

static void drain_done(struct db_op *op)
{
	struct control_req *q = op->ctx;
	struct coord *c = q->c;
	const struct db_drain *d = &op->u.drain.d;

	if (op->rc < 0) {
		coord_reply_error(q->req, coord_db_error_code(op->rc), "not recorded: %s", op->err);
		control_req_free(q);
		return;
	}
	struct db_drain kept = *d;
	hf_strlcpy(kept.by, q->who.name, sizeof(kept.by));
	kept.since = hf_wall_s();
	coord_drain_set(c, &kept, op->u.drain.undrain);
	if (op->u.drain.undrain) {
		size_t before = health_count_quarantined(&c->health);
		health_clear(&c->health, d->worker_id, d->backend, d->index);
		if (health_count_quarantined(&c->health) < before)
			log_info("an operator returned %zu quarantined devices of worker \"%s\" to service",
				 before - health_count_quarantined(&c->health), d->worker_id);
	}
	log_info("%s %s%s%s:%d", op->u.drain.undrain ? "undrained" : "drained", d->worker_id,
		 d->backend >= 0 ? "/" : "", d->backend >= 0 ? hf_backend_name((Hf__Backend)d->backend) : "",
		 d->index);
	uint32_t n = 0;
	struct coord_worker *w = coord_worker_find(c, d->worker_id);
	for (size_t i = 0; w && i < w->reg->n_devices; i++) {
		const Hf__Device *dev = w->reg->devices[i];
		n += d->backend < 0 || ((int)dev->backend == d->backend && (int)dev->index == d->index);
	}
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__DrainReply dr = HF__DRAIN_REPLY__INIT;
	dr.devices = n;
	env.body_case = HF__ENVELOPE__BODY_DRAIN_REPLY;
	env.drain_reply = &dr;
	coord_reply(q->req, &env);
	control_req_free(q);
}

static void handle_drain(struct control_req *q)
{
	const Hf__DrainRequest *r = q->env->drain;
	struct coord_worker *w = coord_worker_find(q->c, r->worker_id);

	if (!r->worker_id[0] || strlen(r->worker_id) >= sizeof(q->op.u.drain.d.worker_id)) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_BAD_REQUEST, "a worker id is required");
		control_req_free(q);
		return;
	}
	if (!w && !r->undrain) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_NOT_FOUND, "no worker \"%s\" is registered",
				  r->worker_id);
		control_req_free(q);
		return;
	}
	if (r->one_device && r->index > 0x7fffffffu) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_BAD_REQUEST, "device index %u is out of range", r->index);
		control_req_free(q);
		return;
	}
	if (r->one_device && w) {
		bool found = false;
		for (size_t i = 0; i < w->reg->n_devices; i++) {
			const Hf__Device *d = w->reg->devices[i];
			found |= d->backend == r->backend && d->index == r->index;
		}
		if (!found) {
			coord_reply_error(q->req, HF__ERROR_CODE__ERR_NOT_FOUND, "worker \"%s\" has no device %s:%u",
					  r->worker_id, hf_backend_name(r->backend), r->index);
			control_req_free(q);
			return;
		}
	}
	hf_strlcpy(q->op.u.drain.d.worker_id, r->worker_id, sizeof(q->op.u.drain.d.worker_id));
	q->op.u.drain.d.backend = r->one_device ? (int)r->backend : -1;
	q->op.u.drain.d.index = r->one_device ? (int)r->index : -1;
	q->op.u.drain.undrain = r->undrain;
	q->op.kind = DB_OP_DRAIN;
	q->op.done = drain_done;
	q->op.ctx = q;
	audit_set(q, r->undrain ? "undrain" : "drain");
	db_submit(q->c->db, &q->op);
}

/* ---- answered from memory ---- */

static void handle_models(struct control_req *q)
{
	struct coord *c = q->c;
	const char *family = q->env->models->family;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ModelsReply mr = HF__MODELS_REPLY__INIT;
	Hf__ModelInfo *mem = calloc(c->reg->n, sizeof(*mem));
	Hf__ModelInfo **ptrs = calloc(c->reg->n, sizeof(*ptrs));
	Hf__ModelLimit *lims = calloc(c->reg->n_limits ? c->reg->n_limits : 1, sizeof(*lims));
	Hf__ModelLimit **lim_ptrs = calloc(c->reg->n_limits ? c->reg->n_limits : 1, sizeof(*lim_ptrs));
	/* Each model's named suites: pointers to the registry's names. */
	char **suites = calloc(c->reg->n * c->reg->n_suites + 1, sizeof(*suites));
	size_t n = 0, n_lim = 0, n_suite = 0;

	if (family[0] && !hf_family_valid(family)) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_UNKNOWN_MODEL,
				  "unknown family \"%s\" (valid: %s)", family, hf_family_names());
		goto out;
	}
	if (!mem || !ptrs || !lims || !lim_ptrs || !suites) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c->reg->n; i++) {
		const struct reg_model *m = &c->reg->models[i];
		if (family[0] && strcmp(family, m->family) != 0)
			continue;
		hf__model_info__init(&mem[n]);
		mem[n].model_type = m->model_type;
		mem[n].hf_id = m->hf_id;
		mem[n].family = m->family;
		mem[n].task = m->task;
		mem[n].modality = m->modality;
		mem[n].size_class = m->size_class;
		mem[n].notes = m->notes;
		mem[n].n_limits = m->n_limits;
		mem[n].limits = lim_ptrs + n_lim;
		for (size_t j = 0; j < m->n_limits; j++, n_lim++) {
			hf__model_limit__init(&lims[n_lim]);
			lims[n_lim].backend = m->limits[j].backend;
			lims[n_lim].kind = m->limits[j].kind;
			lims[n_lim].reason = (char *)m->limits[j].reason;
			lim_ptrs[n_lim] = &lims[n_lim];
		}
		mem[n].suites = suites + n_suite;
		for (size_t j = 0; j < c->reg->n_suites; j++)
			if (registry_in_suite(m, c->reg->suites[j]))
				suites[n_suite + mem[n].n_suites++] = c->reg->suites[j];
		n_suite += mem[n].n_suites;
		ptrs[n] = &mem[n];
		n++;
	}
	mr.models = ptrs;
	mr.n_models = n;
	mr.transformers_version = c->reg->transformers_version;
	mr.suites = c->reg->suites;
	mr.n_suites = c->reg->n_suites;
	env.body_case = HF__ENVELOPE__BODY_MODELS_REPLY;
	env.models_reply = &mr;
	coord_reply(q->req, &env);
out:
	free(mem);
	free(ptrs);
	free(lims);
	free(lim_ptrs);
	free(suites);
	control_req_free(q);
}

void control_api_request_cb(nuv_request_t *req, nng_msg *msg, void *arg)
{
	struct coord *c = arg;
	struct control_req *q;
	Hf__Envelope *env;

	struct coord_principal who;

	env = coord_request_unpack(req, msg, HF_MSG_CONTROL_REQUEST);
	if (!env)
		return;
	if (!coord_auth_check(c, req, env, false, &who)) {
		hf_env_free(env);
		return;
	}
	if (control_auth_body(env->body_case)) {
		control_auth_handle(c, req, env, &who);
		return;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		hf_env_free(env);
		coord_reply_error(req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return;
	}
	q->c = c;
	q->req = req;
	q->env = env;
	q->who = who;
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_SUBMIT:
		handle_submit(q);
		break;
	case HF__ENVELOPE__BODY_JOB_STATUS:
		submit_read(q, DB_OP_JOB_STATUS, env->job_status->job_id, 0);
		break;
	case HF__ENVELOPE__BODY_JOB_LIST:
		submit_read(q, DB_OP_JOB_LIST, 0, env->job_list->limit);
		break;
	case HF__ENVELOPE__BODY_RESULTS_REQUEST:
		submit_read(q, DB_OP_RESULTS, env->results_request->job_id, 0);
		break;
	case HF__ENVELOPE__BODY_LOGS:
		submit_read(q, DB_OP_LOGS, 0, 0);
		break;
	case HF__ENVELOPE__BODY_COMPARE:
		submit_read(q, DB_OP_COMPARE, 0, 0);
		break;
	case HF__ENVELOPE__BODY_HISTORY:
		submit_read(q, DB_OP_HISTORY, 0, 0);
		break;
	case HF__ENVELOPE__BODY_REPORT:
		submit_read(q, DB_OP_REPORT, 0, 0);
		break;
	case HF__ENVELOPE__BODY_CANCEL:
		q->op.kind = DB_OP_JOB_CANCEL;
		q->op.u.cancel.job_id = env->cancel->job_id;
		q->op.u.cancel.task_id = env->cancel->task_id;
		q->op.u.cancel.owner = owner_unless_admin(q);
		q->op.u.cancel.slice = (uint32_t)c->conf.cancel_slice;
		q->op.done = cancel_done;
		q->op.ctx = q;
		audit_set(q, "cancel");
		db_submit(c->db, &q->op);
		break;
	case HF__ENVELOPE__BODY_WORKERS:
		handle_workers(q);
		break;
	case HF__ENVELOPE__BODY_MODELS:
		handle_models(q);
		break;
	case HF__ENVELOPE__BODY_DEVICES:
		handle_devices(q);
		break;
	case HF__ENVELOPE__BODY_RETRY:
		handle_retry(q);
		break;
	case HF__ENVELOPE__BODY_DRAIN:
		handle_drain(q);
		break;
	case HF__ENVELOPE__BODY_EXPLAIN:
		handle_explain(q);
		break;
	default:
		coord_reply_error(req, HF__ERROR_CODE__ERR_BAD_REQUEST,
				  "message type %d is not a control request", (int)env->body_case);
		control_req_free(q);
		break;
	}
}
