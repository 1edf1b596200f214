/* SPDX-License-Identifier: MIT
 *
 * What the hardware backends (hw-nvml.c, hw-rocm.c, hw-intel.c, hw-qnn.c)
 * share: reading small sysfs/proc files and listing directories below a root
 * prefix, and loading a vendor library at run time with its failure put in
 * words.  The root prefix is "" for the running system; the unit tests point
 * it at fixture trees, so fixtures and machines go through the same code.
 *
 * Paths are given printf-style and are relative to the root (they start with
 * '/').  Nothing here logs; callers decide whether a missing file matters.
 * Thread-safe: no global state (dlerror is per thread).
 */
#ifndef HW_UTIL_H
#define HW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HW_PATH_MAX 4096

/* root + the formatted path into buf.  Returns 0 or -ENAMETOOLONG. */
int hw_path(char *buf, size_t len, const char *root, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Reads a small text file (at most len - 1 bytes are kept) with trailing
 * blanks and newlines removed.  Returns 0 or a negative errno. */
int hw_file_read(const char *root, char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Reads a file holding one unsigned number, decimal or 0x-hex.  Returns 0,
 * a negative errno, or -EINVAL when it holds something else. */
int hw_file_read_u64(const char *root, uint64_t *ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Whether the path exists (any type). */
bool hw_file_exists(const char *root, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last component of a symbolic link's target (e.g. "xe" for a PCI
 * device's driver link) into buf.  Returns 0 or a negative errno. */
int hw_link_base(const char *root, char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The entries of directory root+dir named prefix<number> (e.g. "card" finds
 * card0, card1 but not card0-DP-1), as their numbers in ascending order.
 * An empty prefix takes entries that are all digits.  Returns the count
 * (at most max), -ENOENT when the directory does not exist, or another
 * negative errno. */
int hw_dir_numbered(const char *root, const char *dir, const char *prefix, unsigned *ret_numbers,
		    size_t max);

/* The value of "key value" in properties text as KFD writes it (one pair a
 * line).  Returns 0, -ENOENT when the key is missing, -EINVAL when its value
 * is not a number. */
int hw_props_u64(const char *text, const char *key, uint64_t *ret);

/* Loads a library (a name the dynamic linker searches for, or a path) with
 * RTLD_NOW | RTLD_LOCAL, plus RTLD_NODELETE when keep_loaded is set (for
 * libraries that start threads or register exit handlers, which must never
 * be unloaded).  On failure it writes why into reason: "library "X" not
 * found", or "could not load library "X": <dynamic linker message>".
 * Returns 0 or -ENOENT (not found) or -ELIBBAD (found but not loadable). */
int hw_lib_open(const char *name, bool keep_loaded, void **ret_handle, char *reason, size_t len);

/* Unloads a library hw_lib_open loaded (a no-op for one kept loaded).
 * NULL is fine. */
void hw_lib_close(void *handle);

/* Looks up a symbol; NULL when the library does not export it. */
void *hw_lib_sym(void *handle, const char *symbol);

/* The path of the file a loaded symbol came from (so a status can say
 * which copy of a library answered), or name when it cannot be told. */
void hw_lib_path(void *symbol, const char *name, char *buf, size_t len);

/* Formats a byte count as "80.0 GiB" (or "unknown" for 0). */
void hw_bytes_format(uint64_t bytes, char *buf, size_t len);

#endif
