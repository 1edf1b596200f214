/* SPDX-License-Identifier: MIT
 *
 * The model registry: the suite's model types with their default Hub id,
 * architecture family, pipeline task, input modality, size class,
 * per-backend limits and named suites, read from a tab-separated file
 * (coordinator/registry/models.tsv, which coordinator/registry/build_registry.py
 * makes from transformers; a copy is built into the coordinator, and
 * registry.path can name another).  Pure parsing, no I/O beyond reading the
 * file; the coordinator copies the result into the database at start.
 *
 * A registry is immutable once loaded and may be read from any thread.
 */
#ifndef HF_REGISTRY_H
#define HF_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "hf_limits.h"
#include "hfleet.pb-c.h"

/* One entry of the limits column: the model cannot run on this backend (or
 * every backend) for this kind of task (or both kinds), and why.  A mark,
 * not a filter: the tasks are still created and run. */
struct reg_limit {
	Hf__Backend backend;     /* BACKEND_UNSPECIFIED: every backend ("*") */
	Hf__TaskKind kind;       /* KIND_UNSPECIFIED: tests and benchmarks */
	const char *reason;
};

#define REGISTRY_VERSION_MAX 64
#define REGISTRY_SUITE_MAX HF_SUITE_MAX /* bytes of a suite name: hf_suite_name_valid */

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
	char *suites;     /* named suites beyond "all" and the family's, "a,b"; "" none */
	char *source;     /* "transformers", "reference-list", or "" (an older file) */
	bool core;        /* in the "core" suite (every model of an older file is) */
};

struct registry {
	struct reg_model *models; /* sorted by model_type */
	size_t n;
	char *storage;            /* one allocation holding every string */
	struct reg_limit *limits; /* every model's limits, one allocation */
	size_t n_limits;
	/* The transformers version the file was built from ("# transformers
	 * 5.17.0", the first comment of that form), or "" when it does not say. */
	char transformers_version[REGISTRY_VERSION_MAX];
	char **suites;            /* the named suites of the suites column, in byte order */
	size_t n_suites;
};

/* The header line the file must start with.  A file with an older header
 * loads too: without the limits column every model's limits are empty;
 * without suites and source every model is in "core". */
#define REGISTRY_HEADER_V1 "model_type\thf_id\tfamily\ttask\tmodality\tsize_class\tnotes"
#define REGISTRY_HEADER_V2 REGISTRY_HEADER_V1 "\tlimits"
#define REGISTRY_HEADER REGISTRY_HEADER_V2 "\tsuites\tsource"

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

/* ---- the transformers a worker has ---- */

/* When the registry says which transformers it was built from and a worker
 * reports an available "transformers" runtime of another major.minor
 * version, writes what that means into msg ("transformers 5.12.0 is older
 * than the registry's 5.17: ...") and returns true. */
bool registry_transformers_skew(const struct registry *reg, Hf__Runtime *const *runtimes, size_t n,
				char *msg, size_t len);

/* ---- suites ----
 * Every model is in "all" and in its family's suite (the family name); the
 * suites column adds named ones, "core" among them. */

bool registry_in_suite(const struct reg_model *m, const char *suite);

/* The suite that "--all" and "--family" choose from: "core" when any model
 * is in it, else "all". */
const char *registry_default_suite(const struct registry *reg);

/* Sets picked[i] for every model of the named suite.  Returns 0, or -ENOENT
 * with a message listing the suites there are when none has that name. */
int registry_suite_pick(const struct registry *reg, const char *suite, bool *picked, char *err,
			size_t errlen);

/* The suites there are, "all, core, decoder-only, ...": "all", then the named
 * suites in byte order, then the families the registry has, in
 * hf_family_names() order.  Writes at most len bytes, always terminated. */
void registry_suite_names(const struct registry *reg, char *buf, size_t len);

#endif
