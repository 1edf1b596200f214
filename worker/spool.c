/* SPDX-License-Identifier: MIT
 *
 * The durable result spool (see spool.h).  A batch is written over a
 * spare file (one whose results were all acknowledged) and fdatasync'd: the
 * file's blocks and name are already on the disk, so the write costs no new
 * inode, no rename and no fsync of the directory; only when no spare is
 * left is a file created (its name made durable by one fsync of the
 * directory).  A write cut short leaves a header whose checksum does not
 * match, and the batch was never sent.  The spool keeps, in memory, which
 * file holds which result (oldest file first), so that an acknowledgement
 * releases its result and the file becomes a spare once none is left in it.
 * Loading the spool at start is spool-load.c's.
 */
#include "spool-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hf_validate.h"
#include "result.h"

void spool_file_free(struct spool *sp, struct spool_file *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		sp->n_open--;
	}
	free(f->entries);
	free(f);
}

void spool_files_free(struct spool *sp)
{
	while (sp->files) {
		struct spool_file *f = sp->files;
		sp->files = f->next;
		spool_file_free(sp, f);
	}
	sp->files_tail = &sp->files;
	while (sp->spares) {
		struct spool_file *f = sp->spares;
		sp->spares = f->next;
		spool_file_free(sp, f);
	}
	sp->n_spares = 0;
}

/* CRC-32 (the IEEE polynomial, reflected), over a header and its records:
 * it tells a batch written whole from one whose write was cut short. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
	static uint32_t table[256];
	static bool made;

	if (!made) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		made = true;
	}
	crc = ~crc;
	while (n--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint32_t spool_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t spool_get_le64(const uint8_t *p)
{
	return (uint64_t)spool_get_le32(p) | (uint64_t)spool_get_le32(p + 4) << 32;
}

/* The checksum of a HFSPOOL2 batch: its seq and length, then its records. */
uint32_t spool_batch2_crc(const uint8_t *header, const uint8_t *records, size_t bytes)
{
	return crc32_update(crc32_update(0, header + BATCH_MAGIC_LEN, 12), records, bytes);
}

bool spool_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Parses a run of decimal digits (no sign, no blanks) ending at *end. */
static bool parse_digits(const char *s, const char **end, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (p == s)
		return false;
	*end = p;
	*ret = v;
	return true;
}

/* "<task_id>-<attempt>.result", the older layout's name. */
bool spool_parse_name(const char *name, uint64_t *ret_task, uint32_t *ret_attempt)
{
	uint64_t task, attempt;
	const char *p;

	if (!parse_digits(name, &p, UINT64_MAX, &task) || *p != '-' ||
	    !parse_digits(p + 1, &p, UINT32_MAX, &attempt) || strcmp(p, SPOOL_SUFFIX) != 0)
		return false;
	*ret_task = task;
	*ret_attempt = (uint32_t)attempt;
	return true;
}

/* "batch-<seq>.results", seq > 0. */
bool spool_parse_batch_name(const char *name, uint64_t *ret_seq)
{
	const char *p;
	uint64_t seq;

	if (strncmp(name, BATCH_PREFIX, strlen(BATCH_PREFIX)) != 0 ||
	    !parse_digits(name + strlen(BATCH_PREFIX), &p, UINT64_MAX - 1, &seq) || seq == 0 ||
	    strcmp(p, BATCH_SUFFIX) != 0)
		return false;
	*ret_seq = seq;
	return true;
}

/* The next batch is numbered past every batch file there is. */
static int scan_next_seq(struct spool *sp)
{
	struct dirent *de;
	DIR *d = opendir(sp->dir);
	uint64_t seq;

	if (!d)
		return -errno;
	sp->next_seq = 1;
	while ((de = readdir(d))) {
		uint8_t head[BATCH2_HEADER_LEN];
		int fd;

		if (!spool_parse_batch_name(de->d_name, &seq))
			continue;
		if (seq >= sp->next_seq)
			sp->next_seq = seq + 1;
		/* A file written again carries a later batch than its name. */
		fd = openat(sp->dir_fd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
		    memcmp(head, BATCH2_MAGIC, BATCH_MAGIC_LEN) == 0) {
			seq = spool_get_le64(head + BATCH_MAGIC_LEN);
			if (seq < UINT64_MAX - 1 && seq >= sp->next_seq)
				sp->next_seq = seq + 1;
		}
		close(fd);
	}
	closedir(d);
	return 0;
}

int spool_open(const char *state_dir, struct spool **ret_spool)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	char lock[4200];
	int r;

	if (!sp)
		return -ENOMEM;
	sp->lock_fd = -1;
	sp->dir_fd = -1;
	sp->files_tail = &sp->files;
	sp->pid = (long)getpid();
	if ((size_t)snprintf(sp->dir, sizeof(sp->dir), "%s/spool", state_dir) >= sizeof(sp->dir)) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	r = hf_mkdir_p(sp->dir, 0700);
	if (r < 0)
		goto fail;
	/* Two workers sharing a spool would send, and delete, each other's
	 * results: the lock makes the second one fail at start. */
	snprintf(lock, sizeof(lock), "%s/.lock", sp->dir);
	sp->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lock_fd < 0) {
		r = -errno;
		goto fail;
	}
	if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	sp->dir_fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dir_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = scan_next_seq(sp);
	if (r < 0)
		goto fail;
	*ret_spool = sp;
	return 0;

fail:
	spool_close(sp);
	return r;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->dir_fd >= 0)
		close(sp->dir_fd);
	if (sp->lock_fd >= 0)
		close(sp->lock_fd); /* releases the lock */
	spool_files_free(sp);
	free(sp);
}

const char *spool_dir(const struct spool *sp)
{
	return sp->dir;
}

/* ---- which file holds which result ---- */

/* The oldest file holding (task_id, attempt) live; acknowledgements come
 * in the order results were written, so this is near the front. */
static struct spool_file *entry_find(struct spool *sp, uint64_t task_id, uint32_t attempt,
				     struct spool_file ***ret_link, struct spool_entry **ret_e)
{
	for (struct spool_file **pf = &sp->files; *pf; pf = &(*pf)->next) {
		struct spool_file *f = *pf;
		for (size_t i = 0; i < f->n; i++) {
			struct spool_entry *e = &f->entries[i];
			if (e->live && e->task_id == task_id && e->attempt == attempt) {
				*ret_link = pf;
				*ret_e = e;
				return f;
			}
		}
	}
	return NULL;
}

/* A file none of whose results is live any more (f, in no list): it
 * becomes a spare, its magic overwritten so that a load finds no result in
 * it, or, past SPOOL_SPARES_MAX (or when it cannot be), it is removed.
 * Neither is synced: after a crash of the machine the file may still hold
 * its results, which are then sent again, as a removal not yet on the disk
 * would have them sent (results are idempotent). */
int spool_file_retire(struct spool *sp, struct spool_file *f)
{
	int r = 0;

	if (f->batch && sp->n_spares < SPOOL_SPARES_MAX) {
		if (f->fd < 0) {
			f->fd = openat(sp->dir_fd, f->name, O_RDWR | O_CLOEXEC);
			if (f->fd >= 0)
				sp->n_open++;
		}
		if (f->fd >= 0 && pwrite(f->fd, SPARE_MAGIC, BATCH_MAGIC_LEN, 0) == BATCH_MAGIC_LEN) {
			f->n = f->live = 0;
			f->next = sp->spares;
			sp->spares = f;
			sp->n_spares++;
			return 0;
		}
	}
	if (unlinkat(sp->dir_fd, f->name, 0) < 0 && errno != ENOENT)
		r = -errno;
	spool_file_free(sp, f);
	return r;
}

/* Takes the file at *link (none of its results is live any more) off the
 * list and retires it. */
int spool_file_drop(struct spool *sp, struct spool_file **link)
{
	struct spool_file *f = *link;

	*link = f->next;
	if (sp->files_tail == &f->next)
		sp->files_tail = link;
	return spool_file_retire(sp, f);
}

struct spool_file *spool_file_new(const char *name, uint64_t seq, size_t n)
{
	struct spool_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->entries = calloc(n ? n : 1, sizeof(*f->entries));
	if (!f->entries) {
		free(f);
		return NULL;
	}
	hf_strlcpy(f->name, name, sizeof(f->name));
	f->seq = seq;
	f->fd = -1;
	return f;
}

void spool_file_add_entry(struct spool_file *f, uint64_t task_id, uint32_t attempt)
{
	f->entries[f->n++] = (struct spool_entry){ .task_id = task_id, .attempt = attempt, .live = true };
	f->live++;
}

void spool_file_append(struct spool *sp, struct spool_file *f)
{
	f->next = NULL;
	*sp->files_tail = f;
	sp->files_tail = &f->next;
}

int spool_remove(struct spool *sp, uint64_t task_id, uint32_t attempt)
{
	struct spool_file **link, *f;
	struct spool_entry *e;

	f = entry_find(sp, task_id, attempt, &link, &e);
	if (!f)
		return 0;
	e->live = false;
	if (--f->live > 0)
		return 0;
	return spool_file_drop(sp, link);
}

/* ---- writing ---- */

/* A file to write a batch of n results in: a spare, or (*ret_created) a
 * new file, empty, created under its final name and open. */
static struct spool_file *file_for_batch(struct spool *sp, size_t n, bool *ret_created, int *ret_err)
{
	struct spool_file *f = sp->spares;
	char name[SPOOL_NAME_MAX];
	struct spool_entry *entries;

	*ret_created = false;
	if (f) {
		entries = realloc(f->entries, (n ? n : 1) * sizeof(*entries));
		if (!entries) {
			*ret_err = -ENOMEM;
			return NULL;
		}
		f->entries = entries;
		sp->spares = f->next;
		sp->n_spares--;
		f->next = NULL;
		f->n = f->live = 0;
		return f;
	}
	snprintf(name, sizeof(name), BATCH_PREFIX "%" PRIu64 BATCH_SUFFIX, sp->next_seq);
	f = spool_file_new(name, sp->next_seq, n);
	if (!f) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	f->batch = true;
	f->fd = openat(sp->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		*ret_err = -errno;
		spool_file_free(sp, f);
		return NULL;
	}
	sp->n_open++;
	*ret_created = true;
	return f;
}

/* Writes one batch of results[0..n) (packed sizes in sizes, total bytes
 * of records) into a spare file or a new one, its data synced; the
 * directory is not (*ret_created says it must be).  *ret_f is the file,
 * not yet in the list. */
static int batch_file_write(struct spool *sp, Hf__TaskResult *const *results, const size_t *sizes,
			    size_t n, size_t bytes, struct spool_file **ret_f, bool *ret_created)
{
	size_t len = BATCH2_HEADER_LEN + bytes + 4 * n, off;
	size_t padded = (len + SPOOL_PAGE - 1) / SPOOL_PAGE * SPOOL_PAGE;
	struct spool_file *f;
	uint8_t *buf;
	int r = 0;

	buf = malloc(padded);
	if (!buf)
		return -ENOMEM;
	f = file_for_batch(sp, n, ret_created, &r);
	if (!f) {
		free(buf);
		return r;
	}
	f->seq = sp->next_seq;
	memcpy(buf, BATCH2_MAGIC, BATCH_MAGIC_LEN);
	put_le32(buf + 8, (uint32_t)f->seq);
	put_le32(buf + 12, (uint32_t)(f->seq >> 32));
	put_le32(buf + 16, (uint32_t)(len - BATCH2_HEADER_LEN));
	off = BATCH2_HEADER_LEN;
	for (size_t i = 0; i < n; i++) {
		put_le32(buf + off, (uint32_t)sizes[i]);
		off += 4;
		hf__task_result__pack(results[i], buf + off);
		off += sizes[i];
		spool_file_add_entry(f, results[i]->task_id, results[i]->attempt);
	}
	put_le32(buf + 20, spool_batch2_crc(buf, buf + BATCH2_HEADER_LEN, len - BATCH2_HEADER_LEN));
	memset(buf + len, 0, padded - len);
	/* Over a spare, one write of the whole: a write cut short (a kill, a
	 * crash) leaves a checksum that does not match. */
	for (off = 0; off < padded && r == 0;) {
		ssize_t w = pwrite(f->fd, buf + off, padded - off, (off_t)off);
		if (w < 0 && errno != EINTR)
			r = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (r == 0 && fdatasync(f->fd) < 0)
		r = -errno;
	free(buf);
	if (r < 0) {
		/* Nothing of this batch may stay in the spool. */
		f->n = f->live = 0;
		spool_file_retire(sp, f);
		return r;
	}
	sp->next_seq++;
	if (sp->n_open > SPOOL_OPEN_MAX) {
		close(f->fd);
		f->fd = -1;
		sp->n_open--;
	}
	*ret_f = f;
	return 0;
}

int spool_write_batch(struct spool *sp, Hf__TaskResult *const *results, size_t n)
{
	struct spool_file *made = NULL, **made_tail = &made;
	size_t *sizes = calloc(n ? n : 1, sizeof(*sizes));
	size_t first = 0;
	bool created = false;
	int r = 0;

	if (!sizes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		sizes[i] = hf__task_result__get_packed_size(results[i]);
		if (sizes[i] > SPOOL_RESULT_MAX) {
			r = -EMSGSIZE;
			goto out;
		}
	}
	while (first < n) {
		size_t count = 0, bytes = 0;
		struct spool_file *f = NULL;
		bool c = false;

		while (first + count < n && count < SPOOL_BATCH_RESULTS &&
		       (count == 0 || bytes + sizes[first + count] <= SPOOL_BATCH_BYTES))
			bytes += sizes[first + count++];
		r = batch_file_write(sp, results + first, sizes + first, count, bytes, &f, &c);
		created |= c;
		if (r < 0)
			goto out;
		*made_tail = f;
		made_tail = &f->next;
		first += count;
	}
	/* The names of files created: one fsync of the directory for all. */
	if (created && fsync(sp->dir_fd) < 0)
		r = -errno;
out:
	if (r < 0) {
		while (made) {
			struct spool_file *f = made;
			made = f->next;
			f->n = f->live = 0;
			spool_file_retire(sp, f);
		}
	} else {
		while (made) {
			struct spool_file *f = made;
			made = f->next;
			spool_file_append(sp, f);
		}
	}
	free(sizes);
	return r;
}

int spool_write(struct spool *sp, const Hf__TaskResult *r)
{
	Hf__TaskResult *one = (Hf__TaskResult *)r;

	return spool_write_batch(sp, &one, 1);
}

int spool_set_aside(struct spool *sp, const Hf__TaskResult *r)
{
	char path[4400];
	size_t len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len ? len : 1);
	int rv;

	if (!buf)
		return -ENOMEM;
	hf__task_result__pack(r, buf);
	snprintf(path, sizeof(path), "%s/%" PRIu64 "-%" PRIu32 SPOOL_SUFFIX ".bad", sp->dir,
		 r->task_id, r->attempt);
	rv = hf_write_file_durable(path, buf, len);
	free(buf);
	if (rv < 0)
		return rv;
	return spool_remove(sp, r->task_id, r->attempt);
}

void spool_results_free(Hf__TaskResult **results, size_t n)
{
	for (size_t i = 0; results && i < n; i++)
		result_free(results[i]);
	free(results);
}

#define SESSION_FILE ".session"

int spool_session_load(struct spool *sp, uint64_t *ret)
{
	char path[4200], *text = NULL;
	const char *end;
	size_t len;
	uint64_t v;
	int r;

	*ret = 0;
	snprintf(path, sizeof(path), "%s/" SESSION_FILE, sp->dir);
	r = hf_read_file(path, 32, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		log_warn("could not read \"%s\": %s; registering as a new session", path, strerror(-r));
		return 0;
	}
	if (strlen(text) != len || !parse_digits(text, &end, UINT64_MAX, &v) ||
	    (*end && strcmp(end, "\n") != 0))
		log_warn("\"%s\" does not hold a session number; registering as a new session", path);
	else
		*ret = v;
	free(text);
	return 0;
}

int spool_session_save(struct spool *sp, uint64_t session)
{
	char path[4200], text[32];
	int n;

	snprintf(path, sizeof(path), "%s/" SESSION_FILE, sp->dir);
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", session);
	return hf_write_file_durable(path, text, (size_t)n);
}

int spool_result_check(const Hf__TaskResult *r, char *err, size_t errlen)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *back = NULL;
	Hf__ResultBatch batch = HF__RESULT_BATCH__INIT;
	Hf__TaskResult *list[1] = { (Hf__TaskResult *)r };
	nng_msg *msg;
	int rv;

	batch.worker_id = "spool"; /* any valid id: the check is of the result */
	batch.results = list;
	batch.n_results = 1;
	env.body_case = HF__ENVELOPE__BODY_RESULTS;
	env.results = &batch;
	rv = hf_env_pack(&env, &msg);
	if (rv < 0) {
		snprintf(err, errlen, "cannot be encoded");
		return -EINVAL;
	}
	rv = hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), HF_MSG_WORKER_REQUEST, &back, err,
			   errlen);
	nng_msg_free(msg);
	hf_env_free(back);
	return rv < 0 ? -EINVAL : 0;
}
