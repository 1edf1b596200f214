/* SPDX-License-Identifier: MIT
 *
 * The result spool: every result is written durably to
 * <state_dir>/spool/ before it is sent, and removed only after the
 * coordinator acknowledged it, so a worker killed at any moment loses no
 * reported result.  At start the spool is loaded and everything in it is
 * sent again (results are idempotent by task and attempt).
 *
 * Results written together share one file and one fdatasync:
 * batch-<n>.results holds the magic "HFSPOOL2", the batch's number (8
 * bytes; it grows with every batch), the length of its records and their
 * CRC-32 (4 bytes each, over the number, the length and the records), then
 * per result its packed TaskResult's length (4 bytes) and the packed
 * TaskResult, all little-endian; zeros pad the file to whole pages.  A
 * batch file whose every result was acknowledged (or written again in a
 * later batch) becomes a spare: its magic is overwritten with "HFSPOOL0"
 * and a later batch is written over it, which needs no new file, rename or
 * fsync of the directory; past SPOOL_SPARES_MAX (spool.c) a spare is
 * removed.  Batch files of the older layout ("HFSPOOL1" and the records,
 * ordered by the <n> of their name) and single-result files
 * <task_id>-<attempt>.result (a packed TaskResult) are still loaded.
 *
 * Every file is hostile on load: a batch file that is not one (wrong magic,
 * a length past its end, a checksum that does not match, as a write cut
 * short leaves it, more than SPOOL_FILE_RESULTS_MAX results, over
 * SPOOL_FILE_MAX bytes), and a single-result file that cannot be decoded
 * or whose content does not match its name, is renamed to "<name>.bad"
 * with a warning and otherwise ignored; a result of a batch that decodes
 * but is not one the coordinator would take is written aside alone as
 * "<name>.<n>.bad" and the rest of the batch loads.  One damaged file never
 * stops a worker from starting.  When two files hold the same attempt, the
 * later batch's wins.
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

/* At most this many results, and about this many bytes, share a batch
 * file; a larger batch is written as several files (each fsynced, then one
 * fsync of the directory).  A file of more is refused on load. */
#define SPOOL_BATCH_RESULTS 1024
#define SPOOL_BATCH_BYTES (4u << 20)
#define SPOOL_FILE_RESULTS_MAX 4096
#define SPOOL_FILE_MAX (16u << 20)
/* The largest result (packed) the spool takes. */
#define SPOOL_RESULT_MAX (8u << 20)

/* Writes n results durably, together: one file (more when over the bounds
 * above), a spare or a new one, one fdatasync of it, and one fsync of the
 * directory when a file was created.  On failure
 * nothing of them is left in the spool.  An attempt already in the spool
 * must be removed first (spool_remove): the spool keeps one copy of each. */
int spool_write_batch(struct spool *sp, Hf__TaskResult *const *results, size_t n);

/* spool_write_batch of one result. */
int spool_write(struct spool *sp, const Hf__TaskResult *r);

/* The result of (task_id, attempt) is no longer the spool's: its file
 * becomes a spare (or is removed) when no other result in it is left.  One that is not there is
 * not an error. */
int spool_remove(struct spool *sp, uint64_t task_id, uint32_t attempt);

/* A result the coordinator refused as invalid: written aside as
 * "<task_id>-<attempt>.result.bad" (kept for a person to look at, never
 * sent again) and removed as by spool_remove. */
int spool_set_aside(struct spool *sp, const Hf__TaskResult *r);

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

/* Loads every spooled result, ordered by task id and attempt, and makes
 * them the spool's (spool_remove).  Files left over by an interrupted
 * write are removed, damaged ones moved aside (see above). */
int spool_load(struct spool *sp, Hf__TaskResult ***ret_results, size_t *ret_n);

void spool_results_free(Hf__TaskResult **results, size_t n);

#endif
