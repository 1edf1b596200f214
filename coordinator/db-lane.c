/* SPDX-License-Identifier: MIT
 *
 * The lease lane of the database layer (see db.h): lease grants
 * (DB_OP_LEASE_GRANT) run on a connection and thread of their own, with
 * their own group commit, so that a worker's next lease waits for one short
 * statement and a commit, never for the result transaction the main
 * connection is in (its result rows, their triggers, its fsync); the two
 * commits' fsyncs overlap.  The lane is a second struct db run by the same
 * code (db-thread.c); this file owns what differs: which ops go to it,
 * the check that makes its writes the active coordinator's, and the pause
 * that keeps cancels, expiries and retries from overlapping a grant.
 * db_lease_lane_open and db_lane_route run on the loop thread,
 * db_lane_set_ready, db_lane_pause and db_lane_resume on the main
 * database thread, the rest on the lane's thread.
 *
 * Only grants go to the lane.  Everything else stays on the main
 * connection: result stores are the long transactions grants must not
 * wait for, and the rest is rare or not on the path of a task's round.
 *
 * Why the two lanes give the outcome of one (every interleaving is as if
 * the transactions had run one after the other on one connection):
 *
 * - A grant takes only tasks still `queued` (and of a job not cancelled,
 *   with an attempt above the task's), and writes their `tasks` rows and
 *   one new `attempts` row each.  A result store (db-results.c) changes
 *   only tasks `leased` with the result's attempt (a stale result changes
 *   no task) and that attempt's row, and a job's row when its last live
 *   task is decided.  A task the loop asks to grant was queued when the
 *   loop learnt it (a completed op told it: a retried result, an expiry, a
 *   retry, a submit), so no result store in flight can be deciding it; a
 *   result for a task's new attempt cannot exist before the grant
 *   committed and its reply went out.  The rows the two lanes write are
 *   therefore disjoint, and what each reads of the other's rows does not
 *   change its outcome (a grant leaves a job's count of live tasks as it
 *   was).  The triggers add nothing shared: a grant's UPDATE of tasks
 *   decides no task (the statement trigger of migration 015 writes
 *   nothing for it) and its attempts INSERT is not an ended lease
 *   (attempts_summarise_insert fires only for one; device_hours is
 *   written when a lease ends, on the main connection); the foreign keys
 *   from attempts and results to tasks take KEY SHARE locks, which an
 *   UPDATE of a task's state does not conflict with.
 * - Cancels (a job's, its slices, a task's), lease expiries and job
 *   retries change queued tasks or decide the fate of a job's tasks: a
 *   cancel marks the job cancelled and cancels its leased tasks in one
 *   statement, so a grant committing between that statement's snapshot and
 *   its commit would leave a task leased in a cancelled job.  These run
 *   with the lane paused (db_lane_pause): the main thread waits for the
 *   lane's batch in progress to commit and holds its next one until its
 *   own transaction ended.  They are rare (the cancel slices of a large
 *   job are the most: one slice at a time, tens of ms each, as on one
 *   connection).  Submits add tasks no grant can name yet: not paused.
 * - Should a later statement make the two lanes lock the same rows in
 *   opposite orders, PostgreSQL breaks the deadlock by aborting one
 *   transaction (SQLSTATE 40P01, after deadlock_timeout): db_exec returns
 *   -EDEADLK and the group commit runs the same transaction again
 *   (db-thread.c, DB_DEADLOCK_RETRIES), on either lane, so neither a
 *   lease nor a result is lost; only then does each op run alone.
 *
 * Fencing: only the active coordinator writes.  The lane's session takes
 * DB_JOB_LANE_LOCK shared (pg_try_advisory_lock_shared) before its first
 * transaction and holds it while the session lives; then it checks in
 * pg_locks that the main connection's server process holds the
 * active-coordinator lock, again whenever that process changes (main
 * reconnected) and at least every DB_LANE_CHECK_MS, in a transaction or
 * idle.  A coordinator that becomes active takes the active lock, then
 * DB_JOB_LANE_LOCK exclusively, before it loads the live tasks (db-start.c,
 * become_active).  So a grant this lane commits while its session holds
 * the shared lock is either this coordinator's while it is active, or
 * committed before a new active coordinator loads (that one waits for the
 * lock; the lane's next check finds the active lock gone from its main
 * connection and lets the session go, at most about a second later); and a
 * new session that checks after the takeover finds the lock gone and writes
 * nothing.  Safety depends on no timing, only how long a takeover waits
 * does.  (The job lane checks per transaction instead, db-jobs.c: a job is
 * rare, a grant is not, and the pg_locks query cost PostgreSQL about 0.4 ms
 * of CPU a transaction.)  A standby grants nothing: grants go to the lane
 * only after the start op succeeded (db_lane_set_ready), and the loop
 * grants nothing before.
 *
 * Connections: the lane connects with its first grant and reconnects as
 * the main one does (backoff); while it cannot, db_healthy is false (so
 * polls are not given leases) and its thread retries every 200 ms by
 * itself.  A grant that fails (lost connection, fencing) fails cleanly:
 * the loop lets the lease clock settle the task (worker-api.c,
 * grant_done).  db_close stops the lane first, after what was queued on
 * it ran (its grants still need the main connection's lock), then the main
 * thread.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"

int db_lease_lane_open(struct db *db)
{
	struct db *lane = NULL;
	int r;

	if (db->lane)
		return 0;
	r = db_create(db->loop, db->conninfo, db, &lane);
	if (r < 0)
		return r;
	lane->observe = db->observe;
	lane->observe_arg = db->observe_arg;
	db->lane = lane;
	return 0;
}

struct db *db_lane_route(struct db *db, struct db_op *op)
{
	if (op->kind == DB_OP_LEASE_GRANT && db->lane && atomic_load(&db->lane_ready))
		return db->lane;
	return db;
}

void db_lane_set_ready(struct db *db)
{
	if (db->lane)
		atomic_store(&db->lane_ready, true);
}

bool db_lane_fenced(const struct db_op *op)
{
	switch (op->kind) {
	case DB_OP_LEASE_EXPIRE:
	case DB_OP_JOB_CANCEL:
	case DB_OP_JOB_CANCEL_SLICE:
	case DB_OP_JOB_RETRY:
		return true;
	default:
		return false;
	}
}

void db_lane_pause(struct db *db)
{
	struct db *lane = db->lane;

	if (!lane || !atomic_load(&db->lane_ready))
		return;
	pthread_mutex_lock(&lane->mu);
	lane->paused = true;
	while (lane->in_batch)
		pthread_cond_wait(&lane->fence_cond, &lane->mu);
	pthread_mutex_unlock(&lane->mu);
}

void db_lane_resume(struct db *db)
{
	struct db *lane = db->lane;

	if (!lane)
		return;
	pthread_mutex_lock(&lane->mu);
	lane->paused = false;
	pthread_cond_broadcast(&lane->fence_cond);
	pthread_mutex_unlock(&lane->mu);
}

void db_lane_enter(struct db *lane)
{
	pthread_mutex_lock(&lane->mu);
	while (lane->paused)
		pthread_cond_wait(&lane->fence_cond, &lane->mu);
	lane->in_batch = true;
	pthread_mutex_unlock(&lane->mu);
}

void db_lane_leave(struct db *lane)
{
	pthread_mutex_lock(&lane->mu);
	lane->in_batch = false;
	pthread_cond_broadcast(&lane->fence_cond);
	pthread_mutex_unlock(&lane->mu);
}

/* Does the main connection's server process pid hold the active lock? */
static int main_holds_active_lock(struct db *lane, struct db_op *op, int pid, bool *held)
{
	PGresult *res = NULL;
	struct db_params p;
	int r;

	db_params_init(&p);
	db_param_i32(&p, pid);
	r = db_exec(lane, op,
		    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1::int"
		    " AND classid = 0 AND objid = " DB_ACTIVE_LOCK " AND objsubid = 1",
		    &p, PGRES_TUPLES_OK, &res);
	db_params_fini(&p);
	if (r == 0) {
		*held = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "1") == 0;
		PQclear(res);
	}
	return r;
}

/* Drops the lane's session, and with it its shared lock, so a coordinator
 * taking over is not kept waiting; the lane reconnects by itself. */
static void lane_let_go(struct db *lane)
{
	PQfinish(lane->conn);
	lane->conn = NULL;
	lane->fence_session = 0;
	db_prepared_reset(lane);
}

int db_lane_fence(struct db *lane, struct db_op *op, bool force)
{
	struct db *main = lane->main;
	int pid = db_backend_pid(main), session = PQbackendPID(lane->conn);
	int64_t now = hf_mono_ms();
	bool held = false;
	int r;

	if (atomic_load(&main->lost_active) || pid == 0) {
		if (session == lane->fence_session)
			lane_let_go(lane);
		op_error(op, "the main database connection is not the active coordinator's: no lease is granted");
		return -EIO;
	}
	if (session != lane->fence_session) {
		/* A new session: the shared lock first, then the check, so a
		 * coordinator that takes the active lock after the check waits
		 * for this session before it loads. */
		PGresult *res = NULL;
		r = db_exec(lane, op, "SELECT pg_try_advisory_lock_shared(" DB_JOB_LANE_LOCK ")", NULL,
			    PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		held = PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (!held) {
			op_error(op, "another coordinator is taking over: no lease is granted");
			return -EIO;
		}
		lane->fence_session = session;
		lane->fence_pid = 0;
	}
	if (!force && pid == lane->fence_pid && now - lane->fence_checked_ms < DB_LANE_CHECK_MS)
		return 0;
	r = main_holds_active_lock(lane, op, pid, &held);
	if (r < 0)
		return r;
	if (!held) {
		lane_let_go(lane);
		op_error(op, "the main database connection does not hold the active coordinator's lock now "
			 "(it reconnected, or another coordinator took over): no lease is granted");
		log_warn("lease lane: %s", op->err);
		return -EIO;
	}
	lane->fence_pid = pid;
	lane->fence_checked_ms = now;
	return 0;
}

int db_lane_txn_begin(struct db *lane, struct db_op *op, bool generic)
{
	/* Checked when main's connection is new, else at most every
	 * DB_LANE_CHECK_MS; the shared lock makes a later check safe (see the
	 * file's header). */
	int r = db_lane_fence(lane, op, false);

	if (r < 0)
		return r;
	return db_cmd(lane, op, generic ? "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan" : "BEGIN");
}
