/* SPDX-License-Identifier: MIT
 *
 * A queued test task of one job and backend, for the scheduler's unit
 * tests (test_scheduler.c, test_poll_hold.c).
 */
#ifndef SCHED_TASK_FIXTURE_H
#define SCHED_TASK_FIXTURE_H

#include <stdint.h>
#include <string.h>

#include "scheduler.h"

static inline struct sched_task mk(uint64_t id, uint64_t job, Hf__Backend b)
{
	struct sched_task t;
	memset(&t, 0, sizeof(t));
	t.id = id;
	t.job_id = job;
	t.backend = b;
	t.kind = HF__TASK_KIND__KIND_TEST;
	t.batch_size = 1;
	t.precision = "fp32";
	t.state = SCHED_QUEUED;
	return t;
}

#endif
