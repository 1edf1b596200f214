/* SPDX-License-Identifier: MIT
 *
 * "Did you mean": the name closest to a mistyped word, among the names
 * hfctl knows (its commands, a command's options, backends, families,
 * precisions, kinds, statuses, the registry's models).  Pure; any thread.
 *
 * Closeness is the optimal string alignment distance (an insertion, a
 * deletion, a substitution or a swap of two neighbours counts 1), ASCII
 * letters compared without case.  A name is suggested only when it is
 * close for the word's length: only a difference of case for words of up
 * to 3 characters, 1 edit for 4, 2 up to 8, 3 beyond; the first of equally close names wins.  The work is
 * bounded: words and names longer than HFCTL_SUGGEST_LEN_MAX are never
 * compared (nothing is suggested for them).
 */
#ifndef HFCTL_SUGGEST_H
#define HFCTL_SUGGEST_H

#include <stddef.h>

#define HFCTL_SUGGEST_LEN_MAX 64

/* The best candidate seen so far for word. */
struct hfctl_suggest {
	const char *word;
	const char *best;  /* NULL until a close enough name is seen */
	size_t best_len;
	unsigned best_dist;
};

void hfctl_suggest_init(struct hfctl_suggest *s, const char *word);

/* Considers the len bytes at name. */
void hfctl_suggest_try(struct hfctl_suggest *s, const char *name, size_t len);

/* Considers every name of a list joined by ", " (as hf_backend_names()
 * gives them). */
void hfctl_suggest_try_list(struct hfctl_suggest *s, const char *names);

/* Writes "did you mean \"NAME\"? " into buf when a name was close enough,
 * "" otherwise: made to precede the rest of a parenthesised hint, as in
 * unknown backend "cdua" (did you mean "cuda"? valid: cpu, cuda, ...). */
void hfctl_suggest_hint(const struct hfctl_suggest *s, char *buf, size_t len);

/* The distance itself (exposed for the tests); UINT_MAX when either is
 * longer than HFCTL_SUGGEST_LEN_MAX. */
unsigned hfctl_suggest_distance(const char *a, size_t alen, const char *b, size_t blen);

/* Writes the message for an unknown name: what ("backend"), the word, the
 * option it was given to (opt, or NULL), the closest of names (joined by
 * ", ") when one is close enough, and the valid names, e.g.
 *   unknown backend "cdua" for --backend (did you mean "cuda"? valid: cpu, cuda, ...) */
void hfctl_unknown_name(const char *what, const char *word, const char *opt, const char *names,
			char *err, size_t errlen);

#endif
