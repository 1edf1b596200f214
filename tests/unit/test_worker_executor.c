/* SPDX-License-Identifier: MIT
 *
 * Tests of the task executor (worker/executor.c) with real child
 * processes: small /bin/sh runners written to a temporary state directory,
 * run through a libuv loop.  They pin the runner contract end to end:
 * result file, exit without result, time limit with the whole process group
 * killed, cancel, output flood, a runner that cannot start, and that a
 * runner sees exactly the devices of its task.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"
#include "hf_util.h"
#define EXECUTOR_FIXTURE_RESULTS 8
#include "executor_fixture.h"
#include "proc_helpers.h"

static void setup(void)
{
	executor_fixture_setup("/tmp/hfexecXXXXXX");
}

static void write_script(const char *body)
{
	FILE *f = fopen(script, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\nDIR='%s'\n%s\n", state_dir, body);
	ck_assert_int_eq(fclose(f), 0);
}

static struct executor *make_executor(const char *runner, int64_t grace_ms, size_t output_limit)
{
	char *argv[] = { (char *)"/bin/sh", (char *)runner, NULL };
	struct executor_config cfg = {
		.argv = argv,
		.state_dir = state_dir,
		.default_timeout_ms = 30000,
		.kill_grace_ms = grace_ms,
		.output_limit = output_limit,
	};
	struct executor *ex;

	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &ex), 0);
	return ex;
}

static Hf__Assignment assignment(uint64_t task_id, uint32_t timeout_s)
{
	Hf__Assignment a = HF__ASSIGNMENT__INIT;

	a.task_id = task_id;
	a.attempt = 1;
	a.job_id = 9;
	a.model_type = "bert";
	a.hf_id = "google-bert/bert-base-uncased";
	a.family = "encoder-only";
	a.kind = HF__TASK_KIND__KIND_TEST;
	a.backend = HF__BACKEND__BACKEND_CPU;
	a.batch_size = 2;
	a.precision = "fp32";
	a.timeout_s = timeout_s;
	return a;
}

/* Health checks (executor_check_start). */
static struct executor_check checks[4];
static int n_checks;

static void check_cb(struct executor *ex, const struct executor_check *c, void *arg)
{
	(void)ex;
	(void)arg;
	ck_assert_int_lt(n_checks, 4);
	checks[n_checks++] = *c;
	uv_stop(&loop);
}

static void wait_check(void)
{
	uv_timer_start(&guard, guard_cb, EXECUTOR_FIXTURE_GUARD_MS, 0);
	if (n_checks == 0)
		uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&guard);
	ck_assert_int_eq(n_checks, 1);
}

static bool process_dead(pid_t pid)
{
	return process_dead_within(pid, 100);
}

static pid_t read_pid(const char *name)
{
	return read_pid_in(state_dir, name);
}

START_TEST(test_runner_result_file_is_reported_as_written)
{
	write_script("echo 'loading bert'\n"
		     "printf '{\"status\":\"passed\",\"weights\":\"random-init\","
		     "\"metrics\":{\"load_s\":0.5},\"outputs\":{\"finite\":true}}' > \"$4\"");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(1, 10);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	ck_assert_uint_eq(executor_count(ex, HF__BACKEND__BACKEND_CPU, 0), 1);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_uint_eq(results[0]->task_id, 1);
	ck_assert_str_eq(results[0]->weights, "random-init");
	ck_assert_str_eq(results[0]->metrics_json, "{\"load_s\":0.5}");
	ck_assert_ptr_nonnull(strstr(results[0]->log_excerpt, "loading bert"));
	ck_assert_int_eq(results[0]->exit_code, 0);
	ck_assert(results[0]->finished_at >= results[0]->started_at);
	ck_assert_uint_eq(executor_size(ex), 0);
	finish(ex);
}
END_TEST

START_TEST(test_task_file_and_environment_reach_the_runner)
{
	/* The runner copies its task file and reports its environment. */
	write_script("cp \"$2\" \"$DIR/seen-task.json\"\n"
		     "[ \"$2\" = \"$HFLEET_TASK_FILE\" ] && [ \"$4\" = \"$HFLEET_RESULT_FILE\" ] || exit 9\n"
		     "printf '{\"status\":\"passed\",\"env\":{\"cuda\":\"%s\",\"hip\":\"%s\",\"dev\":\"%s\"}}' "
		     "\"${CUDA_VISIBLE_DEVICES-unset}\" \"${HIP_VISIBLE_DEVICES-unset}\" "
		     "\"$HFLEET_DEVICE_INDEX\" > \"$HFLEET_RESULT_FILE\"");
	setenv("CUDA_VISIBLE_DEVICES", "0,1", 1); /* the worker's own must not leak */
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(2, 10);
	char path[128], *text = NULL;
	json_t *task;
	/* The worker writes the JSON itself: what a string needs escaped is. */
	char odd[] = "org/m\"q\\b\x01\t\xc3\xa9";
	a.hf_id = odd;

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_str_eq(results[0]->env_json, "{\"cuda\":\"\",\"hip\":\"\",\"dev\":\"0\"}");

	snprintf(path, sizeof(path), "%s/seen-task.json", state_dir);
	ck_assert_int_eq(hf_read_file(path, 65536, &text, NULL), 0);
	/* A member a line: simple runners grep it. */
	ck_assert_ptr_nonnull(strstr(text, "{\n \"task_id\": 2,\n \"attempt\": "));
	ck_assert_ptr_nonnull(strstr(text, "\n \"model_type\": \"bert\",\n"));
	task = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	ck_assert_ptr_nonnull(task);
	ck_assert_int_eq(json_integer_value(json_object_get(task, "task_id")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(task, "job_id")), 9);
	ck_assert_str_eq(json_string_value(json_object_get(task, "model_type")), "bert");
	ck_assert_str_eq(json_string_value(json_object_get(task, "hf_id")), odd);
	ck_assert_int_eq(json_array_size(json_object_get(task, "device_indices")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(task, "kind")), "test");
	ck_assert_str_eq(json_string_value(json_object_get(task, "backend")), "cpu");
	ck_assert_int_eq(json_integer_value(json_object_get(task, "batch_size")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(task, "timeout_s")), 10);
	ck_assert(json_is_null(json_object_get(task, "seq_len"))); /* 0: unset */
	ck_assert(json_is_null(json_object_get(task, "task")));    /* "": unset */
	json_decref(task);
	free(text);
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

START_TEST(test_cuda_runner_sees_exactly_its_gpu_and_nothing_the_worker_had)
{
	write_script("printf '{\"status\":\"passed\",\"env\":{\"cuda\":\"%s\",\"order\":\"%s\","
		     "\"ze\":\"%s\",\"uuid\":\"%s\",\"name\":\"%s\",\"dev\":\"%s\"}}' "
		     "\"${CUDA_VISIBLE_DEVICES-unset}\" \"${CUDA_DEVICE_ORDER-unset}\" "
		     "\"${ZE_AFFINITY_MASK-unset}\" \"$HFLEET_DEVICE_UUID\" \"$HFLEET_DEVICE_NAME\" "
		     "\"$HFLEET_DEVICE_INDEX\" > \"$HFLEET_RESULT_FILE\"");
	setenv("CUDA_VISIBLE_DEVICES", "0,1", 1); /* the worker's own must not leak */
	setenv("ZE_AFFINITY_MASK", "3", 1);
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(20, 10);
	struct hw_device g = gpu(1, "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	const struct hw_device *devs[] = { &g };

	a.backend = HF__BACKEND__BACKEND_CUDA;
	a.device_index = 1;
	ck_assert_int_eq(executor_start(ex, &a, devs, 1), 0);
	ck_assert_uint_eq(executor_count(ex, HF__BACKEND__BACKEND_CUDA, 1), 1);
	ck_assert_uint_eq(executor_count(ex, HF__BACKEND__BACKEND_CUDA, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_str_eq(results[0]->env_json,
			 "{\"cuda\":\"GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c\",\"order\":"
			 "\"PCI_BUS_ID\",\"ze\":\"unset\",\"uuid\":\"GPU-4c2a7f1e-9b3d-5e8a-a1c6-"
			 "0f2d3b4e5a6c\",\"name\":\"NVIDIA H100 80GB HBM3\",\"dev\":\"1\"}");
	finish(ex);
}
END_TEST

START_TEST(test_task_of_several_gpus_gets_all_of_them_and_counts_on_each)
{
	write_script("cp \"$2\" \"$DIR/seen-task.json\"\n"
		     "printf '{\"status\":\"passed\",\"env\":{\"cuda\":\"%s\",\"all\":\"%s\"}}' "
		     "\"$CUDA_VISIBLE_DEVICES\" \"$HFLEET_DEVICE_INDICES\" > \"$4\"");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(21, 10);
	uint32_t idx[] = { 2, 5 };
	struct hw_device g2 = gpu(2, "GPU-a"), g5 = gpu(5, "GPU-b");
	const struct hw_device *devs[] = { &g2, &g5 };
	unsigned tasks, benchmarks;
	char path[128], *text = NULL;
	json_t *task;

	a.backend = HF__BACKEND__BACKEND_CUDA;
	a.kind = HF__TASK_KIND__KIND_BENCHMARK;
	a.device_index = 2;
	a.n_device_indices = 2;
	a.device_indices = idx;
	ck_assert_int_eq(executor_start(ex, &a, devs, 1), -EINVAL); /* devs must match */
	ck_assert_int_eq(executor_start(ex, &a, devs, 2), 0);
	executor_device_use(ex, HF__BACKEND__BACKEND_CUDA, 5, &tasks, &benchmarks);
	ck_assert_uint_eq(tasks, 1);
	ck_assert_uint_eq(benchmarks, 1);
	executor_device_use(ex, HF__BACKEND__BACKEND_CUDA, 2, &tasks, &benchmarks);
	ck_assert_uint_eq(tasks, 1);
	executor_device_use(ex, HF__BACKEND__BACKEND_CUDA, 3, &tasks, &benchmarks);
	ck_assert_uint_eq(tasks, 0);
	ck_assert_uint_eq(benchmarks, 0);
	wait_results(1);
	ck_assert_str_eq(results[0]->env_json, "{\"cuda\":\"GPU-a,GPU-b\",\"all\":\"2,5\"}");
	ck_assert_uint_eq(results[0]->device_index, 2);
	snprintf(path, sizeof(path), "%s/seen-task.json", state_dir);
	ck_assert_int_eq(hf_read_file(path, 65536, &text, NULL), 0);
	task = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(task);
	ck_assert_uint_eq(json_array_size(json_object_get(task, "device_indices")), 2);
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(task, "device_indices"), 1)),
			 5);
	json_decref(task);
	free(text);
	finish(ex);
}
END_TEST

START_TEST(test_runner_exiting_without_a_result_is_an_error)
{
	write_script("echo 'Traceback: something broke' >&2\nexit 3");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(3, 10);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(results[0]->reason, "runner exited with status 3 without writing a result");
	ck_assert_int_eq(results[0]->exit_code, 3);
	ck_assert_ptr_nonnull(strstr(results[0]->log_excerpt, "something broke")); /* stderr too */
	finish(ex);
}
END_TEST

START_TEST(test_runner_writing_garbage_is_an_invalid_result)
{
	write_script("printf '{\"status\": \"passed\", \"metrics\": {' > \"$4\"");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(4, 10);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_ptr_nonnull(strstr(results[0]->reason, "runner wrote an invalid result: not valid JSON"));
	finish(ex);
}
END_TEST

START_TEST(test_stale_result_of_an_earlier_run_is_not_taken)
{
	char dir[128], path[160];

	snprintf(dir, sizeof(dir), "%s/tasks", state_dir);
	ck_assert_int_eq(hf_mkdir_p(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/5-1.result.json", dir);
	ck_assert_int_eq(hf_write_file_durable(path, "{\"status\":\"passed\"}", 19), 0);
	write_script("exit 0");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(5, 10);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(results[0]->reason, "runner exited 0 without writing a result");
	ck_assert(!results[0]->infrastructure); /* the runner's error, not the device's */
	finish(ex);
}
END_TEST

START_TEST(test_hanging_runner_times_out_and_its_whole_group_dies)
{
	/* It ignores SIGTERM (and so do its children), so only SIGKILL to the
	 * group ends it; the grandchild must not survive. */
	write_script("trap '' TERM\n"
		     "sleep 100 &\n"
		     "echo $! > \"$DIR/grandchild.pid\"\n"
		     "echo $$ > \"$DIR/runner.pid\"\n"
		     "sleep 100");
	struct executor *ex = make_executor(script, 300, 65536);
	Hf__Assignment a = assignment(6, 1);
	uint64_t t0 = uv_hrtime();

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	double elapsed = (double)(uv_hrtime() - t0) / 1e9;
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_TIMEOUT);
	ck_assert_str_eq(results[0]->reason, "runner did not finish within 1 s");
	ck_assert_int_eq(results[0]->exit_code, 128 + SIGKILL);
	ck_assert_msg(elapsed >= 1.2 && elapsed < 5.0, "took %.2f s", elapsed);
	ck_assert(process_dead(read_pid("runner.pid")));
	ck_assert(process_dead(read_pid("grandchild.pid")));
	finish(ex);
}
END_TEST

START_TEST(test_processes_left_behind_by_a_finished_runner_are_killed)
{
	/* The leftover keeps the output pipe open: only killing the group
	 * lets the task end promptly. */
	write_script("sleep 100 &\n"
		     "echo $! > \"$DIR/grandchild.pid\"\n"
		     "printf '{\"status\":\"passed\"}' > \"$4\"");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(13, 10);
	uint64_t t0 = uv_hrtime();

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_msg(uv_hrtime() - t0 < 1500000000ull, "the task took %.2f s",
		      (double)(uv_hrtime() - t0) / 1e9);
	ck_assert(process_dead(read_pid("grandchild.pid")));
	finish(ex);
}
END_TEST

START_TEST(test_cancel_stops_the_runner_with_status_cancelled)
{
	write_script("echo $$ > \"$DIR/runner.pid\"\nexec sleep 100");
	struct executor *ex = make_executor(script, 5000, 65536);
	Hf__Assignment a = assignment(7, 60);
	struct executor_ref ref;

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	ck_assert_uint_eq(executor_list(ex, &ref, 1), 1);
	ck_assert(ref.task_id == 7 && ref.attempt == 1);
	ck_assert(!executor_stop(ex, 7, 2, HF__TASK_STATUS__STATUS_CANCELLED, "x"));
	ck_assert(executor_stop(ex, 7, 1, HF__TASK_STATUS__STATUS_CANCELLED, "cancelled by the coordinator"));
	/* A later decision does not override the first. */
	executor_stop_all(ex, HF__TASK_STATUS__STATUS_ERROR, "worker shut down");
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_CANCELLED);
	ck_assert_str_eq(results[0]->reason, "cancelled by the coordinator");
	ck_assert_int_eq(results[0]->exit_code, 128 + SIGTERM);
	finish(ex);
}
END_TEST

START_TEST(test_flooding_runner_does_not_grow_memory)
{
	struct rusage before, after;

	write_script("head -c 50000000 /dev/zero | tr '\\0' 'x'\n"
		     "echo\necho END\n"
		     "printf '{\"status\":\"passed\"}' > \"$4\"");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(8, 60);

	getrusage(RUSAGE_SELF, &before);
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	getrusage(RUSAGE_SELF, &after);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	size_t len = strlen(results[0]->log_excerpt);
	ck_assert_str_eq(results[0]->log_excerpt + len - 4, "END\n");
	ck_assert_uint_le(len, RESULT_EXCERPT_MAX + 64);
	ck_assert_ptr_nonnull(strstr(results[0]->log_excerpt, "earlier bytes of output not kept"));
	/* 50 MB went through; the worker's peak memory barely moved. */
	ck_assert_int_lt(after.ru_maxrss - before.ru_maxrss, 8 * 1024);
	finish(ex);
}
END_TEST

START_TEST(test_runner_that_cannot_start_gives_an_error_result_later)
{
	char *argv[] = { (char *)"/nonexistent/runner", NULL };
	struct executor_config cfg = { .argv = argv, .state_dir = state_dir,
				       .default_timeout_ms = 1000, .kill_grace_ms = 100,
				       .output_limit = 4096 };
	struct executor *bad;
	Hf__Assignment a = assignment(9, 10);

	ck_assert_int_eq(executor_new(&loop, &cfg, done_cb, NULL, &bad), 0);
	ck_assert_int_eq(executor_start(bad, &a, NULL, 0), 0);
	ck_assert_int_eq(n_results, 0); /* never from inside executor_start */
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(results[0]->reason,
			 "could not start runner \"/nonexistent/runner\": No such file or directory");
	ck_assert_int_eq(results[0]->exit_code, -1);
	finish(bad);
}
END_TEST

START_TEST(test_same_attempt_twice_is_refused)
{
	write_script("exec sleep 100");
	struct executor *ex = make_executor(script, 100, 65536);
	Hf__Assignment a = assignment(10, 60);

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), -EEXIST);
	a.attempt = 2;
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	ck_assert_uint_eq(executor_size(ex), 2);
	finish(ex); /* kills both, no results */
	ck_assert_int_eq(n_results, 0);
}
END_TEST

START_TEST(test_close_kills_running_process_groups)
{
	write_script("sleep 100 &\necho $! > \"$DIR/grandchild.pid\"\nsleep 100");
	struct executor *ex = make_executor(script, 10000, 65536);
	Hf__Assignment a = assignment(11, 60);
	char path[128];
	struct stat st;

	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/grandchild.pid", state_dir);
	for (int i = 0; i < 200 && stat(path, &st) < 0; i++) { /* let it start */
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	usleep(50000); /* the pid file is complete */
	pid_t grandchild = read_pid("grandchild.pid");
	finish(ex);
	ck_assert_int_eq(n_results, 0);
	ck_assert(process_dead(grandchild));
}
END_TEST

START_TEST(test_task_files_go_at_the_end_and_leftovers_at_start)
{
	char dir[128], path[192];
	struct stat st;

	/* The runner sees its task file; both files are gone once the result
	 * was read. */
	write_script("test -s \"$2\" || exit 7\n"
		     "printf '{\"status\":\"passed\"}' > \"$4\"");
	struct executor *ex = make_executor(script, 1000, 65536);
	Hf__Assignment a = assignment(12, 10);

	snprintf(dir, sizeof(dir), "%s/tasks/999-1/sub", state_dir); /* an older version's */
	ck_assert_int_eq(hf_mkdir_p(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/tasks/998-2.result.json", state_dir); /* a crash's */
	ck_assert_int_eq(hf_write_file_durable(path, "{}", 2), 0);
	ck_assert_int_eq(executor_start(ex, &a, NULL, 0), 0);
	wait_results(1);
	ck_assert_int_eq(results[0]->status, HF__TASK_STATUS__STATUS_PASSED);
	snprintf(path, sizeof(path), "%s/tasks/12-1.task.json", state_dir);
	ck_assert_int_eq(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/tasks/12-1.result.json", state_dir);
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(executor_task_dirs_clean(ex), 0);
	snprintf(dir, sizeof(dir), "%s/tasks/999-1", state_dir);
	ck_assert_int_eq(stat(dir, &st), -1);
	snprintf(path, sizeof(path), "%s/tasks/998-2.result.json", state_dir);
	ck_assert_int_eq(stat(path, &st), -1);
	finish(ex);
}
END_TEST

START_TEST(test_health_check_runs_in_the_devices_environment_and_reports_its_verdict)
{
	/* "$@" is --health --backend cuda --result FILE. */
	write_script("echo \"$1 $2 $3 $4\" > \"$DIR/args\"\n"
		     "printf '{\"ok\": true, \"detail\": \"matmul on %s ok\", \"duration_s\": 0.1}' "
		     "\"$CUDA_VISIBLE_DEVICES\" > \"$5\"");
	setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
	struct executor *ex = make_executor(script, 1000, 65536);
	struct hw_device g = gpu(1, "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	unsigned tasks, benchmarks;

	n_checks = 0;
	ck_assert_int_eq(executor_check_start(ex, &g, HF__BACKEND__BACKEND_CUDA, 1, 10000, check_cb, NULL), 0);
	ck_assert(executor_checking(ex, HF__BACKEND__BACKEND_CUDA, 1));
	ck_assert(!executor_checking(ex, HF__BACKEND__BACKEND_CUDA, 0));
	/* A second check of the same device is refused; the device is held. */
	ck_assert_int_eq(executor_check_start(ex, &g, HF__BACKEND__BACKEND_CUDA, 1, 10000, check_cb, NULL),
			 -EBUSY);
	executor_device_use(ex, HF__BACKEND__BACKEND_CUDA, 1, &tasks, &benchmarks);
	ck_assert_uint_eq(tasks, 1);
	ck_assert_uint_eq(benchmarks, 1);
	/* It is not a task. */
	ck_assert_uint_eq(executor_size(ex), 0);
	wait_check();
	ck_assert(checks[0].ok);
	ck_assert_int_eq(checks[0].backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(checks[0].index, 1);
	ck_assert_str_eq(checks[0].detail, "matmul on GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c ok");
	ck_assert(!executor_checking(ex, HF__BACKEND__BACKEND_CUDA, 1));
	char *args = NULL;
	size_t len;
	char path[160];
	snprintf(path, sizeof(path), "%s/args", state_dir);
	ck_assert_int_eq(hf_read_file(path, 4096, &args, &len), 0);
	ck_assert_str_eq(args, "--health --backend cuda --result\n");
	free(args);
	unsetenv("CUDA_VISIBLE_DEVICES");
	finish(ex);
}
END_TEST

START_TEST(test_health_check_that_crashes_hangs_or_lies_fails)
{
	struct executor *ex;

	/* Exits without a result: failed, with its last line of output. */
	write_script("echo 'starting'\necho 'RuntimeError: CUDA error: no device' >&2\nexit 3");
	ex = make_executor(script, 300, 65536);
	n_checks = 0;
	ck_assert_int_eq(executor_check_start(ex, NULL, HF__BACKEND__BACKEND_CPU, 0, 10000, check_cb, NULL), 0);
	wait_check();
	ck_assert(!checks[0].ok);
	ck_assert_str_eq(checks[0].detail,
			 "runner exited with status 3 without writing a result: RuntimeError: CUDA error: no device");
	finish(ex);

	/* Hangs: stopped at the time limit, failed. */
	executor_fixture_loop_open();
	write_script("trap '' TERM\nsleep 100");
	ex = make_executor(script, 200, 65536);
	n_checks = 0;
	ck_assert_int_eq(executor_check_start(ex, NULL, HF__BACKEND__BACKEND_CPU, 0, 500, check_cb, NULL), 0);
	wait_check();
	ck_assert(!checks[0].ok);
	ck_assert_str_eq(checks[0].detail, "runner did not finish within 1 s");
	finish(ex);

	/* Writes something that is not a verdict. */
	executor_fixture_loop_open();
	write_script("printf '{\"ok\": \"yes\"}' > \"$5\"");
	ex = make_executor(script, 200, 65536);
	n_checks = 0;
	ck_assert_int_eq(executor_check_start(ex, NULL, HF__BACKEND__BACKEND_CPU, 0, 10000, check_cb, NULL), 0);
	wait_check();
	ck_assert(!checks[0].ok);
	ck_assert_str_eq(checks[0].detail, "runner wrote an invalid health result: \"ok\" must be true or false");
	finish(ex);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_executor");
	TCase *tc = tcase_create("executor");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_runner_result_file_is_reported_as_written);
	tcase_add_test(tc, test_task_file_and_environment_reach_the_runner);
	tcase_add_test(tc, test_cuda_runner_sees_exactly_its_gpu_and_nothing_the_worker_had);
	tcase_add_test(tc, test_task_of_several_gpus_gets_all_of_them_and_counts_on_each);
	tcase_add_test(tc, test_runner_exiting_without_a_result_is_an_error);
	tcase_add_test(tc, test_runner_writing_garbage_is_an_invalid_result);
	tcase_add_test(tc, test_stale_result_of_an_earlier_run_is_not_taken);
	tcase_add_test(tc, test_hanging_runner_times_out_and_its_whole_group_dies);
	tcase_add_test(tc, test_processes_left_behind_by_a_finished_runner_are_killed);
	tcase_add_test(tc, test_cancel_stops_the_runner_with_status_cancelled);
	tcase_add_test(tc, test_flooding_runner_does_not_grow_memory);
	tcase_add_test(tc, test_runner_that_cannot_start_gives_an_error_result_later);
	tcase_add_test(tc, test_same_attempt_twice_is_refused);
	tcase_add_test(tc, test_close_kills_running_process_groups);
	tcase_add_test(tc, test_task_files_go_at_the_end_and_leftovers_at_start);
	tcase_add_test(tc, test_health_check_runs_in_the_devices_environment_and_reports_its_verdict);
	tcase_add_test(tc, test_health_check_that_crashes_hangs_or_lies_fails);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
