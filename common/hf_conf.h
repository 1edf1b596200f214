/* SPDX-License-Identifier: MIT
 *
 * Declarative configuration.  Each program has one table of settings (name,
 * type, default, bounds, environment variable, description) describing the
 * fields of its configuration struct; this module fills the struct from the
 * defaults, then an INI file (parsed by inih), then the environment, then
 * command-line overrides, and prints the table as documentation.
 *
 * Setting names are "section.key", matching "[section]" and "key = value" in
 * the file.  Unknown sections or keys, malformed values and values out of
 * bounds are errors that name the file, line and setting.
 *
 * Strings in the struct are malloc'd and owned by the struct: release them
 * with hf_conf_fini.  Not thread-safe; used by main() at start-up.
 */
#ifndef HF_CONF_H
#define HF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum hf_conf_type {
	HF_CONF_STRING, /* char * */
	HF_CONF_INT,    /* int64_t */
	HF_CONF_BOOL,   /* bool */
	HF_CONF_MS,     /* int64_t milliseconds; accepts "250ms", "5s", "2m", "1h", bare = ms */
};

struct hf_conf_setting {
	const char *name;        /* "section.key" */
	enum hf_conf_type type;
	size_t offset;           /* offsetof(struct, field) */
	const char *def;         /* default, as text; NULL = empty/unset */
	int64_t min, max;        /* bounds for INT and MS (inclusive); min > max = none */
	const char *env;         /* environment variable that overrides it, or NULL */
	const char *description;
};

/* A table ends with an entry whose name is NULL. */

/* Applies the defaults.  Returns 0 or -EINVAL (a bad default: a bug). */
int hf_conf_defaults(const struct hf_conf_setting *table, void *obj, char *err, size_t errlen);

/* Reads an INI file over the current values.  Returns 0, -ENOENT when the
 * file cannot be opened, -ENOMEM, -EINVAL with a message in err otherwise. */
int hf_conf_load_file(const struct hf_conf_setting *table, void *obj, const char *path,
		      char *err, size_t errlen);

/* The same for INI text already in memory (NUL-terminated); name stands
 * for the file in messages.  Returns 0, -EINVAL with a message in err, or
 * -ENOMEM. */
int hf_conf_load_string(const struct hf_conf_setting *table, void *obj, const char *text,
			const char *name, char *err, size_t errlen);

/* Applies the environment variables named in the table. */
int hf_conf_load_env(const struct hf_conf_setting *table, void *obj, char *err, size_t errlen);

/* Sets one setting by name ("section.key") from text, e.g. from a
 * command-line "--set section.key=value". */
int hf_conf_set(const struct hf_conf_setting *table, void *obj, const char *name,
		const char *value, char *err, size_t errlen);

/* Frees the strings the struct holds. */
void hf_conf_fini(const struct hf_conf_setting *table, void *obj);

/* Writes the documentation of one setting (description, environment
 * variable, range) as "# " comment lines of at most 78 columns, broken
 * between words: the ini reader takes lines of up to 200 bytes. */
void hf_conf_print_doc(const struct hf_conf_setting *s, FILE *f);

/* How hf_conf_print_values shows one setting.  value holds the effective
 * value as text (a duration as "90s", "2h", "1500ms"); the callback may
 * replace it (a secret masked), put a note in note (printed as a comment
 * line above the key) and return true to print the key commented out
 * ("# key = value"): a value derived from elsewhere, such as the host name,
 * that a file made from the output should not pin. */
typedef bool (*hf_conf_show_fn)(const struct hf_conf_setting *s, const void *obj, char *value,
				size_t value_len, char *note, size_t note_len, void *arg);

/* Writes the effective configuration (obj's values) as an INI file that
 * loads back to it, every key preceded by its documentation; header (may
 * be NULL) is written first, as comment lines.  show may be NULL. */
void hf_conf_print_values(const struct hf_conf_setting *table, const void *obj, const char *header,
			  hf_conf_show_fn show, void *arg, FILE *f);

/* The header of hf_conf_print_values for program: what was applied, in
 * order ("the defaults, then FILE, then the environment (HFLEET_...), then
 * the command line").  path: the file read (NULL: none); cmdline: whether
 * options set anything. */
void hf_conf_sources(const struct hf_conf_setting *table, const char *program, const char *path,
		     bool cmdline, char *out, size_t len);

/* Writes a comment block ("# " before each line of text) of at most 78
 * columns, broken between words. */
void hf_conf_print_comment(const char *text, FILE *f);

/* Parses a duration ("250ms", "5s", "2m", "1h", or a bare number of ms). */
int hf_conf_parse_ms(const char *s, int64_t *ret_ms);

#endif
