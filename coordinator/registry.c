/* SPDX-License-Identifier: MIT
 *
 * Model registry loader (see registry.h).
 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_util.h"

static const char *const size_classes[] = { "tiny", "small", "medium", "large", "xlarge" };

static int cmp_model(const void *a, const void *b)
{
	const struct reg_model *x = a, *y = b;
	return strcmp(x->model_type, y->model_type);
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

int registry_parse(const char *text, size_t len, const char *origin, struct registry **ret_reg,
		   char *err, size_t errlen)
{
	struct registry *reg = calloc(1, sizeof(*reg));
	size_t cap = 0, lineno = 0;
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
			if (strcmp(line, REGISTRY_HEADER) != 0) {
				snprintf(err, errlen, "%s:1: the header must be \"%s\"", origin,
					 "model_type<TAB>hf_id<TAB>family<TAB>task<TAB>modality<TAB>size_class<TAB>notes");
				goto fail;
			}
			continue;
		}
		if (l == 0 || line[0] == '#')
			continue;

		char *field[7] = { 0 };
		int nf = 0;
		char *s = line;
		for (;;) {
			if (nf == 7) {
				snprintf(err, errlen, "%s:%zu: too many fields (7 expected)", origin, lineno);
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
		if (nf == 6)
			field[6] = line + l; /* empty notes */
		for (int i = 0; i < 6; i++) {
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
		int ok = 0;
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
			if (!nm) {
				r = -ENOMEM;
				goto fail;
			}
			reg->models = nm;
			cap = ncap;
		}
		reg->models[reg->n++] = (struct reg_model){
			field[0], field[1], field[2], field[3], field[4], field[5], field[6],
		};
	}
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
	*ret_reg = reg;
	return 0;
fail:
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
	free(reg->models);
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
