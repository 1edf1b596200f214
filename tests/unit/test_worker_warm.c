/* SPDX-License-Identifier: MIT
 *
 * Tests of warm runners (worker/warm-pool.c through worker/executor.c) with
 * real child processes: a /bin/sh runner written by each test that speaks
 * the serve protocol (one request per stdin line, one done line per task on
 * descriptor 3) and reports its pid in every result, run through a libuv
 * loop.  They pin which process serves which task: reuse, and a fresh
 * process after a crash, a time limit, a fatal error, too much memory, too
 * many tasks, idleness or a broken protocol; that output reaches the task
 * that printed it; and that closing the executor reaps every runner.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"
#include "hf_util.h"
#include "result.h"
#define WARM_FIXTURE_RESULTS 16
#include "warm_fixture.h"
#include "proc_helpers.h"



/* The runner: without --serve it is a cold runner (one task from argv);
 * with it, it serves requests until end of file, then leaves a marker
 * eof-PID.  For every task it runs $PER_TASK (which may answer itself and
 * `continue`, or exit), then writes a passed result naming its pid and
 * mode and sends a done line. */
static const char prologue[] =
	"MODE=cold\n"
	"pass() {\n"
	"\tprintf '{\"status\":\"passed\",\"env\":{\"pid\":%d,\"mode\":\"%s\",\"model\":\"%s\","
	"\"cuda\":\"%s\",\"files\":\"%s\"}}' $$ \"$MODE\" \"$model\" "
	"\"${CUDA_VISIBLE_DEVICES-unset}\" \"${HFLEET_TASK_FILE-unset}\" > \"$result\"\n"
	"}\n"
	"done_line() {\n"
	"\tprintf '{\"done\": %s, \"fatal\": false, \"rss_bytes\": %s}\\n' \"$id\" "
	"\"${1:-1000}\" >&3\n"
	"}\n"
	"if [ \"$1\" != --serve ]; then\n"
	"\tresult=$4; model=cold; pass; exit 0\n"
	"fi\n"
	"MODE=warm\n"
	"[ \"$HFLEET_CONTROL_FD\" = 3 ] || exit 65\n"
	"echo $$ >> \"$DIR/pids\"\n"
	"while IFS= read -r req; do\n"
	"\ttask=${req#*\\\"task\\\":\\\"}; task=${task%%\\\"*}\n"
	"\tresult=${req#*\\\"result\\\":\\\"}; result=${result%%\\\"*}\n"
	"\tid=$(sed -n 's/^ *\"task_id\": *\\([0-9]*\\).*/\\1/p' \"$task\")\n"
	"\tmodel=$(sed -n 's/^ *\"model_type\": *\"\\([^\"]*\\)\".*/\\1/p' \"$task\")\n";

static void write_runner(const char *per_task, const char *at_eof)
{
	FILE *f = fopen(script, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\nDIR='%s'\n", state_dir);
	fputs(prologue, f);
	fprintf(f, "%s\n\tpass\n\tdone_line\ndone\necho eof > \"$DIR/eof-$$\"\n%s\n",
		per_task ? per_task : "", at_eof ? at_eof : "");
	ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
	executor_fixture_setup("/tmp/hfwarmXXXXXX");
}

struct limits {
	unsigned max_tasks;
	uint64_t max_rss;
	int64_t idle_ms;
	int64_t grace_ms;
};

static struct executor *make_executor_with(bool warm, struct limits lim)
{
	char *argv[] = { (char *)"/bin/sh", script, NULL };
	struct executor_config cfg = {
		.argv = argv,
		.state_dir = state_dir,
		.default_timeout_ms = 30000,
		.kill_grace_ms = lim.grace_ms ? lim.grace_ms : 1000,
		.output_limit = 65536,
		.warm = warm,
		.warm_max_tasks = lim.max_tasks,
		.warm_max_rss = lim.max_rss,
		.warm_idle_timeout_ms = lim.idle_ms,
	};
	struct executor *ex;

	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &ex), 0);
	return ex;
}

static struct executor *make_executor(void)
{
	return make_executor_with(true, (struct limits){ 0 });
}

static Hf__Assignment assignment(uint64_t task_id, const char *model, uint32_t timeout_s)
{
	Hf__Assignment a = HF__ASSIGNMENT__INIT;

	a.task_id = task_id;
	a.attempt = 1;
	a.job_id = 9;
	a.model_type = (char *)model;
	a.kind = HF__TASK_KIND__KIND_TEST;
	a.backend = HF__BACKEND__BACKEND_CPU;
	a.batch_size = 1;
	a.precision = "fp32";
	a.timeout_s = timeout_s;
	return a;
}

static void start(struct executor *ex, uint64_t task_id, const char *model, uint32_t timeout_s)
{
	Hf__Assignment a = assignment(task_id, model, timeout_s);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
}

/* Runs one task to its end; returns its result. */
static Hf__TaskResult *run_task(struct executor *ex, uint64_t task_id, const char *model,
				uint32_t timeout_s)
{
	start(ex, task_id, model, timeout_s);
	wait_results(n_results + 1);
	return results[n_results - 1];
}

static const char *result_env_str(const Hf__TaskResult *r, const char *key)
{
	static char buf[256];
	json_t *env = json_loads(r->env_json, 0, NULL);
	const char *v;

	ck_assert_ptr_nonnull(env);
	v = json_string_value(json_object_get(env, key));
	ck_assert_msg(v != NULL, "no %s in %s", key, r->env_json);
	hf_strlcpy(buf, v, sizeof(buf));
	json_decref(env);
	return buf;
}

static bool process_dead(pid_t pid)
{
	return process_dead_within(pid, 150);
}

static pid_t read_pid(const char *name)
{
	return read_pid_in(state_dir, name);
}

/* Runs the loop until the file name exists in the state directory. */
static void wait_file(const char *name)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", state_dir, name);
	for (int i = 0; i < 500 && stat(path, &st) < 0; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	ck_assert_msg(stat(path, &st) == 0, "%s did not appear", name);
	usleep(50000); /* and it is complete */
}

/* ---- reuse ---- */

START_TEST(test_two_tasks_are_served_by_one_process)
{
	write_runner(NULL, NULL);
	struct executor *ex = make_executor();
	Hf__TaskResult *r1, *r2;

	r1 = run_task(ex, 1, "bert", 10);
	ck_assert_int_eq(r1->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_uint_eq(executor_size(ex), 0);
	ck_assert_uint_eq(executor_warm_size(ex), 1); /* idle, waiting */
	r2 = run_task(ex, 2, "gpt2", 10);
	ck_assert_int_eq(r2->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_int_eq(result_pid(r1), result_pid(r2));
	ck_assert_str_eq(result_env_str(r1, "mode"), "warm");
	ck_assert_str_eq(result_env_str(r2, "model"), "gpt2"); /* it read task 2's file */
	ck_assert_uint_eq(r2->task_id, 2);
	ck_assert_int_eq(r2->exit_code, 0);
	/* The device environment of a cold runner, but no task files: a warm
	 * runner serves many tasks. */
	ck_assert_str_eq(result_env_str(r2, "cuda"), "");
	ck_assert_str_eq(result_env_str(r2, "files"), "unset");
	ck_assert_int_eq(runner_pids(NULL, 0), 1);
	finish(ex);
	ck_assert(exited_on_eof(result_pid(r1))); /* closing asked it to leave */
}
END_TEST

START_TEST(test_without_warm_every_task_gets_its_own_process)
{
	write_runner(NULL, NULL);
	struct executor *ex = make_executor_with(false, (struct limits){ 0 });
	Hf__TaskResult *r1, *r2;

	r1 = run_task(ex, 1, "bert", 10);
	r2 = run_task(ex, 2, "bert", 10);
	ck_assert_int_eq(r1->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_str_eq(result_env_str(r1, "mode"), "cold");
	ck_assert_int_ne(result_pid(r1), result_pid(r2));
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	ck_assert_int_eq(runner_pids(NULL, 0), 0);
	finish(ex);
}
END_TEST

START_TEST(test_a_task_of_several_devices_gets_a_cold_runner)
{
	write_runner(NULL, NULL);
	struct executor *ex = make_executor();
	Hf__Assignment a = assignment(1, "llama", 10);
	uint32_t idx[] = { 0, 1 };
	Hf__TaskResult *r;

	a.backend = HF__BACKEND__BACKEND_CUDA;
	a.device_index = 0;
	a.n_device_indices = 2;
	a.device_indices = idx;
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	r = results[0];
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_str_eq(result_env_str(r, "mode"), "cold");
	ck_assert_str_eq(result_env_str(r, "cuda"), "0,1");
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	finish(ex);
}
END_TEST

/* A GPU as detection describes it. */
static struct hw_device gpu(unsigned index, const char *uuid)
{
	struct hw_device d;

	memset(&d, 0, sizeof(d));
	d.backend = HF__BACKEND__BACKEND_CUDA;
	d.index = index;
	d.visible_index = -1;
	snprintf(d.name, sizeof(d.name), "NVIDIA H100 80GB HBM3");
	snprintf(d.uuid, sizeof(d.uuid), "%s", uuid);
	return d;
}

START_TEST(test_each_device_has_its_own_runner_with_its_own_environment)
{
	write_runner(NULL, NULL);
	setenv("CUDA_VISIBLE_DEVICES", "0,1", 1); /* the worker's own must not leak */
	struct executor *ex = make_executor();
	struct hw_device g0 = gpu(0, "GPU-aaaa"), g1 = gpu(1, "GPU-bbbb");
	const struct hw_device *d0[] = { &g0 }, *d1[] = { &g1 };
	Hf__Assignment a;
	int pid0, pid1;

	a = assignment(1, "bert", 10);
	a.backend = HF__BACKEND__BACKEND_CUDA;
	a.device_index = 0;
	ck_assert_int_eq(executor_start(ex, &a, d0, 1), 0);
	wait_results(1);
	a = assignment(2, "bert", 10);
	a.backend = HF__BACKEND__BACKEND_CUDA;
	a.device_index = 1;
	ck_assert_int_eq(executor_start(ex, &a, d1, 1), 0);
	wait_results(2);
	a = assignment(3, "bert", 10);
	a.backend = HF__BACKEND__BACKEND_CUDA;
	a.device_index = 0;
	ck_assert_int_eq(executor_start(ex, &a, d0, 1), 0);
	wait_results(3);

	ck_assert_str_eq(result_env_str(results[0], "cuda"), "GPU-aaaa");
	ck_assert_str_eq(result_env_str(results[1], "cuda"), "GPU-bbbb");
	ck_assert_str_eq(result_env_str(results[2], "cuda"), "GPU-aaaa");
	pid0 = result_pid(results[0]);
	pid1 = result_pid(results[1]);
	ck_assert_int_ne(pid0, pid1);
	ck_assert_int_eq(result_pid(results[2]), pid0);
	ck_assert_uint_eq(executor_warm_size(ex), 2);
	finish(ex);
	unsetenv("CUDA_VISIBLE_DEVICES");
}
END_TEST

START_TEST(test_a_device_with_two_slots_keeps_up_to_two_runners)
{
	write_runner("\tcase \"$model\" in slow) sleep 0.3 ;; esac", NULL);
	struct executor *ex = make_executor();
	int a, b, c, d;

	start(ex, 1, "slow", 10);
	start(ex, 2, "slow", 10); /* at the same time: a second runner */
	ck_assert_uint_eq(executor_count(ex, HF__BACKEND__BACKEND_CPU, 0), 2);
	wait_results(2);
	a = result_pid(results[0]);
	b = result_pid(results[1]);
	ck_assert_int_ne(a, b);
	start(ex, 3, "slow", 10);
	start(ex, 4, "slow", 10);
	wait_results(4);
	c = result_pid(results[2]);
	d = result_pid(results[3]);
	ck_assert_int_ne(c, d);
	ck_assert((c == a || c == b) && (d == a || d == b));
	ck_assert_int_eq(runner_pids(NULL, 0), 2);
	finish(ex);
}
END_TEST

/* ---- a fresh process when the old one cannot go on ---- */

START_TEST(test_crash_mid_task_is_an_error_and_the_next_task_gets_a_new_process)
{
	write_runner("\tcase \"$model\" in\n"
		     "\tcrash) echo 'about to crash' >&2; exit 7 ;;\n"
		     "\tkilled) kill -KILL $$ ;;\n"
		     "\tesac",
		     NULL);
	struct executor *ex = make_executor();
	Hf__TaskResult *r;
	int first, second;

	first = result_pid(run_task(ex, 1, "bert", 10));
	r = run_task(ex, 2, "crash", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "warm runner exited with status 7 while running the task, "
				    "without reporting a result");
	ck_assert_int_eq(r->exit_code, 7);
	ck_assert_ptr_nonnull(strstr(r->log_excerpt, "about to crash"));
	ck_assert(process_dead(first));

	r = run_task(ex, 3, "bert", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	second = result_pid(r);
	ck_assert_int_ne(second, first);

	r = run_task(ex, 4, "killed", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "warm runner was killed by signal SIGKILL while running the "
				    "task, without reporting a result");
	ck_assert_int_eq(r->exit_code, 128 + SIGKILL);
	r = run_task(ex, 5, "bert", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_int_ne(result_pid(r), second);
	ck_assert_int_eq(runner_pids(NULL, 0), 3);
	finish(ex);
}
END_TEST

START_TEST(test_timeout_kills_the_whole_group_and_the_next_task_gets_a_fresh_runner)
{
	/* It ignores SIGTERM (and so do its children), so only SIGKILL to the
	 * group ends it; the grandchild must not survive. */
	write_runner("\tcase \"$model\" in hang)\n"
		     "\t\ttrap '' TERM\n"
		     "\t\tsleep 100 &\n"
		     "\t\techo $! > \"$DIR/grandchild.pid\"\n"
		     "\t\tsleep 100 ;;\n"
		     "\tesac",
		     NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .grace_ms = 300 });
	Hf__TaskResult *r;
	int first;
	uint64_t t0;

	first = result_pid(run_task(ex, 1, "bert", 10));
	t0 = uv_hrtime();
	r = run_task(ex, 2, "hang", 1);
	double elapsed = (double)(uv_hrtime() - t0) / 1e9;
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_TIMEOUT);
	ck_assert_str_eq(r->reason, "runner did not finish within 1 s");
	ck_assert_int_eq(r->exit_code, 128 + SIGKILL);
	ck_assert_msg(elapsed >= 1.2 && elapsed < 5.0, "took %.2f s", elapsed);
	ck_assert(process_dead(first));
	ck_assert(process_dead(read_pid("grandchild.pid")));
	ck_assert_uint_eq(executor_warm_size(ex), 0);

	r = run_task(ex, 3, "bert", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_int_ne(result_pid(r), first);
	finish(ex);
}
END_TEST

START_TEST(test_cancel_stops_the_warm_runner_with_status_cancelled)
{
	write_runner("\tcase \"$model\" in hang) echo $$ > \"$DIR/runner.pid\"; sleep 100 ;; esac",
		     NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .grace_ms = 5000 });
	Hf__TaskResult *r;

	start(ex, 1, "hang", 60);
	wait_file("runner.pid");
	ck_assert(executor_stop(ex, 1, 1, HF__TASK_STATUS__STATUS_CANCELLED,
				"cancelled by the coordinator"));
	wait_results(1);
	r = results[0];
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_CANCELLED);
	ck_assert_str_eq(r->reason, "cancelled by the coordinator");
	ck_assert_int_eq(r->exit_code, 128 + SIGTERM);
	ck_assert(process_dead(read_pid("runner.pid")));
	ck_assert_int_ne(result_pid(run_task(ex, 2, "bert", 10)), read_pid("runner.pid"));
	finish(ex);
}
END_TEST

START_TEST(test_runner_that_survives_a_stop_is_not_used_again)
{
	/* It catches SIGTERM (its sleep dies of it), then answers as if all
	 * were well: the task is still cancelled, and the runner goes. */
	write_runner("\tcase \"$model\" in survive)\n"
		     "\t\ttrap 'echo caught TERM' TERM\n"
		     "\t\techo $$ > \"$DIR/runner.pid\"\n"
		     "\t\tsleep 100 ;;\n"
		     "\tesac",
		     NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .grace_ms = 5000 });
	Hf__TaskResult *r;
	int first;

	start(ex, 1, "survive", 60);
	wait_file("runner.pid");
	first = read_pid("runner.pid");
	ck_assert(executor_stop(ex, 1, 1, HF__TASK_STATUS__STATUS_CANCELLED, "cancelled"));
	wait_results(1);
	r = results[0];
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_CANCELLED);
	ck_assert_ptr_nonnull(strstr(r->log_excerpt, "caught TERM"));
	ck_assert_int_ne(result_pid(run_task(ex, 2, "bert", 10)), first);
	ck_assert(process_dead(first));
	ck_assert(exited_on_eof(first)); /* its stdin was closed */
	finish(ex);
}
END_TEST

START_TEST(test_fatal_error_keeps_the_outcome_and_retires_the_runner)
{
	/* "fatal" answers and goes on reading: the worker must end it.
	 * "fatal_exit" exits at once after its done line, as the reference
	 * runner does: the done line still decides, not the exit. */
	write_runner("\tcase \"$model\" in fatal|fatal_exit)\n"
		     "\t\tprintf '{\"status\":\"error\",\"reason\":\"RuntimeError: CUDA error: "
		     "device-side assert triggered\",\"env\":{\"pid\":%d}}' $$ > \"$result\"\n"
		     "\t\tprintf '{\"done\": %s, \"fatal\": true, \"rss_bytes\": 1000, "
		     "\"reason\": \"CUDA error: device-side assert triggered\"}\\n' \"$id\" >&3\n"
		     "\t\t[ \"$model\" = fatal_exit ] && exit 3\n"
		     "\t\tcontinue ;;\n"
		     "\tmodels_fault)\n"
		     "\t\tprintf '{\"status\":\"error\",\"reason\":\"index out of range\"}' > \"$result\"\n"
		     "\t\tprintf '{\"done\": %s, \"fatal\": true, \"device_fault\": false}\\n' \"$id\" >&3\n"
		     "\t\tcontinue ;;\n"
		     "\tesac",
		     NULL);
	struct executor *ex = make_executor();
	Hf__TaskResult *r;
	int first, second, third;

	first = result_pid(run_task(ex, 1, "bert", 10));
	r = run_task(ex, 2, "fatal", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "RuntimeError: CUDA error: device-side assert triggered");
	ck_assert_int_eq(result_pid(r), first);
	ck_assert(r->infrastructure); /* the runner did not say: the device is blamed */
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	ck_assert(process_dead(first));
	ck_assert(exited_on_eof(first)); /* retired by closing its stdin */

	second = result_pid(run_task(ex, 3, "bert", 10));
	ck_assert_int_ne(second, first);
	r = run_task(ex, 4, "fatal_exit", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "RuntimeError: CUDA error: device-side assert triggered");
	ck_assert_int_eq(r->exit_code, 0);
	third = result_pid(run_task(ex, 5, "bert", 10));
	ck_assert_int_ne(third, second);
	/* the model's own fault: the runner goes all the same, the outcome stands */
	r = run_task(ex, 6, "models_fault", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert(!r->infrastructure);
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	ck_assert_int_ne(result_pid(run_task(ex, 7, "bert", 10)), third);
	ck_assert_int_eq(runner_pids(NULL, 0), 4);
	finish(ex);
}
END_TEST

START_TEST(test_runner_over_the_memory_limit_is_replaced)
{
	/* "big" says it holds 1 TiB after its task. */
	write_runner("\tcase \"$model\" in big) pass; done_line 1099511627776; continue ;; esac",
		     NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .max_rss = 1ull << 30 });
	int first, second;

	first = result_pid(run_task(ex, 1, "bert", 10));
	ck_assert_int_eq(result_pid(run_task(ex, 2, "bert", 10)), first); /* under: kept */
	ck_assert_int_eq(result_pid(run_task(ex, 3, "big", 10)), first);
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	second = result_pid(run_task(ex, 4, "bert", 10));
	ck_assert_int_ne(second, first);
	ck_assert(process_dead(first));
	ck_assert(exited_on_eof(first));
	finish(ex);
}
END_TEST

START_TEST(test_resident_memory_is_read_from_proc_when_the_runner_does_not_say)
{
	/* rss_bytes null: the worker reads VmRSS, which for any shell is far
	 * above 64 KiB. */
	write_runner("\tpass; printf '{\"done\": %s, \"rss_bytes\": null}\\n' \"$id\" >&3; continue",
		     NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .max_rss = 64 * 1024 });
	int first;

	first = result_pid(run_task(ex, 1, "bert", 10));
	ck_assert_int_ne(result_pid(run_task(ex, 2, "bert", 10)), first);
	finish(ex);
}
END_TEST

START_TEST(test_runner_is_replaced_after_max_tasks)
{
	write_runner(NULL, NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .max_tasks = 2 });
	int p1, p2, p3, p4, p5;

	p1 = result_pid(run_task(ex, 1, "bert", 10));
	p2 = result_pid(run_task(ex, 2, "bert", 10));
	p3 = result_pid(run_task(ex, 3, "bert", 10));
	p4 = result_pid(run_task(ex, 4, "bert", 10));
	p5 = result_pid(run_task(ex, 5, "bert", 10));
	ck_assert_int_eq(p1, p2);
	ck_assert_int_ne(p3, p1);
	ck_assert_int_eq(p3, p4);
	ck_assert_int_ne(p5, p3);
	ck_assert(process_dead(p1));
	ck_assert(exited_on_eof(p1));
	ck_assert_int_eq(runner_pids(NULL, 0), 3);
	finish(ex);
}
END_TEST

START_TEST(test_idle_runner_is_retired_after_the_idle_timeout)
{
	write_runner(NULL, NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .idle_ms = 500 });
	int first;

	first = result_pid(run_task(ex, 1, "bert", 10));
	run_for(100);
	ck_assert_uint_eq(executor_warm_size(ex), 1); /* not yet */
	ck_assert(!exited_on_eof(first));
	run_for(1400);
	ck_assert_uint_eq(executor_warm_size(ex), 0);
	ck_assert(process_dead(first));
	ck_assert(exited_on_eof(first));
	ck_assert_int_ne(result_pid(run_task(ex, 2, "bert", 10)), first);
	finish(ex);
}
END_TEST

/* ---- output and protocol ---- */

START_TEST(test_output_goes_to_the_task_that_printed_it)
{
	/* Each task prints on stdout and stderr right up to its done line; the
	 * runner prints again while idle, which belongs to no task. */
	write_runner("\thead -c 300000 /dev/zero\n"
		     "\techo \"start of $model\"; echo \"error of $model\" >&2\n"
		     "\tpass; echo \"end of $model\"; done_line\n"
		     "\t(sleep 0.2; echo \"idle noise after $model\") &\n"
		     "\tcontinue",
		     NULL);
	struct executor *ex = make_executor();
	Hf__TaskResult *r1, *r2;

	r1 = run_task(ex, 1, "one", 10);
	run_for(600); /* the idle noise comes and goes */
	r2 = run_task(ex, 2, "two", 10);
	ck_assert_int_eq(result_pid(r1), result_pid(r2));
	ck_assert_ptr_nonnull(strstr(r1->log_excerpt, "start of one"));
	ck_assert_ptr_nonnull(strstr(r1->log_excerpt, "error of one"));
	ck_assert_ptr_nonnull(strstr(r1->log_excerpt, "end of one"));
	ck_assert_ptr_null(strstr(r1->log_excerpt, "two"));
	ck_assert_ptr_nonnull(strstr(r2->log_excerpt, "start of two"));
	ck_assert_ptr_nonnull(strstr(r2->log_excerpt, "end of two"));
	ck_assert_ptr_null(strstr(r2->log_excerpt, "one"));
	ck_assert_ptr_null(strstr(r2->log_excerpt, "idle noise"));
	finish(ex);
}
END_TEST

START_TEST(test_broken_protocol_is_a_task_error_not_a_hang)
{
	static const struct {
		const char *model;
		const char *reason;
	} cases[] = {
		{ "garble", "warm runner sent a malformed control line (control line is not JSON: "
			    "\"this is not json\")" },
		{ "wrongid", "warm runner reported task 999 done while running task " },
		{ "refuse", "warm runner refused the task: cannot parse that" },
		{ "closectl", "warm runner closed its control pipe while running the task" },
	};
	write_runner("\tcase \"$model\" in\n"
		     "\tgarble) echo 'this is not json' >&3; sleep 100 ;;\n"
		     "\twrongid) pass; printf '{\"done\": 999}\\n' >&3; sleep 100 ;;\n"
		     "\trefuse) printf '{\"error\": \"cannot parse that\"}\\n' >&3; sleep 100 ;;\n"
		     "\tclosectl) exec 3>&-; sleep 100 ;;\n"
		     "\tesac",
		     NULL);
	struct executor *ex = make_executor();
	int last = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t t0 = uv_hrtime();
		Hf__TaskResult *r = run_task(ex, 10 + i, cases[i].model, 60);
		double elapsed = (double)(uv_hrtime() - t0) / 1e9;
		int pid = result_pid(run_task(ex, 20 + i, "bert", 10));

		ck_assert_msg(r->status == HF__TASK_STATUS__STATUS_ERROR, "%s: %s", cases[i].model,
			      hf_status_name(r->status));
		ck_assert_msg(strncmp(r->reason, cases[i].reason, strlen(cases[i].reason)) == 0,
			      "%s: %s", cases[i].model, r->reason);
		ck_assert_msg(elapsed < 5.0, "%s took %.2f s", cases[i].model, elapsed);
		/* The next task ran in another process, and the broken one is gone. */
		ck_assert_int_ne(pid, last);
		if (last)
			ck_assert(process_dead(last));
		last = pid;
	}
	finish(ex);
}
END_TEST

START_TEST(test_done_without_a_result_file_is_an_error)
{
	write_runner("\tcase \"$model\" in noresult) done_line; continue ;; esac", NULL);
	struct executor *ex = make_executor();
	Hf__TaskResult *r;
	int first;

	first = result_pid(run_task(ex, 1, "bert", 10));
	r = run_task(ex, 2, "noresult", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "warm runner reported the task done without writing a result");
	ck_assert(!r->infrastructure); /* the runner's error: no quarantine for the device */
	/* Not the runner's fault beyond this task: it stays. */
	ck_assert_int_eq(result_pid(run_task(ex, 3, "bert", 10)), first);
	finish(ex);
}
END_TEST

START_TEST(test_a_result_in_the_done_line_is_taken_without_a_file)
{
	/* "inline": the result in the line only; "both": a file too, which is
	 * not read; "bad": an invalid result in the line; "notobj": a result
	 * that is no object breaks the protocol. */
	write_runner("\tcase \"$req\" in *'\"result_inline\":true'*) ;; *) exit 66 ;; esac\n"
		     "\tcase \"$model\" in\n"
		     "\tinline) printf '{\"done\": %s, \"result\": {\"status\": \"passed\", "
		     "\"env\": {\"pid\": %d, \"how\": \"line\"}}}\\n' \"$id\" $$ >&3; continue ;;\n"
		     "\tboth) printf '{\"status\":\"failed\",\"reason\":\"file\"}' > \"$result\"\n"
		     "\t\tprintf '{\"done\": %s, \"result\": {\"status\": \"passed\"}}\\n' \"$id\" >&3;"
		     " continue ;;\n"
		     "\tbad) printf '{\"done\": %s, \"result\": {\"status\": \"maybe\"}}\\n' \"$id\" >&3;"
		     " continue ;;\n"
		     "\tnotobj) printf '{\"done\": %s, \"result\": [1]}\\n' \"$id\" >&3; sleep 100 ;;\n"
		     "\tesac",
		     NULL);
	struct executor *ex = make_executor();
	Hf__TaskResult *r;
	char path[160];
	int first;

	r = run_task(ex, 1, "inline", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_ptr_nonnull(strstr(r->env_json, "\"line\""));
	first = result_pid(r);
	snprintf(path, sizeof(path), "%s/tasks/1-1.result.json", state_dir);
	ck_assert_int_ne(access(path, F_OK), 0);

	r = run_task(ex, 2, "both", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_PASSED); /* the line's, not the file's */

	r = run_task(ex, 3, "bad", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(r->reason, "runner sent an invalid result: \"status\" must be passed, failed, "
				    "error or skipped, not \"maybe\"");
	ck_assert(!r->infrastructure);
	/* Still the same process: a bad result is the task's, not the runner's end. */
	ck_assert_int_eq(result_pid(run_task(ex, 4, "inline", 10)), first);

	r = run_task(ex, 5, "notobj", 10);
	ck_assert_int_eq(r->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_ptr_nonnull(strstr(r->reason, "\"result\" of a done line must be an object"));
	ck_assert_int_ne(result_pid(run_task(ex, 6, "inline", 10)), first);
	finish(ex);
}
END_TEST

START_TEST(test_runner_that_cannot_start_gives_an_error_result_later)
{
	char *argv[] = { (char *)"/nonexistent/runner", NULL };
	struct executor_config cfg = { .argv = argv, .state_dir = state_dir,
				       .default_timeout_ms = 1000, .kill_grace_ms = 100,
				       .output_limit = 4096, .warm = true };
	struct executor *bad;
	Hf__Assignment a = assignment(9, "bert", 10);

	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &bad), 0);
	ck_assert_int_eq(executor_start(bad, &a, NULL, 0), 0);
	ck_assert_int_eq(n_results, 0); /* never from inside executor_start */
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(results[0]->reason,
			 "could not start runner \"/nonexistent/runner\": No such file or directory");
	ck_assert_int_eq(results[0]->exit_code, -1);
	ck_assert_uint_eq(executor_warm_size(bad), 0);
	finish(bad);
}
END_TEST

/* ---- closing ---- */

START_TEST(test_close_kills_a_busy_runner_without_a_result)
{
	write_runner("\tcase \"$model\" in hang) sleep 100 & echo $! > \"$DIR/grandchild.pid\"; wait "
		     ";; esac",
		     NULL);
	struct executor *ex = make_executor_with(true, (struct limits){ .grace_ms = 10000 });
	int first;

	first = result_pid(run_task(ex, 1, "bert", 10));
	start(ex, 2, "hang", 60);
	wait_file("grandchild.pid");
	pid_t grandchild = read_pid("grandchild.pid");
	uint64_t t0 = uv_hrtime();
	finish(ex);
	ck_assert_msg(uv_hrtime() - t0 < 3000000000ull, "close took %.2f s",
		      (double)(uv_hrtime() - t0) / 1e9);
	ck_assert_int_eq(n_results, 1);
	ck_assert(process_dead(first));
	ck_assert(process_dead(grandchild));
}
END_TEST

START_TEST(test_close_kills_an_idle_runner_that_ignores_end_of_file_after_the_grace)
{
	write_runner(NULL, "sleep 100 & echo $! > \"$DIR/stubborn.pid\"; wait");
	struct executor *ex = make_executor_with(true, (struct limits){ .grace_ms = 400 });
	int first;

	first = result_pid(run_task(ex, 1, "bert", 10));
	uint64_t t0 = uv_hrtime();
	finish(ex);
	double elapsed = (double)(uv_hrtime() - t0) / 1e9;
	ck_assert_msg(elapsed >= 0.35 && elapsed < 3.0, "close took %.2f s", elapsed);
	ck_assert(exited_on_eof(first)); /* it did see the end of file */
	ck_assert(process_dead(first));
	ck_assert(process_dead(read_pid("stubborn.pid")));
}
END_TEST

START_TEST(test_processes_a_runner_leaves_behind_are_killed_when_it_exits)
{
	/* The leftover holds the runner's pipes: only killing the group lets
	 * the close end promptly. */
	write_runner(NULL, "sleep 100 & echo $! > \"$DIR/leftover.pid\"");
	struct executor *ex = make_executor();
	int first;

	first = result_pid(run_task(ex, 1, "bert", 10));
	uint64_t t0 = uv_hrtime();
	finish(ex);
	ck_assert_msg(uv_hrtime() - t0 < 1500000000ull, "close took %.2f s",
		      (double)(uv_hrtime() - t0) / 1e9);
	ck_assert(process_dead(first));
	ck_assert(process_dead(read_pid("leftover.pid")));
}
END_TEST

START_TEST(test_a_runner_that_says_task_inline_gets_its_next_tasks_in_the_line)
{
	/* It reads a task file, or the task in the line; it notes which, and
	 * whether a task file was there, per task. */
	FILE *f = fopen(script, "w");
	char path[128], *text = NULL;

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\nDIR='%s'\n", state_dir);
	fputs("while IFS= read -r req; do\n"
	      "\tcase \"$req\" in\n"
	      "\t'{\"task\":{'*) id=${req#*\\\"task_id\\\":}; id=${id%%,*}; how=line ;;\n"
	      "\t*) task=${req#*\\\"task\\\":\\\"}; task=${task%%\\\"*}\n"
	      "\t   id=$(sed -n 's/^ *\"task_id\": *\\([0-9]*\\).*/\\1/p' \"$task\"); how=file ;;\n"
	      "\tesac\n"
	      "\t[ -e \"$DIR/tasks/$id-1.task.json\" ] && how=\"$how+file\"\n"
	      "\techo \"$id $how\" >> \"$DIR/how\"\n"
	      "\tresult=${req#*\\\"result\\\":\\\"}; result=${result%%\\\"*}\n"
	      "\tprintf '{\"status\":\"passed\"}' > \"$result\"\n"
	      "\tprintf '{\"done\": %s, \"task_inline\": true}\\n' \"$id\" >&3\n"
	      "done\n", f);
	ck_assert_int_eq(fclose(f), 0);
	struct executor *ex = make_executor();

	for (uint64_t id = 1; id <= 3; id++)
		ck_assert_int_eq(run_task(ex, id, "bert", 30)->status, HF__TASK_STATUS__STATUS_PASSED);
	snprintf(path, sizeof(path), "%s/how", state_dir);
	ck_assert_int_eq(hf_read_file(path, 4096, &text, NULL), 0);
	/* The first by file (nothing known of the runner yet), then in the
	 * line, with no file written at all. */
	ck_assert_str_eq(text, "1 file+file\n2 line\n3 line\n");
	free(text);
	finish(ex);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_warm");
	TCase *tc = tcase_create("warm");

	tcase_set_timeout(tc, 40);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_two_tasks_are_served_by_one_process);
	tcase_add_test(tc, test_without_warm_every_task_gets_its_own_process);
	tcase_add_test(tc, test_a_task_of_several_devices_gets_a_cold_runner);
	tcase_add_test(tc, test_each_device_has_its_own_runner_with_its_own_environment);
	tcase_add_test(tc, test_a_device_with_two_slots_keeps_up_to_two_runners);
	tcase_add_test(tc, test_crash_mid_task_is_an_error_and_the_next_task_gets_a_new_process);
	tcase_add_test(tc, test_timeout_kills_the_whole_group_and_the_next_task_gets_a_fresh_runner);
	tcase_add_test(tc, test_cancel_stops_the_warm_runner_with_status_cancelled);
	tcase_add_test(tc, test_runner_that_survives_a_stop_is_not_used_again);
	tcase_add_test(tc, test_fatal_error_keeps_the_outcome_and_retires_the_runner);
	tcase_add_test(tc, test_runner_over_the_memory_limit_is_replaced);
	tcase_add_test(tc, test_resident_memory_is_read_from_proc_when_the_runner_does_not_say);
	tcase_add_test(tc, test_runner_is_replaced_after_max_tasks);
	tcase_add_test(tc, test_idle_runner_is_retired_after_the_idle_timeout);
	tcase_add_test(tc, test_output_goes_to_the_task_that_printed_it);
	tcase_add_test(tc, test_broken_protocol_is_a_task_error_not_a_hang);
	tcase_add_test(tc, test_done_without_a_result_file_is_an_error);
	tcase_add_test(tc, test_a_result_in_the_done_line_is_taken_without_a_file);
	tcase_add_test(tc, test_runner_that_cannot_start_gives_an_error_result_later);
	tcase_add_test(tc, test_close_kills_a_busy_runner_without_a_result);
	tcase_add_test(tc, test_close_kills_an_idle_runner_that_ignores_end_of_file_after_the_grace);
	tcase_add_test(tc, test_processes_a_runner_leaves_behind_are_killed_when_it_exits);
	tcase_add_test(tc, test_a_runner_that_says_task_inline_gets_its_next_tasks_in_the_line);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
