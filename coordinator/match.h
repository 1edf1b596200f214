/* SPDX-License-Identifier: MIT
 *
 * Requirements and matching: what a job's tasks need from a device (beyond
 * the backend: device memory, CUDA compute capability, ROCm gfx target,
 * runtime packages and versions, worker labels, number of devices) and the
 * test of one device of one worker against them, with the reason when it
 * does not fit.  Pure logic: no I/O, unit-tested.
 */
#ifndef HF_MATCH_H
#define HF_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfleet.pb-c.h"

/* The most devices one task may ask for (the scheduler's limit). */
#define MATCH_MAX_DEVICES 16

struct match_runtime {
	char *name;          /* "torch" */
	char *op;            /* "", ">=", ">", "==", "<=", "<" */
	char *version;       /* "2.4" or "" */
};

struct match_req {
	uint64_t min_memory_bytes;
	int cc_major, cc_minor;        /* -1: no compute capability asked */
	char **gfx;                    /* any of these gfx targets */
	size_t n_gfx;
	char **label_keys, **label_values;
	size_t n_labels;
	struct match_runtime *runtimes;
	size_t n_runtimes;
	uint32_t devices;              /* devices per task, >= 1 */
};

/* Builds requirements from a submit request.  Returns 0, or -EINVAL with a
 * message naming the bad value. */
int match_req_from_submit(const Hf__SubmitRequest *req, struct match_req **ret, char *err,
			  size_t errlen);

/* To and from the JSON kept in jobs.requirements (so they survive a
 * restart).  match_req_to_json returns malloc'd text or NULL. */
char *match_req_to_json(const struct match_req *r);
int match_req_from_json(const char *json, struct match_req **ret);

void match_req_free(struct match_req *r);

/* True when r is empty (any device of the backend will do). */
bool match_req_trivial(const struct match_req *r);

/* Every requirement a device does not meet, one short phrase each
 * ("memory 24.0 GiB < 40.0 GiB required", "no label pool=a", "torch 2.3,
 * >=2.4 required"), without the device's name.  Only the first max (at
 * most MATCH_MAX_UNMET) are formatted; n counts them all. */
#define MATCH_MAX_UNMET 16
#define MATCH_UNMET_LEN 192
struct match_unmet {
	size_t max;                                  /* in: how many to format */
	size_t n;                                    /* out: how many are unmet */
	char why[MATCH_MAX_UNMET][MATCH_UNMET_LEN];  /* out */
};

/* Fills u with what device dev of the worker described by reg lacks to run
 * a task with requirements r (NULL: none); returns u->n (0: it fits). */
size_t match_device_unmet(const struct match_req *r, const Hf__Register *reg, const Hf__Device *dev,
			  struct match_unmet *u);

/* Joins u's phrases with "; " into out ("...; and 3 more" past max). */
void match_unmet_join(const struct match_unmet *u, char *out, size_t outlen);

/* Whether device dev of the worker described by reg can run a task with
 * requirements r (NULL: none).  When not, why (NULL: not wanted) lists
 * every unmet requirement. */
bool match_device_fits(const struct match_req *r, const Hf__Register *reg, const Hf__Device *dev,
		       char *why, size_t whylen);

/* Compares dotted numeric versions ("2.11.0+cu128" < "2.12"); returns <0,
 * 0, >0.  Non-numeric suffixes are ignored. */
int match_version_cmp(const char *a, const char *b);

/* Matching state for one poll of one worker: the free slots of each of its
 * devices (parallel to reg->devices) and the device being filled. */
struct match_fit {
	const Hf__Register *reg;
	uint64_t worker_hash;      /* sched_name_hash(reg->worker_id) */
	int64_t now_ms;
	int64_t avoid_ms;          /* a retried task avoids the device that failed it this long */
	uint32_t *free;
	/* free[] is room in the worker's queue of tasks leased ahead, not
	 * free slots: a benchmark of one device takes one place there (the
	 * worker starts it alone once the device is idle) instead of needing
	 * the device idle now. */
	bool queueing;
	size_t pos;
	uint32_t extra[MATCH_MAX_DEVICES]; /* out: positions of further devices of the task taken */
	uint8_t n_extra;
};

struct sched_task;

/* A sched_fits_fn: takes t for device f->pos when the device (and, for a
 * task of several devices, enough other idle devices of the same backend)
 * meets the job's requirements (t->job->data, a struct match_req) and has
 * room: a test uses one slot, a benchmark or a multi-device task needs its
 * devices idle and takes them whole (a benchmark queued ahead, f->queueing,
 * one place).  A task retried after an
 * infrastructure failure prefers another device: the one that failed it
 * takes it only once avoid_ms have passed.  Updates f->free. */
bool match_fit_task(const struct sched_task *t, void *arg);

#endif
