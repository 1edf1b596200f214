/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the runner's result file.  The input is the file's text,
 * handed to result_build exactly as the executor does after reading the file
 * (worker/executor.c), so result_parse and the building of the TaskResult
 * both run.  A result must always come back (only -ENOMEM may fail), and it
 * must keep result.h's promises: every string valid UTF-8 without NUL bytes,
 * the reason and the weights one line without control characters and bounded,
 * metrics_json and env_json JSON objects within RESULT_JSON_MAX.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tail_buf output;

/* Whether s[0..len) is valid UTF-8 without NUL bytes (jansson's test). */
static int utf8_valid(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	int ok = j != NULL && !memchr(s, '\0', len);

	json_decref(j);
	return ok;
}

/* A one-line text: valid UTF-8 and no control characters at all. */
static void check_text(const char *s, int one_line, size_t max)
{
	size_t len;

	if (!s)
		abort();
	len = strlen(s);
	if (max && len > max)
		abort();
	if (!utf8_valid(s, len))
		abort();
	for (size_t i = 0; one_line && i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static void check_object(const char *s)
{
	json_t *o;

	check_text(s, 0, RESULT_JSON_MAX);
	o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
	if (!o || !json_is_object(o))
		abort();
	json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run_outcome o = {
		.task_id = 42,
		.attempt = 1,
		.started_at = 1.0,
		.finished_at = 2.0,
		.spawned = true,
		.result_text = (const char *)data,
		.result_len = size,
		.output = &output,
	};
	Hf__TaskResult *tr = NULL;

	if (size > RESULT_FILE_MAX)
		return 0; /* the executor reports -EFBIG without parsing */
	if (!output.data) {
		/* A runner's output whose kept tail starts inside a character. */
		static const char text[] = "loading \xe2\x9c\x93 model\nforward pass\n\xff tail\n";
		if (tail_buf_init(&output, 16) < 0)
			abort();
		tail_buf_append(&output, text, sizeof(text) - 1);
	}

	if (result_build(&o, &tr) != 0)
		abort();
	if (tr->task_id != 42 || tr->attempt != 1)
		abort();
	check_text(tr->reason, 1, RESULT_REASON_MAX);
	check_text(tr->weights, 1, RESULT_REASON_MAX);
	check_text(tr->log_excerpt, 0, 2 * RESULT_EXCERPT_MAX + 256);
	check_object(tr->metrics_json);
	check_object(tr->env_json);
	switch (tr->status) {
	case HF__TASK_STATUS__STATUS_PASSED:
	case HF__TASK_STATUS__STATUS_FAILED:
	case HF__TASK_STATUS__STATUS_ERROR:
	case HF__TASK_STATUS__STATUS_SKIPPED:
		break;
	default:
		abort(); /* a runner cannot claim timeout or cancelled */
	}
	if (tr->status != HF__TASK_STATUS__STATUS_PASSED && !tr->reason[0])
		abort(); /* only a pass may come without a reason */
	result_free(tr);
	return 0;
}
