/* SPDX-License-Identifier: MIT
 *
 * File, directory and dynamic-library helpers of the hardware backends (see
 * hw-util.h).
 */
#include "hw-util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_util.h"

#define MAX_NUMBERED 4096

static int path_vformat(char *buf, size_t len, const char *root, const char *fmt, va_list ap)
{
	size_t n = strlen(root);
	int m;

	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, root, n);
	m = vsnprintf(buf + n, len - n, fmt, ap);
	if (m < 0 || (size_t)m >= len - n)
		return -ENAMETOOLONG;
	return 0;
}

int hw_path(char *buf, size_t len, const char *root, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = path_vformat(buf, len, root, fmt, ap);
	va_end(ap);
	return r;
}

static int file_read_at(const char *path, char *buf, size_t len)
{
	size_t got = 0;
	int fd, r = 0;

	if (len == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < len - 1) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (r < 0)
		return r;
	buf[got] = '\0';
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' ' || buf[got - 1] == '\t' ||
			   buf[got - 1] == '\r'))
		buf[--got] = '\0';
	return 0;
}

int hw_file_read(const char *root, char *buf, size_t len, const char *fmt, ...)
{
	char path[HW_PATH_MAX];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = path_vformat(path, sizeof(path), root, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	return file_read_at(path, buf, len);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	s += strspn(s, " \t");
	if (*s == '-' || *s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	end += strspn(end, " \t\r\n");
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int hw_file_read_u64(const char *root, uint64_t *ret, const char *fmt, ...)
{
	char path[HW_PATH_MAX], text[64];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = path_vformat(path, sizeof(path), root, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	r = file_read_at(path, text, sizeof(text));
	if (r < 0)
		return r;
	return parse_u64(text, ret);
}

bool hw_file_exists(const char *root, const char *fmt, ...)
{
	char path[HW_PATH_MAX];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = path_vformat(path, sizeof(path), root, fmt, ap);
	va_end(ap);
	return r == 0 && access(path, F_OK) == 0;
}

int hw_link_base(const char *root, char *buf, size_t len, const char *fmt, ...)
{
	char path[HW_PATH_MAX], target[HW_PATH_MAX];
	const char *base;
	ssize_t n;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = path_vformat(path, sizeof(path), root, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (!*base)
		return -EINVAL;
	if (hf_strlcpy(buf, base, len) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int unsigned_cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

int hw_dir_numbered(const char *root, const char *dir, const char *prefix, unsigned *ret_numbers,
		    size_t max)
{
	char path[HW_PATH_MAX];
	size_t plen = strlen(prefix), n = 0;
	struct dirent *de;
	DIR *d;
	int r;

	r = hw_path(path, sizeof(path), root, "%s", dir);
	if (r < 0)
		return r;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < max && n < MAX_NUMBERED) {
		const char *num = de->d_name + plen;
		char *end;
		unsigned long v;

		if (strncmp(de->d_name, prefix, plen) != 0 || *num < '0' || *num > '9')
			continue;
		errno = 0;
		v = strtoul(num, &end, 10);
		if (errno || *end || v > 0xffffffffUL)
			continue;
		ret_numbers[n++] = (unsigned)v;
	}
	closedir(d);
	qsort(ret_numbers, n, sizeof(*ret_numbers), unsigned_cmp);
	return (int)n;
}

int hw_props_u64(const char *text, const char *key, uint64_t *ret)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		char value[64];
		size_t vlen;

		if (strncmp(p, key, klen) != 0 || (p[klen] != ' ' && p[klen] != '\t'))
			continue;
		p += klen;
		p += strspn(p, " \t");
		vlen = strcspn(p, "\n");
		if (vlen >= sizeof(value))
			return -EINVAL;
		memcpy(value, p, vlen);
		value[vlen] = '\0';
		return parse_u64(value, ret);
	}
	return -ENOENT;
}

int hw_lib_open(const char *name, bool keep_loaded, void **ret_handle, char *reason, size_t len)
{
	int flags = RTLD_NOW | RTLD_LOCAL | (keep_loaded ? RTLD_NODELETE : 0);
	void *h;
	const char *msg;

	dlerror(); /* clear */
	h = dlopen(name, flags);
	if (h) {
		*ret_handle = h;
		return 0;
	}
	msg = dlerror();
	if (!msg)
		msg = "unknown error";
	/* glibc says "<name>: cannot open shared object file: No such file or
	 * directory" both for a name not on the search path and for a path
	 * that does not exist. */
	if (strstr(msg, "No such file or directory")) {
		snprintf(reason, len, "library \"%s\" not found", name);
		return -ENOENT;
	}
	snprintf(reason, len, "could not load library \"%s\": %s", name, msg);
	return -ELIBBAD;
}

void hw_lib_close(void *handle)
{
	if (handle)
		dlclose(handle);
}

void *hw_lib_sym(void *handle, const char *symbol)
{
	return dlsym(handle, symbol);
}

void hw_lib_path(void *symbol, const char *name, char *buf, size_t len)
{
	Dl_info info;

	if (symbol && dladdr(symbol, &info) && info.dli_fname && info.dli_fname[0])
		hf_strlcpy(buf, info.dli_fname, len);
	else
		hf_strlcpy(buf, name, len);
}

void hw_bytes_format(uint64_t bytes, char *buf, size_t len)
{
	if (bytes == 0)
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
}
