/* SPDX-License-Identifier: MIT
 *
 * The mode a benchmark result was measured in, against the mode its task
 * asked for.  A runner echoes what it measured in metrics.mode; a runner
 * that predates modes echoes nothing, and what it measured was eager.  A
 * passed benchmark measured in another mode than asked (an older runner
 * given cuda-graph, or a runner that says so) must not be stored under the
 * asked label: result_mode_check says so with the reason, and gives the
 * metrics to store instead (the figures dropped, what the runner reported
 * kept under reported_mode).  Pure; any thread.
 */
#ifndef HF_RESULT_MODE_H
#define HF_RESULT_MODE_H

#include <stddef.h>

/* metrics_json: the result's metrics, a JSON object's text (or NULL);
 * asked: the task's mode, one of hf_mode_list.  Returns 0 when the result
 * was measured in the asked mode; 1 when it was not, with the reason in
 * reason and *ret_metrics the metrics to store (malloc'd; NULL when out of
 * memory: store "{}"). */
int result_mode_check(const char *metrics_json, const char *asked, char *reason, size_t reason_len,
		      char **ret_metrics);

#endif
