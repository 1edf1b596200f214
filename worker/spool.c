/* SPDX-License-Identifier: MIT
 *
 * The durable result spool (see spool.h).  Durability comes from
 * hf_write_file_durable (temporary file, fsync, rename, fsync of the
 * directory); a crash mid-write leaves a "<name>.tmp.<pid>" file that the
 * next load removes.
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
#define SPOOL_FILE_MAX (8u << 20)

struct spool {
	char dir[4096];
	int lock_fd;
};

int spool_open(const char *state_dir, struct spool **ret_spool)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	char lock[4200];
	int r;

	if (!sp)
		return -ENOMEM;
	sp->lock_fd = -1;
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
	if (sp->lock_fd >= 0)
		close(sp->lock_fd); /* releases the lock */
	free(sp);
}

const char *spool_dir(const struct spool *sp)
{
	return sp->dir;
}

static int spool_path(const struct spool *sp, uint64_t task_id, uint32_t attempt, char *buf,
		      size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%" PRIu64 "-%" PRIu32 SPOOL_SUFFIX, sp->dir, task_id,
			     attempt) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int spool_write(struct spool *sp, const Hf__TaskResult *r)
{
	char path[4200];
	size_t len = hf__task_result__get_packed_size(r);
	uint8_t *buf;
	int rv;

	rv = spool_path(sp, r->task_id, r->attempt, path, sizeof(path));
	if (rv < 0)
		return rv;
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	hf__task_result__pack(r, buf);
	rv = hf_write_file_durable(path, buf, len);
	free(buf);
	return rv;
}

int spool_remove(struct spool *sp, uint64_t task_id, uint32_t attempt)
{
	char path[4200];
	int r = spool_path(sp, task_id, attempt, path, sizeof(path));

	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

void spool_results_free(Hf__TaskResult **results, size_t n)
{
	for (size_t i = 0; results && i < n; i++)
		result_free(results[i]);
	free(results);
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

/* "<task_id>-<attempt>.result", exactly as spool_path writes it. */
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

/* Reads one spool file; -EBADMSG when it is not the result its name says,
 * or not one the coordinator would take (a file from an older version, or
 * one damaged or planted in the spool). */
static int load_one(const char *path, uint64_t task_id, uint32_t attempt, Hf__TaskResult **ret)
{
	char *buf = NULL;
	size_t len = 0;
	Hf__TaskResult *r;
	int rv;

	rv = hf_read_file(path, SPOOL_FILE_MAX, &buf, &len);
	if (rv == -EFBIG)
		return -EBADMSG;
	if (rv < 0)
		return rv;
	r = hf__task_result__unpack(NULL, len, (const uint8_t *)buf);
	free(buf);
	if (!r)
		return -EBADMSG;
	if (r->task_id != task_id || r->attempt != attempt || !hf_status_is_final(r->status)) {
		result_free(r);
		return -EBADMSG;
	}
	char err[256];
	if (spool_result_check(r, err, sizeof(err)) < 0) {
		log_warn("spool file \"%s\": %s", path, err);
		result_free(r);
		return -EBADMSG;
	}
	*ret = r;
	return 0;
}

int spool_set_aside(struct spool *sp, uint64_t task_id, uint32_t attempt)
{
	char path[4200], bad[4300];
	int r = spool_path(sp, task_id, attempt, path, sizeof(path));

	if (r < 0)
		return r;
	snprintf(bad, sizeof(bad), "%s.bad", path);
	if (rename(path, bad) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static void move_aside(const char *path)
{
	char bad[4300];

	snprintf(bad, sizeof(bad), "%s.bad", path);
	if (rename(path, bad) < 0)
		log_warn("could not move damaged spool file \"%s\" aside: %s, ignoring", path,
			 strerror(errno));
	else
		log_warn("spool file \"%s\" is not a valid result, moved aside to \"%s\"", path, bad);
}

static int result_order(const void *a, const void *b)
{
	const Hf__TaskResult *x = *(Hf__TaskResult *const *)a, *y = *(Hf__TaskResult *const *)b;

	if (x->task_id != y->task_id)
		return x->task_id < y->task_id ? -1 : 1;
	if (x->attempt != y->attempt)
		return x->attempt < y->attempt ? -1 : 1;
	return 0;
}

int spool_load(struct spool *sp, Hf__TaskResult ***ret_results, size_t *ret_n)
{
	Hf__TaskResult **list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(sp->dir);
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		char path[4400];
		uint64_t task_id;
		uint32_t attempt;
		Hf__TaskResult *res;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", sp->dir, de->d_name);
		if (strstr(de->d_name, SPOOL_SUFFIX ".tmp.")) {
			log_debug("removing \"%s\", left over by an interrupted write", path);
			if (unlink(path) < 0)
				log_warn("could not remove \"%s\": %s, ignoring", path, strerror(errno));
			continue;
		}
		if (!ends_with(de->d_name, SPOOL_SUFFIX))
			continue;
		if (!parse_name(de->d_name, &task_id, &attempt)) {
			move_aside(path);
			continue;
		}
		r = load_one(path, task_id, attempt, &res);
		if (r == -EBADMSG) {
			move_aside(path);
			r = 0;
			continue;
		}
		if (r == -ENOMEM)
			goto fail;
		if (r < 0) {
			log_warn("could not read spool file \"%s\": %s, ignoring", path, strerror(-r));
			r = 0;
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			Hf__TaskResult **grown = realloc(list, ncap * sizeof(*list));
			if (!grown) {
				result_free(res);
				r = -ENOMEM;
				goto fail;
			}
			list = grown;
			cap = ncap;
		}
		list[n++] = res;
	}
	if (errno) {
		r = -errno;
		goto fail;
	}
	closedir(d);
	if (n > 1)
		qsort(list, n, sizeof(*list), result_order);
	*ret_results = list;
	*ret_n = n;
	return 0;

fail:
	closedir(d);
	spool_results_free(list, n);
	return r;
}
