/* SPDX-License-Identifier: MIT
 *
 * Declarative configuration (see hf_conf.h).  The INI syntax is parsed by
 * inih; this file only maps keys to typed fields and checks them.
 */
#include "hf_conf.h"

#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct hf_conf_setting *conf_find(const struct hf_conf_setting *table, const char *name)
{
	for (const struct hf_conf_setting *s = table; s->name; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

int hf_conf_parse_ms(const char *s, int64_t *ret_ms)
{
	char *end;
	long long v;
	int64_t mul = 1;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -EINVAL;
	if (*end == '\0' || strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else
		return -EINVAL;
	if (v > INT64_MAX / mul)
		return -EINVAL;
	*ret_ms = (int64_t)v * mul;
	return 0;
}

static int conf_assign(const struct hf_conf_setting *s, void *obj, const char *value, char *err,
		       size_t errlen)
{
	char *field = (char *)obj + s->offset;
	int64_t iv;
	char *end;

	switch (s->type) {
	case HF_CONF_STRING: {
		char *copy = value ? strdup(value) : NULL;
		if (value && !copy) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	case HF_CONF_BOOL:
		if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on") ||
		    !strcmp(value, "1")) {
			*(bool *)field = true;
			return 0;
		}
		if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off") ||
		    !strcmp(value, "0")) {
			*(bool *)field = false;
			return 0;
		}
		snprintf(err, errlen, "invalid value for boolean setting \"%s\": \"%s\"", s->name, value);
		return -EINVAL;
	case HF_CONF_INT:
		errno = 0;
		iv = strtoll(value, &end, 10);
		if (errno || end == value || *end) {
			snprintf(err, errlen, "invalid value for integer setting \"%s\": \"%s\"", s->name, value);
			return -EINVAL;
		}
		break;
	case HF_CONF_MS:
		if (hf_conf_parse_ms(value, &iv) < 0) {
			snprintf(err, errlen,
				 "invalid value for duration setting \"%s\": \"%s\" (use e.g. 500ms, 5s, 2m)",
				 s->name, value);
			return -EINVAL;
		}
		break;
	default:
		snprintf(err, errlen, "setting \"%s\" has an unknown type", s->name);
		return -EINVAL;
	}
	if (s->min <= s->max && (iv < s->min || iv > s->max)) {
		snprintf(err, errlen, "%s is outside the valid range for setting \"%s\" (%lld .. %lld)",
			 value, s->name, (long long)s->min, (long long)s->max);
		return -EINVAL;
	}
	*(int64_t *)field = iv;
	return 0;
}

int hf_conf_defaults(const struct hf_conf_setting *table, void *obj, char *err, size_t errlen)
{
	for (const struct hf_conf_setting *s = table; s->name; s++) {
		if (s->type == HF_CONF_STRING && !s->def)
			continue;
		int r = conf_assign(s, obj, s->def ? s->def : "0", err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int hf_conf_set(const struct hf_conf_setting *table, void *obj, const char *name,
		const char *value, char *err, size_t errlen)
{
	const struct hf_conf_setting *s = conf_find(table, name);
	if (!s) {
		snprintf(err, errlen, "unknown setting \"%s\"", name);
		return -EINVAL;
	}
	return conf_assign(s, obj, value, err, errlen);
}

struct ini_ctx {
	const struct hf_conf_setting *table;
	void *obj;
	char *err;
	size_t errlen;
	const char *path;
	int lineno;
};

static int conf_ini_handler(void *user, const char *section, const char *name, const char *value
#if INI_HANDLER_LINENO
		       , int lineno
#endif
)
{
	struct ini_ctx *c = user;
	char key[256];
	char msg[512];

#if INI_HANDLER_LINENO
	c->lineno = lineno;
#endif
	if (!name) /* a section header with no key yet */
		return 1;
	if (c->err[0]) /* inih goes on after an error: keep the first */
		return 0;
	snprintf(key, sizeof(key), "%s.%s", section, name);
	if (!conf_find(c->table, key)) {
		snprintf(c->err, c->errlen, "%s: unknown setting \"%s\" in section [%s]", c->path, name,
			 section);
		return 0;
	}
	if (hf_conf_set(c->table, c->obj, key, value, msg, sizeof(msg)) < 0) {
		snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
		return 0;
	}
	return 1;
}

/* Turns inih's result (0, -1 open failure, -2 memory, or the first bad
 * line) into ours, completing the message in err. */
static int conf_ini_result(int r, const char *path, char *err, size_t errlen)
{
	if (r == -1) {
		snprintf(err, errlen, "could not open configuration file \"%s\": %s", path,
			 strerror(errno));
		return -ENOENT;
	}
	if (r == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	if (r != 0) {
		if (err[0]) {
			size_t n = strlen(err);
			snprintf(err + n, errlen - n, " (line %d)", r);
		} else {
			snprintf(err, errlen, "%s:%d: syntax error", path, r);
		}
		return -EINVAL;
	}
	return 0;
}

int hf_conf_load_file(const struct hf_conf_setting *table, void *obj, const char *path,
		      char *err, size_t errlen)
{
	struct ini_ctx c = { table, obj, err, errlen, path, 0 };
	err[0] = '\0';
	return conf_ini_result(ini_parse(path, conf_ini_handler, &c), path, err, errlen);
}

int hf_conf_load_string(const struct hf_conf_setting *table, void *obj, const char *text,
			const char *name, char *err, size_t errlen)
{
	struct ini_ctx c = { table, obj, err, errlen, name, 0 };
	err[0] = '\0';
	return conf_ini_result(ini_parse_string(text, conf_ini_handler, &c), name, err, errlen);
}

int hf_conf_load_env(const struct hf_conf_setting *table, void *obj, char *err, size_t errlen)
{
	for (const struct hf_conf_setting *s = table; s->name; s++) {
		const char *v = s->env ? getenv(s->env) : NULL;
		if (!v)
			continue;
		char msg[512];
		int r = conf_assign(s, obj, v, msg, sizeof(msg));
		if (r < 0) {
			snprintf(err, errlen, "environment variable %s: %s", s->env, msg);
			return r;
		}
	}
	return 0;
}

void hf_conf_fini(const struct hf_conf_setting *table, void *obj)
{
	if (!obj)
		return;
	for (const struct hf_conf_setting *s = table; s->name; s++) {
		if (s->type == HF_CONF_STRING) {
			char **p = (char **)((char *)obj + s->offset);
			free(*p);
			*p = NULL;
		}
	}
}

#define COMMENT_WIDTH 78

/* Writes text as "# " lines of at most COMMENT_WIDTH columns, broken
 * between words; a '\n' in text starts a new line. */
void hf_conf_print_comment(const char *text, FILE *f)
{
	size_t col = 0;

	while (*text) {
		size_t word = strcspn(text, " \n");
		if (word) {
			if (col && col + 1 + word > COMMENT_WIDTH) {
				fputc('\n', f);
				col = 0;
			}
			col += (size_t)fprintf(f, col ? " %.*s" : "# %.*s", (int)word, text);
		}
		text += word;
		if (*text == '\n') {
			fputc('\n', f);
			col = 0;
			text++;
		}
		text += strspn(text, " ");
	}
	if (col)
		fputc('\n', f);
}

void hf_conf_print_doc(const struct hf_conf_setting *s, FILE *f)
{
	char doc[2048], range[96] = "", env[96] = "";

	if (s->env)
		snprintf(env, sizeof(env), " (environment: %s)", s->env);
	if ((s->type == HF_CONF_INT || s->type == HF_CONF_MS) && s->min <= s->max)
		snprintf(range, sizeof(range), " [%lld .. %lld%s]", (long long)s->min,
			 (long long)s->max, s->type == HF_CONF_MS ? " ms" : "");
	snprintf(doc, sizeof(doc), "%s%s%s", s->description, env, range);
	hf_conf_print_comment(doc, f);
}

/* A duration in the largest unit that divides it, as the parser reads it. */
static void format_ms(char *out, size_t len, int64_t ms)
{
	static const struct { int64_t ms; const char *unit; } units[] = {
		{ 3600 * 1000, "h" }, { 60 * 1000, "m" }, { 1000, "s" },
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(out, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	}
	snprintf(out, len, "%lldms", (long long)ms);
}

static void format_value(const struct hf_conf_setting *s, const void *obj, char *out, size_t len)
{
	const char *field = (const char *)obj + s->offset;

	switch (s->type) {
	case HF_CONF_STRING: {
		const char *v = *(char *const *)field;
		snprintf(out, len, "%s", v ? v : "");
		break;
	}
	case HF_CONF_INT:
		snprintf(out, len, "%lld", (long long)*(const int64_t *)field);
		break;
	case HF_CONF_BOOL:
		snprintf(out, len, "%s", *(const bool *)field ? "true" : "false");
		break;
	case HF_CONF_MS:
		format_ms(out, len, *(const int64_t *)field);
		break;
	default:
		out[0] = '\0';
	}
}

void hf_conf_print_values(const struct hf_conf_setting *table, const void *obj, const char *header,
			  hf_conf_show_fn show, void *arg, FILE *f)
{
	const char *section = NULL;
	size_t section_len = 0;

	if (header) {
		hf_conf_print_comment(header, f);
		fputc('\n', f);
	}
	for (const struct hf_conf_setting *s = table; s->name; s++) {
		const char *dot = strchr(s->name, '.');
		size_t len = dot ? (size_t)(dot - s->name) : 0;
		char value[4096], note[512] = "";
		bool commented = false;

		if (!section || len != section_len || strncmp(section, s->name, len) != 0) {
			fprintf(f, "%s[%.*s]\n", section ? "\n" : "", (int)len, s->name);
			section = s->name;
			section_len = len;
		}
		hf_conf_print_doc(s, f);
		format_value(s, obj, value, sizeof(value));
		if (show)
			commented = show(s, obj, value, sizeof(value), note, sizeof(note), arg);
		if (note[0])
			hf_conf_print_comment(note, f);
		fprintf(f, "%s%s = %s\n", commented ? "# " : "", dot ? dot + 1 : s->name, value);
	}
}

void hf_conf_sources(const struct hf_conf_setting *table, const char *program, const char *path,
		     bool cmdline, char *out, size_t len)
{
	size_t n = 0, vars = 0;

#define ADD(...)                                                                  \
	do {                                                                      \
		int m_ = snprintf(out + n, len - n, __VA_ARGS__);                 \
		if (m_ > 0)                                                       \
			n = (size_t)m_ < len - n ? n + (size_t)m_ : len - 1;      \
	} while (0)
	out[0] = '\0';
	ADD("The effective configuration of %s: the defaults", program);
	if (path)
		ADD(", then %s", path);
	for (const struct hf_conf_setting *s = table; s->name; s++) {
		if (!s->env || !getenv(s->env))
			continue;
		ADD("%s%s", vars++ ? ", " : ", then the environment (", s->env);
	}
	if (vars)
		ADD(")");
	if (cmdline)
		ADD(", then the command line");
	ADD(".");
#undef ADD
}
