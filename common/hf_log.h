/* SPDX-License-Identifier: MIT
 *
 * The one logging call every hfleet program uses.  A line goes to stderr as
 * "TIME PROGRAM[PID] LEVEL: message", written with a single write(2) so lines
 * from different threads never interleave.  The threshold and the program
 * name are set once by main() before any other thread starts; after that any
 * thread may log.
 */
#ifndef HF_LOG_H
#define HF_LOG_H

enum hf_log_level {
	HF_LOG_ERROR = 0,
	HF_LOG_WARN = 1,
	HF_LOG_INFO = 2,
	HF_LOG_DEBUG = 3,
};

/* Call from main() before starting threads.  ident is not copied. */
void hf_log_init(const char *ident, int level);

/* Parses "error", "warn", "info", "debug"; returns -EINVAL otherwise. */
int hf_log_level_parse(const char *s, int *ret_level);

void hf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) hf_log(HF_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) hf_log(HF_LOG_WARN, __VA_ARGS__)
#define log_info(...) hf_log(HF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) hf_log(HF_LOG_DEBUG, __VA_ARGS__)

#endif
