/* SPDX-License-Identifier: MIT
 *
 * "Did you mean" (see hfctl-suggest.h).
 */
#include "hfctl-suggest.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static unsigned min3(unsigned a, unsigned b, unsigned c)
{
	unsigned m = a < b ? a : b;
	return m < c ? m : c;
}

unsigned hfctl_suggest_distance(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Three rows of the dynamic programme: two back for the swap. */
	unsigned rows[3][HFCTL_SUGGEST_LEN_MAX + 1];
	unsigned *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

	if (alen > HFCTL_SUGGEST_LEN_MAX || blen > HFCTL_SUGGEST_LEN_MAX)
		return UINT_MAX;
	for (size_t j = 0; j <= blen; j++)
		prev[j] = (unsigned)j;
	for (size_t i = 1; i <= alen; i++) {
		cur[0] = (unsigned)i;
		for (size_t j = 1; j <= blen; j++) {
			unsigned cost = lower(a[i - 1]) != lower(b[j - 1]);

			cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
			if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
			    lower(a[i - 2]) == lower(b[j - 1]) && prev2[j - 2] + 1 < cur[j])
				cur[j] = prev2[j - 2] + 1;
		}
		unsigned *t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[blen];
}

/* The most edits a word of len characters may be from a suggestion: none
 * (case aside) for 3 or fewer, where one edit is another word ("tpu" is
 * not a typo of "cpu"). */
static unsigned dist_max(size_t len)
{
	return len <= 3 ? 0 : len <= 4 ? 1 : len <= 8 ? 2 : 3;
}

void hfctl_suggest_init(struct hfctl_suggest *s, const char *word)
{
	*s = (struct hfctl_suggest){ .word = word, .best_dist = UINT_MAX };
}

void hfctl_suggest_try(struct hfctl_suggest *s, const char *name, size_t len)
{
	size_t wlen = strlen(s->word);
	unsigned d;

	if (len == 0 || wlen == 0)
		return;
	d = hfctl_suggest_distance(s->word, wlen, name, len);
	if (d <= dist_max(wlen) && d < s->best_dist) {
		s->best = name;
		s->best_len = len;
		s->best_dist = d;
	}
}

void hfctl_suggest_try_list(struct hfctl_suggest *s, const char *names)
{
	for (const char *p = names; *p;) {
		size_t len = strcspn(p, ", ");

		hfctl_suggest_try(s, p, len);
		p += len;
		p += strspn(p, ", ");
	}
}

void hfctl_suggest_hint(const struct hfctl_suggest *s, char *buf, size_t len)
{
	if (s->best)
		snprintf(buf, len, "did you mean \"%.*s\"? ", (int)s->best_len, s->best);
	else if (len > 0)
		buf[0] = '\0';
}

void hfctl_unknown_name(const char *what, const char *word, const char *opt, const char *names,
			char *err, size_t errlen)
{
	struct hfctl_suggest s;
	char hint[HFCTL_SUGGEST_LEN_MAX + 32];

	hfctl_suggest_init(&s, word);
	hfctl_suggest_try_list(&s, names);
	hfctl_suggest_hint(&s, hint, sizeof(hint));
	snprintf(err, errlen, "unknown %s \"%s\"%s%s (%svalid: %s)", what, word, opt && opt[0] ? " for " : "",
		 opt ? opt : "", hint, names);
}
