/* SPDX-License-Identifier: MIT
 *
 * The task files of the executor (see executor.h), side by side in
 * <state_dir>/tasks/: <task_id>-<attempt>.task.json, which the runner
 * reads, and <task_id>-<attempt>.result.json, which it writes; their
 * removal at the task's end, and the clean-up of what an earlier run left
 * there (also the directories per task of older versions).  Runs on the
 * loop thread only.
 *
 * Nothing here is made durable: a task whose worker crashes is run again
 * when its lease expires (the coordinator's rule), never resumed from
 * these files, so an fsync would buy nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor-internal.h"
#include "hf_log.h"
#include "hf_util.h"

/* ---- task.json ---- */

static json_t *json_string_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *json_count_or_null(uint32_t v)
{
	return v ? json_integer(v) : json_null();
}

static json_t *json_device_list(const struct task *t)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < t->n_devices; i++) {
		if (json_array_append_new(list, json_integer(t->devices[i])) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

int task_file_write(struct task *t, const json_t *json)
{
	/* Indented, a member a line, as it always was: simple runners grep it. */
	char *buf = json_dumps(json, JSON_INDENT(1)), *text = buf;
	size_t len = buf ? strlen(buf) : 0;
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(t->task_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		r = hf_mkdir_p(t->dir, 0700);
		if (r < 0)
			goto out;
		fd = open(t->task_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	t->task_file = true;
	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		text += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
out:
	free(buf);
	return r;
}

/* task.json.  Fields proto3 cannot tell from unset (empty strings, zero
 * counts) are written as null, so the runner applies its own default. */
static int task_json(const struct task *t, const Hf__Assignment *a, json_t **ret)
{
	json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	if (json_object_set_new(o, "task_id", json_integer((json_int_t)a->task_id)) ||
	    json_object_set_new(o, "attempt", json_integer(a->attempt)) ||
	    json_object_set_new(o, "job_id", json_integer((json_int_t)a->job_id)) ||
	    json_object_set_new(o, "model_type", json_string_or_null(a->model_type)) ||
	    json_object_set_new(o, "hf_id", json_string_or_null(a->hf_id)) ||
	    json_object_set_new(o, "family", json_string_or_null(a->family)) ||
	    json_object_set_new(o, "task", json_string_or_null(a->task)) ||
	    json_object_set_new(o, "modality", json_string_or_null(a->modality)) ||
	    json_object_set_new(o, "kind",
				a->kind ? json_string(hf_kind_name(a->kind)) : json_null()) ||
	    json_object_set_new(o, "backend", json_string(hf_backend_name(a->backend))) ||
	    json_object_set_new(o, "device_index", json_integer(a->device_index)) ||
	    json_object_set_new(o, "device_indices", json_device_list(t)) ||
	    json_object_set_new(o, "batch_size", json_count_or_null(a->batch_size)) ||
	    json_object_set_new(o, "seq_len", json_count_or_null(a->seq_len)) ||
	    json_object_set_new(o, "precision", json_string_or_null(a->precision)) ||
	    json_object_set_new(o, "iterations", json_count_or_null(a->iterations)) ||
	    json_object_set_new(o, "warmup", json_integer(a->warmup)) ||
	    json_object_set_new(o, "timeout_s", json_integer((t->timeout_ms + 999) / 1000))) {
		json_decref(o);
		return -ENOMEM;
	}
	*ret = o;
	return 0;
}

int task_prepare(const struct task *t, const Hf__Assignment *a, json_t **ret_json)
{
	/* A result from an earlier run of this attempt must not be taken for
	 * this run's. */
	if (unlink(t->result_path) < 0 && errno != ENOENT)
		return -errno;
	return task_json(t, a, ret_json);
}

void task_files_remove(const struct task *t)
{
	if (t->task_file && unlink(t->task_path) < 0 && errno != ENOENT)
		log_warn("could not remove \"%s\": %s, ignoring", t->task_path, strerror(errno));
	if (unlink(t->result_path) < 0 && errno != ENOENT)
		log_warn("could not remove \"%s\": %s, ignoring", t->result_path, strerror(errno));
}

int path_join(char **ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- what an earlier run left ---- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		log_warn("could not remove \"%s\": %s, ignoring", path, strerror(errno));
	return 0;
}

static int rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return -errno;
	return 0;
}

int executor_task_dirs_clean(struct executor *ex)
{
	char *tasks;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (path_join(&tasks, "%s/tasks", ex->state_dir) < 0)
		return -ENOMEM;
	d = opendir(tasks);
	if (!d) {
		r = errno == ENOENT ? 0 : -errno;
		free(tasks);
		return r;
	}
	while ((de = readdir(d))) {
		unsigned long long task_id;
		unsigned attempt;
		char *path;

		if (de->d_name[0] == '.')
			continue;
		if (sscanf(de->d_name, "%llu-%u", &task_id, &attempt) == 2 &&
		    executor_find(ex, task_id, attempt))
			continue;
		if (path_join(&path, "%s/%s", tasks, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		log_debug("removing \"%s\", left over from an earlier run", path);
		rm_rf(path);
		free(path);
	}
	closedir(d);
	free(tasks);
	return r;
}
