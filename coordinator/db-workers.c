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
	struct db_params p;
	struct db_array col[10];
	int r;

	db_params_init(&p);
	db_param_text(&p, w->worker_id);
	db_param_text(&p, w->hostname);
	db_param_text(&p, w->software_version);
	db_param_u32(&p, "protocol_version", w->protocol_version);
	db_param_text(&p, labels ? labels : "{}");
	db_param_text(&p, cpu ? cpu : "{}");
	db_param_text(&p, runtimes ? runtimes : "[]");
	db_param_text(&p, backends ? backends : "[]");
	r = db_exec(db, op,
		    "INSERT INTO workers (id, hostname, software_version, protocol_version,"
		    " labels, cpu, runtimes, backends, last_seen) VALUES ($1, $2, $3, $4::int,"
		    " $5::jsonb, $6::jsonb, $7::jsonb, $8::jsonb, now())"
		    " ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname,"
		    " software_version = EXCLUDED.software_version,"
		    " protocol_version = EXCLUDED.protocol_version, labels = EXCLUDED.labels,"
		    " cpu = EXCLUDED.cpu, runtimes = EXCLUDED.runtimes, backends = EXCLUDED.backends,"
		    " last_seen = now()",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	free(labels);
	free(cpu);
	free(runtimes);
	free(backends);
	if (r < 0 || w->n_devices == 0)
		return r;

	db_params_init(&p);
	for (int c = 0; c < 10; c++)
		db_array_init(&col[c], &p);
	for (size_t i = 0; i < w->n_devices; i++) {
		const Hf__Device *d = w->devices[i];
		db_array_text(&col[0], hf_backend_name(d->backend));
		db_array_u32(&col[1], "device index", d->index);
		db_array_text(&col[2], d->name);
		db_array_u64(&col[3], "memory_bytes", d->memory_bytes);
		db_array_text(&col[4], d->arch);
		db_array_text(&col[5], d->driver);
		db_array_text(&col[6], d->uuid);
		db_array_u32(&col[7], "slots", d->slots);
		json_t *attrs = json_object();
		for (size_t k = 0; k < d->n_attrs; k++)
			json_object_set_new(attrs, d->attrs[k]->key, json_string(d->attrs[k]->value));
		char *attrs_text = json_dumps(attrs, JSON_COMPACT);
		json_decref(attrs);
		db_array_text(&col[8], attrs_text ? attrs_text : "{}");
		free(attrs_text);
		db_array_bool(&col[9], d->declared);
	}
	db_param_text(&p, w->worker_id);
	for (int c = 0; c < 10; c++)
		db_param_array(&p, &col[c]);
	r = db_exec(db, op,
		    "INSERT INTO devices (worker_id, backend, idx, name, memory_bytes, arch,"
		    " driver, uuid, slots, attrs, declared)"
		    " SELECT $1, u.* FROM unnest($2::text[], $3::int[], $4::text[], $5::bigint[],"
		    " $6::text[], $7::text[], $8::text[], $9::int[], $10::jsonb[], $11::bool[]) AS u"
		    " ON CONFLICT (worker_id, backend, idx) DO UPDATE SET name = EXCLUDED.name,"
		    " memory_bytes = EXCLUDED.memory_bytes, arch = EXCLUDED.arch,"
		    " driver = EXCLUDED.driver, uuid = EXCLUDED.uuid, slots = EXCLUDED.slots,"
		    " attrs = EXCLUDED.attrs, declared = EXCLUDED.declared, updated_at = now()",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}

/* A drain names a whole worker with backend '' and index -1. */
int run_drain(struct db *db, struct db_op *op)
{
	const struct db_drain *d = &op->u.drain.d;
	const char *backend = d->backend >= 0 ? hf_backend_name((Hf__Backend)d->backend) : "";
	struct db_params p;
	int r;

	db_params_init(&p);
	db_param_text(&p, d->worker_id);
	db_param_text(&p, backend);
	db_param_i32(&p, d->index);
	if (op->u.drain.undrain)
		r = db_exec(db, op, "DELETE FROM drains WHERE worker_id = $1 AND backend = $2 AND idx = $3::int",
			    &p, PGRES_COMMAND_OK, NULL);
	else
		r = db_exec(db, op,
			    "INSERT INTO drains (worker_id, backend, idx) VALUES ($1, $2, $3::int)"
			    " ON CONFLICT DO NOTHING",
			    &p, PGRES_COMMAND_OK, NULL);
	/* Returning a device (or a worker) to service also ends its quarantine. */
	if (r == 0 && op->u.drain.undrain && d->backend >= 0)
		r = db_exec(db, op,
			    "DELETE FROM device_quarantine WHERE worker_id = $1 AND backend = $2 AND idx = $3::int",
			    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	if (r == 0 && op->u.drain.undrain && d->backend < 0) {
		db_params_init(&p);
		db_param_text(&p, d->worker_id);
		r = db_exec(db, op, "DELETE FROM device_quarantine WHERE worker_id = $1", &p,
			    PGRES_COMMAND_OK, NULL);
		db_params_fini(&p);
	}
	return r;
}

/* Health check outcomes (one INSERT of arrays) and quarantine changes (an
 * upsert or a delete per device, a handful at most). */
int run_health_store(struct db *db, struct db_op *op)
{
	struct db_params p;
	struct db_array col[8];
	int r = 0;

	if (op->u.health.n_checks > 0) {
		db_params_init(&p);
		for (int c = 0; c < 8; c++)
			db_array_init(&col[c], &p);
		for (size_t i = 0; i < op->u.health.n_checks; i++) {
			const struct db_health_check *h = &op->u.health.checks[i];
			db_array_text(&col[0], h->worker_id);
			db_array_text(&col[1], hf_backend_name((Hf__Backend)h->backend));
			db_array_u32(&col[2], "device index", h->index);
			db_array_bool(&col[3], h->ok);
			db_array_text(&col[4], h->detail ? h->detail : "");
			if (h->duration_s < 0)
				db_array_null(&col[5]);
			else
				db_array_double(&col[5], "duration_s", h->duration_s);
			db_array_text(&col[6], h->trigger ? h->trigger : "");
			if (h->checked_at <= 0)
				db_array_null(&col[7]);
			else
				db_array_double(&col[7], "checked_at", h->checked_at);
		}
		for (int c = 0; c < 8; c++)
			db_param_array(&p, &col[c]);
		r = db_exec(db, op,
			    "INSERT INTO device_health_checks (worker_id, backend, idx, ok, detail,"
			    " duration_s, trigger, checked_at)"
			    " SELECT u.worker_id, u.backend, u.idx, u.ok, u.detail, u.duration_s, u.trigger,"
			    " coalesce(to_timestamp(u.checked_at), now())"
			    " FROM unnest($1::text[], $2::text[], $3::int[], $4::bool[], $5::text[],"
			    " $6::float8[], $7::text[], $8::float8[])"
			    " AS u (worker_id, backend, idx, ok, detail, duration_s, trigger, checked_at)",
			    &p, PGRES_COMMAND_OK, NULL);
		db_params_fini(&p);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < op->u.health.n_states; i++) {
		const struct db_quarantine *q = &op->u.health.states[i];
		db_params_init(&p);
		db_param_text(&p, q->worker_id);
		db_param_text(&p, hf_backend_name((Hf__Backend)q->backend));
		db_param_u32(&p, "device index", q->index);
		if (q->quarantined) {
			db_param_text(&p, q->reason);
			r = db_exec(db, op,
				    "INSERT INTO device_quarantine (worker_id, backend, idx, reason)"
				    " VALUES ($1, $2, $3::int, $4) ON CONFLICT (worker_id, backend, idx)"
				    " DO UPDATE SET reason = EXCLUDED.reason",
				    &p, PGRES_COMMAND_OK, NULL);
		} else {
			r = db_exec(db, op,
				    "DELETE FROM device_quarantine WHERE (worker_id, backend, idx) = ($1, $2, $3::int)",
				    &p, PGRES_COMMAND_OK, NULL);
		}
		db_params_fini(&p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A negative reading is "not available": NULL. */
static void array_reading(struct db_array *a, const char *name, double v)
{
	if (v < 0)
		db_array_null(a);
	else
		db_array_double(a, name, v);
}

int run_telemetry_sample(struct db *db, struct db_op *op)
{
	struct db_params p;
	struct db_array col[7];
	int r;

	if (op->u.telemetry.n == 0)
		return 0;
	db_params_init(&p);
	for (int c = 0; c < 7; c++)
		db_array_init(&col[c], &p);
	for (size_t i = 0; i < op->u.telemetry.n; i++) {
		const struct db_telemetry *t = &op->u.telemetry.v[i];
		db_array_text(&col[0], t->worker_id);
		db_array_text(&col[1], t->backend);
		db_array_u32(&col[2], "device index", t->index);
		array_reading(&col[3], "utilization_pct", t->utilization_pct);
		if (t->memory_used_bytes < 0)
			db_array_null(&col[4]);
		else
			db_array_i64(&col[4], t->memory_used_bytes);
		array_reading(&col[5], "temperature_c", t->temperature_c);
		array_reading(&col[6], "power_w", t->power_w);
	}
	for (int c = 0; c < 7; c++)
		db_param_array(&p, &col[c]);
	r = db_exec(db, op,
		    "INSERT INTO device_telemetry (worker_id, backend, idx, utilization_pct,"
		    " memory_used_bytes, temperature_c, power_w)"
		    " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::real[], $5::bigint[],"
		    " $6::real[], $7::real[])",
		    &p, PGRES_COMMAND_OK, NULL);
	db_params_fini(&p);
	return r;
}
