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
 */
#include "spool.h"

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

#define SPOOL_SUFFIX ".result"
#define BATCH_PREFIX "batch-"
#define BATCH_SUFFIX ".results"
#define BATCH_MAGIC "HFSPOOL1"      /* the layout before spare files */
#define BATCH2_MAGIC "HFSPOOL2"     /* a batch with its sequence and checksum */
#define SPARE_MAGIC "HFSPOOL0"      /* a spare: nothing in it is a result */
#define BATCH_MAGIC_LEN 8
#define BATCH2_HEADER_LEN 24        /* magic, seq (LE64), bytes (LE32), crc (LE32) */
#define SPOOL_NAME_MAX 64
/* Files written are padded to whole pages, so that a later batch written
 * over one rarely grows it (a size change is a metadata write for
 * fdatasync). */
#define SPOOL_PAGE 4096
/* Spare files kept for later batches (the others are removed), and files
 * whose descriptor stays open (a retired one past this is opened again). */
#define SPOOL_SPARES_MAX 16
#define SPOOL_OPEN_MAX 64

struct spool_entry {
	uint64_t task_id;
	uint32_t attempt;
	bool live;
};

/* A file of the spool and the results in it. */
struct spool_file {
	struct spool_file *next;
	char name[SPOOL_NAME_MAX];
	uint64_t seq;                 /* 0: a single-result file (older layout) */
	bool batch;                   /* a batch file: it may become a spare */
	int fd;                       /* -1: not open */
	struct spool_entry *entries;
	size_t n, live;
};

struct spool {
	char dir[4096];
	int lock_fd, dir_fd;
	long pid;                     /* in temporary files' names */
	uint64_t next_seq;            /* past every file's name and batch */
	struct spool_file *files, **files_tail;  /* oldest first */
	struct spool_file *spares;
	size_t n_spares, n_open;
};

static void file_free(struct spool *sp, struct spool_file *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		sp->n_open--;
	}
	free(f->entries);
	free(f);
}

static void files_free(struct spool *sp)
{
	while (sp->files) {
		struct spool_file *f = sp->files;
		sp->files = f->next;
		file_free(sp, f);
	}
	sp->files_tail = &sp->files;
	while (sp->spares) {
		struct spool_file *f = sp->spares;
		sp->spares = f->next;
		file_free(sp, f);
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

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* The checksum of a HFSPOOL2 batch: its seq and length, then its records. */
static uint32_t batch2_crc(const uint8_t *header, const uint8_t *records, size_t bytes)
{
	return crc32_update(crc32_update(0, header + BATCH_MAGIC_LEN, 12), records, bytes);
}

static bool ends_with(const char *s, const char *suffix)
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
static bool parse_name(const char *name, uint64_t *ret_task, uint32_t *ret_attempt)
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
static bool parse_batch_name(const char *name, uint64_t *ret_seq)
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

		if (!parse_batch_name(de->d_name, &seq))
			continue;
		if (seq >= sp->next_seq)
			sp->next_seq = seq + 1;
		/* A file written again carries a later batch than its name. */
		fd = openat(sp->dir_fd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
		    memcmp(head, BATCH2_MAGIC, BATCH_MAGIC_LEN) == 0) {
			seq = get_le64(head + BATCH_MAGIC_LEN);
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
	files_free(sp);
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
static int file_retire(struct spool *sp, struct spool_file *f)
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
	file_free(sp, f);
	return r;
}

/* Takes the file at *link (none of its results is live any more) off the
 * list and retires it. */
static int file_drop(struct spool *sp, struct spool_file **link)
{
	struct spool_file *f = *link;

	*link = f->next;
	if (sp->files_tail == &f->next)
		sp->files_tail = link;
	return file_retire(sp, f);
}

static struct spool_file *file_new(const char *name, uint64_t seq, size_t n)
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

static void file_add_entry(struct spool_file *f, uint64_t task_id, uint32_t attempt)
{
	f->entries[f->n++] = (struct spool_entry){ .task_id = task_id, .attempt = attempt, .live = true };
	f->live++;
}

static void file_append(struct spool *sp, struct spool_file *f)
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
	return file_drop(sp, link);
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
	f = file_new(name, sp->next_seq, n);
	if (!f) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	f->batch = true;
	f->fd = openat(sp->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		*ret_err = -errno;
		file_free(sp, f);
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
		file_add_entry(f, results[i]->task_id, results[i]->attempt);
	}
	put_le32(buf + 20, batch2_crc(buf, buf + BATCH2_HEADER_LEN, len - BATCH2_HEADER_LEN));
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
		file_retire(sp, f);
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
			file_retire(sp, f);
		}
	} else {
		while (made) {
			struct spool_file *f = made;
			made = f->next;
			file_append(sp, f);
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
	uint64_t seq = get_le64(buf + 8);
	uint32_t bytes = get_le32(buf + 16);
	if (bytes > len - BATCH2_HEADER_LEN) {
		snprintf(why, whylen, "says its results have %" PRIu32 " bytes, past its end", bytes);
		return -EBADMSG;
	}
	if (seq == 0 || seq >= UINT64_MAX - 1) {
		snprintf(why, whylen, "has batch number %" PRIu64 ", out of range", seq);
		return -EBADMSG;
	}
	if (batch2_crc(buf, buf + BATCH2_HEADER_LEN, bytes) != get_le32(buf + 20)) {
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
		uint32_t l = get_le32(buf + off);
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
	f = file_new(name, seq, rv == 1 ? 0 : n);
	if (!f) {
		rv = -ENOMEM;
		goto out;
	}
	f->batch = true;
	if (rv == 1) {
		rv = file_retire(sp, f); /* a spare: kept as one, or removed */
		if (rv < 0)
			log_warn("could not remove \"%s\": %s, ignoring", path, strerror(-rv));
		rv = 0;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t rl = get_le32(buf + off);
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
		file_add_entry(f, r->task_id, r->attempt);
		rv = load_push(l, r, f);
		if (rv < 0) {
			result_free(r);
			f->live--; /* the others stay listed; the file is kept */
			file_append(sp, f);
			goto out;
		}
	}
	if (f->live == 0) {
		/* Every result in it was written aside. */
		rv = file_retire(sp, f);
		if (rv < 0)
			log_warn("could not remove \"%s\": %s, ignoring", path, strerror(-rv));
		rv = 0;
	} else {
		file_append(sp, f);
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
	if (ends_with(name, BATCH_SUFFIX)) {
		if (!parse_batch_name(name, &seq)) {
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
	if (!ends_with(name, SPOOL_SUFFIX))
		return 0;
	if (!parse_name(name, &task_id, &attempt)) {
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
	struct spool_file *f = file_new(name, 0, 1);
	if (!f) {
		result_free(res);
		return -ENOMEM;
	}
	file_add_entry(f, task_id, attempt);
	file_append(sp, f);
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

	files_free(sp); /* the disk says what is there */
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
			file_drop(sp, pf);
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
	files_free(sp);
	return r;
}
