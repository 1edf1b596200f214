/* SPDX-License-Identifier: MIT
 *
 * Tests of the warm runner protocol's pure parts (worker/warm-proto.c): the
 * request line, control lines good and bad, VmRSS, and the retire rule.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warm-proto.h"

static int parse(const char *line, struct warm_control *c, char *err, size_t errlen)
{
	return warm_control_parse(line, strlen(line), c, err, errlen);
}

START_TEST(test_request_is_one_json_line_whatever_the_paths)
{
	char *line = NULL;
	size_t len = 0;
	json_t *o;

	ck_assert_int_eq(warm_request_format("/s/tasks/7-1/task.json", "/s/tasks/7-1/result.json",
					     &line, &len),
			 0);
	ck_assert_str_eq(line, "{\"task\":\"/s/tasks/7-1/task.json\",\"result\":"
			       "\"/s/tasks/7-1/result.json\",\"result_inline\":true}\n");
	ck_assert_uint_eq(len, strlen(line));
	free(line);

	/* A newline in a path cannot split the request. */
	ck_assert_int_eq(warm_request_format("/odd\ndir/task.json", "/r\"q.json", &line, &len), 0);
	ck_assert_ptr_eq(strchr(line, '\n'), line + len - 1);
	o = json_loadb(line, len, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "task")), "/odd\ndir/task.json");
	ck_assert_str_eq(json_string_value(json_object_get(o, "result")), "/r\"q.json");
	json_decref(o);
	free(line);

	/* ASCII is formatted without jansson, control characters and DEL
	 * escaped; anything else goes through jansson: both read back. */
	const char *paths[][2] = { { "/t\x01\x7f\\x.json", "/r\tq.json" },
				   { "/caf\xc3\xa9/task.json", "/r.json" } };
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(warm_request_format(paths[i][0], paths[i][1], &line, &len), 0);
		ck_assert_ptr_eq(strchr(line, '\n'), line + len - 1);
		ck_assert_ptr_null(strchr(line, 0x7f));
		o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
		ck_assert_ptr_nonnull(o);
		ck_assert_str_eq(json_string_value(json_object_get(o, "task")), paths[i][0]);
		ck_assert_str_eq(json_string_value(json_object_get(o, "result")), paths[i][1]);
		ck_assert(json_is_true(json_object_get(o, "result_inline")));
		json_decref(o);
		free(line);
	}
}
END_TEST

START_TEST(test_inline_request_carries_the_task_itself)
{
	char *line = NULL;
	size_t len = 0;
	json_t *o;

	ck_assert_int_eq(warm_request_format_inline("{\"task_id\":7,\"model_type\":\"a\\nb\"}",
						    "/r\"q\n.json", &line, &len),
			 0);
	ck_assert_uint_eq(len, strlen(line));
	ck_assert_ptr_eq(strchr(line, '\n'), line + len - 1);
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "task"), "task_id")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "task"), "model_type")),
			 "a\nb");
	ck_assert_str_eq(json_string_value(json_object_get(o, "result")), "/r\"q\n.json");
	ck_assert(json_is_true(json_object_get(o, "result_inline")));
	json_decref(o);
	free(line);
}
END_TEST

START_TEST(test_result_in_a_done_line_is_kept_as_parsed)
{
	struct warm_control c;
	char err[256];

	ck_assert_int_eq(parse("{\"done\": 3}", &c, err, sizeof(err)), 0);
	ck_assert_ptr_null(c.result); /* an older runner: the file */
	warm_control_fini(&c);
	ck_assert_int_eq(parse("{\"done\": 3, \"result\": {\"status\": \"passed\", "
			       "\"metrics\": {\"x\": 1.5}}}",
			       &c, err, sizeof(err)),
			 0);
	ck_assert_ptr_nonnull(c.result);
	ck_assert_str_eq(json_string_value(json_object_get(c.result, "status")), "passed");
	warm_control_fini(&c);
	ck_assert_ptr_null(c.result);
	warm_control_fini(&c); /* twice is harmless */

	/* Only an object; duplicates inside it are refused as in a file. */
	ck_assert_int_eq(parse("{\"done\": 3, \"result\": \"passed\"}", &c, err, sizeof(err)),
			 -EBADMSG);
	ck_assert_str_eq(err, "\"result\" of a done line must be an object: "
			      "\"{\"done\": 3, \"result\": \"passed\"}\"");
	ck_assert_int_eq(parse("{\"done\": 3, \"result\": null}", &c, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(parse("{\"done\": 3, \"result\": {\"status\": \"passed\", \"status\": "
			       "\"failed\"}}",
			       &c, err, sizeof(err)),
			 -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "control line is not JSON"));
	/* An error line's "result" is nobody's. */
	ck_assert_int_eq(parse("{\"error\": \"no\", \"result\": {}}", &c, err, sizeof(err)), 0);
	ck_assert_ptr_null(c.result);
}
END_TEST

START_TEST(test_a_done_line_up_to_the_limit_is_taken)
{
	/* A result as large as the line allows, and one byte more. */
	size_t cap = WARM_CONTROL_LINE_MAX + 2;
	char *line = malloc(cap), err[256];
	const char *head = "{\"done\": 3, \"result\": {\"status\": \"passed\", \"traceback\": \"";
	struct warm_control c;
	size_t n;

	ck_assert_ptr_nonnull(line);
	n = strlen(head);
	memcpy(line, head, n);
	memset(line + n, 'x', WARM_CONTROL_LINE_MAX - n - 3);
	memcpy(line + WARM_CONTROL_LINE_MAX - 3, "\"}}", 4);
	ck_assert_uint_eq(strlen(line), WARM_CONTROL_LINE_MAX);
	ck_assert_int_eq(warm_control_parse(line, WARM_CONTROL_LINE_MAX, &c, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(c.result);
	warm_control_fini(&c);
	ck_assert_int_eq(warm_control_parse(line, WARM_CONTROL_LINE_MAX + 1, &c, err, sizeof(err)),
			 -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "control line is too long"));
	free(line);
}
END_TEST

START_TEST(test_task_inline_is_read_from_done_lines)
{
	struct warm_control c;
	char err[256];

	ck_assert_int_eq(parse("{\"done\": 3}", &c, err, sizeof(err)), 0);
	ck_assert(!c.task_inline); /* an older runner: files */
	ck_assert_int_eq(parse("{\"done\": 3, \"task_inline\": true}", &c, err, sizeof(err)), 0);
	ck_assert(c.task_inline);
	ck_assert_int_eq(parse("{\"done\": 3, \"task_inline\": false}", &c, err, sizeof(err)), 0);
	ck_assert(!c.task_inline);
	ck_assert_int_eq(parse("{\"done\": 3, \"task_inline\": 1}", &c, err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "\"task_inline\" must be true or false: \"{\"done\": 3, \"task_inline\": 1}\"");
}
END_TEST

START_TEST(test_done_lines_are_read_with_their_defaults)
{
	struct warm_control c;
	char err[256];

	ck_assert_int_eq(parse("{\"done\": 12, \"fatal\": false, \"rss_bytes\": 1048576}", &c, err,
			       sizeof(err)),
			 0);
	ck_assert_int_eq(c.kind, WARM_CONTROL_DONE);
	ck_assert(c.has_task_id);
	ck_assert_uint_eq(c.task_id, 12);
	ck_assert(!c.fatal);
	ck_assert(c.has_rss);
	ck_assert_uint_eq(c.rss_bytes, 1048576);

	ck_assert_int_eq(parse("{\"done\": null, \"fatal\": true, \"reason\": \"CUDA error:\\n "
			       "device-side assert\", \"later\": [1]}",
			       &c, err, sizeof(err)),
			 0);
	ck_assert(!c.has_task_id);
	ck_assert(c.fatal);
	ck_assert(!c.has_rss);
	ck_assert_str_eq(c.text, "CUDA error:  device-side assert"); /* one line */
	ck_assert(c.device_fault); /* an older runner says nothing: the device is blamed */

	/* the model tripped a kernel assertion: fatal, but not the device's fault */
	ck_assert_int_eq(parse("{\"done\": 7, \"fatal\": true, \"device_fault\": false}", &c, err,
			       sizeof(err)),
			 0);
	ck_assert(c.fatal);
	ck_assert(!c.device_fault);
	/* device_fault alone means nothing: only a fatal error is anybody's fault */
	ck_assert_int_eq(parse("{\"done\": 7, \"device_fault\": true}", &c, err, sizeof(err)), 0);
	ck_assert(!c.fatal);
	ck_assert(!c.device_fault);

	ck_assert_int_eq(parse(" {\"done\": 3, \"rss_bytes\": null}\r", &c, err, sizeof(err)), 0);
	ck_assert(!c.fatal);
	ck_assert(!c.has_rss);
}
END_TEST

START_TEST(test_error_lines_carry_the_message)
{
	struct warm_control c;
	char err[256];

	ck_assert_int_eq(parse("{\"error\": \"request line is not JSON\"}", &c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.kind, WARM_CONTROL_ERROR);
	ck_assert_str_eq(c.text, "request line is not JSON");
}
END_TEST

START_TEST(test_malformed_control_lines_are_refused_with_what_is_wrong)
{
	static const struct {
		const char *line;
		const char *err;
	} cases[] = {
		{ "done 12", "control line is not JSON: \"done 12\"" },
		{ "[12]", "control line is not a JSON object" },
		{ "{\"status\": \"passed\"}", "neither \"done\" nor \"error\"" },
		{ "{\"done\": \"12\"}", "\"done\" must be a task id or null" },
		{ "{\"done\": -1}", "\"done\" must be a task id or null" },
		{ "{\"done\": 1, \"fatal\": 1}", "\"fatal\" must be true or false" },
		{ "{\"done\": 1, \"fatal\": true, \"device_fault\": \"no\"}",
		  "\"device_fault\" must be true or false" },
		{ "{\"done\": 1, \"rss_bytes\": -5}", "\"rss_bytes\" must be a number of bytes" },
		{ "{\"done\": 1, \"rss_bytes\": 1.5}", "\"rss_bytes\" must be a number of bytes" },
		{ "{\"done\": 1, \"error\": \"x\"}", "both \"done\" and \"error\"" },
		{ "{\"error\": 7}", "\"error\" of a control line must be a string" },
		{ "{\"done\": 1, \"done\": 2}", "control line is not JSON" },
	};
	struct warm_control c;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(err, 0, sizeof(err));
		ck_assert_msg(parse(cases[i].line, &c, err, sizeof(err)) == -EBADMSG, "%s",
			      cases[i].line);
		ck_assert_msg(strstr(err, cases[i].err), "%s: got \"%s\"", cases[i].line, err);
	}
}
END_TEST

START_TEST(test_quoted_garbage_is_cut_and_sanitised)
{
	char line[600], err[256];
	struct warm_control c;

	memset(line, 'x', sizeof(line));
	memcpy(line, "\x01\xff", 2);
	ck_assert_int_eq(warm_control_parse(line, sizeof(line), &c, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "\" ?xxx"));
	ck_assert_ptr_nonnull(strstr(err, "...\""));
	ck_assert_uint_lt(strlen(err), 160);

	ck_assert_int_eq(warm_control_parse(line, WARM_CONTROL_LINE_MAX + 1, &c, err, sizeof(err)),
			 -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

START_TEST(test_statm_resident_is_read_in_bytes)
{
	char text[160];
	uint64_t b = 0;

	ck_assert_int_eq(warm_statm_parse("229781 5120 2301 646 0 58913 0\n", 4096, &b), 0);
	ck_assert_uint_eq(b, 5120ull * 4096);
	ck_assert_int_eq(warm_statm_parse("0 0 0 0 0 0 0\n", 4096, &b), 0); /* a zombie */
	ck_assert_uint_eq(b, 0);
	ck_assert_int_eq(warm_statm_parse("12 34", 4096, &b), 0);
	ck_assert_uint_eq(b, 34ull * 4096);
	ck_assert_int_eq(warm_statm_parse("", 4096, &b), -EBADMSG);
	ck_assert_int_eq(warm_statm_parse("12\n", 4096, &b), -EBADMSG);
	ck_assert_int_eq(warm_statm_parse("12  34\n", 4096, &b), -EBADMSG);
	ck_assert_int_eq(warm_statm_parse("12 -34\n", 4096, &b), -EBADMSG);
	ck_assert_int_eq(warm_statm_parse("12 34kB\n", 4096, &b), -EBADMSG);
	ck_assert_int_eq(warm_statm_parse("12 34\n", 0, &b), -EBADMSG);
	/* No overflow: 20 digits are refused, and so is a product past 64 bits. */
	ck_assert_int_eq(warm_statm_parse("1 99999999999999999999 0\n", 4096, &b), -EBADMSG);
	ck_assert_int_eq(warm_statm_parse("1 9999999999999999999 0\n", 4096, &b), -EBADMSG);
	/* What this process's own file says. */
	FILE *f = fopen("/proc/self/statm", "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	ck_assert_int_eq(warm_statm_parse(text, 4096, &b), 0);
	ck_assert_uint_gt(b, 0);
}
END_TEST

START_TEST(test_runner_is_retired_for_fatal_memory_or_count_and_kept_otherwise)
{
	struct warm_limits lim = { .max_tasks = 3, .max_rss = 16ull << 30 };
	struct warm_control done = { .kind = WARM_CONTROL_DONE };
	char why[256];

	ck_assert(!warm_retire_reason(&lim, 1, 1ull << 30, &done, why, sizeof(why)));
	ck_assert(!warm_retire_reason(&lim, 2, 0, &done, why, sizeof(why))); /* rss unknown */
	ck_assert(!warm_retire_reason(&lim, 2, 16ull << 30, &done, why, sizeof(why))); /* not over */

	ck_assert(warm_retire_reason(&lim, 3, 1ull << 30, &done, why, sizeof(why)));
	ck_assert_str_eq(why, "it served 3 tasks (runner.warm_max_tasks)");

	ck_assert(warm_retire_reason(&lim, 1, (16ull << 30) + (1ull << 29), &done, why, sizeof(why)));
	ck_assert_str_eq(why, "its resident memory, 16.5 GiB, exceeds runner.warm_max_rss (16.0 GiB)");

	done.fatal = true;
	strcpy(done.text, "CUDA error: device-side assert triggered");
	ck_assert(warm_retire_reason(&lim, 1, 0, &done, why, sizeof(why)));
	ck_assert_str_eq(why, "it reported a fatal device error: CUDA error: device-side assert "
			      "triggered");

	/* 0 is no limit. */
	lim = (struct warm_limits){ 0 };
	done.fatal = false;
	ck_assert(!warm_retire_reason(&lim, 100000, UINT64_MAX, &done, why, sizeof(why)));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_warm_proto");
	TCase *tc = tcase_create("warm_proto");

	tcase_add_test(tc, test_request_is_one_json_line_whatever_the_paths);
	tcase_add_test(tc, test_done_lines_are_read_with_their_defaults);
	tcase_add_test(tc, test_inline_request_carries_the_task_itself);
	tcase_add_test(tc, test_task_inline_is_read_from_done_lines);
	tcase_add_test(tc, test_result_in_a_done_line_is_kept_as_parsed);
	tcase_add_test(tc, test_a_done_line_up_to_the_limit_is_taken);
	tcase_add_test(tc, test_error_lines_carry_the_message);
	tcase_add_test(tc, test_malformed_control_lines_are_refused_with_what_is_wrong);
	tcase_add_test(tc, test_quoted_garbage_is_cut_and_sanitised);
	tcase_add_test(tc, test_statm_resident_is_read_in_bytes);
	tcase_add_test(tc, test_runner_is_retired_for_fatal_memory_or_count_and_kept_otherwise);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
