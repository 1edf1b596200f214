/* SPDX-License-Identifier: MIT
 *
 * Tokens and the audit in the database layer (see db.h): loading the live
 * tokens at start, creating and revoking tokens, writing when tokens were
 * last used (batched by the loop: at most once a minute per token),
 * listing tokens and audit entries (their replies are built here), the
 * audit row of every write that asks for one (in that write's
 * transaction), and the bootstrap of hf-coordinator --create-token.  Only
 * the SHA-256 of a token's secret ever reaches the database.  Runs on the
 * database thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

#define TOKEN_LIST_MAX 100000
#define AUDIT_LIST_DEFAULT 100

static void hash_hex(const uint8_t hash[32], char out[65])
{
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = "0123456789abcdef"[hash[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[hash[i] & 15];
	}
	out[64] = '\0';
}

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hash_from_hex(const char *s, uint8_t hash[32])
{
	if (strlen(s) != 64)
		return -EINVAL;
	for (size_t i = 0; i < 32; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		hash[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int db_tokens_load(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	int r = db_exec(db, op,
			"SELECT id, name, role, encode(hash, 'hex') FROM tokens WHERE revoked_at IS NULL"
			" ORDER BY id",
			NULL, PGRES_TUPLES_OK, &res);

	if (r < 0)
		return r;
	int n = PQntuples(res);
	op->u.start.tokens = calloc((size_t)n + 1, sizeof(*op->u.start.tokens));
	if (!op->u.start.tokens) {
		PQclear(res);
		return -ENOMEM;
	}
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		struct db_token *t = &op->u.start.tokens[k];
		if (hash_from_hex(PQgetvalue(res, i, 3), t->hash) < 0)
			continue;
		hf_strlcpy(t->id, PQgetvalue(res, i, 0), sizeof(t->id));
		hf_strlcpy(t->name, PQgetvalue(res, i, 1), sizeof(t->name));
		hf_strlcpy(t->role, PQgetvalue(res, i, 2), sizeof(t->role));
		k++;
	}
	op->u.start.n_tokens = k;
	PQclear(res);
	return 0;
}

int run_token_create(struct db *db, struct db_op *op)
{
	const struct db_token *t = op->u.token.token;
	struct db_params p;
	char hex[65];
	int r;

	hash_hex(t->hash, hex);
	db_params_init(&p);
	db_param_text(&p, t->id);
	db_param_text(&p, t->name);
	db_param_text(&p, t->role);
	db_param_text(&p, hex);
	db_param_text(&p, op->u.token.created_by);
	r = db_exec(db, op,
		    "INSERT INTO tokens (id, name, role, hash, created_by)"
		    " VALUES ($1, $2, $3, decode($4, 'hex'), $5)",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}

int run_token_revoke(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	op->u.token.n = 0;
	db_params_init(&p);
	db_param_text(&p, op->u.token.id_or_name);
	r = db_exec(db, op,
		    "UPDATE tokens SET revoked_at = now() WHERE revoked_at IS NULL AND (id = $1 OR name = $1)"
		    " RETURNING id",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	op->u.token.n = (uint32_t)PQntuples(res);
	PQclear(res);
	return 0;
}

int run_token_touch(struct db *db, struct db_op *op)
{
	struct db_params p;
	struct db_array ids, at;
	int r;

	db_params_init(&p);
	db_array_init(&ids, &p);
	db_array_init(&at, &p);
	for (size_t i = 0; i < op->u.touch.n; i++) {
		db_array_text(&ids, op->u.touch.ids[i]);
		db_array_double(&at, "last_used_at", op->u.touch.used_at[i]);
	}
	db_param_array(&p, &ids);
	db_param_array(&p, &at);
	r = db_exec(db, op,
		    "UPDATE tokens t SET last_used_at = to_timestamp(u.at)"
		    " FROM unnest($1::text[], $2::float8[]) AS u (id, at)"
		    " WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < to_timestamp(u.at))",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}

static int pack_reply(struct db_op *op, Hf__Envelope *env)
{
	int r = hf_env_pack(env, &op->u.read.reply);
	if (r < 0)
		op_error(op, "could not pack the reply");
	return r;
}

int run_token_list(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	db_params_init(&p);
	db_param_bool(&p, op->u.read.include_revoked);
	db_param_i32(&p, TOKEN_LIST_MAX);
	r = db_exec(db, op,
		    "SELECT id, name, role, extract(epoch from created_at), created_by,"
		    " extract(epoch from last_used_at), extract(epoch from revoked_at)"
		    " FROM tokens WHERE revoked_at IS NULL OR $1::boolean ORDER BY created_at, id LIMIT $2::int",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	size_t n = (size_t)PQntuples(res);
	Hf__TokenInfo *mem = calloc(n + 1, sizeof(*mem));
	Hf__TokenInfo **ptrs = calloc(n + 1, sizeof(*ptrs));
	if (!mem || !ptrs) {
		r = -ENOMEM;
		op_error(op, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		hf__token_info__init(&mem[i]);
		mem[i].id = PQgetvalue(res, (int)i, 0);
		mem[i].name = PQgetvalue(res, (int)i, 1);
		mem[i].role = PQgetvalue(res, (int)i, 2);
		mem[i].created_at = get_double(res, (int)i, 3);
		mem[i].created_by = PQgetvalue(res, (int)i, 4);
		mem[i].last_used_at = get_double(res, (int)i, 5);
		mem[i].revoked_at = get_double(res, (int)i, 6);
		ptrs[i] = &mem[i];
	}
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__TokenList tl = HF__TOKEN_LIST__INIT;
	tl.tokens = ptrs;
	tl.n_tokens = n;
	env.body_case = HF__ENVELOPE__BODY_TOKEN_LIST_REPLY;
	env.token_list_reply = &tl;
	r = pack_reply(op, &env);
out:
	free(mem);
	free(ptrs);
	PQclear(res);
	return r;
}

int run_audit_list(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct db_params p;
	uint32_t limit = op->u.read.limit ? op->u.read.limit : AUDIT_LIST_DEFAULT;
	int r;

	if (op->u.read.job_id > INT64_MAX)
		op->u.read.job_id = 0; /* validated at the edge; names no job */
	db_params_init(&p);
	db_param_u64(&p, "job id", op->u.read.job_id);
	db_param_u32(&p, "limit", limit);
	r = db_exec(db, op,
		    "SELECT extract(epoch from at), actor, role, action, target, detail, coalesce(job_id, 0)"
		    " FROM audit WHERE $1::bigint = 0 OR job_id = $1::bigint ORDER BY id DESC LIMIT $2::int",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r < 0)
		return r;
	size_t n = (size_t)PQntuples(res);
	Hf__AuditEntry *mem = calloc(n + 1, sizeof(*mem));
	Hf__AuditEntry **ptrs = calloc(n + 1, sizeof(*ptrs));
	if (!mem || !ptrs) {
		r = -ENOMEM;
		op_error(op, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		hf__audit_entry__init(&mem[i]);
		mem[i].at = get_double(res, (int)i, 0);
		mem[i].actor = PQgetvalue(res, (int)i, 1);
		mem[i].role = PQgetvalue(res, (int)i, 2);
		mem[i].action = PQgetvalue(res, (int)i, 3);
		mem[i].target = PQgetvalue(res, (int)i, 4);
		mem[i].detail = PQgetvalue(res, (int)i, 5);
		mem[i].job_id = get_u64(res, (int)i, 6);
		ptrs[i] = &mem[i];
	}
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__AuditReply ar = HF__AUDIT_REPLY__INIT;
	ar.entries = ptrs;
	ar.n_entries = n;
	env.body_case = HF__ENVELOPE__BODY_AUDIT_REPLY;
	env.audit_reply = &ar;
	r = pack_reply(op, &env);
out:
	free(mem);
	free(ptrs);
	PQclear(res);
	return r;
}

/* What op acted on, for its audit row; false when it changed nothing. */
static bool audit_target(const struct db_op *op, char *target, size_t tlen, char *detail, size_t dlen,
			 uint64_t *job_id)
{
	*job_id = 0;
	detail[0] = '\0';
	switch (op->kind) {
	case DB_OP_JOB_CREATE:
		if (op->u.job_create.existing)
			return false;
		*job_id = op->u.job_create.job_id;
		snprintf(target, tlen, "job %" PRIu64, *job_id);
		snprintf(detail, dlen, "%zu tasks, name \"%s\"", op->u.job_create.plan->n_tasks,
			 op->u.job_create.plan->name);
		return true;
	case DB_OP_JOB_CANCEL:
		if (!op->u.cancel.found || op->u.cancel.forbidden)
			return false;
		*job_id = op->u.cancel.job_id;
		if (op->u.cancel.task_id)
			snprintf(target, tlen, "task %" PRIu64, op->u.cancel.task_id);
		else
			snprintf(target, tlen, "job %" PRIu64, *job_id);
		/* With the queued ones cancelled in slices after it (db-cancel.c). */
		snprintf(detail, dlen, "%" PRIu64 " tasks cancelled, job of \"%s\"",
			 (uint64_t)op->u.cancel.n_cancelled + op->u.cancel.remaining, op->u.cancel.submitter);
		return true;
	case DB_OP_JOB_RETRY:
		if (!op->u.retry.found || op->u.retry.forbidden || op->u.retry.cancelling)
			return false;
		*job_id = op->u.retry.job_id;
		snprintf(target, tlen, "job %" PRIu64, *job_id);
		snprintf(detail, dlen, "%zu tasks queued again%s, job of \"%s\"", op->u.retry.n_tasks,
			 op->u.retry.cancelled ? " (cancelled ones too)" : "", op->u.retry.submitter);
		return true;
	case DB_OP_DRAIN: {
		const struct db_drain *d = &op->u.drain.d;
		if (d->backend >= 0)
			snprintf(target, tlen, "device %s/%s:%d", d->worker_id,
				 hf_backend_name((Hf__Backend)d->backend), d->index);
		else
			snprintf(target, tlen, "worker %s", d->worker_id);
		return true;
	}
	case DB_OP_TOKEN_CREATE:
	case DB_OP_AUTH_BOOTSTRAP:
		snprintf(target, tlen, "token %s", op->u.token.token->id);
		snprintf(detail, dlen, "name \"%s\", role %s", op->u.token.token->name, op->u.token.token->role);
		return true;
	case DB_OP_TOKEN_REVOKE:
		if (op->u.token.n == 0)
			return false;
		snprintf(target, tlen, "token %s", op->u.token.id_or_name);
		snprintf(detail, dlen, "%" PRIu32 " tokens revoked", op->u.token.n);
		return true;
	default:
		return false;
	}
}

int db_audit_write(struct db *db, struct db_op *op)
{
	char target[256], detail[512];
	uint64_t job_id;
	struct db_params p;
	int r;

	if (!op->audit.action || !audit_target(op, target, sizeof(target), detail, sizeof(detail), &job_id))
		return 0;
	db_params_init(&p);
	db_param_text(&p, op->audit.actor ? op->audit.actor : "");
	db_param_text(&p, op->audit.role ? op->audit.role : "");
	db_param_text(&p, op->audit.action);
	db_param_text(&p, target);
	db_param_text(&p, detail);
	if (job_id)
		db_param_u64(&p, "job id", job_id);
	else
		db_param_text(&p, NULL);
	r = db_exec(db, op,
		    "INSERT INTO audit (actor, role, action, target, detail, job_id)"
		    " VALUES ($1, $2, $3, $4, $5, $6::bigint)",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}

int run_auth_bootstrap(struct db *db, struct db_op *op)
{
	int r = db_migrate(db, op);

	if (r < 0)
		return r;
	r = db_cmd(db, op, "BEGIN");
	if (r == 0)
		r = run_token_create(db, op);
	if (r == 0)
		r = db_audit_write(db, op);
	if (r == 0)
		r = db_cmd(db, op, "COMMIT");
	if (r < 0 && r != -ENOTCONN)
		PQclear(PQexec(db->conn, "ROLLBACK"));
	return r;
}
