/* SPDX-License-Identifier: MIT
 *
 * Tests of warm runners started ahead of tasks (executor_prewarm,
 * worker/warm-reserve.c) with real child processes: a /bin/sh runner that
 * appends its pid to "pids" when it starts and serves the protocol (one
 * request per stdin line, a done line per task on descriptor 3, its pid in
 * every result).  They pin that a device gets one runner per slot before
 * any task and its first tasks are served by those; that a retired runner
 * is replaced without a task asking; that a runner dying at start is
 * started again after a backoff, not in a loop; that a reserved runner
 * that has served nothing does not idle out; and that closing the executor
 * ends them all.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"
#include "hf_util.h"
#include "hw.h"
#include "result.h"
#define WARM_FIXTURE_RESULTS 8
#include "warm_fixture.h"

#define MAX_PIDS 64


/* A warm runner; at_start runs once, before it reads a request (it may
 * exit: a runner that fails at start). */
static void write_runner(const char *at_start)
{
	FILE *f = fopen(script, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"#!/bin/sh\n"
		"DIR='%s'\n"
		"echo $$ >> \"$DIR/pids\"\n"
		"%s\n"
		"while IFS= read -r req; do\n"
		"\ttask=${req#*\\\"task\\\":\\\"}; task=${task%%%%\\\"*}\n"
		"\tresult=${req#*\\\"result\\\":\\\"}; result=${result%%%%\\\"*}\n"
		"\tid=$(sed -n 's/^ *\"task_id\": *\\([0-9]*\\).*/\\1/p' \"$task\")\n"
		"\tprintf '{\"status\":\"passed\",\"env\":{\"pid\":%%d,\"cuda\":\"%%s\"}}' $$ "
		"\"${CUDA_VISIBLE_DEVICES-unset}\" > \"$result\"\n"
		"\tprintf '{\"done\": %%s, \"fatal\": false, \"rss_bytes\": 1000}\\n' \"$id\" >&3\n"
		"done\n"
		"echo eof > \"$DIR/eof-$$\"\n",
		state_dir, at_start ? at_start : "");
	ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
	executor_fixture_setup("/tmp/hfprewarmXXXXXX");
}

static struct executor *make_executor(unsigned max_tasks, int64_t idle_ms)
{
	char *argv[] = { (char *)"/bin/sh", script, NULL };
	struct executor_config cfg = {
		.argv = argv,
		.state_dir = state_dir,
		.default_timeout_ms = 30000,
		.kill_grace_ms = 1000,
		.output_limit = 65536,
		.warm = true,
		.warm_max_tasks = max_tasks,
		.warm_idle_timeout_ms = idle_ms,
	};
	struct executor *ex;

	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &ex), 0);
	return ex;
}

static struct hw_inventory inv;

/* A machine of one device: the CPU with slots. */
static struct hw_inventory *cpu_inventory(unsigned slots)
{
	memset(&inv, 0, sizeof(inv));
	inv.n_devices = 1;
	inv.devices[0].backend = HF__BACKEND__BACKEND_CPU;
	inv.devices[0].index = 0;
	inv.devices[0].slots = slots;
	inv.devices[0].shared = true;
	inv.devices[0].visible_index = -1;
	hf_strlcpy(inv.devices[0].name, "test CPU", sizeof(inv.devices[0].name));
	return &inv;
}

static void start(struct executor *ex, uint64_t task_id)
{
	Hf__Assignment a = HF__ASSIGNMENT__INIT;
	const struct hw_device *dev = &inv.devices[0]; /* as the session gives it */

	a.task_id = task_id;
	a.attempt = 1;
	a.job_id = 9;
	a.model_type = "bert";
	a.kind = HF__TASK_KIND__KIND_TEST;
	a.backend = HF__BACKEND__BACKEND_CPU;
	a.batch_size = 1;
	a.precision = "fp32";
	a.timeout_s = 10;
	ck_assert_int_eq(executor_start(ex, &a, &dev, 1), 0);
}

static Hf__TaskResult *run_task(struct executor *ex, uint64_t task_id)
{
	start(ex, task_id);
	wait_results(n_results + 1);
	return results[n_results - 1];
}

/* Runs the loop until n runners have started (each wrote its pid). */
static void wait_runners(int n)
{
	int pids[MAX_PIDS];

	for (int i = 0; i < 1000 && runner_pids(pids, MAX_PIDS) < n; i++)
		run_for(10);
	ck_assert_int_eq(runner_pids(pids, MAX_PIDS), n);
}

static bool has_pid(const int *pids, int n, int pid)
{
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

START_TEST(test_every_slot_gets_a_runner_before_any_task_and_serves_the_first_tasks)
{
	int pids[MAX_PIDS], n, p1, p2;

	write_runner(NULL);
	struct executor *ex = make_executor(0, 0);

	ck_assert_int_eq(executor_prewarm(ex, cpu_inventory(2)), 0);
	ck_assert_int_eq(runner_pids(pids, MAX_PIDS), 0); /* from the loop, not inside the call */
	wait_runners(2);
	ck_assert_uint_eq(executor_warm_size(ex), 2);
	run_for(200);
	ck_assert_int_eq(runner_pids(pids, MAX_PIDS), 2); /* no more than its slots */
	/* Two tasks at once: each on one of them, no new process. */
	start(ex, 1);
	start(ex, 2);
	wait_results(2);
	p1 = result_pid(results[0]);
	p2 = result_pid(results[1]);
	ck_assert_int_ne(p1, p2);
	n = runner_pids(pids, MAX_PIDS);
	ck_assert_int_eq(n, 2);
	ck_assert(has_pid(pids, n, p1));
	ck_assert(has_pid(pids, n, p2));
	/* The environment a task of the device gets (cpu: no GPU). */
	ck_assert_ptr_nonnull(strstr(results[0]->env_json, "\"cuda\":\"\""));
	finish(ex);
	ck_assert(exited_on_eof(pids[0]));
	ck_assert(exited_on_eof(pids[1]));
}
END_TEST

START_TEST(test_a_retired_runner_is_replaced_before_the_next_task)
{
	int pids[MAX_PIDS], first;

	write_runner(NULL);
	struct executor *ex = make_executor(1, 0); /* retired after each task */

	executor_prewarm(ex, cpu_inventory(1));
	wait_runners(1);
	first = result_pid(run_task(ex, 1));
	ck_assert_int_eq(runner_pids(pids, MAX_PIDS), 1);
	ck_assert_int_eq(first, pids[0]);
	/* No task asks, yet a fresh one starts. */
	wait_runners(2);
	runner_pids(pids, MAX_PIDS);
	ck_assert_int_ne(pids[1], first);
	ck_assert_int_eq(result_pid(run_task(ex, 2)), pids[1]);
	wait_runners(3);
	finish(ex);
}
END_TEST

START_TEST(test_a_runner_that_dies_at_start_is_started_again_after_a_backoff)
{
	int pids[MAX_PIDS], n;

	write_runner("exit 1");
	struct executor *ex = make_executor(0, 0);

	executor_prewarm(ex, cpu_inventory(4));
	/* All four at once, each dies: then one at a time, 1 s, 2 s, ...
	 * apart; a loop would start hundreds in this time. */
	wait_runners(4);
	run_for(2500);
	n = runner_pids(pids, MAX_PIDS);
	ck_assert_msg(n >= 5 && n <= 7, "%d runners started in 2.5 s", n);
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	finish(ex);
}
END_TEST

START_TEST(test_a_reserved_runner_idles_out_only_after_serving)
{
	int pids[MAX_PIDS], first;

	write_runner(NULL);
	struct executor *ex = make_executor(0, 300);

	executor_prewarm(ex, cpu_inventory(1));
	wait_runners(1);
	run_for(900); /* three idle timeouts: it has served nothing, it stays */
	ck_assert_int_eq(runner_pids(pids, MAX_PIDS), 1);
	first = pids[0];
	ck_assert(!exited_on_eof(first));
	ck_assert_int_eq(result_pid(run_task(ex, 1)), first);
	/* Having served, it holds the device's memory: it idles out, and a
	 * fresh one takes its slot. */
	wait_runners(2);
	for (int i = 0; i < 200 && !exited_on_eof(first); i++)
		run_for(10);
	ck_assert(exited_on_eof(first));
	ck_assert_uint_eq(executor_warm_size(ex), 1);
	finish(ex);
}
END_TEST

/* A task goes to a runner that has served (its imports are done), else to
 * the oldest of the fresh ones (the likeliest done importing). */
START_TEST(test_tasks_prefer_runners_that_served_then_the_oldest_fresh_one)
{
	int pids[MAX_PIDS];

	write_runner(NULL);
	struct executor *ex = make_executor(0, 0);

	executor_prewarm(ex, cpu_inventory(1));
	wait_runners(1);
	executor_prewarm(ex, cpu_inventory(3)); /* two more, started later */
	wait_runners(3);
	runner_pids(pids, MAX_PIDS);
	ck_assert_int_eq(result_pid(run_task(ex, 1)), pids[0]);
	ck_assert_int_eq(result_pid(run_task(ex, 2)), pids[0]);
	ck_assert_int_eq(runner_pids(pids, MAX_PIDS), 3);
	finish(ex);
}
END_TEST

/* New hardware: fewer slots, then the device replaced by another. */
START_TEST(test_prewarm_again_retires_the_runners_beyond_the_new_slots)
{
	int pids[MAX_PIDS];

	write_runner(NULL);
	struct executor *ex = make_executor(0, 0);

	/* Started one at a time, so the order their pids are written in is
	 * the order they were started: three started in one go may write
	 * theirs in any order on a loaded machine. */
	for (unsigned slots = 1; slots <= 3; slots++) {
		executor_prewarm(ex, cpu_inventory(slots));
		wait_runners((int)slots);
	}
	executor_prewarm(ex, cpu_inventory(1));
	ck_assert_uint_eq(executor_warm_size(ex), 1);
	runner_pids(pids, MAX_PIDS);
	/* The least recently used go: here the first two started. */
	for (int i = 0; i < 200 && !(exited_on_eof(pids[0]) && exited_on_eof(pids[1])); i++)
		run_for(10);
	ck_assert(exited_on_eof(pids[0]) && exited_on_eof(pids[1]));
	ck_assert(!exited_on_eof(pids[2]));
	/* Another device (its name is part of its runners' environment): the
	 * old one's runner retires, the new one gets its own. */
	hf_strlcpy(cpu_inventory(1)->devices[0].name, "another CPU", sizeof(inv.devices[0].name));
	executor_prewarm(ex, &inv);
	wait_runners(4);
	for (int i = 0; i < 200 && !exited_on_eof(pids[2]); i++)
		run_for(10);
	ck_assert(exited_on_eof(pids[2]));
	ck_assert_uint_eq(executor_warm_size(ex), 1);
	finish(ex);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_prewarm");
	TCase *tc = tcase_create("prewarm");

	tcase_set_timeout(tc, 40);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_every_slot_gets_a_runner_before_any_task_and_serves_the_first_tasks);
	tcase_add_test(tc, test_a_retired_runner_is_replaced_before_the_next_task);
	tcase_add_test(tc, test_a_runner_that_dies_at_start_is_started_again_after_a_backoff);
	tcase_add_test(tc, test_a_reserved_runner_idles_out_only_after_serving);
	tcase_add_test(tc, test_tasks_prefer_runners_that_served_then_the_oldest_fresh_one);
	tcase_add_test(tc, test_prewarm_again_retires_the_runners_beyond_the_new_slots);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
