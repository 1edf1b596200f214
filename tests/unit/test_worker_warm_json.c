/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the fast reader of warm runners' control lines
 * (worker/warm-json.c), against jansson: whatever it takes, jansson takes
 * and reads the same; the usual done lines it does take.
 */
#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "warm-json.h"

/* The fast reader either declines or agrees with jansson. */
static bool agrees(const char *text, size_t len)
{
	json_t *fast = warm_json_object_fast(text, len);
	json_t *slow = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	bool ok = !fast || (slow && json_is_object(slow) && json_equal(fast, slow));

	json_decref(fast);
	json_decref(slow);
	return ok;
}

static const char *const usual[] = {
	"{\"done\":12,\"fatal\":false,\"rss_bytes\":5242880,\"task_inline\":true,\"result\":"
	"{\"status\":\"passed\",\"reason\":\"\",\"weights\":null,\"metrics\":{},"
	"\"env\":{\"runner_version\":\"noop-1\"}}}",
	"{\"done\": 7, \"fatal\": false, \"rss_bytes\": 1073741824, \"task_inline\": true, "
	"\"result\": {\"status\": \"passed\", \"reason\": \"\", \"weights\": \"sha256:ab12\", "
	"\"metrics\": {\"latency_ms\": 12.75, \"throughput\": 1.5e3, \"peak_mem\": -0.0, "
	"\"runs\": [1, 2, 3]}, \"env\": {\"torch\": \"2.3.1\"}}}\r",
	"{\"done\":null,\"fatal\":true,\"device_fault\":true,\"reason\":\"CUDA error: device-side assert\"}",
	"{\"error\":\"the request is not an object with task and result\"}",
	"  {}  ",
};

START_TEST(test_usual_done_lines_are_read_fast_and_as_jansson_reads_them)
{
	for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++) {
		json_t *fast = warm_json_object_fast(usual[i], strlen(usual[i]));
		ck_assert_msg(fast != NULL, "line %zu declined", i);
		json_decref(fast);
		ck_assert_msg(agrees(usual[i], strlen(usual[i])), "line %zu", i);
	}
}
END_TEST

/* Lines outside the fast subset or refused by jansson: declined or read
 * as jansson reads them. */
static const char *const odd[] = {
	"", " ", "[]", "[1]", "\"x\"", "1", "null", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
	"{,}", "{\"a\":1}x", "{\"a\":1} {}", "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":1}}",
	"{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}",
	"{\"a\":+1}", "{\"a\":0x10}", "{\"a\":1e999}", "{\"a\":-1e999}", "{\"a\":1e-999}",
	"{\"a\":123456789012345678}", "{\"a\":-123456789012345678}",
	"{\"a\":1234567890123456789}", "{\"a\":99999999999999999999}",
	"{\"a\":-9223372036854775808}", "{\"a\":9223372036854775808}",
	"{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}",
	"{\"a\":\"x\\\"y\"}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\u00e9\"}",
	"{\"caf\xc3\xa9\":1}", "{\"a\":\"\xff\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}",
	"{\"a\":\"tab\there\"}", "{\"a\":[1,[2,[3,[4]]]]}", "{\"a\":[,]}", "{\"a\":[1,]}",
	"{'a':1}", "{a:1}", "{\"a\" : 1 , \"b\" : [ ] , \"c\" : { } }", "{\"a\":1}\n",
	"{\"a\":1}\f", "\xef\xbb\xbf{}", "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
	"{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}}}",
};

START_TEST(test_odd_lines_are_declined_or_read_as_jansson_reads_them)
{
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		ck_assert_msg(agrees(odd[i], strlen(odd[i])), "line %zu: %s", i, odd[i]);
	/* A NUL byte inside the text, and the text cut anywhere. */
	ck_assert(agrees("{\"a\":\"x\0y\"}", 11));
	ck_assert(agrees("{\"a\":1}\0", 8));
	for (size_t n = 0; n <= strlen(usual[1]); n++)
		ck_assert_msg(agrees(usual[1], n), "cut at %zu", n);
}
END_TEST

/* Every line a few random edits away from a usual one (a fixed seed, so
 * a failure comes back): never taken where jansson refuses, never read
 * otherwise than jansson. */
START_TEST(test_mutated_lines_never_disagree_with_jansson)
{
	static const char alphabet[] = "{}[]\":,.-+eE0123456789 \\tfnulsrax\x01\x7f\xc3\xa9";
	uint64_t seed = 0x9e3779b97f4a7c15u;
	char line[512];

	for (int round = 0; round < 20000; round++) {
		const char *base = usual[round % 3];
		size_t len = strlen(base);
		int edits = 1 + round % 4;

		memcpy(line, base, len);
		for (int e = 0; e < edits; e++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			size_t at = (size_t)(seed >> 8) % (len ? len : 1);
			char c = alphabet[(seed >> 40) % (sizeof(alphabet) - 1)];
			switch (seed % 3) {
			case 0: /* replace */
				line[at] = c;
				break;
			case 1: /* insert */
				if (len + 1 < sizeof(line)) {
					memmove(line + at + 1, line + at, len - at);
					line[at] = c;
					len++;
				}
				break;
			default: /* delete */
				if (len > 0) {
					memmove(line + at, line + at + 1, len - at - 1);
					len--;
				}
				break;
			}
		}
		ck_assert_msg(agrees(line, len), "round %d: %.*s", round, (int)len, line);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("warm_json");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_usual_done_lines_are_read_fast_and_as_jansson_reads_them);
	tcase_add_test(tc, test_odd_lines_are_declined_or_read_as_jansson_reads_them);
	tcase_add_test(tc, test_mutated_lines_never_disagree_with_jansson);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
