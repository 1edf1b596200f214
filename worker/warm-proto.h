/* SPDX-License-Identifier: MIT
 *
 * The pure parts of the warm runner protocol (warm-pool.h runs the
 * processes): the request line the worker writes to a warm runner's stdin,
 * the control lines the runner writes back on its control descriptor, the
 * resident memory read from /proc/PID/statm, and the rule that decides
 * whether a runner that just finished a task may serve another.
 *
 * One line each way, per task (worker/runners/README.md has the contract):
 *
 *   stdin    {"task": "/path/task.json", "result": "/path/result.json",
 *             "result_inline": true}
 *            or, to a runner that said "task_inline": true in a done line,
 *            {"task": {the task object}, "result": "/path/result.json",
 *             "result_inline": true}
 *   control  {"done": <task_id or null>, "fatal": <bool>, "rss_bytes": <int>,
 *             "task_inline": <bool>, "result": {the result object}}
 *            optionally with "reason": "<why fatal>" and "device_fault":
 *            <bool> (a fatal error the model caused, such as a kernel
 *            assertion on an index out of range, is not the device's fault;
 *            default: the same as "fatal")
 *   control  {"error": "<why the request line was refused>"}
 *
 * "done" is required in a done line; "fatal" (default false),
 * "rss_bytes" (default: unknown), "task_inline" (default false: the
 * runner reads its task from the file named) and "result" may be left out.
 * "result_inline": true in the request says that the worker takes the
 * task's result in the done line ("result": an object, as the result file
 * would hold it) when the whole line fits in WARM_CONTROL_LINE_MAX bytes;
 * without "result" the result is in the file named, as before (a runner
 * that does not know "result_inline" ignores it).  Other members are
 * ignored, so runners may add some before the worker knows them.  A line
 * that is neither, that is not JSON, or whose members have the wrong types
 * is malformed.
 *
 * No I/O, no clocks, no logging.  Thread-safe.
 */
#ifndef WARM_PROTO_H
#define WARM_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest control line accepted, newline excluded: a done line with
 * its result inline must fit (a larger result goes to the result file). */
#define WARM_CONTROL_LINE_MAX 65536
#define WARM_CONTROL_TEXT_MAX 256

enum warm_control_kind {
	WARM_CONTROL_DONE,
	WARM_CONTROL_ERROR,
};

struct warm_control {
	enum warm_control_kind kind;
	bool has_task_id;       /* done: false for "done": null */
	uint64_t task_id;
	bool fatal;
	bool device_fault;      /* fatal and the device's doing (see above) */
	bool has_rss;
	uint64_t rss_bytes;
	bool task_inline;       /* done: it takes its next task in the request line */
	/* done: the task's result, when the line carries it (an object, not
	 * yet checked as a result: result_parse_json does that); NULL: it is
	 * in the result file.  Owned: warm_control_fini releases it. */
	json_t *result;
	/* error: the runner's message; done: its "reason" (may be empty).  One
	 * line of valid UTF-8, cut to fit. */
	char text[WARM_CONTROL_TEXT_MAX];
};

/* The request line for a task, '\n'-terminated, into a malloc'd buffer (the
 * caller's).  Returns 0 or -ENOMEM. */
int warm_request_format(const char *task_path, const char *result_path, char **ret_line,
			size_t *ret_len);

/* The request line with the task itself (task_json: one compact JSON
 * object, trusted: the worker's own) instead of its file's path. */
int warm_request_format_inline(const char *task_json, const char *result_path, char **ret_line,
			       size_t *ret_len);

/* Parses one control line (without its newline).  Returns 0, or -EBADMSG
 * with what is wrong in err (lowercase, quoting at most the line's start,
 * sanitised), or -ENOMEM.  A parsed line is released by warm_control_fini. */
int warm_control_parse(const char *line, size_t len, struct warm_control *ret, char *err,
		       size_t errlen);

void warm_control_fini(struct warm_control *c);

/* The resident memory of a /proc/PID/statm text ("size resident shared
 * ..." in pages of page_size bytes: the same figure as VmRSS of
 * /proc/PID/status, which costs the kernel far more to write), in bytes.
 * Returns 0 or -EBADMSG when it cannot be read. */
int warm_statm_parse(const char *statm, uint64_t page_size, uint64_t *ret_bytes);

/* When a warm runner is retired after a task (0 means no limit). */
struct warm_limits {
	unsigned max_tasks;
	uint64_t max_rss;
};

/* Whether a runner that has now served `served` tasks, resident memory rss
 * (0: unknown), and whose last done line was done, must be retired; the why
 * goes to why (one line, e.g. "it reported a fatal device error: CUDA error:
 * device-side assert triggered").  False: it may serve another task. */
bool warm_retire_reason(const struct warm_limits *lim, unsigned served, uint64_t rss,
			const struct warm_control *done, char *why, size_t len);

#endif
