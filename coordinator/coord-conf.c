/* SPDX-License-Identifier: MIT
 *
 * hf-coordinator's settings table (see coord-conf.h) and --print-config,
 * which masks the database password.  Every key here is documented in
 * docs/operations.md and in deploy/hf-coordinator.conf.
 */
#include "coord-conf.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#define F(x) offsetof(struct coord_conf, x)

const struct hf_conf_setting coord_conf_table[] = {
	{ "coordinator.worker_listen", HF_CONF_STRING, F(worker_listen), "tcp://127.0.0.1:7100", 0, -1,
	  "HFLEET_WORKER_LISTEN", "nng address workers connect to" },
	{ "coordinator.control_listen", HF_CONF_STRING, F(control_listen), "tcp://127.0.0.1:7101", 0, -1,
	  "HFLEET_CONTROL_LISTEN", "nng address hfctl connects to" },
	{ "coordinator.http_listen", HF_CONF_STRING, F(http_listen), "http://127.0.0.1:7102", 0, -1,
	  "HFLEET_HTTP_LISTEN", "address of the HTTP endpoint serving /metrics and /healthz; empty turns it off" },
	{ "coordinator.worker_contexts", HF_CONF_INT, F(worker_contexts), "256", 1, 65536, NULL,
	  "worker requests the coordinator holds at once (received, reply not yet written); at this many it reads no more until one is done" },
	{ "coordinator.max_workers", HF_CONF_INT, F(max_workers), "10000", 1, 1000000, NULL,
	  "workers the coordinator remembers; a new one beyond it replaces the one seen longest ago that is no longer connected, or is refused when all are connected. Each costs what its registration holds, at most 256 KiB (a worker with 8 GPUs: about 3 KiB)" },
	{ "coordinator.workers_memory", HF_CONF_INT, F(workers_memory_mib), "256", 1, 1048576, NULL,
	  "MiB of worker registrations the coordinator keeps at most, whatever their number (a worker with 8 GPUs: about 3 KiB); beyond it, as beyond max_workers" },
	{ "connections.max_per_port", HF_CONF_INT, F(max_connections), "1024", 1, 1048576, NULL,
	  "connections each port (workers', hfctl's) accepts at once; one more is closed at once and logged. Each is an open file: the coordinator warns at start when 2 x this + 256 exceeds its open-file limit" },
	{ "connections.requests_per_connection", HF_CONF_INT, F(requests_per_connection), "5", 1, 65536, NULL,
	  "requests one connection may have unanswered at once (until the reply is written); the coordinator reads no more from it until one is answered (hf-worker has at most 5 calls outstanding, hfctl 1)" },
	{ "connections.idle_timeout", HF_CONF_MS, F(idle_timeout_ms), "60s", 1000, 86400000, NULL,
	  "a connection that sends no request for this long is closed (peers reconnect on their next call); at least 2 x scheduler.heartbeat, as workers poll once per heartbeat" },
	{ "connections.reply_timeout", HF_CONF_MS, F(reply_timeout_ms), "10s", 100, 3600000, NULL,
	  "a connection that has not taken a reply after this long (a peer that does not read) is closed" },
	{ "connections.handshake_timeout", HF_CONF_MS, F(handshake_timeout_ms), "5s", 100, 600000, NULL,
	  "a connection that has not sent its SP header (the first 8 bytes) after this long is closed" },
	{ "database.conninfo", HF_CONF_STRING, F(conninfo), "dbname=hfleet", 0, -1, "HFLEET_DATABASE_URL",
	  "libpq connection string or URI of the results database" },
	{ "database.result_gather", HF_CONF_MS, F(result_gather_ms), "5ms", 0, 100, NULL,
	  "while results stream in, each waits up to this long for others to share its transaction and statement (PostgreSQL's cost of a result statement is mostly fixed); lease grants and every other request never wait for it, and a result is acknowledged only once committed (0: each batch at once)" },
	{ "database.result_connections", HF_CONF_INT, F(result_connections), "1", 1, 2, NULL,
	  "connections that store results: 1, one connection for everything; 2, a large group of result stores (database.result_gather) is split by worker and its halves are stored at once on two connections, so that PostgreSQL works on them in two backends, every other write waiting for both: for a PostgreSQL host with cores to spare (docs/architecture.md, the database thread; docs/performance.md)" },
	{ "registry.path", HF_CONF_STRING, F(registry_path), "", 0, -1, NULL,
	  "model registry file (TSV); empty uses the registry built into hf-coordinator" },
	{ "scheduler.heartbeat", HF_CONF_MS, F(heartbeat_ms), "1s", 50, 60000, NULL,
	  "how often workers poll; told to each worker when it registers" },
	{ "scheduler.lease_timeout", HF_CONF_MS, F(lease_ms), "30s", 200, 3600000, NULL,
	  "a task whose worker has not renewed its lease for this long is queued again" },
	{ "scheduler.max_tasks_per_job", HF_CONF_INT, F(max_tasks_per_job), "200000", 1, 10000000, NULL,
	  "largest job hfctl submit may create" },
	{ "scheduler.cancel_slice", HF_CONF_INT, F(cancel_slice), "500", 1, 1000000, NULL,
	  "a cancelled job's queued tasks are cancelled this many per database statement, one statement after the other, so that results, leases and registrations are stored in between (the job itself, and its running tasks, are cancelled at once)" },
	{ "scheduler.submit_slice", HF_CONF_INT, F(submit_slice), "5000", 1, 1000000, NULL,
	  "a submit writes this many of its job's tasks in its own transaction; the rest of a larger job is committed with it in a compact form and written as tasks after the submitter is answered, this many per transaction on the job lane (docs/database.md, \"Submit\")" },
	{ "scheduler.locality_wait", HF_CONF_MS, F(locality_wait_ms), "30s", 0, 3600000, NULL,
	  "how long a queued task waits for a worker that has its model's weights cached before any worker takes it (0: no preference)" },
	{ "scheduler.poll_hold_max", HF_CONF_MS, F(poll_hold_max_ms), "30s", 0, 30000, NULL,
	  "the longest the coordinator holds the poll of an idle worker (one with free slots and nothing to assign) to answer it as soon as tasks it can run are queued; never longer than scheduler.heartbeat or than the worker asks (its heartbeat). 0: answer every poll at once, and idle workers learn of new work at their next heartbeat" },
	{ "scheduler.reserve_below", HF_CONF_MS, F(reserve_below_ms), "1s", 0, 3600000, NULL,
	  "for a worker that does not lease tasks ahead itself (hf-worker does: worker.lease_ahead), while its last task ran shorter than this, the coordinator commits the lease of the next test for each of its slots before the slot frees and hands it over at the worker's first poll with a free slot, without waiting for a commit then; one not handed over within twice this is queued again (docs/protocol.md, \"Tasks reserved at the coordinator\"; 0: none)" },
	{ "scheduler.max_assign_per_poll", HF_CONF_INT, F(max_assign_per_poll), "16", 1, 1024, NULL,
	  "most tasks handed to one worker in one poll" },
	{ "scheduler.quarantine_after", HF_CONF_INT, F(quarantine_after), "3", 0, 1000, NULL,
	  "a device whose tasks end in this many infrastructure errors in a row is quarantined until a health check passes (0: never)" },
	{ "scheduler.quarantine_recheck", HF_CONF_MS, F(quarantine_recheck_ms), "60s", 1000, 86400000, NULL,
	  "how often the worker of a quarantined device is asked to check it again" },
	{ "telemetry.sample_interval", HF_CONF_MS, F(telemetry_sample_ms), "60s", 1000, 86400000, NULL,
	  "how often device telemetry from heartbeats is written to the database" },
	{ "auth.required", HF_CONF_BOOL, F(auth_required), "true", 0, -1, "HFLEET_AUTH_REQUIRED",
	  "every request must carry a valid token (docs/operations.md, \"Tokens\"); false lets requests without one act as admin, for a lab that nothing but this host can reach (the coordinator warns at every start)" },
	{ "tls.mode", HF_CONF_STRING, F(tls_mode), "auto", 0, -1, NULL,
	  "auto: tls+tcp:// addresses use TLS, tcp:// ones must be on loopback (127.0.0.0/8, ::1, localhost); "
	  "on: every TCP address must be tls+tcp://; off: clear text allowed on any address, with a warning "
	  "at every start (ipc:// is always allowed)" },
	{ "tls.cert_file", HF_CONF_STRING, F(tls_cert_file), "", 0, -1, NULL,
	  "PEM certificate (and chain) the coordinator presents on its tls+tcp:// ports; its names must "
	  "include the host workers and hfctl dial" },
	{ "tls.key_file", HF_CONF_STRING, F(tls_key_file), "", 0, -1, NULL,
	  "PEM unencrypted private key of tls.cert_file (keep it mode 0600)" },
	{ "tls.ca_file", HF_CONF_STRING, F(tls_ca_file), "", 0, -1, NULL,
	  "PEM CA that signs client certificates; needed by tls.client_auth = required" },
	{ "tls.client_auth", HF_CONF_STRING, F(tls_client_auth), "none", 0, -1, NULL,
	  "none: any client may connect over TLS; required: a client must present a certificate signed by "
	  "tls.ca_file, else the handshake fails" },
	{ "log.level", HF_CONF_STRING, F(log_level), "info", 0, -1, "HFLEET_LOG_LEVEL",
	  "error, warn, info or debug" },
	{ "log.format", HF_CONF_STRING, F(log_format), "text", 0, -1, "HFLEET_LOG_FORMAT",
	  "text: \"TIME hf-coordinator[PID] LEVEL: message\"; json: one object per line with ts, "
	  "level, daemon, pid and msg. Under systemd (stderr is the journal) either gets an sd-daemon "
	  "priority prefix, and text drops the time and PID, which the journal keeps" },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

/* Appends "key=value" to out, the value quoted as libpq reads it when it
 * needs to be. */
static void conninfo_add(char *out, size_t len, const char *key, const char *value)
{
	size_t n = strlen(out);
	bool quote = !*value || strpbrk(value, " \t\n\r\\'") != NULL;

	n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s=%s", n ? " " : "", key, quote ? "'" : "");
	for (const char *p = value; *p && n + 2 < len; p++) {
		if (*p == '\\' || *p == '\'')
			out[n++] = '\\';
		out[n++] = *p;
	}
	if (n < len)
		n += (size_t)snprintf(out + n, len - n, "%s", quote ? "'" : "");
	if (n >= len)
		out[len - 1] = '\0';
	else
		out[n] = '\0';
}

int coord_conninfo_masked(const char *conninfo, char *out, size_t len)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &err);
	bool secret = false;

	out[0] = '\0';
	PQfreemem(err);
	if (!opts)
		return -1;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		secret |= o->val && strcmp(o->keyword, "password") == 0;
	if (!secret) {
		/* As written (a URI stays a URI). */
		snprintf(out, len, "%s", conninfo ? conninfo : "");
		PQconninfoFree(opts);
		return 0;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		conninfo_add(out, len, o->keyword, strcmp(o->keyword, "password") == 0 ? "********" : o->val);
	}
	PQconninfoFree(opts);
	return 0;
}

static bool coord_conf_show(const struct hf_conf_setting *s, const void *obj, char *value, size_t value_len,
			    char *note, size_t note_len, void *arg)
{
	const struct coord_conf *c = obj;

	(void)arg;
	if (strcmp(s->name, "database.conninfo") != 0)
		return false;
	if (coord_conninfo_masked(c->conninfo, value, value_len) < 0) {
		snprintf(value, value_len, "(not shown)");
		snprintf(note, note_len, "Not shown: it does not parse as a libpq connection string, "
			 "and the coordinator will refuse it.");
		return true;
	}
	if (strstr(value, "password=")) {
		snprintf(note, note_len, "The password is not shown: put it back, or better keep it out "
			 "of the file (PGPASSFILE, or HFLEET_DATABASE_URL in the unit's EnvironmentFile).");
		return true;
	}
	return false;
}

void coord_conf_print(const struct coord_conf *c, const char *path, bool cmdline, FILE *f)
{
	char header[1024];

	hf_conf_sources(coord_conf_table, "hf-coordinator", path, cmdline, header, sizeof(header));
	hf_conf_print_values(coord_conf_table, c, header, coord_conf_show, NULL, f);
}
