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

/* The task's JSON is written here directly, not built as a jansson object
 * and dumped: jansson's dump cost about 38,000 instructions a task (its
 * integers go through snprintf, its strings a byte at a time), two fifths
 * of a warm task's start (issue 15).  Two forms, each built only when it
 * is needed (a warm runner that takes its task inline needs no file):
 * compact (one line, for a warm runner's request line) and a member a line
 * (the task file, as it always was: simple runners grep it). */

struct task_writer {
	struct hf_buf out;
	bool indented;     /* the file's form, else the compact one */
	size_t n;          /* members written */
};

static void key(struct task_writer *w, const char *name)
{
	if (w->indented)
		hf_buf_puts(&w->out, w->n ? ",\n \"" : "{\n \"");
	else
		hf_buf_append(&w->out, w->n ? ",\"" : "{\"", 2);
	w->n++;
	hf_buf_append(&w->out, name, strlen(name));
	if (w->indented)
		hf_buf_append(&w->out, "\": ", 3);
	else
		hf_buf_append(&w->out, "\":", 2);
}

/* s as a JSON string (valid UTF-8: the assignment was validated when it
 * was decoded), or null when empty or absent: proto3 cannot tell an
 * empty string from an unset one, and the runner applies its default. */
static void member_string(struct task_writer *w, const char *name, const char *s)
{
	key(w, name);
	if (!s || !*s)
		hf_buf_append(&w->out, "null", 4);
	else
		hf_buf_json_string(&w->out, s);
}

static void put_u64(struct task_writer *w, uint64_t v)
{
	hf_buf_put_u64(&w->out, v);
}

static void member_u64(struct task_writer *w, const char *name, uint64_t v)
{
	key(w, name);
	put_u64(w, v);
}

/* A count, null when 0 (unset). */
static void member_count(struct task_writer *w, const char *name, uint32_t v)
{
	key(w, name);
	if (v)
		put_u64(w, v);
	else
		hf_buf_append(&w->out, "null", 4);
}

void task_text_fini(struct task_text *x)
{
	free(x->compact);
	free(x->indented);
	x->compact = x->indented = NULL;
}

/* One form of the task's JSON, x->compact or x->indented. */
static int task_text_build(struct task_text *x, bool indented)
{
	const struct task *t = x->t;
	const Hf__Assignment *a = x->a;
	struct task_writer w = { .indented = indented, .n = 0 };

	hf_buf_init(&w.out);
	member_u64(&w, "task_id", a->task_id);
	member_u64(&w, "attempt", a->attempt);
	member_u64(&w, "job_id", a->job_id);
	member_string(&w, "model_type", a->model_type);
	member_string(&w, "hf_id", a->hf_id);
	member_string(&w, "family", a->family);
	member_string(&w, "task", a->task);
	member_string(&w, "modality", a->modality);
	member_string(&w, "kind", a->kind ? hf_kind_name(a->kind) : NULL);
	member_string(&w, "backend", hf_backend_name(a->backend));
	member_u64(&w, "device_index", a->device_index);
	key(&w, "device_indices");
	hf_buf_append(&w.out, "[", 1);
	for (size_t i = 0; i < t->n_devices; i++) {
		if (i)
			hf_buf_append(&w.out, ", ", indented ? 2 : 1);
		put_u64(&w, t->devices[i]);
	}
	hf_buf_append(&w.out, "]", 1);
	member_count(&w, "batch_size", a->batch_size);
	member_count(&w, "seq_len", a->seq_len);
	member_string(&w, "precision", a->precision);
	/* A benchmark's execution mode; an older coordinator sends none: eager. */
	member_string(&w, "mode", a->mode && *a->mode ? a->mode : "eager");
	member_count(&w, "iterations", a->iterations);
	member_u64(&w, "warmup", a->warmup);
	member_u64(&w, "timeout_s", (uint64_t)(t->timeout_ms + 999) / 1000);
	hf_buf_puts(&w.out, indented ? "\n}" : "}");
	if (w.out.oom || !w.out.data) {
		hf_buf_fini(&w.out);
		return -ENOMEM;
	}
	if (indented) {
		x->indented = w.out.data;
		x->indented_len = w.out.len;
	} else {
		x->compact = w.out.data;
	}
	return 0;
}

const char *task_text_compact(struct task_text *x)
{
	if (!x->compact && task_text_build(x, false) < 0)
		return NULL;
	return x->compact;
}

int task_file_write(struct task *t, struct task_text *x)
{
	const char *text;
	size_t len;
	int fd, r = 0;

	if (!x->indented && task_text_build(x, true) < 0)
		return -ENOMEM;
	text = x->indented;
	len = x->indented_len;

	fd = open(t->task_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		r = hf_mkdir_p(t->dir, 0700);
		if (r < 0)
			return r;
		fd = open(t->task_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
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
	return r;
}

int task_prepare(const struct task *t, const Hf__Assignment *a, struct task_text *ret)
{
	/* A result from an earlier run of this attempt must not be taken for
	 * this run's. */
	if (unlink(t->result_path) < 0 && errno != ENOENT)
		return -errno;
	*ret = (struct task_text){ .t = t, .a = a };
	return 0;
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
