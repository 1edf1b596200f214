/* SPDX-License-Identifier: MIT
 *
 * Unit tests for device health bookkeeping (coordinator/health.c):
 * counting infrastructure failures, quarantine, health checks and rechecks.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

#define CUDA 2
#define CPU 1

static enum health_change task(struct health *h, const char *w, uint32_t idx, bool infra, bool outcome,
			       uint32_t threshold)
{
	enum health_change ch = HEALTH_RESTORED; /* must be overwritten */
	ck_assert_int_eq(health_task_ended(h, w, CUDA, idx, infra, outcome, "runner exited with status 3",
					   threshold, &ch),
			 0);
	return ch;
}

START_TEST(test_consecutive_infra_failures_quarantine_at_the_threshold)
{
	struct health h;
	const char *why = NULL;

	health_init(&h);
	ck_assert_int_eq(task(&h, "gpu-01", 0, true, false, 3), HEALTH_UNCHANGED);
	ck_assert_int_eq(task(&h, "gpu-01", 0, true, false, 3), HEALTH_UNCHANGED);
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 0, NULL));
	ck_assert_int_eq(task(&h, "gpu-01", 0, true, false, 3), HEALTH_QUARANTINED);
	ck_assert(health_quarantined(&h, "gpu-01", CUDA, 0, &why));
	ck_assert_str_eq(why, "3 infrastructure failures in a row, the last: runner exited with status 3");
	/* A fourth failure changes nothing more. */
	ck_assert_int_eq(task(&h, "gpu-01", 0, true, false, 3), HEALTH_UNCHANGED);
	/* Other devices, of the same worker or another, are not affected. */
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 1, NULL));
	ck_assert(!health_quarantined(&h, "gpu-02", CUDA, 0, NULL));
	ck_assert(!health_quarantined(&h, "gpu-01", CPU, 0, NULL));
	ck_assert_uint_eq(health_count_quarantined(&h), 1);
	health_fini(&h);
}
END_TEST

START_TEST(test_a_verdict_on_the_model_resets_the_count)
{
	struct health h;

	health_init(&h);
	task(&h, "gpu-01", 0, true, false, 3);
	task(&h, "gpu-01", 0, true, false, 3);
	ck_assert_int_eq(task(&h, "gpu-01", 0, false, true, 3), HEALTH_UNCHANGED); /* passed or failed */
	ck_assert_uint_eq(health_find(&h, "gpu-01", CUDA, 0)->failures, 0);
	task(&h, "gpu-01", 0, true, false, 3);
	/* A timeout or a cancel (neither) neither counts nor resets. */
	ck_assert_int_eq(task(&h, "gpu-01", 0, false, false, 3), HEALTH_UNCHANGED);
	ck_assert_uint_eq(health_find(&h, "gpu-01", CUDA, 0)->failures, 1);
	task(&h, "gpu-01", 0, true, false, 3);
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 0, NULL));
	ck_assert_int_eq(task(&h, "gpu-01", 0, true, false, 3), HEALTH_QUARANTINED);
	health_fini(&h);
}
END_TEST

START_TEST(test_threshold_zero_never_quarantines)
{
	struct health h;

	health_init(&h);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(task(&h, "gpu-01", 0, true, false, 0), HEALTH_UNCHANGED);
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 0, NULL));
	health_fini(&h);
}
END_TEST

START_TEST(test_failed_check_quarantines_and_passed_check_restores)
{
	struct health h;
	enum health_change ch;
	const char *why;

	health_init(&h);
	/* A pass on a device never seen: nothing to do, nothing kept. */
	ck_assert_int_eq(health_check_ended(&h, "gpu-01", CUDA, 0, true, "matmul ok", &ch), 0);
	ck_assert_int_eq(ch, HEALTH_UNCHANGED);
	ck_assert_ptr_null(health_find(&h, "gpu-01", CUDA, 0));
	/* A failure at registration quarantines at once. */
	ck_assert_int_eq(health_check_ended(&h, "gpu-01", CUDA, 0, false, "CUDA error: no device", &ch), 0);
	ck_assert_int_eq(ch, HEALTH_QUARANTINED);
	ck_assert(health_quarantined(&h, "gpu-01", CUDA, 0, &why));
	ck_assert_str_eq(why, "health check failed: CUDA error: no device");
	/* Failing again keeps it quarantined, with the newest reason. */
	health_check_ended(&h, "gpu-01", CUDA, 0, false, "still broken", &ch);
	ck_assert_int_eq(ch, HEALTH_UNCHANGED);
	ck_assert(health_quarantined(&h, "gpu-01", CUDA, 0, &why));
	ck_assert_str_eq(why, "health check failed: still broken");
	/* A pass brings it back with a clean count. */
	health_check_ended(&h, "gpu-01", CUDA, 0, true, "matmul ok", &ch);
	ck_assert_int_eq(ch, HEALTH_RESTORED);
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 0, NULL));
	ck_assert_uint_eq(health_find(&h, "gpu-01", CUDA, 0)->failures, 0);
	ck_assert_uint_eq(health_count_quarantined(&h), 0);
	health_fini(&h);
}
END_TEST

START_TEST(test_recheck_is_asked_once_per_interval_and_only_while_quarantined)
{
	struct health h;
	enum health_change ch;

	health_init(&h);
	ck_assert(!health_recheck_due(&h, "gpu-01", CUDA, 0, 1000, 60000)); /* unknown */
	task(&h, "gpu-01", 0, true, false, 1);
	ck_assert(health_recheck_due(&h, "gpu-01", CUDA, 0, 1000, 60000));
	ck_assert(!health_recheck_due(&h, "gpu-01", CUDA, 0, 1001, 60000));
	ck_assert(!health_recheck_due(&h, "gpu-01", CUDA, 0, 60999, 60000));
	ck_assert(health_recheck_due(&h, "gpu-01", CUDA, 0, 61000, 60000));
	health_check_ended(&h, "gpu-01", CUDA, 0, true, "ok", &ch);
	ck_assert(!health_recheck_due(&h, "gpu-01", CUDA, 0, 200000, 60000));
	health_fini(&h);
}
END_TEST

START_TEST(test_operator_clear_and_restored_quarantine)
{
	struct health h;
	const char *why;

	health_init(&h);
	ck_assert_int_eq(health_quarantine_set(&h, "gpu-01", CUDA, 0, "loaded from the database"), 0);
	ck_assert_int_eq(health_quarantine_set(&h, "gpu-01", CUDA, 1, "loaded too"), 0);
	ck_assert_int_eq(health_quarantine_set(&h, "gpu-02", CUDA, 0, "another worker"), 0);
	ck_assert(health_quarantined(&h, "gpu-01", CUDA, 1, &why));
	ck_assert_str_eq(why, "loaded too");
	/* One device ... */
	health_clear(&h, "gpu-01", CUDA, 1);
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 1, NULL));
	ck_assert(health_quarantined(&h, "gpu-01", CUDA, 0, NULL));
	/* ... or a whole worker, and no other. */
	health_clear(&h, "gpu-01", -1, -1);
	ck_assert(!health_quarantined(&h, "gpu-01", CUDA, 0, NULL));
	ck_assert(health_quarantined(&h, "gpu-02", CUDA, 0, NULL));
	ck_assert_uint_eq(health_count_quarantined(&h), 1);
	health_fini(&h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("health");
	TCase *tc = tcase_create("health");
	tcase_add_test(tc, test_consecutive_infra_failures_quarantine_at_the_threshold);
	tcase_add_test(tc, test_a_verdict_on_the_model_resets_the_count);
	tcase_add_test(tc, test_threshold_zero_never_quarantines);
	tcase_add_test(tc, test_failed_check_quarantines_and_passed_check_restores);
	tcase_add_test(tc, test_recheck_is_asked_once_per_interval_and_only_while_quarantined);
	tcase_add_test(tc, test_operator_clear_and_restored_quarantine);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
