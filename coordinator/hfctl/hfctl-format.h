/* SPDX-License-Identifier: MIT
 *
 * hfctl's text rendering: aligned tables, the watch progress line, the
 * per-status summary, CSV fields, durations and timestamps.  Everything here
 * is pure (no I/O, no clock reads) so that it is unit-tested byte for byte;
 * the commands decide what to print and where.
 *
 * Widths are display columns, counted as UTF-8 code points (wide CJK
 * characters count as one; good enough for model names and reasons).
 *
 * Ownership: text is appended to a caller-owned struct hf_buf, which records
 * an allocation failure in its oom flag; a table is created with
 * hfctl_table_new and freed with hfctl_table_free.  Not thread-safe per
 * object; different objects may be used from different threads.
 */
#ifndef HFCTL_FORMAT_H
#define HFCTL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hf_util.h"

/* ---- task counts ---- */

/* One slot per Hf__TaskStatus value; slot 0 (unspecified) stays unused. */
#define HFCTL_N_STATUS (HF__TASK_STATUS__STATUS_CANCELLED + 1)

struct hfctl_counts {
	uint32_t total;
	uint32_t n[HFCTL_N_STATUS];
};

/* Fills ret from a JobStatus; statuses this build does not know are left out
 * of the per-status slots but still part of total. */
void hfctl_counts_from_job(const Hf__JobStatus *js, struct hfctl_counts *ret);

/* Counts one more task with status s (and one more in total). */
void hfctl_counts_add(struct hfctl_counts *c, Hf__TaskStatus s);

/* Tasks in a final state (passed failed error timeout skipped cancelled). */
uint32_t hfctl_counts_done(const struct hfctl_counts *c);

/* Tasks that ended failed, error or timeout: what makes "watch" exit 1. */
uint32_t hfctl_counts_failed(const struct hfctl_counts *c);

/* Appends "300 tasks: 250 passed, 3 failed, 2 error, 16 skipped": the total,
 * then every non-zero status in the order passed failed error timeout
 * skipped cancelled running leased queued ("1 task", "0 tasks" alone). */
void hfctl_summary_format(const struct hfctl_counts *c, struct hf_buf *out);

/* ---- the watch progress line ---- */

/* The widest progress bar drawn, between its brackets. */
#define HFCTL_BAR_MAX 40
/* Narrower than this and the bar is left out rather than drawn uselessly. */
#define HFCTL_BAR_MIN 10

/* Writes the progress line for c into buf (always terminated):
 *
 *   [#########.......]  57% 171/300  passed 150 failed 3 error 2 skipped 16 running 4 queued 125  elapsed 1m12s
 *
 * passed failed error skipped running queued are always shown (running
 * includes leased); timeout and cancelled only when not zero.  The percentage
 * and the bar count finished tasks and round down, so 100% means all done; a
 * job of no tasks is 100%.
 *
 * width is the terminal's: the line is kept to width - 1 columns so that it
 * never wraps and "\r" redraws it in place.  The bar takes what the text
 * leaves, from HFCTL_BAR_MIN up to HFCTL_BAR_MAX.  When the full text leaves
 * too little, the counts shrink to the ones worth a glance (failed, error,
 * timeout, cancelled, running; only those not zero), then go, keeping
 *
 *   [########################..............]  57% 171/300  elapsed 1m12s
 *
 * and below that the bar goes too and the line is cut at the end.  width 0
 * means no terminal: the full text without a bar and without a limit (the
 * plain line for logs).  Returns the line's length. */
size_t hfctl_progress_format(const struct hfctl_counts *c, int64_t elapsed_ms, size_t width,
			     char *buf, size_t len);

/* ---- tables ---- */

struct hfctl_column {
	const char *title;
	bool right;        /* right-aligned (numbers) */
	size_t max_width;  /* longer cells are cut and end in "..."; 0 = no limit */
};

struct hfctl_table;

/* Creates a table with ncols columns; cols is used by reference and must
 * outlive the table.  Returns NULL when out of memory; hfctl_table_add and
 * hfctl_table_render accept that NULL and report the failure through the
 * output buffer's oom flag, so that callers check once, as with hf_buf. */
struct hfctl_table *hfctl_table_new(const struct hfctl_column *cols, size_t ncols);

/* Column col's cells are not cut whatever its max_width (--wide); before
 * the rows are added.  A NULL t is ignored. */
void hfctl_table_whole(struct hfctl_table *t, size_t col);

void hfctl_table_free(struct hfctl_table *t);

/* Appends a row of ncols cells (NULL is an empty cell).  Cells are copied
 * with control characters (newlines, tabs, escapes) turned into spaces, so
 * one row is one line and a reason cannot drive the terminal.  A failed
 * allocation is remembered and reported by hfctl_table_render. */
void hfctl_table_add(struct hfctl_table *t, const char *const *cells);

/* Appends the header and the rows, each line ending in "\n": columns are
 * padded to their widest cell and separated by two spaces; no line ends in
 * blanks (the last column is not padded, empty cells at the end leave no
 * separators behind).  Sets
 * out->oom when the table is NULL or lost a row. */
void hfctl_table_render(const struct hfctl_table *t, struct hf_buf *out);

/* s, or "-" when it is NULL or empty: a table cell for a missing value. */
const char *hfctl_dash(const char *s);

/* A task's benchmark mode as tables show it: "-" for a test (tests ignore
 * the mode), "eager" where a coordinator older than modes sent none. */
const char *hfctl_mode_shown(Hf__TaskKind kind, const char *mode);

/* ---- registry limits ---- */

/* Appends the scope of a registry limit as the registry spells it: "*"
 * (every backend), "cuda" (both kinds), "cuda/benchmark". */
void hfctl_limit_scope(Hf__Backend backend, Hf__TaskKind kind, struct hf_buf *out);

/* Appends a model's limit scopes joined by ", " ("*", "cuda/benchmark");
 * "-" for none: the LIMITS cell of "hfctl models". */
void hfctl_model_limits_format(const Hf__ModelInfo *m, struct hf_buf *out);

/* Appends one limited combination of a submitted job, without a newline:
 * "rag on cpu (test, 2 tasks): the registry marks it limited: REASON". */
void hfctl_limited_format(const Hf__LimitedTasks *l, struct hf_buf *out);

/* ---- fleet summaries ---- */

/* Appends a worker's devices as "cuda:0, cuda:1, cpu:0 x2": backend:index,
 * with " xN" for a device that runs N > 1 tasks at once; "-" for none. */
void hfctl_devices_format(Hf__Device *const *devs, size_t n, struct hf_buf *out);

/* Appends a worker's runtimes as "torch 2.11.0+cu128, transformers 5.17.0",
 * one that is not available as "torch absent" (a name alone when the
 * version is not known); "-" for none. */
void hfctl_runtimes_format(Hf__Runtime *const *rts, size_t n, struct hf_buf *out);

/* Appends the fleet's devices (hfctl devices) as a table
 *
 *   WORKER  DEVICE  NAME  MEMORY  ARCH  DRIVER  UTIL  MEM-USED  TEMP  POWER  RUNNING  CONNECTED
 *
 * then "N devices on M workers", then, when r->absent is not empty, an empty
 * line, "absent backends:" and one "  worker/backend: reason" line each.
 * MEMORY and MEM-USED are GiB with one decimal ("-" for 0, which is what a
 * worker that cannot read them sends); ARCH is the device's compute
 * capability or gfx target attribute, else its arch, with " MIG" when the
 * mig attribute is "enabled"; a declared device's NAME ends in
 * " (declared)".  UTIL, TEMP and POWER are "-" when negative (not
 * available), and every telemetry column is "-" when the device sent none.
 * Control characters in what workers reported become spaces. */
void hfctl_devices_table_format(const Hf__DevicesReply *r, struct hf_buf *out);

/* Splits a DevicesReply.absent key "worker/backend" at its last "/": the
 * worker is the first *ret_worker_len bytes, *ret_backend what follows the
 * "/" (the whole key is the worker and the backend is "" when there is
 * none). */
void hfctl_absent_key_split(const char *key, size_t *ret_worker_len, const char **ret_backend);

/* Appends bytes as GiB with one decimal, "79.6 GiB"; "-" for 0. */
void hfctl_gib_format(uint64_t bytes, struct hf_buf *out);

/* ---- drain and explain ---- */

/* Appends what "hfctl drain" and "hfctl undrain" print for the request
 * that was sent and the reply's count of devices, with a newline:
 *
 *   worker gpu-07: 8 devices draining
 *   worker gpu-07: 1 device back in service
 *   gpu-07/cuda:3: draining
 *   gpu-07/cuda:3: back in service
 *
 * For one device the count is not shown (it is that device). */
void hfctl_drain_format(const Hf__DrainRequest *req, uint32_t devices, struct hf_buf *out);

/* The CONNECTED cell of "hfctl workers": "yes", or "no, since
 * 2026-12-04 12:03:10" (local time of its last poll). */
void hfctl_connected_format(bool connected, double last_seen, char *buf, size_t len);

/* The DRAINED cell: "yes" (the whole worker), "cuda:0,cuda:3" (those
 * devices) or "no". */
void hfctl_worker_drains_cell(const Hf__WorkerInfo *w, struct hf_buf *out);

/* One drain, no newline: "gpu-07/cuda:3: drained by alice since
 * 2026-12-04 12:03:10 (5 min ago)" ("by" left out when not recorded). */
void hfctl_drain_line_format(const char *worker_id, const Hf__Drain *d, double now, struct hf_buf *out);

/* Appends "hfctl explain"'s text for r:
 *
 *   task 123: queued \u2014 no device can take it now
 *     gpu-01 cuda:0: busy (2 of 2 slots)
 *     gpu-02: drained
 *
 * the status and, after an em dash, the summary (left out when empty), then
 * each non-empty reason on a line of its own indented by two spaces.
 * Control characters in the coordinator's text become spaces, so one
 * reason is one line. */
void hfctl_explain_format(const Hf__ExplainReply *r, struct hf_buf *out);

/* Appends one worker's or device's DeviceFit as one line (no newline):
 *
 *   gpu-3/cuda:0: memory 24.0 GiB < 40.0 GiB required; no label pool=a
 *   gpu-5: disconnected since 12:03:10 (18 min); it could run them
 *   cpu-1: no cuda device (libcuda.so.1 not found)
 *   gpu-4/cuda:1: quarantined (3 infrastructure failures in a row)
 *
 * hf_fit_line in local time, the strings escaped for the terminal (control
 * characters become spaces), now being the time (unix seconds) to count from. */
void hfctl_device_fit_format(const Hf__DeviceFit *f, double now, struct hf_buf *out);

/* Appends the refusal of an unsatisfiable submit from its structured
 * list: the coordinator's first clause, a line per worker or device, "and
 * M more" when the coordinator left some out, then the --allow-waiting
 * hint. */
void hfctl_unsatisfiable_list_format(const Hf__Error *e, struct hf_buf *out);

/* ---- messages ---- */

/* Appends the message for a submit the coordinator refused as
 * unsatisfiable: its message, then "(use --allow-waiting to queue the tasks
 * anyway)" unless it already mentions --allow-waiting (on a line of its own
 * when the message has several). */
void hfctl_unsatisfiable_format(const char *message, struct hf_buf *out);

/* ---- CSV (RFC 4180) ---- */

/* Appends s as one field: quoted, with quotes doubled, when it holds a
 * comma, a double quote, CR or LF; as is otherwise.  NULL is an empty
 * field. */
void hfctl_csv_field(struct hf_buf *out, const char *s);

/* Appends n fields separated by commas and the record's CRLF. */
void hfctl_csv_record(struct hf_buf *out, const char *const *fields, size_t n);

/* ---- durations and times ---- */

/* Writes a duration for people: "0s", "850ms", "2.5s", "7s", "45s",
 * "1m12s", "2h03m", "3d04h".  Below 10 s tenths of a second show unless they
 * are zero; from 10 s up the next smaller unit is the last shown.  Values
 * are cut, not rounded; negative durations count as 0.  buf is always
 * terminated. */
void hfctl_duration_format(int64_t ms, char *buf, size_t len);

/* Writes a unix time as local "YYYY-MM-DD HH:MM:SS", or "-" for 0 (never). */
void hfctl_time_format(double unix_s, char *buf, size_t len);

/* Writes how long before now a unix time was, in whole seconds: "4s ago",
 * "1m12s ago"; "never" for 0; a time in the future (clock skew) is "0s ago". */
void hfctl_ago_format(double now_s, double then_s, char *buf, size_t len);

/* Display width of a UTF-8 string (code points). */
size_t hfctl_text_width(const char *s);

#endif
