/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the measured mode of a benchmark result against its
 * task's (coordinator/result-mode.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "result-mode.h"

static char reason[512];

START_TEST(test_same_mode_is_kept)
{
	char *m = (char *)1;

	ck_assert_int_eq(result_mode_check("{\"mode\":\"cuda-graph\",\"latency_ms\":{\"p50\":1}}", "cuda-graph",
					   reason, sizeof(reason), &m), 0);
	ck_assert_ptr_null(m);
	/* A runner older than modes measured eager: right for an eager task. */
	ck_assert_int_eq(result_mode_check("{\"latency_ms\":{\"p50\":1}}", "eager", reason, sizeof(reason), &m), 0);
	ck_assert_int_eq(result_mode_check("", "eager", reason, sizeof(reason), &m), 0);
	ck_assert_int_eq(result_mode_check(NULL, "eager", reason, sizeof(reason), &m), 0);
}
END_TEST

START_TEST(test_older_runner_is_not_labelled_graph)
{
	char *m = NULL;

	ck_assert_int_eq(result_mode_check("{\"latency_ms\":{\"p50\":3.9}}", "cuda-graph", reason, sizeof(reason), &m),
			 1);
	ck_assert_msg(strstr(reason, "measured mode eager, not the cuda-graph this task asked for") &&
			      strstr(reason, "a runner older than modes"),
		      "%s", reason);
	ck_assert_str_eq(m, "{}"); /* the figures are dropped */
	free(m);
}
END_TEST

START_TEST(test_other_mode_is_refused_and_reported)
{
	char *m = NULL;

	ck_assert_int_eq(result_mode_check("{\"mode\":\"eager\",\"latency_ms\":{\"p50\":3.9}}", "compile", reason,
					   sizeof(reason), &m),
			 1);
	ck_assert_msg(strstr(reason, "measured mode eager, not the compile this task asked for"), "%s", reason);
	ck_assert_str_eq(m, "{\"reported_mode\":\"eager\"}");
	free(m);
}
END_TEST

START_TEST(test_unknown_or_wrong_typed_mode_is_refused)
{
	char *m = NULL;

	ck_assert_int_eq(result_mode_check("{\"mode\":\"warp\\u001b[2J\",\"latency_ms\":{}}", "eager", reason,
					   sizeof(reason), &m),
			 1);
	ck_assert_msg(strstr(reason, "not a known mode (valid: eager, cuda-graph, compile)"), "%s", reason);
	ck_assert_ptr_null(strchr(reason, '\x1b'));
	ck_assert_ptr_nonnull(strstr(m, "reported_mode"));
	free(m);
	ck_assert_int_eq(result_mode_check("{\"mode\":7}", "eager", reason, sizeof(reason), &m), 1);
	ck_assert_msg(strstr(reason, "metrics.mode is not a text"), "%s", reason);
	free(m);
	/* Not an object (the coordinator keeps such text wrapped): no mode, eager. */
	ck_assert_int_eq(result_mode_check("[1]", "cuda-graph", reason, sizeof(reason), &m), 1);
	free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("result-mode");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_same_mode_is_kept);
	tcase_add_test(tc, test_older_runner_is_not_labelled_graph);
	tcase_add_test(tc, test_other_mode_is_refused_and_reported);
	tcase_add_test(tc, test_unknown_or_wrong_typed_mode_is_refused);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
