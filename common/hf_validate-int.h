/* SPDX-License-Identifier: MIT
 *
 * What hf_validate.c and hf_validate-msg.c share: the field path that error
 * texts begin with.  Not for other files.
 */
#ifndef HF_VALIDATE_INT_H
#define HF_VALIDATE_INT_H

#include <stddef.h>

#define VPATH_MAX 24 /* path segments kept (nesting is at most 8 deep) */

/* The path of the field being checked ("results[3].status"), kept as the
 * names and indices that lead to it and written out only when a check
 * fails (every field of every message passes through here), and where the
 * error text goes. */
struct vctx {
	struct {
		const char *name; /* static: a descriptor's field name or a literal */
		long idx;         /* -1: none */
	} seg[VPATH_MAX];
	size_t path_len; /* segments (those past VPATH_MAX are not kept) */
	char *err;
	size_t errlen;
};

/* Appends ".name" (or "name[idx]" when idx >= 0); returns what to pass to
 * vpath_pop to undo it.  name must outlive the check. */
size_t vpath_push(struct vctx *v, const char *name, long idx);
void vpath_pop(struct vctx *v, size_t old);

/* Writes "path: text" to the error buffer (valid UTF-8) and returns rc. */
int vfail(struct vctx *v, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
