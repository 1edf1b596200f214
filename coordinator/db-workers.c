/* SPDX-License-Identifier: MIT
 *
 * Worker writes of the database layer (see db.h): a registering worker and
 * its devices, drains, device health checks and quarantines, and device
 * telemetry samples.  Runs on the database thread only, inside the group
 * commit's transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db-internal.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

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

int run_worker_upsert(struct db *db, struct db_op *op)
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

int run_drain(struct db *db, struct db_op *op)
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
int run_health_store(struct db *db, struct db_op *op)
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

int run_telemetry_sample(struct db *db, struct db_op *op)
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
