/* SPDX-License-Identifier: MIT
 *
 * hfctl, the command-line client of hf-coordinator: the global options
 * (--control, --request-timeout, --json, --help, --version, and the old
 * spellings --coordinator and --timeout, which warn), where the control
 * address comes from (--control, $HFLEET_CONTROL_URL, the old
 * $HFLEET_COORDINATOR, the default), the command table
 * and dispatch, and the helpers every command uses to print and to call the
 * coordinator (see hfctl.h).  The commands themselves live in hfctl-jobs.c,
 * hfctl-query.c, hfctl-readers.c, hfctl-report.c, hfctl-fleet.c and
 * hfctl-auth.c.
 *
 * hfctl prints its messages as "hfctl: ..." on stderr rather than through
 * hf_log: they are answers to the person at the terminal, not log records.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfctl-args.h"
#include "hfctl-suggest.h"
#include "hfctl.h"

static const struct hfctl_command *const commands[] = {
	&hfctl_cmd_submit,  &hfctl_cmd_status,  &hfctl_cmd_watch,   &hfctl_cmd_results,
	&hfctl_cmd_cancel,  &hfctl_cmd_retry,   &hfctl_cmd_explain, &hfctl_cmd_jobs,
	&hfctl_cmd_workers, &hfctl_cmd_devices, &hfctl_cmd_drain,   &hfctl_cmd_undrain,
	&hfctl_cmd_models,  &hfctl_cmd_token,   &hfctl_cmd_audit,   &hfctl_cmd_whoami,
	&hfctl_cmd_logs,    &hfctl_cmd_compare, &hfctl_cmd_history, &hfctl_cmd_report,
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* getopt values of long options: 256 and up (see hfctl_getopt_error). */
enum {
	OPT_CONTROL = 256,
	OPT_OLD_COORDINATOR,
	OPT_REQUEST_TIMEOUT,
	OPT_OLD_TIMEOUT,
	OPT_JSON,
	OPT_VERSION,
	OPT_TOKEN_FILE,
	OPT_CA_FILE,
	OPT_CERT_FILE,
	OPT_KEY_FILE,
	OPT_SERVER_NAME
};

/* ---- helpers for the commands (hfctl.h) ---- */

void hfctl_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout); /* keep the order of what a terminal shows */
	fputs("hfctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void hfctl_warn(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("hfctl: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int hfctl_usage(const struct hfctl_command *cmd)
{
	fputs(cmd->usage, stdout);
	return HFCTL_EXIT_OK;
}

int hfctl_usage_error(const char *err)
{
	hfctl_error("%s", err);
	return HFCTL_EXIT_USAGE;
}

int hfctl_json_options_read(const struct hfctl_command *cmd, int argc, char **argv, bool *json)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[HFCTL_ERR_MAX];
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			*json = true;
			break;
		case 'h':
			return hfctl_usage(cmd);
		default:
			hfctl_getopt_error(cmd->name, options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	return HFCTL_GO_ON;
}

int hfctl_exit_status(int r)
{
	return r == -EINVAL || r == -ENOENT ? HFCTL_EXIT_USAGE : HFCTL_EXIT_FAILED;
}

/* Says where the address came from and how to give another, after a
 * failure that a wrong address explains. */
static void address_explain(const struct hfctl_ctx *ctx, char *err, size_t errlen)
{
	size_t n = strlen(err);

	snprintf(err + n, errlen - n,
		 "\nthe address is %s: give the coordinator's control address with --control URL "
		 "or $HFLEET_CONTROL_URL, or source the quickstart's .state/env",
		 ctx->url_source);
}

int hfctl_call_quiet(struct hfctl_ctx *ctx, const Hf__Envelope *req, Hf__Envelope__BodyCase expect,
		     Hf__Envelope **ret_reply, char *err, size_t errlen)
{
	Hf__Envelope with_token = *req;
	int r = hfctl_token_load(ctx, err, errlen);

	if (r < 0)
		return -EACCES;
	if (!ctx->client) {
		r = hfctl_client_open(ctx->url, &ctx->tls, ctx->timeout_ms, &ctx->client, err, errlen);
		if (r == -ECONNREFUSED || r == -ETIMEDOUT)
			address_explain(ctx, err, errlen);
		if (r < 0)
			return r;
	}
	with_token.token = ctx->token;
	r = hfctl_client_call(ctx->client, &with_token, expect, ret_reply, err, errlen);
	if (r == -EACCES && !ctx->token[0]) {
		size_t n = strlen(err);
		snprintf(err + n, errlen - n, "; %s", hfctl_token_hint());
	}
	if (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EPROTOTYPE)
		address_explain(ctx, err, errlen);
	return r;
}

int hfctl_call(struct hfctl_ctx *ctx, const Hf__Envelope *req, Hf__Envelope__BodyCase expect,
	       Hf__Envelope **ret_reply)
{
	char err[HFCTL_ERR_MAX];
	int r = hfctl_call_quiet(ctx, req, expect, ret_reply, err, sizeof(err));

	if (r < 0)
		hfctl_error("%s", err);
	return r;
}

int hfctl_json_print(json_t *v)
{
	if (!v) {
		hfctl_error("could not format output: out of memory");
		return -ENOMEM;
	}
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	fputc('\n', stdout);
	json_decref(v);
	return 0;
}

int hfctl_buf_print(struct hf_buf *b)
{
	int r = 0;

	if (b->oom) {
		hfctl_error("could not format output: out of memory");
		r = -ENOMEM;
	} else if (b->len > 0) {
		fwrite(b->data, 1, b->len, stdout);
	}
	hf_buf_fini(b);
	return r;
}

/* ---- hfctl itself ---- */

static void usage_print(FILE *f)
{
	fputs("usage: hfctl [--control URL] [--token-file FILE] [--ca-file PEM]\n"
	      "             [--request-timeout DURATION] [--json] COMMAND [ARGS]\n"
	      "       hfctl help [COMMAND] | hfctl COMMAND --help | hfctl --version\n"
	      "\n"
	      "Submit model tests and benchmarks to an hfleet coordinator and follow them.\n"
	      "\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
	fputs("\n"
	      "options:\n"
	      "  --control URL       the coordinator's control address, its\n"
	      "                      coordinator.control_listen (default: $HFLEET_CONTROL_URL,\n"
	      "                      else " HFCTL_DEFAULT_URL "); tls+tcp://HOST:PORT for TLS\n"
	      "  --token-file FILE   the file holding hfctl's token (mode 0600; default:\n"
	      "                      $HFLEET_TOKEN_FILE, else $HFLEET_TOKEN, else\n"
	      "                      ~/.config/hfleet/token)\n"
	      "  --ca-file PEM       the CA that signs the coordinator's certificate, which a\n"
	      "                      tls+tcp:// coordinator must present (default: $HFLEET_CA_FILE)\n"
	      "  --cert-file PEM, --key-file PEM\n"
	      "                      a client certificate and its key, for a coordinator that\n"
	      "                      requires one (default: $HFLEET_CERT_FILE, $HFLEET_KEY_FILE)\n"
	      "  --server-name NAME  the name the coordinator's certificate must carry (default:\n"
	      "                      $HFLEET_TLS_SERVER_NAME, else the host in the address)\n"
	      "  --request-timeout DURATION\n"
	      "                      how long one request may take (default 10s)\n"
	      "  --json              print results as JSON\n"
	      "  --help, --version\n"
	      "\n"
	      "exit status: 0 success, 1 the work failed or cannot be done (no device can run\n"
	      "it), or the coordinator refused or could not be reached, 2 bad usage, 130\n"
	      "interrupted while watching.\n",
	      f);
}

static const struct hfctl_command *command_find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

/* Refuses an unknown command, offering the closest one. */
static int command_unknown(const char *name)
{
	struct hfctl_suggest sg;
	char mean[HFCTL_SUGGEST_LEN_MAX + 32];

	hfctl_suggest_init(&sg, name);
	for (size_t i = 0; i < N_COMMANDS; i++)
		hfctl_suggest_try(&sg, commands[i]->name, strlen(commands[i]->name));
	hfctl_suggest_try(&sg, "help", 4);
	hfctl_suggest_hint(&sg, mean, sizeof(mean));
	hfctl_error("unknown command \"%s\" (%ssee \"hfctl help\")", name, mean);
	return HFCTL_EXIT_USAGE;
}

/* "hfctl help [COMMAND]". */
static int help_run(int argc, char **argv)
{
	const struct hfctl_command *cmd;

	if (argc < 2) {
		usage_print(stdout);
		return HFCTL_EXIT_OK;
	}
	cmd = command_find(argv[1]);
	if (!cmd)
		return command_unknown(argv[1]);
	return hfctl_usage(cmd);
}

static const struct option global_options[] = {
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "cert-file", required_argument, NULL, OPT_CERT_FILE },
	{ "key-file", required_argument, NULL, OPT_KEY_FILE },
	{ "server-name", required_argument, NULL, OPT_SERVER_NAME },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	/* The old spellings, kept for a release (see old_spellings_warn). */
	{ "coordinator", required_argument, NULL, OPT_OLD_COORDINATOR },
	{ "timeout", required_argument, NULL, OPT_OLD_TIMEOUT },
	{ 0 },
};

/* Where the control address comes from: --control (or the old
 * --coordinator), else $HFLEET_CONTROL_URL, else the old
 * $HFLEET_COORDINATOR, which hf-worker also read, as its worker address:
 * it is used for a release, with a warning that says so. */
static void address_choose(struct hfctl_ctx *ctx, const char *option_url, bool old_option)
{
	static char source[96];
	const char *control = getenv("HFLEET_CONTROL_URL"), *old = getenv("HFLEET_COORDINATOR");

	if (old_option)
		hfctl_warn("--coordinator is deprecated: use --control (the coordinator's control "
			   "address)");
	if (option_url) {
		ctx->url = option_url;
		snprintf(source, sizeof(source), "from %s", old_option ? "--coordinator" : "--control");
	} else if (control && control[0]) {
		ctx->url = control;
		snprintf(source, sizeof(source), "from $HFLEET_CONTROL_URL");
	} else if (old && old[0]) {
		hfctl_warn("HFLEET_COORDINATOR is deprecated for hfctl: set HFLEET_CONTROL_URL (the "
			   "coordinator's control address); using HFLEET_COORDINATOR=%s as the control "
			   "address",
			   old);
		ctx->url = old;
		snprintf(source, sizeof(source), "from $HFLEET_COORDINATOR");
	} else {
		ctx->url = HFCTL_DEFAULT_URL;
		snprintf(source, sizeof(source), "the default, as neither --control nor "
						 "$HFLEET_CONTROL_URL is set");
	}
	ctx->url_source = source;
}

int main(int argc, char **argv)
{
	struct hfctl_ctx ctx = {
		.timeout_ms = HFCTL_DEFAULT_TIMEOUT_MS,
		.tls = {
			.ca_file = getenv("HFLEET_CA_FILE"),
			.cert_file = getenv("HFLEET_CERT_FILE"),
			.key_file = getenv("HFLEET_KEY_FILE"),
			.server_name = getenv("HFLEET_TLS_SERVER_NAME"),
		},
	};
	const struct hfctl_command *cmd;
	const char *option_url = NULL;
	bool old_coordinator = false;
	char err[HFCTL_ERR_MAX];
	int c, ret;

	/* "+": stop at the command; what follows is the command's. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", global_options, NULL)) != -1) {
		switch (c) {
		case OPT_OLD_COORDINATOR:
		case OPT_CONTROL:
			option_url = optarg;
			old_coordinator = c == OPT_OLD_COORDINATOR;
			break;
		case OPT_OLD_TIMEOUT:
			hfctl_warn("hfctl's --timeout is deprecated: use --request-timeout (submit's "
				   "limit on each task is --task-timeout)");
			/* fall through */
		case OPT_REQUEST_TIMEOUT:
			if (hfctl_parse_duration(c == OPT_OLD_TIMEOUT ? "--timeout" : "--request-timeout",
						 optarg, 1, &ctx.timeout_ms, err, sizeof(err)) < 0)
				return hfctl_usage_error(err);
			break;
		case OPT_TOKEN_FILE:
			ctx.token_file = optarg;
			break;
		case OPT_JSON:
			ctx.json = true;
			break;
		case OPT_CA_FILE:
			ctx.tls.ca_file = optarg;
			break;
		case OPT_CERT_FILE:
			ctx.tls.cert_file = optarg;
			break;
		case OPT_KEY_FILE:
			ctx.tls.key_file = optarg;
			break;
		case OPT_SERVER_NAME:
			ctx.tls.server_name = optarg;
			break;
		case 'h':
			usage_print(stdout);
			return HFCTL_EXIT_OK;
		case OPT_VERSION:
			printf("hfctl %s (protocol %d)\n", HF_VERSION, HF_PROTOCOL_VERSION);
			return HFCTL_EXIT_OK;
		default:
			hfctl_getopt_error(NULL, global_options, c, argv, err, sizeof(err));
			return hfctl_usage_error(err);
		}
	}
	if (optind >= argc) {
		usage_print(stderr);
		return HFCTL_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0)
		return help_run(argc - optind, argv + optind);
	cmd = command_find(argv[optind]);
	if (!cmd)
		return command_unknown(argv[optind]);
	address_choose(&ctx, option_url, old_coordinator);

	ret = cmd->run(&ctx, argc - optind, argv + optind);
	hfctl_client_close(ctx.client);
	memset(ctx.token, 0, sizeof(ctx.token));

	/* A full disk or a closed pipe must not pass for success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		hfctl_error("could not write output: %s", strerror(errno));
		if (ret == HFCTL_EXIT_OK)
			ret = HFCTL_EXIT_FAILED;
	}
	return ret;
}
