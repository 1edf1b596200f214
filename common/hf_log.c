/* SPDX-License-Identifier: MIT
 *
 * Implementation of the shared log call (see hf_log.h): the text and JSON
 * shapes, and the journal's priority prefixes.
 */
#include "hf_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static const char *log_ident = "hfleet";
static int log_threshold = HF_LOG_INFO;
static enum hf_log_format log_format = HF_LOG_TEXT;
static bool log_journal;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
/* sd-daemon(3): SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG. */
static const char *const level_prefixes[] = { "<3>", "<4>", "<6>", "<7>" };

/* A message is at most this long; longer ones are cut. */
#define LOG_MSG_MAX 2048

void hf_log_init(const char *ident, int level)
{
	if (ident)
		log_ident = ident;
	log_threshold = level;
}

bool hf_log_is_journal(const char *env, int fd)
{
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!env || !*env)
		return false;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (errno || end == env || *end != ':')
		return false;
	env = end + 1;
	ino = strtoull(env, &end, 10);
	if (errno || end == env || *end)
		return false;
	if (fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool hf_log_daemon(enum hf_log_format format)
{
	log_format = format;
	log_journal = hf_log_is_journal(getenv("JOURNAL_STREAM"), STDERR_FILENO);
	return log_journal;
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

int hf_log_format_parse(const char *s, enum hf_log_format *ret_format)
{
	if (strcmp(s, "text") == 0)
		*ret_format = HF_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*ret_format = HF_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

/* The length of the well-formed UTF-8 sequence (RFC 3629) at s[0..n), or 0
 * when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* beyond U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Copies msg[0..n) into out (room for 3 n + 1 bytes) as UTF-8, each byte
 * that starts no well-formed sequence replaced by U+FFFD.  Returns the
 * length. */
static size_t utf8_clean(char *out, const char *msg, size_t n)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t o = 0;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_sequence(s + i, n - i);
		if (len) {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return o;
}

/* One JSON line, or -1 (out of memory: the caller writes text instead). */
static int log_json_line(int level, const char *ts, const char *msg, size_t n)
{
	char *clean = malloc(3 * n + 1), *dump = NULL;
	json_t *o = json_object();
	size_t clean_len;
	int r = -1;

	if (!clean || !o)
		goto out;
	clean_len = utf8_clean(clean, msg, n);
	if ( json_object_set_new(o, "ts", json_string(ts)) < 0 ||
	    json_object_set_new(o, "level", json_string(level_names[level])) < 0 ||
	    json_object_set_new(o, "daemon", json_string(log_ident)) < 0 ||
	    json_object_set_new(o, "pid", json_integer((json_int_t)getpid())) < 0 ||
	    json_object_set_new(o, "msg", json_stringn(clean, clean_len)) < 0)
		goto out;
	dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!dump)
		goto out;
	size_t len = strlen(dump);
	size_t prefix = log_journal ? 3 : 0;
	char *line = malloc(prefix + len + 1);
	if (!line)
		goto out;
	memcpy(line, level_prefixes[level], prefix);
	memcpy(line + prefix, dump, len);
	line[prefix + len] = '\n';
	ssize_t w = write(STDERR_FILENO, line, prefix + len + 1);
	(void)w;
	free(line);
	r = 0;
out:
	free(clean);
	free(dump);
	json_decref(o);
	return r;
}

void hf_log(int level, const char *fmt, ...)
{
	char msg[LOG_MSG_MAX], ts[40], line[LOG_MSG_MAX + 128];
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

	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t msg_len = m < 0 ? 0 : (size_t)m >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)m;
	msg[msg_len] = '\0';

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

	if (log_format == HF_LOG_JSON && log_json_line(level, ts, msg, msg_len) == 0) {
		errno = saved_errno;
		return;
	}
	if (log_journal) {
		/* The journal adds time, program and PID.  A newline would end
		 * the entry and start one at the default priority. */
		for (size_t i = 0; i < msg_len; i++)
			if ((unsigned char)msg[i] < ' ' || msg[i] == 0x7f)
				msg[i] = ' ';
		n = (size_t)snprintf(line, sizeof(line), "%s%s: ", level_prefixes[level], level_names[level]);
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s %s[%ld] %s: ", ts, log_ident, (long)getpid(),
				     level_names[level]);
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (msg_len > sizeof(line) - 2 - n)
		msg_len = sizeof(line) - 2 - n;
	memcpy(line + n, msg, msg_len);
	n += msg_len;
	line[n++] = '\n';

	/* One write so concurrent threads never interleave within a line. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
	errno = saved_errno;
}
