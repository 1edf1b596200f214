/* SPDX-License-Identifier: MIT
 *
 * Argument parsing and validation for hfctl (see hfctl-args.h).  Every
 * message about a bad argument is written here, so that they read alike and
 * the unit tests pin them.
 */
#include "hfctl-args.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hf_conf.h"
#include "hf_util.h"
#include "hfctl-format.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* common/ has hf_precision_valid but no list of the names: keep this in step
 * with it. */
#define PRECISION_NAMES "fp32, fp16, bf16, int8"

/* ---- lists ---- */

void hfctl_list_fini(struct hfctl_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static bool list_has(const struct hfctl_list *l, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(l->items[i]) == len && memcmp(l->items[i], s, len) == 0)
			return true;
	return false;
}

int hfctl_list_split(struct hfctl_list *l, const char *opt, const char *text, char *err,
		     size_t errlen)
{
	size_t count = 1, n = l->n;
	char **items;
	const char *p;
	int r = -EINVAL;

	for (p = text; *p; p++)
		count += *p == ',';
	items = realloc(l->items, (l->n + count) * sizeof(*items));
	if (!items)
		goto oom;
	l->items = items;

	/* Items are added past l->n and only counted in at the end, so that a
	 * refused list leaves l as it was. */
	for (p = text;; p++) {
		size_t len = strcspn(p, ",");

		if (len == 0) {
			snprintf(err, errlen, "empty item in %s \"%s\"", opt, text);
			goto fail;
		}
		if (list_has(l, n, p, len)) {
			snprintf(err, errlen, "\"%.*s\" is listed twice in %s", (int)len, p, opt);
			goto fail;
		}
		items[n] = strndup(p, len);
		if (!items[n])
			goto oom;
		n++;
		p += len;
		if (*p == '\0')
			break;
	}
	l->n = n;
	return 0;

oom:
	snprintf(err, errlen, "out of memory");
	r = -ENOMEM;
fail:
	while (n > l->n)
		free(l->items[--n]);
	return r;
}

/* ---- numbers and durations ---- */

/* Parses digits with an optional leading "-".  Returns -EINVAL when text is
 * not such a number, -ERANGE when it does not fit. */
static int number_parse(const char *text, int64_t *ret)
{
	const char *digits = text[0] == '-' ? text + 1 : text;
	long long v;
	char *end;

	if (*digits < '0' || *digits > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*ret = v;
	return 0;
}

int hfctl_parse_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *ret,
		    char *err, size_t errlen)
{
	int64_t v;
	int r = number_parse(text, &v);

	if (r == -EINVAL) {
		snprintf(err, errlen, "invalid value \"%s\" for %s: expected a whole number", text, opt);
		return -EINVAL;
	}
	if (r < 0 || v < min || v > max) {
		snprintf(err, errlen, "invalid value \"%s\" for %s: must be between %" PRId64 " and %" PRId64,
			 text, opt, min, max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int parse_u32(const char *opt, const char *text, uint32_t max, uint32_t *ret, char *err,
		     size_t errlen)
{
	int64_t v;
	int r = hfctl_parse_int(opt, text, 1, max, &v, err, errlen);

	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}

int hfctl_parse_duration(const char *opt, const char *text, int64_t min_ms, int64_t *ret_ms,
			 char *err, size_t errlen)
{
	char min[32];
	int64_t ms;

	if (hf_conf_parse_ms(text, &ms) < 0) {
		snprintf(err, errlen,
			 "invalid value \"%s\" for %s: expected a duration such as 500ms, 5s or 2m", text,
			 opt);
		return -EINVAL;
	}
	if (ms < min_ms) {
		hfctl_duration_format(min_ms, min, sizeof(min));
		snprintf(err, errlen, "invalid value \"%s\" for %s: must be at least %s", text, opt, min);
		return -EINVAL;
	}
	*ret_ms = ms;
	return 0;
}

int hfctl_parse_since(const char *opt, const char *text, double now_s, double *ret, char *err,
		      size_t errlen)
{
	static const struct {
		char unit;
		double seconds;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 } };
	size_t len = strlen(text), digits = strspn(text, "0123456789");
	double t = -1;

	if (digits > 0 && digits <= 9 && len == digits + 1) {
		for (size_t i = 0; i < N_ELEM(units); i++)
			if (text[digits] == units[i].unit)
				t = now_s - strtod(text, NULL) * units[i].seconds;
	} else if (len >= 10 && len <= 19) {
		struct tm tm = { 0 };
		const char *end = strptime(text, "%Y-%m-%d", &tm);
		if (end && *end == 'T')
			end = strptime(end + 1, strchr(end + 1, ':') && strchr(strchr(end + 1, ':') + 1, ':') ?
						 "%H:%M:%S" : "%H:%M", &tm);
		if (end && *end == '\0') {
			tm.tm_isdst = -1;
			time_t v = mktime(&tm);
			if (v != (time_t)-1)
				t = (double)v;
		}
	}
	if (t < 0 || t > now_s) {
		snprintf(err, errlen,
			 "invalid value \"%s\" for %s: expected a date (2026-05-01), a date and time "
			 "(2026-05-01T18:30) or a duration back from now (30m, 12h, 7d, 2w), not in the future",
			 text, opt);
		return -EINVAL;
	}
	*ret = t;
	return 0;
}

/* ---- requirements ---- */

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_lower_alnum(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z');
}

static bool is_alnum(char ch)
{
	return is_lower_alnum(ch) || (ch >= 'A' && ch <= 'Z');
}

int hfctl_parse_size(const char *opt, const char *text, uint64_t *ret, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		uint64_t factor;
	} units[] = {
		{ "", 1 },
		{ "b", 1 },
		{ "k", (uint64_t)1 << 10 },
		{ "kib", (uint64_t)1 << 10 },
		{ "kb", 1000 },
		{ "m", (uint64_t)1 << 20 },
		{ "mib", (uint64_t)1 << 20 },
		{ "mb", 1000 * 1000 },
		{ "g", (uint64_t)1 << 30 },
		{ "gib", (uint64_t)1 << 30 },
		{ "gb", 1000 * 1000 * 1000 },
		{ "t", (uint64_t)1 << 40 },
		{ "tib", (uint64_t)1 << 40 },
		{ "tb", (uint64_t)1000 * 1000 * 1000 * 1000 },
	};
	const char *p = text;
	uint64_t v = 0, factor = 0;

	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			goto too_large;
		v = v * 10 + d;
	}
	for (size_t i = 0; p != text && i < N_ELEM(units); i++)
		if (strcasecmp(p, units[i].name) == 0)
			factor = units[i].factor;
	if (factor == 0) {
		snprintf(err, errlen,
			 "invalid value \"%s\" for %s: expected a whole number with an optional unit, "
			 "such as 16GiB, 500MB or 24G",
			 text, opt);
		return -EINVAL;
	}
	if (v == 0) {
		snprintf(err, errlen, "invalid value \"%s\" for %s: must be more than 0", text, opt);
		return -EINVAL;
	}
	if (v > UINT64_MAX / factor)
		goto too_large;
	*ret = v * factor;
	return 0;

too_large:
	snprintf(err, errlen, "invalid value \"%s\" for %s: too large", text, opt);
	return -EINVAL;
}

/* Parses 1 or 2 digits at *p, advancing it; a leading zero is refused
 * ("7.05" is a typo, not 7.5). */
static int two_digits_parse(const char **p, unsigned *ret)
{
	const char *start = *p;
	unsigned v = 0;
	size_t n = 0;

	for (; is_digit(**p); (*p)++, n++)
		v = v * 10 + (unsigned)(**p - '0');
	if (n == 0 || n > 2 || (n == 2 && *start == '0'))
		return -EINVAL;
	*ret = v;
	return 0;
}

int hfctl_parse_compute_capability(const char *opt, const char *text, char *ret, char *err,
				   size_t errlen)
{
	const char *p = text;
	unsigned major, minor;

	if (two_digits_parse(&p, &major) < 0 || major == 0 || *p++ != '.' ||
	    two_digits_parse(&p, &minor) < 0 || *p != '\0') {
		snprintf(err, errlen,
			 "invalid value \"%s\" for %s: expected MAJOR.MINOR such as 8.0 or 9.0", text,
			 opt);
		return -EINVAL;
	}
	/* Both are below 100: as unsigned char they fit in HFCTL_CC_MAX, also
	 * to the compiler's eyes. */
	snprintf(ret, HFCTL_CC_MAX, "%hhu.%hhu", (unsigned char)major, (unsigned char)minor);
	return 0;
}

int hfctl_gfx_target_check(const char *opt, const char *text, char *err, size_t errlen)
{
	const char *p = text + 3;

	if (strncmp(text, "gfx", 3) != 0 || *p == '\0')
		goto bad;
	for (; *p; p++)
		if (!is_lower_alnum(*p))
			goto bad;
	return 0;

bad:
	snprintf(err, errlen, "invalid gfx target \"%s\" in %s: expected e.g. gfx942 or gfx90a", text,
		 opt);
	return -EINVAL;
}

int hfctl_runtime_spec_check(const char *opt, const char *text, char *err, size_t errlen)
{
	/* Two-character operators first, so that ">=" is not read as ">". */
	static const char *const ops[] = { ">=", "<=", "==", ">", "<" };
	const char *p = text, *v = NULL;

	if (!is_alnum(*p))
		goto bad;
	while (is_alnum(*p) || *p == '.' || *p == '_' || *p == '-')
		p++;
	if (*p == '\0')
		return 0;
	for (size_t i = 0; i < N_ELEM(ops) && !v; i++)
		if (strncmp(p, ops[i], strlen(ops[i])) == 0)
			v = p + strlen(ops[i]);
	if (!v || !is_digit(*v))
		goto bad;
	for (p = v; *p; p++)
		if (!is_alnum(*p) && *p != '.' && *p != '+')
			goto bad;
	return 0;

bad:
	snprintf(err, errlen,
		 "invalid runtime \"%s\" in %s: expected NAME or NAME followed by >=, <=, ==, > or < "
		 "and a version, such as torch or transformers>=5.0",
		 text, opt);
	return -EINVAL;
}

static void labels_strings_free(Hf__KeyValue *kv, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
}

void hfctl_labels_fini(struct hfctl_labels *l)
{
	labels_strings_free(l->kv, 0, l->n);
	free(l->kv);
	free(l->refs);
	*l = (struct hfctl_labels){ 0 };
}

/* Checks one KEY=VALUE or KEY item; *ret_eq is its "=", or NULL. */
static int label_check(const char *opt, const char *item, const char **ret_eq, char *err,
		       size_t errlen)
{
	const char *eq = strchr(item, '='), *end = eq ? eq : item + strlen(item);
	const char *why = NULL;

	if (end == item)
		why = "the name is empty";
	for (const char *p = item; !why && p < end; p++)
		if (!is_alnum(*p) && !strchr("._-/", *p))
			why = "the name may only contain letters, digits and . _ - /";
	if (!why && eq) {
		size_t n = strlen(eq + 1);

		if (n == 0) {
			snprintf(err, errlen,
				 "invalid label \"%s\" in %s: the value is empty (give \"%.*s\" alone "
				 "to require only that the label exists)",
				 item, opt, (int)(eq - item), item);
			return -EINVAL;
		}
		if (eq[1] == ' ' || eq[n] == ' ')
			why = "the value starts or ends with a blank";
		for (const char *p = eq + 1; !why && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				why = "the value holds a control character";
	}
	if (why) {
		snprintf(err, errlen, "invalid label \"%s\" in %s: %s", item, opt, why);
		return -EINVAL;
	}
	*ret_eq = eq;
	return 0;
}

static bool labels_have(const Hf__KeyValue *kv, size_t n, const char *key, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(kv[i].key) == len && memcmp(kv[i].key, key, len) == 0)
			return true;
	return false;
}

int hfctl_labels_add(struct hfctl_labels *l, const char *opt, const char *text, char *err,
		     size_t errlen)
{
	struct hfctl_list items = { 0 };
	Hf__KeyValue *kv = NULL, **refs = NULL;
	size_t n = l->n;
	int r;

	r = hfctl_list_split(&items, opt, text, err, errlen);
	if (r < 0)
		goto fail;
	/* New arrays, so that a refusal leaves l as it was; the old entries
	 * are moved over (their strings stay where they are). */
	kv = calloc(l->n + items.n, sizeof(*kv));
	refs = calloc(l->n + items.n, sizeof(*refs));
	if (!kv || !refs)
		goto oom;
	if (l->n > 0)
		memcpy(kv, l->kv, l->n * sizeof(*kv));
	for (size_t i = 0; i < items.n; i++) {
		const char *item = items.items[i], *eq;
		size_t klen;

		r = label_check(opt, item, &eq, err, errlen);
		if (r < 0)
			goto fail;
		klen = eq ? (size_t)(eq - item) : strlen(item);
		if (labels_have(kv, n, item, klen)) {
			snprintf(err, errlen, "label \"%.*s\" is listed twice in %s", (int)klen, item,
				 opt);
			r = -EINVAL;
			goto fail;
		}
		hf__key_value__init(&kv[n]);
		kv[n].key = strndup(item, klen);
		kv[n].value = strdup(eq ? eq + 1 : "");
		n++;
		if (!kv[n - 1].key || !kv[n - 1].value)
			goto oom;
	}
	for (size_t i = 0; i < n; i++)
		refs[i] = &kv[i];
	free(l->kv);
	free(l->refs);
	l->kv = kv;
	l->refs = refs;
	l->n = n;
	hfctl_list_fini(&items);
	return 0;

oom:
	snprintf(err, errlen, "out of memory");
	r = -ENOMEM;
fail:
	if (kv)
		labels_strings_free(kv, l->n, n);
	free(kv);
	free(refs);
	hfctl_list_fini(&items);
	return r;
}

/* Parses a positive id; what is "job" or "task", for the message. */
static int id_parse(const char *what, const char *text, uint64_t *ret, char *err, size_t errlen)
{
	int64_t v;

	if (number_parse(text, &v) < 0 || v < 1) {
		snprintf(err, errlen, "invalid %s id \"%s\": expected a positive whole number", what,
			 text);
		return -EINVAL;
	}
	*ret = (uint64_t)v;
	return 0;
}

int hfctl_parse_job_id(const char *text, uint64_t *ret, char *err, size_t errlen)
{
	return id_parse("job", text, ret, err, errlen);
}

int hfctl_parse_task_id(const char *text, uint64_t *ret, char *err, size_t errlen)
{
	return id_parse("task", text, ret, err, errlen);
}

/* ---- names ---- */

static void status_names(char *buf, size_t len)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (int s = 1; s < HFCTL_N_STATUS && pos < len; s++)
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", s > 1 ? ", " : "",
					hf_status_name((Hf__TaskStatus)s));
}

static void kind_names(char *buf, size_t len)
{
	snprintf(buf, len, "%s, %s", hf_kind_name(HF__TASK_KIND__KIND_TEST),
		 hf_kind_name(HF__TASK_KIND__KIND_BENCHMARK));
}

int hfctl_parse_statuses(const char *opt, const char *text, bool *ret, char *err, size_t errlen)
{
	struct hfctl_list l = { 0 };
	bool set[HFCTL_N_STATUS] = { 0 };
	int r = hfctl_list_split(&l, opt, text, err, errlen);

	for (size_t i = 0; r == 0 && i < l.n; i++) {
		Hf__TaskStatus s;
		char valid[256];

		if (hf_status_parse(l.items[i], &s) < 0) {
			status_names(valid, sizeof(valid));
			snprintf(err, errlen, "unknown status \"%s\" (valid: %s)", l.items[i], valid);
			r = -EINVAL;
		} else {
			set[s] = true;
		}
	}
	hfctl_list_fini(&l);
	if (r == 0)
		memcpy(ret, set, sizeof(set));
	return r;
}

/* ---- getopt helpers ---- */

void hfctl_getopt_error(const char *cmd, int c, char *const *argv, char *err, size_t errlen)
{
	char hint[64], name[64];

	if (cmd)
		snprintf(hint, sizeof(hint), "hfctl %s --help", cmd);
	else
		snprintf(hint, sizeof(hint), "hfctl help");

	/* A short option may sit inside a cluster ("-xv"): name it by optopt,
	 * which is its character.  A long one is the whole word, up to any
	 * "=value"; optopt is then 0 when it is unknown and its value (256 and
	 * up for hfctl's long options) when it is known but misused. */
	if (optopt > 0 && optopt < 256)
		snprintf(name, sizeof(name), "-%c", optopt);
	else
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(argv[optind - 1], "="),
			 argv[optind - 1]);

	if (c == ':')
		snprintf(err, errlen, "option \"%s\" needs a value (see \"%s\")", name, hint);
	else if (optopt >= 256)
		snprintf(err, errlen, "option \"%s\" takes no value (see \"%s\")", name, hint);
	else
		snprintf(err, errlen, "unknown option \"%s\" (see \"%s\")", name, hint);
}

/* Takes the one positional argument argv[first] of argc, which the usage
 * "hfctl CMD ARG" calls arg ("JOB") and the message what ("job id"); its
 * text goes to *ret. */
static int single_arg(const char *cmd, const char *arg, const char *what, int argc,
		      char *const *argv, int first, const char **ret, char *err, size_t errlen)
{
	if (first >= argc) {
		snprintf(err, errlen, "missing %s (usage: hfctl %s %s)", what, cmd, arg);
		return -EINVAL;
	}
	if (argc - first > 1) {
		snprintf(err, errlen, "unexpected argument \"%s\" (usage: hfctl %s %s)",
			 argv[first + 1], cmd, arg);
		return -EINVAL;
	}
	*ret = argv[first];
	return 0;
}

int hfctl_job_arg(const char *cmd, int argc, char *const *argv, int first, uint64_t *ret,
		  char *err, size_t errlen)
{
	const char *text;
	int r = single_arg(cmd, "JOB", "job id", argc, argv, first, &text, err, errlen);

	return r < 0 ? r : hfctl_parse_job_id(text, ret, err, errlen);
}

int hfctl_task_arg(const char *cmd, int argc, char *const *argv, int first, uint64_t *ret,
		   char *err, size_t errlen)
{
	const char *text;
	int r = single_arg(cmd, "TASK", "task id", argc, argv, first, &text, err, errlen);

	return r < 0 ? r : hfctl_parse_task_id(text, ret, err, errlen);
}

int hfctl_no_args(const char *cmd, int argc, char *const *argv, int first, char *err,
		  size_t errlen)
{
	if (first < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\" (see \"hfctl %s --help\")",
			 argv[first], cmd);
		return -EINVAL;
	}
	return 0;
}

/* ---- submit ---- */

enum {
	OPT_MODELS = 256,
	OPT_FAMILY,
	OPT_ALL,
	OPT_BACKENDS,
	OPT_KIND,
	OPT_BATCH_SIZES,
	OPT_PRECISION,
	OPT_SEQ_LEN,
	OPT_PRIORITY,
	OPT_TIMEOUT,
	OPT_ITERATIONS,
	OPT_WARMUP,
	OPT_NAME,
	OPT_SUBMITTER,
	OPT_REQUEST_ID,
	OPT_WATCH,
	OPT_JSON,
	OPT_MIN_MEMORY,
	OPT_MIN_CC,
	OPT_GFX,
	OPT_LABEL,
	OPT_RUNTIME,
	OPT_DEVICES_PER_TASK,
	OPT_ALLOW_WAITING,
	OPT_MAX_RUNNING,
	OPT_MAX_RETRIES,
	OPT_FLAKY_RERUNS,
	OPT_TASK,
};

static const struct option submit_options[] = {
	{ "models", required_argument, NULL, OPT_MODELS },
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "backends", required_argument, NULL, OPT_BACKENDS },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "batch-sizes", required_argument, NULL, OPT_BATCH_SIZES },
	{ "precision", required_argument, NULL, OPT_PRECISION },
	{ "seq-len", required_argument, NULL, OPT_SEQ_LEN },
	{ "priority", required_argument, NULL, OPT_PRIORITY },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "iterations", required_argument, NULL, OPT_ITERATIONS },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "submitter", required_argument, NULL, OPT_SUBMITTER },
	{ "request-id", required_argument, NULL, OPT_REQUEST_ID },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "min-memory", required_argument, NULL, OPT_MIN_MEMORY },
	{ "min-compute-capability", required_argument, NULL, OPT_MIN_CC },
	{ "gfx", required_argument, NULL, OPT_GFX },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "runtime", required_argument, NULL, OPT_RUNTIME },
	{ "devices-per-task", required_argument, NULL, OPT_DEVICES_PER_TASK },
	{ "allow-waiting", no_argument, NULL, OPT_ALLOW_WAITING },
	{ "max-running", required_argument, NULL, OPT_MAX_RUNNING },
	{ "max-retries", required_argument, NULL, OPT_MAX_RETRIES },
	{ "flaky-reruns", required_argument, NULL, OPT_FLAKY_RERUNS },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* The lists as given, before they are turned into values. */
struct submit_text {
	struct hfctl_list backends, kinds, batch_sizes, seq_lens;
	const char *name, *submitter;
};

static int submit_options_read(int argc, char **argv, struct hfctl_submit *s,
			       struct submit_text *t, char *err, size_t errlen)
{
	int64_t v;
	int c, r = 0;

	optind = 0; /* glibc: start afresh, also after an earlier parse */
	opterr = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":h", submit_options, NULL)) != -1) {
		switch (c) {
		case OPT_MODELS:
			r = hfctl_list_split(&s->models, "--models", optarg, err, errlen);
			break;
		case OPT_FAMILY:
			r = hfctl_list_split(&s->families, "--family", optarg, err, errlen);
			break;
		case OPT_ALL:
			s->all_models = true;
			break;
		case OPT_BACKENDS:
			r = hfctl_list_split(&t->backends, "--backends", optarg, err, errlen);
			break;
		case OPT_KIND:
			r = hfctl_list_split(&t->kinds, "--kind", optarg, err, errlen);
			break;
		case OPT_BATCH_SIZES:
			r = hfctl_list_split(&t->batch_sizes, "--batch-sizes", optarg, err, errlen);
			break;
		case OPT_PRECISION:
			r = hfctl_list_split(&s->precisions, "--precision", optarg, err, errlen);
			break;
		case OPT_SEQ_LEN:
			r = hfctl_list_split(&t->seq_lens, "--seq-len", optarg, err, errlen);
			break;
		case OPT_PRIORITY:
			r = hfctl_parse_int("--priority", optarg, HFCTL_PRIORITY_MIN, HFCTL_PRIORITY_MAX,
					    &v, err, errlen);
			if (r == 0)
				s->priority = (int32_t)v;
			break;
		case OPT_TIMEOUT:
			r = hfctl_parse_duration("--timeout", optarg, 1000, &v, err, errlen);
			if (r == 0 && v > (int64_t)HFCTL_TASK_TIMEOUT_MAX_S * 1000) {
				snprintf(err, errlen,
					 "invalid value \"%s\" for --timeout: must be at most 24h", optarg);
				r = -EINVAL;
			}
			if (r == 0)
				s->timeout_s = (uint32_t)((v + 999) / 1000);
			break;
		case OPT_ITERATIONS:
			r = parse_u32("--iterations", optarg, HFCTL_ITERATIONS_MAX, &s->iterations, err,
				      errlen);
			break;
		case OPT_WARMUP:
			r = parse_u32("--warmup", optarg, HFCTL_ITERATIONS_MAX, &s->warmup, err, errlen);
			break;
		case OPT_NAME:
			t->name = optarg;
			break;
		case OPT_SUBMITTER:
			t->submitter = optarg;
			break;
		case OPT_REQUEST_ID:
			if (!hf_request_id_valid(optarg)) {
				snprintf(err, errlen,
					 "invalid value \"%.64s\" for --request-id: 1 to %d of A-Z a-z "
					 "0-9 . _ : -", optarg, HF_REQUEST_ID_MAX);
				r = -EINVAL;
			} else {
				snprintf(s->request_id, sizeof(s->request_id), "%s", optarg);
			}
			break;
		case OPT_WATCH:
			s->watch = true;
			break;
		case OPT_JSON:
			s->json = true;
			break;
		case OPT_MIN_MEMORY:
			r = hfctl_parse_size("--min-memory", optarg, &s->min_memory_bytes, err, errlen);
			break;
		case OPT_MIN_CC:
			r = hfctl_parse_compute_capability("--min-compute-capability", optarg,
							   s->min_compute_capability, err, errlen);
			break;
		case OPT_GFX:
			r = hfctl_list_split(&s->gfx_targets, "--gfx", optarg, err, errlen);
			break;
		case OPT_LABEL:
			r = hfctl_labels_add(&s->labels, "--label", optarg, err, errlen);
			break;
		case OPT_RUNTIME:
			r = hfctl_list_split(&s->runtimes, "--runtime", optarg, err, errlen);
			break;
		case OPT_DEVICES_PER_TASK:
			r = parse_u32("--devices-per-task", optarg, HFCTL_DEVICES_PER_TASK_MAX,
				      &s->devices_per_task, err, errlen);
			break;
		case OPT_ALLOW_WAITING:
			s->allow_waiting = true;
			break;
		case OPT_MAX_RUNNING:
			r = parse_u32("--max-running", optarg, HFCTL_MAX_RUNNING_MAX, &s->max_running,
				      err, errlen);
			break;
		case OPT_MAX_RETRIES:
			r = parse_u32("--max-retries", optarg, HFCTL_MAX_RETRIES_MAX, &s->max_retries,
				      err, errlen);
			break;
		case OPT_FLAKY_RERUNS:
			r = parse_u32("--flaky-reruns", optarg, HFCTL_FLAKY_RERUNS_MAX, &s->flaky_reruns,
				      err, errlen);
			break;
		case 'h':
			s->help = true;
			return 0;
		default:
			hfctl_getopt_error("submit", c, argv, err, errlen);
			r = -EINVAL;
			break;
		}
	}
	if (r == 0)
		r = hfctl_no_args("submit", argc, argv, optind, err, errlen);
	return r;
}

static int submit_what_check(const struct hfctl_submit *s, char *err, size_t errlen)
{
	if (s->all_models && (s->models.n > 0 || s->families.n > 0)) {
		snprintf(err, errlen, "--all cannot be combined with --models or --family");
		return -EINVAL;
	}
	if (!s->all_models && s->models.n == 0 && s->families.n == 0) {
		snprintf(err, errlen, "nothing to run: give --models, --family or --all");
		return -EINVAL;
	}
	for (size_t i = 0; i < s->families.n; i++) {
		if (!hf_family_valid(s->families.items[i])) {
			snprintf(err, errlen, "unknown family \"%s\" (valid: %s)", s->families.items[i],
				 hf_family_names());
			return -EINVAL;
		}
	}
	return 0;
}

static int submit_backends_set(struct hfctl_submit *s, const struct hfctl_list *names, char *err,
			       size_t errlen)
{
	if (names->n == 0) {
		s->backends[0] = HF__BACKEND__BACKEND_CPU;
		s->n_backends = 1;
		return 0;
	}
	for (size_t i = 0; i < names->n; i++) {
		Hf__Backend b;

		if (hf_backend_parse(names->items[i], &b) < 0) {
			snprintf(err, errlen, "unknown backend \"%s\" (valid: %s)", names->items[i],
				 hf_backend_names());
			return -EINVAL;
		}
		/* The names are valid and distinct, so this is only reached by
		 * a backend added to the protocol but not to the array. */
		if (i == N_ELEM(s->backends)) {
			snprintf(err, errlen, "too many backends in --backends");
			return -EINVAL;
		}
		s->backends[i] = b;
	}
	s->n_backends = names->n;
	return 0;
}

static int submit_kinds_set(struct hfctl_submit *s, const struct hfctl_list *names, char *err,
			    size_t errlen)
{
	char valid[64];

	if (names->n == 0) {
		s->kinds[0] = HF__TASK_KIND__KIND_TEST;
		s->n_kinds = 1;
		return 0;
	}
	for (size_t i = 0; i < names->n; i++) {
		Hf__TaskKind k;

		if (hf_kind_parse(names->items[i], &k) < 0) {
			kind_names(valid, sizeof(valid));
			snprintf(err, errlen, "unknown kind \"%s\" (valid: %s)", names->items[i], valid);
			return -EINVAL;
		}
		if (i == N_ELEM(s->kinds)) {
			snprintf(err, errlen, "too many kinds in --kind");
			return -EINVAL;
		}
		s->kinds[i] = k;
	}
	s->n_kinds = names->n;
	return 0;
}

/* The numbers of a list option, each 1..max and distinct; when the option
 * was not given, {dflt}, or none when dflt is 0. */
static int u32_list_set(const struct hfctl_list *texts, const char *option, uint32_t max,
			uint32_t dflt, uint32_t **ret, size_t *ret_n, char *err, size_t errlen)
{
	size_t n = texts->n ? texts->n : dflt ? 1 : 0;
	uint32_t *v = malloc((n ? n : 1) * sizeof(*v));

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v[0] = dflt;
	for (size_t i = 0; i < texts->n; i++) {
		int r = parse_u32(option, texts->items[i], max, &v[i], err, errlen);
		if (r < 0) {
			free(v);
			return r;
		}
		/* The texts are distinct, but "8" and "08" are the same number. */
		for (size_t j = 0; j < i; j++) {
			if (v[j] == v[i]) {
				snprintf(err, errlen, "\"%s\" is listed twice in %s", texts->items[i],
					 option);
				free(v);
				return -EINVAL;
			}
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int submit_precisions_check(struct hfctl_submit *s, char *err, size_t errlen)
{
	if (s->precisions.n == 0)
		return hfctl_list_split(&s->precisions, "--precision", "fp32", err, errlen);
	for (size_t i = 0; i < s->precisions.n; i++) {
		if (!hf_precision_valid(s->precisions.items[i])) {
			snprintf(err, errlen, "unknown precision \"%s\" (valid: %s)",
				 s->precisions.items[i], PRECISION_NAMES);
			return -EINVAL;
		}
	}
	return 0;
}

static bool backends_have(const struct hfctl_submit *s, Hf__Backend b)
{
	for (size_t i = 0; i < s->n_backends; i++)
		if (s->backends[i] == b)
			return true;
	return false;
}

/* The requirements that are lists are checked item by item here (the
 * others as they were read), and those that only one backend's devices can
 * meet are refused without that backend: every task of the job would wait
 * for a device that does not exist. */
static int submit_requirements_check(const struct hfctl_submit *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->gfx_targets.n; i++)
		if (hfctl_gfx_target_check("--gfx", s->gfx_targets.items[i], err, errlen) < 0)
			return -EINVAL;
	for (size_t i = 0; i < s->runtimes.n; i++)
		if (hfctl_runtime_spec_check("--runtime", s->runtimes.items[i], err, errlen) < 0)
			return -EINVAL;
	if (s->min_compute_capability[0] && !backends_have(s, HF__BACKEND__BACKEND_CUDA)) {
		snprintf(err, errlen,
			 "--min-compute-capability applies to cuda devices, but --backends does not "
			 "include cuda");
		return -EINVAL;
	}
	if (s->gfx_targets.n > 0 && !backends_have(s, HF__BACKEND__BACKEND_ROCM)) {
		snprintf(err, errlen, "--gfx applies to rocm devices, but --backends does not include rocm");
		return -EINVAL;
	}
	return 0;
}

static int submit_strings_set(struct hfctl_submit *s, const struct submit_text *t,
			      const char *default_submitter, char *err, size_t errlen)
{
	const char *submitter = t->submitter ? t->submitter : default_submitter ? default_submitter : "";

	if (t->submitter && t->submitter[0] == '\0') {
		snprintf(err, errlen, "invalid value \"\" for --submitter: must not be empty");
		return -EINVAL;
	}
	s->name = strdup(t->name ? t->name : "");
	s->submitter = strdup(submitter);
	if (!s->name || !s->submitter) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int hfctl_submit_parse(int argc, char **argv, const char *default_submitter,
		       struct hfctl_submit *ret, char *err, size_t errlen)
{
	struct hfctl_submit s = { 0 };
	struct submit_text t = { 0 };
	int r;

	r = submit_options_read(argc, argv, &s, &t, err, errlen);
	if (r < 0 || s.help)
		goto out;
	r = submit_what_check(&s, err, errlen);
	if (r < 0)
		goto out;
	r = submit_backends_set(&s, &t.backends, err, errlen);
	if (r < 0)
		goto out;
	r = submit_kinds_set(&s, &t.kinds, err, errlen);
	if (r < 0)
		goto out;
	r = u32_list_set(&t.batch_sizes, "--batch-sizes", HFCTL_BATCH_MAX, 1, &s.batch_sizes,
			 &s.n_batch_sizes, err, errlen);
	if (r == 0 && t.seq_lens.n > HFCTL_SEQ_LENS_MAX) {
		snprintf(err, errlen, "too many sequence lengths in --seq-len (%zu, at most %d)",
			 t.seq_lens.n, HFCTL_SEQ_LENS_MAX);
		r = -EINVAL;
	}
	if (r == 0)
		r = u32_list_set(&t.seq_lens, "--seq-len", HFCTL_SEQ_LEN_MAX, 0, &s.seq_lens,
				 &s.n_seq_lens, err, errlen);
	if (r < 0)
		goto out;
	r = submit_precisions_check(&s, err, errlen);
	if (r < 0)
		goto out;
	r = submit_requirements_check(&s, err, errlen);
	if (r < 0)
		goto out;
	r = submit_strings_set(&s, &t, default_submitter, err, errlen);

out:
	hfctl_list_fini(&t.backends);
	hfctl_list_fini(&t.kinds);
	hfctl_list_fini(&t.batch_sizes);
	hfctl_list_fini(&t.seq_lens);
	if (r < 0) {
		hfctl_submit_fini(&s);
		return r;
	}
	if (s.help) {
		hfctl_submit_fini(&s);
		s = (struct hfctl_submit){ .help = true };
	}
	*ret = s;
	return 0;
}

void hfctl_submit_fini(struct hfctl_submit *s)
{
	hfctl_list_fini(&s->models);
	hfctl_list_fini(&s->families);
	hfctl_list_fini(&s->precisions);
	hfctl_list_fini(&s->gfx_targets);
	hfctl_list_fini(&s->runtimes);
	hfctl_labels_fini(&s->labels);
	free(s->batch_sizes);
	free(s->seq_lens);
	s->seq_lens = NULL;
	free(s->name);
	free(s->submitter);
	s->batch_sizes = NULL;
	s->name = s->submitter = NULL;
}

void hfctl_submit_request(const struct hfctl_submit *s, Hf__SubmitRequest *req)
{
	*req = (Hf__SubmitRequest)HF__SUBMIT_REQUEST__INIT;
	req->n_models = s->models.n;
	req->models = s->models.items;
	req->n_families = s->families.n;
	req->families = s->families.items;
	req->all_models = s->all_models;
	req->n_backends = s->n_backends;
	req->backends = (Hf__Backend *)s->backends;
	req->n_kinds = s->n_kinds;
	req->kinds = (Hf__TaskKind *)s->kinds;
	req->n_batch_sizes = s->n_batch_sizes;
	req->batch_sizes = s->batch_sizes;
	req->n_precisions = s->precisions.n;
	req->precisions = s->precisions.items;
	req->priority = s->priority;
	req->submitter = s->submitter;
	/* One length goes as seq_len, which every coordinator reads; several as
	 * seq_lens. */
	if (s->n_seq_lens == 1) {
		req->seq_len = s->seq_lens[0];
	} else {
		req->n_seq_lens = s->n_seq_lens;
		req->seq_lens = s->seq_lens;
	}
	req->timeout_s = s->timeout_s;
	req->iterations = s->iterations;
	req->warmup = s->warmup;
	req->name = s->name;
	req->min_memory_bytes = s->min_memory_bytes;
	req->min_compute_capability = (char *)s->min_compute_capability;
	req->n_gfx_targets = s->gfx_targets.n;
	req->gfx_targets = s->gfx_targets.items;
	req->n_labels = s->labels.n;
	req->labels = s->labels.refs;
	req->n_runtimes = s->runtimes.n;
	req->runtimes = s->runtimes.items;
	req->devices_per_task = s->devices_per_task;
	req->allow_waiting = s->allow_waiting;
	req->max_running = s->max_running;
	req->max_retries = s->max_retries;
	req->flaky_reruns = s->flaky_reruns;
	req->request_id = (char *)s->request_id;
}

/* ---- models against the registry ---- */

static bool registry_has(const Hf__ModelsReply *registry, const char *model)
{
	for (size_t i = 0; i < registry->n_models; i++)
		if (strcmp(registry->models[i]->model_type, model) == 0)
			return true;
	return false;
}

int hfctl_submit_check_models(const struct hfctl_submit *s, const Hf__ModelsReply *registry,
			      char *err, size_t errlen)
{
	/* Room kept for the words around the list and for " and N more". */
	const size_t list_max = errlen > 96 ? errlen - 96 : 0;
	struct hf_buf names;
	size_t unknown = 0, shown = 0;
	int r = 0;

	hf_buf_init(&names);
	for (size_t i = 0; i < s->models.n; i++) {
		const char *m = s->models.items[i];

		if (registry_has(registry, m))
			continue;
		unknown++;
		if (shown == unknown - 1 && names.len + strlen(m) + 4 <= list_max) {
			hf_buf_printf(&names, "%s\"%s\"", shown ? ", " : "", m);
			shown++;
		}
	}
	if (unknown == 0)
		goto out;
	if (names.oom) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	if (shown < unknown)
		snprintf(err, errlen, "unknown models %s and %zu more (see \"hfctl models\")",
			 names.data ? names.data : "", unknown - shown);
	else
		snprintf(err, errlen, "unknown model%s %s (see \"hfctl models\")", unknown > 1 ? "s" : "",
			 names.data);
	r = -ENOENT;

out:
	hf_buf_fini(&names);
	return r;
}

/* ---- cancel ---- */

static const struct option cancel_options[] = {
	{ "task", required_argument, NULL, OPT_TASK },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

#define CANCEL_USAGE "usage: hfctl cancel JOB | hfctl cancel --task TASK"

int hfctl_cancel_parse(int argc, char **argv, struct hfctl_cancel *ret, char *err, size_t errlen)
{
	struct hfctl_cancel cl = { 0 };
	const char *task = NULL;
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", cancel_options, NULL)) != -1) {
		switch (c) {
		case OPT_TASK:
			if (task) {
				snprintf(err, errlen, "--task is given twice (" CANCEL_USAGE ")");
				return -EINVAL;
			}
			task = optarg;
			break;
		case OPT_JSON:
			cl.json = true;
			break;
		case 'h':
			*ret = (struct hfctl_cancel){ .help = true };
			return 0;
		default:
			hfctl_getopt_error("cancel", c, argv, err, errlen);
			return -EINVAL;
		}
	}
	if (task) {
		if (optind < argc) {
			snprintf(err, errlen,
				 "a job (\"%s\") and --task cannot be given together (" CANCEL_USAGE ")",
				 argv[optind]);
			return -EINVAL;
		}
		if (hfctl_parse_task_id(task, &cl.task_id, err, errlen) < 0)
			return -EINVAL;
	} else {
		if (optind >= argc) {
			snprintf(err, errlen, "missing job id (" CANCEL_USAGE ")");
			return -EINVAL;
		}
		if (hfctl_job_arg("cancel", argc, argv, optind, &cl.job_id, err, errlen) < 0)
			return -EINVAL;
	}
	*ret = cl;
	return 0;
}

/* ---- drain targets ---- */

#define DRAIN_TARGET_HINT "expected WORKER or WORKER/BACKEND:INDEX, such as gpu-07 or gpu-07/cuda:3"

/* Checks a worker id as hf-worker does: 1 to HFCTL_WORKER_ID_MAX bytes, no
 * blanks, no control characters. */
static bool worker_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > HFCTL_WORKER_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)id[i] <= ' ' || id[i] == 0x7f)
			return false;
	return true;
}

/* Parses BACKEND:INDEX (device, within the whole target text) into t. */
static int drain_device_parse(const char *text, const char *device, struct hfctl_drain_target *t,
			      char *err, size_t errlen)
{
	const char *colon = strchr(device, ':');
	char backend[32];
	size_t blen;
	int64_t index;

	if (!colon || colon == device || colon[1] == '\0') {
		snprintf(err, errlen, "invalid drain target \"%s\": " DRAIN_TARGET_HINT, text);
		return -EINVAL;
	}
	blen = (size_t)(colon - device);
	if (blen < sizeof(backend)) {
		memcpy(backend, device, blen);
		backend[blen] = '\0';
	}
	if (blen >= sizeof(backend) || hf_backend_parse(backend, &t->backend) < 0) {
		snprintf(err, errlen, "unknown backend \"%.*s\" in drain target \"%s\" (valid: %s)",
			 (int)blen, device, text, hf_backend_names());
		return -EINVAL;
	}
	/* Digits only: number_parse would take a leading "-".  The coordinator
	 * keeps an index as an int, where -1 means the whole worker: nothing
	 * above INT32_MAX may reach it. */
	if (!is_digit(colon[1]) || number_parse(colon + 1, &index) < 0 || index > INT32_MAX) {
		snprintf(err, errlen,
			 "invalid device index \"%s\" in drain target \"%s\": expected a whole number "
			 "from 0 to %d",
			 colon + 1, text, INT32_MAX);
		return -EINVAL;
	}
	t->index = (uint32_t)index;
	t->one_device = true;
	return 0;
}

int hfctl_drain_target_parse(const char *text, struct hfctl_drain_target *ret, char *err,
			     size_t errlen)
{
	struct hfctl_drain_target t = { 0 };
	const char *slash = strrchr(text, '/');
	size_t len = slash ? (size_t)(slash - text) : strlen(text);

	if (!worker_id_valid(text, len)) {
		snprintf(err, errlen,
			 "invalid worker id \"%.*s\" in drain target \"%s\": 1 to %d characters, no "
			 "blanks or control characters",
			 (int)len, text, text, HFCTL_WORKER_ID_MAX);
		return -EINVAL;
	}
	if (slash && slash[1] && drain_device_parse(text, slash + 1, &t, err, errlen) < 0)
		return -EINVAL;
	memcpy(t.worker_id, text, len);
	t.worker_id[len] = '\0';
	*ret = t;
	return 0;
}

int hfctl_drain_arg(const char *cmd, int argc, char *const *argv, int first,
		    struct hfctl_drain_target *ret, char *err, size_t errlen)
{
	const char *text;
	int r = single_arg(cmd, "WORKER[/BACKEND:INDEX]", "worker", argc, argv, first, &text, err,
			   errlen);

	return r < 0 ? r : hfctl_drain_target_parse(text, ret, err, errlen);
}

void hfctl_drain_request(const struct hfctl_drain_target *t, bool undrain, Hf__DrainRequest *req)
{
	*req = (Hf__DrainRequest)HF__DRAIN_REQUEST__INIT;
	req->worker_id = (char *)t->worker_id;
	req->one_device = t->one_device;
	req->backend = t->one_device ? t->backend : HF__BACKEND__BACKEND_UNSPECIFIED;
	req->index = t->index;
	req->undrain = undrain;
}
