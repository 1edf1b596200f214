/* SPDX-License-Identifier: MIT
 *
 * The local HuggingFace cache (see hf-cache.h).  The hub cache keeps each
 * repository in "models--ORG--NAME/" with the files of each revision under
 * "snapshots/REVISION/"; a repository with no snapshot holds no weights.
 */
#include "hf-cache.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *hf_cache_dir(const char *dir)
{
	const char *env;
	char buf[4096];

	if (dir && *dir)
		return strdup(dir);
	if ((env = getenv("HF_HUB_CACHE")) && *env)
		return strdup(env);
	if ((env = getenv("HF_HOME")) && *env) {
		snprintf(buf, sizeof(buf), "%s/hub", env);
		return strdup(buf);
	}
	if ((env = getenv("HOME")) && *env) {
		snprintf(buf, sizeof(buf), "%s/.cache/huggingface/hub", env);
		return strdup(buf);
	}
	return NULL;
}

/* True when dir/name/snapshots has at least one entry. */
static int has_snapshot(const char *dir, const char *name)
{
	char path[4096];
	DIR *d;
	struct dirent *e;
	int found = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s/snapshots", dir, name) >= sizeof(path))
		return 0;
	d = opendir(path);
	if (!d)
		return 0;
	while (!found && (e = readdir(d)))
		found = e->d_name[0] != '.';
	closedir(d);
	return found;
}

int hf_cache_scan(const char *hub_dir, char ***ret_ids, size_t *ret_n)
{
	char **ids = NULL;
	size_t n = 0, cap = 0;
	DIR *d = hub_dir ? opendir(hub_dir) : NULL;
	struct dirent *e;

	*ret_ids = NULL;
	*ret_n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < HF_CACHE_MAX_MODELS) {
		const char *name = e->d_name, *rest, *sep;
		if (strncmp(name, "models--", 8) != 0)
			continue;
		rest = name + 8;
		sep = strstr(rest, "--");
		if (!has_snapshot(hub_dir, name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **v = realloc(ids, ncap * sizeof(*v));
			if (!v)
				goto oom;
			ids = v;
			cap = ncap;
		}
		/* "models--ORG--NAME" -> "ORG/NAME"; "models--NAME" (no org) -> "NAME" */
		char *id = strdup(rest);
		if (!id)
			goto oom;
		if (sep) {
			size_t org = (size_t)(sep - rest);
			id[org] = '/';
			memmove(id + org + 1, id + org + 2, strlen(id + org + 2) + 1);
		}
		ids[n++] = id;
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_str);
	*ret_ids = ids;
	*ret_n = n;
	return 0;
oom:
	closedir(d);
	hf_cache_free(ids, n);
	return -ENOMEM;
}

void hf_cache_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}
