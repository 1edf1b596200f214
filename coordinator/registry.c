/* SPDX-License-Identifier: MIT
 *
 * Model registry loader and its suites (see registry.h).
 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_util.h"
#include "hf_validate.h"

static const char *const size_classes[] = { "tiny", "small", "medium", "large", "xlarge" };

static int cmp_model(const void *a, const void *b)
{
	const struct reg_model *x = a, *y = b;
	return strcmp(x->model_type, y->model_type);
}

/* Leading and trailing spaces off s, in place. */
static char *trim(char *s)
{
	while (*s == ' ')
		s++;
	size_t l = strlen(s);
	while (l && s[l - 1] == ' ')
		s[--l] = '\0';
	return s;
}

/* Entries of the limits column are separated by " ; ": a bare ";" may
 * appear in a reason. */
#define LIMIT_SEP " ; "

/* Splits one limits field, in place, into entries appended to *limits:
 * "SCOPE: reason" separated by " ; ", SCOPE "*", "BACKEND" or "BACKEND/KIND".
 * Returns 0, -EINVAL with a message, or -ENOMEM. */
static int parse_limits(char *text, const char *origin, size_t lineno, const char *model,
			struct reg_limit **limits, size_t *n, size_t *cap, char *err, size_t errlen)
{
	size_t first = *n;
	char *s = text;

	if (!*trim(text))
		return 0;
	for (;;) {
		char *semi = strstr(s, LIMIT_SEP);
		if (semi)
			*semi = '\0';
		char *entry = trim(s);
		char *colon = strchr(entry, ':');
		if (!colon) {
			snprintf(err, errlen, "%s:%zu: limit \"%s\" of \"%s\" is not \"SCOPE: reason\"", origin,
				 lineno, entry, model);
			return -EINVAL;
		}
		*colon = '\0';
		char *scope = trim(entry), *reason = trim(colon + 1);
		struct reg_limit l = { HF__BACKEND__BACKEND_UNSPECIFIED, HF__TASK_KIND__KIND_UNSPECIFIED,
				       reason };
		char *slash = strchr(scope, '/');
		if (slash)
			*slash = '\0';
		if (strcmp(scope, "*") != 0 && hf_backend_parse(scope, &l.backend) < 0) {
			snprintf(err, errlen, "%s:%zu: unknown backend \"%s\" in a limit of \"%s\" (valid: *, %s)",
				 origin, lineno, scope, model, hf_backend_names());
			return -EINVAL;
		}
		if (slash && hf_kind_parse(slash + 1, &l.kind) < 0) {
			snprintf(err, errlen,
				 "%s:%zu: unknown kind \"%s\" in a limit of \"%s\" (valid: test, benchmark)", origin,
				 lineno, slash + 1, model);
			return -EINVAL;
		}
		if (!*reason) {
			snprintf(err, errlen, "%s:%zu: a limit of \"%s\" (%s%s%s) has no reason", origin, lineno, model,
				 scope, slash ? "/" : "", slash ? slash + 1 : "");
			return -EINVAL;
		}
		for (size_t i = first; i < *n; i++) {
			if ((*limits)[i].backend == l.backend && (*limits)[i].kind == l.kind) {
				snprintf(err, errlen, "%s:%zu: \"%s\" lists the limit %s%s%s twice", origin, lineno, model,
					 scope, slash ? "/" : "", slash ? slash + 1 : "");
				return -EINVAL;
			}
		}
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 16;
			struct reg_limit *nl = realloc(*limits, ncap * sizeof(*nl));
			if (!nl)
				return -ENOMEM;
			*limits = nl;
			*cap = ncap;
		}
		(*limits)[(*n)++] = l;
		if (!semi)
			return 0;
		s = semi + strlen(LIMIT_SEP);
	}
}

/* Checks the suites column: names separated by ",", none reserved ("all",
 * a family) or listed twice.  Sets *core. */
static int parse_suites(const char *text, const char *origin, size_t lineno, const char *model, bool *core,
			char *err, size_t errlen)
{
	const char *p = text;

	*core = false;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char name[REGISTRY_SUITE_MAX];

		if (!hf_suite_name_valid(p, len)) {
			snprintf(err, errlen,
				 "%s:%zu: suite \"%.*s\" of \"%s\" is not 1 to %d of a-z 0-9 _ . -", origin,
				 lineno, (int)(len < 64 ? len : 64), p, model, REGISTRY_SUITE_MAX - 1);
			return -EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		if (strcmp(name, "all") == 0 || hf_family_valid(name)) {
			snprintf(err, errlen, "%s:%zu: suite \"%s\" of \"%s\" is reserved (\"all\" and the families are suites already)",
				 origin, lineno, name, model);
			return -EINVAL;
		}
		for (const char *q = text; q < p;) {
			const char *c2 = strchr(q, ',');
			size_t l2 = (size_t)(c2 - q);
			if (l2 == len && memcmp(q, p, len) == 0) {
				snprintf(err, errlen, "%s:%zu: \"%s\" lists the suite \"%s\" twice", origin, lineno,
					 model, name);
				return -EINVAL;
			}
			q = c2 + 1;
		}
		*core |= strcmp(name, "core") == 0;
		if (!comma)
			break;
		p = comma + 1;
		if (!*p) {
			snprintf(err, errlen, "%s:%zu: the suites of \"%s\" end with \",\"", origin, lineno, model);
			return -EINVAL;
		}
	}
	return 0;
}

/* "# transformers VERSION": the version the file was built from. */
static void read_version_comment(const char *line, struct registry *reg)
{
	static const char prefix[] = "# transformers ";
	size_t n = 0;

	if (reg->transformers_version[0] || strncmp(line, prefix, sizeof(prefix) - 1) != 0)
		return;
	line += sizeof(prefix) - 1;
	while (line[n] && line[n] != ' ' && n + 1 < sizeof(reg->transformers_version)) {
		char ch = line[n];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      ch == '.' || ch == '+' || ch == '-' || ch == '_'))
			return; /* not a version: it goes into logs and replies, so only these */
		n++;
	}
	if (n == 0 || (line[n] && line[n] != ' '))
		return; /* empty or too long: not a version */
	memcpy(reg->transformers_version, line, n);
	reg->transformers_version[n] = '\0';
}

static int valid_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s == ' ' || (unsigned char)*s < 0x20)
			return 0;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* reg->suites: the named suites of every model, each once, in byte order. */
static int collect_suites(struct registry *reg)
{
	size_t cap = 0;

	for (size_t i = 0; i < reg->n; i++) {
		for (const char *p = reg->models[i].suites; *p;) {
			const char *comma = strchr(p, ',');
			size_t l = comma ? (size_t)(comma - p) : strlen(p);
			bool seen = false;
			for (size_t j = 0; j < reg->n_suites && !seen; j++)
				seen = strlen(reg->suites[j]) == l && memcmp(reg->suites[j], p, l) == 0;
			if (!seen) {
				if (reg->n_suites == cap) {
					size_t ncap = cap ? cap * 2 : 8;
					char **ns = realloc(reg->suites, ncap * sizeof(*ns));
					if (!ns)
						return -ENOMEM;
					reg->suites = ns;
					cap = ncap;
				}
				reg->suites[reg->n_suites] = strndup(p, l);
				if (!reg->suites[reg->n_suites])
					return -ENOMEM;
				reg->n_suites++;
			}
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	if (reg->n_suites)
		qsort(reg->suites, reg->n_suites, sizeof(*reg->suites), cmp_str);
	return 0;
}

int registry_parse(const char *text, size_t len, const char *origin, struct registry **ret_reg,
		   char *err, size_t errlen)
{
	struct registry *reg = calloc(1, sizeof(*reg));
	size_t cap = 0, lim_cap = 0, lineno = 0;
	/* Each model's first limit, as an index: reg->limits may still move. */
	size_t *lim_first = NULL;
	int nfields = 10;
	char *p, *end;
	int r = -EINVAL;

	if (!reg)
		return -ENOMEM;
	reg->storage = malloc(len + 1);
	if (!reg->storage) {
		free(reg);
		return -ENOMEM;
	}
	memcpy(reg->storage, text, len);
	reg->storage[len] = '\0';
	p = reg->storage;
	end = p + len;

	while (p < end) {
		char *line = p;
		char *nl = memchr(p, '\n', (size_t)(end - p));
		p = nl ? nl + 1 : end;
		if (nl)
			*nl = '\0';
		lineno++;
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';

		if (lineno == 1) {
			if (strcmp(line, REGISTRY_HEADER_V1) == 0) {
				nfields = 7;
			} else if (strcmp(line, REGISTRY_HEADER_V2) == 0) {
				nfields = 8;
			} else if (strcmp(line, REGISTRY_HEADER) != 0) {
				snprintf(err, errlen, "%s:1: the header must be \"%s\"", origin,
					 "model_type<TAB>hf_id<TAB>family<TAB>task<TAB>modality<TAB>size_class<TAB>notes<TAB>limits<TAB>suites<TAB>source");
				goto fail;
			}
			continue;
		}
		if (line[0] == '#')
			read_version_comment(line, reg);
		if (l == 0 || line[0] == '#')
			continue;

		char *field[10] = { 0 };
		int nf = 0;
		char *s = line;
		for (;;) {
			if (nf == nfields) {
				snprintf(err, errlen, "%s:%zu: too many fields (%d expected)", origin, lineno,
					 nfields);
				goto fail;
			}
			field[nf++] = s;
			char *tab = strchr(s, '\t');
			if (!tab)
				break;
			*tab = '\0';
			s = tab + 1;
		}
		if (nf < 6) {
			snprintf(err, errlen, "%s:%zu: %d fields, at least 6 expected", origin, lineno, nf);
			goto fail;
		}
		for (int i = nf; i < 10; i++)
			field[i] = line + l; /* empty notes, limits, suites, source */
		for (int i = 0; i < 6; i++) {
			/* A type transformers records no checkpoint for has no hf_id; a
			 * checkpoint not yet weighed, no size class. */
			if ((i == 1 || i == 5) && !*field[i])
				continue;
			if (!valid_token(field[i])) {
				snprintf(err, errlen, "%s:%zu: field %d is empty or contains spaces", origin,
					 lineno, i + 1);
				goto fail;
			}
		}
		if (!hf_family_valid(field[2])) {
			snprintf(err, errlen, "%s:%zu: unknown family \"%s\" for \"%s\" (valid: %s)", origin,
				 lineno, field[2], field[0], hf_family_names());
			goto fail;
		}
		int ok = !*field[5];
		for (size_t i = 0; i < sizeof(size_classes) / sizeof(size_classes[0]); i++)
			ok |= strcmp(field[5], size_classes[i]) == 0;
		if (!ok) {
			snprintf(err, errlen, "%s:%zu: unknown size class \"%s\" for \"%s\"", origin,
				 lineno, field[5], field[0]);
			goto fail;
		}
		if (reg->n == cap) {
			size_t ncap = cap ? cap * 2 : 512;
			struct reg_model *nm = realloc(reg->models, ncap * sizeof(*nm));
			size_t *nfirst = realloc(lim_first, ncap * sizeof(*nfirst));
			if (nm)
				reg->models = nm;
			if (nfirst)
				lim_first = nfirst;
			if (!nm || !nfirst) {
				r = -ENOMEM;
				goto fail;
			}
			cap = ncap;
		}
		bool core = true; /* an older file: every model is the core suite */
		if (nfields == 10) {
			r = parse_suites(field[8], origin, lineno, field[0], &core, err, errlen);
			if (r < 0)
				goto fail;
			if (*field[9] && strcmp(field[9], "transformers") != 0 &&
			    strcmp(field[9], "reference-list") != 0) {
				snprintf(err, errlen,
					 "%s:%zu: source \"%s\" of \"%s\" is not transformers or reference-list",
					 origin, lineno, field[9], field[0]);
				r = -EINVAL;
				goto fail;
			}
		}
		size_t first = reg->n_limits;
		r = parse_limits(field[7], origin, lineno, field[0], &reg->limits, &reg->n_limits,
				 &lim_cap, err, errlen);
		if (r < 0)
			goto fail;
		r = -EINVAL;
		lim_first[reg->n] = first;
		reg->models[reg->n++] = (struct reg_model){
			field[0], field[1], field[2], field[3], field[4], field[5], field[6],
			NULL, reg->n_limits - first, field[8], field[9], core,
		};
	}
	/* The limits are all read: point each model at its own. */
	for (size_t i = 0; i < reg->n; i++)
		reg->models[i].limits = reg->models[i].n_limits ? reg->limits + lim_first[i] : NULL;
	free(lim_first);
	lim_first = NULL;
	if (lineno == 0) {
		snprintf(err, errlen, "%s: empty registry", origin);
		goto fail;
	}
	if (reg->n == 0) {
		snprintf(err, errlen, "%s: the registry has no models", origin);
		goto fail;
	}
	qsort(reg->models, reg->n, sizeof(*reg->models), cmp_model);
	for (size_t i = 1; i < reg->n; i++) {
		if (strcmp(reg->models[i - 1].model_type, reg->models[i].model_type) == 0) {
			snprintf(err, errlen, "%s: model type \"%s\" is listed twice", origin,
				 reg->models[i].model_type);
			goto fail;
		}
	}
	r = collect_suites(reg);
	if (r < 0)
		goto fail;
	*ret_reg = reg;
	return 0;
fail:
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", origin);
	free(lim_first);
	registry_free(reg);
	return r;
}

int registry_load_file(const char *path, struct registry **ret_reg, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int r = hf_read_file(path, 16u << 20, &buf, &len);
	if (r < 0) {
		snprintf(err, errlen, "could not read registry \"%s\": %s", path, strerror(-r));
		return r;
	}
	r = registry_parse(buf, len, path, ret_reg, err, errlen);
	free(buf);
	return r;
}

void registry_free(struct registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->n_suites; i++)
		free(reg->suites[i]);
	free(reg->suites);
	free(reg->models);
	free(reg->limits);
	free(reg->storage);
	free(reg);
}

long registry_find(const struct registry *reg, const char *model_type)
{
	size_t lo = 0, hi = reg->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(model_type, reg->models[mid].model_type);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

const struct reg_limit *registry_limit(const struct reg_model *m, Hf__Backend backend,
				       Hf__TaskKind kind)
{
	for (size_t i = 0; i < m->n_limits; i++) {
		const struct reg_limit *l = &m->limits[i];
		if ((l->backend == HF__BACKEND__BACKEND_UNSPECIFIED || l->backend == backend) &&
		    (l->kind == HF__TASK_KIND__KIND_UNSPECIFIED || l->kind == kind))
			return l;
	}
	return NULL;
}

void registry_limit_scope(const struct reg_limit *l, char *buf, size_t len)
{
	const char *b = l->backend == HF__BACKEND__BACKEND_UNSPECIFIED ? "*" : hf_backend_name(l->backend);
	if (l->kind == HF__TASK_KIND__KIND_UNSPECIFIED)
		snprintf(buf, len, "%s", b);
	else
		snprintf(buf, len, "%s/%s", b, hf_kind_name(l->kind));
}

/* ---- suites ---- */

bool registry_in_suite(const struct reg_model *m, const char *suite)
{
	size_t len = strlen(suite);

	if (strcmp(suite, "all") == 0 || strcmp(suite, m->family) == 0)
		return true;
	if (strcmp(suite, "core") == 0)
		return m->core;
	for (const char *p = m->suites; *p;) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		if (l == len && memcmp(p, suite, len) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

const char *registry_default_suite(const struct registry *reg)
{
	for (size_t i = 0; i < reg->n; i++)
		if (reg->models[i].core)
			return "core";
	return "all";
}

int registry_suite_pick(const struct registry *reg, const char *suite, bool *picked, char *err,
			size_t errlen)
{
	size_t n = 0;

	for (size_t i = 0; i < reg->n; i++) {
		if (registry_in_suite(&reg->models[i], suite)) {
			picked[i] = true;
			n++;
		}
	}
	if (n == 0) {
		char names[1024];
		registry_suite_names(reg, names, sizeof(names));
		snprintf(err, errlen, "unknown suite \"%.64s\" (valid: %s)", suite, names);
		return -ENOENT;
	}
	return 0;
}

/* Appends s to buf (len bytes) after ", " unless at the start. */
static void names_add(char *buf, size_t len, const char *s, size_t slen)
{
	size_t at = strlen(buf);
	int w = snprintf(buf + at, len - at, "%s%.*s", at ? ", " : "", (int)slen, s);
	if (w < 0 || (size_t)w >= len - at)
		buf[at] = '\0'; /* no room: leave it out whole */
}

void registry_suite_names(const struct registry *reg, char *buf, size_t len)
{
	char families[512];

	if (len == 0)
		return;
	buf[0] = '\0';
	names_add(buf, len, "all", 3);
	for (size_t i = 0; i < reg->n_suites; i++)
		names_add(buf, len, reg->suites[i], strlen(reg->suites[i]));
	/* The families in their canonical order, those the registry has. */
	snprintf(families, sizeof(families), "%s", hf_family_names());
	for (char *f = families; *f;) {
		char *sep = strstr(f, ", ");
		size_t l = sep ? (size_t)(sep - f) : strlen(f);
		bool have = false;
		for (size_t i = 0; i < reg->n && !have; i++)
			have = strlen(reg->models[i].family) == l && memcmp(reg->models[i].family, f, l) == 0;
		if (have)
			names_add(buf, len, f, l);
		if (!sep)
			break;
		f = sep + 2;
	}
}

/* ---- the transformers a worker has ---- */

/* major and minor of "5.17.0.dev0"; false when s does not start N.N. */
static bool major_minor(const char *s, unsigned long *maj, unsigned long *min)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	*maj = strtoul(s, &end, 10);
	if (*end != '.' || end[1] < '0' || end[1] > '9')
		return false;
	*min = strtoul(end + 1, &end, 10);
	return true;
}

bool registry_transformers_skew(const struct registry *reg, Hf__Runtime *const *runtimes, size_t n,
				char *msg, size_t len)
{
	unsigned long rmaj, rmin, wmaj, wmin;

	if (!major_minor(reg->transformers_version, &rmaj, &rmin))
		return false;
	for (size_t i = 0; i < n; i++) {
		const Hf__Runtime *rt = runtimes[i];
		if (!rt->name || strcmp(rt->name, "transformers") != 0 || !rt->available)
			continue;
		if (!major_minor(rt->version, &wmaj, &wmin) || (wmaj == rmaj && wmin == rmin))
			return false;
		bool older = wmaj < rmaj || (wmaj == rmaj && wmin < rmin);
		snprintf(msg, len,
			 older ? "transformers %.32s is older than the registry's %s: its runner skips the model types it lacks"
			       : "transformers %.32s is newer than the registry's %s: model types it added are not in the registry (rerun coordinator/registry/build_registry.py)",
			 rt->version, reg->transformers_version);
		return true;
	}
	return false;
}
