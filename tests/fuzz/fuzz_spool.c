/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: what hf-worker finds in its result spool at start
 * (worker/spool.h): every file there is hostile.  The first input byte
 * picks the file's name (even: a batch file "batch-1.results", odd: a
 * single result of the older layout "7-1.result"); the rest is its content.
 * spool_load reads it as hf-worker's start does, then every result loaded
 * is released as its acknowledgement would release it.
 *
 * Promised (spool.h): the load never fails on a bad file (it is set aside);
 * every result loaded has a final status and passes spool_result_check; a
 * file all of whose results were released is gone or a spare.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"
#include "result.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char state_dir[64], spool_path[128];
static struct spool *sp;

/* Empties the spool directory but for its lock. */
static void spool_empty(void)
{
	DIR *d = opendir(spool_path);
	struct dirent *de;
	char path[512];

	if (!d)
		abort();
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", spool_path, de->d_name);
		unlink(path);
	}
	closedir(d);
}

/* Whether the file is there holding results: a spare (its magic
 * "HFSPOOL0", kept for later batches) holds none. */
static bool spool_has(const char *name)
{
	char path[512], magic[8];
	bool spare;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", spool_path, name);
	f = fopen(path, "rb");
	if (!f)
		return false;
	spare = fread(magic, 1, sizeof(magic), f) == sizeof(magic) &&
		memcmp(magic, "HFSPOOL0", sizeof(magic)) == 0;
	fclose(f);
	return !spare;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Hf__TaskResult **list = NULL;
	const char *name;
	char path[512], err[256];
	size_t n = 0;

	if (!sp) {
		hf_log_init("fuzz", HF_LOG_ERROR); /* set-asides are warnings */
		strcpy(state_dir, "/tmp/hffuzzspoolXXXXXX");
		if (!mkdtemp(state_dir) || spool_open(state_dir, &sp) < 0)
			abort();
		snprintf(spool_path, sizeof(spool_path), "%s/spool", state_dir);
	}
	if (size == 0)
		return 0;
	name = data[0] % 2 ? "7-1.result" : "batch-1.results";
	snprintf(path, sizeof(path), "%s/%s", spool_path, name);
	if (hf_write_file_durable(path, data + 1, size - 1) < 0)
		abort();
	if (spool_load(sp, &list, &n) < 0)
		abort(); /* a bad file is set aside, never a failed start */
	for (size_t i = 0; i < n; i++) {
		if (!hf_status_is_final(list[i]->status) || spool_result_check(list[i], err, sizeof(err)) < 0)
			abort();
		if (spool_remove(sp, list[i]->task_id, list[i]->attempt) < 0)
			abort();
	}
	if (spool_has(name))
		abort(); /* released, or set aside as .bad */
	spool_results_free(list, n);
	spool_empty();
	return 0;
}
