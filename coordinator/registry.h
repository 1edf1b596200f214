/* SPDX-License-Identifier: MIT
 *
 * The model registry: the suite's model types with their default Hub id,
 * architecture family, pipeline task, input modality, size class and
 * per-backend limits, read from a tab-separated file (coordinator/registry/models.tsv; a copy is
 * built into the coordinator, and registry.path can name another).  Pure
 * parsing, no I/O beyond reading the file; the coordinator copies the
 * result into the database at start.
 *
 * A registry is immutable once loaded and may be read from any thread.
 */
#ifndef HF_REGISTRY_H
#define HF_REGISTRY_H

#include <stddef.h>

#include "hfleet.pb-c.h"

/* One entry of the limits column: the model cannot run on this backend (or
 * every backend) for this kind of task (or both kinds), and why.  A mark,
 * not a filter: the tasks are still created and run. */
struct reg_limit {
	Hf__Backend backend;     /* BACKEND_UNSPECIFIED: every backend ("*") */
	Hf__TaskKind kind;       /* KIND_UNSPECIFIED: tests and benchmarks */
	const char *reason;
};

struct reg_model {
	char *model_type;
	char *hf_id;
	char *family;
	char *task;
	char *modality;
	char *size_class;
	char *notes;
	const struct reg_limit *limits; /* n_limits entries, in file order */
	size_t n_limits;
};

struct registry {
	struct reg_model *models; /* sorted by model_type */
	size_t n;
	char *storage;            /* one allocation holding every string */
	struct reg_limit *limits; /* every model's limits, one allocation */
	size_t n_limits;
};

/* The header line the file must start with.  A file with the older header,
 * which has no limits column, loads with every model's limits empty. */
#define REGISTRY_HEADER_V1 "model_type\thf_id\tfamily\ttask\tmodality\tsize_class\tnotes"
#define REGISTRY_HEADER REGISTRY_HEADER_V1 "\tlimits"

/* Parses text (origin names it in messages).  Returns 0, -EINVAL with a
 * message naming the line in err, or -ENOMEM. */
int registry_parse(const char *text, size_t len, const char *origin, struct registry **ret_reg,
		   char *err, size_t errlen);

int registry_load_file(const char *path, struct registry **ret_reg, char *err, size_t errlen);

void registry_free(struct registry *reg);

/* Index of model_type, or -1. */
long registry_find(const struct registry *reg, const char *model_type);

/* The first of m's limits that covers backend and kind, or NULL. */
const struct reg_limit *registry_limit(const struct reg_model *m, Hf__Backend backend,
				       Hf__TaskKind kind);

/* The scope of a limit as the file spells it: "*", "cuda", "cuda/test". */
void registry_limit_scope(const struct reg_limit *l, char *buf, size_t len);

#endif
