/* SPDX-License-Identifier: MIT
 *
 * The session's results not yet acknowledged by the coordinator (see
 * session.h): the pending list and its spool files, the ResultBatch calls
 * that report them, the Acks that remove them, and the setting aside of a
 * result the coordinator refuses as invalid.  Runs on the loop thread
 * only; the reply callback is deferred there by hf_nuv.h.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_proto.h"
#include "result.h"
#include "session-internal.h"
#include "spool.h"
#include "worker-metrics.h"

/* ---- pending results ---- */

static struct pending *pending_find(struct session *s, uint64_t task_id, uint32_t attempt)
{
	for (struct pending *p = s->pending; p; p = p->next)
		if (p->result->task_id == task_id && p->result->attempt == attempt)
			return p;
	return NULL;
}

/* Writes every pending result not yet in the spool, together: one file,
 * one fsync (spool.h).  A failure is logged and leaves them unspooled, to
 * be written again at the next flush or heartbeat (and sent meanwhile, as
 * a full disk must not stop the worker from reporting). */
static void pending_spool_all(struct session *s)
{
	Hf__TaskResult *batch[SPOOL_BATCH_RESULTS];
	bool quiet = true;
	size_t n = 0;
	int r;

	for (struct pending *p = s->pending; p; p = p->next) {
		if (p->spooled)
			continue;
		quiet = quiet && p->spool_failed;
		batch[n++] = p->result;
		if (n == SPOOL_BATCH_RESULTS)
			break;
	}
	if (n == 0)
		return;
	r = spool_write_batch(s->spool, batch, n);
	if (r < 0) {
		hf_log(quiet ? HF_LOG_DEBUG : HF_LOG_ERROR,
		       "could not write %zu results (task %" PRIu64 " attempt %" PRIu32
		       " first) to the spool: %s; keeping them in memory and trying again",
		       n, batch[0]->task_id, batch[0]->attempt, strerror(-r));
		for (struct pending *p = s->pending; p; p = p->next)
			if (!p->spooled)
				p->spool_failed = true;
		return;
	}
	size_t done = 0;
	for (struct pending *p = s->pending; p && done < n; p = p->next) {
		if (p->spooled)
			continue;
		if (p->spool_failed)
			log_info("result of task %" PRIu64 " attempt %" PRIu32 " is now in the spool",
				 p->result->task_id, p->result->attempt);
		p->spooled = true;
		p->spool_failed = false;
		done++;
	}
	if (done < n)
		log_error("spool batch bookkeeping lost %zu results", n - done);
	/* More than one batch's worth: the rest in the next file. */
	for (struct pending *p = s->pending; p; p = p->next)
		if (!p->spooled) {
			pending_spool_all(s);
			break;
		}
}

void pending_spool(struct session *s, struct pending *p)
{
	if (!p->spooled)
		pending_spool_all(s);
}

/* Takes result.  A result for an attempt already pending replaces it. */
void pending_add(struct session *s, Hf__TaskResult *result, bool spooled)
{
	struct pending *p = pending_find(s, result->task_id, result->attempt);

	if (p) {
		/* The spool keeps one copy of an attempt: the new one is
		 * written with the next batch. */
		if (p->spooled && spool_remove(s->spool, result->task_id, result->attempt) < 0)
			log_warn("could not remove the replaced result of task %" PRIu64
				 " attempt %" PRIu32 " from the spool, ignoring",
				 result->task_id, result->attempt);
		result_free(p->result);
		p->result = result;
		p->spooled = false;
	} else {
		p = calloc(1, sizeof(*p));
		if (!p) {
			log_error("could not keep the result of task %" PRIu64 " attempt %" PRIu32
				  ": out of memory; its lease will expire",
				  result->task_id, result->attempt);
			result_free(result);
			return;
		}
		p->result = result;
		*s->pending_tail = p;
		s->pending_tail = &p->next;
		s->n_pending++;
	}
	/* Not spooled yet: results_flush writes every result that came
	 * meanwhile with one fsync before it sends them. */
	p->spooled = spooled;
}

/* Takes a result off the pending list (the caller deals with its spool
 * file); false when it is not there. */
static bool pending_unlink(struct session *s, uint64_t task_id, uint32_t attempt)
{
	struct pending **pp, *p;

	for (pp = &s->pending; (p = *pp); pp = &p->next)
		if (p->result->task_id == task_id && p->result->attempt == attempt)
			break;
	if (!p)
		return false;
	*pp = p->next;
	if (s->pending_tail == &p->next)
		s->pending_tail = pp;
	s->n_pending--;
	result_free(p->result);
	free(p);
	return true;
}

/* A result that will not be sent: its spool file was set aside. */
static void pending_forget(struct session *s, uint64_t task_id, uint32_t attempt)
{
	if (!pending_unlink(s, task_id, attempt))
		return;
	if (s->state == SESSION_FLUSHING && s->n_pending == 0) {
		log_info("all results reported or set aside");
		session_end(s, 0);
	}
}

static void pending_remove(struct session *s, uint64_t task_id, uint32_t attempt)
{
	int r;

	if (!pending_unlink(s, task_id, attempt))
		return;
	r = spool_remove(s->spool, task_id, attempt);
	if (r < 0)
		log_warn("could not remove the result of task %" PRIu64 " attempt %" PRIu32
			 " from the spool: %s; it will be sent again at the next start",
			 task_id, attempt, strerror(-r));
	log_debug("result of task %" PRIu64 " attempt %" PRIu32 " acknowledged", task_id, attempt);
}

void pending_free_all(struct session *s)
{
	/* Stopping: what is only in memory goes to the spool for the next
	 * start (a batch was in flight when it came). */
	if (s->spool)
		pending_spool_all(s);
	while (s->pending) {
		struct pending *p = s->pending;
		s->pending = p->next;
		result_free(p->result);
		free(p);
	}
	s->pending_tail = &s->pending;
	s->n_pending = 0;
}

/* ---- results ---- */

/* The coordinator refused batch c as invalid: sending it again cannot
 * help.  A batch of several is sent again one result at a time; a result
 * refused alone is set aside in the spool (as .bad, for a person to look
 * at) so that it cannot hold back the others.  Its task's lease then runs
 * out and the coordinator decides what follows. */
static void results_refused(struct session *s, const struct results_call *c, const char *why)
{
	if (c->n > 1) {
		log_warn("coordinator %s refused a batch of %zu results: %s; sending them one by one "
			 "to find the one it refuses",
			 s->cfg.url, c->n, why);
		s->results_isolate = true;
		results_flush(s);
		return;
	}
	struct pending *p = pending_find(s, c->first_task, c->first_attempt);
	int r = p ? spool_set_aside(s->spool, p->result) : 0;
	log_error("coordinator %s refused the result of task %" PRIu64 " attempt %" PRIu32
		  " as invalid: %s; %s, not sent again",
		  s->cfg.url, c->first_task, c->first_attempt, why,
		  r < 0 ? "it could not be moved aside in the spool" : "it is set aside in the spool as .bad");
	if (r == 0)
		pending_forget(s, c->first_task, c->first_attempt);
	results_flush(s);
}

static void results_reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct results_call *slot = arg, c = *slot;
	struct session *s = c.s;
	Hf__Envelope *env = NULL;
	size_t before = s->n_pending;

	slot->batch = 0;
	s->results_out--;
	/* What the batch held is no longer in flight: what the coordinator
	 * did not acknowledge goes again. */
	for (struct pending *p = s->pending; p; p = p->next)
		if (p->batch == c.batch)
			p->batch = 0;
	rv = reply_unpack(rv, reply, &env);
	if (s->state == SESSION_DONE)
		goto out;
	if (rv < 0) {
		if (s->results_failures++ % WARN_EVERY == 0)
			log_warn("could not report %zu results to %s: %s; they stay in the spool and "
				 "are sent again",
				 c.n, s->cfg.url, call_error(rv));
		goto out;
	}
	s->results_failures = 0;
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_ACK:
		for (size_t i = 0; i < env->ack->n_acked; i++)
			pending_remove(s, env->ack->acked[i]->task_id, env->ack->acked[i]->attempt);
		worker_metrics_results_acked(env->ack->n_acked);
		break;
	case HF__ENVELOPE__BODY_ERROR:
		if (env->error->code == HF__ERROR_CODE__ERR_NOT_REGISTERED) {
			session_reregister(s);
			goto out;
		}
		if (env->error->code == HF__ERROR_CODE__ERR_BAD_REQUEST ||
		    env->error->code == HF__ERROR_CODE__ERR_FORBIDDEN) {
			worker_metrics_results_refused();
			results_refused(s, &c, env->error->message);
			goto out;
		}
		log_warn("coordinator %s refused results: %s; sending them again later", s->cfg.url,
			 env->error->message);
		goto out;
	default:
		log_warn("coordinator %s sent an unexpected reply to results, ignoring", s->cfg.url);
		goto out;
	}
	if (s->state == SESSION_FLUSHING && s->n_pending == 0) {
		log_info("all results reported");
		session_end(s, 0);
	} else if (s->n_pending > 0 && s->n_pending < before) {
		results_flush(s); /* progress: send the next batch now */
	}
out:
	/* Results that came while the batches were in flight wait for a reply
	 * (results_flush); they are made durable now whatever it was. */
	if (s->state != SESSION_DONE)
		pending_spool_all(s);
	hf_env_free(env);
}

/* Sends one ResultBatch of the pending results not in flight, in a free
 * entry of s->results_calls; false when there was nothing to send or it
 * could not be sent. */
static bool results_send(struct session *s)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultBatch batch = HF__RESULT_BATCH__INIT;
	Hf__TaskResult *list[SESSION_BATCH_MAX];
	struct pending *sent[SESSION_BATCH_MAX];
	struct results_call *c = NULL;
	size_t n = 0, bytes = 0;
	int r;

	for (size_t i = 0; i < SESSION_RESULTS_IN_FLIGHT && !c; i++)
		if (!s->results_calls[i].batch)
			c = &s->results_calls[i];
	if (!c)
		return false;
	size_t most = s->results_isolate ? 1 : SESSION_BATCH_MAX;
	for (struct pending *p = s->pending; p && n < most; p = p->next) {
		if (p->batch)
			continue;
		size_t size = hf__task_result__get_packed_size(p->result);
		if (n > 0 && bytes + size > SESSION_BATCH_BYTES)
			break;
		sent[n] = p;
		list[n++] = p->result;
		bytes += size;
	}
	if (n == 0)
		return false;
	batch.worker_id = (char *)s->cfg.worker_id;
	batch.session = s->reg_session;
	batch.n_results = n;
	batch.results = list;
	env.body_case = HF__ENVELOPE__BODY_RESULTS;
	env.results = &batch;
	r = session_call_arg(s, &env, results_reply_cb, c);
	if (r < 0) {
		log_warn("could not report results to %s: %s", s->cfg.url, strerror(-r));
		return false;
	}
	if (++s->results_batches == 0)
		s->results_batches = 1; /* 0 is "not in flight" */
	*c = (struct results_call){ .s = s, .batch = s->results_batches, .n = n,
				    .first_task = list[0]->task_id, .first_attempt = list[0]->attempt };
	for (size_t i = 0; i < n; i++)
		sent[i]->batch = c->batch;
	s->results_out++;
	log_debug("reporting %zu results (%zu bytes)", n, bytes);
	return true;
}

void results_flush(struct session *s)
{
	if (s->state != SESSION_ACTIVE && s->state != SESSION_FLUSHING) {
		pending_spool_all(s); /* nothing is sent now: durable at once */
		return;
	}
	if (!s->pending)
		s->results_isolate = false;
	/* While the batches are in flight, new results wait in memory for a
	 * reply and are then written together, one fsync for all of them,
	 * just before they are sent: a result is sent only once it is
	 * durable.  Finding the result refused, one batch at a time. */
	unsigned most = s->results_isolate ? 1 : SESSION_RESULTS_IN_FLIGHT;
	while (s->results_out < most) {
		pending_spool_all(s);
		if (!results_send(s))
			break;
	}
}
