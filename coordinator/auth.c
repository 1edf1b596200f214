/* SPDX-License-Identifier: MIT
 *
 * The check of every request's token and role (see auth.h), and the
 * batched writing of when tokens were last used: a token's use is queued
 * for the database at most once a minute, and at most one such write is
 * in flight, carrying every token used meanwhile.  Loop thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_util.h"

#define TOUCH_INTERVAL_MS 60000

/* One line per refusal, at most one a second: a peer trying tokens in a
 * loop must not flood the log. */
static void log_refusal(const char *why)
{
	static int64_t last_ms;
	static unsigned long suppressed;
	int64_t now = hf_mono_ms();

	if (last_ms && now - last_ms < 1000) {
		suppressed++;
		return;
	}
	if (suppressed)
		log_warn("refused a request: %s (and %lu more refusals in the last second)", why, suppressed);
	else
		log_warn("refused a request: %s", why);
	last_ms = now;
	suppressed = 0;
}

static void refuse(nuv_request_t *req, Hf__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void refuse(nuv_request_t *req, Hf__ErrorCode code, const char *fmt, ...)
{
	char text[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_refusal(text);
	coord_reply_error(req, code, "%s", text);
}

/* ---- last use ---- */

struct touch_op {
	struct coord *c;
	struct db_op op;
	char (*ids)[AUTH_ID_LEN + 1];
	const char **id_ptrs;
	double *used_at;
};

static void touch_flush(struct coord *c);

static void touch_op_free(struct touch_op *t)
{
	if (!t)
		return;
	free(t->ids);
	free(t->id_ptrs);
	free(t->used_at);
	free(t);
}

static void touch_done(struct db_op *op)
{
	struct touch_op *t = op->ctx;
	struct coord *c = t->c;

	if (op->rc < 0)
		log_warn("could not record when %zu tokens were last used: %s, ignoring", op->u.touch.n, op->err);
	touch_op_free(t);
	c->touch_busy = false;
	if (!c->stopping && c->db)
		touch_flush(c);
}

/* Sends every use not yet written, unless a write is in flight (its done
 * sends what came meanwhile).  The tokens used are found from the list of
 * their ids (a lookup each), not by a walk of every live token: with
 * 10,000 workers a token's minute comes up about 170 times a second. */
static void touch_flush(struct coord *c)
{
	size_t n = c->touch_n;

	if (c->touch_busy || !c->db || n == 0)
		return;
	struct touch_op *t = calloc(1, sizeof(*t));
	if (t) {
		t->ids = calloc(n, sizeof(*t->ids));
		t->id_ptrs = calloc(n, sizeof(*t->id_ptrs));
		t->used_at = calloc(n, sizeof(*t->used_at));
	}
	if (!t || !t->ids || !t->id_ptrs || !t->used_at) {
		touch_op_free(t);
		log_warn("out of memory recording when tokens were last used, ignoring");
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		/* Gone (revoked) since, or replaced and listed again later. */
		struct auth_token *tok = auth_store_find(&c->tokens, c->touch_ids[i]);
		if (!tok || !tok->touch_queued)
			continue;
		tok->touch_queued = false;
		if (!tok->used_at)
			continue;
		memcpy(t->ids[k], tok->id, sizeof(t->ids[k]));
		t->id_ptrs[k] = t->ids[k];
		t->used_at[k] = tok->used_at;
		tok->used_at = 0;
		k++;
	}
	c->touch_n = 0;
	if (k == 0) {
		touch_op_free(t);
		return;
	}
	t->c = c;
	t->op.kind = DB_OP_TOKEN_TOUCH;
	t->op.u.touch.ids = t->id_ptrs;
	t->op.u.touch.used_at = t->used_at;
	t->op.u.touch.n = k;
	t->op.done = touch_done;
	t->op.ctx = t;
	c->touch_busy = true;
	db_submit(c->db, &t->op);
}

/* Puts tok on the list of uses to write, once.  The list holds at most
 * one entry per live token (and the ids of tokens revoked since the last
 * write), so at most AUTH_TOKENS_MAX; a use that finds no memory is
 * written with the token's next one. */
static void touch_queue(struct coord *c, struct auth_token *tok)
{
	if (tok->touch_queued)
		return;
	if (c->touch_n == c->touch_cap) {
		size_t cap = c->touch_cap ? 2 * c->touch_cap : 64;
		if (c->touch_n >= AUTH_TOKENS_MAX)
			return;
		void *ids = realloc(c->touch_ids, cap * sizeof(*c->touch_ids));
		if (!ids)
			return;
		c->touch_ids = ids;
		c->touch_cap = cap;
	}
	memcpy(c->touch_ids[c->touch_n++], tok->id, sizeof(c->touch_ids[0]));
	tok->touch_queued = true;
}

static void token_used(struct coord *c, struct auth_token *tok)
{
	int64_t now = hf_mono_ms();

	if (tok->touched_ms && now - tok->touched_ms < TOUCH_INTERVAL_MS)
		return;
	tok->touched_ms = now;
	tok->used_at = hf_wall_s();
	touch_queue(c, tok);
	touch_flush(c);
}

/* ---- the check ---- */

static const char *request_what(Hf__Envelope__BodyCase b)
{
	switch (b) {
	case HF__ENVELOPE__BODY_SUBMIT:
		return "submit";
	case HF__ENVELOPE__BODY_CANCEL:
		return "cancel";
	case HF__ENVELOPE__BODY_RETRY:
		return "retry";
	case HF__ENVELOPE__BODY_DRAIN:
		return "drain";
	case HF__ENVELOPE__BODY_TOKEN_CREATE:
		return "token create";
	case HF__ENVELOPE__BODY_TOKEN_LIST:
		return "token list";
	case HF__ENVELOPE__BODY_TOKEN_REVOKE:
		return "token revoke";
	case HF__ENVELOPE__BODY_AUDIT:
		return "audit";
	default:
		return "this request";
	}
}

/* The worker id a worker request names. */
static const char *worker_request_id(const Hf__Envelope *env)
{
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_REGISTER:
		return env->register_->worker_id;
	case HF__ENVELOPE__BODY_POLL:
		return env->poll->worker_id;
	case HF__ENVELOPE__BODY_RESULTS:
		return env->results->worker_id;
	case HF__ENVELOPE__BODY_HEALTH_REPORT:
		return env->health_report->worker_id;
	default:
		return "";
	}
}

bool coord_auth_check(struct coord *c, nuv_request_t *req, const Hf__Envelope *env, bool worker_port,
		      struct coord_principal *ret)
{
	const char *token = env->token ? env->token : "";
	const char *port = worker_port ? "worker" : "control";
	char id[AUTH_ID_LEN + 1];
	struct auth_token *tok;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!token[0]) {
		if (!c->conf.auth_required) {
			hf_strlcpy(ret->name, "anonymous", sizeof(ret->name));
			ret->role = AUTH_ADMIN;
			return true;
		}
		refuse(req, HF__ERROR_CODE__ERR_UNAUTHENTICATED,
		       worker_port ? "no token: this coordinator requires a worker token (an admin makes one with "
				     "\"hfctl token create WORKER_ID --role worker\"; the worker reads it from "
				     "worker.token_file)" :
				     "no token: this coordinator requires one (an admin makes one with \"hfctl token "
				     "create NAME --role ROLE\")");
		return false;
	}
	/* A worker presents the same token with every poll: the table
	 * compares it with the secret that matched last, and hashes only a
	 * new one.  Revoked is removed from the table: refused at once. */
	r = auth_store_verify(&c->tokens, token, id, &tok);
	if (r == -EINVAL) {
		refuse(req, HF__ERROR_CODE__ERR_UNAUTHENTICATED,
		       "malformed token on the %s port (expected hft_<12 hex digits>_<43 characters>)", port);
		return false;
	}
	if (r < 0) {
		refuse(req, HF__ERROR_CODE__ERR_UNAUTHENTICATED, "token %s is unknown or revoked", id);
		return false;
	}
	hf_strlcpy(ret->name, tok->name, sizeof(ret->name));
	ret->role = tok->role;
	memcpy(ret->token_id, tok->id, sizeof(ret->token_id));
	token_used(c, tok);

	if (worker_port) {
		const char *wid = worker_request_id(env);
		if (tok->role != AUTH_WORKER) {
			refuse(req, HF__ERROR_CODE__ERR_FORBIDDEN,
			       "the worker port needs the worker role; token %s (\"%s\") has the %s role", id,
			       tok->name, auth_role_name(tok->role));
			return false;
		}
		if (strcmp(wid, tok->name) != 0) {
			refuse(req, HF__ERROR_CODE__ERR_FORBIDDEN,
			       "token %s is the worker token of \"%s\": it may not act as worker \"%s\"", id,
			       tok->name, wid);
			return false;
		}
		return true;
	}
	if (tok->role == AUTH_WORKER) {
		refuse(req, HF__ERROR_CODE__ERR_FORBIDDEN,
		       "the control port does not take worker tokens (token %s, worker \"%s\"): it needs the "
		       "viewer, submitter or admin role",
		       id, tok->name);
		return false;
	}
	enum auth_role needed = auth_control_role_needed(env->body_case);
	if (!auth_role_allows(tok->role, needed)) {
		refuse(req, HF__ERROR_CODE__ERR_FORBIDDEN, "%s needs the %s role; token \"%s\" has the %s role",
		       request_what(env->body_case), auth_role_name(needed), tok->name, auth_role_name(tok->role));
		return false;
	}
	return true;
}

void coord_auth_load(struct coord *c, const struct db_token *tokens, size_t n)
{
	size_t loaded = 0;

	for (size_t i = 0; i < n; i++) {
		struct auth_token t = { 0 };
		if (auth_role_parse(tokens[i].role, &t.role) < 0 || strlen(tokens[i].id) != AUTH_ID_LEN) {
			log_warn("token \"%s\" has an unknown role \"%s\", ignoring it", tokens[i].id, tokens[i].role);
			continue;
		}
		memcpy(t.id, tokens[i].id, sizeof(t.id));
		hf_strlcpy(t.name, tokens[i].name, sizeof(t.name));
		memcpy(t.hash, tokens[i].hash, AUTH_HASH_LEN);
		int r = auth_store_add(&c->tokens, &t);
		if (r < 0) {
			log_error("could not load token %s: %s", t.id, strerror(-r));
			continue;
		}
		loaded++;
	}
	log_info("%zu tokens loaded", loaded);
	if (!c->conf.auth_required)
		log_warn("auth.required is off: requests without a token act as admin; use this only where "
			 "nothing but this host can reach the coordinator's ports");
	else if (loaded == 0)
		log_warn("no tokens exist yet: nothing can use this coordinator until an operator makes one with "
			 "\"hf-coordinator --create-token NAME --role admin\"");
}

void coord_auth_fini(struct coord *c)
{
	auth_store_fini(&c->tokens);
	free(c->touch_ids);
	c->touch_ids = NULL;
	c->touch_n = c->touch_cap = 0;
}
