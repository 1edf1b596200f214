/* SPDX-License-Identifier: MIT
 *
 * The fixture of the tests that run real /bin/sh runners through an
 * executor on a libuv loop (test_worker_warm.c and test_worker_prewarm.c
 * through warm_fixture.h, test_worker_contain.c, test_worker_executor.c):
 * a private state directory with the runner script's path in it, the loop
 * with a guard timer (a test that hangs fails instead) and a pause timer,
 * the results the executor hands back, running the loop until they came,
 * and closing.
 * Include it once per test program, after defining
 * EXECUTOR_FIXTURE_RESULTS (how many results a test may collect).
 */
#ifndef HF_TEST_EXECUTOR_FIXTURE_H
#define HF_TEST_EXECUTOR_FIXTURE_H

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"
#include "hf_util.h"
#include "result.h"

#define EXECUTOR_FIXTURE_GUARD_MS 20000

static char state_dir[64];
static char script[128];
static uv_loop_t loop;
/* guard: a test that hangs fails; pause_timer: free for a test to run the
 * loop for a while.  Both opened in the setup, closed in finish. */
static uv_timer_t guard, pause_timer;
static Hf__TaskResult *results[EXECUTOR_FIXTURE_RESULTS];
static int n_results, want_results;

/* The setup of a test: a new state directory named after template (as
 * mkdtemp takes it), the loop and its timers. */
/* The loop and its timers, again after finish() for a test that goes on. */
static void executor_fixture_loop_open(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &guard);
	uv_unref((uv_handle_t *)&guard);
	uv_timer_init(&loop, &pause_timer);
}

static void executor_fixture_setup(const char *template)
{
	hf_strlcpy(state_dir, template, sizeof(state_dir));
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
	snprintf(script, sizeof(script), "%s/runner.sh", state_dir);
	executor_fixture_loop_open();
	n_results = 0;
	signal(SIGPIPE, SIG_IGN); /* as hf-worker does */
}

static void teardown(void)
{
	char cmd[128];

	for (int i = 0; i < n_results; i++)
		result_free(results[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void done_cb(struct executor *ex, Hf__TaskResult *r, void *arg)
{
	(void)ex;
	(void)arg;
	ck_assert_int_lt(n_results, EXECUTOR_FIXTURE_RESULTS);
	results[n_results++] = r;
	if (n_results >= want_results)
		uv_stop(&loop);
}

static void guard_cb(uv_timer_t *h)
{
	(void)h;
	ck_abort_msg("the runner did not finish within %d ms", EXECUTOR_FIXTURE_GUARD_MS);
}

/* Runs the loop until n results came in. */
static void wait_results(int n)
{
	want_results = n;
	uv_timer_start(&guard, guard_cb, EXECUTOR_FIXTURE_GUARD_MS, 0);
	if (n_results < n)
		uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&guard);
	ck_assert_int_eq(n_results, n);
}

/* Closes the executor and checks that nothing was left open. */
static void finish(struct executor *ex)
{
	uv_close((uv_handle_t *)&guard, NULL);
	uv_close((uv_handle_t *)&pause_timer, NULL);
	executor_close(ex);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

#endif
