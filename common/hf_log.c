/* SPDX-License-Identifier: MIT
 *
 * Implementation of the shared log call (see hf_log.h).
 */
#include "hf_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "hfleet";
static int log_threshold = HF_LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void hf_log_init(const char *ident, int level)
{
	if (ident)
		log_ident = ident;
	log_threshold = level;
}

int hf_log_level_parse(const char *s, int *ret_level)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*ret_level = i;
			return 0;
		}
	}
	return -EINVAL;
}

void hf_log(int level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int saved_errno = errno;

	if (level > log_threshold)
		return;
	if (level < 0)
		level = 0;
	if (level > HF_LOG_DEBUG)
		level = HF_LOG_DEBUG;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld] %s: ",
			      (long)(tv.tv_usec / 1000), log_ident, (long)getpid(), level_names[level]);

	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';

	/* One write so concurrent threads never interleave within a line. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
	errno = saved_errno;
}
