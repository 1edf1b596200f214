/* SPDX-License-Identifier: MIT
 *
 * What spool.c (opening, writing, releasing) and spool-load.c (reading a
 * spool at start) share: the files' layouts, the spool's lists of files
 * and the helpers both use.  Not thread-safe, as spool.h.
 */
#ifndef SPOOL_INTERNAL_H
#define SPOOL_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool.h"

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

void spool_file_free(struct spool *sp, struct spool_file *f);
/* Frees every file of the lists (the disk is left as it is). */
void spool_files_free(struct spool *sp);
uint32_t spool_get_le32(const uint8_t *p);
uint64_t spool_get_le64(const uint8_t *p);
/* The checksum of a HFSPOOL2 batch: its seq and length, then its records. */
uint32_t spool_batch2_crc(const uint8_t *header, const uint8_t *records, size_t bytes);
bool spool_ends_with(const char *s, const char *suffix);
/* "<task_id>-<attempt>.result" */
bool spool_parse_name(const char *name, uint64_t *ret_task, uint32_t *ret_attempt);
/* "batch-<seq>.results", seq > 0. */
bool spool_parse_batch_name(const char *name, uint64_t *ret_seq);
struct spool_file *spool_file_new(const char *name, uint64_t seq, size_t n);
void spool_file_add_entry(struct spool_file *f, uint64_t task_id, uint32_t attempt);
/* Puts f (in no list) last in the spool's list. */
void spool_file_append(struct spool *sp, struct spool_file *f);
/* A file none of whose results is live (in no list): a spare, or removed. */
int spool_file_retire(struct spool *sp, struct spool_file *f);
/* Takes the file at *link off the list and retires it. */
int spool_file_drop(struct spool *sp, struct spool_file **link);

#endif
