/* SPDX-License-Identifier: MIT
 *
 * The local HuggingFace cache (see hf-cache.h).  The hub cache keeps each
 * repository in "models--ORG--NAME/" with the files of each revision under
 * "snapshots/REVISION/"; a repository with no snapshot holds no weights.
 */
#include "hf-cache.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static const char *const weight_files[] = {
	"model.safetensors", "model.safetensors.index.json",
	"pytorch_model.bin", "pytorch_model.bin.index.json",
};

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* True when dir/rel holds config.json and a checkpoint file. */
static bool holds_checkpoint(const char *dir, const char *rel)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s/config.json", dir, rel) >= sizeof(path) ||
	    !is_file(path))
		return false;
	for (size_t i = 0; i < sizeof(weight_files) / sizeof(weight_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", dir, rel, weight_files[i]);
		if (is_file(path))
			return true;
	}
	return false;
}

static bool hidden(const char *name)
{
	return name[0] == '.';
}

/* Appends strdup(id) to *v (n long); false when out of memory. */
static bool push_id(char ***v, size_t *n, const char *id)
{
	char **nv;
	char *copy;

	if (*n >= HF_CACHE_MAX_MODELS)
		return true;
	copy = strdup(id);
	nv = copy ? realloc(*v, (*n + 1) * sizeof(*nv)) : NULL;
	if (!nv) {
		free(copy);
		return false;
	}
	nv[(*n)++] = copy;
	*v = nv;
	return true;
}

/* The models of one weights directory: DIR/NAME, else DIR/ORG/NAME. */
static bool scan_weights_dir(const char *dir, char ***v, size_t *n)
{
	DIR *d = opendir(dir), *sub;
	struct dirent *e, *f;
	char path[4096], id[1024];
	bool ok = true;

	if (!d)
		return true;
	while (ok && (e = readdir(d))) {
		if (hidden(e->d_name))
			continue;
		if (holds_checkpoint(dir, e->d_name)) {
			ok = push_id(v, n, e->d_name);
			continue;
		}
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path) ||
		    !(sub = opendir(path)))
			continue;
		while (ok && (f = readdir(sub))) {
			if (hidden(f->d_name) ||
			    (size_t)snprintf(id, sizeof(id), "%s/%s", e->d_name, f->d_name) >= sizeof(id))
				continue;
			if (holds_checkpoint(dir, id))
				ok = push_id(v, n, id);
		}
		closedir(sub);
	}
	closedir(d);
	return ok;
}

int hf_weights_dirs_scan(const char *dirs, char ***ids, size_t *n_ids)
{
	char **v = NULL, *copy, *save = NULL;
	size_t n = 0;
	bool ok = true;

	if (!dirs || !*dirs)
		return 0;
	copy = strdup(dirs);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < *n_ids && ok; i++)
		ok = push_id(&v, &n, (*ids)[i]);
	for (char *dir = strtok_r(copy, ":", &save); dir && ok; dir = strtok_r(NULL, ":", &save))
		ok = scan_weights_dir(dir, &v, &n);
	free(copy);
	if (!ok) {
		hf_cache_free(v, n);
		return -ENOMEM;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (kept && strcmp(v[kept - 1], v[i]) == 0)
			free(v[i]);
		else
			v[kept++] = v[i];
	}
	hf_cache_free(*ids, *n_ids);
	*ids = v;
	*n_ids = kept;
	return 0;
}

void hf_cache_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}
