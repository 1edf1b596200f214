/* SPDX-License-Identifier: MIT
 *
 * Unit tests for turning a finished runner into a TaskResult
 * (worker/result.c): the result file's validation, the outcomes the worker
 * decides itself, the log excerpt and the bounded output tail.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

/* The result of a runner that exited 0 after writing text as its result. */
static Hf__TaskResult *build_from_file(const char *text)
{
	struct run_outcome o = {
		.task_id = 42,
		.attempt = 2,
		.device_index = 0,
		.started_at = 1000.0,
		.finished_at = 1012.5,
		.spawned = true,
		.result_text = text,
		.result_len = strlen(text),
	};
	Hf__TaskResult *r = NULL;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_ptr_nonnull(r);
	return r;
}

static void assert_invalid(const char *text, const char *what)
{
	Hf__TaskResult *r = build_from_file(text);

	ck_assert(!r->infrastructure); /* the runner's own answer, however garbled */
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_msg(strncmp(r->reason, "runner wrote an invalid result: ", 32) == 0, "reason: %s",
		      r->reason);
	ck_assert_msg(strstr(r->reason, what), "reason \"%s\" does not mention \"%s\"", r->reason,
		      what);
	ck_assert_str_eq(r->metrics_json, "{}");
	result_free(r);
}

START_TEST(test_valid_result_maps_every_field)
{
	Hf__TaskResult *r = build_from_file(
		"{\"status\": \"passed\", \"reason\": \"\", \"weights\": \"random-init\","
		" \"metrics\": {\"load_s\": 1.5, \"latency_ms\": {\"p50\": 12.25}},"
		" \"env\": {\"torch\": \"2.5.1\"}, \"outputs\": {\"finite\": true},"
		" \"future_field\": [1, 2]}");
	json_t *env;

	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_uint_eq(r->task_id, 42);
	ck_assert_uint_eq(r->attempt, 2);
	ck_assert_str_eq(r->reason, "");
	ck_assert_str_eq(r->weights, "random-init");
	ck_assert_str_eq(r->metrics_json, "{\"load_s\":1.5,\"latency_ms\":{\"p50\":12.25}}");
	env = json_loads(r->env_json, 0, NULL);
	ck_assert_ptr_nonnull(env);
	ck_assert_str_eq(json_string_value(json_object_get(env, "torch")), "2.5.1");
	ck_assert(json_is_true(json_object_get(json_object_get(env, "outputs"), "finite")));
	json_decref(env);
	ck_assert_int_eq(r->exit_code, 0);
	ck_assert(r->started_at == 1000.0 && r->finished_at == 1012.5);
	result_free(r);
}
END_TEST

START_TEST(test_failed_result_keeps_reason_and_traceback_in_excerpt)
{
	Hf__TaskResult *r = build_from_file(
		"{\"status\": \"failed\", \"reason\": \"outputs are not finite\", \"weights\": null,"
		" \"traceback\": \"Traceback (most recent call last):\\nValueError: nan\"}");

	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_FAILED);
	ck_assert_str_eq(r->reason, "outputs are not finite");
	ck_assert_str_eq(r->weights, "");
	ck_assert_ptr_nonnull(strstr(r->log_excerpt, "ValueError: nan"));
	result_free(r);
}
END_TEST

START_TEST(test_missing_status_is_refused)
{
	assert_invalid("{\"reason\": \"x\"}", "\"status\" is missing");
}
END_TEST

START_TEST(test_unknown_status_is_refused)
{
	assert_invalid("{\"status\": \"maybe\", \"reason\": \"x\"}", "\"maybe\"");
	/* timeout is a task status, but only the worker decides it */
	assert_invalid("{\"status\": \"timeout\", \"reason\": \"x\"}", "\"timeout\"");
	assert_invalid("{\"status\": 1}", "\"status\" must be a string");
}
END_TEST

START_TEST(test_non_object_json_is_refused)
{
	assert_invalid("[\"passed\"]", "not a JSON object");
	assert_invalid("\"passed\"", "not");
}
END_TEST

START_TEST(test_truncated_json_is_refused)
{
	assert_invalid("{\"status\": \"passed\", \"metrics\": {", "not valid JSON");
	assert_invalid("", "not valid JSON");
}
END_TEST

START_TEST(test_huge_reason_is_cut_to_the_limit)
{
	size_t n = 100000;
	char *text = malloc(n + 64);
	Hf__TaskResult *r;

	strcpy(text, "{\"status\": \"error\", \"reason\": \"");
	size_t len = strlen(text);
	memset(text + len, 'x', n);
	strcpy(text + len + n, "\"}");
	r = build_from_file(text);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_uint_eq(strlen(r->reason), RESULT_REASON_MAX);
	ck_assert_str_eq(r->reason + RESULT_REASON_MAX - 3, "...");
	result_free(r);
	free(text);
}
END_TEST

START_TEST(test_reason_is_cut_on_a_character_boundary)
{
	/* 2-byte characters: the cut must not leave half of one. */
	size_t n = 2000;
	char *text = malloc(2 * n + 64);
	Hf__TaskResult *r;

	strcpy(text, "{\"status\": \"error\", \"reason\": \"");
	size_t len = strlen(text);
	for (size_t i = 0; i < n; i++)
		memcpy(text + len + 2 * i, "\xc3\xa9", 2);
	strcpy(text + len + 2 * n, "\"}");
	r = build_from_file(text);
	size_t rl = strlen(r->reason);
	ck_assert_uint_le(rl, RESULT_REASON_MAX);
	ck_assert_str_eq(r->reason + rl - 3, "...");
	ck_assert_uint_eq((rl - 3) % 2, 0);
	result_free(r);
	free(text);
}
END_TEST

START_TEST(test_skipped_without_reason_is_refused)
{
	assert_invalid("{\"status\": \"skipped\"}", "\"reason\" is required");
	assert_invalid("{\"status\": \"failed\", \"reason\": \"   \"}", "\"reason\" is required");
	assert_invalid("{\"status\": \"error\", \"reason\": null}", "\"reason\" is required");
}
END_TEST

START_TEST(test_members_of_the_wrong_type_are_named)
{
	assert_invalid("{\"status\": \"passed\", \"metrics\": [1]}", "\"metrics\" must be an object");
	assert_invalid("{\"status\": \"passed\", \"env\": \"x\"}", "\"env\" must be an object");
	assert_invalid("{\"status\": \"passed\", \"outputs\": 3}", "\"outputs\" must be an object");
	assert_invalid("{\"status\": \"passed\", \"weights\": 1}", "\"weights\" must be a string");
	assert_invalid("{\"status\": \"passed\", \"reason\": 1}", "\"reason\" must be a string");
	assert_invalid("{\"status\": \"error\", \"reason\": \"r\", \"traceback\": {}}",
		       "\"traceback\" must be a string");
	assert_invalid("{\"status\": \"passed\", \"status\": \"failed\"}", "duplicate");
}
END_TEST

START_TEST(test_oversized_metrics_are_refused)
{
	size_t n = RESULT_JSON_MAX + 10;
	char *text = malloc(n + 128);

	strcpy(text, "{\"status\": \"passed\", \"metrics\": {\"blob\": \"");
	size_t len = strlen(text);
	memset(text + len, 'a', n);
	strcpy(text + len + n, "\"}}");
	assert_invalid(text, "\"metrics\" is larger than");
	free(text);
}
END_TEST

START_TEST(test_no_metrics_are_invented)
{
	Hf__TaskResult *r = build_from_file("{\"status\": \"skipped\", \"reason\": \"no fp16 on cpu\"}");

	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_SKIPPED);
	ck_assert_str_eq(r->metrics_json, "{}");
	ck_assert_str_eq(r->env_json, "{}");
	result_free(r);
}
END_TEST

START_TEST(test_reason_is_made_one_line)
{
	Hf__TaskResult *r = build_from_file("{\"status\": \"error\", \"reason\": \"a\\nb\\tc\"}");

	ck_assert_str_eq(r->reason, "a b c");
	result_free(r);
}
END_TEST

START_TEST(test_no_result_file_after_exit_names_the_status)
{
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true, .exit_status = 3,
				 .result_err = -ENOENT };
	Hf__TaskResult *r;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "runner exited with status 3 without writing a result");
	ck_assert_int_eq(r->exit_code, 3);
	ck_assert(r->infrastructure);
	result_free(r);
}
END_TEST

START_TEST(test_exit_0_without_a_result_is_the_runners_error_not_the_devices)
{
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true, .exit_status = 0,
				 .result_err = -ENOENT };
	Hf__TaskResult *r;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "runner exited 0 without writing a result");
	ck_assert_int_eq(r->exit_code, 0);
	ck_assert(!r->infrastructure); /* never counts towards a quarantine */
	result_free(r);

	/* Nor does an unreadable one. */
	o.result_err = 0;
	o.result_text = "{\"status\": ";
	o.result_len = strlen(o.result_text);
	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert(!r->infrastructure);
	result_free(r);
}
END_TEST

START_TEST(test_no_result_file_after_a_signal_names_the_signal)
{
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
				 .term_signal = SIGKILL, .result_err = -ENOENT };
	Hf__TaskResult *r;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "runner was killed by signal SIGKILL");
	ck_assert_int_eq(r->exit_code, 128 + SIGKILL);
	ck_assert(r->infrastructure); /* an OOM kill is retried, not an outcome */
	result_free(r);
}
END_TEST

START_TEST(test_a_valid_result_counts_even_if_the_runner_then_crashed)
{
	const char *text = "{\"status\": \"passed\", \"weights\": \"pretrained\"}";
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
				 .term_signal = SIGSEGV, .result_text = text,
				 .result_len = strlen(text) };
	Hf__TaskResult *r;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_int_eq(r->exit_code, 128 + SIGSEGV);
	ck_assert(!r->infrastructure);
	result_free(r);
}
END_TEST

START_TEST(test_the_workers_decision_wins_over_the_result_file)
{
	const char *text = "{\"status\": \"passed\"}";
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
				 .term_signal = SIGTERM,
				 .forced_status = HF__TASK_STATUS__STATUS_TIMEOUT,
				 .forced_reason = "runner did not finish within 5 s",
				 .result_text = text, .result_len = strlen(text) };
	Hf__TaskResult *r;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_TIMEOUT);
	ck_assert_str_eq(r->reason, "runner did not finish within 5 s");
	ck_assert(!r->infrastructure); /* a hang is the model's outcome */
	result_free(r);
}
END_TEST

START_TEST(test_result_file_too_large_is_invalid)
{
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
				 .result_err = -EFBIG };
	Hf__TaskResult *r;

	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_ptr_nonnull(strstr(r->reason, "invalid result: the result file is larger than"));
	result_free(r);
}
END_TEST

START_TEST(test_runner_that_never_started_has_exit_code_minus_one)
{
	Hf__TaskResult *r;

	ck_assert_int_eq(result_new_error(7, 3, 0, 5.0, "worker has no device cuda:1", &r), 0);
	ck_assert_uint_eq(r->task_id, 7);
	ck_assert_uint_eq(r->attempt, 3);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "worker has no device cuda:1");
	ck_assert_int_eq(r->exit_code, -1);
	ck_assert_str_eq(r->metrics_json, "{}");
	result_free(r);
}
END_TEST

START_TEST(test_tail_buffer_keeps_only_the_last_bytes)
{
	struct tail_buf t;
	char ref[5000], *out;
	size_t ref_len = 0, out_len;
	unsigned seed = 1;

	ck_assert_int_eq(tail_buf_init(&t, 100), 0);
	/* Appends of many sizes, some larger than the buffer, each byte
	 * numbered so a wrong order shows. */
	for (int round = 0; round < 200; round++) {
		char chunk[300];
		size_t n = (size_t)(rand_r(&seed) % 250);
		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)('a' + (ref_len + i) % 26);
		tail_buf_append(&t, chunk, n);
		if (ref_len + n > sizeof(ref)) { /* keep the reference short too */
			size_t drop = ref_len + n - sizeof(ref);
			memmove(ref, ref + drop, ref_len - drop);
			ref_len -= drop;
		}
		memcpy(ref + ref_len, chunk, n);
		ref_len += n;

		size_t want = ref_len < 100 ? ref_len : 100;
		ck_assert_uint_le(t.len, 100);
		ck_assert_int_eq(tail_buf_last(&t, 1000, &out, &out_len), 0);
		ck_assert_uint_eq(out_len, want);
		ck_assert_int_eq(memcmp(out, ref + ref_len - want, want), 0);
		free(out);
	}
	ck_assert_int_eq(tail_buf_last(&t, 10, &out, &out_len), 0);
	ck_assert_uint_eq(out_len, 10);
	ck_assert_int_eq(memcmp(out, ref + ref_len - 10, 10), 0);
	free(out);
	tail_buf_fini(&t);
	ck_assert_int_eq(tail_buf_init(&t, 0), -EINVAL);
}
END_TEST

START_TEST(test_excerpt_is_the_last_4k_of_output_and_says_what_was_dropped)
{
	struct tail_buf t;
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
				 .result_err = -ENOENT, .output = &t };
	char line[100];
	Hf__TaskResult *r;

	ck_assert_int_eq(tail_buf_init(&t, 65536), 0);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(line, sizeof(line), "line %04d of the runner's output\n", i);
		tail_buf_append(&t, line, (size_t)n);
	}
	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_ptr_nonnull(strstr(r->log_excerpt, "line 0999 of the runner's output\n"));
	ck_assert_ptr_null(strstr(r->log_excerpt, "line 0000"));
	ck_assert_ptr_nonnull(strstr(r->log_excerpt, "earlier bytes of output not kept]"));
	ck_assert_uint_le(strlen(r->log_excerpt), RESULT_EXCERPT_MAX + 100);
	result_free(r);
	tail_buf_fini(&t);
}
END_TEST

START_TEST(test_excerpt_is_valid_text_whatever_the_runner_printed)
{
	struct tail_buf t;
	struct run_outcome o = { .task_id = 1, .attempt = 1, .spawned = true,
				 .result_err = -ENOENT, .output = &t };
	static const char noise[] = "ok\0bad\xff\xfe utf8 \xc3\xa9 \xe2\x82 cut\x1b[31m\n";
	Hf__TaskResult *r;

	ck_assert_int_eq(tail_buf_init(&t, 4096), 0);
	tail_buf_append(&t, noise, sizeof(noise) - 1);
	ck_assert_int_eq(result_build(&o, &r), 0);
	ck_assert_str_eq(r->log_excerpt, "ok?bad?? utf8 \xc3\xa9 ?? cut?[31m\n");
	result_free(r);
	tail_buf_fini(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_result");
	TCase *tc = tcase_create("result");

	tcase_add_test(tc, test_valid_result_maps_every_field);
	tcase_add_test(tc, test_failed_result_keeps_reason_and_traceback_in_excerpt);
	tcase_add_test(tc, test_missing_status_is_refused);
	tcase_add_test(tc, test_unknown_status_is_refused);
	tcase_add_test(tc, test_non_object_json_is_refused);
	tcase_add_test(tc, test_truncated_json_is_refused);
	tcase_add_test(tc, test_huge_reason_is_cut_to_the_limit);
	tcase_add_test(tc, test_reason_is_cut_on_a_character_boundary);
	tcase_add_test(tc, test_skipped_without_reason_is_refused);
	tcase_add_test(tc, test_members_of_the_wrong_type_are_named);
	tcase_add_test(tc, test_oversized_metrics_are_refused);
	tcase_add_test(tc, test_no_metrics_are_invented);
	tcase_add_test(tc, test_reason_is_made_one_line);
	tcase_add_test(tc, test_no_result_file_after_exit_names_the_status);
	tcase_add_test(tc, test_exit_0_without_a_result_is_the_runners_error_not_the_devices);
	tcase_add_test(tc, test_no_result_file_after_a_signal_names_the_signal);
	tcase_add_test(tc, test_a_valid_result_counts_even_if_the_runner_then_crashed);
	tcase_add_test(tc, test_the_workers_decision_wins_over_the_result_file);
	tcase_add_test(tc, test_result_file_too_large_is_invalid);
	tcase_add_test(tc, test_runner_that_never_started_has_exit_code_minus_one);
	tcase_add_test(tc, test_tail_buffer_keeps_only_the_last_bytes);
	tcase_add_test(tc, test_excerpt_is_the_last_4k_of_output_and_says_what_was_dropped);
	tcase_add_test(tc, test_excerpt_is_valid_text_whatever_the_runner_printed);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
