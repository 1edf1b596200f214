/* SPDX-License-Identifier: MIT
 *
 * Result stores on two connections (database.result_connections = 2): the
 * result lane.  PostgreSQL stores a result in one backend, and at about
 * 200 us of its CPU a result (the result row, two versions each of the
 * task's and the attempt's rows, their index entries and the summaries)
 * one backend stops at about 5,000 a second whatever the cores
 * (performance.md, "What bounds each figure now").  With a result lane
 * (db_set_result_lane), a gathered group of at least DB_LANE_MIN_ROWS
 * results is split in two by worker, and the lane's thread stores one half
 * on its connection while the main database thread stores the other: two
 * transactions at once, on two backends.  Nothing else runs meanwhile, and
 * both halves are handed back together, so every other op still sees the
 * writes in the order they were queued.  Why this is safe with each half
 * not seeing the other's uncommitted work:
 *   - a task's results from one worker are in one half; two workers'
 *     results for one task are decided by the task row each reads (only
 *     the attempt leased to the sender is current), and a re-sent result
 *     (task, attempt) inserted by both waits on the unique key and is a
 *     duplicate in the second;
 *   - each half's job-done check sees its own results only: a job with a
 *     final result in both halves is checked again after both committed
 *     (result_jobs_finish, db-results.c);
 *   - each lane transaction holds the job lane's lock shared and checks
 *     that the main connection still holds the active coordinator's lock
 *     (result_lane_check_send), so a coordinator taking over never loads
 *     the leases while a lane half of the one before commits;
 *   - a half that fails (a deadlock between the two on a summary row, a
 *     lost lane connection, a lane whose main connection is no longer the
 *     active coordinator's) was rolled back: its stores run again on the
 *     main connection, as any failed group's.
 * The lane itself is a struct db with its own thread (db-thread.c's
 * db_thread_main, which gives its ops back to the main database thread
 * instead of the loop).  db_results_on_two_connections runs on the main
 * database thread; result_lane_check_* on the lane's; db_set_result_lane
 * on the loop thread before either starts work; db_result_lane_counts on
 * any thread (atomics).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"

void db_set_result_lane(struct db *db, struct db *lane)
{
	db->result_lane = lane;
	lane->lane_of = db;
	lane->app_name = "hf-coordinator results";
}

void db_result_lane_counts(struct db *db, uint64_t *splits, uint64_t *retries)
{
	*splits = atomic_load(&db->lane_splits);
	*retries = atomic_load(&db->lane_retries);
}

int result_lane_check_send(struct db *db, struct db_op *op)
{
	struct db_params p;
	int r;

	/* Until this transaction ends, a coordinator taking over waits before
	 * it loads the running jobs and leases (become_active), as for the job
	 * lane's (job_lane_still_active). */
	r = db_pipe_send(db, op, "SELECT pg_advisory_xact_lock_shared(" DB_JOB_LANE_LOCK ")", NULL);
	if (r < 0)
		return r;
	db_params_init(&p);
	db_param_i32(&p, db->active_pid);
	/* A pipeline cannot look at an answer before it sends the rest: the
	 * statement fails by itself (a text that is no integer) when the
	 * main connection no longer holds the lock, and so the transaction,
	 * with that text as its reason.  The cast is of a CASE over count(*),
	 * which the planner cannot fold: a constant's cast it would evaluate,
	 * and fail, while planning. */
	r = db_pipe_send(db, op,
		    "SELECT (CASE WHEN count(*) = 1 THEN '1' ELSE 'the main database connection does not hold the"
		    " active coordinator''s lock now' END)::int FROM " DB_ACTIVE_LOCK_OF_PID_1,
		    &p);
	db_params_fini(&p);
	return r;
}

int result_lane_check_read(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	int r = db_pipe_read(db, op, PGRES_TUPLES_OK, &res);

	PQclear(res);
	res = NULL;
	if (r == 0)
		r = db_pipe_read(db, op, PGRES_TUPLES_OK, &res);
	PQclear(res);
	return r;
}

/* The results' worker of op (a result store's results are one worker's). */
static const char *op_worker(const struct db_op *op)
{
	return op->u.result.n > 0 && op->u.result.v[0].worker_id ? op->u.result.v[0].worker_id : "";
}

/* Whether job appears among the final outcomes of ops[0..n). */
static bool ops_have_final_of(struct db_op **ops, size_t n, uint64_t job)
{
	for (size_t o = 0; o < n; o++)
		for (size_t k = 0; k < ops[o]->u.result.n; k++)
			if (ops[o]->u.result.v[k].outcome == DB_RESULT_FINAL && ops[o]->u.result.v[k].job_id == job)
				return true;
	return false;
}

static bool ops_finished_job(struct db_op **ops, size_t n, uint64_t job)
{
	for (size_t o = 0; o < n; o++)
		for (size_t k = 0; k < ops[o]->u.result.n_finished_jobs; k++)
			if (ops[o]->u.result.finished_jobs[k] == job)
				return true;
	return false;
}

/* Finishes the jobs with a final result in both halves that neither
 * finished (see above), each told to the last op, of those that
 * succeeded, with a final result of it; a failure is logged (such a job is
 * finished by the next result of it, or at the next start). */
static void lanes_finish_jobs(struct db *db, struct db_op **ops, size_t n, struct db_op **mine, size_t n_mine,
			      struct db_op **lane_ops, size_t n_lane)
{
	struct db_op *stored[DB_BATCH_MAX];
	uint64_t *jobs;
	size_t n_jobs = 0, n_stored = 0, room = 0;

	/* At most a job per result of this half. */
	for (size_t o = 0; o < n_mine; o++)
		room += mine[o]->u.result.n;
	jobs = room ? malloc(room * sizeof(*jobs)) : NULL;
	if (!jobs) {
		if (room)
			log_warn("out of memory: jobs whose results were stored on two connections are finished "
				 "by their next result, or at the next start");
		return;
	}
	for (size_t o = 0; o < n_mine; o++) {
		if (mine[o]->rc < 0)
			continue;
		for (size_t k = 0; k < mine[o]->u.result.n; k++) {
			const struct db_result *d = &mine[o]->u.result.v[k];
			bool seen = false;
			if (d->outcome != DB_RESULT_FINAL)
				continue;
			for (size_t j = 0; j < n_jobs && !seen; j++)
				seen = jobs[j] == d->job_id;
			if (!seen && ops_have_final_of(lane_ops, n_lane, d->job_id) &&
			    !ops_finished_job(ops, n, d->job_id))
				jobs[n_jobs++] = d->job_id;
		}
	}
	/* A failed op's finished jobs are dropped (db_ops_complete): a job
	 * finished now is told to one whose stores were committed. */
	for (size_t o = 0; o < n; o++)
		if (ops[o]->rc == 0)
			stored[n_stored++] = ops[o];
	if (n_jobs > 0 && n_stored > 0 && db_connected(db) &&
	    result_jobs_finish(db, stored, n_stored, jobs, n_jobs) < 0) {
		log_warn("could not finish the jobs of results stored on two connections: %s", stored[0]->err);
		stored[0]->err[0] = '\0'; /* its stores were committed */
	}
	free(jobs);
}

/* Stores the leading result stores of list over two connections when
 * they are enough to split (see above), and returns what is left of list
 * to run; list itself when they are not. */
struct db_op *db_results_on_two_connections(struct db *db, struct db_op *list)
{
	struct db *lane = db->result_lane;
	struct db_op *ops[DB_BATCH_MAX], *mine[DB_BATCH_MAX], *lane_ops[DB_BATCH_MAX], *rest = list;
	size_t n = 0, n_mine = 0, n_lane = 0, rows[2] = { 0, 0 };
	unsigned char side[DB_BATCH_MAX];

	while (rest && rest->kind == DB_OP_RESULT_STORE && !rest->audit.action && n < DB_BATCH_MAX) {
		ops[n++] = rest;
		rest = rest->next;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < i && strcmp(op_worker(ops[j]), op_worker(ops[i])) != 0)
			j++;
		/* A worker's stores on one side; a new worker on the lighter. */
		side[i] = j < i ? side[j] : rows[0] <= rows[1] ? 0 : 1;
		rows[side[i]] += ops[i]->u.result.n;
	}
	if (rows[0] + rows[1] < DB_LANE_MIN_ROWS || rows[0] == 0 || rows[1] == 0 || !db_connected(db))
		return list;
	for (size_t i = 0; i < n; i++) {
		ops[i]->next = NULL;
		ops[i]->err[0] = '\0';
		if (side[i])
			lane_ops[n_lane++] = ops[i];
		else
			mine[n_mine++] = ops[i];
	}
	pthread_mutex_lock(&lane->mu);
	lane->active_pid = PQbackendPID(db->conn);
	lane->lane_pending += n_lane;
	for (size_t i = 0; i < n_lane; i++) {
		if (lane->in_tail)
			lane->in_tail->next = lane_ops[i];
		else
			lane->in_head = lane_ops[i];
		lane->in_tail = lane_ops[i];
	}
	pthread_cond_signal(&lane->cond);
	pthread_mutex_unlock(&lane->mu);
	atomic_fetch_add(&db->lane_splits, 1);

	db_run_group(db, mine, n_mine);

	pthread_mutex_lock(&lane->mu);
	while (lane->lane_pending > 0)
		pthread_cond_wait(&lane->lane_cond, &lane->mu);
	pthread_mutex_unlock(&lane->mu);

	/* The lane's failures again here, on this connection (one refused
	 * for its data is refused again, once more). */
	struct db_op *again[DB_BATCH_MAX];
	size_t n_again = 0;
	for (size_t i = 0; i < n_lane; i++)
		if (lane_ops[i]->rc < 0)
			again[n_again++] = lane_ops[i];
	if (n_again > 0 && db_connected(db)) {
		atomic_fetch_add(&db->lane_retries, 1);
		log_warn("%zu result stores failed on the second connection (%s): stored on the first",
			 n_again, again[0]->err);
		for (size_t i = 0; i < n_again; i++) {
			again[i]->rc = 0;
			again[i]->err[0] = '\0';
		}
		db_run_group(db, again, n_again);
	}
	/* Also after a retry: the lane's stores that did commit ran beside
	 * this thread's. */
	lanes_finish_jobs(db, ops, n, mine, n_mine, lane_ops, n_lane);
	if (!db_connected(db))
		atomic_store(&db->healthy, false);
	db_ops_complete(db, ops, n);
	return rest;
}
