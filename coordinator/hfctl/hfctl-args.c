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
#include "hfctl-suggest.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

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

int hfctl_parse_u32(const char *opt, const char *text, uint32_t max, uint32_t *ret, char *err,
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
			hfctl_unknown_name("status", l.items[i], NULL, valid, err, errlen);
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

/* Options that still work but are not offered: hfctl's --coordinator and
 * --timeout, submit's --timeout (see main.c and hfctl-args-submit.c). */
static bool option_old(const char *name)
{
	return strcmp(name, "coordinator") == 0 || strcmp(name, "timeout") == 0;
}

void hfctl_getopt_error(const char *cmd, const struct option *options, int c, char *const *argv,
			char *err, size_t errlen)
{
	char hint[64], name[64], mean[HFCTL_SUGGEST_LEN_MAX + 40] = "";
	struct hfctl_suggest sg;

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

	if (c == ':') {
		snprintf(err, errlen, "option \"%s\" needs a value (see \"%s\")", name, hint);
	} else if (optopt >= 256) {
		snprintf(err, errlen, "option \"%s\" takes no value (see \"%s\")", name, hint);
	} else {
		if (strncmp(name, "--", 2) == 0 && options) {
			hfctl_suggest_init(&sg, name + 2);
			for (const struct option *o = options; o->name; o++)
				if (!option_old(o->name))
					hfctl_suggest_try(&sg, o->name, strlen(o->name));
			if (sg.best)
				snprintf(mean, sizeof(mean), "did you mean \"--%.*s\"? ",
					 (int)sg.best_len, sg.best);
		}
		snprintf(err, errlen, "unknown option \"%s\" (%ssee \"%s\")", name, mean, hint);
	}
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

/* ---- cancel ---- */

enum {
	OPT_TASK = 256,
	OPT_JSON,
};

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
			hfctl_getopt_error("cancel", cancel_options, c, argv, err, errlen);
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
		struct hfctl_suggest sg;
		char mean[HFCTL_SUGGEST_LEN_MAX + 32] = "";

		if (blen < sizeof(backend)) {
			hfctl_suggest_init(&sg, backend);
			hfctl_suggest_try_list(&sg, hf_backend_names());
			hfctl_suggest_hint(&sg, mean, sizeof(mean));
		}
		snprintf(err, errlen, "unknown backend \"%.*s\" in drain target \"%s\" (%svalid: %s)",
			 (int)blen, device, text, mean, hf_backend_names());
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
