/* SPDX-License-Identifier: MIT
 *
 * Turning a finished runner into a TaskResult.  Pure: no I/O, no clocks, no
 * logging; the executor gathers the facts (exit status, the result file's
 * text, the output tail) and this module decides what is reported.
 *
 * The runner's result file is a JSON object:
 *   status     "passed" | "failed" | "error" | "skipped"          (required)
 *   reason     string, required and non-blank unless passed
 *   metrics    object (optional)  -> TaskResult.metrics_json, verbatim
 *   env        object (optional)  -> TaskResult.env_json
 *   outputs    object (optional)  -> env_json's "outputs" member, unless
 *                                    env has one of its own
 *   weights    string or null     -> TaskResult.weights ("" for null)
 *   traceback  string or null     -> appended to the log excerpt
 * Other members are ignored, so runners may add fields before the worker
 * knows them.  metrics_json and env_json are always JSON objects ("{}" when
 * the runner gave none); the worker never adds numbers of its own.
 *
 * Limits: the file is read up to RESULT_FILE_MAX bytes; the reason is cut to
 * RESULT_REASON_MAX bytes and made one line; metrics and env must each fit in
 * RESULT_JSON_MAX bytes; the log excerpt is the last RESULT_EXCERPT_MAX bytes
 * of output plus the last RESULT_EXCERPT_MAX bytes of the traceback.  Every
 * string put in a TaskResult is valid UTF-8 without NUL bytes.
 *
 * Ownership: a Hf__TaskResult returned here is the caller's, released with
 * result_free (it is allocated by protobuf-c, exactly like one unpacked from
 * the spool).  Thread-safe.
 */
#ifndef RESULT_H
#define RESULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"

#define RESULT_FILE_MAX (1024 * 1024)
#define RESULT_REASON_MAX 1024
#define RESULT_JSON_MAX (64 * 1024)
#define RESULT_EXCERPT_MAX 4096

/* A ring that keeps the last cap bytes appended to it, so a runner that
 * prints without end costs a fixed amount of memory. */
struct tail_buf {
	char *data;
	size_t cap;
	size_t len;      /* bytes held, at most cap */
	size_t pos;      /* where the next byte goes */
	uint64_t total;  /* bytes ever appended */
};

/* Returns 0, -EINVAL for cap 0, -ENOMEM. */
int tail_buf_init(struct tail_buf *t, size_t cap);
void tail_buf_fini(struct tail_buf *t);
void tail_buf_append(struct tail_buf *t, const void *data, size_t n);

/* Copies the last min(max, len) bytes, as they are, into a malloc'd
 * NUL-terminated buffer (the caller's).  Returns 0 or -ENOMEM. */
int tail_buf_last(const struct tail_buf *t, size_t max, char **ret_buf, size_t *ret_len);

/* A validated runner result file.  Strings are malloc'd and owned by the
 * struct (runner_result_fini); traceback is NULL when absent. */
struct runner_result {
	Hf__TaskStatus status;
	char *reason;
	char *metrics_json;
	char *env_json;
	char *weights;
	char *traceback;
};

/* Parses and validates a result file's text.  Returns 0, -EBADMSG with what
 * is wrong in err (lowercase, no "invalid result" prefix), or -ENOMEM. */
int result_parse(const char *text, size_t len, struct runner_result *ret, char *err,
		 size_t errlen);

/* The same for a result already parsed as JSON (a warm runner's done line
 * carries it: warm-proto.h); root is only read. */
int result_parse_json(json_t *root, struct runner_result *ret, char *err, size_t errlen);
void runner_result_fini(struct runner_result *r);

/* Everything known about one finished attempt. */
struct run_outcome {
	uint64_t task_id;
	uint32_t attempt;
	uint32_t device_index;
	double started_at, finished_at;  /* unix seconds */

	bool spawned;          /* false: the runner never started */
	int exit_status;       /* when term_signal is 0 */
	int term_signal;       /* the signal that ended it, or 0 */

	/* Set when the worker decided the outcome (timeout, cancel, shutdown,
	 * could not start): the result file is then not consulted. */
	Hf__TaskStatus forced_status;    /* STATUS_UNSPECIFIED: not forced */
	const char *forced_reason;
	/* The failure is the infrastructure's (crash, kill, fatal device error,
	 * the worker stopped it), not the model's verdict.  A runner killed by
	 * a signal or exiting non-zero without a result counts as one too; one
	 * that exits 0 without a result, or writes an invalid one, does not:
	 * that is the runner's error ("runner exited 0 without writing a
	 * result"), and never counts towards a device's quarantine. */
	bool infrastructure;

	/* The result file: result_err 0 and its text, or a negative errno from
	 * reading it (-ENOENT: not written, -EFBIG: over RESULT_FILE_MAX). */
	int result_err;
	const char *result_text;
	size_t result_len;
	/* Or the result a warm runner sent in its done line (warm-proto.h),
	 * already parsed: when set, the file is not consulted. */
	json_t *result_json;

	const struct tail_buf *output;   /* the runner's output, or NULL */
};

/* Decides the TaskResult of an attempt.  exit_code is the exit status, 128 +
 * the signal number when a signal ended the runner, or -1 when it never
 * started.  Returns 0 or -ENOMEM. */
int result_build(const struct run_outcome *o, Hf__TaskResult **ret);

/* A result with status error and reason, for an assignment that could not
 * be run at all (no such device, no free slot, worker draining). */
int result_new_error(uint64_t task_id, uint32_t attempt, uint32_t device_index, double now,
		     const char *reason, Hf__TaskResult **ret);

/* A result with status cancelled and reason, for an assignment cancelled
 * before it started (a task leased ahead: session-ahead.c). */
int result_new_cancelled(uint64_t task_id, uint32_t attempt, uint32_t device_index, double now,
			 const char *reason, Hf__TaskResult **ret);

/* Deep copy through protobuf-c (same ownership as result_build). */
int result_dup(const Hf__TaskResult *r, Hf__TaskResult **ret);

void result_free(Hf__TaskResult *r);

/* Replaces, in place, every byte that is not part of valid UTF-8 text (and
 * every control character but tab, newline and carriage return) with '?'. */
void result_text_sanitize(char *s, size_t len);

#endif
