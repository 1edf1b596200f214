/* SPDX-License-Identifier: MIT
 *
 * hfleet-noop-runner: a runner that follows the runner contract
 * (worker/runners/README.md, docs/runner.md) and does nothing else, for the
 * benchmark harness (bench/run.py).  Every task passes at once, so what is
 * measured is hfleet's own cost per task: the worker, the coordinator and
 * PostgreSQL, never a model.  Written in C so that the runner is never the
 * bottleneck.
 *
 *   hfleet-noop-runner --serve                 warm: one request line per task on
 *                                              stdin, one done line on HFLEET_CONTROL_FD
 *   hfleet-noop-runner --task FILE --result FILE   one task, then exit
 *   hfleet-noop-runner --health --backend B --result FILE
 *   hfleet-noop-runner --probe
 *
 * --task-ms MS (0 to 60000, default 0) makes every task take that long (a
 * sleep, no CPU) before it passes: a latency is then measured with the
 * system below its capacity, as with the fleet simulator's --task-ms, where
 * tasks of no length measure how fast it can go.
 *
 * The task file is read (its task_id answers the done line).  Its done
 * lines say "task_inline": true, as the real runner's do, so the worker
 * passes later tasks in the request line (the "task" an object, not a
 * path), and the benchmark measures the path production takes.  A request
 * that says "result_inline": true gets the result in the done line, as the
 * real runner answers when its result is small; otherwise (an older worker)
 * the result is written atomically (a temporary file renamed
 * over the result path); it is fsync'd only with HFLEET_NOOP_FSYNC=1: the
 * worker makes the result durable in its own spool after reading it, so the
 * runner's fsync would only measure the disk twice (bench/run.py says which
 * it used).
 *
 * Single-threaded; no state between tasks but the resident memory sampled
 * at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RESULT_OBJECT "{\"status\":\"passed\",\"reason\":\"\",\"weights\":null,\"metrics\":{}," \
		      "\"env\":{\"runner_version\":\"noop-1\"}}"
#define RESULT_PASSED RESULT_OBJECT "\n"
#define LINE_MAX_BYTES (64 * 1024)

static bool fsync_result;
static long task_ms; /* --task-ms: how long each task takes */

/* A task's run: --task-ms of sleep, resumed after a signal. */
static void run_task(void)
{
	struct timespec left = { task_ms / 1000, (task_ms % 1000) * 1000000L };

	while (task_ms > 0 && nanosleep(&left, &left) < 0 && errno == EINTR)
		;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes text to path atomically: path.tmp, (fsync,) rename. */
static int write_atomic(const char *path, const char *text)
{
	char tmp[4096];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, strlen(text));
	if (r == 0 && fsync_result && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* The task's id from a task object; -1 when it has none. */
static int64_t task_id_of(json_t *task)
{
	json_t *v = json_object_get(task, "task_id");

	return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

static int64_t task_id_from_file(const char *path)
{
	json_t *t = json_load_file(path, 0, NULL);
	int64_t id = -1;

	if (t) {
		id = task_id_of(t);
		json_decref(t);
	}
	return id;
}

/* The resident memory of this process in bytes (0: unknown). */
static uint64_t rss_bytes(void)
{
	unsigned long long size, resident;
	FILE *f = fopen("/proc/self/statm", "re");
	long page = sysconf(_SC_PAGESIZE);
	uint64_t r = 0;

	if (f && fscanf(f, "%llu %llu", &size, &resident) == 2 && page > 0)
		r = (uint64_t)resident * (uint64_t)page;
	if (f)
		fclose(f);
	return r;
}

static int serve(void)
{
	const char *fdname = getenv("HFLEET_CONTROL_FD");
	char *line = NULL, out[512];
	size_t cap = 0;
	ssize_t len;
	uint64_t rss = rss_bytes();
	int ctl;

	if (!fdname || !*fdname) {
		fprintf(stderr, "hfleet-noop-runner: --serve needs HFLEET_CONTROL_FD\n");
		return 2;
	}
	ctl = atoi(fdname);
	if (ctl < 0 || fcntl(ctl, F_GETFD) < 0) {
		fprintf(stderr, "hfleet-noop-runner: HFLEET_CONTROL_FD=%s is not open\n", fdname);
		return 2;
	}
	while ((len = getline(&line, &cap, stdin)) > 0) {
		json_t *req, *task, *result;
		int64_t id = -1;
		bool inline_result;
		int n;

		if (len > LINE_MAX_BYTES) {
			n = snprintf(out, sizeof(out), "{\"error\":\"request line over %d bytes\"}\n",
				     LINE_MAX_BYTES);
			goto answer;
		}
		req = json_loadb(line, (size_t)len, 0, NULL);
		task = json_object_get(req, "task");
		result = json_object_get(req, "result");
		if (!json_is_string(result) || !json_string_length(result) ||
		    !(json_is_object(task) || (json_is_string(task) && json_string_length(task)))) {
			json_decref(req);
			n = snprintf(out, sizeof(out),
				     "{\"error\":\"the request is not an object with task and result\"}\n");
			goto answer;
		}
		id = json_is_object(task) ? task_id_of(task) : task_id_from_file(json_string_value(task));
		run_task();
		inline_result = id >= 0 && json_is_true(json_object_get(req, "result_inline"));
		if (!inline_result && write_atomic(json_string_value(result), RESULT_PASSED) < 0)
			fprintf(stderr, "hfleet-noop-runner: could not write %s\n", json_string_value(result));
		json_decref(req);
		if (id >= 0)
			/* task_inline, as the real runner (worker/runners/hfleet_runner.py)
			 * says: later tasks come in the request line, not in a file;
			 * the result in the line when the worker takes it there. */
			n = snprintf(out, sizeof(out), "{\"done\":%" PRId64 ",\"fatal\":false,\"rss_bytes\":%" PRIu64
				     ",\"task_inline\":true%s%s}\n", id, rss,
				     inline_result ? ",\"result\":" : "", inline_result ? RESULT_OBJECT : "");
		else
			n = snprintf(out, sizeof(out), "{\"done\":null,\"fatal\":false,\"rss_bytes\":%" PRIu64 "}\n",
				     rss);
answer:
		if (write_all(ctl, out, (size_t)n) < 0) {
			free(line);
			return 1; /* the worker is gone */
		}
	}
	free(line);
	return 0;
}

static const char *arg_after(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

static bool has_arg(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const char *task = arg_after(argc, argv, "--task"), *result = arg_after(argc, argv, "--result");
	const char *fs = getenv("HFLEET_NOOP_FSYNC"), *ms = arg_after(argc, argv, "--task-ms");

	fsync_result = fs && strcmp(fs, "1") == 0;
	if (ms) {
		char *end;
		errno = 0;
		task_ms = strtol(ms, &end, 10);
		if (errno || end == ms || *end || task_ms < 0 || task_ms > 60000) {
			fprintf(stderr, "hfleet-noop-runner: --task-ms takes 0 to 60000 (milliseconds), not \"%s\"\n",
				ms);
			return 2;
		}
	}
	if (has_arg(argc, argv, "--probe")) {
		printf("{\"runner\": {\"version\": \"noop-1\", \"available\": true, "
		       "\"reason\": \"bench/noop-runner.c: every task passes at once\"}}\n");
		return 0;
	}
	if (has_arg(argc, argv, "--serve")) {
		if (task) {
			fprintf(stderr, "hfleet-noop-runner: --serve takes no --task\n");
			return 2;
		}
		return serve();
	}
	if (has_arg(argc, argv, "--health") && result)
		return write_atomic(result, "{\"ok\":true,\"detail\":\"no-op runner\",\"duration_s\":0}\n") < 0;
	if (task && result) {
		(void)task_id_from_file(task);
		run_task();
		return write_atomic(result, RESULT_PASSED) < 0;
	}
	fprintf(stderr, "usage: hfleet-noop-runner [--task-ms MS] --serve | [--task-ms MS] --task FILE --result FILE | "
			"--health --backend B --result FILE | --probe\n");
	return 2;
}
