/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: hf-worker's configuration file.  The input is the file: it
 * is written to a memory file and read through worker_conf_load, the one
 * call hf-worker's main makes (defaults, the file through inih, the
 * environment, then every derived value: runner argv, labels, the devices.*
 * settings, warm_max_rss).  The environment variables the table names are
 * cleared at start, so only the input decides.
 *
 * A refusal must say why; an accepted configuration must hold what
 * worker-conf.h promises of the derived fields.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hf_log.h"
#include "worker-conf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	hf_log_init("fuzz_worker_conf", HF_LOG_ERROR);
	for (const struct hf_conf_setting *s = worker_conf_settings; s->name; s++)
		if (s->env)
			unsetenv(s->env);
	memfd = memfd_create("hf-worker.conf", MFD_CLOEXEC);
	if (memfd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct worker_conf c;
	char err[1024];
	int r;

	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	memset(&c, 0, sizeof(c));
	err[0] = '\0';
	r = worker_conf_load(&c, path, NULL, 0, err, sizeof(err));
	if (r == 0) {
		if (!c.runner_argv || !c.runner_argv[0] || !c.id || !c.id[0] ||
		    !c.coordinator_url || !c.coordinator_url[0] || c.slots < 1)
			abort();
		if (c.n_labels && !c.label_list)
			abort();
		for (size_t i = 0; i < c.n_labels; i++)
			if (!c.label_list[i].key[0] || strchr(c.label_list[i].value, ','))
				abort();
		if (c.devconf.cpu_slots != (unsigned)c.slots)
			abort();
	} else if ((r != -EINVAL && r != -ENOMEM) || !err[0]) {
		abort(); /* the file is there: only a bad value, named, may refuse it */
	}
	worker_conf_fini(&c);
	return 0;
}
