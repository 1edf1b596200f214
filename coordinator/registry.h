/* SPDX-License-Identifier: MIT
 *
 * The model registry: the suite's model types with their default Hub id,
 * architecture family, pipeline task, input modality and size class, read
 * from a tab-separated file (coordinator/registry/models.tsv; a copy is
 * built into the coordinator, and registry.path can name another).  Pure
 * parsing, no I/O beyond reading the file; the coordinator copies the
 * result into the database at start.
 *
 * A registry is immutable once loaded and may be read from any thread.
 */
#ifndef HF_REGISTRY_H
#define HF_REGISTRY_H

#include <stddef.h>

struct reg_model {
	char *model_type;
	char *hf_id;
	char *family;
	char *task;
	char *modality;
	char *size_class;
	char *notes;
};

struct registry {
	struct reg_model *models; /* sorted by model_type */
	size_t n;
	char *storage;            /* one allocation holding every string */
};

/* The header line the file must start with. */
#define REGISTRY_HEADER "model_type\thf_id\tfamily\ttask\tmodality\tsize_class\tnotes"

/* Parses text (origin names it in messages).  Returns 0, -EINVAL with a
 * message naming the line in err, or -ENOMEM. */
int registry_parse(const char *text, size_t len, const char *origin, struct registry **ret_reg,
		   char *err, size_t errlen);

int registry_load_file(const char *path, struct registry **ret_reg, char *err, size_t errlen);

void registry_free(struct registry *reg);

/* Index of model_type, or -1. */
long registry_find(const struct registry *reg, const char *model_type);

#endif
