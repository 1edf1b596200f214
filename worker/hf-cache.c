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

/* A growing list of model ids, at most HF_CACHE_MAX_MODELS. */
struct id_list {
	char **v;
	size_t n, cap;
};

/* Appends a copy of id (nothing past the limit); false when out of memory. */
static bool list_push(struct id_list *l, const char *id)
{
	char *copy;

	if (l->n >= HF_CACHE_MAX_MODELS)
		return true;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 32;
		char **v = realloc(l->v, ncap * sizeof(*v));
		if (!v)
			return false;
		l->v = v;
		l->cap = ncap;
	}
	copy = strdup(id);
	if (!copy)
		return false;
	l->v[l->n++] = copy;
	return true;
}

int hf_cache_scan(const char *hub_dir, char ***ret_ids, size_t *ret_n)
{
	struct id_list l = { 0 };
	DIR *d = hub_dir ? opendir(hub_dir) : NULL;
	struct dirent *e;
	char id[sizeof(e->d_name)];

	*ret_ids = NULL;
	*ret_n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) && l.n < HF_CACHE_MAX_MODELS) {
		const char *name = e->d_name, *rest, *sep;
		if (strncmp(name, "models--", 8) != 0)
			continue;
		rest = name + 8;
		sep = strstr(rest, "--");
		if (!has_snapshot(hub_dir, name))
			continue;
		/* "models--ORG--NAME" -> "ORG/NAME"; "models--NAME" (no org) -> "NAME" */
		if (sep)
			snprintf(id, sizeof(id), "%.*s/%s", (int)(sep - rest), rest, sep + 2);
		else
			snprintf(id, sizeof(id), "%s", rest);
		if (!list_push(&l, id)) {
			closedir(d);
			hf_cache_free(l.v, l.n);
			return -ENOMEM;
		}
	}
	closedir(d);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	*ret_ids = l.v;
	*ret_n = l.n;
	return 0;
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

/* The models of one weights directory: DIR/NAME, else DIR/ORG/NAME. */
static bool scan_weights_dir(const char *dir, struct id_list *l)
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
			ok = list_push(l, e->d_name);
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
				ok = list_push(l, id);
		}
		closedir(sub);
	}
	closedir(d);
	return ok;
}

int hf_weights_dirs_scan(const char *dirs, char ***ids, size_t *n_ids)
{
	/* Appended to the caller's list, which is sorted again after. */
	struct id_list l = { *ids, *n_ids, *n_ids };
	char *copy, *save = NULL;
	bool ok = true;
	size_t kept = 0;

	if (!dirs || !*dirs)
		return 0;
	copy = strdup(dirs);
	if (!copy)
		return -ENOMEM;
	for (char *dir = strtok_r(copy, ":", &save); dir && ok; dir = strtok_r(NULL, ":", &save))
		ok = scan_weights_dir(dir, &l);
	free(copy);
	*ids = l.v; /* it may have moved */
	if (!ok) {
		for (size_t i = *n_ids; i < l.n; i++)
			free(l.v[i]);
		return -ENOMEM;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	for (size_t i = 0; i < l.n; i++) {
		if (kept && strcmp(l.v[kept - 1], l.v[i]) == 0)
			free(l.v[i]);
		else
			l.v[kept++] = l.v[i];
	}
	*n_ids = kept;
	return 0;
}

void hf_cache_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}
