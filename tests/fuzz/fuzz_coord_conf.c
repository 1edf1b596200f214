/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: hf-coordinator's configuration file.  The input is the
 * file's text, read over the defaults through coord_conf_table with
 * hf_conf_load_string (the same handler and checks as hf_conf_load_file,
 * which hf-coordinator's main calls, with inih reading from memory), then
 * log.level parsed as main does.
 *
 * A refusal must say why; an accepted configuration must have every
 * integer and duration within its table bounds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coord-conf.h"
#include "hf_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct coord_conf c;
	char err[1024];
	char *text;
	int level, r;

	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0'; /* a file's NUL byte ends its line for inih as well */

	memset(&c, 0, sizeof(c));
	if (hf_conf_defaults(coord_conf_table, &c, err, sizeof(err)) != 0)
		abort();
	err[0] = '\0';
	r = hf_conf_load_string(coord_conf_table, &c, text, "hf-coordinator.conf", err,
				sizeof(err));
	if (r == 0) {
		for (const struct hf_conf_setting *s = coord_conf_table; s->name; s++) {
			int64_t v;
			if (s->type != HF_CONF_INT && s->type != HF_CONF_MS)
				continue;
			v = *(const int64_t *)((const char *)&c + s->offset);
			if (s->min <= s->max && (v < s->min || v > s->max))
				abort();
		}
		(void)hf_log_level_parse(c.log_level, &level);
	} else if ((r != -EINVAL && r != -ENOMEM) || !err[0]) {
		abort();
	}
	hf_conf_fini(coord_conf_table, &c);
	free(text);
	return 0;
}
