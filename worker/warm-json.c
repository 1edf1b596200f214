/* SPDX-License-Identifier: MIT
 *
 * The common shape of a warm runner's done line read without jansson's
 * parser (see warm-json.h).  jansson reads a byte at a time through a
 * callback, checking UTF-8 and growing a buffer per string: about 36,000
 * instructions for the no-op runner's 200-byte done line, a quarter of
 * hf-worker's work per task (issue 15).  This reads the subset of JSON a
 * done line almost always is (ASCII strings without escapes, integers and
 * reals, true, false, null, objects and arrays a few levels deep) in one
 * pass over the text and builds the same jansson values.  Anything outside
 * that subset, and anything jansson would refuse (a duplicate key, a
 * number out of range, a control character, text after the object), is
 * declined: the caller then parses the line with jansson, which accepts it
 * or names what is wrong.  So this never accepts a line jansson would
 * refuse, and what it accepts it reads as jansson would (the unit tests
 * compare both on every kind of line).
 *
 * Pure; any thread.
 */
#include "warm-json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than a done line's result ever is: the rest goes to jansson. */
#define FAST_DEPTH_MAX 16
/* Keys are copied to be NUL-terminated: a longer one goes to jansson. */
#define FAST_KEY_MAX 128
/* Up to 18 digits an integer cannot overflow jansson's json_int_t. */
#define FAST_INT_DIGITS 18

struct reader {
	const char *p, *end;
};

static void skip_blank(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* An ASCII string without escapes or control characters: its text is
 * [*ret, *ret + *ret_len), r past the closing quote. */
static bool read_string(struct reader *r, const char **ret, size_t *ret_len)
{
	const char *s;

	if (r->p >= r->end || *r->p != '"')
		return false;
	s = ++r->p;
	while (r->p < r->end) {
		unsigned char c = (unsigned char)*r->p;
		if (c == '"') {
			*ret = s;
			*ret_len = (size_t)(r->p - s);
			r->p++;
			return true;
		}
		if (c < 0x20 || c >= 0x7f || c == '\\')
			return false;
		r->p++;
	}
	return false;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A number as JSON writes it: an integer of at most FAST_INT_DIGITS
 * digits, or a real that strtod reads to a finite value without range
 * error (what jansson takes). */
static json_t *read_number(struct reader *r)
{
	const char *s = r->p, *q = r->p;
	bool neg = false, real = false;
	int digits = 0;

	if (q < r->end && *q == '-') {
		neg = true;
		q++;
	}
	if (q >= r->end || !is_digit(*q))
		return NULL;
	if (*q == '0') {
		q++;
		digits = 1;
		if (q < r->end && is_digit(*q))
			return NULL; /* a leading zero */
	} else {
		while (q < r->end && is_digit(*q)) {
			q++;
			digits++;
		}
	}
	if (q < r->end && *q == '.') {
		real = true;
		q++;
		if (q >= r->end || !is_digit(*q))
			return NULL;
		while (q < r->end && is_digit(*q))
			q++;
	}
	if (q < r->end && (*q == 'e' || *q == 'E')) {
		real = true;
		q++;
		if (q < r->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= r->end || !is_digit(*q))
			return NULL;
		while (q < r->end && is_digit(*q))
			q++;
	}
	r->p = q;
	if (!real) {
		json_int_t v = 0;
		if (digits > FAST_INT_DIGITS)
			return NULL;
		for (const char *d = s + neg; d < q; d++)
			v = v * 10 + (*d - '0');
		return json_integer(neg ? -v : v);
	}
	/* strtod stops at the first byte past the number: copied, so that
	 * the line need not be NUL-terminated there. */
	char text[64], *tail;
	size_t n = (size_t)(q - s);
	double v;

	if (n >= sizeof(text))
		return NULL;
	memcpy(text, s, n);
	text[n] = '\0';
	errno = 0;
	v = strtod(text, &tail);
	if (errno != 0 || tail != text + n || v - v != 0)
		return NULL;
	return json_real(v);
}

static json_t *read_value(struct reader *r, int depth);

static json_t *read_object(struct reader *r, int depth)
{
	json_t *o = json_object();
	char key[FAST_KEY_MAX + 1];

	if (!o)
		return NULL;
	r->p++; /* '{' */
	skip_blank(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return o;
	}
	for (;;) {
		const char *k;
		size_t klen;
		json_t *v;

		skip_blank(r);
		if (!read_string(r, &k, &klen) || klen > FAST_KEY_MAX)
			goto decline;
		memcpy(key, k, klen);
		key[klen] = '\0';
		if (json_object_get(o, key))
			goto decline; /* a duplicate: jansson says so */
		skip_blank(r);
		if (r->p >= r->end || *r->p != ':')
			goto decline;
		r->p++;
		v = read_value(r, depth + 1);
		if (!v || json_object_set_new_nocheck(o, key, v) < 0)
			goto decline;
		skip_blank(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return o;
		}
		goto decline;
	}
decline:
	json_decref(o);
	return NULL;
}

static json_t *read_array(struct reader *r, int depth)
{
	json_t *a = json_array();

	if (!a)
		return NULL;
	r->p++; /* '[' */
	skip_blank(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return a;
	}
	for (;;) {
		json_t *v = read_value(r, depth + 1);
		if (!v || json_array_append_new(a, v) < 0)
			break;
		skip_blank(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return a;
		}
		break;
	}
	json_decref(a);
	return NULL;
}

static bool read_word(struct reader *r, const char *word, size_t len)
{
	if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
		return false;
	r->p += len;
	return true;
}

static json_t *read_value(struct reader *r, int depth)
{
	const char *s;
	size_t len;

	if (depth > FAST_DEPTH_MAX)
		return NULL;
	skip_blank(r);
	if (r->p >= r->end)
		return NULL;
	switch (*r->p) {
	case '{':
		return read_object(r, depth);
	case '[':
		return read_array(r, depth);
	case '"':
		return read_string(r, &s, &len) ? json_stringn_nocheck(s, len) : NULL;
	case 't':
		return read_word(r, "true", 4) ? json_true() : NULL;
	case 'f':
		return read_word(r, "false", 5) ? json_false() : NULL;
	case 'n':
		return read_word(r, "null", 4) ? json_null() : NULL;
	default:
		return read_number(r);
	}
}

json_t *warm_json_object_fast(const char *text, size_t len)
{
	struct reader r = { .p = text, .end = text + len };
	json_t *root;

	skip_blank(&r);
	if (r.p >= r.end || *r.p != '{')
		return NULL;
	root = read_object(&r, 1);
	if (!root)
		return NULL;
	skip_blank(&r);
	if (r.p != r.end) {
		json_decref(root); /* text after the object: jansson's error */
		return NULL;
	}
	return root;
}
