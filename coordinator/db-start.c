/* SPDX-License-Identifier: MIT
 *
 * The database connection and the start operation (see db.h): connecting and
 * reconnecting with backoff, waiting to become the active coordinator, the
 * numbered migrations, the model registry sync and the recovery of live jobs,
 * tasks, drains, quarantines and tokens.  Runs on the database thread only.
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
#include "embedded.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* ---- connection ---- */

bool db_connected(struct db *db)
{
	return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

/* Connects when needed, with backoff between failed attempts.  Returns 0
 * or -ENOTCONN with the reason in op->err. */
int db_ensure_connected(struct db *db, struct db_op *op)
{
	if (db_connected(db))
		return 0;
	if (hf_mono_ms() < db->next_connect_ms) {
		op_error(op, "database unavailable: reconnecting");
		return -ENOTCONN;
	}
	if (db->conn)
		PQfinish(db->conn);
	db_prepared_reset(db);
	/* Named in pg_stat_activity unless the conninfo names it: which of the
	 * coordinator's connections a backend serves. */
	const char *keys[] = { "dbname", "fallback_application_name", NULL };
	const char *values[] = { db->conninfo, db->app_name, NULL };
	db->conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		char msg[400];
		hf_strlcpy(msg, PQerrorMessage(db->conn), sizeof(msg));
		first_line(msg);
		op_error(op, "could not connect to the database: %s", msg);
		if (atomic_exchange(&db->healthy, false) || db->backoff_ms == 0)
			log_warn("%s", op->err);
		db->backoff_ms = db->backoff_ms ? db->backoff_ms * 2 : 100;
		if (db->backoff_ms > 5000)
			db->backoff_ms = 5000;
		db->next_connect_ms = hf_mono_ms() + db->backoff_ms;
		return -ENOTCONN;
	}
	PQsetNoticeProcessor(db->conn, NULL, NULL);
	PQclear(PQexec(db->conn, "SET client_min_messages = warning"));
	if (db->active) {
		/* A new session: the active lock went with the old one.  If a standby
		 * took it meanwhile, this coordinator must not go on. */
		PGresult *res = PQexec(db->conn, "SELECT pg_try_advisory_lock(" DB_ACTIVE_LOCK ")");
		bool got = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (!got) {
			op_error(op, "another coordinator became active while the database connection was lost");
			atomic_store(&db->lost_active, true);
			PQfinish(db->conn);
			db->conn = NULL;
			db->next_connect_ms = hf_mono_ms() + 1000;
			return -ENOTCONN;
		}
	}
	atomic_store(&db->backend_pid, PQbackendPID(db->conn));
	if (!atomic_exchange(&db->healthy, true))
		log_info("connected to the database");
	db->backoff_ms = 0;
	if (db->warmed)
		db_warm_again(db);
	return 0;
}

/* ---- start: migrations, registry, recovery ---- */

int db_migrate(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	int r, max_known = 0;

	r = db_cmd(db, op,
		   "CREATE TABLE IF NOT EXISTS schema_migrations ("
		   " version integer PRIMARY KEY, name text NOT NULL,"
		   " applied_at timestamptz NOT NULL DEFAULT now())");
	if (r < 0)
		return r;
	r = db_exec(db, op, "SELECT pg_advisory_lock(" "1751543297" ")", NULL, PGRES_TUPLES_OK, NULL);
	if (r < 0)
		return r;

	for (size_t i = 0; i < hf_embedded_n_migrations; i++) {
		const struct hf_embedded_file *m = &hf_embedded_migrations[i];
		int version = atoi(m->name);
		struct db_params p;

		if (version > max_known)
			max_known = version;
		db_params_init(&p);
		db_param_i32(&p, version);
		r = db_exec(db, op, "SELECT 1 FROM schema_migrations WHERE version = $1::int", &p,
			    PGRES_TUPLES_OK, &res);
		db_params_fini(&p);
		if (r < 0)
			goto out;
		int applied = PQntuples(res) > 0;
		PQclear(res);
		res = NULL;
		if (applied)
			continue;

		log_info("applying database migration %s", m->name);
		r = db_cmd(db, op, "BEGIN");
		if (r == 0)
			r = db_cmd(db, op, m->text);
		if (r == 0) {
			db_params_init(&p);
			db_param_i32(&p, version);
			db_param_text(&p, m->name);
			r = db_exec(db, op, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
				    &p, PGRES_COMMAND_OK, NULL);
			db_params_fini(&p);
		}
		if (r == 0)
			r = db_cmd(db, op, "COMMIT");
		if (r < 0) {
			char why[512];
			hf_strlcpy(why, op->err, sizeof(why));
			PQclear(PQexec(db->conn, "ROLLBACK"));
			op_error(op, "could not apply migration %s: %s", m->name, why);
			goto out;
		}
	}

	r = db_exec(db, op, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL,
		    PGRES_TUPLES_OK, &res);
	if (r == 0) {
		int have = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		res = NULL;
		if (have > max_known) {
			op_error(op,
				 "the database schema is at version %d, newer than this coordinator knows (%d): upgrade hf-coordinator",
				 have, max_known);
			r = -EPROTO;
		}
	}
out:
	PQclear(res);
	PQclear(PQexec(db->conn, "SELECT pg_advisory_unlock(1751543297)"));
	return r;
}

static int registry_sync(struct db *db, struct db_op *op, const struct registry *reg)
{
	struct db_params p;
	struct db_array col[7];
	int r;

	db_params_init(&p);
	for (int c = 0; c < 7; c++)
		db_array_init(&col[c], &p);
	for (size_t i = 0; i < reg->n; i++) {
		const struct reg_model *m = &reg->models[i];
		db_array_text(&col[0], m->model_type);
		db_array_text(&col[1], m->hf_id);
		db_array_text(&col[2], m->family);
		db_array_text(&col[3], m->task);
		db_array_text(&col[4], m->modality);
		db_array_text(&col[5], m->size_class);
		db_array_text(&col[6], m->notes);
	}
	for (int c = 0; c < 7; c++)
		db_param_array(&p, &col[c]);
	r = db_exec(db, op,
		    "INSERT INTO models (model_type, hf_id, family, task, modality, size_class, notes)"
		    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
		    " $6::text[], $7::text[])"
		    " ON CONFLICT (model_type) DO UPDATE SET hf_id = EXCLUDED.hf_id,"
		    " family = EXCLUDED.family, task = EXCLUDED.task, modality = EXCLUDED.modality,"
		    " size_class = EXCLUDED.size_class, notes = EXCLUDED.notes, active = true,"
		    " updated_at = now()",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	if (r < 0)
		return r;
	/* Every row of the registry was just written at now(): the others left it. */
	return db_cmd(db, op, "UPDATE models SET active = false WHERE active AND updated_at <> now()");
}

/* Reads the rows of a LIVE_TASK_COLUMNS query into a malloc'd array. */
int live_tasks_from(PGresult *res, struct db_live_task **ret, size_t *ret_n)
{
	int n = PQntuples(res);
	struct db_live_task *v = calloc(n ? (size_t)n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct db_live_task *t = &v[i];
		t->id = get_u64(res, i, 0);
		t->job_id = get_u64(res, i, 1);
		t->attempt = (uint32_t)atoi(PQgetvalue(res, i, 2));
		hf_strlcpy(t->model_type, PQgetvalue(res, i, 3), sizeof(t->model_type));
		hf_backend_parse(PQgetvalue(res, i, 4), &t->backend);
		hf_kind_parse(PQgetvalue(res, i, 5), &t->kind);
		t->batch_size = (uint32_t)atoi(PQgetvalue(res, i, 6));
		t->seq_len = (uint32_t)atoi(PQgetvalue(res, i, 7));
		t->iterations = (uint32_t)atoi(PQgetvalue(res, i, 8));
		t->warmup = (uint32_t)atoi(PQgetvalue(res, i, 9));
		t->timeout_s = (uint32_t)atoi(PQgetvalue(res, i, 10));
		hf_strlcpy(t->precision, PQgetvalue(res, i, 11), sizeof(t->precision));
		t->leased = strcmp(PQgetvalue(res, i, 12), "leased") == 0;
		hf_strlcpy(t->worker_id, PQgetvalue(res, i, 13), sizeof(t->worker_id));
		const char *dv = PQgetvalue(res, i, 14);
		while (t->leased && *dv && t->n_devices < 16) {
			char *end;
			t->devices[t->n_devices++] = (uint32_t)strtoul(dv, &end, 10);
			dv = *end == ',' ? end + 1 : end + strlen(end);
		}
		hf_strlcpy(t->mode, PQgetvalue(res, i, 15), sizeof(t->mode));
	}
	*ret = v;
	*ret_n = (size_t)n;
	return 0;
}

static int recover(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	int r;

	/* The tasks of every job whose submit a coordinator answered before
	 * it wrote them all (db-plans.c), so that they are loaded below. */
	r = plans_write_all(db, op);
	if (r < 0)
		return r;
	/* A job whose tasks all have outcomes is done, whatever was recorded. */
	r = db_cmd(db, op,
		   "UPDATE jobs j SET state = 'done', finished_at = now() WHERE state = 'running'"
		   " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id"
		   " AND t.state IN ('queued', 'leased')) AND NOT " DB_JOB_UNWRITTEN("j.id"));
	if (r < 0)
		return r;
	r = db_exec(db, op, "SELECT id, priority, requirements::text, max_running, max_retries, submitter,"
		    " flaky_reruns FROM jobs WHERE state = 'running' ORDER BY id",
		    NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	int n = PQntuples(res);
	op->u.start.jobs = calloc(n ? (size_t)n : 1, sizeof(*op->u.start.jobs));
	if (!op->u.start.jobs) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		op->u.start.jobs[i].id = get_u64(res, i, 0);
		op->u.start.jobs[i].priority = atoi(PQgetvalue(res, i, 1));
		op->u.start.jobs[i].requirements = strdup(PQgetvalue(res, i, 2));
		op->u.start.jobs[i].max_running = (uint32_t)atoi(PQgetvalue(res, i, 3));
		op->u.start.jobs[i].max_retries = (uint32_t)atoi(PQgetvalue(res, i, 4));
		hf_strlcpy(op->u.start.jobs[i].submitter, PQgetvalue(res, i, 5),
			   sizeof(op->u.start.jobs[i].submitter));
		op->u.start.jobs[i].flaky_reruns = (uint32_t)atoi(PQgetvalue(res, i, 6));
	}
	op->u.start.n_jobs = (size_t)n;
	PQclear(res);

	r = db_exec(db, op,
		    "SELECT " LIVE_TASK_COLUMNS " FROM tasks t JOIN jobs j ON j.id = t.job_id"
		    " WHERE t.state IN ('queued', 'leased') AND j.state = 'running' ORDER BY t.id",
		    NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	r = live_tasks_from(res, &op->u.start.tasks, &op->u.start.n_tasks);
	PQclear(res);
	if (r < 0)
		return r;

	/* Cancelled jobs with queued tasks: a cancel the coordinator stopped
	 * in (db-cancel.c); their tasks are not loaded above, and the slices
	 * go on (cancel-feed.c). */
	r = db_exec(db, op,
		    "SELECT j.id FROM jobs j WHERE j.state = 'cancelled' AND EXISTS"
		    " (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued') ORDER BY j.id",
		    NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	op->u.start.cancelling = calloc((size_t)n + 1, sizeof(*op->u.start.cancelling));
	if (!op->u.start.cancelling) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		op->u.start.cancelling[i] = get_u64(res, i, 0);
	op->u.start.n_cancelling = (size_t)n;
	PQclear(res);

	/* The drains operators asked for, and who: the audit row of the drain
	 * (written in its transaction, so at the same now(); else the latest
	 * drain of that target; the target is db-auth.c's audit_target's). */
	r = db_exec(db, op,
		    "SELECT d.worker_id, d.backend, d.idx, extract(epoch FROM d.since),"
		    " coalesce((SELECT a.actor FROM audit a WHERE a.action = 'drain' AND a.target ="
		    " CASE WHEN d.idx < 0 THEN 'worker ' || d.worker_id"
		    " ELSE 'device ' || d.worker_id || '/' || d.backend || ':' || d.idx END"
		    " ORDER BY a.at = d.since DESC, a.id DESC LIMIT 1), '')"
		    " FROM drains d", NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	op->u.start.drains = calloc((size_t)n + 1, sizeof(*op->u.start.drains));
	if (!op->u.start.drains) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct db_drain *d = &op->u.start.drains[i];
		hf_strlcpy(d->worker_id, PQgetvalue(res, i, 0), sizeof(d->worker_id));
		Hf__Backend b;
		d->backend = hf_backend_parse(PQgetvalue(res, i, 1), &b) == 0 ? (int)b : -1;
		d->index = atoi(PQgetvalue(res, i, 2));
		d->since = atof(PQgetvalue(res, i, 3));
		hf_strlcpy(d->by, PQgetvalue(res, i, 4), sizeof(d->by));
	}
	op->u.start.n_drains = (size_t)n;
	PQclear(res);

	/* The quarantined devices. */
	r = db_exec(db, op, "SELECT worker_id, backend, idx, reason FROM device_quarantine", NULL,
		    PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	op->u.start.quarantines = calloc((size_t)n + 1, sizeof(*op->u.start.quarantines));
	if (!op->u.start.quarantines) {
		PQclear(res);
		return -ENOMEM;
	}
	size_t nq = 0;
	for (int i = 0; i < n; i++) {
		struct db_quarantine *q = &op->u.start.quarantines[nq];
		Hf__Backend b;
		if (hf_backend_parse(PQgetvalue(res, i, 1), &b) < 0)
			continue;
		hf_strlcpy(q->worker_id, PQgetvalue(res, i, 0), sizeof(q->worker_id));
		q->backend = (int)b;
		q->index = (uint32_t)atoi(PQgetvalue(res, i, 2));
		q->quarantined = true;
		hf_strlcpy(q->reason, PQgetvalue(res, i, 3), sizeof(q->reason));
		nq++;
	}
	op->u.start.n_quarantines = nq;
	PQclear(res);
	return 0;
}

/* Waits until this coordinator holds the active lock (a standby waits here
 * until the active one's session ends). */
static int become_active(struct db *db, struct db_op *op)
{
	bool said = false;

	for (;;) {
		PGresult *res = NULL;
		int r = db_exec(db, op, "SELECT pg_try_advisory_lock(" DB_ACTIVE_LOCK ")", NULL,
				PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		bool got = PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (got) {
			/* A job the previous coordinator's lane checked it could
			 * write, while its main connection still held the lock, may
			 * be committing: wait for it, so recovery loads it. */
			r = db_exec(db, op, "SELECT pg_advisory_lock(" DB_JOB_LANE_LOCK ")", NULL,
				    PGRES_TUPLES_OK, NULL);
			if (r == 0)
				r = db_exec(db, op, "SELECT pg_advisory_unlock(" DB_JOB_LANE_LOCK ")", NULL,
					    PGRES_TUPLES_OK, NULL);
			if (r < 0)
				return r;
			db->active = true;
			atomic_store(&db->standby, false);
			if (said)
				log_info("the active coordinator is gone: taking over");
			return 0;
		}
		if (!said)
			log_info("standby: another coordinator is active on this database; waiting to take over");
		said = true;
		atomic_store(&db->standby, true);
		db_alive(db);
		pthread_mutex_lock(&db->mu);
		bool stop = db->stopping;
		pthread_mutex_unlock(&db->mu);
		if (stop) {
			op_error(op, "stopped while standing by");
			return -ECANCELED;
		}
		struct timespec ts = { 0, 250 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

void db_start_result_free(struct db_op *op)
{
	for (size_t i = 0; op->u.start.jobs && i < op->u.start.n_jobs; i++)
		free(op->u.start.jobs[i].requirements);
	free(op->u.start.jobs);
	free(op->u.start.tasks);
	free(op->u.start.drains);
	free(op->u.start.quarantines);
	free(op->u.start.tokens);
	free(op->u.start.cancelling);
	op->u.start.jobs = NULL;
	op->u.start.tasks = NULL;
	op->u.start.drains = NULL;
	op->u.start.quarantines = NULL;
	op->u.start.tokens = NULL;
	op->u.start.cancelling = NULL;
	op->u.start.n_jobs = op->u.start.n_tasks = op->u.start.n_drains = 0;
	op->u.start.n_quarantines = op->u.start.n_tokens = op->u.start.n_cancelling = 0;
}

int run_start(struct db *db, struct db_op *op)
{
	int r = become_active(db, op);
	if (r < 0)
		return r;
	r = db_migrate(db, op);
	if (r < 0)
		return r;
	r = db_cmd(db, op, "BEGIN");
	if (r == 0)
		r = registry_sync(db, op, op->u.start.reg);
	if (r == 0)
		r = recover(db, op);
	if (r == 0)
		r = db_tokens_load(db, op);
	if (r == 0)
		r = db_cmd(db, op, "COMMIT");
	return r;
}
