/* SPDX-License-Identifier: MIT
 *
 * Warming a connection (DB_OP_WARM): the hot statements of a new
 * connection run once with no rows, in a transaction rolled back, before
 * any request needs them.  The first time a PostgreSQL session runs a
 * statement it loads the catalog entries of every table, index and
 * function the statement touches, compiles the trigger functions it fires
 * (statement triggers fire for no rows too) and plans it; each is done once
 * per session.  Without this the first submit after a coordinator starts
 * paid all of it, and a new connection of the job lane with it: submit ->
 * first lease 52 ms for the first job against 5 to 8 ms for the next ones
 * (bench/run.py latency; docs/performance-history.md, "A new connection
 * warmed").  Nothing is written: a statement of no rows changes no row, and
 * the transaction is rolled back all the same.  The plans made here are
 * kept.  A generic plan does not depend on its parameters, so the grant's
 * and the result's own plans are those any first statement makes; the
 * trigger functions' statements are planned for transition tables of no
 * rows, which the planner takes for one row, as it took the few rows of
 * the first result statement before; either way they are made again at
 * the connection's first re-plan (DB_GENERIC_REPLAN), and migration 017's
 * triggers cost the same whatever the first statement held
 * (docs/performance-history.md, "Statements whose cost grew with their
 * square").
 *
 * The main connection runs the lease grant and the result store (with the
 * statement that finishes jobs) as one pipeline, as the group commit sends
 * them; the job lane runs its task insert and its check that the main
 * connection is active.  The coordinator asks for the warm-up once it is
 * active (main.c); a connection made again afterwards (a lost connection,
 * a restarted PostgreSQL) is warmed by db_ensure_connected through
 * db_warm_again.  A warm-up that fails is logged and changes nothing: the
 * statements then warm on first use, as without it.
 *
 * Database thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"

/* The lease grant and the result store with no rows, in one pipeline. */
static int warm_main(struct db *db, struct db_op *op)
{
	struct db_op grant = { .kind = DB_OP_LEASE_GRANT }, store = { .kind = DB_OP_RESULT_STORE };
	struct db_op *g = &grant, *s = &store;
	struct db_merged mg = { .ops = &g, .n_ops = 1, .warm = true };
	struct db_merged ms = { .ops = &s, .n_ops = 1, .warm = true };
	int r = db_pipe_begin(db, op);

	if (r < 0)
		return r;
	r = db_pipe_cmd(db, op, "BEGIN");
	if (r == 0)
		r = db_pipe_cmd(db, op, "SET LOCAL plan_cache_mode = force_generic_plan");
	db->generic_txn = true;
	if (r == 0)
		r = lease_grant_send(db, &mg);
	if (r == 0)
		r = result_store_send(db, &ms);
	if (r == 0)
		r = db_pipe_cmd(db, op, "ROLLBACK");
	if (r == 0)
		r = db_pipe_sync(db, op);
	if (r == 0)
		r = db_pipe_read_cmd(db, op); /* BEGIN */
	if (r == 0)
		r = db_pipe_read_cmd(db, op); /* SET LOCAL */
	if (r == 0)
		r = lease_grant_read(db, &mg);
	if (r == 0)
		r = result_store_read(db, &ms);
	if (r == 0)
		r = db_pipe_read_cmd(db, op); /* ROLLBACK */
	r = db_pipe_end(db, op, r);
	db->generic_txn = false;
	db_merged_fini(&mg);
	db_merged_fini(&ms);
	if (r < 0 && !op->err[0])
		snprintf(op->err, sizeof(op->err), "%s", grant.err[0] ? grant.err : store.err);
	return r;
}

static int warm_job_lane(struct db *db, struct db_op *op)
{
	int r = db_cmd(db, op, "BEGIN");

	if (r == 0)
		r = job_lane_warm(db, op, op->u.warm.active_pid);
	if (db_connected(db))
		PQclear(PQexec(db->conn, "ROLLBACK"));
	return r;
}

int run_warm(struct db *db, struct db_op *op)
{
	int r = op->u.warm.job_lane ? warm_job_lane(db, op) : warm_main(db, op);

	db->warm = *op;
	db->warm.next = NULL;
	db->warmed = true;
	if (r < 0)
		log_debug("warming the database connection failed (its statements warm on first use): %s",
			  op->err);
	return r;
}

void db_warm_again(struct db *db)
{
	struct db_op op = db->warm;

	op.err[0] = '\0';
	run_warm(db, &op);
}
