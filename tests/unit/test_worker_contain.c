/* SPDX-License-Identifier: MIT
 *
 * Tests that runners cannot escape (worker/contain.c through the
 * executor), with real processes: /bin/sh runners that leave behind a
 * sleeper that called setsid, a double-forked sleeper, and a double-forked
 * sleeper that also called setsid (a daemon), write their pids and then
 * end normally, hang until their time limit, are cancelled, or are still
 * running when the worker stops.  Every sleeper must be gone afterwards,
 * reaped, not a zombie.  Each test runs twice: with the subreaper
 * (HFLEET_CONTAIN=subreaper) and with a cgroup v2 per task, which is
 * skipped, saying why, where this machine does not allow it.  One more
 * test, where the test process sits at the cgroup v2 root as root, makes
 * a cgroup marked trusted.delegate and runs the worker in it, as systemd
 * does with Delegate=yes.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <uv.h>

#define EXECUTOR_FIXTURE_RESULTS 8
#include "executor_fixture.h"
#include "proc_helpers.h"

static const char *const mode_names[] = { "subreaper", "cgroup" };

/* Leaves the three kinds of sleeper behind, named after $1, and waits
 * until each has written its pid. */
static const char leave_sleepers[] =
	"leave() {\n"
	"\tsetsid sh -c 'echo $$ > \"$0\"; exec sleep 300' \"$DIR/$1-setsid.pid\" >/dev/null 2>&1 &\n"
	"\tsh -c 'sh -c '\\''echo $$ > \"$0\"; exec sleep 300'\\'' \"$0\" & exit 0' "
	"\"$DIR/$1-double.pid\" &\n"
	"\tsh -c 'setsid sh -c '\\''echo $$ > \"$0\"; exec sleep 300'\\'' \"$0\" & exit 0' "
	"\"$DIR/$1-daemon.pid\" >/dev/null 2>&1 &\n"
	"\tfor k in setsid double daemon; do\n"
	"\t\twhile [ ! -s \"$DIR/$1-$k.pid\" ]; do sleep 0.01; done\n"
	"\tdone\n"
	"}\n";

static const char *const kinds[] = { "setsid", "double", "daemon" };

static void setup(void)
{
	executor_fixture_setup("/tmp/hfcontainXXXXXX");
}

static void write_script(const char *body)
{
	FILE *f = fopen(script, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\nDIR='%s'\n%s%s\n", state_dir, leave_sleepers, body);
	ck_assert_int_eq(fclose(f), 0);
}

/* An executor using the mechanism of loop test i; NULL (and a message)
 * when this machine cannot give that one. */
static struct executor *make_executor(int mode, bool warm, int64_t grace_ms)
{
	char *argv[] = { (char *)"/bin/sh", script, NULL };
	struct executor_config cfg = {
		.argv = argv,
		.state_dir = state_dir,
		.default_timeout_ms = 30000,
		.kill_grace_ms = grace_ms,
		.output_limit = 65536,
		.warm = warm,
	};
	struct executor *ex;

	setenv("HFLEET_CONTAIN", mode_names[mode], 1);
	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &ex), 0);
	if (strcmp(executor_containment(ex), mode_names[mode]) != 0) {
		fprintf(stderr, "SKIPPED: no cgroup v2 with permission to manage it here (the log "
				"above says why); only the subreaper variant ran\n");
		finish(ex);
		return NULL;
	}
	return ex;
}

static Hf__Assignment assignment(uint64_t task_id, uint32_t timeout_s)
{
	Hf__Assignment a = HF__ASSIGNMENT__INIT;

	a.task_id = task_id;
	a.attempt = 1;
	a.job_id = 9;
	a.model_type = "bert";
	a.kind = HF__TASK_KIND__KIND_TEST;
	a.backend = HF__BACKEND__BACKEND_CPU;
	a.precision = "fp32";
	a.timeout_s = timeout_s;
	return a;
}

static void tick_cb(uv_timer_t *h)
{
	(void)h;
}

static bool path_exists(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", state_dir, name);
	return access(path, F_OK) == 0;
}

/* Runs the loop until state_dir/name exists. */
static void wait_file(const char *name)
{
	uv_timer_start(&pause_timer, tick_cb, 10, 10);
	for (int i = 0; i < EXECUTOR_FIXTURE_GUARD_MS / 10 && !path_exists(name); i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&pause_timer);
	ck_assert_msg(path_exists(name), "%s was never written", name);
}

/* True once pid is gone entirely (killed and reaped), running the loop
 * meanwhile (the worker reaps what it adopted), for at most 3 s. */
static bool process_gone(pid_t pid)
{
	char path[64];
	bool gone = false;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	/* A loop with nothing but unreferenced handles would not run. */
	uv_timer_start(&pause_timer, tick_cb, 10, 10);
	for (int i = 0; i < 300 && !gone; i++) {
		gone = access(path, F_OK) < 0;
		if (!gone)
			uv_run(&loop, UV_RUN_ONCE);
	}
	uv_timer_stop(&pause_timer);
	return gone;
}

static void read_sleepers(const char *prefix, pid_t pids[3])
{
	char name[64];

	for (int k = 0; k < 3; k++) {
		snprintf(name, sizeof(name), "%s-%s.pid", prefix, kinds[k]);
		pids[k] = read_pid_in(state_dir, name);
	}
}

static void assert_sleepers_gone(const pid_t pids[3])
{
	for (int k = 0; k < 3; k++) {
		char path[64], *stat = NULL;

		if (process_gone(pids[k]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[k]);
		hf_read_file(path, 4096, &stat, NULL);
		ck_abort_msg("the %s sleeper (pid %d) outlived its task: %s", kinds[k], (int)pids[k],
			     stat ? stat : "?");
	}
}

static void assert_sleepers_alive(const pid_t pids[3])
{
	for (int k = 0; k < 3; k++)
		ck_assert_msg(kill(pids[k], 0) == 0 && !process_dead_within(pids[k], 1),
			      "the %s sleeper (pid %d) died too early", kinds[k], (int)pids[k]);
}

START_TEST(test_sleepers_die_when_the_runner_ends_normally)
{
	pid_t pids[3];

	write_script("leave a\n"
		     "cat /proc/self/cgroup > \"$DIR/cgroup\"\n"
		     "printf '{\"status\":\"passed\"}' > \"$4\"\n"
		     "exit 0");
	struct executor *ex = make_executor(_i, false, 1000);
	if (!ex)
		return;
	Hf__Assignment a = assignment(1, 20);
	char path[256], *text = NULL;

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	read_sleepers("a", pids);
	assert_sleepers_gone(pids);

	snprintf(path, sizeof(path), "%s/cgroup", state_dir);
	ck_assert_int_eq(hf_read_file(path, 4096, &text, NULL), 0);
	if (_i == 1) {
		/* The runner was born in its task's cgroup; the worker is
		 * back in its own. */
		ck_assert_msg(strstr(text, "/task-1-1\n"), "runner's cgroup: %s", text);
		free(text);
		ck_assert_int_eq(hf_read_file("/proc/self/cgroup", 4096, &text, NULL), 0);
		ck_assert_msg(!strstr(text, "/task-"), "worker's cgroup: %s", text);
	}
	free(text);
	finish(ex);
}
END_TEST

START_TEST(test_sleepers_die_when_the_runner_times_out)
{
	pid_t pids[3];

	write_script("trap '' TERM\nleave t\nsleep 300 & wait");
	struct executor *ex = make_executor(_i, false, 200);
	if (!ex)
		return;
	Hf__Assignment a = assignment(2, 1);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_TIMEOUT);
	read_sleepers("t", pids);
	assert_sleepers_gone(pids);
	finish(ex);
}
END_TEST

START_TEST(test_sleepers_die_when_the_task_is_cancelled)
{
	pid_t pids[3];

	write_script("leave c\ntouch \"$DIR/ready\"\nsleep 300 & wait");
	struct executor *ex = make_executor(_i, false, 500);
	if (!ex)
		return;
	Hf__Assignment a = assignment(3, 20);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_file("ready");
	read_sleepers("c", pids);
	assert_sleepers_alive(pids); /* nothing is killed before the task ends */
	ck_assert(executor_stop(ex, 3, 1, HF__TASK_STATUS__STATUS_CANCELLED, "cancelled by test"));
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_CANCELLED);
	assert_sleepers_gone(pids);
	finish(ex);
}
END_TEST

START_TEST(test_sleepers_die_when_the_worker_stops)
{
	pid_t pids[3];

	write_script("leave w\ntouch \"$DIR/ready\"\nsleep 300 & wait");
	struct executor *ex = make_executor(_i, false, 500);
	if (!ex)
		return;
	Hf__Assignment a = assignment(4, 20);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_file("ready");
	read_sleepers("w", pids);
	finish(ex);
	/* The loop is closed: nothing reaps them any more, but they are
	 * dead. */
	for (int k = 0; k < 3; k++)
		ck_assert_msg(process_dead_within(pids[k], 150), "the %s sleeper (pid %d) outlived "
			      "the worker", kinds[k], (int)pids[k]);
}
END_TEST

/* The end of one task does not kill what another running task keeps in
 * its own session. */
START_TEST(test_one_tasks_end_spares_another_tasks_children)
{
	pid_t child;

	write_script("if [ \"$(sed -n 's/.*\"task_id\": *\\([0-9]*\\).*/\\1/p' \"$2\")\" = 6 ]; then\n"
		     "\tsh -c 'sh -c '\\''echo $$ > \"$0\"; exec sleep 300'\\'' \"$0\" & exit 0' "
		     "\"$DIR/b-child.pid\" &\n"
		     "\twhile [ ! -s \"$DIR/b-child.pid\" ]; do sleep 0.01; done\n"
		     "\ttouch \"$DIR/b-ready\"\n"
		     "\tsleep 300 & wait\n"
		     "fi\n"
		     "leave a\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	struct executor *ex = make_executor(_i, false, 500);
	if (!ex)
		return;
	Hf__Assignment b = assignment(6, 20), a = assignment(5, 20);
	pid_t pids[3];

	ck_assert_int_eq(executor_start(ex, &b, NULL, 0), 0);
	wait_file("b-ready");
	child = read_pid_in(state_dir, "b-child.pid");
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_uint_eq(results[0]->task_id, 5);
	read_sleepers("a", pids);
	assert_sleepers_gone(pids);
	ck_assert_msg(!process_dead_within(child, 5), "task 6's child died with task 5");
	ck_assert(executor_stop(ex, 6, 1, HF__TASK_STATUS__STATUS_CANCELLED, "test"));
	wait_results(2);
	ck_assert(process_gone(child));
	finish(ex);
}
END_TEST

/* A warm runner: what left its session during a task dies at the task's
 * end, its own child stays until the runner is retired, and then dies. */
START_TEST(test_warm_runner_keeps_its_children_but_not_what_escaped)
{
	write_script("[ \"$1\" = --serve ] || exit 64\n"
		     "sh -c 'echo $$ > \"$0\"; exec sleep 300' \"$DIR/own.pid\" &\n"
		     "while IFS= read -r req; do\n"
		     "\ttask=${req#*\\\"task\\\":\\\"}; task=${task%%\\\"*}\n"
		     "\tresult=${req#*\\\"result\\\":\\\"}; result=${result%%\\\"*}\n"
		     "\tid=$(sed -n 's/^ *\"task_id\": *\\([0-9]*\\).*/\\1/p' \"$task\")\n"
		     "\tleave \"warm$id\"\n"
		     "\techo $$ > \"$DIR/runner.pid\"\n"
		     "\tprintf '{\"status\":\"passed\"}' > \"$result\"\n"
		     "\tprintf '{\"done\": %s, \"fatal\": false}\\n' \"$id\" >&3\n"
		     "done");
	struct executor *ex = make_executor(_i, true, 500);
	if (!ex)
		return;
	Hf__Assignment a = assignment(7, 20);
	pid_t pids[3], own, runner;

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	read_sleepers("warm7", pids);
	runner = read_pid_in(state_dir, "runner.pid");
	own = read_pid_in(state_dir, "own.pid");
	/* The setsid and daemon sleepers left the runner's session: dead
	 * (the setsid one is the runner's child, for the runner to reap). */
	ck_assert(process_dead_within(pids[0], 150));
	ck_assert(process_gone(pids[2]));
	/* The runner and its own child stay for the next task. */
	ck_assert(!process_dead_within(runner, 1));
	ck_assert(!process_dead_within(own, 1));
	ck_assert_uint_eq(executor_warm_size(ex), 1);
	/* Retired (the worker stops): everything dies. */
	finish(ex);
	ck_assert(process_dead_within(runner, 150));
	ck_assert(process_dead_within(own, 150));
	ck_assert(process_dead_within(pids[1], 150));
}
END_TEST

/* The cgroup v2 mount, if this machine has one we may write to. */
static bool cgroup2_root(char *buf, size_t len)
{
	static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	char path[256];

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", candidates[i]);
		if (access(path, W_OK) == 0) {
			snprintf(path, sizeof(path), "%s/cgroup.controllers", candidates[i]);
			if (access(path, F_OK) == 0) {
				snprintf(buf, len, "%s", candidates[i]);
				return true;
			}
		}
	}
	return false;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* As systemd runs it with Delegate=yes: the worker in a cgroup of its own
 * marked trusted.delegate moves into <own>/worker and makes the tasks'
 * cgroups beside it. */
START_TEST(test_delegated_cgroup_is_used_as_systemd_gives_it)
{
	char root[128], own[256], path[1024], pid[32], *text = NULL;
	pid_t pids[3];

	if (!cgroup2_root(root, sizeof(root))) {
		fprintf(stderr, "SKIPPED: no writable cgroup v2 hierarchy\n");
		return;
	}
	if (getenv("CK_FORK") && strcmp(getenv("CK_FORK"), "no") == 0) {
		/* The worker finds its cgroup once per process. */
		fprintf(stderr, "SKIPPED: the delegated cgroup test needs a process of its own\n");
		return;
	}
	/* The test moves itself, and back to the root afterwards. */
	ck_assert_int_eq(hf_read_file("/proc/self/cgroup", 4096, &text, NULL), 0);
	if (!strstr(text, "0::/\n")) {
		fprintf(stderr, "SKIPPED: the test process is not at the cgroup v2 root\n");
		free(text);
		return;
	}
	free(text);
	snprintf(own, sizeof(own), "%s/hfleet-test-delegated-%d", root, (int)getpid());
	if (mkdir(own, 0755) < 0 || setxattr(own, "trusted.delegate", "1", 1, 0) < 0) {
		fprintf(stderr, "SKIPPED: cannot make a delegated cgroup here: %s\n", strerror(errno));
		rmdir(own);
		return;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", own);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	write_text(path, pid); /* as systemd starts the service */

	/* One sleeper also leaves its session and moves itself into the
	 * worker's own cgroup, as a runner of the worker's user may. */
	snprintf(path, sizeof(path),
		 "leave d\ncat /proc/self/cgroup > \"$DIR/cgroup\"\n"
		 "setsid sh -c 'echo $$ > \"$0\" && echo $$ > \"$1\" && exec sleep 300' "
		 "'%s/worker/cgroup.procs' \"$DIR/stray.pid\" &\n"
		 "while [ ! -s \"$DIR/stray.pid\" ]; do sleep 0.01; done\n"
		 "printf '{\"status\":\"passed\"}' > \"$4\"", own);
	write_script(path);
	unsetenv("HFLEET_CONTAIN");
	char *argv[] = { (char *)"/bin/sh", script, NULL };
	struct executor_config cfg = { .argv = argv, .state_dir = state_dir,
				       .default_timeout_ms = 30000, .kill_grace_ms = 500,
				       .output_limit = 65536 };
	struct executor *ex;
	Hf__Assignment a = assignment(9, 20);

	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &ex), 0);
	ck_assert_str_eq(executor_containment(ex), "cgroup");
	ck_assert_int_eq(hf_read_file("/proc/self/cgroup", 4096, &text, NULL), 0);
	ck_assert_msg(strstr(text, "/worker\n"), "the worker is in %s", text);
	free(text);
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	read_sleepers("d", pids);
	assert_sleepers_gone(pids);
	ck_assert(process_gone(read_pid_in(state_dir, "stray.pid")));
	snprintf(path, sizeof(path), "%s/cgroup", state_dir);
	ck_assert_int_eq(hf_read_file(path, 4096, &text, NULL), 0);
	snprintf(path, sizeof(path), "/hfleet-test-delegated-%d/task-9-1\n", (int)getpid());
	ck_assert_msg(strstr(text, path), "the runner was in %s", text);
	free(text);
	finish(ex);
	/* The task's cgroup is gone; the worker's leaf stays while it lives. */
	snprintf(path, sizeof(path), "%s/task-9-1", own);
	ck_assert_int_ne(access(path, F_OK), 0);

	snprintf(path, sizeof(path), "%s/cgroup.procs", root);
	write_text(path, pid);
	snprintf(path, sizeof(path), "%s/worker", own);
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(rmdir(own), 0);
}
END_TEST

/* Exit 0 without a result: the runner's error, never the device's. */
START_TEST(test_exit_0_without_a_result_is_not_an_infrastructure_failure)
{
	write_script("exit 0");
	struct executor *ex = make_executor(_i, false, 500);
	if (!ex)
		return;
	Hf__Assignment a = assignment(8, 20);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(results[0]->reason, "runner exited 0 without writing a result");
	ck_assert(!results[0]->infrastructure);
	finish(ex);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_contain");
	TCase *tc = tcase_create("contain");

	tcase_set_timeout(tc, 40);
	tcase_add_checked_fixture(tc, setup, teardown);
	/* Loop index: 0 the subreaper, 1 a cgroup per task. */
	tcase_add_loop_test(tc, test_sleepers_die_when_the_runner_ends_normally, 0, 2);
	tcase_add_loop_test(tc, test_sleepers_die_when_the_runner_times_out, 0, 2);
	tcase_add_loop_test(tc, test_sleepers_die_when_the_task_is_cancelled, 0, 2);
	tcase_add_loop_test(tc, test_sleepers_die_when_the_worker_stops, 0, 2);
	tcase_add_loop_test(tc, test_one_tasks_end_spares_another_tasks_children, 0, 2);
	tcase_add_loop_test(tc, test_warm_runner_keeps_its_children_but_not_what_escaped, 0, 2);
	tcase_add_loop_test(tc, test_exit_0_without_a_result_is_not_an_infrastructure_failure, 0, 2);
	tcase_add_test(tc, test_delegated_cgroup_is_used_as_systemd_gives_it);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
