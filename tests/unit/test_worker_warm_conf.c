/* SPDX-License-Identifier: MIT
 *
 * Tests of the warm runner settings of hf-worker (runner.warm,
 * runner.warm_max_tasks, runner.warm_max_rss, runner.warm_idle_timeout,
 * runner.prewarm, and devices.slot_memory for devices.slots=auto, in
 * worker/worker-conf.c): defaults, units, refusals, and that they survive
 * --print-config.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker-conf.h"

START_TEST(test_warm_runners_are_on_by_default_with_their_limits)
{
	struct worker_conf c = { 0 };
	char err[256];

	ck_assert_int_eq(worker_conf_load(&c, NULL, NULL, 0, err, sizeof(err)), 0);
	ck_assert(c.runner_warm);
	ck_assert_int_eq(c.warm_max_tasks, 200);
	ck_assert_uint_eq(c.warm_max_rss_bytes, 16ull << 30);
	ck_assert_int_eq(c.warm_idle_timeout_ms, 10 * 60 * 1000);
	ck_assert(c.runner_prewarm);
	ck_assert_uint_eq(c.devconf.slot_memory, 8ull << 30);
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_prewarm_off_and_auto_slots_with_their_memory)
{
	struct worker_conf c = { 0 };
	char err[256];
	const struct worker_conf_override ov[] = {
		{ "runner.prewarm", "false", false },
		{ "devices.slots", "cuda=auto", false },
		{ "devices.slot_memory", "12GiB", false },
	};

	ck_assert_int_eq(worker_conf_load(&c, NULL, ov, 3, err, sizeof(err)), 0);
	ck_assert(!c.runner_prewarm);
	ck_assert_uint_eq(c.devconf.slot_memory, 12ull << 30);
	ck_assert(devconf_device_auto(&c.devconf, HF__BACKEND__BACKEND_CUDA, 0));
	/* Shared by itself: not in devices.shared (the default, "cpu"). */
	ck_assert(devconf_device_shared(&c.devconf, HF__BACKEND__BACKEND_CUDA, 0));
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_warm_settings_take_units_and_zero_means_no_limit)
{
	struct worker_conf c = { 0 };
	char err[256];
	const struct worker_conf_override ov[] = {
		{ "runner.warm", "false", false },
		{ "runner.warm_max_tasks", "0", false },
		{ "runner.warm_max_rss", "512MiB", false },
		{ "runner.warm_idle_timeout", "90s", false },
	};

	ck_assert_int_eq(worker_conf_load(&c, NULL, ov, 4, err, sizeof(err)), 0);
	ck_assert(!c.runner_warm);
	ck_assert_int_eq(c.warm_max_tasks, 0);
	ck_assert_uint_eq(c.warm_max_rss_bytes, 512ull << 20);
	ck_assert_int_eq(c.warm_idle_timeout_ms, 90000);
	worker_conf_fini(&c);

	const struct worker_conf_override zero[] = { { "runner.warm_max_rss", "0", false } };
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(worker_conf_load(&c, NULL, zero, 1, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.warm_max_rss_bytes, 0);
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_bad_warm_settings_are_refused_naming_them)
{
	static const struct {
		const char *name, *value, *says;
	} cases[] = {
		{ "runner.warm_max_rss", "lots", "\"runner.warm_max_rss\": \"lots\"" },
		{ "runner.warm_max_rss", "16 GiBs", "\"runner.warm_max_rss\"" },
		{ "runner.warm_max_tasks", "-1", "runner.warm_max_tasks" },
		{ "runner.warm", "maybe", "runner.warm" },
		{ "runner.warm_idle_timeout", "soon", "runner.warm_idle_timeout" },
		{ "runner.prewarm", "maybe", "runner.prewarm" },
		{ "devices.slot_memory", "0", "\"devices.slot_memory\": \"0\"" },
		{ "devices.slot_memory", "big", "\"devices.slot_memory\": \"big\"" },
		{ "devices.slots", "cuda=automatic", "devices.slots" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct worker_conf c = { 0 };
		struct worker_conf_override ov = { cases[i].name, cases[i].value, false };
		char err[512] = "";

		ck_assert_msg(worker_conf_load(&c, NULL, &ov, 1, err, sizeof(err)) < 0, "%s=%s",
			      cases[i].name, cases[i].value);
		ck_assert_msg(strstr(err, cases[i].says), "%s=%s: %s", cases[i].name, cases[i].value,
			      err);
		worker_conf_fini(&c);
	}
}
END_TEST

START_TEST(test_printed_warm_settings_load_back)
{
	struct worker_conf a = { 0 }, b = { 0 };
	char err[256], path[] = "/tmp/hfwarmconfXXXXXX";
	const struct worker_conf_override ov[] = {
		{ "runner.warm", "false", false },
		{ "runner.warm_max_tasks", "7", false },
		{ "runner.warm_max_rss", "3GiB", false },
		{ "runner.warm_idle_timeout", "45s", false },
		{ "runner.prewarm", "false", false },
		{ "devices.slots", "cuda=auto", false },
		{ "devices.slot_memory", "6GiB", false },
	};
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	ck_assert_int_eq(worker_conf_load(&a, NULL, ov, 7, err, sizeof(err)), 0);
	worker_conf_print(&a, NULL, true, f);
	fclose(f);
	ck_assert_msg(worker_conf_load(&b, path, NULL, 0, err, sizeof(err)) == 0, "%s", err);
	unlink(path);
	ck_assert(!b.runner_warm);
	ck_assert_int_eq(b.warm_max_tasks, 7);
	ck_assert_uint_eq(b.warm_max_rss_bytes, 3ull << 30);
	ck_assert_int_eq(b.warm_idle_timeout_ms, 45000);
	ck_assert(!b.runner_prewarm);
	ck_assert(devconf_device_auto(&b.devconf, HF__BACKEND__BACKEND_CUDA, 0));
	ck_assert_uint_eq(b.devconf.slot_memory, 6ull << 30);
	worker_conf_fini(&a);
	worker_conf_fini(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_warm_conf");
	TCase *tc = tcase_create("warm_conf");

	tcase_add_test(tc, test_warm_runners_are_on_by_default_with_their_limits);
	tcase_add_test(tc, test_warm_settings_take_units_and_zero_means_no_limit);
	tcase_add_test(tc, test_prewarm_off_and_auto_slots_with_their_memory);
	tcase_add_test(tc, test_bad_warm_settings_are_refused_naming_them);
	tcase_add_test(tc, test_printed_warm_settings_load_back);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
