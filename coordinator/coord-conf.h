/* SPDX-License-Identifier: MIT
 *
 * hf-coordinator's settings: the struct and its declarative table (see
 * common/hf_conf.h).  "hf-coordinator --print-config" prints the effective
 * values as a documented file, the database password masked.
 */
#ifndef HF_COORD_CONF_H
#define HF_COORD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hf_conf.h"

struct coord_conf {
	char *worker_listen;
	char *control_listen;
	char *http_listen;
	int64_t telemetry_sample_ms;
	char *conninfo;
	int64_t result_gather_ms;  /* result stores wait this long for others while streaming (db-thread.c) */
	int64_t result_connections; /* 2: large result groups split over a second connection (db-result-lane.c) */
	char *registry_path;
	int64_t heartbeat_ms;
	int64_t max_workers;
	int64_t workers_memory_mib;
	int64_t lease_ms;
	int64_t max_tasks_per_job;
	int64_t cancel_slice;      /* a cancelled job's queued tasks cancelled per statement (db-cancel.c) */
	int64_t submit_slice;      /* a job's tasks written per transaction (db-plans.c) */
	int64_t max_assign_per_poll;
	int64_t locality_wait_ms;
	int64_t poll_hold_max_ms;  /* held polls: the longest hold (0: none) */
	int64_t reserve_below_ms;  /* tasks reserved at the coordinator (reserve.c; 0: none) */
	int64_t worker_contexts;
	int64_t max_connections;
	int64_t requests_per_connection;
	int64_t idle_timeout_ms;
	int64_t reply_timeout_ms;
	int64_t handshake_timeout_ms;
	int64_t quarantine_after;
	int64_t quarantine_recheck_ms;
	bool auth_required;
	char *log_level;
	char *log_format;      /* text, json (common/hf_log.h) */
	char *tls_mode;        /* auto, on, off (coord-tls.c) */
	char *tls_ca_file;     /* "" = none */
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_client_auth; /* none, required */
};

extern const struct hf_conf_setting coord_conf_table[];

/* Writes conninfo (a libpq key=value string or URI) as it is when it holds
 * no password, else as key=value pairs with the password as "********".
 * Returns 0, or -1 when it does not parse (out is then empty). */
int coord_conninfo_masked(const char *conninfo, char *out, size_t len);

/* Writes the effective configuration (--print-config): path is the file
 * read (NULL: none), cmdline whether options set anything.  A conninfo
 * with a password is written masked and commented out. */
void coord_conf_print(const struct coord_conf *c, const char *path, bool cmdline, FILE *f);

#endif
