/* SPDX-License-Identifier: MIT
 *
 * hf-worker's settings table and load sequence (see worker-conf.h).  The
 * table is the documentation: --print-config and the example configuration
 * are generated from it.
 */
#include "worker-conf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_proto.h"

#ifndef HF_RUNNER_DIR
#error "HF_RUNNER_DIR must be defined by the build (the installed runners directory)"
#endif


#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)

#define S(name, type, field, def, min, max, env, desc) \
	{ name, type, offsetof(struct worker_conf, field), def, min, max, env, desc }

const struct hf_conf_setting worker_conf_settings[] = {
	S("coordinator.url", HF_CONF_STRING, coordinator_url, "tcp://127.0.0.1:7100", 0, -1,
	  "HFLEET_WORKER_URL", "address of hf-coordinator's worker endpoint, its coordinator.worker_listen "
	  "(nng URL; not the control address hfctl uses); tls+tcp://HOST:PORT needs tls.ca_file"),
	S("tls.ca_file", HF_CONF_STRING, tls_ca_file, NULL, 0, -1, "HFLEET_CA_FILE",
	  "PEM file of the CA that signs the coordinator's certificate; with a tls+tcp:// coordinator.url "
	  "the coordinator's certificate is always verified against it"),
	S("tls.cert_file", HF_CONF_STRING, tls_cert_file, NULL, 0, -1, NULL,
	  "PEM client certificate presented to a coordinator that requires one (tls.client_auth), "
	  "with tls.key_file"),
	S("tls.key_file", HF_CONF_STRING, tls_key_file, NULL, 0, -1, NULL,
	  "PEM unencrypted private key of tls.cert_file (keep it mode 0600)"),
	S("tls.server_name", HF_CONF_STRING, tls_server_name, NULL, 0, -1, NULL,
	  "name the coordinator's certificate must carry (default: the host in coordinator.url)"),
	S("worker.id", HF_CONF_STRING, id, NULL, 0, -1, "HFLEET_WORKER_ID",
	  "name of this worker, unique in the fleet (default: the host name)"),
	S("worker.token_file", HF_CONF_STRING, token_file, NULL, 0, -1, "HFLEET_WORKER_TOKEN_FILE",
	  "file holding this worker's token (hft_...; mode 0600), made by an admin with \"hfctl token create WORKER_ID --role worker\"; the token's name must be worker.id"),
	S("worker.state_dir", HF_CONF_STRING, state_dir, "/var/lib/hfleet-worker", 0, -1, NULL,
	  "directory for task files and the result spool (must survive restarts)"),
	S("worker.slots", HF_CONF_INT, slots, "1", 1, 256, NULL,
	  "tasks the CPU device runs at once"),
	S("worker.labels", HF_CONF_STRING, labels, NULL, 0, -1, NULL,
	  "labels the coordinator can match tasks on, as \"key=value,key=value\""),
	S("worker.heartbeat", HF_CONF_MS, heartbeat_ms, "1s", 50, MS_MINUTE, NULL,
	  "poll interval until the coordinator names one"),
	S("worker.lease_ahead", HF_CONF_INT, lease_ahead, "16", 0, 256, NULL,
	  "tasks of one device to hold leased beyond its free slots, per device (the coordinator "
	  "grants at most 4 per slot), each started the moment a slot frees without a poll (a "
	  "benchmark once the device is idle, alone), while tasks are short "
	  "(worker.lease_ahead_below); 0: none, every task asked for when a slot is free"),
	S("worker.lease_ahead_below", HF_CONF_MS, lease_ahead_below_ms, "1s", 0, MS_DAY, NULL,
	  "tasks are leased ahead only while each of the last 8 tasks this worker ran took less "
	  "than this (a long task stops it until 8 short ones have run again); 0: always"),
	S("worker.drain_timeout", HF_CONF_MS, drain_timeout_ms, "5m", 0, MS_DAY, NULL,
	  "on SIGTERM, how long running tasks may go on before they are stopped"),
	S("worker.metrics_listen", HF_CONF_STRING, metrics_listen, NULL, 0, -1, NULL,
	  "serve /metrics (Prometheus) and /healthz on this URL, e.g. \"http://127.0.0.1:7103\"; empty: off"),
	S("devices.hide", HF_CONF_STRING, devices_hide, NULL, 0, -1, NULL,
	  "devices not offered, as \"cuda:1,rocm:0\"; a backend alone (\"cuda\") hides all its "
	  "devices and is not probed"),
	S("devices.slots", HF_CONF_STRING, devices_slots, NULL, 0, -1, NULL,
	  "tasks a device runs at once, per backend or device, as \"cuda=1,cpu=4,cuda:3=2\" "
	  "(default 1 per accelerator, worker.slots for the CPU); more than 1 needs "
	  "devices.shared; \"auto\" (\"cuda=auto\") sizes a device from the machine: its share "
	  "of the CPUs, at most its memory / devices.slot_memory, and makes it shared"),
	S("devices.slot_memory", HF_CONF_STRING, devices_slot_memory, "8GiB", 0, -1, NULL,
	  "device memory one slot of a devices.slots=auto device needs, as bytes or with KiB, MiB, "
	  "GiB, TiB, KB, MB, GB or TB"),
	S("devices.shared", HF_CONF_STRING, devices_shared, "cpu", 0, -1, NULL,
	  "devices or backends whose slots may run different tasks at once, as \"cpu,cuda:3\"; "
	  "any other device runs one task at a time, and a benchmark always has its device alone"),
	S("devices.declare", HF_CONF_STRING, devices_declare, NULL, 0, -1, NULL,
	  "devices the probe cannot find or describe, as \"qnn:0:name=Hexagon HTP v75:"
	  "memory=8GiB:arch=v75;openvino:0:name=NPU\" (fields name, memory, arch, driver, uuid, "
	  "attr.KEY)"),
	S("hardware.sysfs_root", HF_CONF_STRING, hw_root, NULL, 0, -1, NULL,
	  "prefix of /sys, /proc and /dev for hardware detection (empty: this system's)"),
	S("hardware.nvml_library", HF_CONF_STRING, nvml_library, "libnvidia-ml.so.1", 0, -1, NULL,
	  "NVIDIA's NVML library, by name or path, for CUDA devices"),
	S("hardware.openvino_library", HF_CONF_STRING, openvino_library, "libopenvino_c.so", 0, -1,
	  NULL,
	  "OpenVINO's C library, by name or path (with the default name, versioned "
	  "libopenvino_c.so.* files in the standard directories are tried too)"),
	S("hardware.qnn_sdk_root", HF_CONF_STRING, qnn_sdk_root, NULL, 0, -1, NULL,
	  "QNN SDK directory whose lib/<target>/libQnnHtp.so is used (empty: $QNN_SDK_ROOT, else "
	  "the library search path)"),
	S("hardware.telemetry", HF_CONF_BOOL, telemetry, "true", 0, -1, NULL,
	  "send device utilisation, memory, temperature and power with every poll"),
	S("runner.command", HF_CONF_STRING, runner_command, NULL, 0, -1, NULL,
	  "runner command line, split on blanks as a shell would (quotes and backslashes, "
	  "no expansion); the worker adds \"--task FILE "
	  "--result FILE\", \"--serve\" or \"--probe\" (default: \"<runner.python> " HF_RUNNER_DIR
	  "/hfleet_runner.py\")"),
	S("runner.python", HF_CONF_STRING, runner_python, "python3", 0, -1, NULL,
	  "Python interpreter of the default runner command"),
	S("runner.timeout", HF_CONF_MS, runner_timeout_ms, "30m", MS_SECOND, 7 * MS_DAY, NULL,
	  "time limit of a task whose assignment names none"),
	S("runner.kill_grace", HF_CONF_MS, kill_grace_ms, "10s", 0, 10 * MS_MINUTE, NULL,
	  "time between SIGTERM and SIGKILL when a runner is stopped"),
	S("runner.output_limit", HF_CONF_INT, output_limit, "65536", 4096, 64 * 1024 * 1024, NULL,
	  "bytes of a runner's output kept (the last ones); results carry the last 4096"),
	S("runner.hf_cache", HF_CONF_STRING, hf_cache, "", 0, -1, NULL,
	  "HuggingFace hub cache whose models are reported so the coordinator prefers this worker for "
	  "them, and runners read (set: given to runners as HF_HUB_CACHE; empty: $HF_HUB_CACHE, "
	  "$HF_HOME/hub or ~/.cache/huggingface/hub)"),
	S("runner.weights_dir", HF_CONF_STRING, weights_dir, "", 0, -1, NULL,
	  "directories of pretrained checkpoints, ':'-separated, each model in DIR/ORG/NAME or "
	  "DIR/NAME (config.json and weights, as save_pretrained writes them); runners load them "
	  "before the hub cache (given to runners as HFLEET_WEIGHTS_DIR) and they are reported "
	  "like cached models"),
	S("runner.warm", HF_CONF_BOOL, runner_warm, "true", 0, -1, NULL,
	  "run the tasks of one device in long-lived \"<runner.command> --serve\" processes, up "
	  "to one per slot, importing frameworks once; false: a process per task"),
	S("runner.warm_max_tasks", HF_CONF_INT, warm_max_tasks, "200", 0, 1000000, NULL,
	  "a warm runner is replaced after serving this many tasks (0: no limit)"),
	S("runner.warm_max_rss", HF_CONF_STRING, warm_max_rss, "16GiB", 0, -1, NULL,
	  "a warm runner whose resident memory exceeds this after a task is replaced, as bytes "
	  "or with KiB MiB GiB TiB (0: no limit)"),
	S("runner.prewarm", HF_CONF_BOOL, runner_prewarm, "true", 0, -1, NULL,
	  "with runner.warm: start a warm runner for every slot of every device once registered, "
	  "and replace one that retires, so no task waits for a runner to import its frameworks"),
	S("runner.warm_idle_timeout", HF_CONF_MS, warm_idle_timeout_ms, "10m", 0, MS_DAY, NULL,
	  "a warm runner idle this long exits, freeing its device memory (0: never); with "
	  "runner.prewarm a fresh one, holding none, takes its slot"),
	S("health.on_register", HF_CONF_BOOL, health_on_register, "true", 0, -1, NULL,
	  "run a health check (\"<runner.command> --health --backend B --result FILE\") on every "
	  "device after registering; a device that fails it starts quarantined"),
	S("health.interval", HF_CONF_MS, health_interval_ms, "1h", 0, 30 * MS_DAY, NULL,
	  "check an idle device this often (0: only at registration and when the coordinator asks)"),
	S("health.timeout", HF_CONF_MS, health_timeout_ms, "2m", MS_SECOND, MS_HOUR, NULL,
	  "a health check that runs longer is stopped and counts as failed"),
	S("log.level", HF_CONF_STRING, log_level, "info", 0, -1, "HFLEET_LOG_LEVEL",
	  "error, warn, info or debug"),
	S("log.format", HF_CONF_STRING, log_format, "text", 0, -1, "HFLEET_LOG_FORMAT",
	  "text: \"TIME hf-worker[PID] LEVEL: message\"; json: one object per line with ts, level, "
	  "daemon, pid and msg. Under systemd (stderr is the journal) either gets an sd-daemon "
	  "priority prefix, and text drops the time and PID, which the journal keeps"),
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

#undef S

static int conf_apply_override(struct worker_conf *c, const struct worker_conf_override *o,
			       char *err, size_t errlen)
{
	const char *value = o->value;
	char *joined = NULL;
	char msg[512];
	int r;

	if (o->append) {
		const struct hf_conf_setting *s;
		const char *cur = NULL;

		for (s = worker_conf_settings; s->name; s++)
			if (strcmp(s->name, o->name) == 0)
				break;
		if (s->name && s->type == HF_CONF_STRING)
			cur = *(char **)((char *)c + s->offset);
		if (cur && *cur) {
			if (asprintf(&joined, "%s,%s", cur, o->value) < 0) {
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			value = joined;
		}
	}
	r = hf_conf_set(worker_conf_settings, c, o->name, value, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, errlen, "command line: %s", msg);
	free(joined);
	return r;
}

/* The coordinator's rule for worker ids (common/hf_limits.h): refused here
 * at start rather than by every registration. */
static bool id_valid(const char *id)
{
	return hf_id_valid(id) && strlen(id) <= HF_WORKER_ID_MAX;
}

static int conf_derive(struct worker_conf *c, char *err, size_t errlen)
{
	char host[HOST_NAME_MAX + 1];
	char msg[256];
	int r;

	if (hf_log_level_parse(c->log_level, &c->log_threshold) < 0) {
		snprintf(err, errlen,
			 "invalid value for setting \"log.level\": \"%s\" (use error, warn, info or debug)",
			 c->log_level);
		return -EINVAL;
	}
	if (hf_log_format_parse(c->log_format, &c->log_format_parsed) < 0) {
		snprintf(err, errlen, "invalid value for setting \"log.format\": \"%s\" (use text or json)",
			 c->log_format);
		return -EINVAL;
	}
	if (!c->coordinator_url || !*c->coordinator_url) {
		snprintf(err, errlen, "setting \"coordinator.url\" must not be empty");
		return -EINVAL;
	}
	if (!c->state_dir || !*c->state_dir) {
		snprintf(err, errlen, "setting \"worker.state_dir\" must not be empty");
		return -EINVAL;
	}

	if (!c->id || !*c->id) {
		if (gethostname(host, sizeof(host)) < 0) {
			r = -errno;
			snprintf(err, errlen, "could not get the host name for \"worker.id\": %s",
				 strerror(-r));
			return r;
		}
		host[sizeof(host) - 1] = '\0';
		free(c->id);
		c->id = strdup(host);
		if (!c->id)
			goto oom;
		c->id_source = WORKER_ID_FROM_HOST;
	}
	if (!id_valid(c->id)) {
		snprintf(err, errlen,
			 "invalid value for setting \"worker.id\": \"%s\" (1 to %d of A-Z a-z 0-9 . _ : -)",
			 c->id, HF_WORKER_ID_MAX);
		return -EINVAL;
	}

	if (!c->runner_command || !*c->runner_command) {
		if (!c->runner_python || !*c->runner_python) {
			snprintf(err, errlen, "setting \"runner.python\" must not be empty");
			return -EINVAL;
		}
		free(c->runner_command);
		c->runner_command = NULL;
		if (asprintf(&c->runner_command, "%s %s/hfleet_runner.py", c->runner_python,
			     HF_RUNNER_DIR) < 0) {
			c->runner_command = NULL;
			goto oom;
		}
		c->runner_command_derived = true;
	}
	r = worker_argv_split(c->runner_command, &c->runner_argv, NULL);
	if (r == -EINVAL) {
		snprintf(err, errlen,
			 "setting \"runner.command\" must not be blank, and its quotes must be closed");
		return r;
	}
	if (r < 0)
		goto oom;

	if (devconf_memory_parse(c->warm_max_rss ? c->warm_max_rss : "", &c->warm_max_rss_bytes) <
	    0) {
		snprintf(err, errlen,
			 "invalid value for setting \"runner.warm_max_rss\": \"%s\" (use bytes, or a "
			 "number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)",
			 c->warm_max_rss ? c->warm_max_rss : "");
		return -EINVAL;
	}

	r = worker_labels_parse(c->labels, &c->label_list, &c->n_labels, msg, sizeof(msg));
	if (r == -EINVAL) {
		snprintf(err, errlen, "invalid value for setting \"worker.labels\": %s", msg);
		return r;
	}
	if (r < 0)
		goto oom;

	r = devconf_init(&c->devconf, c->devices_hide, c->devices_slots, c->devices_shared,
			 c->devices_declare, (unsigned)c->slots, err, errlen);
	if (r < 0)
		return r;
	if (devconf_memory_parse(c->devices_slot_memory ? c->devices_slot_memory : "",
				 &c->devconf.slot_memory) < 0 ||
	    c->devconf.slot_memory == 0) {
		snprintf(err, errlen,
			 "invalid value for setting \"devices.slot_memory\": \"%s\" (use bytes above "
			 "0, or a number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)",
			 c->devices_slot_memory ? c->devices_slot_memory : "");
		return -EINVAL;
	}
	return 0;

oom:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

/* $HFLEET_COORDINATOR, which hfctl also read (as its control address), is
 * the old name of $HFLEET_WORKER_URL: used for a release, with a warning,
 * when the new one is not set. */
static int old_env_load(struct worker_conf *c, char *err, size_t errlen)
{
	const char *old = getenv("HFLEET_COORDINATOR"), *now = getenv("HFLEET_WORKER_URL");

	if (!old || !old[0] || (now && now[0]))
		return 0;
	log_warn("HFLEET_COORDINATOR is deprecated for hf-worker: set HFLEET_WORKER_URL (the "
		 "coordinator's worker address); using HFLEET_COORDINATOR=%s as the worker address",
		 old);
	return hf_conf_set(worker_conf_settings, c, "coordinator.url", old, err, errlen);
}

int worker_conf_load(struct worker_conf *c, const char *path, const struct worker_conf_override *ov,
		     size_t n_ov, char *err, size_t errlen)
{
	int r;

	r = hf_conf_defaults(worker_conf_settings, c, err, errlen);
	if (r < 0)
		return r;
	c->id_source = WORKER_ID_FROM_HOST; /* worker.id has no default */
	c->runner_command_derived = false;
	if (path) {
		r = hf_conf_load_file(worker_conf_settings, c, path, err, errlen);
		if (r < 0)
			return r;
		if (c->id)
			c->id_source = WORKER_ID_FROM_FILE;
	}
	r = old_env_load(c, err, errlen);
	if (r == 0)
		r = hf_conf_load_env(worker_conf_settings, c, err, errlen);
	if (r < 0)
		return r;
	if (getenv("HFLEET_WORKER_ID"))
		c->id_source = WORKER_ID_FROM_ENV;
	for (size_t i = 0; i < n_ov; i++) {
		r = conf_apply_override(c, &ov[i], err, errlen);
		if (r < 0)
			return r;
		if (strcmp(ov[i].name, "worker.id") == 0)
			c->id_source = WORKER_ID_FROM_CMDLINE;
	}
	return conf_derive(c, err, errlen);
}

void worker_conf_fini(struct worker_conf *c)
{
	if (!c)
		return;
	hf_conf_fini(worker_conf_settings, c);
	worker_argv_free(c->runner_argv);
	worker_labels_free(c->label_list, c->n_labels);
	devconf_fini(&c->devconf);
	c->runner_argv = NULL;
	c->label_list = NULL;
	c->n_labels = 0;
}

struct print_ctx {
	const char *path;
};

/* worker.id and runner.command: say where a value came from, and leave one
 * derived from elsewhere (the host name, runner.python) commented out, so
 * that a file made from the output pins neither the host nor the runner's
 * path. */
static bool worker_conf_show(const struct hf_conf_setting *s, const void *obj, char *value, size_t value_len,
			     char *note, size_t note_len, void *arg)
{
	const struct worker_conf *c = obj;
	const struct print_ctx *p = arg;

	(void)value;
	(void)value_len;
	if (strcmp(s->name, "worker.id") == 0) {
		switch (c->id_source) {
		case WORKER_ID_FROM_HOST:
			snprintf(note, note_len, "Not set: the host name is the worker id.");
			return true;
		case WORKER_ID_FROM_FILE:
			snprintf(note, note_len, "Set in %s.", p->path ? p->path : "the configuration file");
			break;
		case WORKER_ID_FROM_ENV:
			snprintf(note, note_len, "Set by the environment (HFLEET_WORKER_ID).");
			break;
		case WORKER_ID_FROM_CMDLINE:
			snprintf(note, note_len, "Set on the command line.");
			break;
		}
		return false;
	}
	if (strcmp(s->name, "runner.command") == 0 && c->runner_command_derived) {
		snprintf(note, note_len, "Not set: made from runner.python.");
		return true;
	}
	return false;
}

void worker_conf_print(const struct worker_conf *c, const char *path, bool cmdline, FILE *f)
{
	struct print_ctx p = { path };
	char header[1024];

	hf_conf_sources(worker_conf_settings, "hf-worker", path, cmdline, header, sizeof(header));
	hf_conf_print_values(worker_conf_settings, c, header, worker_conf_show, &p, f);
}

/* ---- labels ---- */

static bool label_key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-' || ch == '/';
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *trim_end(const char *begin, const char *p)
{
	while (p > begin && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	return p;
}

void worker_labels_free(struct worker_label *labels, size_t n)
{
	for (size_t i = 0; labels && i < n; i++) {
		free(labels[i].key);
		free(labels[i].value);
	}
	free(labels);
}

int worker_labels_parse(const char *text, struct worker_label **ret_labels, size_t *ret_n,
			char *err, size_t errlen)
{
	struct worker_label *list = NULL;
	size_t n = 0;
	int r = 0;

	for (const char *p = text ? text : ""; *p;) {
		const char *item_end = strchr(p, ',');
		if (!item_end)
			item_end = p + strlen(p);
		const char *k = skip_blanks(p, item_end);
		const char *eq = memchr(k, '=', (size_t)(item_end - k));
		const char *next = *item_end ? item_end + 1 : item_end;

		if (k == item_end) { /* an empty item, e.g. a trailing comma */
			p = next;
			continue;
		}
		if (!eq) {
			snprintf(err, errlen, "label \"%.*s\" is not key=value", (int)(item_end - k), k);
			r = -EINVAL;
			goto fail;
		}
		const char *k_end = trim_end(k, eq);
		const char *v = skip_blanks(eq + 1, item_end);
		const char *v_end = trim_end(v, item_end);
		if (k_end == k) {
			snprintf(err, errlen, "label \"%.*s\" has an empty key", (int)(item_end - k), k);
			r = -EINVAL;
			goto fail;
		}
		for (const char *q = k; q < k_end; q++) {
			if (!label_key_char(*q)) {
				snprintf(err, errlen,
					 "label key \"%.*s\" may only contain letters, digits and . _ - /",
					 (int)(k_end - k), k);
				r = -EINVAL;
				goto fail;
			}
		}
		for (const char *q = v; q < v_end; q++) {
			if ((unsigned char)*q < ' ' || *q == 0x7f) {
				snprintf(err, errlen, "label \"%.*s\" has a control character in its value",
					 (int)(k_end - k), k);
				r = -EINVAL;
				goto fail;
			}
		}

		char *key = strndup(k, (size_t)(k_end - k));
		char *value = strndup(v, (size_t)(v_end - v));
		if (!key || !value) {
			free(key);
			free(value);
			r = -ENOMEM;
			goto fail;
		}
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(list[i].key, key) == 0)
				break;
		if (i < n) { /* the last value given wins */
			free(key);
			free(list[i].value);
			list[i].value = value;
		} else {
			struct worker_label *grown = realloc(list, (n + 1) * sizeof(*list));
			if (!grown) {
				free(key);
				free(value);
				r = -ENOMEM;
				goto fail;
			}
			list = grown;
			list[n].key = key;
			list[n].value = value;
			n++;
		}
		p = next;
	}
	*ret_labels = list;
	*ret_n = n;
	return 0;

fail:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	worker_labels_free(list, n);
	return r;
}

/* ---- command lines ---- */

void worker_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* Reads one word starting at *pp (not a blank) into a new string: quotes
 * ('...' takes every byte as it is, "..." and bare text take a backslash
 * as escaping the next byte) group bytes into the word, and are removed.
 * Returns the word, or NULL with *ret_rv set (-EINVAL unbalanced quote or
 * trailing backslash, -ENOMEM). */
static char *argv_word(const char **pp, int *ret_rv)
{
	static const char blanks[] = " \t\n\r\v\f";
	const char *p = *pp;
	char *word = malloc(strlen(p) + 1), *out = word;
	char quote = 0;

	if (!word) {
		*ret_rv = -ENOMEM;
		return NULL;
	}
	for (; *p && (quote || !strchr(blanks, *p)); p++) {
		if (quote == '\'' && *p != '\'') {
			*out++ = *p;
		} else if (*p == '\'' || *p == '"') {
			if (!quote)
				quote = *p;
			else if (quote == *p)
				quote = 0;
			else
				*out++ = *p;
		} else if (*p == '\\') {
			if (!p[1])
				break;
			*out++ = *++p;
		} else {
			*out++ = *p;
		}
	}
	if (quote || *p == '\\') {
		free(word);
		*ret_rv = -EINVAL;
		return NULL;
	}
	*out = '\0';
	*pp = p;
	return word;
}

int worker_argv_split(const char *text, char ***ret_argv, size_t *ret_argc)
{
	static const char blanks[] = " \t\n\r\v\f";
	char **argv = NULL;
	size_t n = 0;
	int rv = -ENOMEM;

	for (const char *p = text ? text : "";;) {
		p += strspn(p, blanks);
		if (!*p)
			break;
		char **grown = realloc(argv, (n + 2) * sizeof(*argv));
		if (!grown)
			goto fail;
		argv = grown;
		argv[n] = argv_word(&p, &rv);
		if (!argv[n])
			goto fail;
		argv[++n] = NULL;
	}
	if (n == 0)
		return -EINVAL;
	*ret_argv = argv;
	if (ret_argc)
		*ret_argc = n;
	return 0;

fail:
	if (argv)
		argv[n] = NULL;
	worker_argv_free(argv);
	return rv;
}
