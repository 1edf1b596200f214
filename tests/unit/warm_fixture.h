/* SPDX-License-Identifier: MIT
 *
 * The fixture of the warm-runner tests (test_worker_warm.c,
 * test_worker_prewarm.c): executor_fixture.h, plus running the loop for a
 * while and what the runner scripts leave: a runner appends its pid to
 * "pids" when it starts and leaves "eof-PID" when it saw the end of its
 * stdin.  Include it once per test program, after defining
 * WARM_FIXTURE_RESULTS (how many results a test may collect).
 */
#ifndef HF_TEST_WARM_FIXTURE_H
#define HF_TEST_WARM_FIXTURE_H

#include <jansson.h>

#define EXECUTOR_FIXTURE_RESULTS WARM_FIXTURE_RESULTS
#include "executor_fixture.h"

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
