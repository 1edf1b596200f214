/* SPDX-License-Identifier: MIT
 *
 * The statement helpers of the database layer (see db.h and
 * db-internal.h): building a statement's parameters (scalars and array
 * literals, each value checked against its column's type), preparing each
 * constant statement text once per connection and running it, and
 * translating libpq's errors into op->rc and op->err (a refused value is
 * -EINVAL, not an outage); nowhere else is a libpq error looked at.  Runs on
 * the database thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* ---- parameters ---- */

void db_params_init(struct db_params *p)
{
	memset(p, 0, sizeof(*p));
}

void db_params_fini(struct db_params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	memset(p, 0, sizeof(*p));
}

static void params_refuse(struct db_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void params_refuse(struct db_params *p, const char *fmt, ...)
{
	va_list ap;

	if (p->rc < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->rc = -EINVAL;
}

/* Appends s, taking it (NULL with is_null: SQL NULL; NULL otherwise: out
 * of memory). */
static void params_push(struct db_params *p, char *s, bool is_null)
{
	if (p->rc < 0) {
		free(s);
		return;
	}
	if (!s && !is_null) {
		p->rc = -ENOMEM;
		return;
	}
	if (p->n == DB_PARAMS_MAX) {
		free(s);
		params_refuse(p, "a statement has more than %d parameters", DB_PARAMS_MAX);
		return;
	}
	p->owned[p->n] = s;
	p->v[p->n] = s;
	p->n++;
}

/* Numbers are formatted by hand, not with printf: a batch of results or a
 * job's tasks has thousands of them. */
static char *format_i64(int64_t v)
{
	char tmp[HF_FMT_INT_MAX];
	size_t n = hf_fmt_i64(tmp, v);
	char *s = malloc(n + 1);

	if (s)
		memcpy(s, tmp, n + 1);
	return s;
}

/* %.17g: the double comes back exactly. */
static char *format_double(double v)
{
	char tmp[40];

	snprintf(tmp, sizeof(tmp), "%.17g", v);
	return strdup(tmp);
}

static bool u64_fits(struct db_params *p, const char *name, uint64_t v)
{
	if (v <= INT64_MAX)
		return true;
	params_refuse(p, "%s %" PRIu64 " is out of range (at most %" PRId64 ")", name, v, INT64_MAX);
	return false;
}

static bool u32_fits(struct db_params *p, const char *name, uint32_t v)
{
	if (v <= INT32_MAX)
		return true;
	params_refuse(p, "%s %" PRIu32 " is out of range (at most %d)", name, v, INT32_MAX);
	return false;
}

static bool double_finite(struct db_params *p, const char *name, double v)
{
	if (isfinite(v))
		return true;
	params_refuse(p, "%s is not a finite number (%g)", name, v);
	return false;
}

void db_param_text(struct db_params *p, const char *s)
{
	params_push(p, s ? strdup(s) : NULL, !s);
}

void db_param_u64(struct db_params *p, const char *name, uint64_t v)
{
	if (u64_fits(p, name, v))
		params_push(p, format_i64((int64_t)v), false);
}

void db_param_u32(struct db_params *p, const char *name, uint32_t v)
{
	if (u32_fits(p, name, v))
		params_push(p, format_i64(v), false);
}

void db_param_i32(struct db_params *p, int32_t v)
{
	params_push(p, format_i64(v), false);
}

void db_param_bool(struct db_params *p, bool v)
{
	params_push(p, strdup(v ? "t" : "f"), false);
}

void db_param_double(struct db_params *p, const char *name, double v)
{
	if (double_finite(p, name, v))
		params_push(p, format_double(v), false);
}

/* ---- array parameters ---- */

void db_array_init(struct db_array *a, struct db_params *p)
{
	hf_buf_init(&a->text);
	hf_buf_append(&a->text, "{", 1);
	a->n = 0;
	a->p = p;
}

void db_array_fini(struct db_array *a)
{
	hf_buf_fini(&a->text);
	a->n = 0;
}

static void array_sep(struct db_array *a)
{
	if (a->n++)
		hf_buf_append(&a->text, ",", 1);
}

void db_array_null(struct db_array *a)
{
	array_sep(a);
	hf_buf_puts(&a->text, "NULL");
}

/* Always quoted: an element that is empty, "NULL", or holds a brace, comma,
 * quote, backslash or blank is then read back as it was. */
void db_array_text(struct db_array *a, const char *s)
{
	if (!s) {
		db_array_null(a);
		return;
	}
	array_sep(a);
	hf_buf_append(&a->text, "\"", 1);
	for (const char *run = s;;) {
		size_t len = strcspn(run, "\"\\");
		hf_buf_append(&a->text, run, len);
		if (!run[len])
			break;
		char esc[2] = { '\\', run[len] };
		hf_buf_append(&a->text, esc, 2);
		run += len + 1;
	}
	hf_buf_append(&a->text, "\"", 1);
}

void db_array_u64(struct db_array *a, const char *name, uint64_t v)
{
	if (!u64_fits(a->p, name, v))
		return;
	array_sep(a);
	hf_buf_put_u64(&a->text, v);
}

void db_array_u32(struct db_array *a, const char *name, uint32_t v)
{
	if (!u32_fits(a->p, name, v))
		return;
	array_sep(a);
	hf_buf_put_u64(&a->text, v);
}

void db_array_i32(struct db_array *a, int32_t v)
{
	array_sep(a);
	hf_buf_put_i64(&a->text, v);
}

void db_array_i64(struct db_array *a, int64_t v)
{
	array_sep(a);
	hf_buf_put_i64(&a->text, v);
}

void db_array_bool(struct db_array *a, bool v)
{
	array_sep(a);
	hf_buf_append(&a->text, v ? "t" : "f", 1);
}

void db_array_double(struct db_array *a, const char *name, double v)
{
	if (!double_finite(a->p, name, v))
		return;
	array_sep(a);
	hf_buf_printf(&a->text, "%.17g", v);
}

/* A time as whole microseconds since the epoch, for
 * "timestamptz 'epoch' + x * interval '1 microsecond'": an integer is
 * formatted without printf and read back exactly, where a float8 of
 * seconds needed %.17g and to_timestamp.  Seconds beyond what bigint
 * microseconds hold are refused (PostgreSQL's own range is smaller: a value
 * past it is the database's refusal, as before). */
void db_array_epoch_us(struct db_array *a, const char *name, double seconds)
{
	if (!double_finite(a->p, name, seconds))
		return;
	if (!(fabs(seconds) < 9.2e12)) {
		params_refuse(a->p, "%s %g is out of range", name, seconds);
		return;
	}
	array_sep(a);
	hf_buf_put_i64(&a->text, llround(seconds * 1e6));
}

void db_param_array(struct db_params *p, struct db_array *a)
{
	hf_buf_puts(&a->text, "}");
	if (a->text.oom) {
		if (p->rc == 0)
			p->rc = -ENOMEM;
	} else {
		params_push(p, a->text.data, false);
		a->text.data = NULL;
	}
	db_array_fini(a);
}

/* ---- running statements ---- */

void op_error(struct db_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
}

void first_line(char *s)
{
	char *nl = strchr(s, '\n');
	if (nl)
		*nl = '\0';
}

void db_prepared_reset(struct db *db)
{
	for (size_t i = 0; i < db->n_prepared; i++)
		free(db->prepared[i]);
	db->n_prepared = 0;
}

/* The name sql is prepared under on this connection, preparing it on first
 * use; NULL when it cannot be (the table is full: run it unprepared), with
 * *ret_res set when preparing failed. */
static const char *prepared_name(struct db *db, const char *sql, char name[16], PGresult **ret_res)
{
	size_t i;

	*ret_res = NULL;
	for (i = 0; i < db->n_prepared; i++)
		if (strcmp(db->prepared[i], sql) == 0)
			break;
	snprintf(name, 16, "s%zu", i);
	if (i < db->n_prepared)
		return name;
	if (i == DB_PREPARED_MAX)
		return NULL;
	char *copy = strdup(sql);
	if (!copy)
		return NULL;
	PGresult *res = PQprepare(db->conn, name, sql, 0, NULL);
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
		free(copy);
		*ret_res = res;
		return NULL;
	}
	PQclear(res);
	db->prepared[db->n_prepared++] = copy;
	return name;
}

/* A bad value rather than a failing database: data exceptions (22: out of
 * range, invalid text for its type, ...) and integrity constraint
 * violations (23: a check, a foreign key, NOT NULL). */
static bool sqlstate_is_data_error(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

/* Why res (NULL: no result at all) is not what was wanted, in op->err;
 * returns -ENOTCONN, -EINVAL or -EIO as db_exec says.  Takes res. */
static int exec_failure(struct db *db, struct db_op *op, PGresult *res)
{
	char msg[400];

	/* The primary message alone ("value ... is out of range"), without
	 * libpq's "ERROR:  " prefix and the detail lines. */
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	hf_strlcpy(msg, primary ? primary : res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn),
		   sizeof(msg));
	if (!msg[0])
		hf_strlcpy(msg, PQerrorMessage(db->conn), sizeof(msg));
	first_line(msg);
	bool data_error = sqlstate_is_data_error(res);
	/* A FATAL error ends the session: in a pipeline it is read before
	 * libpq has seen the connection close. */
	const char *severity = res ? PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
	bool fatal = severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
	PQclear(res);
	if (fatal || PQstatus(db->conn) != CONNECTION_OK) {
		op_error(op, "lost the database connection: %s", msg);
		return -ENOTCONN;
	}
	if (data_error) {
		op_error(op, "the database refused a value: %s", msg);
		return -EINVAL;
	}
	op_error(op, "statement failed: %s", msg);
	return -EIO;
}

/* A statement's parameters that could not be built: refused, or no
 * memory; 0 when they are fine. */
static int params_failure(struct db_op *op, const struct db_params *p)
{
	if (p && p->rc == -EINVAL) {
		op_error(op, "refused a value: %s", p->err);
		return -EINVAL;
	}
	if (p && p->rc < 0) {
		op_error(op, "out of memory building a statement");
		return -ENOMEM;
	}
	return 0;
}

int db_exec(struct db *db, struct db_op *op, const char *sql, const struct db_params *p,
	    ExecStatusType want, PGresult **ret_res)
{
	PGresult *res = NULL;
	char name[16];
	int r = params_failure(op, p);

	if (r < 0)
		return r;
	if (p) {
		const char *stmt = prepared_name(db, sql, name, &res);
		if (stmt)
			res = PQexecPrepared(db->conn, stmt, p->n, p->v, NULL, NULL, 0);
		else if (!res)
			res = PQexecParams(db->conn, sql, p->n, NULL, p->v, NULL, NULL, 0);
	} else {
		res = PQexec(db->conn, sql);
	}
	if (res && PQresultStatus(res) == want) {
		if (ret_res)
			*ret_res = res;
		else
			PQclear(res);
		return 0;
	}
	return exec_failure(db, op, res);
}

int db_cmd(struct db *db, struct db_op *op, const char *sql)
{
	return db_exec(db, op, sql, NULL, PGRES_COMMAND_OK, NULL);
}

/* ---- pipelines: a transaction's statements sent at once ---- */

/* Why sending failed: the connection is gone, or libpq refused. */
static int pipe_send_failed(struct db *db, struct db_op *op)
{
	char msg[400];

	hf_strlcpy(msg, PQerrorMessage(db->conn), sizeof(msg));
	first_line(msg);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		op_error(op, "lost the database connection: %s", msg);
		return -ENOTCONN;
	}
	op_error(op, "could not send a statement: %s", msg);
	return -EIO;
}

static int pipe_push(struct db *db, struct db_op *op, enum db_pipe_entry kind)
{
	if (db->pipe_sent == DB_PIPE_MAX) {
		op_error(op, "more than %d statements in one pipeline", DB_PIPE_MAX);
		return -EIO;
	}
	db->pipe[db->pipe_sent++] = (uint8_t)kind;
	return 0;
}

int db_pipe_begin(struct db *db, struct db_op *op)
{
	db->pipe_sent = db->pipe_read = 0;
	db->pipe_synced = false;
	db->pipe_prepared_ok = db->n_prepared;
	if (!PQenterPipelineMode(db->conn))
		return pipe_send_failed(db, op);
	return 0;
}

int db_pipe_cmd(struct db *db, struct db_op *op, const char *sql)
{
	int r = pipe_push(db, op, DB_PIPE_CMD);

	if (r == 0 && !PQsendQueryParams(db->conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
		db->pipe_sent--;
		r = pipe_send_failed(db, op);
	}
	return r;
}

int db_pipe_send(struct db *db, struct db_op *op, const char *sql, const struct db_params *p)
{
	char name[16];
	size_t i;
	int r = params_failure(op, p);

	if (r < 0)
		return r;
	for (i = 0; i < db->n_prepared; i++)
		if (strcmp(db->prepared[i], sql) == 0)
			break;
	snprintf(name, sizeof(name), "s%zu", i);
	if (i == db->n_prepared && i < DB_PREPARED_MAX) {
		/* Prepared in this pipeline, ahead of its first run; kept in
		 * the table once PostgreSQL said it is (db_pipe_end). */
		char *copy = strdup(sql);
		if (!copy) {
			op_error(op, "out of memory");
			return -ENOMEM;
		}
		r = pipe_push(db, op, DB_PIPE_PREPARE);
		if (r < 0) {
			free(copy);
			return r;
		}
		if (!PQsendPrepare(db->conn, name, sql, 0, NULL)) {
			free(copy);
			db->pipe_sent--;
			return pipe_send_failed(db, op);
		}
		db->prepared[db->n_prepared++] = copy;
	}
	r = pipe_push(db, op, DB_PIPE_STMT);
	if (r < 0)
		return r;
	int n = p ? p->n : 0;
	const char *const *v = p ? p->v : NULL;
	int ok = i < db->n_prepared ? PQsendQueryPrepared(db->conn, name, n, v, NULL, NULL, 0)
				     : PQsendQueryParams(db->conn, sql, n, NULL, v, NULL, NULL, 0);
	if (!ok) {
		db->pipe_sent--;
		return pipe_send_failed(db, op);
	}
	return 0;
}

int db_pipe_send_generic(struct db *db, struct db_op *op, const char *sql, const struct db_params *p,
			 size_t rows)
{
	int r = params_failure(op, p);

	db->generic_rows += rows;
	if (r == 0 && (++db->generic_runs >= DB_GENERIC_REPLAN || db->generic_rows >= DB_GENERIC_REPLAN_ROWS)) {
		db->generic_runs = 0;
		db->generic_rows = 0;
		r = db_pipe_cmd(db, op, "DISCARD PLANS");
	}
	if (r == 0 && !db->generic_txn)
		r = db_pipe_cmd(db, op, "SET LOCAL plan_cache_mode = force_generic_plan");
	if (r == 0)
		r = db_pipe_send(db, op, sql, p);
	if (r == 0 && !db->generic_txn)
		r = db_pipe_cmd(db, op, "RESET plan_cache_mode");
	return r;
}

int db_pipe_sync(struct db *db, struct db_op *op)
{
	if (db->pipe_synced)
		return 0;
	if (!PQpipelineSync(db->conn))
		return pipe_send_failed(db, op);
	db->pipe_synced = true;
	return 0;
}

/* The next result of the pipeline (one statement's, then the NULL that
 * ends them): 0 with *ret_res when asked for, else a failure in op->err. */
static int pipe_result(struct db *db, struct db_op *op, ExecStatusType want, PGresult **ret_res)
{
	PGresult *res = PQgetResult(db->conn), *more;
	bool extra = false;

	/* A statement has one result, then a NULL; anything more is not what
	 * was asked (and a NULL at once is no result at all). */
	while (res && PQresultStatus(res) != PGRES_PIPELINE_SYNC && (more = PQgetResult(db->conn))) {
		PQclear(res);
		res = more;
		extra = true;
	}
	if (extra && res && PQresultStatus(res) == want) {
		PQclear(res);
		op_error(op, "a statement had more than one result");
		return -EIO;
	}
	if (res && PQresultStatus(res) == want) {
		if (ret_res)
			*ret_res = res;
		else
			PQclear(res);
		return 0;
	}
	if (res && PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
		PQclear(res);
		op_error(op, "not run: an earlier statement of its transaction failed");
		return -EIO;
	}
	return exec_failure(db, op, res);
}

int db_pipe_read(struct db *db, struct db_op *op, ExecStatusType want, PGresult **ret_res)
{
	while (db->pipe_read < db->pipe_sent) {
		enum db_pipe_entry kind = db->pipe[db->pipe_read++];
		int r = pipe_result(db, op, kind == DB_PIPE_STMT ? want : PGRES_COMMAND_OK,
				    kind == DB_PIPE_STMT ? ret_res : NULL);
		if (r < 0)
			return r;
		if (kind == DB_PIPE_PREPARE)
			db->pipe_prepared_ok++;
		if (kind == DB_PIPE_STMT)
			return 0;
	}
	op_error(op, "no statement left to read in the pipeline");
	return -EIO;
}

int db_pipe_read_cmd(struct db *db, struct db_op *op)
{
	if (db->pipe_read == db->pipe_sent || db->pipe[db->pipe_read] != DB_PIPE_CMD) {
		op_error(op, "no command left to read in the pipeline");
		return -EIO;
	}
	db->pipe_read++;
	return pipe_result(db, op, PGRES_COMMAND_OK, NULL);
}

/* Forgets the pipeline's connection, whose state is no longer known; the
 * next operation connects again (db_ensure_connected). */
static void pipe_drop_connection(struct db *db)
{
	PQfinish(db->conn);
	db->conn = NULL;
	db_prepared_reset(db);
}

int db_pipe_end(struct db *db, struct db_op *op, int r)
{
	struct db_op scratch = { 0 };
	int e = db_pipe_sync(db, r == 0 ? op : &scratch);

	if (r == 0)
		r = e;
	/* What is left: the commands after the last statement read (a
	 * COMMIT), or, after a failure, what PostgreSQL skipped. */
	while (e != -ENOTCONN && db->pipe_read < db->pipe_sent) {
		enum db_pipe_entry kind = db->pipe[db->pipe_read++];
		e = pipe_result(db, r == 0 ? op : &scratch, PGRES_COMMAND_OK, NULL);
		if (e == 0 && kind == DB_PIPE_PREPARE)
			db->pipe_prepared_ok++;
		if (e == 0 && kind == DB_PIPE_STMT) {
			op_error(r == 0 ? op : &scratch, "a statement's result was not read");
			e = -EIO;
		}
		if (r == 0)
			r = e;
	}
	/* The prepared statements a failure skipped were not made. */
	while (db->n_prepared > db->pipe_prepared_ok)
		free(db->prepared[--db->n_prepared]);
	if (!db_connected(db))
		return r == 0 ? -ENOTCONN : r;
	for (int nulls = 0; db->pipe_synced && nulls < 2 && db_connected(db);) {
		PGresult *res = PQgetResult(db->conn);
		if (!res) {
			nulls++;
			continue;
		}
		nulls = 0;
		ExecStatusType st = PQresultStatus(res);
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
	if (!PQexitPipelineMode(db->conn)) {
		if (r == 0)
			op_error(op, "could not leave pipeline mode: %s", PQerrorMessage(db->conn));
		pipe_drop_connection(db);
		return r == 0 ? -ENOTCONN : r;
	}
	return r;
}

void db_merged_fini(struct db_merged *m)
{
	free(m->rows);
	free(m->scratch);
	m->rows = m->scratch = NULL;
	m->n_rows = 0;
	m->sent = false;
}

int db_merged_run(struct db *db, struct db_merged *m, int (*send)(struct db *, struct db_merged *),
		  int (*read)(struct db *, struct db_merged *))
{
	int r = db_pipe_begin(db, m->ops[0]);

	if (r < 0)
		return r;
	r = send(db, m);
	if (r == 0)
		r = db_pipe_sync(db, m->ops[0]);
	if (r == 0)
		r = read(db, m);
	r = db_pipe_end(db, m->ops[0], r);
	db_merged_fini(m);
	return r;
}

uint64_t get_u64(PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

double get_double(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtod(PQgetvalue(res, row, col), NULL);
}
