/* SPDX-License-Identifier: MIT
 *
 * The database thread (see db.h): the queue between the loop thread and this
 * thread, group commit (consecutive writes share one transaction; the
 * result stores among them share one statement, and the lease grants
 * another; an op refused for its own data is left out and the rest run
 * again together; on any other failure each runs again alone; lease grants
 * taken with result stores commit first, alone, and go back at once),
 * result stores gathered while they stream in (gather_results: they wait a
 * few milliseconds for others while lease grants run), a large group of
 * them handed to the result lane (db-result-lane.c), dispatching each op to
 * its run_* function, and handing completed ops back to the loop (a lane's,
 * to the thread that gave them).  db_open, db_submit, db_healthy,
 * db_lost_active, db_busy_ms, db_standby and db_close are the loop
 * thread's side; the rest runs on the database thread (the main one, or a
 * result lane's).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* ---- the thread ---- */

static bool op_is_write(const struct db_op *op)
{
	switch (op->kind) {
	case DB_OP_JOB_CREATE:
	case DB_OP_LEASE_GRANT:
	case DB_OP_LEASE_EXPIRE:
	case DB_OP_RESULT_STORE:
	case DB_OP_JOB_CANCEL:
	case DB_OP_JOB_CANCEL_SLICE:
	case DB_OP_JOB_PLAN_SLICE:
	case DB_OP_WORKER_UPSERT:
	case DB_OP_TELEMETRY_SAMPLE:
	case DB_OP_JOB_RETRY:
	case DB_OP_DRAIN:
	case DB_OP_HEALTH_STORE:
	case DB_OP_TOKEN_CREATE:
	case DB_OP_TOKEN_REVOKE:
	case DB_OP_TOKEN_TOUCH:
		return true;
	default:
		return false;
	}
}

static int op_run_kind(struct db *db, struct db_op *op)
{
	switch (op->kind) {
	case DB_OP_START:
		return run_start(db, op);
	case DB_OP_JOB_CREATE:
		return run_job_create(db, op);
	case DB_OP_LEASE_GRANT:
		return run_lease_grant(db, op);
	case DB_OP_LEASE_EXPIRE:
		return run_lease_expire(db, op);
	case DB_OP_RESULT_STORE:
		return run_result_store(db, op);
	case DB_OP_JOB_CANCEL:
		return run_job_cancel(db, op);
	case DB_OP_JOB_CANCEL_SLICE:
		return run_job_cancel_slice(db, op);
	case DB_OP_JOB_PLAN_SLICE:
		return run_job_plan_slice(db, op);
	case DB_OP_WORKER_UPSERT:
		return run_worker_upsert(db, op);
	case DB_OP_TELEMETRY_SAMPLE:
		return run_telemetry_sample(db, op);
	case DB_OP_JOB_RETRY:
		return run_job_retry(db, op);
	case DB_OP_DRAIN:
		return run_drain(db, op);
	case DB_OP_HEALTH_STORE:
		return run_health_store(db, op);
	case DB_OP_JOB_STATUS:
		return run_job_status(db, op);
	case DB_OP_JOB_LIST:
		return run_job_list(db, op);
	case DB_OP_RESULTS:
		return run_results(db, op);
	case DB_OP_TASK_EXPLAIN:
		return run_task_explain(db, op);
	case DB_OP_TOKEN_CREATE:
		return run_token_create(db, op);
	case DB_OP_TOKEN_REVOKE:
		return run_token_revoke(db, op);
	case DB_OP_TOKEN_TOUCH:
		return run_token_touch(db, op);
	case DB_OP_TOKEN_LIST:
		return run_token_list(db, op);
	case DB_OP_AUDIT_LIST:
		return run_audit_list(db, op);
	case DB_OP_AUTH_BOOTSTRAP:
		return run_auth_bootstrap(db, op);
	case DB_OP_LOGS:
		return run_logs(db, op);
	case DB_OP_COMPARE:
		return run_compare(db, op);
	case DB_OP_HISTORY:
		return run_history(db, op);
	case DB_OP_REPORT:
		return run_report(db, op);
	case DB_OP_WARM:
		return run_warm(db, op);
	}
	op_error(op, "unknown database operation %d", (int)op->kind);
	return -EINVAL;
}

/* Runs op and, for a write that asked for one, its audit row in the same
 * transaction. */
static int op_run(struct db *db, struct db_op *op)
{
	int r = op_run_kind(db, op);

	if (r == 0 && op->audit.action && op_is_write(op))
		r = db_audit_write(db, op);
	return r;
}

static void op_complete(struct db *db, struct db_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&db->mu);
	if (db->out_tail)
		db->out_tail->next = op;
	else
		db->out_head = op;
	db->out_tail = op;
	pthread_mutex_unlock(&db->mu);
}

static bool op_mergeable(const struct db_op *op);

/* Begins a transaction of ops run one statement after the other. */
static int txn_begin(struct db *db, struct db_op *op)
{
	db->generic_txn = false;
	return db_cmd(db, op, "BEGIN");
}

/* Commits when r is 0, else rolls back; returns the outcome. */
static int txn_end(struct db *db, struct db_op *op, int r)
{
	if (r == 0)
		r = db_cmd(db, op, "COMMIT");
	if (r < 0 && r != -ENOTCONN && db_connected(db))
		PQclear(PQexec(db->conn, "ROLLBACK"));
	db->generic_txn = false;
	return r;
}

static int txn_pipelined(struct db *db, struct db_op *txn_op, struct db_op **ops, size_t n,
			 const bool *left_out, bool merge, size_t *failed, bool *merged_failed);

/* Runs one write op in a transaction of its own: a result store or a lease
 * grant as one pipeline (txn_pipelined), any other op statement by
 * statement. */
static int run_alone(struct db *db, struct db_op *op)
{
	if (op_mergeable(op)) {
		bool left_out = false, merged_failed;
		size_t failed;
		return txn_pipelined(db, op, &op, 1, &left_out, true, &failed, &merged_failed);
	}
	int r = txn_begin(db, op);
	if (r < 0)
		return r;
	return txn_end(db, op, op_run(db, op));
}

/* An op that failed through its own data (a refused value, a conflicting
 * request id) fails the same way whatever ran before it. */
static bool op_failed_on_its_own(int rc)
{
	return rc == -EINVAL || rc == -EEXIST;
}

/* A group runs again together at most this many times, each time without
 * one more op refused for its data; then each runs alone.  This bounds the
 * work many bad ops can cause (at most about 9n op runs, not n squared). */
#define DB_GROUP_ROUNDS 8

static bool op_mergeable(const struct db_op *op)
{
	return (op->kind == DB_OP_RESULT_STORE || op->kind == DB_OP_LEASE_GRANT) && !op->audit.action;
}

static size_t op_rows(const struct db_op *op)
{
	return op->kind == DB_OP_RESULT_STORE ? op->u.result.n : op->u.lease.n;
}

/* Collects into run[] the ops from ops[i] on that one statement can serve
 * with ops[i]: of its kind, not left out nor already run this round, at
 * most DB_MERGE_ROWS_MAX rows in all, up to the first op that is neither a
 * result store nor a lease grant.  A lease grant between result stores is
 * stepped over (and a result store between grants): in one batch neither
 * can depend on the other, since the coordinator learns of a lease, or of
 * a result's outcome, only when its op is done, and every op of a batch was
 * queued before any of it ran.  Returns how many; marks them taken. */
static size_t merge_run(struct db_op **ops, const bool *left_out, bool *taken, size_t i, size_t n,
			struct db_op **run)
{
	size_t k = 0, rows = 0;

	for (size_t j = i; j < n; j++) {
		if (left_out[j] || taken[j])
			continue;
		if (!op_mergeable(ops[j]))
			break;
		if (ops[j]->kind != ops[i]->kind)
			continue;
		if (k > 0 && rows + op_rows(ops[j]) > DB_MERGE_ROWS_MAX)
			break;
		rows += op_rows(ops[j]);
		run[k++] = ops[j];
		taken[j] = true;
	}
	return k;
}

/* Runs run[0..k) (mergeable ops of one kind) with one statement; each gets
 * the statement's rc, and on a failure run[0]'s reason. */
static int run_merged(struct db *db, struct db_op **run, size_t k)
{
	int r;

	if (run[0]->kind == DB_OP_RESULT_STORE)
		r = run_result_store_merged(db, run, k);
	else
		r = run_lease_grant_merged(db, run, k);
	for (size_t m = 0; m < k; m++) {
		run[m]->rc = r;
		if (m > 0 && r < 0)
			snprintf(run[m]->err, sizeof(run[m]->err), "%s", run[0]->err);
	}
	return r;
}

/* One statement of a pipelined transaction: the ops it serves (one, or a
 * merged run of several), where the first of them is in the group, and
 * how sending it went. */
struct pipe_unit {
	struct db_merged m;
	size_t first;
	int send_rc;
};

/* Records how u went on its ops, as run_merged (several) or op_run (one)
 * would have. */
static void unit_record(struct pipe_unit *u, int rc, size_t *failed, bool *merged_failed)
{
	for (size_t m = 0; m < u->m.n_ops; m++) {
		u->m.ops[m]->rc = rc;
		if (m > 0 && rc < 0)
			snprintf(u->m.ops[m]->err, sizeof(u->m.ops[m]->err), "%s", u->m.ops[0]->err);
	}
	if (rc < 0 && u->m.n_ops > 1)
		*merged_failed = true;
	else if (rc < 0)
		*failed = u->first;
}

/* Runs the ops of ops[0..n) not left out (result stores and lease grants,
 * none with an audit row) in one transaction sent as one pipeline: BEGIN,
 * the generic plans for all of it, a statement per merged run (merge_run,
 * when merge) or per op, COMMIT and one sync, then every result read back
 * in order: one round trip to PostgreSQL where running them one by one
 * took one per statement.  What each op gets is what db_run_group's loop
 * gives it: the first statement that fails (or cannot be sent: a value
 * refused while building it) sets *merged_failed, or *failed to its op;
 * PostgreSQL skips the statements after it and the COMMIT, and the
 * transaction is rolled back, as a failing statement's is when they run
 * one by one.  Errors of BEGIN and COMMIT go to txn_op.  Returns the
 * transaction's outcome. */
static int txn_pipelined(struct db *db, struct db_op *txn_op, struct db_op **ops, size_t n,
			 const bool *left_out, bool merge, size_t *failed, bool *merged_failed)
{
	struct db_op *run[DB_BATCH_MAX];
	struct pipe_unit units[DB_BATCH_MAX];
	bool taken[DB_BATCH_MAX] = { false }, commit_sent = false;
	size_t n_units = 0, used = 0;
	int r, sent;

	*failed = n;
	*merged_failed = false;
	r = db_pipe_begin(db, txn_op);
	if (r < 0)
		return r;
	r = db_pipe_cmd(db, txn_op, "BEGIN");
	if (r == 0)
		r = db_pipe_cmd(db, txn_op, "SET LOCAL plan_cache_mode = force_generic_plan");
	if (r == 0 && db->lane_of)
		r = result_lane_check_send(db, txn_op);
	db->generic_txn = true;
	sent = r;
	for (size_t i = 0; sent == 0 && i < n; i++) {
		if (left_out[i] || taken[i])
			continue;
		size_t k = merge ? merge_run(ops, left_out, taken, i, n, run + used) : 0;
		if (k == 0) {
			run[used] = ops[i];
			taken[i] = true;
			k = 1;
		}
		struct pipe_unit *u = &units[n_units++];
		*u = (struct pipe_unit){ .m = { .ops = run + used, .n_ops = k }, .first = i };
		used += k;
		for (size_t m = 0; m < k; m++)
			u->m.ops[m]->err[0] = '\0';
		if (ops[i]->kind == DB_OP_RESULT_STORE)
			u->send_rc = result_store_send(db, &u->m);
		else
			u->send_rc = lease_grant_send(db, &u->m);
		sent = u->send_rc;
	}
	if (sent == 0) {
		r = db_pipe_cmd(db, txn_op, "COMMIT");
		commit_sent = r == 0;
	}
	if (r == 0)
		r = db_pipe_sync(db, txn_op);
	if (r == 0)
		r = db_pipe_read_cmd(db, txn_op); /* BEGIN */
	if (r == 0)
		r = db_pipe_read_cmd(db, txn_op); /* SET LOCAL */
	if (r == 0 && db->lane_of)
		r = result_lane_check_read(db, txn_op);
	for (size_t u = 0; r == 0 && u < n_units; u++) {
		int rc = units[u].send_rc;
		if (rc == 0)
			rc = units[u].m.ops[0]->kind == DB_OP_RESULT_STORE ? result_store_read(db, &units[u].m)
									    : lease_grant_read(db, &units[u].m);
		unit_record(&units[u], rc, failed, merged_failed);
		r = rc;
	}
	if (r == 0 && commit_sent)
		r = db_pipe_read_cmd(db, txn_op);
	r = db_pipe_end(db, txn_op, r);
	for (size_t u = 0; u < n_units; u++)
		db_merged_fini(&units[u].m);
	db->generic_txn = false;
	/* A failed statement left the transaction open and failed (the
	 * COMMIT was skipped); a value refused before sending, open. */
	if (r < 0 && r != -ENOTCONN && db_connected(db))
		PQclear(PQexec(db->conn, "ROLLBACK"));
	return r;
}

/* The same as txn_pipelined for a group that holds other writes: each op
 * (with its audit row), or merged run, in turn, statement by statement;
 * a merged run's statements are one pipeline of their own. */
static int txn_sequential(struct db *db, struct db_op *txn_op, struct db_op **ops, size_t n,
			  const bool *left_out, bool merge, size_t *failed, bool *merged_failed)
{
	struct db_op *run[DB_BATCH_MAX];
	bool taken[DB_BATCH_MAX] = { false };
	int r = txn_begin(db, txn_op);

	*failed = n;
	*merged_failed = false;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (left_out[i] || taken[i])
			continue;
		size_t k = 0;
		if (merge && op_mergeable(ops[i]))
			k = merge_run(ops, left_out, taken, i, n, run);
		if (k > 1) {
			for (size_t m = 0; m < k; m++)
				run[m]->err[0] = '\0';
			r = run_merged(db, run, k);
			*merged_failed = r < 0;
			continue;
		}
		ops[i]->err[0] = '\0';
		r = op_run(db, ops[i]);
		ops[i]->rc = r;
		if (r < 0)
			*failed = i;
	}
	return txn_end(db, txn_op, r);
}

/* Runs ops[0..n) (all writes) in one transaction.  The result stores of a
 * stretch of result stores and lease grants run as one statement, and the
 * grants as another (merge_run); if that statement fails,
 * the group runs again with each op's own statement, so a refusal names the
 * op it belongs to.  An op that fails on its own data is left out and the
 * others run again together, so one bad value neither fails nor splits the
 * group; on any other failure each runs again alone so only the failing
 * ones fail. */
void db_run_group(struct db *db, struct db_op **ops, size_t n)
{
	struct db_op scratch = { 0 };
	bool left_out[DB_BATCH_MAX] = { false };
	bool merge = true, generic = true;
	int r = 0;
	size_t i;

	if (n == 1) {
		ops[0]->rc = run_alone(db, ops[0]);
		return;
	}
	for (i = 0; i < n; i++)
		generic = generic && op_mergeable(ops[i]);
	for (int round = 0;; round++) {
		size_t failed = n;
		bool merged_failed = false;
		if (generic)
			r = txn_pipelined(db, &scratch, ops, n, left_out, merge, &failed, &merged_failed);
		else
			r = txn_sequential(db, &scratch, ops, n, left_out, merge, &failed, &merged_failed);
		if (r == 0)
			return;
		if (merged_failed && r != -ENOTCONN && db_connected(db)) {
			/* The same ops again, each with its own statement, to find
			 * the one refused; not counted as a round (a merged
			 * statement fails at most once per op left out). */
			merge = false;
			round--;
			continue;
		}
		if (failed == n || !op_failed_on_its_own(r) || !db_connected(db))
			break;
		left_out[failed] = true; /* keeps its rc and err */
		merge = true;            /* the rest may share statements again */
		if (round + 1 == DB_GROUP_ROUNDS)
			break; /* the rest run alone */
	}
	for (i = 0; i < n; i++) {
		if (left_out[i])
			continue;
		if (!db_connected(db)) {
			ops[i]->rc = -ENOTCONN;
			if (!ops[i]->err[0])
				op_error(ops[i], "lost the database connection");
			continue;
		}
		ops[i]->err[0] = '\0';
		ops[i]->rc = run_alone(db, ops[i]);
	}
}

/* Hands ops[0..n) back to the loop and wakes it.  The loop may free an op
 * as soon as it has it: nothing here touches one afterwards. */
void db_ops_complete(struct db *db, struct db_op **ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ops[i]->rc < 0 && ops[i]->kind == DB_OP_RESULT_STORE) {
			/* A failed store finished no job (room for them is
			 * allocated before its statement is sent). */
			free(ops[i]->u.result.finished_jobs);
			ops[i]->u.result.finished_jobs = NULL;
			ops[i]->u.result.n_finished_jobs = 0;
		}
		if (db->lane_of)
			continue; /* back to the thread that gave them (below) */
		if (ops[i]->rc < 0 && ops[i]->kind != DB_OP_START)
			log_warn("database operation failed: %s", ops[i]->err);
		op_complete(db, ops[i]);
	}
	if (db->lane_of) {
		pthread_mutex_lock(&db->mu);
		db->lane_pending -= n;
		if (db->lane_pending == 0)
			pthread_cond_signal(&db->lane_cond);
		pthread_mutex_unlock(&db->mu);
		return;
	}
	uv_async_send(&db->async);
}

/* The lease grants of a stretch of writes go first, in a transaction of
 * their own, and back to the loop as soon as it commits: a worker waiting
 * for its next task (slot free -> next lease) then waits for one short
 * statement and a commit, not for the result stores queued with it and
 * their triggers.  Only the leading run of result stores and lease grants
 * is reordered (merge_run's argument: within one batch neither can depend
 * on the other); a grant after any other write (a cancel, an expiry, a
 * registration) keeps its place.  Partitions ops[0..n) stably, grants
 * first, and returns how many grants lead and go alone; 0: the stretch
 * runs as one group. */
static size_t leases_first(struct db_op **ops, size_t n)
{
	struct db_op *rest[DB_BATCH_MAX];
	size_t lead = 0, n_leases = 0, n_rest = 0;

	while (lead < n && op_mergeable(ops[lead]))
		lead++;
	for (size_t i = 0; i < lead; i++) {
		if (ops[i]->kind == DB_OP_LEASE_GRANT)
			ops[n_leases++] = ops[i];
		else
			rest[n_rest++] = ops[i];
	}
	memcpy(ops + n_leases, rest, n_rest * sizeof(*rest));
	/* Alone when result stores were in the lead (also when the grants were
	 * ahead of them already) or when the stretch is all grants; grants
	 * followed by other writes only stay in their group. */
	return n_leases > 0 && (n_rest > 0 || lead == n) ? n_leases : 0;
}

static void run_batch(struct db *db, struct db_op *list)
{
	struct db_op *ops[DB_BATCH_MAX];
	bool completed[DB_BATCH_MAX] = { false };
	size_t n = 0;

	for (struct db_op *op = list; op; op = op->next)
		ops[n++] = op;

	for (size_t i = 0; i < n;) {
		struct db_op *op = ops[i];
		op->err[0] = '\0';
		int r = db_ensure_connected(db, op);
		if (r < 0) {
			op->rc = r;
			i++;
			continue;
		}
		if (!op_is_write(op)) {
			op->rc = op_run(db, op);
			if (op->rc == -ENOTCONN)
				atomic_store(&db->healthy, false);
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && op_is_write(ops[j]))
			ops[j++]->err[0] = '\0';
		size_t leases = leases_first(ops + i, j - i);
		if (leases > 0) {
			db_run_group(db, ops + i, leases);
			if (!db_connected(db))
				atomic_store(&db->healthy, false);
			db_ops_complete(db, ops + i, leases);
			for (size_t k = i; k < i + leases; k++)
				completed[k] = true;
			i += leases;
			continue; /* the result stores and the rest, together */
		}
		db_run_group(db, ops + i, j - i);
		if (!db_connected(db))
			atomic_store(&db->healthy, false);
		i = j;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!completed[i])
			ops[k++] = ops[i];
	db_ops_complete(db, ops, k);
}

/* ---- gathering result stores ----
 *
 * A result statement's cost in PostgreSQL is mostly fixed (its summary
 * triggers, the statement's start, the job-done check, the commit):
 * bench/pg-result-cost.py measures about 0.5 ms for one result, 1 ms for
 * 6 and 3 ms for 30.  With a few hf-workers each keeping one result batch
 * in flight (two since), a transaction gathered only what came while the
 * one before ran, about 6 results at 2,700 a second.  So while results stream in, a
 * result store waits up to gather_us from its submit for others, as
 * PostgreSQL's commit_delay waits for other commits.  Nothing else waits:
 * a lease grant that comes meanwhile runs at once, alone (as leases_first
 * would run it ahead of the stores anyway: neither can depend on the
 * other), even a refill of tasks leased ahead: a worker whose queue runs
 * dry waits for it, and with queues of four a slot it comes for many tasks,
 * so sharing a result transaction saves little (performance-history.md,
 * "Benchmarks leased ahead").  Any other op ends the wait and runs after
 * the held ones, in the order they came.  A store is acknowledged only
 * once committed, as before; a worker's slots do not wait for the
 * acknowledgement. */

/* Moves the queued ops to *tail, at most room of them; under db->mu. */
static size_t take_queued(struct db *db, struct db_op ***tail, size_t room)
{
	size_t n = 0;

	while (db->in_head && n < room) {
		struct db_op *op = db->in_head;
		db->in_head = op->next;
		op->next = NULL;
		**tail = op;
		*tail = &op->next;
		n++;
	}
	if (!db->in_head)
		db->in_tail = NULL;
	return n;
}

/* Waits on db->cond until an op is queued, the thread is stopping or the
 * monotonic deadline (us) passes; under db->mu. */
static void wait_queued_until(struct db *db, int64_t deadline)
{
	while (!db->in_head && !db->stopping) {
		int64_t left = deadline - hf_mono_us();
		if (left <= 0)
			return;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000000;
		ts.tv_nsec += (long)(left % 1000000) * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&db->cond, &db->mu, &ts);
	}
}

/* Returns what is to run now of list (n ops just taken from the queue):
 * list itself when it holds no stream of result stores, else the stores
 * held, followed by the ops that ended their wait (the lease grants that
 * came meanwhile have run here).  Never NULL: a stream's first store is
 * held in the first round. */
static struct db_op *gather_results(struct db *db, struct db_op *list, size_t n)
{
	int64_t gather_us = atomic_load(&db->gather_us), deadline = 0;
	struct db_op *held = NULL, **held_tail = &held;
	size_t n_held = 0, rows = 0;
	bool streaming = false;

	if (gather_us <= 0)
		return list;
	for (struct db_op *op = list; op; op = op->next) {
		if (op->kind != DB_OP_RESULT_STORE)
			continue;
		/* A store taken soon after the one before is part of a stream; a
		 * lone one (a slow task's result) runs at once. */
		streaming = streaming || op->submitted_us - db->last_result_us < gather_us;
		db->last_result_us = op->submitted_us;
	}
	if (!streaming)
		return list;
	while (n > 0) {
		struct db_op *grants = NULL, **grants_tail = &grants, *next;
		bool gatherable = true;

		for (struct db_op *op = list; op && gatherable; op = op->next)
			gatherable = op_mergeable(op);
		if (!gatherable)
			break; /* list runs after the held stores */
		for (struct db_op *op = list; op; op = next) {
			next = op->next;
			op->next = NULL;
			if (op->kind == DB_OP_LEASE_GRANT) {
				*grants_tail = op;
				grants_tail = &op->next;
				continue;
			}
			if (!held)
				deadline = op->submitted_us + gather_us;
			*held_tail = op;
			held_tail = &op->next;
			n_held++;
			rows += op_rows(op);
			db->last_result_us = op->submitted_us;
		}
		list = NULL;
		if (grants) {
			atomic_store(&db->busy_since_ms, hf_mono_ms());
			run_batch(db, grants);
			atomic_store(&db->busy_since_ms, 0);
		}
		/* With a result lane, enough for two statements. */
		if (rows >= (db->result_lane ? 2 : 1) * DB_GATHER_ROWS || n_held >= DB_BATCH_MAX / 2)
			break;
		struct db_op **tail = &list;
		pthread_mutex_lock(&db->mu);
		wait_queued_until(db, deadline);
		n = take_queued(db, &tail, DB_BATCH_MAX - n_held);
		pthread_mutex_unlock(&db->mu);
	}
	*held_tail = list;
	return held;
}

static void *db_thread_main(void *arg)
{
	struct db *db = arg;

	for (;;) {
		struct db_op *list = NULL, **tail = &list;
		size_t n = 0;

		pthread_mutex_lock(&db->mu);
		while (!db->in_head && !db->stopping)
			pthread_cond_wait(&db->cond, &db->mu);
		if (!db->in_head && db->stopping) {
			pthread_mutex_unlock(&db->mu);
			break;
		}
		n = take_queued(db, &tail, DB_BATCH_MAX);
		pthread_mutex_unlock(&db->mu);

		if (list->kind != DB_OP_START)
			list = gather_results(db, list, n);
		atomic_store(&db->busy_since_ms, hf_mono_ms());
		if (db->result_lane && list->kind == DB_OP_RESULT_STORE)
			list = db_results_on_two_connections(db, list);
		if (!list) {
			atomic_store(&db->busy_since_ms, 0);
			continue;
		}
		/* The start operation waits for the database rather than fail. */
		if (list->kind == DB_OP_START) {
			while (db_ensure_connected(db, list) < 0) {
				db_alive(db);
				pthread_mutex_lock(&db->mu);
				bool stop = db->stopping;
				pthread_mutex_unlock(&db->mu);
				if (stop)
					break;
				struct timespec ts = { 0, 200 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
		}
		run_batch(db, list);
		atomic_store(&db->busy_since_ms, 0);
	}
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	db_prepared_reset(db);
	return NULL;
}

static void db_async_cb(uv_async_t *h)
{
	struct db *db = h->data;
	struct db_op *list;

	pthread_mutex_lock(&db->mu);
	list = db->out_head;
	db->out_head = db->out_tail = NULL;
	pthread_mutex_unlock(&db->mu);
	while (list) {
		struct db_op *op = list;
		list = op->next;
		op->next = NULL;
		if (db->observe)
			db->observe(db->observe_arg, op->kind, hf_mono_us() - op->submitted_us);
		op->done(op);
	}
}

int db_open(uv_loop_t *loop, const char *conninfo, struct db **ret_db)
{
	struct db *db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->loop = loop;
	db->app_name = "hf-coordinator";
	db->conninfo = strdup(conninfo);
	if (!db->conninfo) {
		free(db);
		return -ENOMEM;
	}
	pthread_mutex_init(&db->mu, NULL);
	pthread_condattr_t cattr;
	pthread_condattr_init(&cattr);
	/* gather_results waits on it until a monotonic deadline. */
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&db->cond, &cattr);
	pthread_condattr_destroy(&cattr);
	pthread_cond_init(&db->lane_cond, NULL);
	atomic_init(&db->healthy, false);
	atomic_init(&db->lost_active, false);
	atomic_init(&db->standby, false);
	atomic_init(&db->busy_since_ms, 0);
	atomic_init(&db->backend_pid, 0);
	atomic_init(&db->gather_us, 0);
	atomic_init(&db->lane_splits, 0);
	atomic_init(&db->lane_retries, 0);
	uv_async_init(loop, &db->async, db_async_cb);
	db->async.data = db;
	if (pthread_create(&db->thread, NULL, db_thread_main, db) != 0) {
		uv_close((uv_handle_t *)&db->async, NULL);
		free(db->conninfo);
		free(db);
		return -EAGAIN;
	}
	*ret_db = db;
	return 0;
}

void db_set_observer(struct db *db, void (*fn)(void *arg, enum db_op_kind kind, int64_t us), void *arg)
{
	db->observe = fn;
	db->observe_arg = arg;
}

void db_submit(struct db *db, struct db_op *op)
{
	op->next = NULL;
	op->submitted_us = hf_mono_us();
	op->rc = 0;
	op->err[0] = '\0';
	pthread_mutex_lock(&db->mu);
	if (db->in_tail)
		db->in_tail->next = op;
	else
		db->in_head = op;
	db->in_tail = op;
	pthread_cond_signal(&db->cond);
	pthread_mutex_unlock(&db->mu);
}

void db_set_name(struct db *db, const char *name)
{
	db->app_name = name;
}

void db_set_result_gather(struct db *db, int64_t us)
{
	atomic_store(&db->gather_us, us > 0 ? us : 0);
}

bool db_healthy(struct db *db)
{
	return atomic_load(&db->healthy);
}

bool db_lost_active(struct db *db)
{
	return atomic_load(&db->lost_active);
}

void db_alive(struct db *db)
{
	atomic_store(&db->busy_since_ms, hf_mono_ms());
}

int64_t db_busy_ms(struct db *db)
{
	int64_t since = atomic_load(&db->busy_since_ms);

	return since ? hf_mono_ms() - since : 0;
}

int db_backend_pid(struct db *db)
{
	return atomic_load(&db->backend_pid);
}

bool db_standby(struct db *db)
{
	return atomic_load(&db->standby);
}

static void db_free_cb(uv_handle_t *h)
{
	struct db *db = h->data;
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->cond);
	pthread_cond_destroy(&db->lane_cond);
	free(db->conninfo);
	free(db);
}

void db_close(struct db *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&db->mu);
	db->stopping = true;
	pthread_cond_signal(&db->cond);
	pthread_mutex_unlock(&db->mu);
	pthread_join(db->thread, NULL);
	db_async_cb(&db->async); /* the last completions */
	uv_close((uv_handle_t *)&db->async, db_free_cb);
}
