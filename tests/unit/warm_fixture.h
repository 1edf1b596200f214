/* SPDX-License-Identifier: MIT
 *
 * The fixture of the warm-runner tests that run real /bin/sh runners
 * through an executor on a libuv loop (test_worker_warm.c,
 * test_worker_prewarm.c): a private state directory with the runner script
 * in it, the loop with a guard timer (a test that hangs fails instead) and
 * a pause timer, the results the executor hands back, and the helpers that
 * run the loop until something happened.  A runner appends its pid to
 * "pids" when it starts and leaves "eof-PID" when it saw the end of its
 * stdin.  Include it once per test program, after defining
 * WARM_FIXTURE_RESULTS (how many results a test may collect).
 */
#ifndef HF_TEST_WARM_FIXTURE_H
#define HF_TEST_WARM_FIXTURE_H

#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"
#include "hf_util.h"
#include "result.h"

#define WARM_FIXTURE_GUARD_MS 20000

static char state_dir[64];
static char script[128];
static uv_loop_t loop;
static uv_timer_t guard, pause_timer; /* opened in the setup, closed in finish */
static Hf__TaskResult *results[WARM_FIXTURE_RESULTS];
static int n_results, want_results;

/* The setup of a test: a new state directory named after template (as
 * mkdtemp takes it), the loop and its timers. */
static void warm_fixture_setup(const char *template)
{
	hf_strlcpy(state_dir, template, sizeof(state_dir));
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
	snprintf(script, sizeof(script), "%s/runner.sh", state_dir);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &guard);
	uv_unref((uv_handle_t *)&guard);
	uv_timer_init(&loop, &pause_timer);
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
	ck_assert_int_lt(n_results, WARM_FIXTURE_RESULTS);
	results[n_results++] = r;
	if (n_results >= want_results)
		uv_stop(&loop);
}

static void guard_cb(uv_timer_t *h)
{
	(void)h;
	ck_abort_msg("the runner did not finish within %d ms", WARM_FIXTURE_GUARD_MS);
}

/* Runs the loop until n results came in. */
static void wait_results(int n)
{
	want_results = n;
	uv_timer_start(&guard, guard_cb, WARM_FIXTURE_GUARD_MS, 0);
	if (n_results < n)
		uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&guard);
	ck_assert_int_eq(n_results, n);
}

static void stop_cb(uv_timer_t *h)
{
	uv_stop(h->loop);
}

/* Runs the loop for ms milliseconds. */
static void run_for(int64_t ms)
{
	uv_timer_start(&pause_timer, stop_cb, (uint64_t)ms, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&pause_timer);
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

/* The pid a result's env names (the process that ran it). */
static int result_pid(const Hf__TaskResult *r)
{
	json_t *env = json_loads(r->env_json, 0, NULL);
	int pid;

	ck_assert_msg(env != NULL, "env is not JSON: %s", r->env_json);
	ck_assert_msg(json_is_integer(json_object_get(env, "pid")), "no pid in %s (%s: %s)",
		      r->env_json, hf_status_name(r->status), r->reason);
	pid = (int)json_integer_value(json_object_get(env, "pid"));
	json_decref(env);
	ck_assert_int_gt(pid, 1);
	return pid;
}

/* Whether the runner with this pid saw the end of its stdin and left. */
static bool exited_on_eof(int pid)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/eof-%d", state_dir, pid);
	return access(path, F_OK) == 0;
}

/* The pids of the runners started so far, in order (at most max); returns
 * how many there are in all. */
static int runner_pids(int *pids, int max)
{
	char path[128], *text = NULL, *p, *end;
	int n = 0;

	snprintf(path, sizeof(path), "%s/pids", state_dir);
	if (hf_read_file(path, 65536, &text, NULL) < 0)
		return 0;
	for (p = text; *p; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pids && n < max)
			pids[n] = (int)v;
		n++;
		while (*end == '\n')
			end++;
	}
	free(text);
	return n;
}

#endif
