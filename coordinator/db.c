/* SPDX-License-Identifier: MIT
 *
 * The database layer (see db.h): the database thread, group commit, the
 * numbered migrations, and every SQL statement hfleet runs.  libpq's errors
 * are translated here and nowhere else.
 */
#include "db.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "embedded.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* Serialises schema migrations between coordinators sharing a database. */
#define DB_MIGRATION_LOCK 0x68666c01
/* Held, for as long as its connection lives, by the one active coordinator;
 * a standby waits for it. */
#define DB_ACTIVE_LOCK "1751543298"

/* At most this many operations share one transaction. */
#define DB_BATCH_MAX 512

/* Rows per multi-row INSERT when a job is expanded. */
#define DB_TASK_CHUNK 1000

struct db {
	uv_loop_t *loop;
	char *conninfo;
	PGconn *conn;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct db_op *in_head, *in_tail;   /* queued by the loop; under mu */
	struct db_op *out_head, *out_tail; /* done, for the loop; under mu */
	bool stopping;                     /* under mu */
	uv_async_t async;
	atomic_bool healthy;
	bool active;                       /* holds the active-coordinator lock */
	atomic_bool lost_active;           /* reconnected but another coordinator took over */
	int64_t next_connect_ms;
	int backoff_ms;
};

/* ---- statement helpers ---- */

struct params {
	const char **v;
	char **owned;
	size_t n, cap;
	bool oom;
};

static void params_init(struct params *p)
{
	memset(p, 0, sizeof(*p));
}

static void params_fini(struct params *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->owned[i]);
	free(p->v);
	free(p->owned);
	memset(p, 0, sizeof(*p));
}

/* Appends a parameter and "$N" to sql.  s is copied. */
static void param(struct params *p, struct hf_buf *sql, const char *s)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		const char **v = realloc(p->v, cap * sizeof(*v));
		char **o = v ? realloc(p->owned, cap * sizeof(*o)) : NULL;
		if (v)
			p->v = v;
		if (!o) {
			p->oom = true;
			return;
		}
		p->owned = o;
		p->cap = cap;
	}
	char *copy = s ? strdup(s) : NULL;
	if (s && !copy) {
		p->oom = true;
		return;
	}
	p->owned[p->n] = copy;
	p->v[p->n] = copy;
	p->n++;
	hf_buf_printf(sql, "$%zu", p->n);
}

static void paramf(struct params *p, struct hf_buf *sql, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void paramf(struct params *p, struct hf_buf *sql, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	param(p, sql, tmp);
}

static void op_error(struct db_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void op_error(struct db_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
}

static void first_line(char *s)
{
	char *nl = strchr(s, '\n');
	if (nl)
		*nl = '\0';
}

/* Runs sql with params; want is the expected status.  Returns 0 with
 * *ret_res (when asked for; PQclear it), -ENOTCONN when the connection is
 * gone, -EIO when the statement failed, -ENOMEM. */
static int db_exec(struct db *db, struct db_op *op, const char *sql, const struct params *p,
		   ExecStatusType want, PGresult **ret_res)
{
	PGresult *res;
	char msg[400];

	if (p && p->oom) {
		op_error(op, "out of memory building a statement");
		return -ENOMEM;
	}
	if (p && p->n)
		res = PQexecParams(db->conn, sql, (int)p->n, NULL, p->v, NULL, NULL, 0);
	else
		res = PQexec(db->conn, sql);
	if (res && PQresultStatus(res) == want) {
		if (ret_res)
			*ret_res = res;
		else
			PQclear(res);
		return 0;
	}
	hf_strlcpy(msg, res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn), sizeof(msg));
	if (!msg[0])
		hf_strlcpy(msg, PQerrorMessage(db->conn), sizeof(msg));
	first_line(msg);
	PQclear(res);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		op_error(op, "lost the database connection: %s", msg);
		return -ENOTCONN;
	}
	op_error(op, "statement failed: %s", msg);
	return -EIO;
}

static int db_cmd(struct db *db, struct db_op *op, const char *sql)
{
	return db_exec(db, op, sql, NULL, PGRES_COMMAND_OK, NULL);
}

static uint64_t get_u64(PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

static double get_double(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtod(PQgetvalue(res, row, col), NULL);
}

/* ---- connection ---- */

static bool db_connected(struct db *db)
{
	return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

/* Connects when needed, with backoff between failed attempts.  Returns 0
 * or -ENOTCONN with the reason in op->err. */
static int db_ensure_connected(struct db *db, struct db_op *op)
{
	if (db_connected(db))
		return 0;
	if (hf_mono_ms() < db->next_connect_ms) {
		op_error(op, "database unavailable: reconnecting");
		return -ENOTCONN;
	}
	if (db->conn)
		PQfinish(db->conn);
	db->conn = PQconnectdb(db->conninfo);
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
	if (!atomic_exchange(&db->healthy, true))
		log_info("connected to the database");
	db->backoff_ms = 0;
	return 0;
}

/* ---- start: migrations, registry, recovery ---- */

static int migrate(struct db *db, struct db_op *op)
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
		char vtext[16];
		struct params p;
		struct hf_buf sql;

		if (version > max_known)
			max_known = version;
		snprintf(vtext, sizeof(vtext), "%d", version);
		params_init(&p);
		hf_buf_init(&sql);
		hf_buf_puts(&sql, "SELECT 1 FROM schema_migrations WHERE version = ");
		param(&p, &sql, vtext);
		r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
		params_fini(&p);
		hf_buf_fini(&sql);
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
			params_init(&p);
			hf_buf_init(&sql);
			hf_buf_puts(&sql, "INSERT INTO schema_migrations (version, name) VALUES (");
			param(&p, &sql, vtext);
			hf_buf_puts(&sql, ", ");
			param(&p, &sql, m->name);
			hf_buf_puts(&sql, ")");
			r = db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
			params_fini(&p);
			hf_buf_fini(&sql);
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
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "INSERT INTO models (model_type, hf_id, family, task, modality, size_class, notes) VALUES ");
	for (size_t i = 0; i < reg->n; i++) {
		const struct reg_model *m = &reg->models[i];
		hf_buf_puts(&sql, i ? ",(" : "(");
		param(&p, &sql, m->model_type);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, m->hf_id);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, m->family);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, m->task);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, m->modality);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, m->size_class);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, m->notes);
		hf_buf_puts(&sql, ")");
	}
	hf_buf_puts(&sql, " ON CONFLICT (model_type) DO UPDATE SET hf_id = EXCLUDED.hf_id,"
			  " family = EXCLUDED.family, task = EXCLUDED.task, modality = EXCLUDED.modality,"
			  " size_class = EXCLUDED.size_class, notes = EXCLUDED.notes, active = true,"
			  " updated_at = now()");
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	/* Every row of the registry was just written at now(): the others left it. */
	return db_cmd(db, op, "UPDATE models SET active = false WHERE active AND updated_at <> now()");
}

/* The columns live_tasks_from reads, in its order. */
#define LIVE_TASK_COLUMNS \
	"t.id, t.job_id, t.attempt, t.model_type, t.backend, t.kind, t.batch_size," \
	" t.seq_len, t.iterations, t.warmup, t.timeout_s, t.precision, t.state," \
	" coalesce(t.worker_id, '')," \
	" array_to_string(coalesce(t.device_indices, ARRAY[t.device_index]), ',')"

/* Reads the rows of a LIVE_TASK_COLUMNS query into a malloc'd array. */
static int live_tasks_from(PGresult *res, struct db_live_task **ret, size_t *ret_n)
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
	}
	*ret = v;
	*ret_n = (size_t)n;
	return 0;
}

static int recover(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	int r;

	/* A job whose tasks all have outcomes is done, whatever was recorded. */
	r = db_cmd(db, op,
		   "UPDATE jobs j SET state = 'done', finished_at = now() WHERE state = 'running'"
		   " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id"
		   " AND t.state IN ('queued', 'leased'))");
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

	/* The drains operators asked for. */
	r = db_exec(db, op, "SELECT worker_id, backend, idx FROM drains", NULL, PGRES_TUPLES_OK, &res);
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
			db->active = true;
			if (said)
				log_info("the active coordinator is gone: taking over");
			return 0;
		}
		if (!said)
			log_info("standby: another coordinator is active on this database; waiting to take over");
		said = true;
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

static int run_start(struct db *db, struct db_op *op)
{
	int r = become_active(db, op);
	if (r < 0)
		return r;
	r = migrate(db, op);
	if (r < 0)
		return r;
	r = db_cmd(db, op, "BEGIN");
	if (r == 0)
		r = registry_sync(db, op, op->u.start.reg);
	if (r == 0)
		r = recover(db, op);
	if (r == 0)
		r = db_cmd(db, op, "COMMIT");
	return r;
}

/* ---- writes ---- */

/* A submit whose request id this submitter used before: the same request
 * (its answer was lost and the client asked again) gets the job already
 * made; another request under the same id is refused. */
static int job_create_repeated(struct db *db, struct db_op *op)
{
	const struct job_plan *plan = op->u.job_create.plan;
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "SELECT id, task_count, (name = ");
	param(&p, &sql, plan->name);
	hf_buf_puts(&sql, " AND spec = ");
	param(&p, &sql, plan->spec_json);
	hf_buf_puts(&sql, "::jsonb AND requirements = ");
	param(&p, &sql, op->u.job_create.requirements ? op->u.job_create.requirements : "{}");
	hf_buf_printf(&sql, "::jsonb AND priority = %d AND max_running = %u AND max_retries = %u"
			    " AND flaky_reruns = %u) FROM jobs WHERE submitter = ",
		      plan->priority, plan->max_running, plan->max_retries, plan->flaky_reruns);
	param(&p, &sql, plan->submitter);
	hf_buf_puts(&sql, " AND request_id = ");
	param(&p, &sql, plan->request_id);
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	if (PQntuples(res) == 1) {
		uint64_t id = get_u64(res, 0, 0);
		if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
			op->u.job_create.existing = true;
			op->u.job_create.job_id = id;
			op->u.job_create.task_count = (uint32_t)get_u64(res, 0, 1);
		} else {
			op->u.job_create.conflict = true;
			op_error(op, "request id \"%s\" of %s already made job %" PRIu64
				 " from a different request: choose a new request id, or repeat that "
				 "request exactly", plan->request_id, plan->submitter, id);
			r = -EEXIST;
		}
	}
	PQclear(res);
	return r;
}

static int run_job_create(struct db *db, struct db_op *op)
{
	const struct job_plan *plan = op->u.job_create.plan;
	const struct registry *reg = op->u.job_create.reg;
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	free(op->u.job_create.task_ids);
	op->u.job_create.task_ids = NULL;
	op->u.job_create.existing = op->u.job_create.conflict = false;
	op->u.job_create.task_count = (uint32_t)plan->n_tasks;
	if (plan->request_id) {
		r = job_create_repeated(db, op);
		if (r < 0 || op->u.job_create.existing)
			return r;
	}
	op->u.job_create.task_ids = calloc(plan->n_tasks, sizeof(uint64_t));
	if (!op->u.job_create.task_ids)
		return -ENOMEM;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "INSERT INTO jobs (name, submitter, priority, spec, requirements, task_count,"
			  " max_running, max_retries, flaky_reruns, request_id) VALUES (");
	param(&p, &sql, plan->name);
	hf_buf_puts(&sql, ", ");
	param(&p, &sql, plan->submitter);
	hf_buf_puts(&sql, ", ");
	paramf(&p, &sql, "%d", plan->priority);
	hf_buf_puts(&sql, ", ");
	param(&p, &sql, plan->spec_json);
	hf_buf_puts(&sql, "::jsonb, ");
	param(&p, &sql, op->u.job_create.requirements ? op->u.job_create.requirements : "{}");
	hf_buf_printf(&sql, "::jsonb, %zu, %u, %u, %u, ", plan->n_tasks, plan->max_running,
		      plan->max_retries, plan->flaky_reruns);
	param(&p, &sql, plan->request_id);
	hf_buf_puts(&sql, ") RETURNING id");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	op->u.job_create.job_id = get_u64(res, 0, 0);
	PQclear(res);

	/* Ids are drawn first so that each planned task knows its id. */
	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "SELECT nextval('tasks_id_seq') FROM generate_series(1, ");
	paramf(&p, &sql, "%zu", plan->n_tasks);
	hf_buf_puts(&sql, "::int) ORDER BY 1");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	if ((size_t)PQntuples(res) != plan->n_tasks) {
		PQclear(res);
		op_error(op, "could not allocate task ids");
		return -EIO;
	}
	for (size_t i = 0; i < plan->n_tasks; i++)
		op->u.job_create.task_ids[i] = get_u64(res, (int)i, 0);
	PQclear(res);

	for (size_t start = 0; start < plan->n_tasks; start += DB_TASK_CHUNK) {
		size_t end = start + DB_TASK_CHUNK < plan->n_tasks ? start + DB_TASK_CHUNK : plan->n_tasks;
		params_init(&p);
		hf_buf_init(&sql);
		hf_buf_puts(&sql, "INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size,"
				  " seq_len, precision, iterations, warmup, timeout_s) VALUES ");
		for (size_t i = start; i < end; i++) {
			const struct task_spec *t = &plan->tasks[i];
			hf_buf_printf(&sql, "%s(%" PRIu64 ",%" PRIu64 ",", i > start ? "," : "",
				      op->u.job_create.task_ids[i], op->u.job_create.job_id);
			param(&p, &sql, reg->models[t->model].model_type);
			hf_buf_printf(&sql, ",'%s','%s',%u,%u,'%s',%u,%u,%u)", hf_backend_name(t->backend),
				      hf_kind_name(t->kind), t->batch_size, t->seq_len, t->precision,
				      plan->iterations, plan->warmup, plan->timeout_s);
		}
		r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
		params_fini(&p);
		hf_buf_fini(&sql);
		if (r < 0)
			return r;
	}
	return 0;
}

static int run_lease_grant(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "WITH u (id, attempt, worker, devs) AS (VALUES ");
	for (size_t i = 0; i < op->u.lease.n; i++) {
		struct db_lease *l = &op->u.lease.v[i];
		l->granted = false;
		hf_buf_printf(&sql, "%s(%" PRIu64 "::bigint,%u::int,", i ? "," : "", l->task_id, l->attempt);
		param(&p, &sql, l->worker_id);
		hf_buf_puts(&sql, "::text,'{");
		for (uint8_t d = 0; d < l->n_devices; d++)
			hf_buf_printf(&sql, "%s%u", d ? "," : "", l->devices[d]);
		hf_buf_puts(&sql, "}'::int[])");
	}
	hf_buf_puts(&sql, "), g AS (UPDATE tasks t SET state = 'leased', attempt = u.attempt,"
			  " worker_id = u.worker, device_index = u.devs[1], device_indices = u.devs FROM u"
			  " WHERE t.id = u.id AND t.state = 'queued' AND t.attempt < u.attempt"
			  " RETURNING t.id, t.attempt, t.worker_id, t.device_index, t.device_indices),"
			  " a AS (INSERT INTO attempts (task_id, attempt, worker_id, device_index, device_indices)"
			  " SELECT id, attempt, worker_id, device_index, device_indices FROM g)"
			  " SELECT id FROM g");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t id = get_u64(res, i, 0);
		for (size_t j = 0; j < op->u.lease.n; j++)
			if (op->u.lease.v[j].task_id == id)
				op->u.lease.v[j].granted = true;
	}
	PQclear(res);
	return 0;
}

static int run_lease_expire(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct hf_buf sql;
	int r;

	hf_buf_init(&sql);
	hf_buf_puts(&sql, "WITH u (id, attempt, give_up) AS (VALUES ");
	for (size_t i = 0; i < op->u.expire.n; i++) {
		op->u.expire.v[i].final = false;
		hf_buf_printf(&sql, "%s(%" PRIu64 "::bigint,%u::int,%s)", i ? "," : "",
			      op->u.expire.v[i].task_id, op->u.expire.v[i].attempt,
			      op->u.expire.v[i].give_up ? "true" : "false");
	}
	/* Requeue, or give up with an error result that says why, so every
	 * final task still has the result that decided it. */
	hf_buf_puts(&sql, "), q AS (UPDATE tasks t SET state = 'queued', worker_id = NULL,"
			  " device_index = NULL, device_indices = NULL FROM u"
			  " WHERE t.id = u.id AND t.attempt = u.attempt"
			  " AND t.state = 'leased' AND NOT u.give_up RETURNING t.id),"
			  " g AS (INSERT INTO results (task_id, attempt, status, reason, worker_id, device_index,"
			  " stale, started_at, finished_at)"
			  " SELECT t.id, t.attempt, 'error', 'the lease was lost on ' || t.attempt ||"
			  " ' attempts: the worker running it stopped answering (last: \"' ||"
			  " coalesce(t.worker_id, '') || '\")', coalesce(t.worker_id, ''),"
			  " coalesce(t.device_index, 0), false, now(), now()"
			  " FROM tasks t JOIN u ON t.id = u.id AND t.attempt = u.attempt"
			  " WHERE t.state = 'leased' AND u.give_up"
			  " ON CONFLICT (task_id, attempt) DO NOTHING RETURNING id, task_id),"
			  " e AS (UPDATE tasks t SET state = 'error', finished_at = now(), result_id = g.id"
			  " FROM g WHERE t.id = g.task_id RETURNING t.job_id),"
			  " j AS (UPDATE jobs SET state = 'done', finished_at = now()"
			  " WHERE id IN (SELECT job_id FROM e) AND state = 'running' AND NOT EXISTS"
			  " (SELECT 1 FROM tasks t WHERE t.job_id = jobs.id AND t.state IN ('queued', 'leased')"
			  " AND t.id NOT IN (SELECT task_id FROM g))),"
			  " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'lease-expired'"
			  " FROM u WHERE a.task_id = u.id AND a.attempt = u.attempt AND a.ended_at IS NULL)"
			  " SELECT task_id FROM g UNION"
			  " SELECT t.id FROM tasks t JOIN u ON t.id = u.id"
			  " WHERE t.state NOT IN ('queued', 'leased')");
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, NULL, PGRES_TUPLES_OK, &res);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t id = get_u64(res, i, 0);
		for (size_t j = 0; j < op->u.expire.n; j++)
			if (op->u.expire.v[j].task_id == id)
				op->u.expire.v[j].final = true;
	}
	PQclear(res);
	return 0;
}

static int run_result_store(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	struct params p;
	struct hf_buf sql;
	int r;

	free(op->u.result.finished_jobs);
	op->u.result.finished_jobs = NULL;
	op->u.result.n_finished_jobs = 0;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "WITH i (task_id, attempt, status, reason, metrics, env, weights, log_excerpt,"
			  " worker_id, device_index, exit_code, started_at, finished_at, retry, flaky) AS (VALUES ");
	for (size_t k = 0; k < op->u.result.n; k++) {
		struct db_result *d = &op->u.result.v[k];
		const Hf__TaskResult *t = d->r;
		d->outcome = DB_RESULT_UNKNOWN;
		d->job_id = 0;
		hf_buf_printf(&sql, "%s(%" PRIu64 "::bigint,%u::int,'%s'::text,", k ? "," : "",
			      t->task_id, t->attempt, hf_status_name(t->status));
		param(&p, &sql, t->reason ? t->reason : "");
		hf_buf_puts(&sql, "::text,");
		param(&p, &sql, d->metrics_json);
		hf_buf_puts(&sql, "::jsonb,");
		param(&p, &sql, d->env_json);
		hf_buf_puts(&sql, "::jsonb,");
		param(&p, &sql, t->weights ? t->weights : "");
		hf_buf_puts(&sql, "::text,");
		param(&p, &sql, t->log_excerpt ? t->log_excerpt : "");
		hf_buf_puts(&sql, "::text,");
		param(&p, &sql, d->worker_id);
		hf_buf_printf(&sql, "::text,%u::int,%d::int,to_timestamp(%.6f),to_timestamp(%.6f),%s,%s)",
			      t->device_index, t->exit_code, t->started_at, t->finished_at,
			      d->retry ? "true" : "false", d->flaky ? "true" : "false");
	}
	hf_buf_puts(&sql,
		    "), ins AS (INSERT INTO results (task_id, attempt, status, reason, metrics, env,"
		    " weights, log_excerpt, worker_id, device_index, exit_code, started_at, finished_at, stale,"
		    " retried, flaky_rerun)"
		    " SELECT i.task_id, i.attempt, i.status, i.reason, i.metrics, i.env, i.weights,"
		    " i.log_excerpt, i.worker_id, i.device_index, i.exit_code, i.started_at, i.finished_at,"
		    " NOT (t.state = 'leased' AND t.attempt = i.attempt),"
		    " i.retry AND t.state = 'leased' AND t.attempt = i.attempt,"
		    " i.flaky AND i.retry AND t.state = 'leased' AND t.attempt = i.attempt"
		    " FROM i JOIN tasks t ON t.id = i.task_id"
		    " ON CONFLICT (task_id, attempt) DO NOTHING"
		    " RETURNING id, task_id, attempt, status, stale, retried),"
		    " upd AS (UPDATE tasks t SET"
		    " state = CASE WHEN ins.retried THEN 'queued' ELSE ins.status END,"
		    " finished_at = CASE WHEN ins.retried THEN NULL ELSE now() END,"
		    " result_id = CASE WHEN ins.retried THEN NULL ELSE ins.id END,"
		    " worker_id = CASE WHEN ins.retried THEN NULL ELSE t.worker_id END"
		    " FROM ins WHERE t.id = ins.task_id AND NOT ins.stale RETURNING t.id),"
		    " att AS (UPDATE attempts a SET ended_at = now(), end_reason = 'result' FROM ins"
		    " WHERE a.task_id = ins.task_id AND a.attempt = ins.attempt AND a.ended_at IS NULL)"
		    " SELECT i.task_id, i.attempt, t.job_id, ins.stale, ins.retried"
		    " FROM i LEFT JOIN tasks t ON t.id = i.task_id"
		    " LEFT JOIN ins ON ins.task_id = i.task_id AND ins.attempt = i.attempt");
	r = db_exec(db, op, sql.data, &p, PGRES_TUPLES_OK, &res);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;

	struct hf_buf jobs;
	hf_buf_init(&jobs);
	for (int row = 0; row < PQntuples(res); row++) {
		uint64_t task_id = get_u64(res, row, 0);
		uint32_t attempt = (uint32_t)atoi(PQgetvalue(res, row, 1));
		for (size_t k = 0; k < op->u.result.n; k++) {
			struct db_result *d = &op->u.result.v[k];
			if (d->r->task_id != task_id || d->r->attempt != attempt)
				continue;
			if (PQgetisnull(res, row, 2))
				d->outcome = DB_RESULT_UNKNOWN;
			else if (PQgetisnull(res, row, 3))
				d->outcome = DB_RESULT_DUPLICATE;
			else if (strcmp(PQgetvalue(res, row, 3), "t") == 0)
				d->outcome = DB_RESULT_STALE;
			else if (strcmp(PQgetvalue(res, row, 4), "t") == 0)
				d->outcome = DB_RESULT_RETRIED;
			else
				d->outcome = DB_RESULT_FINAL;
			if (!PQgetisnull(res, row, 2))
				d->job_id = get_u64(res, row, 2);
			if (d->outcome == DB_RESULT_FINAL)
				hf_buf_printf(&jobs, "%s%" PRIu64, jobs.len ? "," : "", d->job_id);
		}
	}
	PQclear(res);
	if (jobs.len == 0) {
		hf_buf_fini(&jobs);
		return 0;
	}

	/* Jobs whose last task just got its outcome are done. */
	hf_buf_init(&sql);
	hf_buf_printf(&sql,
		      "UPDATE jobs j SET state = 'done', finished_at = now()"
		      " WHERE j.id IN (%s) AND j.state = 'running' AND NOT EXISTS"
		      " (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'leased'))"
		      " RETURNING j.id",
		      jobs.data);
	hf_buf_fini(&jobs);
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, NULL, PGRES_TUPLES_OK, &res);
	hf_buf_fini(&sql);
	if (r < 0)
		return r;
	int n = PQntuples(res);
	if (n > 0) {
		op->u.result.finished_jobs = calloc((size_t)n, sizeof(uint64_t));
		if (!op->u.result.finished_jobs) {
			PQclear(res);
			return -ENOMEM;
		}
		for (int i = 0; i < n; i++)
			op->u.result.finished_jobs[i] = get_u64(res, i, 0);
		op->u.result.n_finished_jobs = (size_t)n;
	}
	PQclear(res);
	return 0;
}

static int run_job_cancel(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	char sql[768];
	uint64_t id = op->u.cancel.job_id;
	int r;

	op->u.cancel.found = false;
	op->u.cancel.n_cancelled = 0;
	if (op->u.cancel.task_id) {
		uint64_t tid = op->u.cancel.task_id;
		snprintf(sql, sizeof(sql), "SELECT job_id FROM tasks WHERE id = %" PRIu64, tid);
		r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		op->u.cancel.found = PQntuples(res) == 1;
		if (op->u.cancel.found)
			op->u.cancel.job_id = get_u64(res, 0, 0);
		PQclear(res);
		if (!op->u.cancel.found)
			return 0;
		snprintf(sql, sizeof(sql),
			 "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now()"
			 " WHERE id = %" PRIu64 " AND state IN ('queued', 'leased') RETURNING id, attempt, job_id),"
			 " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
			 " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL),"
			 " j AS (UPDATE jobs SET state = 'done', finished_at = now() WHERE id IN (SELECT job_id FROM c)"
			 " AND state = 'running' AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = jobs.id"
			 " AND t.state IN ('queued', 'leased') AND t.id <> %" PRIu64 "))"
			 " SELECT count(*) FROM c",
			 tid, tid);
		r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
		if (r < 0)
			return r;
		op->u.cancel.n_cancelled = (uint32_t)atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}
	snprintf(sql, sizeof(sql), "SELECT state FROM jobs WHERE id = %" PRIu64, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	op->u.cancel.found = PQntuples(res) == 1;
	PQclear(res);
	if (!op->u.cancel.found)
		return 0;

	snprintf(sql, sizeof(sql),
		 "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now()"
		 " WHERE job_id = %" PRIu64 " AND state IN ('queued', 'leased') RETURNING id, attempt),"
		 " a AS (UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
		 " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL),"
		 " j AS (UPDATE jobs SET state = 'cancelled', finished_at = now()"
		 " WHERE id = %" PRIu64 " AND state = 'running')"
		 " SELECT count(*) FROM c",
		 id, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	op->u.cancel.n_cancelled = (uint32_t)atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* The worker's labels (0), CPU (1), runtimes (2) or backends (3) as JSON
 * text (jansson), or NULL. */
static char *worker_json(const Hf__Register *w, int which)
{
	json_t *j;
	char *out;

	if (which == 0) {
		j = json_object();
		for (size_t i = 0; i < w->n_labels; i++)
			json_object_set_new(j, w->labels[i]->key, json_string(w->labels[i]->value));
	} else if (which == 1) {
		const Hf__CpuInfo *c = w->cpu;
		json_t *flags = json_array();
		for (size_t i = 0; c && i < c->n_flags; i++)
			json_array_append_new(flags, json_string(c->flags[i]));
		j = json_pack("{s:s, s:i, s:i, s:i, s:I, s:i, s:s, s:o}",
			      "model", c && c->model ? c->model : "",
			      "sockets", c ? (int)c->sockets : 0, "cores", c ? (int)c->cores : 0,
			      "threads", c ? (int)c->threads : 0,
			      "memory_bytes", c ? (json_int_t)c->memory_bytes : (json_int_t)0,
			      "numa_nodes", c ? (int)c->numa_nodes : 0,
			      "arch", c && c->arch ? c->arch : "", "flags", flags);
	} else if (which == 3) {
		j = json_array();
		for (size_t i = 0; i < w->n_backends; i++) {
			const Hf__BackendStatus *b = w->backends[i];
			json_array_append_new(j, json_pack("{s:s, s:b, s:s, s:s, s:s}", "backend",
							   hf_backend_name(b->backend), "present",
							   (int)b->present, "reason", b->reason, "driver",
							   b->driver, "library", b->library));
		}
	} else {
		j = json_array();
		for (size_t i = 0; i < w->n_runtimes; i++) {
			const Hf__Runtime *rt = w->runtimes[i];
			json_array_append_new(j, json_pack("{s:s, s:s, s:b, s:s}", "name", rt->name,
							   "version", rt->version, "available",
							   (int)rt->available, "detail", rt->detail));
		}
	}
	if (!j)
		return NULL;
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

static int run_worker_upsert(struct db *db, struct db_op *op)
{
	const Hf__Register *w = op->u.worker.reg;
	char *labels = worker_json(w, 0), *cpu = worker_json(w, 1), *runtimes = worker_json(w, 2);
	char *backends = worker_json(w, 3);
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "INSERT INTO workers (id, hostname, software_version, protocol_version,"
			  " labels, cpu, runtimes, backends, last_seen) VALUES (");
	param(&p, &sql, w->worker_id);
	hf_buf_puts(&sql, ",");
	param(&p, &sql, w->hostname);
	hf_buf_puts(&sql, ",");
	param(&p, &sql, w->software_version);
	hf_buf_printf(&sql, ",%u,", w->protocol_version);
	param(&p, &sql, labels ? labels : "{}");
	hf_buf_puts(&sql, "::jsonb,");
	param(&p, &sql, cpu ? cpu : "{}");
	hf_buf_puts(&sql, "::jsonb,");
	param(&p, &sql, runtimes ? runtimes : "[]");
	hf_buf_puts(&sql, "::jsonb,");
	param(&p, &sql, backends ? backends : "[]");
	hf_buf_puts(&sql, "::jsonb,now()) ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname,"
			  " software_version = EXCLUDED.software_version,"
			  " protocol_version = EXCLUDED.protocol_version, labels = EXCLUDED.labels,"
			  " cpu = EXCLUDED.cpu, runtimes = EXCLUDED.runtimes, backends = EXCLUDED.backends,"
			  " last_seen = now()");
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
	params_fini(&p);
	hf_buf_fini(&sql);
	free(labels);
	free(cpu);
	free(runtimes);
	free(backends);
	if (r < 0 || w->n_devices == 0)
		return r;

	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "INSERT INTO devices (worker_id, backend, idx, name, memory_bytes, arch,"
			  " driver, uuid, slots, attrs, declared) VALUES ");
	for (size_t i = 0; i < w->n_devices; i++) {
		const Hf__Device *d = w->devices[i];
		hf_buf_puts(&sql, i ? ",(" : "(");
		param(&p, &sql, w->worker_id);
		hf_buf_printf(&sql, ",'%s',%u,", hf_backend_name(d->backend), d->index);
		param(&p, &sql, d->name);
		hf_buf_printf(&sql, ",%" PRIu64 ",", (uint64_t)d->memory_bytes);
		param(&p, &sql, d->arch);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, d->driver);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, d->uuid);
		hf_buf_printf(&sql, ",%u,", d->slots);
		json_t *attrs = json_object();
		for (size_t k = 0; k < d->n_attrs; k++)
			json_object_set_new(attrs, d->attrs[k]->key, json_string(d->attrs[k]->value));
		char *attrs_text = json_dumps(attrs, JSON_COMPACT);
		json_decref(attrs);
		param(&p, &sql, attrs_text ? attrs_text : "{}");
		free(attrs_text);
		hf_buf_printf(&sql, "::jsonb,%s)", d->declared ? "true" : "false");
	}
	hf_buf_puts(&sql, " ON CONFLICT (worker_id, backend, idx) DO UPDATE SET name = EXCLUDED.name,"
			  " memory_bytes = EXCLUDED.memory_bytes, arch = EXCLUDED.arch,"
			  " driver = EXCLUDED.driver, uuid = EXCLUDED.uuid, slots = EXCLUDED.slots,"
			  " attrs = EXCLUDED.attrs, declared = EXCLUDED.declared, updated_at = now()");
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
	params_fini(&p);
	hf_buf_fini(&sql);
	return r;
}

static int run_job_retry(struct db *db, struct db_op *op)
{
	PGresult *res = NULL;
	char sql[1536];
	uint64_t id = op->u.retry.job_id;
	int r;

	free(op->u.retry.tasks);
	free(op->u.retry.requirements);
	op->u.retry.tasks = NULL;
	op->u.retry.requirements = NULL;
	op->u.retry.n_tasks = 0;
	snprintf(sql, sizeof(sql),
		 "SELECT priority, requirements::text, max_running, max_retries, submitter, flaky_reruns"
		 " FROM jobs WHERE id = %" PRIu64, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	op->u.retry.found = PQntuples(res) == 1;
	if (op->u.retry.found) {
		op->u.retry.priority = atoi(PQgetvalue(res, 0, 0));
		op->u.retry.requirements = strdup(PQgetvalue(res, 0, 1));
		op->u.retry.max_running = (uint32_t)atoi(PQgetvalue(res, 0, 2));
		op->u.retry.max_retries = (uint32_t)atoi(PQgetvalue(res, 0, 3));
		hf_strlcpy(op->u.retry.submitter, PQgetvalue(res, 0, 4), sizeof(op->u.retry.submitter));
		op->u.retry.flaky_reruns = (uint32_t)atoi(PQgetvalue(res, 0, 5));
	}
	PQclear(res);
	if (!op->u.retry.found)
		return 0;
	/* The outcome being retried stays in results, marked as superseded. */
	snprintf(sql, sizeof(sql),
		 "WITH r AS (UPDATE tasks t SET state = 'queued', worker_id = NULL, device_index = NULL,"
		 " device_indices = NULL, result_id = NULL, finished_at = NULL"
		 " WHERE job_id = %" PRIu64 " AND state IN ('failed', 'error', 'timeout')"
		 " RETURNING t.*, (SELECT result_id FROM tasks o WHERE o.id = t.id) AS old_result),"
		 " s AS (UPDATE results SET retried = true WHERE id IN (SELECT old_result FROM r)),"
		 " j AS (UPDATE jobs SET state = 'running', finished_at = NULL WHERE id = %" PRIu64
		 " AND EXISTS (SELECT 1 FROM r))"
		 " SELECT " LIVE_TASK_COLUMNS " FROM r t",
		 id, id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	r = live_tasks_from(res, &op->u.retry.tasks, &op->u.retry.n_tasks);
	PQclear(res);
	return r;
}

static void param_float(struct params *p, struct hf_buf *sql, double v);

static int run_drain(struct db *db, struct db_op *op)
{
	const struct db_drain *d = &op->u.drain.d;
	struct params p;
	struct hf_buf sql;
	int r;

	params_init(&p);
	hf_buf_init(&sql);
	if (op->u.drain.undrain)
		hf_buf_puts(&sql, "DELETE FROM drains WHERE worker_id = ");
	else
		hf_buf_puts(&sql, "INSERT INTO drains (worker_id, backend, idx) VALUES (");
	param(&p, &sql, d->worker_id);
	if (op->u.drain.undrain) {
		hf_buf_puts(&sql, " AND backend = ");
		param(&p, &sql, d->backend >= 0 ? hf_backend_name((Hf__Backend)d->backend) : "");
		hf_buf_printf(&sql, " AND idx = %d", d->index);
	} else {
		hf_buf_puts(&sql, ", ");
		param(&p, &sql, d->backend >= 0 ? hf_backend_name((Hf__Backend)d->backend) : "");
		hf_buf_printf(&sql, ", %d) ON CONFLICT DO NOTHING", d->index);
	}
	r = db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
	params_fini(&p);
	hf_buf_fini(&sql);
	if (r < 0 || !op->u.drain.undrain)
		return r;

	/* Returning a device (or a worker) to service also ends its quarantine. */
	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "DELETE FROM device_quarantine WHERE worker_id = ");
	param(&p, &sql, d->worker_id);
	if (d->backend >= 0) {
		hf_buf_puts(&sql, " AND backend = ");
		param(&p, &sql, hf_backend_name((Hf__Backend)d->backend));
		hf_buf_printf(&sql, " AND idx = %d", d->index);
	}
	r = db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
	params_fini(&p);
	hf_buf_fini(&sql);
	return r;
}

/* Health check outcomes (one multi-row INSERT) and quarantine changes (an
 * upsert or a delete per device, a handful at most). */
static int run_health_store(struct db *db, struct db_op *op)
{
	struct params p;
	struct hf_buf sql;
	int r = 0;

	if (op->u.health.n_checks > 0) {
		params_init(&p);
		hf_buf_init(&sql);
		hf_buf_puts(&sql, "INSERT INTO device_health_checks (worker_id, backend, idx, ok, detail,"
				  " duration_s, trigger, checked_at) VALUES ");
		for (size_t i = 0; i < op->u.health.n_checks; i++) {
			const struct db_health_check *h = &op->u.health.checks[i];
			hf_buf_puts(&sql, i ? ", (" : "(");
			param(&p, &sql, h->worker_id);
			hf_buf_puts(&sql, ", ");
			param(&p, &sql, hf_backend_name((Hf__Backend)h->backend));
			hf_buf_printf(&sql, ", %" PRIu32 ", %s, ", h->index, h->ok ? "true" : "false");
			param(&p, &sql, h->detail ? h->detail : "");
			hf_buf_puts(&sql, ", ");
			param_float(&p, &sql, h->duration_s);
			hf_buf_puts(&sql, ", ");
			param(&p, &sql, h->trigger ? h->trigger : "");
			if (h->checked_at > 0)
				hf_buf_printf(&sql, ", to_timestamp(%.3f))", h->checked_at);
			else
				hf_buf_puts(&sql, ", now())");
		}
		r = db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
		params_fini(&p);
		hf_buf_fini(&sql);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < op->u.health.n_states; i++) {
		const struct db_quarantine *q = &op->u.health.states[i];
		params_init(&p);
		hf_buf_init(&sql);
		if (q->quarantined)
			hf_buf_puts(&sql, "INSERT INTO device_quarantine (worker_id, backend, idx, reason) VALUES (");
		else
			hf_buf_puts(&sql, "DELETE FROM device_quarantine WHERE (worker_id, backend, idx) = (");
		param(&p, &sql, q->worker_id);
		hf_buf_puts(&sql, ", ");
		param(&p, &sql, hf_backend_name((Hf__Backend)q->backend));
		hf_buf_printf(&sql, ", %" PRIu32, q->index);
		if (q->quarantined) {
			hf_buf_puts(&sql, ", ");
			param(&p, &sql, q->reason);
			hf_buf_puts(&sql, ") ON CONFLICT (worker_id, backend, idx) DO UPDATE SET reason = EXCLUDED.reason");
		} else {
			hf_buf_puts(&sql, ")");
		}
		r = db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
		params_fini(&p);
		hf_buf_fini(&sql);
		if (r < 0)
			return r;
	}
	return 0;
}

static void param_float(struct params *p, struct hf_buf *sql, double v)
{
	if (v < 0)
		param(p, sql, NULL);
	else
		paramf(p, sql, "%.3f", v);
}

static int run_telemetry_sample(struct db *db, struct db_op *op)
{
	struct params p;
	struct hf_buf sql;
	int r;

	if (op->u.telemetry.n == 0)
		return 0;
	params_init(&p);
	hf_buf_init(&sql);
	hf_buf_puts(&sql, "INSERT INTO device_telemetry (worker_id, backend, idx, utilization_pct,"
			  " memory_used_bytes, temperature_c, power_w) VALUES ");
	for (size_t i = 0; i < op->u.telemetry.n; i++) {
		const struct db_telemetry *t = &op->u.telemetry.v[i];
		hf_buf_puts(&sql, i ? ",(" : "(");
		param(&p, &sql, t->worker_id);
		hf_buf_puts(&sql, ",");
		param(&p, &sql, t->backend);
		hf_buf_printf(&sql, ",%u,", t->index);
		param_float(&p, &sql, t->utilization_pct);
		hf_buf_puts(&sql, "::real,");
		if (t->memory_used_bytes < 0)
			param(&p, &sql, NULL);
		else
			paramf(&p, &sql, "%lld", (long long)t->memory_used_bytes);
		hf_buf_puts(&sql, "::bigint,");
		param_float(&p, &sql, t->temperature_c);
		hf_buf_puts(&sql, "::real,");
		param_float(&p, &sql, t->power_w);
		hf_buf_puts(&sql, "::real)");
	}
	r = sql.oom ? -ENOMEM : db_exec(db, op, sql.data, &p, PGRES_COMMAND_OK, NULL);
	params_fini(&p);
	hf_buf_fini(&sql);
	return r;
}

/* ---- reads: each builds its reply envelope ---- */

static double epoch_or_zero(PGresult *res, int row, int col)
{
	return get_double(res, row, col);
}

static int pack_reply(struct db_op *op, Hf__Envelope *env)
{
	int r = hf_env_pack(env, &op->u.read.reply);
	if (r < 0)
		op_error(op, "could not pack the reply");
	return r;
}

/* Fills js from a jobs row (id, name, submitter, priority, state, created,
 * finished, task_count) and the per-status counts. */
static int job_status_fill(struct db *db, struct db_op *op, PGresult *jr, int row, Hf__JobStatus *js,
			   Hf__StatusCount **counts_store, Hf__StatusCount *count_mem, size_t max_counts)
{
	PGresult *res = NULL;
	char sql[256];
	int r;

	js->job_id = get_u64(jr, row, 0);
	js->name = PQgetvalue(jr, row, 1);
	js->submitter = PQgetvalue(jr, row, 2);
	js->priority = atoi(PQgetvalue(jr, row, 3));
	js->state = PQgetvalue(jr, row, 4);
	js->created_at = epoch_or_zero(jr, row, 5);
	js->finished_at = epoch_or_zero(jr, row, 6);
	js->total = (uint32_t)atoi(PQgetvalue(jr, row, 7));

	snprintf(sql, sizeof(sql),
		 "SELECT state, count(*) FROM tasks WHERE job_id = %" PRIu64 " GROUP BY state",
		 js->job_id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	size_t n = 0;
	for (int i = 0; i < PQntuples(res) && n < max_counts; i++) {
		Hf__TaskStatus st;
		if (hf_status_parse(PQgetvalue(res, i, 0), &st) < 0)
			continue;
		hf__status_count__init(&count_mem[n]);
		count_mem[n].status = st;
		count_mem[n].count = (uint32_t)atoi(PQgetvalue(res, i, 1));
		counts_store[n] = &count_mem[n];
		n++;
	}
	js->counts = counts_store;
	js->n_counts = n;
	PQclear(res);
	return 0;
}

#define JOB_COLUMNS \
	"id, name, submitter, priority, state, extract(epoch from created_at)," \
	" extract(epoch from finished_at), task_count"

static int run_job_status(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__JobStatus js = HF__JOB_STATUS__INIT;
	Hf__StatusCount mem[16], *ptrs[16];
	PGresult *jr = NULL;
	char sql[256];
	int r;

	snprintf(sql, sizeof(sql), "SELECT " JOB_COLUMNS " FROM jobs WHERE id = %" PRIu64,
		 op->u.read.job_id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &jr);
	if (r < 0)
		return r;
	if (PQntuples(jr) == 0) {
		PQclear(jr);
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64,
				    op->u.read.job_id);
	}
	r = job_status_fill(db, op, jr, 0, &js, ptrs, mem, 16);
	if (r == 0) {
		env.body_case = HF__ENVELOPE__BODY_JOB_STATUS_REPLY;
		env.job_status_reply = &js;
		r = pack_reply(op, &env);
	}
	PQclear(jr);
	return r;
}

static int run_job_list(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__JobList list = HF__JOB_LIST__INIT;
	Hf__JobStatus *jobs = NULL, **ptrs = NULL;
	Hf__StatusCount (*mem)[16] = NULL, *(*cptrs)[16] = NULL;
	PGresult *jr = NULL;
	char sql[256];
	int r, n;

	snprintf(sql, sizeof(sql), "SELECT " JOB_COLUMNS " FROM jobs ORDER BY id DESC LIMIT %u",
		 op->u.read.limit ? op->u.read.limit : 20);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &jr);
	if (r < 0)
		return r;
	n = PQntuples(jr);
	jobs = calloc((size_t)n + 1, sizeof(*jobs));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	mem = calloc((size_t)n + 1, sizeof(*mem));
	cptrs = calloc((size_t)n + 1, sizeof(*cptrs));
	if (!jobs || !ptrs || !mem || !cptrs) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		hf__job_status__init(&jobs[i]);
		r = job_status_fill(db, op, jr, i, &jobs[i], cptrs[i], mem[i], 16);
		if (r < 0)
			goto out;
		ptrs[i] = &jobs[i];
	}
	list.jobs = ptrs;
	list.n_jobs = (size_t)n;
	env.body_case = HF__ENVELOPE__BODY_JOB_LIST_REPLY;
	env.job_list_reply = &list;
	r = pack_reply(op, &env);
out:
	free(jobs);
	free(ptrs);
	free(mem);
	free(cptrs);
	PQclear(jr);
	return r;
}

static int run_results(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultsReply reply = HF__RESULTS_REPLY__INIT;
	Hf__ResultRow *rows = NULL, **ptrs = NULL;
	PGresult *res = NULL;
	char sql[1024];
	int r, n;

	snprintf(sql, sizeof(sql), "SELECT 1 FROM jobs WHERE id = %" PRIu64, op->u.read.job_id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	PQclear(res);
	if (n == 0)
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no job %" PRIu64,
				    op->u.read.job_id);

	snprintf(sql, sizeof(sql),
		 "SELECT task_id, model_type, family, backend, kind, batch_size, precision, status,"
		 " coalesce(reason, CASE WHEN status = 'cancelled' THEN 'cancelled before it ran' END, ''),"
		 " coalesce(metrics::text, '{}'), attempt, coalesce(worker_id, ''),"
		 " coalesce(device_index, 0), coalesce(duration_s, 0), coalesce(weights, ''), seq_len"
		 " FROM task_outcomes WHERE job_id = %" PRIu64
		 " ORDER BY model_type, backend, kind, seq_len, batch_size, precision, task_id",
		 op->u.read.job_id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	rows = calloc((size_t)n + 1, sizeof(*rows));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	if (!rows || !ptrs) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		Hf__ResultRow *row = &rows[i];
		hf__result_row__init(row);
		row->task_id = get_u64(res, i, 0);
		row->model_type = PQgetvalue(res, i, 1);
		row->family = PQgetvalue(res, i, 2);
		hf_backend_parse(PQgetvalue(res, i, 3), &row->backend);
		hf_kind_parse(PQgetvalue(res, i, 4), &row->kind);
		row->batch_size = (uint32_t)atoi(PQgetvalue(res, i, 5));
		row->precision = PQgetvalue(res, i, 6);
		hf_status_parse(PQgetvalue(res, i, 7), &row->status);
		row->reason = PQgetvalue(res, i, 8);
		row->metrics_json = PQgetvalue(res, i, 9);
		row->attempt = (uint32_t)atoi(PQgetvalue(res, i, 10));
		row->worker_id = PQgetvalue(res, i, 11);
		row->device_index = (uint32_t)atoi(PQgetvalue(res, i, 12));
		row->duration_s = get_double(res, i, 13);
		row->weights = PQgetvalue(res, i, 14);
		row->seq_len = (uint32_t)atoi(PQgetvalue(res, i, 15));
		ptrs[i] = row;
	}
	reply.rows = ptrs;
	reply.n_rows = (size_t)n;
	env.body_case = HF__ENVELOPE__BODY_RESULTS_REPLY;
	env.results_reply = &reply;
	r = pack_reply(op, &env);
out:
	free(rows);
	free(ptrs);
	PQclear(res);
	return r;
}

static int run_task_explain(struct db *db, struct db_op *op)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ExplainReply er = HF__EXPLAIN_REPLY__INIT;
	PGresult *res = NULL;
	char sql[512], summary[1024];
	int r;

	snprintf(sql, sizeof(sql),
		 "SELECT status, coalesce(reason, ''), attempt, coalesce(worker_id, ''), job_id"
		 " FROM task_outcomes WHERE task_id = %" PRIu64, op->u.read.job_id);
	r = db_exec(db, op, sql, NULL, PGRES_TUPLES_OK, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return hf_env_error(HF__ERROR_CODE__ERR_NOT_FOUND, &op->u.read.reply, "no task %" PRIu64,
				    op->u.read.job_id);
	}
	hf_status_parse(PQgetvalue(res, 0, 0), &er.status);
	if (hf_status_is_final(er.status))
		snprintf(summary, sizeof(summary), "%s after %s attempt(s)%s%s%s%s", PQgetvalue(res, 0, 0),
			 PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)[0] ? " on worker " : "", PQgetvalue(res, 0, 3),
			 PQgetvalue(res, 0, 1)[0] ? ": " : "", PQgetvalue(res, 0, 1));
	else
		snprintf(summary, sizeof(summary), "%s, but job %s is not active in this coordinator",
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 4));
	er.task_id = op->u.read.job_id;
	er.summary = summary;
	env.body_case = HF__ENVELOPE__BODY_EXPLAIN_REPLY;
	env.explain_reply = &er;
	r = pack_reply(op, &env);
	PQclear(res);
	return r;
}

/* ---- the thread ---- */

static bool op_is_write(const struct db_op *op)
{
	switch (op->kind) {
	case DB_OP_JOB_CREATE:
	case DB_OP_LEASE_GRANT:
	case DB_OP_LEASE_EXPIRE:
	case DB_OP_RESULT_STORE:
	case DB_OP_JOB_CANCEL:
	case DB_OP_WORKER_UPSERT:
	case DB_OP_TELEMETRY_SAMPLE:
	case DB_OP_JOB_RETRY:
	case DB_OP_DRAIN:
	case DB_OP_HEALTH_STORE:
		return true;
	default:
		return false;
	}
}

static int op_run(struct db *db, struct db_op *op)
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
	}
	op_error(op, "unknown database operation %d", (int)op->kind);
	return -EINVAL;
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

/* Runs one write op in a transaction of its own. */
static int run_alone(struct db *db, struct db_op *op)
{
	int r = db_cmd(db, op, "BEGIN");
	if (r < 0)
		return r;
	r = op_run(db, op);
	if (r == 0)
		r = db_cmd(db, op, "COMMIT");
	if (r < 0 && r != -ENOTCONN)
		PQclear(PQexec(db->conn, "ROLLBACK"));
	return r;
}

/* Runs ops[0..n) (all writes) in one transaction; on failure each again
 * alone so only the failing ones fail. */
static void run_group(struct db *db, struct db_op **ops, size_t n)
{
	struct db_op scratch = { 0 };
	int r = 0;
	size_t i;

	if (n == 1) {
		ops[0]->rc = run_alone(db, ops[0]);
		return;
	}
	r = db_cmd(db, &scratch, "BEGIN");
	for (i = 0; r == 0 && i < n; i++) {
		r = op_run(db, ops[i]);
		ops[i]->rc = r;
	}
	if (r == 0)
		r = db_cmd(db, &scratch, "COMMIT");
	if (r == 0)
		return;
	if (r != -ENOTCONN && db_connected(db))
		PQclear(PQexec(db->conn, "ROLLBACK"));
	for (i = 0; i < n; i++) {
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

static void run_batch(struct db *db, struct db_op *list)
{
	struct db_op *ops[DB_BATCH_MAX];
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
		run_group(db, ops + i, j - i);
		if (!db_connected(db))
			atomic_store(&db->healthy, false);
		i = j;
	}
	for (size_t i = 0; i < n; i++) {
		if (ops[i]->rc < 0 && ops[i]->kind != DB_OP_START)
			log_warn("database operation failed: %s", ops[i]->err);
		op_complete(db, ops[i]);
	}
	uv_async_send(&db->async);
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
		while (db->in_head && n < DB_BATCH_MAX) {
			struct db_op *op = db->in_head;
			db->in_head = op->next;
			op->next = NULL;
			*tail = op;
			tail = &op->next;
			n++;
		}
		if (!db->in_head)
			db->in_tail = NULL;
		pthread_mutex_unlock(&db->mu);

		/* The start operation waits for the database rather than fail. */
		if (list->kind == DB_OP_START) {
			while (db_ensure_connected(db, list) < 0) {
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
	}
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
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
		op->done(op);
	}
}

int db_open(uv_loop_t *loop, const char *conninfo, struct db **ret_db)
{
	struct db *db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->loop = loop;
	db->conninfo = strdup(conninfo);
	if (!db->conninfo) {
		free(db);
		return -ENOMEM;
	}
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cond, NULL);
	atomic_init(&db->healthy, false);
	atomic_init(&db->lost_active, false);
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

void db_submit(struct db *db, struct db_op *op)
{
	op->next = NULL;
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

bool db_healthy(struct db *db)
{
	return atomic_load(&db->healthy);
}

bool db_lost_active(struct db *db)
{
	return atomic_load(&db->lost_active);
}

static void db_free_cb(uv_handle_t *h)
{
	struct db *db = h->data;
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->cond);
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
