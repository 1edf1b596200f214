/* SPDX-License-Identifier: MIT
 *
 * The control requests about identity (see auth.h): token create (the
 * secret made here, its hash stored, the token shown once in the reply),
 * token list, token revoke (gone from memory as soon as the database has
 * it, so a revoked token stops working at once), the audit and whoami.
 * Token create and revoke write their audit row in their own transaction.
 * Loop thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

struct auth_req {
	struct coord *c;
	nuv_request_t *req;
	Hf__Envelope *env;
	struct coord_principal who;
	struct db_op op;
	struct db_token token;
	char secret[AUTH_TOKEN_LEN + 1]; /* the whole token, wiped after the reply */
};

static void auth_req_free(struct auth_req *q)
{
	if (!q)
		return;
	hf_env_free(q->env);
	memset(q->secret, 0, sizeof(q->secret));
	free(q);
}

bool control_auth_body(Hf__Envelope__BodyCase body)
{
	switch (body) {
	case HF__ENVELOPE__BODY_TOKEN_CREATE:
	case HF__ENVELOPE__BODY_TOKEN_LIST:
	case HF__ENVELOPE__BODY_TOKEN_REVOKE:
	case HF__ENVELOPE__BODY_AUDIT:
	case HF__ENVELOPE__BODY_WHOAMI:
		return true;
	default:
		return false;
	}
}

static void audit_set(struct auth_req *q, const char *action)
{
	q->op.audit.actor = q->who.name;
	q->op.audit.role = auth_role_name(q->who.role);
	q->op.audit.action = action;
}

/* ---- create ---- */

static void create_done(struct db_op *op)
{
	struct auth_req *q = op->ctx;
	struct coord *c = q->c;
	struct auth_token t = { 0 };
	int r;

	if (op->rc < 0) {
		coord_reply_error(q->req, coord_db_error_code(op->rc), "the token was not made: %s", op->err);
		goto out;
	}
	memcpy(t.id, q->token.id, sizeof(t.id));
	hf_strlcpy(t.name, q->token.name, sizeof(t.name));
	auth_role_parse(q->token.role, &t.role);
	memcpy(t.hash, q->token.hash, AUTH_HASH_LEN);
	r = auth_store_add(&c->tokens, &t);
	if (r < 0) {
		/* Stored, but this coordinator cannot use it until it restarts. */
		log_error("token %s is stored but could not be loaded: %s", t.id, strerror(-r));
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL,
				  "token %s is stored but not usable until the coordinator restarts: %s", t.id,
				  strerror(-r));
		goto out;
	}
	log_info("token %s (\"%s\", %s) made by \"%s\"", t.id, t.name, q->token.role, q->who.name);
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__TokenCreateReply tr = HF__TOKEN_CREATE_REPLY__INIT;
	tr.id = q->token.id;
	tr.token = q->secret;
	tr.name = q->token.name;
	tr.role = q->token.role;
	env.body_case = HF__ENVELOPE__BODY_TOKEN_CREATE_REPLY;
	env.token_create_reply = &tr;
	coord_reply(q->req, &env);
out:
	auth_req_free(q);
}

static void handle_create(struct auth_req *q)
{
	const Hf__TokenCreateRequest *m = q->env->token_create;
	enum auth_role role;
	int r;

	if (auth_role_parse(m->role, &role) < 0) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_BAD_REQUEST,
				  "role: \"%.16s\" is not viewer, submitter, admin or worker", m->role);
		auth_req_free(q);
		return;
	}
	r = auth_token_generate(q->secret, q->token.id, q->token.hash);
	if (r < 0) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_INTERNAL, "could not make a token: %s", strerror(-r));
		auth_req_free(q);
		return;
	}
	hf_strlcpy(q->token.name, m->name, sizeof(q->token.name));
	hf_strlcpy(q->token.role, auth_role_name(role), sizeof(q->token.role));
	q->op.kind = DB_OP_TOKEN_CREATE;
	q->op.u.token.token = &q->token;
	q->op.u.token.created_by = q->who.name;
	q->op.done = create_done;
	q->op.ctx = q;
	audit_set(q, "token-create");
	db_submit(q->c->db, &q->op);
}

/* ---- revoke ---- */

static void revoke_done(struct db_op *op)
{
	struct auth_req *q = op->ctx;
	const char *what = q->env->token_revoke->id_or_name;

	if (op->rc < 0) {
		coord_reply_error(q->req, coord_db_error_code(op->rc), "nothing was revoked: %s", op->err);
		goto out;
	}
	/* The same tokens the database revoked: every live one is in memory. */
	size_t gone = auth_store_remove(&q->c->tokens, what);
	if (op->u.token.n == 0) {
		coord_reply_error(q->req, HF__ERROR_CODE__ERR_NOT_FOUND, "no live token has the id or name \"%s\"",
				  what);
		goto out;
	}
	log_info("\"%s\" revoked %u tokens \"%s\" (%zu in use here)", q->who.name, op->u.token.n, what, gone);
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__TokenRevokeReply rr = HF__TOKEN_REVOKE_REPLY__INIT;
	rr.revoked = op->u.token.n;
	env.body_case = HF__ENVELOPE__BODY_TOKEN_REVOKE_REPLY;
	env.token_revoke_reply = &rr;
	coord_reply(q->req, &env);
out:
	auth_req_free(q);
}

/* ---- reads ---- */

static void read_done(struct db_op *op)
{
	struct auth_req *q = op->ctx;

	if (op->rc < 0 || !op->u.read.reply) {
		nng_msg_free(op->u.read.reply);
		coord_reply_error(q->req, coord_db_error_code(op->rc), "could not read: %s",
				  op->err[0] ? op->err : "unknown error");
	} else {
		nuv_reply(q->req, op->u.read.reply);
	}
	auth_req_free(q);
}

static void handle_whoami(struct auth_req *q)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__WhoAmIReply wr = HF__WHO_AM_IREPLY__INIT;

	wr.name = q->who.name;
	wr.role = (char *)auth_role_name(q->who.role);
	wr.token_id = q->who.token_id;
	env.body_case = HF__ENVELOPE__BODY_WHOAMI_REPLY;
	env.whoami_reply = &wr;
	coord_reply(q->req, &env);
	auth_req_free(q);
}

void control_auth_handle(struct coord *c, nuv_request_t *req, Hf__Envelope *env,
			 const struct coord_principal *who)
{
	struct auth_req *q = calloc(1, sizeof(*q));

	if (!q) {
		hf_env_free(env);
		coord_reply_error(req, HF__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return;
	}
	q->c = c;
	q->req = req;
	q->env = env;
	q->who = *who;
	q->op.ctx = q;
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_TOKEN_CREATE:
		handle_create(q);
		return;
	case HF__ENVELOPE__BODY_TOKEN_REVOKE:
		q->op.kind = DB_OP_TOKEN_REVOKE;
		q->op.u.token.id_or_name = env->token_revoke->id_or_name;
		q->op.done = revoke_done;
		audit_set(q, "token-revoke");
		db_submit(c->db, &q->op);
		return;
	case HF__ENVELOPE__BODY_TOKEN_LIST:
		q->op.kind = DB_OP_TOKEN_LIST;
		q->op.u.read.include_revoked = env->token_list->include_revoked;
		q->op.done = read_done;
		db_submit(c->db, &q->op);
		return;
	case HF__ENVELOPE__BODY_AUDIT:
		q->op.kind = DB_OP_AUDIT_LIST;
		q->op.u.read.limit = env->audit->limit;
		q->op.u.read.job_id = env->audit->job_id;
		q->op.done = read_done;
		db_submit(c->db, &q->op);
		return;
	case HF__ENVELOPE__BODY_WHOAMI:
		handle_whoami(q);
		return;
	default:
		coord_reply_error(req, HF__ERROR_CODE__ERR_BAD_REQUEST, "message type %d is not a token request",
				  (int)env->body_case);
		auth_req_free(q);
		return;
	}
}
