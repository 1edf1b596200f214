/* SPDX-License-Identifier: MIT
 *
 * Drives the coordinator's database layer (db.h) against a real PostgreSQL
 * with values at the edge of every numeric column: the largest ids a
 * bigint holds, integers at INT32_MAX and one past it, timestamps far in
 * the past and future and beyond PostgreSQL's range, NaN and the
 * infinities, and strings that an array literal must quote (quotes,
 * backslashes, braces, commas, "NULL", the empty string).  Each value that
 * fits must be stored exactly; each that does not must fail its op with
 * -EINVAL and an error naming it, leave the database healthy, and, in a
 * group commit, leave the other ops of the group committed together.
 * Result stores and lease grants of several ops in one group (one
 * statement each) give each op its own outcomes, refusals and finished
 * jobs, as when each runs alone.  Lease grants queued with result stores
 * are committed first, in a transaction of their own, and handed back
 * only once committed; a grant queued after a cancel stays behind it.
 * Result stores gathered while they stream in (db_set_result_gather) wait
 * together while a grant queued after them is committed and handed back,
 * and run together, first, when another write ends their wait or their
 * window ends.
 * A transaction sent as one pipeline that fails inside PostgreSQL (a
 * trigger raising for chosen values) changes nothing and fails only its
 * op; a lost connection fails the next op and the one after it connects
 * again, preparing its statements anew, also after a failure skipped a
 * preparation.
 *   hf-db-values CONNINFO
 * The test's own libpq connection (the same CONNINFO) sets the id
 * sequences near their end and checks what was stored.  Exits 0 when every
 * check passed; prints each failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <uv.h>

#include "db.h"
#include "embedded.h"
#include "expand.h"
#include "hf_proto.h"
#include "registry.h"

static uv_loop_t loop;
static struct db *db;
static PGconn *check_conn;
static int failures;
static int pending;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("FAIL: ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\n", stdout);
	failures++;
}

static void op_done(struct db_op *op)
{
	(void)op;
	pending--;
}

static void submit(struct db_op *op, enum db_op_kind kind)
{
	op->kind = kind;
	op->done = op_done;
	pending++;
	db_submit(db, op);
}

static void wait_all(void)
{
	while (pending > 0)
		uv_run(&loop, UV_RUN_ONCE);
}

static void run(struct db_op *op, enum db_op_kind kind)
{
	submit(op, kind);
	wait_all();
}

/* The one value of sql's first row, or "" (the test's own connection). */
static char *query(const char *sql)
{
	static char out[4096];
	PGresult *res = PQexec(check_conn, sql);
	out[0] = '\0';
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
		snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("check query failed: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	return out;
}

static void expect_ok(const struct db_op *op, const char *what)
{
	if (op->rc != 0)
		fail("%s: rc %d, want 0: %s", what, op->rc, op->err);
}

/* Refused as bad data naming the value, the database still healthy. */
static void expect_refused(const struct db_op *op, const char *what, const char *names)
{
	if (op->rc != -EINVAL)
		fail("%s: rc %d, want -EINVAL: %s", what, op->rc, op->err);
	else if (!strstr(op->err, names))
		fail("%s: the error does not name \"%s\": %s", what, names, op->err);
	else
		printf("ok: %s refused: %s\n", what, op->err);
	if (!db_healthy(db))
		fail("%s: the database layer reports itself unhealthy after a refused value", what);
}

static void expect_eq(const char *got, const char *want, const char *what)
{
	if (strcmp(got, want) != 0)
		fail("%s: got \"%s\", want \"%s\"", what, got, want);
}

/* ---- jobs: large ids, integer columns at their edge ---- */

static struct registry *reg;
static struct task_spec plan_task = { .backend = HF__BACKEND__BACKEND_CPU, .kind = HF__TASK_KIND__KIND_TEST,
				      .batch_size = INT32_MAX, .precision = "fp32",
				      .seq_len = INT32_MAX };

static void plan_init(struct job_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	plan->name = "edge \"values\" \\ {a,b} NULL";
	plan->submitter = "db-values";
	plan->priority = INT32_MIN;
	plan->timeout_s = INT32_MAX;
	plan->iterations = INT32_MAX;
	plan->warmup = INT32_MAX;
	plan->seq_lens[0] = INT32_MAX;
	plan->n_seq_lens = 1;
	plan->max_running = INT32_MAX;
	plan->max_retries = INT32_MAX;
	plan->flaky_reruns = INT32_MAX;
	plan->tasks = &plan_task;
	plan->n_tasks = 1;
	plan->spec_json = "{\"quote\": \"\\\"\", \"backslash\": \"\\\\\"}";
}

static uint64_t job_id, task_id;

static void test_job_create(void)
{
	struct job_plan plan;
	struct db_op op = { 0 };
	char sql[256];

	/* The ids near the end of bigint. */
	query("SELECT setval('jobs_id_seq', 9223372036854775000)");
	query("SELECT setval('tasks_id_seq', 9223372036854775800)");

	plan_init(&plan);
	op.u.job_create.reg = reg;
	op.u.job_create.plan = &plan;
	op.u.job_create.requirements = "{\"labels\": {\"a\\\\b\": \"c\\\"d\"}}";
	run(&op, DB_OP_JOB_CREATE);
	expect_ok(&op, "a job with integers at INT32_MAX and ids near INT64_MAX");
	job_id = op.u.job_create.job_id;
	task_id = op.u.job_create.task_ids ? op.u.job_create.task_ids[0] : 0;
	free(op.u.job_create.task_ids);
	if (job_id != 9223372036854775001ULL || task_id != 9223372036854775801ULL)
		fail("job id %" PRIu64 " and task id %" PRIu64 " are not the ones drawn", job_id, task_id);
	snprintf(sql, sizeof(sql),
		 "SELECT concat_ws(' ', name, priority, max_running, max_retries, flaky_reruns, task_count)"
		 " FROM jobs WHERE id = %" PRIu64, job_id);
	expect_eq(query(sql), "edge \"values\" \\ {a,b} NULL -2147483648 2147483647 2147483647 2147483647 1",
		  "the job's columns");
	snprintf(sql, sizeof(sql),
		 "SELECT concat_ws(' ', batch_size, seq_len, iterations, warmup, timeout_s)"
		 " FROM tasks WHERE id = %" PRIu64, task_id);
	expect_eq(query(sql), "2147483647 2147483647 2147483647 2147483647 2147483647", "the task's columns");
	snprintf(sql, sizeof(sql), "SELECT requirements #>> '{labels,a\\\\b}' FROM jobs WHERE id = %" PRIu64,
		 job_id);
	expect_eq(query(sql), "c\"d", "the requirements JSON");

	/* One past INT32_MAX fits no integer column. */
	plan_init(&plan);
	plan.max_running = (uint32_t)INT32_MAX + 1;
	memset(&op, 0, sizeof(op));
	op.u.job_create.reg = reg;
	op.u.job_create.plan = &plan;
	run(&op, DB_OP_JOB_CREATE);
	expect_refused(&op, "max_running 2147483648", "max_running");
	free(op.u.job_create.task_ids);

	plan_init(&plan);
	plan.timeout_s = UINT32_MAX;
	memset(&op, 0, sizeof(op));
	op.u.job_create.reg = reg;
	op.u.job_create.plan = &plan;
	run(&op, DB_OP_JOB_CREATE);
	expect_refused(&op, "timeout_s 4294967295", "timeout_s");
	free(op.u.job_create.task_ids);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs");
	expect_eq(query(sql), "1", "jobs after the refused ones (nothing half-written)");
}

/* ---- leases ---- */

#define LEASE_WORKER "w \"1\" \\ {x}"

static void test_leases(void)
{
	struct db_op op = { 0 };
	struct db_lease bad = { .task_id = task_id, .attempt = (uint32_t)INT32_MAX + 1, .worker_id = "w",
				.devices = { 0 }, .n_devices = 1 };
	struct db_lease dev = { .task_id = task_id, .attempt = 1, .worker_id = "w",
				.devices = { 7, UINT32_MAX }, .n_devices = 2 };
	struct db_lease good = { .task_id = task_id, .attempt = INT32_MAX - 1,
				 .worker_id = LEASE_WORKER, .devices = { INT32_MAX, 0, 3 }, .n_devices = 3 };
	char sql[256];

	op.u.lease.v = &bad;
	op.u.lease.n = 1;
	run(&op, DB_OP_LEASE_GRANT);
	expect_refused(&op, "lease attempt 2147483648", "attempt");

	memset(&op, 0, sizeof(op));
	op.u.lease.v = &dev;
	op.u.lease.n = 1;
	run(&op, DB_OP_LEASE_GRANT);
	expect_refused(&op, "lease device 4294967295", "device index");

	memset(&op, 0, sizeof(op));
	op.u.lease.v = &good;
	op.u.lease.n = 1;
	run(&op, DB_OP_LEASE_GRANT);
	expect_ok(&op, "a lease at attempt INT32_MAX-1 on device INT32_MAX");
	if (!good.granted)
		fail("the lease was not granted");
	snprintf(sql, sizeof(sql),
		 "SELECT concat_ws(' ', worker_id, attempt, device_index, device_indices::text)"
		 " FROM tasks WHERE id = %" PRIu64, task_id);
	expect_eq(query(sql), "w \"1\" \\ {x} 2147483646 2147483647 {2147483647,0,3}", "the leased task");
}

/* ---- results: timestamps, NaN, the edge of each integer ---- */

static void result_init(Hf__TaskResult *r, struct db_result *d, uint64_t id, uint32_t attempt)
{
	hf__task_result__init(r);
	r->task_id = id;
	r->attempt = attempt;
	r->status = HF__TASK_STATUS__STATUS_PASSED;
	r->reason = "a \"reason\" with \\ and {braces}";
	r->device_index = INT32_MAX;
	r->exit_code = INT32_MIN;
	r->started_at = -1e10;          /* 1653 */
	r->finished_at = 1e11;          /* 5138 */
	memset(d, 0, sizeof(*d));
	d->r = r;
	d->worker_id = LEASE_WORKER; /* the attempt's worker: only its results are stored */
	d->metrics_json = "{\"q\": \"\\\"\", \"b\": \"\\\\\", \"big\": 1e300}";
	d->env_json = "{}";
	d->backend = HF__BACKEND__BACKEND_CPU;
}

static void expect_result_refused(Hf__TaskResult *r, struct db_result *d, const char *what,
				  const char *names)
{
	struct db_op op = { 0 };
	op.u.result.v = d;
	op.u.result.n = 1;
	(void)r;
	run(&op, DB_OP_RESULT_STORE);
	expect_refused(&op, what, names);
	free(op.u.result.finished_jobs);
}

static void test_results(void)
{
	Hf__TaskResult r;
	struct db_result d;
	struct db_op op = { 0 };
	char sql[256];

	result_init(&r, &d, task_id, INT32_MAX - 1);
	r.started_at = NAN;
	expect_result_refused(&r, &d, "a result started at NaN", "started_at");

	result_init(&r, &d, task_id, INT32_MAX - 1);
	r.finished_at = INFINITY;
	expect_result_refused(&r, &d, "a result finished at infinity", "finished_at");

	result_init(&r, &d, task_id, INT32_MAX - 1);
	r.finished_at = 1e300;          /* beyond PostgreSQL's timestamps */
	expect_result_refused(&r, &d, "a result finished at 1e300", "out of range");

	result_init(&r, &d, task_id, INT32_MAX - 1);
	r.device_index = UINT32_MAX;
	expect_result_refused(&r, &d, "a result on device 4294967295", "device_index");

	result_init(&r, &d, UINT64_MAX, 1);
	expect_result_refused(&r, &d, "a result for task 18446744073709551615", "task_id");

	result_init(&r, &d, task_id, INT32_MAX - 1);
	d.metrics_json = "{\"unterminated\": ";
	expect_result_refused(&r, &d, "a result with metrics that are not JSON", "json");

	/* The attempt was leased to LEASE_WORKER: another worker's result (or
	 * a result of an attempt never granted) is not stored. */
	result_init(&r, &d, task_id, INT32_MAX - 1);
	d.worker_id = "w";
	op.u.result.v = &d;
	op.u.result.n = 1;
	run(&op, DB_OP_RESULT_STORE);
	expect_ok(&op, "a result from a worker that does not hold the attempt");
	if (d.outcome != DB_RESULT_NOT_OWNED)
		fail("another worker's result has outcome %d, want not owned", (int)d.outcome);
	free(op.u.result.finished_jobs);
	result_init(&r, &d, task_id, 1);
	memset(&op, 0, sizeof(op));
	op.u.result.v = &d;
	op.u.result.n = 1;
	run(&op, DB_OP_RESULT_STORE);
	expect_ok(&op, "a result of an attempt never leased");
	if (d.outcome != DB_RESULT_NOT_OWNED)
		fail("a result of an attempt never leased has outcome %d, want not owned", (int)d.outcome);
	free(op.u.result.finished_jobs);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM results WHERE task_id = %" PRIu64, task_id);
	expect_eq(query(sql), "0", "results stored for attempts the sender did not hold");

	result_init(&r, &d, task_id, INT32_MAX - 1);
	memset(&op, 0, sizeof(op));
	op.u.result.v = &d;
	op.u.result.n = 1;
	run(&op, DB_OP_RESULT_STORE);
	expect_ok(&op, "a result with timestamps in 1653 and 5138");
	if (d.outcome != DB_RESULT_FINAL || d.job_id != job_id)
		fail("the result's outcome is %d for job %" PRIu64 ", want final for job %" PRIu64,
		     (int)d.outcome, d.job_id, job_id);
	if (op.u.result.n_finished_jobs != 1 || op.u.result.finished_jobs[0] != job_id)
		fail("the job near INT64_MAX was not reported finished");
	free(op.u.result.finished_jobs);
	snprintf(sql, sizeof(sql),
		 "SELECT concat_ws(' ', extract(epoch from started_at)::bigint,"
		 " extract(epoch from finished_at)::bigint, exit_code, device_index, reason,"
		 " metrics->>'q', metrics->>'b')"
		 " FROM results WHERE task_id = %" PRIu64, task_id);
	expect_eq(query(sql), "-10000000000 100000000000 -2147483648 2147483647 a \"reason\" with \\ and "
		  "{braces} \" \\", "the stored result");
	snprintf(sql, sizeof(sql), "SELECT state FROM jobs WHERE id = %" PRIu64, job_id);
	expect_eq(query(sql), "done", "the job's state");
}

/* ---- reads and cancel with ids beyond bigint ---- */

static void test_reads(void)
{
	struct db_op op = { 0 };
	Hf__Envelope *env = NULL;

	op.u.read.job_id = UINT64_MAX;
	run(&op, DB_OP_JOB_STATUS);
	expect_ok(&op, "the status of job 18446744073709551615");
	if (op.u.read.reply && hf_env_unpack(nng_msg_body(op.u.read.reply), nng_msg_len(op.u.read.reply), &env) == 0) {
		if (env->body_case != HF__ENVELOPE__BODY_ERROR ||
		    env->error->code != HF__ERROR_CODE__ERR_NOT_FOUND)
			fail("the status of job 18446744073709551615 is not \"not found\"");
		hf_env_free(env);
	} else {
		fail("no reply for the status of job 18446744073709551615");
	}
	nng_msg_free(op.u.read.reply);

	memset(&op, 0, sizeof(op));
	op.u.read.job_id = job_id;
	run(&op, DB_OP_JOB_STATUS);
	expect_ok(&op, "the status of the job near INT64_MAX");
	env = NULL;
	if (op.u.read.reply && hf_env_unpack(nng_msg_body(op.u.read.reply), nng_msg_len(op.u.read.reply), &env) == 0) {
		if (env->body_case != HF__ENVELOPE__BODY_JOB_STATUS_REPLY ||
		    env->job_status_reply->job_id != job_id ||
		    env->job_status_reply->priority != INT32_MIN)
			fail("the status of the job near INT64_MAX is wrong");
		hf_env_free(env);
	} else {
		fail("no reply for the status of the job near INT64_MAX");
	}
	nng_msg_free(op.u.read.reply);

	memset(&op, 0, sizeof(op));
	op.u.read.limit = UINT32_MAX;
	run(&op, DB_OP_JOB_LIST);
	expect_ok(&op, "a job list of at most 4294967295 jobs");
	nng_msg_free(op.u.read.reply);

	memset(&op, 0, sizeof(op));
	op.u.cancel.job_id = UINT64_MAX;
	run(&op, DB_OP_JOB_CANCEL);
	expect_ok(&op, "cancelling job 18446744073709551615");
	if (op.u.cancel.found)
		fail("job 18446744073709551615 was found");

	memset(&op, 0, sizeof(op));
	op.u.retry.job_id = UINT64_MAX;
	run(&op, DB_OP_JOB_RETRY);
	expect_ok(&op, "retrying job 18446744073709551615");
	if (op.u.retry.found)
		fail("job 18446744073709551615 was found for a retry");
}

/* ---- workers, devices, telemetry, health ---- */

static void test_workers(void)
{
	Hf__Register w = HF__REGISTER__INIT;
	Hf__Device dv = HF__DEVICE__INIT, *dvs[1] = { &dv };
	Hf__KeyValue lab = HF__KEY_VALUE__INIT, *labs[1] = { &lab };
	struct db_op op = { 0 };

	w.worker_id = "edge";
	w.hostname = "NULL";
	w.software_version = "";
	w.protocol_version = INT32_MAX;
	lab.key = "k\"ey";
	lab.value = "v\\al";
	w.labels = labs;
	w.n_labels = 1;
	dv.backend = HF__BACKEND__BACKEND_CUDA;
	dv.index = INT32_MAX;
	dv.name = "GPU \"0\", {big}";
	dv.memory_bytes = INT64_MAX;
	dv.arch = "NULL";
	dv.driver = "";
	dv.uuid = "\\";
	dv.slots = INT32_MAX;
	w.devices = dvs;
	w.n_devices = 1;
	op.u.worker.reg = &w;
	run(&op, DB_OP_WORKER_UPSERT);
	expect_ok(&op, "a worker and device at the edge of their columns");
	expect_eq(query("SELECT concat_ws('|', hostname, software_version, protocol_version, labels->>'k\"ey')"
			" FROM workers WHERE id = 'edge'"),
		  "NULL||2147483647|v\\al", "the worker's columns");
	expect_eq(query("SELECT concat_ws('|', idx, name, memory_bytes, arch, driver, uuid, slots,"
			" arch IS NULL) FROM devices WHERE worker_id = 'edge'"),
		  "2147483647|GPU \"0\", {big}|9223372036854775807|NULL||\\|2147483647|f",
		  "the device's columns");

	dv.memory_bytes = UINT64_MAX;
	memset(&op, 0, sizeof(op));
	op.u.worker.reg = &w;
	run(&op, DB_OP_WORKER_UPSERT);
	expect_refused(&op, "a device of 18446744073709551615 bytes", "memory_bytes");

	w.protocol_version = UINT32_MAX;
	memset(&op, 0, sizeof(op));
	op.u.worker.reg = &w;
	run(&op, DB_OP_WORKER_UPSERT);
	expect_refused(&op, "protocol version 4294967295", "protocol_version");
}

/* Several writes queued while the database thread is held up share one
 * transaction; a refused one among them is left out and the others still
 * commit together (their rows have one xmin). */
static void test_group_commit(void)
{
	struct db_telemetry first = { "group", "cuda", 0, 1, 1, 1, 1 };
	struct db_telemetry good1 = { "group", "cuda", 1, 50, 40, 300, INT64_MAX };
	struct db_telemetry nan_util = { "group", "cuda", 2, NAN, 40, 300, 0 };
	struct db_telemetry huge_power = { "group", "cuda", 3, 1, 1, 3e38f, 0 };
	struct db_telemetry good2 = { "group", "cuda", 4, -1, -1, -1, -1 };
	struct db_health_check bad_check = { "group", HF__BACKEND__BACKEND_CUDA, 5, true, "d", "t", NAN, 0 };
	struct db_health_check late_check = { "group", HF__BACKEND__BACKEND_CUDA, 6, true, "d", "t", 1.5, 1e300 };
	struct db_op op[8];
	PGresult *res;

	huge_power.power_w = INFINITY;
	memset(op, 0, sizeof(op));
	/* Hold the telemetry table so the first op blocks the thread while
	 * the others queue behind it. */
	PQclear(PQexec(check_conn, "BEGIN"));
	res = PQexec(check_conn, "LOCK TABLE device_telemetry IN ACCESS EXCLUSIVE MODE");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("could not lock device_telemetry: %s", PQresultErrorMessage(res));
	PQclear(res);
	op[0].u.telemetry.v = &first;
	op[0].u.telemetry.n = 1;
	submit(&op[0], DB_OP_TELEMETRY_SAMPLE);
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	op[1].u.telemetry.v = &good1;
	op[1].u.telemetry.n = 1;
	op[2].u.telemetry.v = &nan_util;
	op[2].u.telemetry.n = 1;
	op[3].u.drain.d = (struct db_drain){ .worker_id = "group \"w\"", .backend = -1, .index = -1 };
	op[4].u.telemetry.v = &huge_power;
	op[4].u.telemetry.n = 1;
	op[5].u.health.checks = &bad_check;
	op[5].u.health.n_checks = 1;
	op[6].u.health.checks = &late_check;
	op[6].u.health.n_checks = 1;
	op[7].u.telemetry.v = &good2;
	op[7].u.telemetry.n = 1;
	submit(&op[1], DB_OP_TELEMETRY_SAMPLE);
	submit(&op[2], DB_OP_TELEMETRY_SAMPLE);
	submit(&op[3], DB_OP_DRAIN);
	submit(&op[4], DB_OP_TELEMETRY_SAMPLE);
	submit(&op[5], DB_OP_HEALTH_STORE);
	submit(&op[6], DB_OP_HEALTH_STORE);
	submit(&op[7], DB_OP_TELEMETRY_SAMPLE);
	PQclear(PQexec(check_conn, "COMMIT"));
	wait_all();

	expect_ok(&op[0], "the first telemetry sample");
	expect_ok(&op[1], "telemetry with memory INT64_MAX beside refused ops");
	expect_refused(&op[2], "telemetry with a NaN utilization", "utilization_pct");
	expect_ok(&op[3], "a drain beside refused ops");
	expect_refused(&op[4], "telemetry with an infinite power", "power_w");
	expect_refused(&op[5], "a health check of NaN seconds", "duration_s");
	expect_refused(&op[6], "a health check at 1e300", "out of range");
	expect_ok(&op[7], "telemetry with every reading unavailable beside refused ops");
	expect_eq(query("SELECT string_agg(concat_ws(':', idx, coalesce(memory_used_bytes::text, ''), power_w IS NULL), ','"
			" ORDER BY idx) FROM device_telemetry WHERE worker_id = 'group'"),
		  "0:1:f,1:9223372036854775807:f,4::t", "the telemetry stored");
	expect_eq(query("SELECT count(*) FROM device_health_checks WHERE worker_id = 'group'"), "0",
		  "the refused health checks stored");
	expect_eq(query("SELECT count(*) FROM drains WHERE worker_id = 'group \"w\"'"), "1", "the drain");
	/* The good ops of the second turn committed in one transaction. */
	expect_eq(query("SELECT count(DISTINCT xmin::text) FROM (SELECT xmin FROM device_telemetry"
			" WHERE worker_id = 'group' AND idx IN (1, 4) UNION ALL SELECT xmin FROM drains"
			" WHERE worker_id = 'group \"w\"') x"),
		  "1", "transactions of the group's good ops");
}

/* ---- result stores and lease grants of several ops as one statement ---- */

/* Holds device_telemetry so that a telemetry op blocks the thread while
 * the ops submitted next queue behind it and then run as one group. */
static struct db_telemetry blocker = { "merge", "cuda", 0, 1, 1, 1, 1 };

static void block_thread(struct db_op *op)
{
	PGresult *res;

	memset(op, 0, sizeof(*op));
	PQclear(PQexec(check_conn, "BEGIN"));
	res = PQexec(check_conn, "LOCK TABLE device_telemetry IN ACCESS EXCLUSIVE MODE");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("could not lock device_telemetry: %s", PQresultErrorMessage(res));
	PQclear(res);
	op->u.telemetry.v = &blocker;
	op->u.telemetry.n = 1;
	submit(op, DB_OP_TELEMETRY_SAMPLE);
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static void unblock_thread(void)
{
	PQclear(PQexec(check_conn, "COMMIT"));
	wait_all();
}

/* Creates three jobs of one task each (what names them in a failure). */
static void three_jobs(uint64_t job[3], uint64_t task[3], const char *what)
{
	struct job_plan plan;
	struct db_op op;

	for (int k = 0; k < 3; k++) {
		plan_init(&plan);
		memset(&op, 0, sizeof(op));
		op.u.job_create.reg = reg;
		op.u.job_create.plan = &plan;
		run(&op, DB_OP_JOB_CREATE);
		expect_ok(&op, what);
		job[k] = op.u.job_create.job_id;
		task[k] = op.u.job_create.task_ids ? op.u.job_create.task_ids[0] : 0;
		free(op.u.job_create.task_ids);
	}
}

static void test_merged_ops(void)
{
	struct db_op blk, op[5];
	uint64_t job[3], task[3];
	char sql[512];

	three_jobs(job, task, "a job for the merged ops");

	/* Three polls' grants in one group: the one with a refused value
	 * fails alone, naming it; the other two are granted together. */
	struct db_lease l0 = { .task_id = task[0], .attempt = 1, .worker_id = "m0", .n_devices = 1 };
	struct db_lease l1[2] = { { .task_id = task[1], .attempt = 1, .worker_id = "m1", .n_devices = 1 },
				  { .task_id = task[2], .attempt = (uint32_t)INT32_MAX + 1, .worker_id = "m1",
				    .n_devices = 1 } };
	struct db_lease l2[2] = { { .task_id = task[2], .attempt = 1, .worker_id = "m2", .n_devices = 1 },
				  { .task_id = task[1], .attempt = 1, .worker_id = "m2", .n_devices = 1 } };
	block_thread(&blk);
	memset(op, 0, sizeof(op));
	op[0].u.lease.v = &l0;
	op[0].u.lease.n = 1;
	op[1].u.lease.v = l1;
	op[1].u.lease.n = 2;
	op[2].u.lease.v = l2;
	op[2].u.lease.n = 2;
	for (int k = 0; k < 3; k++)
		submit(&op[k], DB_OP_LEASE_GRANT);
	unblock_thread();
	expect_ok(&op[0], "a grant beside a refused one");
	expect_refused(&op[1], "a grant of attempt 2147483648 beside good ones", "attempt");
	expect_ok(&op[2], "a second grant beside a refused one");
	if (!l0.granted || l1[0].granted || l1[1].granted || !l2[0].granted || !l2[1].granted)
		fail("merged grants: granted %d %d %d %d %d, want 1 0 0 1 1", l0.granted, l1[0].granted,
		     l1[1].granted, l2[0].granted, l2[1].granted);
	snprintf(sql, sizeof(sql),
		 "SELECT string_agg(worker_id, ',' ORDER BY id) || ' ' || count(DISTINCT xmin::text)"
		 " FROM tasks WHERE id IN (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")", task[0], task[1], task[2]);
	expect_eq(query(sql), "m0,m2,m2 1", "the merged grants' workers and transactions");

	/* Five reports in one group: a final result, another worker's copy
	 * (not owned), a refused value, the owner's result, and a re-send of
	 * the first (a duplicate, not a second final). */
	Hf__TaskResult r[5];
	struct db_result d[5];
	result_init(&r[0], &d[0], task[0], 1);
	d[0].worker_id = "m0";
	result_init(&r[1], &d[1], task[1], 1);
	d[1].worker_id = "m1";
	result_init(&r[2], &d[2], task[1], 1);
	d[2].worker_id = "m2";
	r[2].started_at = NAN;
	result_init(&r[3], &d[3], task[1], 1);
	d[3].worker_id = "m2";
	result_init(&r[4], &d[4], task[0], 1);
	d[4].worker_id = "m0";
	block_thread(&blk);
	memset(op, 0, sizeof(op));
	for (int k = 0; k < 5; k++) {
		op[k].u.result.v = &d[k];
		op[k].u.result.n = 1;
		submit(&op[k], DB_OP_RESULT_STORE);
	}
	unblock_thread();
	expect_ok(&op[0], "a result beside a refused one");
	expect_ok(&op[1], "another worker's result beside a refused one");
	expect_refused(&op[2], "a result started at NaN beside good ones", "started_at");
	expect_ok(&op[3], "the owner's result beside a refused one");
	expect_ok(&op[4], "a re-sent result beside a refused one");
	if (d[0].outcome != DB_RESULT_FINAL || d[1].outcome != DB_RESULT_NOT_OWNED ||
	    d[3].outcome != DB_RESULT_FINAL || d[4].outcome != DB_RESULT_DUPLICATE)
		fail("merged results: outcomes %d %d %d %d, want final, not owned, final, duplicate",
		     (int)d[0].outcome, (int)d[1].outcome, (int)d[3].outcome, (int)d[4].outcome);
	if (op[0].u.result.n_finished_jobs != 1 || op[0].u.result.finished_jobs[0] != job[0] ||
	    op[3].u.result.n_finished_jobs != 1 || op[3].u.result.finished_jobs[0] != job[1] ||
	    op[1].u.result.n_finished_jobs != 0 || op[4].u.result.n_finished_jobs != 0)
		fail("merged results: the finished jobs were not told to the ops that finished them");
	for (int k = 0; k < 5; k++)
		free(op[k].u.result.finished_jobs);
	snprintf(sql, sizeof(sql),
		 "SELECT string_agg(worker_id, ',' ORDER BY task_id) || ' ' || count(DISTINCT xmin::text)"
		 " FROM results WHERE task_id IN (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")", task[0], task[1],
		 task[2]);
	expect_eq(query(sql), "m0,m2 1", "the merged results' workers and transactions");
	snprintf(sql, sizeof(sql), "SELECT string_agg(state, ',' ORDER BY id) FROM jobs WHERE id IN (%"
		 PRIu64 ", %" PRIu64 ", %" PRIu64 ")", job[0], job[1], job[2]);
	expect_eq(query(sql), "done,done,running", "the jobs after the merged results");
}

/* ---- lease grants ahead of the result stores queued with them ---- */

static struct db_op *order[8];
static size_t n_order;
static uint64_t lease_first_task;
static char lease_seen_at_done[64];

/* Records the order in which ops come back; for the first grant, what
 * another connection sees of its lease at that moment. */
static void order_done(struct db_op *op)
{
	char sql[256];

	if (n_order < 8)
		order[n_order++] = op;
	if (op->kind == DB_OP_LEASE_GRANT && !lease_seen_at_done[0]) {
		snprintf(sql, sizeof(sql), "SELECT state || ' ' || count(a.*) FROM tasks t LEFT JOIN attempts a"
			 " ON a.task_id = t.id WHERE t.id = %" PRIu64 " GROUP BY t.state", lease_first_task);
		snprintf(lease_seen_at_done, sizeof(lease_seen_at_done), "%s", query(sql));
	}
	pending--;
}

static void test_leases_first(void)
{
	struct db_op blk, op[4];
	uint64_t job[3], task[3];
	char sql[512];

	/* The edge-value tests used up the ids near the end of bigint. */
	query("SELECT setval('jobs_id_seq', 1000)");
	query("SELECT setval('tasks_id_seq', 1000)");
	three_jobs(job, task, "a job for the leases-first group");
	/* Worker "f0" runs task 0 and reports it while its poll asks for
	 * more: one batch holds its result, then its next grant (task 1),
	 * then a cancel of job 2 and a grant of job 2's task after it. */
	struct db_lease l0 = { .task_id = task[0], .attempt = 1, .worker_id = "f0", .n_devices = 1 };
	memset(op, 0, sizeof(op));
	op[0].u.lease.v = &l0;
	op[0].u.lease.n = 1;
	run(&op[0], DB_OP_LEASE_GRANT);
	expect_ok(&op[0], "the lease of the task reported next");

	Hf__TaskResult r;
	struct db_result d;
	struct db_lease l1 = { .task_id = task[1], .attempt = 1, .worker_id = "f0", .n_devices = 1 };
	struct db_lease l2 = { .task_id = task[2], .attempt = 1, .worker_id = "f1", .n_devices = 1 };
	result_init(&r, &d, task[0], 1);
	d.worker_id = "f0";
	lease_first_task = task[1];
	block_thread(&blk);
	memset(op, 0, sizeof(op));
	op[0].u.result.v = &d;
	op[0].u.result.n = 1;
	op[1].u.lease.v = &l1;
	op[1].u.lease.n = 1;
	op[2].u.cancel.job_id = job[2];
	op[3].u.lease.v = &l2;
	op[3].u.lease.n = 1;
	enum db_op_kind kinds[4] = { DB_OP_RESULT_STORE, DB_OP_LEASE_GRANT, DB_OP_JOB_CANCEL, DB_OP_LEASE_GRANT };
	n_order = 0;
	for (int k = 0; k < 4; k++) {
		submit(&op[k], kinds[k]);
		op[k].done = order_done;
	}
	unblock_thread();
	for (int k = 0; k < 4; k++)
		expect_ok(&op[k], "an op of the leases-first group");
	if (d.outcome != DB_RESULT_FINAL || !l1.granted || l2.granted)
		fail("leases first: outcome %d, granted %d %d; want final, 1, 0 (job 2 cancelled first)",
		     (int)d.outcome, l1.granted, l2.granted);
	/* The grant came back first, and only once its lease was committed:
	 * another connection saw it then. */
	if (n_order != 4 || order[0] != &op[1])
		fail("leases first: the grant queued after a result was not handed back first");
	expect_eq(lease_seen_at_done, "leased 1", "the lease as another connection saw it when handed back");
	/* Its own transaction, before the result's; the cancel and the later
	 * grant ran with the result, in their order. */
	snprintf(sql, sizeof(sql),
		 "SELECT (SELECT xmin::text::bigint FROM attempts WHERE task_id = %" PRIu64 ") <"
		 " (SELECT xmin::text::bigint FROM results WHERE task_id = %" PRIu64 ")",
		 task[1], task[0]);
	expect_eq(query(sql), "t", "the grant's transaction before the result's");
	snprintf(sql, sizeof(sql), "SELECT string_agg(state, ',' ORDER BY id) FROM tasks WHERE id IN (%"
		 PRIu64 ", %" PRIu64 ", %" PRIu64 ")", task[0], task[1], task[2]);
	expect_eq(query(sql), "passed,leased,cancelled", "the tasks after the leases-first group");
	free(op[0].u.result.finished_jobs);
}

/* ---- result stores gathered while they stream in ---- */

static void test_result_gather(void)
{
	struct db_op op[5];
	uint64_t job[6], task[6];
	Hf__TaskResult r[4];
	struct db_result d[4];
	char sql[512];

	three_jobs(job, task, "a job for the gathered results");
	three_jobs(job + 3, task + 3, "a job for the gathered results");
	/* Worker g0 holds tasks 0, 1, 2 and 5. */
	struct db_lease l[4] = { { .task_id = task[0], .attempt = 1, .worker_id = "g0", .n_devices = 1 },
				 { .task_id = task[1], .attempt = 1, .worker_id = "g0", .n_devices = 1 },
				 { .task_id = task[2], .attempt = 1, .worker_id = "g0", .n_devices = 1 },
				 { .task_id = task[5], .attempt = 1, .worker_id = "g0", .n_devices = 1 } };
	memset(op, 0, sizeof(op));
	op[0].u.lease.v = l;
	op[0].u.lease.n = 4;
	run(&op[0], DB_OP_LEASE_GRANT);
	expect_ok(&op[0], "the leases of the gathered results");

	/* A window of a minute: the first store may run at once (the stream's
	 * start) or wait (the stores of the tests before were within it); the
	 * next two wait, and a grant queued after them is handed back,
	 * committed, while they do. */
	db_set_result_gather(db, 60 * 1000000LL);
	memset(op, 0, sizeof(op));
	n_order = 0;
	lease_seen_at_done[0] = '\0';
	lease_first_task = task[3];
	for (int k = 0; k < 3; k++) {
		result_init(&r[k], &d[k], task[k], 1);
		d[k].worker_id = "g0";
		op[k].u.result.v = &d[k];
		op[k].u.result.n = 1;
		submit(&op[k], DB_OP_RESULT_STORE);
		op[k].done = order_done;
	}
	struct db_lease l3 = { .task_id = task[3], .attempt = 1, .worker_id = "g1", .n_devices = 1 };
	op[3].u.lease.v = &l3;
	op[3].u.lease.n = 1;
	submit(&op[3], DB_OP_LEASE_GRANT);
	op[3].done = order_done;
	/* Until the grant is back (a broken gathering holds it the minute). */
	while (!lease_seen_at_done[0] && pending > 0)
		uv_run(&loop, UV_RUN_ONCE);
	expect_ok(&op[3], "a grant queued behind gathering results");
	expect_eq(lease_seen_at_done, "leased 1", "the grant as another connection saw it when handed back");
	/* The held stores are still held a moment later. */
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	for (size_t k = 0; k < n_order; k++)
		if (order[k] == &op[1] || order[k] == &op[2])
			fail("result gathering: a store came back before the grant queued after it, or"
			     " without waiting for its window");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM results WHERE task_id IN (%" PRIu64 ", %" PRIu64 ")",
		 task[1], task[2]);
	expect_eq(query(sql), "0", "the gathering results, stored before their wait ended");

	/* Any other write ends the wait: the held stores run first, together,
	 * then it. */
	op[4].u.cancel.job_id = job[4];
	submit(&op[4], DB_OP_JOB_CANCEL);
	op[4].done = order_done;
	wait_all();
	for (int k = 0; k < 5; k++)
		expect_ok(&op[k], "an op of the gathered group");
	for (int k = 0; k < 3; k++)
		if (d[k].outcome != DB_RESULT_FINAL)
			fail("result gathering: result %d's outcome %d, want final", k, (int)d[k].outcome);
	if (n_order != 5 || order[4] != &op[4])
		fail("result gathering: the cancel that ended the wait did not run after the held stores");
	snprintf(sql, sizeof(sql),
		 "SELECT count(DISTINCT xmin::text) FROM results WHERE task_id IN (%" PRIu64 ", %" PRIu64 ")",
		 task[1], task[2]);
	expect_eq(query(sql), "1", "the held results' transactions");
	snprintf(sql, sizeof(sql), "SELECT string_agg(state, ',' ORDER BY id) FROM tasks WHERE id IN (%"
		 PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")", task[0], task[1], task[2],
		 task[3], task[4]);
	expect_eq(query(sql), "passed,passed,passed,leased,cancelled", "the tasks after the gathered group");
	for (int k = 0; k < 3; k++)
		free(op[k].u.result.finished_jobs);

	/* A window that ends with nothing else queued: the store is committed
	 * when it ends. */
	db_set_result_gather(db, 2000);
	memset(op, 0, sizeof(op));
	result_init(&r[3], &d[3], task[5], 1);
	d[3].worker_id = "g0";
	op[0].u.result.v = &d[3];
	op[0].u.result.n = 1;
	run(&op[0], DB_OP_RESULT_STORE);
	expect_ok(&op[0], "a result whose gathering window ended");
	if (d[3].outcome != DB_RESULT_FINAL)
		fail("result gathering: the outcome after the window %d, want final", (int)d[3].outcome);
	db_set_result_gather(db, 0);
	free(op[0].u.result.finished_jobs);
}

/* ---- transactions sent as one pipeline, failing inside ---- */

/* A lease grant of task to worker by itself; returns the op's rc. */
static int grant_one(uint64_t task, const char *worker, bool *granted, const char *what)
{
	struct db_lease l = { .task_id = task, .attempt = 1, .worker_id = worker, .n_devices = 1 };
	struct db_op op = { 0 };

	op.u.lease.v = &l;
	op.u.lease.n = 1;
	run(&op, DB_OP_LEASE_GRANT);
	if (op.rc < 0)
		printf("ok: %s: rc %d: %s\n", what, op.rc, op.err);
	*granted = l.granted;
	return op.rc;
}

/* The state of task and how many attempts and results it has. */
static char *task_row(uint64_t task)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT state || ' ' || (SELECT count(*) FROM attempts WHERE task_id = t.id)"
		 " || ' ' || (SELECT count(*) FROM results WHERE task_id = t.id) FROM tasks t WHERE id = %" PRIu64,
		 task);
	return query(sql);
}

static void test_pipeline_failures(void)
{
	struct db_op blk, op[3];
	uint64_t job[6], task[6];
	Hf__TaskResult r[3];
	struct db_result d[3];
	bool granted;
	char sql[512];

	three_jobs(job, task, "a job for the pipeline failures");
	three_jobs(job + 3, task + 3, "a job for the pipeline failures");
	/* Statements that fail inside PostgreSQL, after the values were
	 * accepted: a grant to worker "boom" and a result whose reason is
	 * "boom" (an error of no data class: -EIO), a result whose reason is
	 * "refuse" (a data exception: -EINVAL). */
	query("CREATE FUNCTION pipeline_boom_grant() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	      " RAISE EXCEPTION 'boom for %', NEW.task_id; END $$");
	query("CREATE FUNCTION pipeline_boom_result() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	      " IF NEW.reason = 'boom' THEN RAISE EXCEPTION 'boom for %', NEW.task_id; END IF;"
	      " IF NEW.reason = 'refuse' THEN RAISE EXCEPTION 'refused %', NEW.task_id USING ERRCODE = '22023'; END IF;"
	      " RETURN NEW; END $$");
	query("CREATE TRIGGER pipeline_boom_attempts BEFORE INSERT ON attempts FOR EACH ROW"
	      " WHEN (NEW.worker_id = 'boom') EXECUTE FUNCTION pipeline_boom_grant()");
	query("CREATE TRIGGER pipeline_boom_results BEFORE INSERT ON results FOR EACH ROW"
	      " EXECUTE FUNCTION pipeline_boom_result()");

	/* The connection is lost between two transactions: the next fails
	 * as an outage and changes nothing; the one after it connects again
	 * and runs on a connection with nothing prepared yet. */
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d, 5000)", db_backend_pid(db));
	expect_eq(query(sql), "t", "the coordinator's backend terminated");
	if (grant_one(task[0], "p0", &granted, "a grant on a lost connection") != -ENOTCONN)
		fail("a grant on a lost connection: want -ENOTCONN");
	expect_eq(task_row(task[0]), "queued 0 0", "the task of the grant on a lost connection");
	if (grant_one(task[0], "p0", &granted, "a grant after the connection came back") != 0 || !granted)
		fail("a grant after the connection came back: not granted");
	expect_eq(task_row(task[0]), "leased 1 0", "the task granted after the connection came back");

	/* The result statement fails in PostgreSQL on a new connection: the
	 * jobs statement after it, whose preparation was in the same
	 * pipeline, was skipped and must be prepared again by the next. */
	result_init(&r[0], &d[0], task[0], 1);
	d[0].worker_id = "p0";
	r[0].reason = "boom";
	memset(op, 0, sizeof(op));
	op[0].u.result.v = &d[0];
	op[0].u.result.n = 1;
	run(&op[0], DB_OP_RESULT_STORE);
	if (op[0].rc != -EIO || !strstr(op[0].err, "boom for"))
		fail("a result failing in PostgreSQL: rc %d, err \"%s\"; want -EIO naming it", op[0].rc, op[0].err);
	else
		printf("ok: a result failing in PostgreSQL: %s\n", op[0].err);
	expect_eq(task_row(task[0]), "leased 1 0", "the task of the failed result");
	r[0].reason = "fine";
	run(&op[0], DB_OP_RESULT_STORE);
	expect_ok(&op[0], "the same result again, not failing");
	if (d[0].outcome != DB_RESULT_FINAL || op[0].u.result.n_finished_jobs != 1 ||
	    op[0].u.result.finished_jobs[0] != job[0])
		fail("the result again: outcome %d, %zu finished jobs; want final and its job",
		     (int)d[0].outcome, op[0].u.result.n_finished_jobs);
	free(op[0].u.result.finished_jobs);
	expect_eq(task_row(task[0]), "passed 1 1", "the task of the result stored");

	/* Grants in one pipelined group, one failing in PostgreSQL: it fails
	 * alone and changes nothing; the other is granted. */
	block_thread(&blk);
	struct db_lease lb = { .task_id = task[1], .attempt = 1, .worker_id = "boom", .n_devices = 1 };
	struct db_lease lg = { .task_id = task[2], .attempt = 1, .worker_id = "p2", .n_devices = 1 };
	memset(op, 0, sizeof(op));
	op[0].u.lease.v = &lb;
	op[0].u.lease.n = 1;
	op[1].u.lease.v = &lg;
	op[1].u.lease.n = 1;
	submit(&op[0], DB_OP_LEASE_GRANT);
	submit(&op[1], DB_OP_LEASE_GRANT);
	unblock_thread();
	if (op[0].rc != -EIO || lb.granted)
		fail("a grant failing in PostgreSQL in a group: rc %d, granted %d", op[0].rc, lb.granted);
	expect_ok(&op[1], "a grant beside one failing in PostgreSQL");
	if (!lg.granted)
		fail("a grant beside one failing in PostgreSQL: not granted");
	expect_eq(task_row(task[1]), "queued 0 0", "the task of the failed grant");
	expect_eq(task_row(task[2]), "leased 1 0", "the task granted beside it");

	/* Results of three workers in one group, the middle one refused by
	 * PostgreSQL as bad data: it is left out and the other two commit
	 * together, in one transaction. */
	for (int k = 0; k < 3; k++) {
		if (grant_one(task[3 + k], "p3", &granted, "a grant for the results group") != 0 || !granted)
			fail("a grant for the results group: not granted");
		result_init(&r[k], &d[k], task[3 + k], 1);
		d[k].worker_id = "p3";
	}
	r[1].reason = "refuse";
	block_thread(&blk);
	memset(op, 0, sizeof(op));
	for (int k = 0; k < 3; k++) {
		op[k].u.result.v = &d[k];
		op[k].u.result.n = 1;
		submit(&op[k], DB_OP_RESULT_STORE);
	}
	unblock_thread();
	expect_ok(&op[0], "a result before one PostgreSQL refused");
	expect_refused(&op[1], "a result PostgreSQL refused in a group", "refused");
	expect_ok(&op[2], "a result after one PostgreSQL refused");
	if (d[0].outcome != DB_RESULT_FINAL || d[2].outcome != DB_RESULT_FINAL)
		fail("the results beside a refused one: outcomes %d %d, want final", (int)d[0].outcome,
		     (int)d[2].outcome);
	expect_eq(task_row(task[4]), "leased 1 0", "the task of the refused result");
	snprintf(sql, sizeof(sql), "SELECT count(DISTINCT xmin::text) FROM results WHERE task_id IN (%" PRIu64
		 ", %" PRIu64 ")", task[3], task[5]);
	expect_eq(query(sql), "1", "transactions of the results beside the refused one");
	for (int k = 0; k < 3; k++)
		free(op[k].u.result.finished_jobs);
	if (!db_healthy(db))
		fail("the database layer unhealthy after the pipeline failures");
	query("DROP TRIGGER pipeline_boom_attempts ON attempts");
	query("DROP TRIGGER pipeline_boom_results ON results");
}

int main(int argc, char **argv)
{
	struct db_op start = { 0 };
	char err[256];

	if (argc != 2) {
		fprintf(stderr, "usage: hf-db-values CONNINFO\n");
		return 2;
	}
	check_conn = PQconnectdb(argv[1]);
	if (PQstatus(check_conn) != CONNECTION_OK) {
		fprintf(stderr, "could not connect: %s", PQerrorMessage(check_conn));
		return 2;
	}
	if (registry_parse(hf_embedded_registry, hf_embedded_registry_len, "built-in registry", &reg, err,
			   sizeof(err)) < 0) {
		fprintf(stderr, "registry: %s\n", err);
		return 2;
	}
	plan_task.model = 0;
	uv_loop_init(&loop);
	if (db_open(&loop, argv[1], &db) < 0)
		return 2;
	start.u.start.reg = reg;
	run(&start, DB_OP_START);
	expect_ok(&start, "start");
	db_start_result_free(&start);
	if (start.rc == 0) {
		test_job_create();
		test_leases();
		test_results();
		test_reads();
		test_workers();
		test_group_commit();
		test_merged_ops();
		test_leases_first();
		test_result_gather();
		test_pipeline_failures();
	}
	db_close(db);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	registry_free(reg);
	PQfinish(check_conn);
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
	return failures ? 1 : 0;
}
