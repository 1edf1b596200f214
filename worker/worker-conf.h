/* SPDX-License-Identifier: MIT
 *
 * hf-worker's settings: the one declarative table (name, type, default,
 * bounds, environment variable, description) and the load sequence that
 * fills struct worker_conf from it: defaults, then the configuration file,
 * then the environment, then command-line overrides in the order given.
 * After loading, the values the rest of the worker needs in parsed form
 * (log threshold, runner argv, label list, the devices.* settings as a
 * struct devconf) are derived and checked here, so a bad setting is refused
 * at start with a message naming it.
 *
 * Also the small pure parsers those settings need: "k=v,k=v" labels and a
 * command line split on whitespace.
 *
 * Everything a struct worker_conf holds is malloc'd and owned by it; release
 * it with worker_conf_fini.  Not thread-safe; used by main() at start-up.
 */
#ifndef WORKER_CONF_H
#define WORKER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "device-conf.h"
#include "hf_conf.h"
#include "hf_log.h"

struct worker_label {
	char *key;
	char *value;
};

enum worker_id_source {
	WORKER_ID_FROM_HOST,    /* not set: the host name */
	WORKER_ID_FROM_FILE,
	WORKER_ID_FROM_ENV,     /* HFLEET_WORKER_ID */
	WORKER_ID_FROM_CMDLINE, /* --id, --set worker.id= */
};

struct worker_conf {
	/* Filled from worker_conf_settings. */
	char *coordinator_url;
	char *tls_ca_file;     /* "" = none */
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_server_name;
	char *id;
	char *state_dir;
	char *token_file;
	int64_t slots;
	char *labels;
	int64_t heartbeat_ms;
	int64_t drain_timeout_ms;
	int64_t lease_ahead;
	int64_t lease_ahead_below_ms;
	char *metrics_listen;          /* "" = no HTTP endpoint */
	char *devices_hide;
	char *devices_slots;
	char *devices_shared;
	char *devices_declare;
	char *devices_slot_memory;
	char *hw_root;
	char *nvml_library;
	char *openvino_library;
	char *qnn_sdk_root;
	bool telemetry;
	char *runner_command;
	char *runner_python;
	int64_t runner_timeout_ms;
	int64_t kill_grace_ms;
	int64_t output_limit;
	char *hf_cache;                /* the HuggingFace hub cache to report ("" = the usual places) */
	char *weights_dir;             /* checkpoint directories, ':'-separated ("" = none) */
	bool runner_warm;
	bool runner_prewarm;
	int64_t warm_max_tasks;
	char *warm_max_rss;
	int64_t warm_idle_timeout_ms;
	bool health_on_register;
	int64_t health_interval_ms;
	int64_t health_timeout_ms;
	char *log_level;
	char *log_format;

	/* Derived by worker_conf_load. */
	int log_threshold;
	enum hf_log_format log_format_parsed;
	enum worker_id_source id_source; /* where worker.id came from */
	bool runner_command_derived;     /* runner.command made from runner.python */
	char **runner_argv;              /* NULL-terminated */
	struct worker_label *label_list;
	size_t n_labels;
	struct devconf devconf;          /* devices.* parsed and checked */
	uint64_t warm_max_rss_bytes;     /* runner.warm_max_rss; 0: no limit */
};

/* The settings table, terminated by an entry whose name is NULL. */
extern const struct hf_conf_setting worker_conf_settings[];

/* One command-line override.  With append set, value is added to the
 * setting's current text after a ',' (used for repeated --label). */
struct worker_conf_override {
	const char *name;
	const char *value;
	bool append;
};

/* Loads the configuration: defaults, the file at path (none when NULL), the
 * environment, then the overrides in order; then fills the derived fields
 * (worker.id defaults to the host name; runner.command defaults to
 * "<runner.python> HF_RUNNER_DIR/hfleet_runner.py").  Returns 0, or -ENOENT
 * (file cannot be opened), -EINVAL (bad value) or -ENOMEM with a message in
 * err that names the file, line or setting.  Call worker_conf_fini in all
 * cases; c must be zeroed before the first call. */
int worker_conf_load(struct worker_conf *c, const char *path, const struct worker_conf_override *ov,
		     size_t n_ov, char *err, size_t errlen);

void worker_conf_fini(struct worker_conf *c);

/* Writes the effective configuration as an INI file, every key preceded by
 * its description, after a header naming what was applied (path: the file
 * read, NULL: none; cmdline: whether options set anything).  worker.id says
 * where it came from, and is left commented out when it is the host name;
 * so is runner.command when made from runner.python.  (The worker has no
 * setting that holds a secret: worker.token_file is a path.) */
void worker_conf_print(const struct worker_conf *c, const char *path, bool cmdline, FILE *f);

/* Parses "k=v,k=v" (blanks around items ignored, empty text = no labels).
 * Keys are [A-Za-z0-9._/-]+; values may be empty but contain no ',' or
 * control characters.  A key given twice keeps its last value.  Returns 0,
 * -EINVAL with a message in err, or -ENOMEM.  The list is the caller's:
 * worker_labels_free. */
int worker_labels_parse(const char *text, struct worker_label **ret_labels, size_t *ret_n,
			char *err, size_t errlen);
void worker_labels_free(struct worker_label *labels, size_t n);

/* Splits text on blanks into a NULL-terminated argv, as a shell splits
 * words but with no expansion: '...' keeps every byte, "..." and bare
 * text take a backslash as escaping the next byte, so a path with blanks
 * can be quoted.  Returns 0, -EINVAL when there is no word or a quote is
 * not closed (or a backslash ends the text), or -ENOMEM.  The array is the caller's: worker_argv_free. */
int worker_argv_split(const char *text, char ***ret_argv, size_t *ret_argc);
void worker_argv_free(char **argv);

#endif
