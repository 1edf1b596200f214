/* SPDX-License-Identifier: MIT
 *
 * Loading the result spool at start (spool_load, see spool.h): every file
 * there is hostile.  Batch files of both layouts and single-result files
 * of the oldest are read and checked, spares are taken back, damaged files
 * moved aside, and the results returned in task order with the file each
 * is in, so that its acknowledgement releases it.  Same rules as spool.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_util.h"
#include "result.h"
#include "spool-internal.h"

/* Whether the coordinator would take r as a spooled result; why not in
 * why. */
static bool result_acceptable(const Hf__TaskResult *r, char *why, size_t len)
{
	if (!hf_status_is_final(r->status)) {
		snprintf(why, len, "its status is not a final one");
		return false;
	}
	return spool_result_check(r, why, len) == 0;
}

/* Reads one single-result file of the older layout; -EBADMSG when it is
 * not the result its name says, or not one the coordinator would take (a
 * file from an older version, or one damaged or planted in the spool). */
static int load_one(const char *path, uint64_t task_id, uint32_t attempt, Hf__TaskResult **ret)
{
	char *buf = NULL, why[256];
	size_t len = 0;
	Hf__TaskResult *r;
	int rv;

	rv = hf_read_file(path, SPOOL_RESULT_MAX, &buf, &len);
	if (rv == -EFBIG)
		return -EBADMSG;
	if (rv < 0)
		return rv;
	r = hf__task_result__unpack(NULL, len, (const uint8_t *)buf);
	free(buf);
	if (!r)
		return -EBADMSG;
	if (r->task_id != task_id || r->attempt != attempt) {
		result_free(r);
		return -EBADMSG;
	}
	if (!result_acceptable(r, why, sizeof(why))) {
		log_warn("spool file \"%s\": %s", path, why);
		result_free(r);
		return -EBADMSG;
	}
	*ret = r;
	return 0;
}

static void move_aside(const char *path, const char *why)
{
	char bad[4300];

	snprintf(bad, sizeof(bad), "%s.bad", path);
	if (rename(path, bad) < 0)
		log_warn("could not move damaged spool file \"%s\" aside: %s, ignoring", path,
			 strerror(errno));
	else
		log_warn("spool file \"%s\" %s, moved aside to \"%s\"", path, why, bad);
}

/* A result loaded, and where it is. */
struct loaded {
	Hf__TaskResult *r;
	struct spool_file *f;
	size_t entry;
};

struct load_list {
	struct loaded *v;
	size_t n, cap;
};

static int load_push(struct load_list *l, Hf__TaskResult *r, struct spool_file *f)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		struct loaded *grown = realloc(l->v, ncap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		l->v = grown;
		l->cap = ncap;
	}
	l->v[l->n++] = (struct loaded){ .r = r, .f = f, .entry = f->n - 1 };
	return 0;
}

/* Where a batch file's records are (buf[*ret_off..*ret_end)) and its
 * sequence: HFSPOOL2 (its header checked), or HFSPOOL1 (seq from the
 * name); -EBADMSG with why when it is neither.  1: a spare. */
static int batch_records(const uint8_t *buf, size_t len, size_t *ret_off, size_t *ret_end,
			 uint64_t *ret_seq, char *why, size_t whylen)
{
	if (len >= BATCH_MAGIC_LEN && memcmp(buf, SPARE_MAGIC, BATCH_MAGIC_LEN) == 0)
		return 1;
	if (len >= BATCH_MAGIC_LEN && memcmp(buf, BATCH_MAGIC, BATCH_MAGIC_LEN) == 0) {
		*ret_off = BATCH_MAGIC_LEN;
		*ret_end = len;
		return 0;
	}
	if (len < BATCH_MAGIC_LEN || memcmp(buf, BATCH2_MAGIC, BATCH_MAGIC_LEN) != 0) {
		snprintf(why, whylen, "does not start with \"" BATCH2_MAGIC "\"");
		return -EBADMSG;
	}
	if (len < BATCH2_HEADER_LEN) {
		snprintf(why, whylen, "ends within its header");
		return -EBADMSG;
	}
	uint64_t seq = spool_get_le64(buf + 8);
	uint32_t bytes = spool_get_le32(buf + 16);
	if (bytes > len - BATCH2_HEADER_LEN) {
		snprintf(why, whylen, "says its results have %" PRIu32 " bytes, past its end", bytes);
		return -EBADMSG;
	}
	if (seq == 0 || seq >= UINT64_MAX - 1) {
		snprintf(why, whylen, "has batch number %" PRIu64 ", out of range", seq);
		return -EBADMSG;
	}
	if (spool_batch2_crc(buf, buf + BATCH2_HEADER_LEN, bytes) != spool_get_le32(buf + 20)) {
		snprintf(why, whylen, "does not match its checksum (damaged, or its write was cut short)");
		return -EBADMSG;
	}
	*ret_off = BATCH2_HEADER_LEN;
	*ret_end = BATCH2_HEADER_LEN + bytes;
	*ret_seq = seq;
	return 0;
}

/* Walks the records of a batch file's text, buf[off..len): how many there
 * are, or -EBADMSG with why. */
static int batch_count(const uint8_t *buf, size_t off, size_t len, size_t *ret, char *why,
		       size_t whylen)
{
	size_t n = 0;

	while (off < len) {
		if (len - off < 4) {
			snprintf(why, whylen, "ends within the length of result %zu", n + 1);
			return -EBADMSG;
		}
		uint32_t l = spool_get_le32(buf + off);
		off += 4;
		if (l > SPOOL_RESULT_MAX || l > len - off) {
			snprintf(why, whylen, "says result %zu has %" PRIu32 " bytes, past %s", n + 1, l,
				 l > SPOOL_RESULT_MAX ? "the limit" : "its end");
			return -EBADMSG;
		}
		off += l;
		if (++n > SPOOL_FILE_RESULTS_MAX) {
			snprintf(why, whylen, "holds more than %d results", SPOOL_FILE_RESULTS_MAX);
			return -EBADMSG;
		}
	}
	*ret = n;
	return 0;
}

/* Loads a batch file: -EBADMSG (why in why) when it is not one as a whole;
 * a record that is not a result the coordinator would take is written
 * aside on its own, the others load. */
static int load_batch(struct spool *sp, const char *name, uint64_t seq, struct load_list *l,
		      char *why, size_t whylen)
{
	char path[4400], *text = NULL;
	size_t len = 0, n = 0, off = 0, end = 0;
	struct spool_file *f;
	int rv;

	snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
	rv = hf_read_file(path, SPOOL_FILE_MAX, &text, &len);
	if (rv == -EFBIG) {
		snprintf(why, whylen, "is larger than %u bytes", SPOOL_FILE_MAX);
		return -EBADMSG;
	}
	if (rv < 0)
		return rv;
	const uint8_t *buf = (const uint8_t *)text;
	rv = batch_records(buf, len, &off, &end, &seq, why, whylen);
	if (rv == 0)
		rv = batch_count(buf, off, end, &n, why, whylen);
	if (rv < 0)
		goto out;
	f = spool_file_new(name, seq, rv == 1 ? 0 : n);
	if (!f) {
		rv = -ENOMEM;
		goto out;
	}
	f->batch = true;
	if (rv == 1) {
		rv = spool_file_retire(sp, f); /* a spare: kept as one, or removed */
		if (rv < 0)
			log_warn("could not remove \"%s\": %s, ignoring", path, strerror(-rv));
		rv = 0;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t rl = spool_get_le32(buf + off);
		const uint8_t *rec = buf + off + 4;
		Hf__TaskResult *r = hf__task_result__unpack(NULL, rl, rec);
		char rwhy[256] = "it is not a packed TaskResult";

		off += 4 + rl;
		if (!r || !result_acceptable(r, rwhy, sizeof(rwhy))) {
			char bad[4500];
			snprintf(bad, sizeof(bad), "%s.%zu.bad", path, i + 1);
			log_warn("spool file \"%s\": result %zu is not a valid result (%s), written aside "
				 "to \"%s\"", path, i + 1, rwhy, bad);
			if (hf_write_file_durable(bad, rec, rl) < 0)
				log_warn("could not write \"%s\", ignoring", bad);
			result_free(r);
			continue;
		}
		spool_file_add_entry(f, r->task_id, r->attempt);
		rv = load_push(l, r, f);
		if (rv < 0) {
			result_free(r);
			f->live--; /* the others stay listed; the file is kept */
			spool_file_append(sp, f);
			goto out;
		}
	}
	if (f->live == 0) {
		/* Every result in it was written aside. */
		rv = spool_file_retire(sp, f);
		if (rv < 0)
			log_warn("could not remove \"%s\": %s, ignoring", path, strerror(-rv));
		rv = 0;
	} else {
		spool_file_append(sp, f);
	}
	if (seq >= sp->next_seq)
		sp->next_seq = seq + 1;
out:
	free(text);
	return rv;
}

static int loaded_order(const void *a, const void *b)
{
	const struct loaded *x = a, *y = b;

	if (x->r->task_id != y->r->task_id)
		return x->r->task_id < y->r->task_id ? -1 : 1;
	if (x->r->attempt != y->r->attempt)
		return x->r->attempt < y->r->attempt ? -1 : 1;
	if (x->f->seq != y->f->seq)
		return x->f->seq < y->f->seq ? -1 : 1;
	return 0;
}

/* One directory entry of the spool. */
static int load_entry(struct spool *sp, const char *name, struct load_list *l)
{
	char path[4400], why[256];
	uint64_t task_id, seq;
	uint32_t attempt;
	Hf__TaskResult *res;
	int r;

	snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
	if (strstr(name, SPOOL_SUFFIX ".tmp.") || strstr(name, BATCH_SUFFIX ".tmp.")) {
		log_debug("removing \"%s\", left over by an interrupted write", path);
		if (unlinkat(sp->dir_fd, name, 0) < 0)
			log_warn("could not remove \"%s\": %s, ignoring", path, strerror(errno));
		return 0;
	}
	if (spool_ends_with(name, BATCH_SUFFIX)) {
		if (!spool_parse_batch_name(name, &seq)) {
			move_aside(path, "is not named as a batch of results");
			return 0;
		}
		r = load_batch(sp, name, seq, l, why, sizeof(why));
		if (r == -EBADMSG) {
			move_aside(path, why);
			return 0;
		}
		if (r < 0 && r != -ENOMEM)
			log_warn("could not read spool file \"%s\": %s, ignoring", path, strerror(-r));
		return r == -ENOMEM ? r : 0;
	}
	if (!spool_ends_with(name, SPOOL_SUFFIX))
		return 0;
	if (!spool_parse_name(name, &task_id, &attempt)) {
		move_aside(path, "is not a valid result");
		return 0;
	}
	r = load_one(path, task_id, attempt, &res);
	if (r == -EBADMSG) {
		move_aside(path, "is not a valid result");
		return 0;
	}
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		log_warn("could not read spool file \"%s\": %s, ignoring", path, strerror(-r));
		return 0;
	}
	struct spool_file *f = spool_file_new(name, 0, 1);
	if (!f) {
		result_free(res);
		return -ENOMEM;
	}
	spool_file_add_entry(f, task_id, attempt);
	spool_file_append(sp, f);
	r = load_push(l, res, f);
	if (r < 0)
		result_free(res); /* its file stays listed: a later load finds it */
	return r;
}

int spool_load(struct spool *sp, Hf__TaskResult ***ret_results, size_t *ret_n)
{
	struct load_list l = { 0 };
	Hf__TaskResult **list = NULL;
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int r = 0;

	spool_files_free(sp); /* the disk says what is there */
	d = opendir(sp->dir);
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		r = load_entry(sp, de->d_name, &l);
		if (r < 0)
			goto fail;
	}
	if (errno) {
		r = -errno;
		goto fail;
	}
	closedir(d);
	d = NULL;
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), loaded_order);
	list = malloc((l.n ? l.n : 1) * sizeof(*list));
	if (!list) {
		r = -ENOMEM;
		goto fail;
	}
	/* The same attempt in two files (written again after a crash that
	 * came before the older file's removal): the later batch's wins. */
	for (size_t i = 0; i < l.n; i++) {
		struct loaded *x = &l.v[i];
		if (i + 1 < l.n && l.v[i + 1].r->task_id == x->r->task_id &&
		    l.v[i + 1].r->attempt == x->r->attempt) {
			x->f->entries[x->entry].live = false;
			x->f->live--;
			result_free(x->r);
			continue;
		}
		list[n++] = x->r;
	}
	for (struct spool_file **pf = &sp->files; *pf;) {
		if ((*pf)->live == 0)
			spool_file_drop(sp, pf);
		else
			pf = &(*pf)->next;
	}
	free(l.v);
	*ret_results = list;
	*ret_n = n;
	return 0;

fail:
	if (d)
		closedir(d);
	for (size_t i = 0; i < l.n; i++)
		result_free(l.v[i].r);
	free(l.v);
	spool_files_free(sp);
	return r;
}
