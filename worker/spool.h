/* SPDX-License-Identifier: MIT
 *
 * The result spool: every result is written durably to
 * <state_dir>/spool/<task_id>-<attempt>.result (a packed TaskResult) before
 * it is sent, and removed only after the coordinator acknowledged it, so a
 * worker killed at any moment loses no reported result.  At start the spool
 * is loaded and everything in it is sent again (results are idempotent by
 * task and attempt).
 *
 * A file that cannot be decoded, or whose content does not match its name,
 * is renamed to "<name>.bad" with a warning and otherwise ignored, so one
 * damaged file never stops a worker from starting.
 *
 * Errors are negative errno values (-ENOSPC for a full disk).  Results
 * returned by spool_load are the caller's (result_free, or
 * spool_results_free for the whole array).  Not thread-safe: one owner (the
 * loop thread); the calls block on the file system.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"

struct spool;

/* Opens (creating it if needed) the spool under state_dir and locks it for
 * this process: -EBUSY when another process has it open. */
int spool_open(const char *state_dir, struct spool **ret_spool);
void spool_close(struct spool *sp);

/* The spool directory. */
const char *spool_dir(const struct spool *sp);

/* Writes r durably under its (task_id, attempt) name, replacing a file of
 * the same name.  On failure nothing of r is left in the spool. */
int spool_write(struct spool *sp, const Hf__TaskResult *r);

/* Removes a result; one that is not there is not an error. */
int spool_remove(struct spool *sp, uint64_t task_id, uint32_t attempt);

/* Moves a result the coordinator refused as invalid out of the way, to
 * "<name>.bad" (kept for a person to look at, never sent again); one that
 * is not there is not an error. */
int spool_set_aside(struct spool *sp, uint64_t task_id, uint32_t attempt);

/* Would the coordinator take r: does a batch of it pass the same
 * validation (hf_msg_decode)?  Returns 0, or -EINVAL with why in err. */
int spool_result_check(const Hf__TaskResult *r, char *err, size_t errlen);

/* The session of this worker's last registration, kept beside the results
 * (<state_dir>/spool/.session) under the same lock: a worker restarted on
 * the same state directory registers under it again, so the coordinator
 * sees the worker it knew come back, not a second worker taking its id.
 * Load returns 0 with *ret = 0 when there is none; a damaged file is
 * ignored (0, with a warning).  Save writes it durably. */
int spool_session_load(struct spool *sp, uint64_t *ret);
int spool_session_save(struct spool *sp, uint64_t session);

/* Loads every spooled result, ordered by task id and attempt.  Files left
 * over by an interrupted write are removed, damaged ones moved aside. */
int spool_load(struct spool *sp, Hf__TaskResult ***ret_results, size_t *ret_n);

void spool_results_free(Hf__TaskResult **results, size_t n);

#endif
