/* SPDX-License-Identifier: MIT
 *
 * Small helpers shared by every program: clocks, bounded string copies,
 * whole-file I/O with durable writes, and a growable text buffer.
 * Thread-safe; no global state.
 */
#ifndef HF_UTIL_H
#define HF_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock; for timeouts and intervals. */
int64_t hf_mono_ms(void);

/* Microseconds on the monotonic clock; for latencies. */
int64_t hf_mono_us(void);

/* Seconds since the epoch, with sub-second precision; for records. */
double hf_wall_s(void);

/* Copies src into dst of size n, always terminated; returns strlen(src). */
size_t hf_strlcpy(char *dst, const char *src, size_t n);

/* Reads a whole file (at most max bytes) into a malloc'd, NUL-terminated
 * buffer.  Returns 0, -errno, or -EFBIG when it is larger than max. */
int hf_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);

/* Writes data to path durably: a temporary file beside it, fsync, rename,
 * fsync of the directory.  Returns 0 or -errno (-ENOSPC on a full disk);
 * on failure path is untouched. */
int hf_write_file_durable(const char *path, const void *data, size_t len);

/* Writes all len bytes of data to fd, again after EINTR and short writes.
 * 0, or -errno. */
int hf_write_all(int fd, const void *data, size_t len);

/* Creates a directory and its parents (mode 0755 unless given). */
int hf_mkdir_p(const char *path, unsigned mode);

/* Reads a secret (a token) from path: its first line, without surrounding
 * blanks.  Like ssh with keys, refuses a file that group or others may
 * read or write (-EPERM), and one longer than len - 1 bytes (-E2BIG) or
 * empty (-ENODATA).  err says why, naming the file.  Returns 0. */
int hf_secret_file_read(const char *path, char *buf, size_t len, char *err, size_t errlen);

/* A growable NUL-terminated buffer.  On allocation failure it sets oom and
 * ignores further appends, so callers check once at the end. */
struct hf_buf {
	char *data;
	size_t len, cap;
	bool oom;
};

void hf_buf_init(struct hf_buf *b);
void hf_buf_fini(struct hf_buf *b);
void hf_buf_append(struct hf_buf *b, const char *s, size_t n);
void hf_buf_puts(struct hf_buf *b, const char *s);
/* s (NUL-terminated, valid UTF-8: the caller checked it) as a JSON string
 * on b: quoted, with '"', '\\', the control characters and DEL escaped, so
 * that the text stays one line.  NULL appends nothing. */
void hf_buf_json_string(struct hf_buf *b, const char *s);
void hf_buf_printf(struct hf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Decimal integers without printf (the database layer formats every
 * number of every row it writes): hf_fmt_* write v and a NUL into out and
 * return the length; hf_buf_put_* append v. */
#define HF_FMT_INT_MAX 21 /* "-9223372036854775808" and the NUL */
size_t hf_fmt_u64(char out[HF_FMT_INT_MAX], uint64_t v);
size_t hf_fmt_i64(char out[HF_FMT_INT_MAX], int64_t v);
void hf_buf_put_u64(struct hf_buf *b, uint64_t v);
void hf_buf_put_i64(struct hf_buf *b, int64_t v);

/* Big-endian integers of the SP wire (lengths and request ids): the
 * server (hf_spconn.c), the client (hf_spclient.c) and the simulator's
 * client (bench/sp-client.c) read and write them with these. */
static inline uint64_t hf_be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void hf_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t hf_be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
