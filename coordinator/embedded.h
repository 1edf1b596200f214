/* SPDX-License-Identifier: MIT
 *
 * Data files built into hf-coordinator by embed.py: the numbered SQL
 * migrations (sorted by name) and the default model registry.  Read-only.
 */
#ifndef HF_EMBEDDED_H
#define HF_EMBEDDED_H

#include <stddef.h>

struct hf_embedded_file {
	const char *name;
	const char *text;
};

extern const char hf_embedded_registry[];
extern const size_t hf_embedded_registry_len;
extern const struct hf_embedded_file hf_embedded_migrations[];
extern const size_t hf_embedded_n_migrations;

#endif
