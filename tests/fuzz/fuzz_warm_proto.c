/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: what a warm runner sends back (worker/warm-proto.h).  The
 * input is the bytes of its control pipe: it is cut into lines the way
 * warm-pool.c's runner_control_bytes does (at '\n', each line
 * NUL-terminated, a line longer than the pool's buffer is refused before
 * parsing) and every line goes to warm_control_parse; a done line then goes
 * to warm_retire_reason as runner_done hands it, and the result it carries
 * ("result", sent in place of the result file) to result_parse_json as the
 * executor checks it (result_build, as fuzz_result does for a file's
 * text).  The whole input is also
 * read as a /proc/PID/statm text by warm_statm_parse, which runner_rss
 * feeds with a NUL-terminated pread buffer.
 *
 * A parsed line must keep warm-proto.h's promises: the text one line of
 * valid UTF-8; a refusal says why in one line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"
#include "warm-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The size of warm-pool.c's line buffer, the NUL included. */
static char line[WARM_CONTROL_LINE_MAX];

static void check_one_line(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);
	char *copy;

	if (len > max)
		abort(); /* not terminated within its buffer */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
	copy = strndup(s, len);
	if (!copy)
		abort();
	result_text_sanitize(copy, len);
	if (memcmp(copy, s, len) != 0)
		abort(); /* not valid UTF-8 */
	free(copy);
}

static void control_line(const char *s, size_t len)
{
	static const struct warm_limits limits[] = { { 0, 0 }, { 3, 1u << 30 } };
	struct warm_control c;
	char err[256], why[WARM_CONTROL_TEXT_MAX + 128];
	int r;

	if (strspn(s, " \t\r") == len)
		return; /* runner_control_line skips blank lines */
	err[0] = '\0';
	r = warm_control_parse(s, len, &c, err, sizeof(err));
	if (r == -EBADMSG) {
		check_one_line(err, sizeof(err) - 1);
		if (!err[0])
			abort();
		return;
	}
	if (r != 0)
		abort();
	check_one_line(c.text, sizeof(c.text) - 1);
	if (c.result) {
		struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
					 .result_json = c.result };
		Hf__TaskResult *res = NULL;

		if (c.kind != WARM_CONTROL_DONE || !json_is_object(c.result))
			abort(); /* only a done line's, only an object */
		r = result_build(&o, &res);
		if (r == 0) {
			check_one_line(res->reason, RESULT_REASON_MAX + 256);
			result_free(res);
		} else if (r != -ENOMEM) {
			abort();
		}
	}
	if (c.kind == WARM_CONTROL_DONE) {
		if (c.device_fault && !c.fatal)
			abort();
		for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
			uint64_t rss = c.has_rss ? c.rss_bytes : 0;
			bool retire = warm_retire_reason(&limits[i], 3, rss, &c, why, sizeof(why));
			if (c.fatal && !retire)
				abort();
		}
	} else if (c.kind != WARM_CONTROL_ERROR || c.task_inline) {
		abort(); /* "task_inline" is a done line's */
	}
	warm_control_fini(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = 0;
	char *status;
	uint64_t rss;
	int r;

	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n') {
			line[len] = '\0';
			control_line(line, len);
			len = 0;
			continue;
		}
		if (len == sizeof(line) - 1) {
			len = 0; /* the pool refuses the runner here */
			break;
		}
		line[len++] = (char)data[i];
	}

	status = malloc(size + 1);
	if (!status)
		abort();
	memcpy(status, data, size);
	status[size] = '\0';
	r = warm_statm_parse(status, 4096, &rss);
	if (r != 0 && r != -EBADMSG)
		abort();
	if (r == 0 && rss % 4096 != 0)
		abort();
	free(status);
	return 0;
}
