/* SPDX-License-Identifier: MIT
 *
 * Job expansion: turns what "hfctl submit" asked for (a SubmitRequest) into
 * the validated plan of one job, the cross product models x backends x kinds
 * x batch sizes x precisions (x modes, for benchmarks), one task each.  Pure logic: the coordinator
 * writes the plan to the database in one transaction.
 */
#ifndef HF_EXPAND_H
#define HF_EXPAND_H

#include <stddef.h>
#include <stdint.h>

#include "hfleet.pb-c.h"
#include "registry.h"

/* Defaults for parameters a request leaves at 0. */
#define EXPAND_DEFAULT_SEQ_LEN 128
#define EXPAND_DEFAULT_ITERATIONS 20
#define EXPAND_DEFAULT_WARMUP 3
#define EXPAND_MAX_BATCH 4096
#define EXPAND_MAX_SEQ_LEN 1048576
#define EXPAND_PRIORITY_MIN (-1000)
#define EXPAND_PRIORITY_MAX 1000
#define EXPAND_DEFAULT_MAX_RETRIES 3
#define EXPAND_MAX_RETRIES 20
#define EXPAND_MAX_RUNNING 100000
#define EXPAND_MAX_FLAKY_RERUNS 10

struct task_spec {
	uint32_t model;          /* index into the registry */
	Hf__Backend backend;
	Hf__TaskKind kind;
	uint32_t batch_size;
	const char *precision;   /* a static name: "fp32" ... */
	uint32_t seq_len;
	const char *mode;        /* a static name: "eager", "cuda-graph", "compile" */
};

/* At most this many sequence lengths in one job. */
#define EXPAND_MAX_SEQ_LENS 16

/* A (model, backend, kind) combination of the job that the registry marks
 * as limited: its tasks are in the plan all the same. */
struct plan_limited {
	uint32_t model;          /* index into the registry */
	Hf__Backend backend;
	Hf__TaskKind kind;
	const char *reason;      /* the registry's text */
	uint32_t n_tasks;        /* the job's tasks of this combination */
};

struct job_plan {
	int32_t priority;
	char *submitter;
	char *name;
	uint32_t timeout_s, iterations, warmup;
	uint32_t seq_lens[EXPAND_MAX_SEQ_LENS];  /* distinct, in the order asked; at least one */
	size_t n_seq_lens;
	uint32_t max_running;    /* 0: no cap */
	uint32_t max_retries;    /* infrastructure failures retried per task */
	uint32_t flaky_reruns;   /* reruns of a failed test */
	struct task_spec *tasks;
	size_t n_tasks;
	struct plan_limited *limited; /* in task order */
	size_t n_limited;
	char *spec_json;         /* the request, normalised, for the jobs table */
	char *request_id;        /* the client's key for the submission, or NULL */
};

/* Validates req against reg and expands it.  max_tasks bounds the size of one
 * job.  On failure returns -EINVAL with *ret_code (ERR_BAD_REQUEST or
 * ERR_UNKNOWN_MODEL) and a message naming every bad value in err. */
int expand_job(const struct registry *reg, const Hf__SubmitRequest *req, size_t max_tasks,
	       struct job_plan **ret_plan, Hf__ErrorCode *ret_code, char *err, size_t errlen);

void job_plan_free(struct job_plan *plan);

#endif
