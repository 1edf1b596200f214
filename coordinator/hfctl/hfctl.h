/* SPDX-License-Identifier: MIT
 *
 * What hfctl's commands share: the exit statuses, the context built from
 * the global options, the command table entries, and the few helpers that
 * print (messages to stderr, results to stdout) or call the coordinator.
 * main.c implements the helpers and dispatches; hfctl-jobs.c,
 * hfctl-query.c, hfctl-readers.c, hfctl-report.c, hfctl-fleet.c and
 * hfctl-auth.c implement the commands.
 *
 * A command's run function gets argv starting at the command's name and
 * returns the process exit status.  Single-threaded, like the whole program.
 */
#ifndef HFCTL_H
#define HFCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "hf_proto.h"
#include "hf_util.h"
#include "hfctl-client.h"

enum hfctl_exit {
	HFCTL_EXIT_OK = 0,
	/* The work failed, or the coordinator refused or could not be reached. */
	HFCTL_EXIT_FAILED = 1,
	/* Bad usage: nothing was done. */
	HFCTL_EXIT_USAGE = 2,
	/* SIGINT while watching. */
	HFCTL_EXIT_INTERRUPTED = 130,
};

#define HFCTL_DEFAULT_URL "tcp://127.0.0.1:7101"
#define HFCTL_DEFAULT_TIMEOUT_MS 10000

struct hfctl_ctx {
	const char *url;              /* the control address */
	const char *url_source;       /* where url came from, for messages ("from --control") */
	struct hf_tls tls;            /* for a tls+tcp:// url: --ca-file, ... */
	int64_t timeout_ms;           /* per request */
	bool json;                    /* global --json */
	struct hfctl_client *client;  /* opened by the first call; main closes it */
	const char *token_file;       /* --token-file, or NULL */
	char token[160];              /* the token sent with every request, "" when none */
	bool token_loaded;
};

struct hfctl_command {
	const char *name;
	const char *summary;  /* one line for "hfctl help" */
	const char *usage;    /* the text of "hfctl help NAME" and "hfctl NAME --help" */
	int (*run)(struct hfctl_ctx *ctx, int argc, char **argv);
};

extern const struct hfctl_command hfctl_cmd_submit, hfctl_cmd_status, hfctl_cmd_watch,
	hfctl_cmd_results, hfctl_cmd_cancel, hfctl_cmd_retry, hfctl_cmd_explain, hfctl_cmd_jobs,
	hfctl_cmd_workers, hfctl_cmd_devices, hfctl_cmd_drain, hfctl_cmd_undrain, hfctl_cmd_models,
	hfctl_cmd_token, hfctl_cmd_audit, hfctl_cmd_whoami, hfctl_cmd_logs, hfctl_cmd_compare,
	hfctl_cmd_history, hfctl_cmd_report;

/* hfctl-auth.c: finds the token (see there) once; a missing one is not an
 * error (the coordinator says so), an unreadable or unsafe file is. */
int hfctl_token_load(struct hfctl_ctx *ctx, char *err, size_t errlen);
/* Where hfctl looks for its token, for messages. */
const char *hfctl_token_hint(void);

/* Prints "hfctl: MESSAGE" and a newline to stderr. */
void hfctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "hfctl: warning: MESSAGE" and a newline to stderr (an old
 * spelling that still works, ...). */
void hfctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a command's usage to stdout; returns HFCTL_EXIT_OK. */
int hfctl_usage(const struct hfctl_command *cmd);

/* Prints a usage error (see hfctl-args.h for its text); returns
 * HFCTL_EXIT_USAGE. */
int hfctl_usage_error(const char *err);

/* Returned by hfctl_json_options_read when the command is to go on. */
#define HFCTL_GO_ON (-1)

/* Reads the options of a command that knows only --json and --help, leaving
 * optind at the first argument.  Returns HFCTL_GO_ON, or the exit status
 * after --help or a bad option (both printed). */
int hfctl_json_options_read(const struct hfctl_command *cmd, int argc, char **argv, bool *json);

/* The exit status for an error returned by a call: HFCTL_EXIT_USAGE for a
 * request the coordinator refused as invalid or an unknown model (-EINVAL,
 * -ENOENT, see hfctl-client.h), HFCTL_EXIT_FAILED otherwise (a submit no
 * device can run, -ENODEV, among them: the request was valid). */
int hfctl_exit_status(int r);

/* Calls the coordinator (opening the connection on first use) and waits for
 * a reply of body expect, which is the caller's (hf_env_free).  On failure
 * writes the message into err and returns a negative errno as documented in
 * hfctl-client.h. */
int hfctl_call_quiet(struct hfctl_ctx *ctx, const Hf__Envelope *req, Hf__Envelope__BodyCase expect,
		     Hf__Envelope **ret_reply, char *err, size_t errlen);

/* The same, printing the message itself. */
int hfctl_call(struct hfctl_ctx *ctx, const Hf__Envelope *req, Hf__Envelope__BodyCase expect,
	       Hf__Envelope **ret_reply);

/* Prints v as indented JSON and a newline to stdout and releases it; v NULL
 * (out of memory while building it) is reported.  Returns 0 or -ENOMEM. */
int hfctl_json_print(json_t *v);

/* Writes b to stdout and releases it; an out-of-memory buffer is reported
 * instead.  Returns 0 or -ENOMEM. */
int hfctl_buf_print(struct hf_buf *b);

#endif
