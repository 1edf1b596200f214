/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the durable result spool (worker/spool.c), in a temporary
 * state directory per test.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_util.h"
#include "result.h"
#include "spool.h"

static char state_dir[64];

static void setup(void)
{
	strcpy(state_dir, "/tmp/hfspoolXXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static Hf__TaskResult *make_result(uint64_t task_id, uint32_t attempt, const char *reason)
{
	Hf__TaskResult *r;

	ck_assert_int_eq(result_new_error(task_id, attempt, 0, 1234.5, reason, &r), 0);
	return r;
}

static bool file_exists(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/%s", state_dir, name);
	return stat(path, &st) == 0;
}

static void write_raw(const char *name, const void *data, size_t len)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/spool/%s", state_dir, name);
	ck_assert_int_eq(hf_write_file_durable(path, data, len), 0);
}

START_TEST(test_written_result_loads_back_unchanged)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(17, 2, "runner exited with status 1 without writing a result");
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, r), 0);
	ck_assert(file_exists("17-2.result"));
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(list[0]->task_id, 17);
	ck_assert_uint_eq(list[0]->attempt, 2);
	ck_assert_int_eq(list[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(list[0]->reason, r->reason);
	ck_assert(list[0]->finished_at == 1234.5);
	spool_results_free(list, n);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_results_survive_a_restart_in_task_order)
{
	struct spool *sp;
	Hf__TaskResult **list;
	size_t n;
	const uint64_t tasks[][2] = { { 30, 1 }, { 4, 2 }, { 4, 1 }, { 100, 1 } };

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	for (size_t i = 0; i < 4; i++) {
		Hf__TaskResult *r = make_result(tasks[i][0], (uint32_t)tasks[i][1], "x");
		ck_assert_int_eq(spool_write(sp, r), 0);
		result_free(r);
	}
	spool_close(sp);

	/* A new process opens the same directory. */
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert(list[0]->task_id == 4 && list[0]->attempt == 1);
	ck_assert(list[1]->task_id == 4 && list[1]->attempt == 2);
	ck_assert(list[2]->task_id == 30);
	ck_assert(list[3]->task_id == 100);
	spool_results_free(list, n);
	spool_close(sp);
}
END_TEST

START_TEST(test_removed_result_is_gone_and_removing_twice_is_fine)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(5, 1, "x");
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, r), 0);
	ck_assert_int_eq(spool_remove(sp, 5, 1), 0);
	ck_assert(!file_exists("5-1.result"));
	ck_assert_int_eq(spool_remove(sp, 5, 1), 0);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	spool_results_free(list, n);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_garbage_file_is_moved_aside_and_the_rest_loads)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(8, 1, "x");
	Hf__TaskResult **list;
	size_t n;
	static const char garbage[] = "\xff\xff\xff\xff this is not a TaskResult";

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, r), 0);
	write_raw("9-1.result", garbage, sizeof(garbage));
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(list[0]->task_id, 8);
	ck_assert(!file_exists("9-1.result"));
	ck_assert(file_exists("9-1.result.bad"));
	spool_results_free(list, n);

	/* Moved aside for good: the next load neither sees nor moves it. */
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(file_exists("9-1.result.bad"));
	spool_results_free(list, n);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_result_under_another_name_is_moved_aside)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(1, 1, "x");
	Hf__TaskResult **list;
	size_t n, len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len);

	hf__task_result__pack(r, buf);
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	write_raw("2-1.result", buf, len);       /* valid, but not task 2 */
	write_raw("x-1.result", buf, len);       /* not a spool name */
	write_raw("3-1.result", "", 0);          /* empty: no status */
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(file_exists("2-1.result.bad"));
	ck_assert(file_exists("x-1.result.bad"));
	ck_assert(file_exists("3-1.result.bad"));
	spool_results_free(list, n);
	free(buf);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_leftovers_of_interrupted_writes_are_removed_and_strangers_ignored)
{
	struct spool *sp;
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	write_raw("6-1.result.tmp.4242", "partial", 7);
	write_raw("README", "not ours", 8);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(!file_exists("6-1.result.tmp.4242"));
	ck_assert(file_exists("README"));
	spool_results_free(list, n);
	spool_close(sp);
}
END_TEST

START_TEST(test_failed_write_reports_the_error_and_leaves_nothing)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(11, 1, "x");
	char cmd[128];

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	snprintf(cmd, sizeof(cmd), "rm -r '%s/spool'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(spool_write(sp, r), -ENOENT);
	ck_assert(!file_exists("11-1.result"));
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_second_process_cannot_open_a_spool_in_use)
{
	struct spool *sp, *other;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_open(state_dir, &other), -EBUSY);
	spool_close(sp);
	ck_assert_int_eq(spool_open(state_dir, &other), 0); /* released on close */
	spool_close(other);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_spool");
	TCase *tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_written_result_loads_back_unchanged);
	tcase_add_test(tc, test_results_survive_a_restart_in_task_order);
	tcase_add_test(tc, test_removed_result_is_gone_and_removing_twice_is_fine);
	tcase_add_test(tc, test_garbage_file_is_moved_aside_and_the_rest_loads);
	tcase_add_test(tc, test_result_under_another_name_is_moved_aside);
	tcase_add_test(tc, test_leftovers_of_interrupted_writes_are_removed_and_strangers_ignored);
	tcase_add_test(tc, test_failed_write_reports_the_error_and_leaves_nothing);
	tcase_add_test(tc, test_second_process_cannot_open_a_spool_in_use);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
