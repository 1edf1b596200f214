/* SPDX-License-Identifier: MIT
 *
 * What hf_validate.c and hf_validate-msg.c share: the field path that error
 * texts begin with.  Not for other files.
 */
#ifndef HF_VALIDATE_INT_H
#define HF_VALIDATE_INT_H

#include <stddef.h>

/* The path of the field being checked ("results[3].status") and where the
 * error text goes. */
struct vctx {
	char path[192];
	size_t path_len;
	char *err;
	size_t errlen;
};

/* Appends ".name" (or "name[idx]" when idx >= 0); returns what to pass to
 * vpath_pop to undo it. */
size_t vpath_push(struct vctx *v, const char *name, long idx);
void vpath_pop(struct vctx *v, size_t old);

/* Writes "path: text" to the error buffer (valid UTF-8) and returns rc. */
int vfail(struct vctx *v, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
