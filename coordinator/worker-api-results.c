/* SPDX-License-Identifier: MIT
 *
 * Result reports on the worker port (worker-api.c hands them here): each
 * result checked against the task it names (leased to this worker, this
 * attempt; a benchmark's measured mode, result-mode.h), stored in one
 * database operation, and acknowledged only after PostgreSQL committed it;
 * then the scheduler and the devices' health learn the outcome.  Loop
 * thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "coordinator.h"
#include "reserve.h"
#include "worker-api-int.h"
#include "result-mode.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* Returns JSON text for a field that must hold a JSON object: the text
 * itself when it is one, "{}" when empty, else an object that keeps the
 * invalid text under "invalid_json" (so nothing is lost). */
static const char *json_object_text(struct worker_req *w, const char *text, const char *what,
				    uint64_t task_id)
{
	json_error_t jerr;
	json_t *j;

	if (!text || !*text)
		return "{}";
	j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (j && json_is_object(j)) {
		json_decref(j);
		return text;
	}
	json_decref(j);
	log_warn("task %" PRIu64 ": %s is not a JSON object (%s), keeping it as text", task_id, what,
		 j ? "not an object" : jerr.text);
	json_t *wrap = json_pack("{s:s}", "invalid_json", text);
	char *out = wrap ? json_dumps(wrap, JSON_COMPACT) : NULL;
	json_decref(wrap);
	if (!out)
		return "{}";
	char **v = realloc(w->json_owned, (w->n_json_owned + 1) * sizeof(*v));
	if (!v) {
		free(out);
		return "{}";
	}
	w->json_owned = v;
	w->json_owned[w->n_json_owned++] = out;
	return out;
}

/* A passed benchmark measured in another mode than its task asked for
 * (result-mode.h) is stored as skipped with the reason, without figures. */
static void result_mode_apply(struct worker_req *w, const struct sched_task *t, struct db_result *d)
{
	char reason[512], *metrics = NULL, *text = NULL;
	char **v;

	if (result_mode_check(d->metrics_json, t->mode ? t->mode : "eager", reason, sizeof(reason),
			      &metrics) != 1)
		return;
	log_warn("task %" PRIu64 " attempt %u: %s", d->r->task_id, d->r->attempt, reason);
	d->status = HF__TASK_STATUS__STATUS_SKIPPED;
	d->reason = "the runner measured another mode than this task asked for"; /* out of memory */
	d->metrics_json = "{}";
	v = realloc(w->json_owned, (w->n_json_owned + 2) * sizeof(*v));
	if (v)
		w->json_owned = v;
	if (v && (text = strdup(reason)))
		d->reason = w->json_owned[w->n_json_owned++] = text;
	if (v && metrics)
		d->metrics_json = w->json_owned[w->n_json_owned++] = metrics;
	else
		free(metrics);
}

/* Counts a stored result towards the health of one device of its task. */
static void device_health_count_one(struct coord *c, const char *worker_id, const Hf__TaskResult *r,
				    int backend, uint32_t index)
{
	bool infra = r->infrastructure && r->status == HF__TASK_STATUS__STATUS_ERROR && r->exit_code != -1;
	bool outcome = r->status == HF__TASK_STATUS__STATUS_PASSED ||
		       r->status == HF__TASK_STATUS__STATUS_FAILED ||
		       r->status == HF__TASK_STATUS__STATUS_SKIPPED;
	enum health_change change;

	if (health_task_ended(&c->health, worker_id, backend, index, infra, outcome, r->reason,
			      (uint32_t)c->conf.quarantine_after, &change) < 0) {
		log_warn("could not count an infrastructure failure of %s/%s:%" PRIu32 ": out of memory",
			 worker_id, hf_backend_name((Hf__Backend)backend), index);
		return;
	}
	if (change != HEALTH_QUARANTINED)
		return;
	coord_metrics_count(c, COORD_QUARANTINES, 1);
	const struct health_dev *hd = health_find(&c->health, worker_id, backend, index);
	log_warn("quarantined %s/%s:%" PRIu32 ": %s; it gets no work until a health check passes",
		 worker_id, hf_backend_name((Hf__Backend)backend), index, hd->reason);
	coord_quarantine_persist(c, worker_id, backend, index, true, hd->reason);
}

/* Counts a stored result towards its devices' health: an infrastructure
 * error of a runner that ran (not a task the worker refused or could not
 * start) counts, a verdict on the model resets the count.  A task of
 * several devices counts on each of them (t, when it is still this
 * attempt's, says which; which one failed cannot be told apart), the
 * others on the one the result names; each device's health check then
 * brings back the ones that are well. */
static void device_health_count(struct coord *c, const char *worker_id, const Hf__TaskResult *r,
				int backend, const struct sched_task *t)
{
	if (backend < 0)
		return;
	if (!t || t->attempt != r->attempt || t->n_devices < 2) {
		device_health_count_one(c, worker_id, r, backend, r->device_index);
		return;
	}
	for (uint8_t i = 0; i < t->n_devices; i++)
		device_health_count_one(c, worker_id, r, backend, t->devices[i]);
}

/* Does the scheduler know that the attempt r names is leased to another
 * worker than sender?  Only the current attempt's worker is known here;
 * earlier attempts are checked by the statement that stores the results
 * (against the attempts table), so a late result of the sender's own
 * earlier attempt still goes through. */
static bool result_leased_to_other(struct coord *c, const char *sender, const Hf__TaskResult *r)
{
	const struct sched_task *t = sched_task_find(c->sched, r->task_id);

	return t && t->attempt == r->attempt && t->worker_id[0] && strcmp(t->worker_id, sender) != 0;
}

static void results_refuse_not_held(struct worker_req *w, const Hf__TaskResult *r, bool some_stored)
{
	const Hf__ResultBatch *b = w->env->results;

	log_refusal("refused results from worker \"%s\": task %" PRIu64 " attempt %" PRIu32
		    " was not leased to it%s",
		    b->worker_id, r->task_id, r->attempt,
		    some_stored ? " (its own results of the batch are stored)" : "");
	coord_reply_error(w->req, ERR_NOT_HELD,
			  "results refused: task %" PRIu64 " attempt %" PRIu32
			  " is not leased to worker \"%s\"%s",
			  r->task_id, r->attempt, b->worker_id,
			  some_stored ? "; the others are stored: send them again for their Ack" :
					"; none stored");
}

static void results_done(struct db_op *op)
{
	struct worker_req *w = op->ctx;
	struct coord *c = w->c;
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Ack ack = HF__ACK__INIT;
	Hf__TaskRef *refs = NULL, **ptrs = NULL;
	size_t n = 0;

	if (op->rc < 0) {
		if (op->rc == -EINVAL)
			coord_reply_error(w->req, HF__ERROR_CODE__ERR_BAD_REQUEST,
					  "results refused, none stored: %s", op->err);
		else
			coord_reply_error(w->req, HF__ERROR_CODE__ERR_UNAVAILABLE,
					  "results not stored, send them again: %s", op->err);
		worker_req_free(w);
		return;
	}
	refs = calloc(op->u.result.n, sizeof(*refs));
	ptrs = calloc(op->u.result.n, sizeof(*ptrs));
	const Hf__TaskResult *not_held = NULL;
	struct coord_worker *cw = coord_worker_find(c, w->env->results->worker_id);
	for (size_t i = 0; i < op->u.result.n; i++) {
		struct db_result *d = &op->u.result.v[i];
		struct sched_task *t = sched_task_find(c->sched, d->r->task_id);
		/* Before the task may leave the scheduler: it knows its devices. */
		if (d->outcome == DB_RESULT_FINAL || d->outcome == DB_RESULT_RETRIED) {
			device_health_count(c, w->env->results->worker_id, d->r, d->backend, t);
			if (cw)
				reserve_task_ran(c, cw, d->r->finished_at - d->r->started_at);
		}
		switch (d->outcome) {
		case DB_RESULT_FINAL: {
			Hf__TaskStatus status = d->status ? d->status : d->r->status;
			const char *reason = d->reason ? d->reason : d->r->reason;
			hf_log(hf_status_log_level(status), "task %" PRIu64 " (%s) %s%s%s", d->r->task_id,
			       t ? c->reg->models[t->model].model_type : "?", hf_status_name(status),
			       reason[0] ? ": " : "", reason);
			coord_metrics_finished(c, status, 1);
			coord_metrics_observe(c, COORD_TASK_DURATION, d->r->finished_at - d->r->started_at);
			if (t)
				sched_remove(c->sched, t);
			break;
		}
		case DB_RESULT_STALE:
			log_info("task %" PRIu64 " attempt %u: late result kept as stale", d->r->task_id,
				 d->r->attempt);
			if (t && t->state == SCHED_CANCELLING && t->attempt == d->r->attempt)
				sched_remove(c->sched, t);
			break;
		case DB_RESULT_RETRIED:
			if (t && t->attempt == d->r->attempt && d->flaky) {
				t->reruns++;
				coord_metrics_count(c, COORD_RETRIES, 1);
				log_info("task %" PRIu64 " failed on attempt %u: rerun %u of %u as a possibly flaky test",
					 d->r->task_id, d->r->attempt, t->reruns, t->job->flaky_reruns);
				sched_requeue(c->sched, t);
			} else if (t && t->attempt == d->r->attempt) {
				/* Exponential backoff: 1 s, 2 s, 4 s ... at most a minute. */
				uint32_t k = d->r->attempt > 6 ? 6 : d->r->attempt - 1;
				int64_t delay = 1000LL << k;
				t->avoid_worker = sched_name_hash(w->env->results->worker_id);
				t->avoid_device = d->r->device_index;
				sched_delay(c->sched, t, hf_mono_ms() + delay);
				coord_metrics_count(c, COORD_RETRIES, 1);
				log_warn("task %" PRIu64 " attempt %u failed in the infrastructure (%s): retrying in %" PRId64
					 " ms, preferring another device",
					 d->r->task_id, d->r->attempt, d->r->reason, delay);
			}
			break;
		case DB_RESULT_DUPLICATE:
			break;
		case DB_RESULT_NOT_OWNED:
			if (!not_held)
				not_held = d->r;
			continue; /* never acknowledged */
		case DB_RESULT_UNKNOWN:
			log_warn("worker \"%s\" reported a result for unknown task %" PRIu64 ", ignoring",
				 w->env->results->worker_id, d->r->task_id);
			break;
		}
		if (refs && ptrs) {
			hf__task_ref__init(&refs[n]);
			refs[n].task_id = d->r->task_id;
			refs[n].attempt = d->r->attempt;
			ptrs[n] = &refs[n];
			n++;
		}
	}
	for (size_t i = 0; i < op->u.result.n_finished_jobs; i++)
		log_info("job %" PRIu64 " done", op->u.result.finished_jobs[i]);
	/* Short tasks may start its reservations (reserve.c). */
	if (cw)
		reserve_maybe(c, cw);
	free(op->u.result.finished_jobs);
	if (not_held) {
		/* The whole batch is answered with the refusal: an honest worker
		 * sends it again one result at a time, its stored results are
		 * acknowledged as duplicates and the refused one set aside. */
		results_refuse_not_held(w, not_held, n > 0);
		free(refs);
		free(ptrs);
		worker_req_free(w);
		return;
	}

	ack.acked = ptrs;
	ack.n_acked = n;
	env.body_case = HF__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	coord_reply(w->req, &env);
	free(refs);
	free(ptrs);
	worker_req_free(w);
}

void handle_results(struct worker_req *w)
{
	const Hf__ResultBatch *b = w->env->results;
	struct db_result *v;

	if (!coord_worker_of_session(w->c, b->worker_id, b->session)) {
		not_registered(w, b->worker_id);
		return;
	}
	for (size_t i = 0; i < b->n_results; i++) {
		if (result_leased_to_other(w->c, b->worker_id, b->results[i])) {
			results_refuse_not_held(w, b->results[i], false);
			worker_req_free(w);
			return;
		}
	}
	coord_metrics_count(w->c, COORD_RESULTS_RECEIVED, b->n_results);
	if (b->n_results == 0) {
		Hf__Envelope env = HF__ENVELOPE__INIT;
		Hf__Ack ack = HF__ACK__INIT;
		env.body_case = HF__ENVELOPE__BODY_ACK;
		env.ack = &ack;
		coord_reply(w->req, &env);
		worker_req_free(w);
		return;
	}
	v = calloc(b->n_results, sizeof(*v));
	if (!v) {
		coord_reply_error(w->req, HF__ERROR_CODE__ERR_UNAVAILABLE, "out of memory");
		worker_req_free(w);
		return;
	}
	for (size_t i = 0; i < b->n_results; i++) {
		/* Validation refused a batch with a status that is not final. */
		const Hf__TaskResult *r = b->results[i];
		v[i].r = r;
		v[i].worker_id = b->worker_id;
		/* An infrastructure failure of the current attempt is retried while
		 * the job's budget lasts; the database confirms it was current. */
		struct sched_task *t = sched_task_find(w->c->sched, r->task_id);
		bool current = t && t->state == SCHED_LEASED && t->attempt == r->attempt;
		v[i].backend = t ? (int)t->backend : -1;
		v[i].retry = current && r->infrastructure && r->status == HF__TASK_STATUS__STATUS_ERROR &&
			     sched_attempts_run(t) <= t->job->max_retries;
		/* A failed test is an outcome, unless the job allows flaky reruns. */
		v[i].flaky = current && r->status == HF__TASK_STATUS__STATUS_FAILED &&
			     t->reruns < t->job->flaky_reruns;
		v[i].retry |= v[i].flaky;
		v[i].metrics_json = json_object_text(w, r->metrics_json, "metrics", r->task_id);
		v[i].env_json = json_object_text(w, r->env_json, "environment", r->task_id);
		if (t && t->kind == HF__TASK_KIND__KIND_BENCHMARK && r->status == HF__TASK_STATUS__STATUS_PASSED)
			result_mode_apply(w, t, &v[i]);
	}
	w->op.kind = DB_OP_RESULT_STORE;
	w->op.u.result.v = v;
	w->op.u.result.n = b->n_results;
	w->op.done = results_done;
	w->op.ctx = w;
	db_submit(w->c->db, &w->op);
}

/* ---- health reports ---- */
