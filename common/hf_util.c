/* SPDX-License-Identifier: MIT
 *
 * Shared small helpers (see hf_util.h).
 */
#include "hf_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t hf_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hf_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double hf_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t hf_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);
	if (n) {
		size_t m = len < n - 1 ? len : n - 1;
		memcpy(dst, src, m);
		dst[m] = '\0';
	}
	return len;
}

int hf_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((size_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	/* Files of /proc and /sys say size 0: start at a page, not a byte
	 * doubled a dozen times (a read each). */
	cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	buf = malloc(cap);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > max) {
				r = -EFBIG;
				goto out;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		r = -EFBIG;
		goto out;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	if (ret_len)
		*ret_len = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

int hf_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int hf_write_file_durable(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	char dircopy[4096];
	int fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = hf_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	hf_strlcpy(dircopy, path, sizeof(dircopy));
	fd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0)
			r = -errno;
		close(fd);
	}
	return r;
}

int hf_mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];
	size_t len = hf_strlcpy(buf, path, sizeof(buf));

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	if (mode == 0)
		mode = 0755;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

void hf_buf_init(struct hf_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void hf_buf_fini(struct hf_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static bool buf_reserve(struct hf_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d) {
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void hf_buf_append(struct hf_buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void hf_buf_puts(struct hf_buf *b, const char *s)
{
	hf_buf_append(b, s, strlen(s));
}

void hf_buf_json_string(struct hf_buf *b, const char *s)
{
	if (!s)
		return;
	hf_buf_append(b, "\"", 1);
	for (const char *run = s;;) {
		size_t len = 0;
		while (run[len] && run[len] != '"' && run[len] != '\\' && (unsigned char)run[len] >= 0x20 &&
		       run[len] != 0x7f)
			len++;
		hf_buf_append(b, run, len);
		if (!run[len])
			break;
		char esc[8];
		unsigned char c = (unsigned char)run[len];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			hf_buf_append(b, esc, 2);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			hf_buf_append(b, esc, 6);
		}
		run += len + 1;
	}
	hf_buf_append(b, "\"", 1);
}

/* Formats once into the room left when the text fits (the common case),
 * and only otherwise grows the buffer and formats again. */
void hf_buf_printf(struct hf_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room = b->oom || !b->data ? 0 : b->cap - b->len;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (room)
			b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n < room) {
		b->len += (size_t)n;
		return;
	}
	if (room)
		b->data[b->len] = '\0'; /* what did not fit is not kept */
	if (!buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* v's digits and a NUL at out (room for 21). */
static size_t fmt_digits(char *out, uint64_t v)
{
	char tmp[HF_FMT_INT_MAX];
	size_t n = 0, len;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (len = 0; len < n; len++)
		out[len] = tmp[n - 1 - len];
	out[len] = '\0';
	return len;
}

size_t hf_fmt_u64(char out[HF_FMT_INT_MAX], uint64_t v)
{
	return fmt_digits(out, v);
}

size_t hf_fmt_i64(char out[HF_FMT_INT_MAX], int64_t v)
{
	if (v >= 0)
		return fmt_digits(out, (uint64_t)v);
	out[0] = '-';
	/* -(v + 1) + 1: INT64_MIN has no positive int64. */
	return 1 + fmt_digits(out + 1, (uint64_t)(-(v + 1)) + 1);
}

void hf_buf_put_u64(struct hf_buf *b, uint64_t v)
{
	char tmp[HF_FMT_INT_MAX];
	hf_buf_append(b, tmp, hf_fmt_u64(tmp, v));
}

void hf_buf_put_i64(struct hf_buf *b, int64_t v)
{
	char tmp[HF_FMT_INT_MAX];
	hf_buf_append(b, tmp, hf_fmt_i64(tmp, v));
}

int hf_secret_file_read(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	char tmp[1024];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "could not open token file \"%s\": %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "could not read token file \"%s\": %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "token file \"%s\" is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EPERM;
		snprintf(err, errlen,
			 "token file \"%s\" is accessible by others (mode %04o): it must be readable by its owner only "
			 "(chmod 600 \"%s\")",
			 path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	n = read(fd, tmp, sizeof(tmp) - 1);
	if (n < 0) {
		r = -errno;
		snprintf(err, errlen, "could not read token file \"%s\": %s", path, strerror(-r));
		goto out;
	}
	tmp[n] = '\0';
	char *start = tmp + strspn(tmp, " \t\r\n");
	size_t l = strcspn(start, "\r\n");
	while (l > 0 && (start[l - 1] == ' ' || start[l - 1] == '\t'))
		l--;
	if (l == 0) {
		r = -ENODATA;
		snprintf(err, errlen, "token file \"%s\" is empty", path);
		goto out;
	}
	if (l >= len) {
		r = -E2BIG;
		snprintf(err, errlen, "token file \"%s\" holds %zu bytes on its first line, more than a token", path, l);
		goto out;
	}
	memcpy(buf, start, l);
	buf[l] = '\0';
out:
	memset(tmp, 0, sizeof(tmp));
	close(fd);
	return r;
}
