/* SPDX-License-Identifier: MIT
 *
 * Who hfctl is: finding its token (--token-file, else $HFLEET_TOKEN_FILE,
 * else $HFLEET_TOKEN, else ~/.config/hfleet/token; a token file readable by
 * anyone but its owner is refused, as ssh refuses such keys; never a token
 * on the command line), and the commands about identity: token create,
 * list and revoke (admin), audit (admin) and whoami.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hfctl-args.h"
#include "hfctl-format.h"
#include "hfctl.h"

enum { OPT_JSON = 256, OPT_ROLE, OPT_ALL, OPT_LIMIT, OPT_JOB };

/* ---- the token ---- */

#define TOKEN_HINT                                                                                 \
	"hfctl reads its token from --token-file FILE, else $HFLEET_TOKEN_FILE, else $HFLEET_TOKEN, " \
	"else ~/.config/hfleet/token (mode 0600); an admin makes one with \"hfctl token create NAME "  \
	"--role ROLE\", the first one with \"hf-coordinator --create-token NAME --role admin\""

const char *hfctl_token_hint(void)
{
	return TOKEN_HINT;
}

int hfctl_token_load(struct hfctl_ctx *ctx, char *err, size_t errlen)
{
	const char *file = ctx->token_file, *env_file = getenv("HFLEET_TOKEN_FILE"), *env = getenv("HFLEET_TOKEN");
	char home_file[4096];
	int r;

	if (ctx->token_loaded)
		return 0;
	if (!file && env_file && *env_file)
		file = env_file;
	if (!file && env && *env) {
		if (strlen(env) >= sizeof(ctx->token)) {
			snprintf(err, errlen, "$HFLEET_TOKEN is %zu bytes long, more than a token", strlen(env));
			return -EINVAL;
		}
		hf_strlcpy(ctx->token, env, sizeof(ctx->token));
		ctx->token_loaded = true;
		return 0;
	}
	if (!file) {
		const char *home = getenv("HOME");
		if (home && *home) {
			snprintf(home_file, sizeof(home_file), "%s/.config/hfleet/token", home);
			if (access(home_file, F_OK) == 0)
				file = home_file;
		}
	}
	if (file) {
		r = hf_secret_file_read(file, ctx->token, sizeof(ctx->token), err, errlen);
		if (r < 0)
			return r;
	}
	ctx->token_loaded = true; /* without one, the coordinator says what it needs */
	return 0;
}

/* ---- token ---- */

static int token_create(struct hfctl_ctx *ctx, int argc, char **argv, bool json)
{
	static const struct option options[] = {
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__TokenCreateRequest req = HF__TOKEN_CREATE_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	const char *role = NULL;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case OPT_ROLE:
			role = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_token);
		default:
			hfctl_getopt_error("token create", options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (optind + 1 != argc)
		return hfctl_usage_error("token create needs one NAME (a worker token's name is its worker id)");
	if (!role)
		return hfctl_usage_error("token create needs --role viewer, submitter, admin or worker");
	req.name = argv[optind];
	req.role = (char *)role;
	env.body_case = HF__ENVELOPE__BODY_TOKEN_CREATE;
	env.token_create = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_TOKEN_CREATE_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	const Hf__TokenCreateReply *tr = reply->token_create_reply;
	if (json) {
		r = hfctl_json_print(json_pack("{s:s, s:s, s:s, s:s}", "id", tr->id, "token", tr->token, "name",
					       tr->name, "role", tr->role));
	} else {
		printf("%s\n", tr->token);
		hfctl_error("made token %s (\"%s\", role %s); it is shown only this once: keep it in a file of "
			    "mode 0600",
			    tr->id, tr->name, tr->role);
		r = 0;
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

static const struct hfctl_column token_columns[] = {
	{ "ID", false, 0 },	  { "NAME", false, 0 },	     { "ROLE", false, 0 },
	{ "CREATED", false, 0 }, { "CREATED-BY", false, 0 }, { "LAST-USED", false, 0 },
	{ "REVOKED", false, 0 },
};

#define TOKEN_NCOLS (sizeof(token_columns) / sizeof(token_columns[0]))

static json_t *json_time(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

static int token_list(struct hfctl_ctx *ctx, int argc, char **argv, bool json)
{
	static const struct option options[] = {
		{ "all", no_argument, NULL, OPT_ALL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__TokenListRequest req = HF__TOKEN_LIST_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case OPT_ALL:
			req.include_revoked = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_token);
		default:
			hfctl_getopt_error("token list", options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (optind != argc)
		return hfctl_usage_error("token list takes no arguments");
	env.body_case = HF__ENVELOPE__BODY_TOKEN_LIST;
	env.token_list = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_TOKEN_LIST_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	const Hf__TokenList *tl = reply->token_list_reply;
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < tl->n_tokens; i++) {
			const Hf__TokenInfo *t = tl->tokens[i];
			json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:o}", "id", t->id, "name",
							   t->name, "role", t->role, "created_at", json_time(t->created_at),
							   "created_by", t->created_by, "last_used_at",
							   json_time(t->last_used_at), "revoked_at",
							   json_time(t->revoked_at)));
		}
		r = hfctl_json_print(a);
	} else {
		struct hfctl_table *t = hfctl_table_new(token_columns, TOKEN_NCOLS);
		struct hf_buf b;
		for (size_t i = 0; i < tl->n_tokens; i++) {
			const Hf__TokenInfo *ti = tl->tokens[i];
			char created[48], used[48], revoked[48];
			hfctl_time_format(ti->created_at, created, sizeof(created));
			hfctl_time_format(ti->last_used_at, used, sizeof(used));
			hfctl_time_format(ti->revoked_at, revoked, sizeof(revoked));
			const char *cells[TOKEN_NCOLS] = { ti->id, ti->name, ti->role, created, ti->created_by,
							   used, revoked };
			hfctl_table_add(t, cells);
		}
		hf_buf_init(&b);
		hfctl_table_render(t, &b);
		hfctl_table_free(t);
		r = hfctl_buf_print(&b);
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

static int token_revoke(struct hfctl_ctx *ctx, int argc, char **argv, bool json)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__TokenRevokeRequest req = HF__TOKEN_REVOKE_REQUEST__INIT;
	int r = hfctl_json_options_read(&hfctl_cmd_token, argc, argv, &json);

	if (r != HFCTL_GO_ON)
		return r;
	if (optind + 1 != argc)
		return hfctl_usage_error("token revoke needs one token ID or NAME");
	req.id_or_name = argv[optind];
	env.body_case = HF__ENVELOPE__BODY_TOKEN_REVOKE;
	env.token_revoke = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_TOKEN_REVOKE_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	if (json)
		r = hfctl_json_print(json_pack("{s:s, s:i}", "revoked_id_or_name", req.id_or_name, "revoked",
					       (int)reply->token_revoke_reply->revoked));
	else
		printf("revoked %" PRIu32 " tokens\n", reply->token_revoke_reply->revoked);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

static int token_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		if (argc >= 2)
			return hfctl_usage(&hfctl_cmd_token);
		return hfctl_usage_error("token needs a subcommand: create, list or revoke");
	}
	if (strcmp(argv[1], "create") == 0)
		return token_create(ctx, argc - 1, argv + 1, ctx->json);
	if (strcmp(argv[1], "list") == 0)
		return token_list(ctx, argc - 1, argv + 1, ctx->json);
	if (strcmp(argv[1], "revoke") == 0)
		return token_revoke(ctx, argc - 1, argv + 1, ctx->json);
	char err[HFCTL_ERR_MAX];
	snprintf(err, sizeof(err), "unknown token subcommand \"%s\" (create, list, revoke)", argv[1]);
	return hfctl_usage_error(err);
}

const struct hfctl_command hfctl_cmd_token = {
	.name = "token",
	.summary = "make, list and revoke tokens (admin)",
	.usage = "usage: hfctl token create NAME --role ROLE [--json]\n"
		 "       hfctl token list [--all] [--json]\n"
		 "       hfctl token revoke ID|NAME [--json]\n"
		 "\n"
		 "create makes a token for NAME with ROLE: viewer (reads), submitter (reads,\n"
		 "submit, cancel and retry of its own jobs), admin (everything) or worker (only\n"
		 "the worker port, as the worker id NAME).  The token is printed once on stdout;\n"
		 "only its hash is stored.  list shows the live tokens (--all: revoked ones too)\n"
		 "with when they were made and last used (written at most once a minute).\n"
		 "revoke ends a token by its id, or every live token of a name, at once.\n"
		 "\n"
		 "  --json  create: {\"id\", \"token\", \"name\", \"role\"}; list: an array of\n"
		 "          {\"id\", \"name\", \"role\", \"created_at\", \"created_by\",\n"
		 "          \"last_used_at\", \"revoked_at\"} (unix seconds or null);\n"
		 "          revoke: {\"revoked_id_or_name\", \"revoked\"}\n"
		 "\n"
		 "exit status: 0 done, 1 refused (not admin), no such token, or the coordinator\n"
		 "could not be reached, 2 bad usage.\n",
	.run = token_run,
};

/* ---- audit ---- */

static const struct hfctl_column audit_columns[] = {
	{ "AT", false, 0 },	{ "ACTOR", false, 0 },	{ "ROLE", false, 0 },
	{ "ACTION", false, 0 }, { "TARGET", false, 0 }, { "DETAIL", false, 0 },
};

#define AUDIT_NCOLS (sizeof(audit_columns) / sizeof(audit_columns[0]))

static int audit_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__AuditRequest req = HF__AUDIT_REQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	int c, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		char *end;
		unsigned long long v;
		switch (c) {
		case OPT_LIMIT:
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' || v < 1 || v > HF_AUDIT_LIST_MAX) {
				snprintf(err, sizeof(err), "invalid value \"%s\" for --limit: 1 to %d", optarg,
					 HF_AUDIT_LIST_MAX);
				return hfctl_usage_error(err);
			}
			req.limit = (uint32_t)v;
			break;
		case OPT_JOB:
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' || v < 1 || v > INT64_MAX) {
				snprintf(err, sizeof(err), "invalid value \"%s\" for --job: a job id", optarg);
				return hfctl_usage_error(err);
			}
			req.job_id = v;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			return hfctl_usage(&hfctl_cmd_audit);
		default:
			hfctl_getopt_error("audit", options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (optind != argc)
		return hfctl_usage_error("audit takes no arguments");
	env.body_case = HF__ENVELOPE__BODY_AUDIT;
	env.audit = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_AUDIT_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	const Hf__AuditReply *ar = reply->audit_reply;
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < ar->n_entries; i++) {
			const Hf__AuditEntry *e = ar->entries[i];
			json_array_append_new(a, json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:o}", "at", json_time(e->at),
							   "actor", e->actor, "role", e->role, "action", e->action,
							   "target", e->target, "detail", e->detail, "job_id",
							   e->job_id ? json_integer((json_int_t)e->job_id) : json_null()));
		}
		r = hfctl_json_print(a);
	} else {
		struct hfctl_table *t = hfctl_table_new(audit_columns, AUDIT_NCOLS);
		struct hf_buf b;
		for (size_t i = 0; i < ar->n_entries; i++) {
			const Hf__AuditEntry *e = ar->entries[i];
			char at[48];
			hfctl_time_format(e->at, at, sizeof(at));
			const char *cells[AUDIT_NCOLS] = { at, e->actor, e->role, e->action, e->target, e->detail };
			hfctl_table_add(t, cells);
		}
		hf_buf_init(&b);
		hfctl_table_render(t, &b);
		hfctl_table_free(t);
		r = hfctl_buf_print(&b);
	}
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_audit = {
	.name = "audit",
	.summary = "who submitted, cancelled, retried, drained, made tokens (admin)",
	.usage = "usage: hfctl audit [--limit N] [--job ID] [--json]\n"
		 "\n"
		 "Shows the newest entries of the audit first: every submit, cancel, retry,\n"
		 "drain, undrain, token create and token revoke, with who did it (the token's\n"
		 "name and role), when, and what it acted on.\n"
		 "\n"
		 "  --limit N  at most N entries (default 100)\n"
		 "  --job ID   only the entries about job ID\n"
		 "  --json     an array of {\"at\", \"actor\", \"role\", \"action\", \"target\",\n"
		 "             \"detail\", \"job_id\"}\n",
	.run = audit_run,
};

/* ---- whoami ---- */

static int whoami_run(struct hfctl_ctx *ctx, int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__WhoAmIRequest req = HF__WHO_AM_IREQUEST__INIT;
	char err[HFCTL_ERR_MAX];
	bool json = ctx->json;
	int r = hfctl_json_options_read(&hfctl_cmd_whoami, argc, argv, &json);

	if (r != HFCTL_GO_ON)
		return r;
	if (hfctl_no_args("whoami", argc, argv, optind, err, sizeof(err)) < 0)
		return hfctl_usage_error(err);
	env.body_case = HF__ENVELOPE__BODY_WHOAMI;
	env.whoami = &req;
	r = hfctl_call(ctx, &env, HF__ENVELOPE__BODY_WHOAMI_REPLY, &reply);
	if (r < 0)
		return hfctl_exit_status(r);
	const Hf__WhoAmIReply *w = reply->whoami_reply;
	if (json)
		r = hfctl_json_print(json_pack("{s:s, s:s, s:s}", "name", w->name, "role", w->role, "token_id",
					       w->token_id));
	else
		printf("%s (%s%s%s)\n", w->name, w->role, w->token_id[0] ? ", token " : "", w->token_id);
	hf_env_free(reply);
	return r < 0 ? HFCTL_EXIT_FAILED : HFCTL_EXIT_OK;
}

const struct hfctl_command hfctl_cmd_whoami = {
	.name = "whoami",
	.summary = "the name and role of hfctl's token",
	.usage = "usage: hfctl whoami [--json]\n"
		 "\n"
		 "Prints the name and role of the token hfctl presents, and its id.\n"
		 "\n"
		 "  --json  {\"name\", \"role\", \"token_id\"}\n",
	.run = whoami_run,
};
