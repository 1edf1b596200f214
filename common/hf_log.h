/* SPDX-License-Identifier: MIT
 *
 * The one logging call every hfleet program uses.  A line goes to stderr,
 * written with a single write(2) so lines from different threads never
 * interleave, in one of three shapes:
 *
 *  - text (the default): "TIME PROGRAM[PID] LEVEL: message";
 *  - json (log.format = json): one object per line, {"ts", "level",
 *    "daemon", "pid", "msg"}, every string escaped by jansson (bytes that
 *    are not UTF-8 become U+FFFD);
 *  - either of them behind an sd-daemon priority prefix ("<3>" error, "<4>"
 *    warning, "<6>" info, "<7>" debug; sd-daemon(3)) when stderr is the
 *    journal: JOURNAL_STREAM names stderr's device and inode.  The journal
 *    stamps time, program and PID itself, so a text line there is
 *    "<6>LEVEL: message", and control characters of the message become
 *    blanks so that one call is one journal entry.
 *
 * The threshold, the program name and the shape are set once by main()
 * before any other thread starts (hf_log_init, then hf_log_daemon for the
 * daemons; hfctl calls neither and keeps the text shape); after that any
 * thread may log.
 */
#ifndef HF_LOG_H
#define HF_LOG_H

#include <stdbool.h>

enum hf_log_level {
	HF_LOG_ERROR = 0,
	HF_LOG_WARN = 1,
	HF_LOG_INFO = 2,
	HF_LOG_DEBUG = 3,
};

enum hf_log_format {
	HF_LOG_TEXT = 0,
	HF_LOG_JSON = 1,
};

/* Call from main() before starting threads.  ident is not copied. */
void hf_log_init(const char *ident, int level);

/* A daemon's logging: lines in format, with priority prefixes when stderr
 * is the journal (see above).  Call from main() before starting threads.
 * Returns whether stderr is the journal. */
bool hf_log_daemon(enum hf_log_format format);

/* Parses "error", "warn", "info", "debug"; returns -EINVAL otherwise. */
int hf_log_level_parse(const char *s, int *ret_level);

/* Parses "text", "json"; returns -EINVAL otherwise. */
int hf_log_format_parse(const char *s, enum hf_log_format *ret_format);

/* Whether the JOURNAL_STREAM value env ("DEVICE:INODE", decimal) names the
 * file open on fd.  env may be NULL (false). */
bool hf_log_is_journal(const char *env, int fd);

void hf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) hf_log(HF_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) hf_log(HF_LOG_WARN, __VA_ARGS__)
#define log_info(...) hf_log(HF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) hf_log(HF_LOG_DEBUG, __VA_ARGS__)

#endif
