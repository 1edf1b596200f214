/* SPDX-License-Identifier: MIT
 *
 * A fast reader for the usual shape of a warm runner's control line (see
 * warm-json.c): the JSON object in text[0..len) as jansson values, or
 * NULL when the text is not one it reads, which is no verdict: the caller
 * parses it with jansson (json_loadb with JSON_REJECT_DUPLICATES), which
 * takes or refuses it.  What it returns equals what jansson would.
 */
#ifndef WARM_JSON_H
#define WARM_JSON_H
#include <jansson.h>
#include <stddef.h>

json_t *warm_json_object_fast(const char *text, size_t len);

#endif
