/* SPDX-License-Identifier: MIT
 *
 * Checking a benchmark result's measured mode against its task's (see
 * result-mode.h).  Pure; any thread.
 */
#include "result-mode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hf_proto.h"
#include "hf_validate.h"

int result_mode_check(const char *metrics_json, const char *asked, char *reason, size_t reason_len,
		      char **ret_metrics)
{
	const char *measured = "eager"; /* a runner that predates modes */
	json_t *m = NULL, *v, *kept;
	char shown[48];
	int r = 0;

	*ret_metrics = NULL;
	if (metrics_json && *metrics_json)
		m = json_loads(metrics_json, JSON_REJECT_DUPLICATES, NULL);
	v = json_is_object(m) ? json_object_get(m, "mode") : NULL;
	if (v && !json_is_string(v)) {
		snprintf(reason, reason_len,
			 "the runner's metrics.mode is not a text (valid: %s); its figures are not stored as %s",
			 hf_mode_names(), asked);
		r = 1;
	} else if (v && !hf_mode_valid(json_string_value(v))) {
		const char *s = json_string_value(v);
		snprintf(reason, reason_len,
			 "the runner reported mode \"%s\", not a known mode (valid: %s); its figures are not stored as %s",
			 hf_text_escape(shown, sizeof(shown), s, strlen(s)), hf_mode_names(), asked);
		r = 1;
	} else {
		if (v)
			measured = json_string_value(v);
		if (strcmp(measured, asked) != 0) {
			snprintf(reason, reason_len,
				 "the runner measured mode %s, not the %s this task asked for%s; its figures are not stored as %s",
				 measured, asked, v ? "" : " (it reported no mode: a runner older than modes)", asked);
			r = 1;
		}
	}
	if (r == 1) {
		kept = json_object();
		if (kept && v)
			json_object_set(kept, "reported_mode", v);
		*ret_metrics = kept ? json_dumps(kept, JSON_COMPACT) : NULL;
		json_decref(kept);
	}
	json_decref(m);
	return r;
}
