/* SPDX-License-Identifier: MIT
 *
 * The statement helpers of the database layer (see db.h): building a
 * statement's parameters, running it, and translating libpq's errors into
 * op->rc and op->err; nowhere else is a libpq error looked at.  Runs on the
 * database thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* ---- statement helpers ---- */

void params_init(struct params *p)
{
	memset(p, 0, sizeof(*p));
}

void params_fini(struct params *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->owned[i]);
	free(p->v);
	free(p->owned);
	memset(p, 0, sizeof(*p));
}

/* Appends a parameter and "$N" to sql.  s is copied. */
void param(struct params *p, struct hf_buf *sql, const char *s)
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

void paramf(struct params *p, struct hf_buf *sql, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	param(p, sql, tmp);
}

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

/* Runs sql with params; want is the expected status.  Returns 0 with
 * *ret_res (when asked for; PQclear it), -ENOTCONN when the connection is
 * gone, -EIO when the statement failed, -ENOMEM. */
int db_exec(struct db *db, struct db_op *op, const char *sql, const struct params *p,
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

int db_cmd(struct db *db, struct db_op *op, const char *sql)
{
	return db_exec(db, op, sql, NULL, PGRES_COMMAND_OK, NULL);
}

uint64_t get_u64(PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

double get_double(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtod(PQgetvalue(res, row, col), NULL);
}
void param_float(struct params *p, struct hf_buf *sql, double v)
{
	if (v < 0)
		param(p, sql, NULL);
	else
		paramf(p, sql, "%.3f", v);
}
