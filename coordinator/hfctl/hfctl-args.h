/* SPDX-License-Identifier: MIT
 *
 * hfctl's argument parsing and validation: comma-separated lists, numbers,
 * durations, job and task ids, the messages for getopt's errors, the
 * options of "hfctl cancel" and drain targets (WORKER or
 * WORKER/BACKEND:INDEX) in hfctl-args.c; the options of "hfctl submit" and
 * the check of model names against the registry in hfctl-args-submit.c.
 * A mistyped name or option gets a suggestion (hfctl-suggest.h).  Pure:
 * nothing here reads the environment, talks to the coordinator or prints;
 * the commands do that and show the messages written here.
 *
 * Every function that can refuse its input writes one message for the user
 * into err (lowercase, the offending value in quotes, never longer than
 * errlen) and returns a negative errno: -EINVAL for bad input, -ENOENT for
 * names the registry does not have, -ENOMEM.  Output parameters are written
 * only on success.
 *
 * Parsing uses getopt_long, whose state is global: one thread only.
 */
#ifndef HFCTL_ARGS_H
#define HFCTL_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hfctl-suggest.h"

/* Room for any message written here (the list of unknown models is cut to
 * fit when it would be longer). */
#define HFCTL_ERR_MAX 1024

/* Bounds of the numbers "hfctl submit" accepts.  Priority, batch size and
 * sequence length are the coordinator's own limits (coordinator/expand.h),
 * checked here too so that a mistake is caught before anything is sent. */
#define HFCTL_PRIORITY_MIN (-1000)
#define HFCTL_PRIORITY_MAX 1000
#define HFCTL_BATCH_MAX 4096
#define HFCTL_SEQ_LEN_MAX 1048576
#define HFCTL_SEQ_LENS_MAX 16   /* lengths in one --seq-len list (the coordinator's limit) */
#define HFCTL_ITERATIONS_MAX 1000000
#define HFCTL_TASK_TIMEOUT_MAX_S (24 * 3600)
/* The coordinator's limit on devices per task (coordinator/match.c). */
#define HFCTL_DEVICES_PER_TASK_MAX 16 /* the coordinator's MATCH_MAX_DEVICES */
/* A job's cap on its tasks in flight, and its retries of infrastructure
 * failures per task.  0 means "no cap" and "the coordinator's default" in
 * the protocol, so neither can be asked for explicitly. */
#define HFCTL_MAX_RUNNING_MAX 100000
#define HFCTL_MAX_RETRIES_MAX 20
#define HFCTL_FLAKY_RERUNS_MAX 10
/* hf-worker's limit on the length of a worker id (worker/worker-conf.c). */
#define HFCTL_WORKER_ID_MAX 128

/* A list of distinct, non-empty strings; owns its items. */
struct hfctl_list {
	char **items;
	size_t n;
};

void hfctl_list_fini(struct hfctl_list *l);

/* Splits text at commas and appends the items to l (so a repeated option
 * adds to the list).  An empty item ("a,,b", "", "a,") and an item already
 * in l are refused, naming opt ("--models") and the item.  On failure l is
 * unchanged. */
int hfctl_list_split(struct hfctl_list *l, const char *opt, const char *text, char *err,
		     size_t errlen);

/* Parses a whole decimal number in [min, max]: digits with an optional
 * leading "-", nothing else (no blanks, no "+", no "0x"). */
int hfctl_parse_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *ret,
		    char *err, size_t errlen);

/* The same for a whole number in [1, max]. */
int hfctl_parse_u32(const char *opt, const char *text, uint32_t max, uint32_t *ret, char *err,
		    size_t errlen);

/* Parses a duration ("500ms", "5s", "2m", "1h"; bare numbers are ms) that
 * must be at least min_ms. */
int hfctl_parse_duration(const char *opt, const char *text, int64_t min_ms, int64_t *ret_ms,
			 char *err, size_t errlen);

/* Parses when a listing starts (--since): a duration back from now_s
 * ("30m", "12h", "7d", "2w"; a whole number and one unit of s m h d w), a
 * date "YYYY-MM-DD" or a date and time "YYYY-MM-DDTHH:MM[:SS]" (local time),
 * into unix seconds.  A time before 1970 or after now_s is refused. */
int hfctl_parse_since(const char *opt, const char *text, double now_s, double *ret, char *err,
		      size_t errlen);

/* Parses a size in bytes: a whole number with an optional unit, "16GiB",
 * "500MB", "24G", "4096".  KiB MiB GiB TiB and K M G T are powers of 1024,
 * KB MB GB TB powers of 1000, B or nothing bytes (units in any case).  Zero,
 * fractions, blanks, unknown units and sizes beyond 2^64 - 1 are refused. */
int hfctl_parse_size(const char *opt, const char *text, uint64_t *ret, char *err, size_t errlen);

/* Parses a CUDA compute capability MAJOR.MINOR ("8.0", "12.1"; major 1..99,
 * minor 0..99, no leading zeros) into ret, which has at least HFCTL_CC_MAX
 * bytes. */
#define HFCTL_CC_MAX 8
int hfctl_parse_compute_capability(const char *opt, const char *text, char *ret, char *err,
				   size_t errlen);

/* Checks one ROCm gfx target: "gfx" then lowercase letters and digits
 * ("gfx942", "gfx90a", "gfx1100"). */
int hfctl_gfx_target_check(const char *opt, const char *text, char *err, size_t errlen);

/* Checks one runtime requirement: NAME, or NAME OP VERSION with OP one of
 * >= <= == > < ("torch", "transformers>=5.0", "torch==2.11.0+cu128").  NAME
 * starts with a letter or digit and holds letters, digits and . _ -;
 * VERSION starts with a digit and holds letters, digits and . +. */
int hfctl_runtime_spec_check(const char *opt, const char *text, char *err, size_t errlen);

/* Required worker labels, ready for SubmitRequest.labels: a label with an
 * empty value only has to exist.  Owns the keys and values. */
struct hfctl_labels {
	Hf__KeyValue *kv;
	Hf__KeyValue **refs;  /* refs[i] == &kv[i] */
	size_t n;
};

void hfctl_labels_fini(struct hfctl_labels *l);

/* Adds the comma-separated KEY=VALUE or KEY items of text to l.  KEY is
 * letters, digits and . _ - / (as hf-worker accepts them); VALUE must not
 * be empty ("KEY=" is refused: "KEY" alone asks for the label to exist),
 * start or end with a blank, or hold control characters.  A key already in
 * l is refused.  On failure l is unchanged. */
int hfctl_labels_add(struct hfctl_labels *l, const char *opt, const char *text, char *err,
		     size_t errlen);

/* Parses a job id: a positive whole number. */
int hfctl_parse_job_id(const char *text, uint64_t *ret, char *err, size_t errlen);

/* Parses a task id: a positive whole number. */
int hfctl_parse_task_id(const char *text, uint64_t *ret, char *err, size_t errlen);

/* Parses a list of task statuses ("failed,error") into a set indexed by
 * Hf__TaskStatus; ret has HF__TASK_STATUS__STATUS_CANCELLED + 1 slots. */
int hfctl_parse_statuses(const char *opt, const char *text, bool *ret, char *err, size_t errlen);

/* Writes the message for a getopt_long error: c is what it returned (':'
 * for a missing value, '?' for an unknown option or a value given to one
 * that takes none, with optstring starting with ':'), cmd the command for
 * the hint ("submit", or NULL for hfctl's own options), options the table
 * getopt_long was given, whose closest name an unknown option is offered
 * ("did you mean \"--kind\"?").  Call right after getopt_long, with the
 * argv it was given; long options must have values of 256 and up (--help
 * may be 'h'). */
void hfctl_getopt_error(const char *cmd, const struct option *options, int c, char *const *argv,
			char *err, size_t errlen);

/* Takes the one positional JOB argument left after the options of cmd:
 * argv[first] of argc (first is getopt's optind).  Missing, extra or
 * malformed is refused. */
int hfctl_job_arg(const char *cmd, int argc, char *const *argv, int first, uint64_t *ret,
		  char *err, size_t errlen);

/* The same for the one positional TASK argument. */
int hfctl_task_arg(const char *cmd, int argc, char *const *argv, int first, uint64_t *ret,
		   char *err, size_t errlen);

/* Refuses any positional argument left after the options of cmd, from
 * argv[first] on. */
int hfctl_no_args(const char *cmd, int argc, char *const *argv, int first, char *err,
		  size_t errlen);

/* What "hfctl submit" asked for, validated, ready for a SubmitRequest. */
struct hfctl_submit {
	struct hfctl_list models;
	struct hfctl_list families;
	bool all_models;
	Hf__Backend backends[HF__BACKEND__BACKEND_QNN];     /* distinct, so never more */
	size_t n_backends;
	Hf__TaskKind kinds[HF__TASK_KIND__KIND_BENCHMARK];
	size_t n_kinds;
	uint32_t *batch_sizes;
	size_t n_batch_sizes;
	struct hfctl_list precisions;
	struct hfctl_list modes;   /* --mode, "all" expanded; none when not given: eager */
	int32_t priority;
	uint32_t *seq_lens;    /* --seq-len, distinct; none when not given: the */
	size_t n_seq_lens;     /* coordinator's default */
	uint32_t timeout_s;    /* likewise (--task-timeout) */
	uint32_t iterations;   /* likewise */
	uint32_t warmup;       /* likewise */
	char *name;            /* "" when not given */
	char *submitter;
	/* Requirements every task has, beyond its backend; zero or empty when
	 * not asked for. */
	uint64_t min_memory_bytes;
	char min_compute_capability[HFCTL_CC_MAX];
	struct hfctl_list gfx_targets;
	struct hfctl_labels labels;
	struct hfctl_list runtimes;
	uint32_t devices_per_task;  /* 0 when not given: one */
	bool allow_waiting;
	uint32_t max_running;  /* 0 when not given: no cap */
	uint32_t max_retries;  /* 0 when not given: the coordinator's default */
	uint32_t flaky_reruns; /* 0: a failed test is its outcome */
	/* The submission's key: --request-id, else "" (hfctl submit draws one). */
	char request_id[HF_REQUEST_ID_MAX + 1];
	char suite[HF_SUITE_MAX];     /* --suite, "" when not given */
	bool watch;
	bool json;
	bool help;             /* --help: nothing else was checked */
	/* Old spellings used, for the caller's warnings: --timeout for
	 * --task-timeout. */
	bool old_timeout;
};

/* Parses the options of "hfctl submit" (argv[0] is "submit") into ret,
 * applying the defaults: backends cpu, kind test, batch size 1, precision
 * fp32, submitter default_submitter (NULL counts as "").  Refuses unknown
 * backends, kinds, precisions and families, bad numbers, empty or repeated
 * list items, --all together with --models or --family, nothing to run,
 * malformed requirements (sizes, compute capabilities, gfx targets, labels,
 * runtime specs, devices per task), a compute capability without the cuda
 * backend or gfx targets without rocm, --max-running outside
 * 1..HFCTL_MAX_RUNNING_MAX, --max-retries outside 1..HFCTL_MAX_RETRIES_MAX,
 * a --request-id that hf_request_id_valid refuses, and stray arguments.  On success ret is the caller's to release with
 * hfctl_submit_fini. */
int hfctl_submit_parse(int argc, char **argv, const char *default_submitter,
		       struct hfctl_submit *ret, char *err, size_t errlen);

void hfctl_submit_fini(struct hfctl_submit *s);

/* Fills req with s's values; req borrows s's memory and must not outlive
 * it (do not free it with protobuf-c). */
void hfctl_submit_request(const struct hfctl_submit *s, Hf__SubmitRequest *req);

/* Checks s's models against the registry: -ENOENT naming every unknown one
 * with the closest model the registry has, e.g.
 *   unknown models "bret" (did you mean "bert"?), "zzz" (see "hfctl models") */
int hfctl_submit_check_models(const struct hfctl_submit *s, const Hf__ModelsReply *registry,
			      char *err, size_t errlen);

/* What "hfctl cancel" asked for: a whole job (job_id) or one task
 * (task_id, from --task); exactly one of the two is not 0 unless help. */
struct hfctl_cancel {
	uint64_t job_id;
	uint64_t task_id;
	bool json;
	bool help;  /* --help: nothing else was checked */
};

/* Parses "hfctl cancel JOB [--json]" or "hfctl cancel --task TASK [--json]"
 * (argv[0] is "cancel").  Refuses a job and --task together, neither,
 * --task given twice, malformed ids and stray arguments. */
int hfctl_cancel_parse(int argc, char **argv, struct hfctl_cancel *ret, char *err, size_t errlen);

/* What "hfctl drain" and "hfctl undrain" act on: a whole worker, or one of
 * its devices. */
struct hfctl_drain_target {
	char worker_id[HFCTL_WORKER_ID_MAX + 1];
	bool one_device;
	Hf__Backend backend;  /* with one_device */
	uint32_t index;       /* with one_device */
};

/* Parses WORKER or WORKER/BACKEND:INDEX ("gpu-07", "gpu-07/cuda:3").  The
 * text is split at its last "/", so a worker id may itself hold "/"; an
 * empty device part ("rack-1/gpu-07/") names the whole worker.  The worker
 * id is 1 to HFCTL_WORKER_ID_MAX characters without blanks or control
 * characters (as hf-worker accepts it); BACKEND is a backend name and INDEX
 * a whole number, 0 .. 2^31 - 1. */
int hfctl_drain_target_parse(const char *text, struct hfctl_drain_target *ret, char *err,
			     size_t errlen);

/* Takes the one positional WORKER[/BACKEND:INDEX] argument of "hfctl drain"
 * or "hfctl undrain" (cmd) left after its options, argv[first] of argc, and
 * parses it.  Missing, extra or malformed is refused. */
int hfctl_drain_arg(const char *cmd, int argc, char *const *argv, int first,
		    struct hfctl_drain_target *ret, char *err, size_t errlen);

/* Fills req with t and undrain; req borrows t's memory and must not outlive
 * it. */
void hfctl_drain_request(const struct hfctl_drain_target *t, bool undrain, Hf__DrainRequest *req);

#endif
