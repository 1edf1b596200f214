/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the durable result spool (worker/spool.c), in a temporary
 * state directory per test.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_util.h"
#include "result.h"
#include "spool.h"

static char state_dir[64];

static void setup(void)
{
	strcpy(state_dir, "/tmp/hfspoolXXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static Hf__TaskResult *make_result(uint64_t task_id, uint32_t attempt, const char *reason)
{
	Hf__TaskResult *r;

	ck_assert_int_eq(result_new_error(task_id, attempt, 0, 1234.5, reason, &r), 0);
	return r;
}

static bool file_exists(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/%s", state_dir, name);
	return stat(path, &st) == 0;
}

/* Whether the file is there and holds results: a spare (its magic
 * "HFSPOOL0") holds none. */
static bool holds_results(const char *name)
{
	char path[256], magic[8];
	FILE *f;
	bool spare;

	snprintf(path, sizeof(path), "%s/spool/%s", state_dir, name);
	f = fopen(path, "rb");
	if (!f)
		return false;
	spare = fread(magic, 1, 8, f) == 8 && memcmp(magic, "HFSPOOL0", 8) == 0;
	fclose(f);
	return !spare;
}

static void write_raw(const char *name, const void *data, size_t len)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/spool/%s", state_dir, name);
	ck_assert_int_eq(hf_write_file_durable(path, data, len), 0);
}


/* A batch file's bytes: the magic, then length (LE32) + record each. */
struct raw_batch {
	uint8_t buf[8192];
	size_t len;
};

static void batch_begin(struct raw_batch *b, const char *magic)
{
	memcpy(b->buf, magic, 8);
	b->len = 8;
}

static void batch_add_bytes(struct raw_batch *b, uint32_t claimed, const void *data, size_t len)
{
	ck_assert_uint_le(b->len + 4 + len, sizeof(b->buf));
	b->buf[b->len++] = (uint8_t)claimed;
	b->buf[b->len++] = (uint8_t)(claimed >> 8);
	b->buf[b->len++] = (uint8_t)(claimed >> 16);
	b->buf[b->len++] = (uint8_t)(claimed >> 24);
	memcpy(b->buf + b->len, data, len);
	b->len += len;
}

static void batch_add(struct raw_batch *b, uint64_t task_id, uint32_t attempt, const char *reason)
{
	Hf__TaskResult *r = make_result(task_id, attempt, reason);
	size_t len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len);

	hf__task_result__pack(r, buf);
	batch_add_bytes(b, (uint32_t)len, buf, len);
	free(buf);
	result_free(r);
}

static size_t load_count(struct spool *sp, Hf__TaskResult ***list)
{
	size_t n;

	ck_assert_int_eq(spool_load(sp, list, &n), 0);
	return n;
}

START_TEST(test_written_result_loads_back_unchanged)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(17, 2, "runner exited with status 1 without writing a result");
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, r), 0);
	ck_assert(file_exists("batch-1.results"));
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(list[0]->task_id, 17);
	ck_assert_uint_eq(list[0]->attempt, 2);
	ck_assert_int_eq(list[0]->status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(list[0]->reason, r->reason);
	ck_assert(list[0]->finished_at == 1234.5);
	spool_results_free(list, n);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_results_survive_a_restart_in_task_order)
{
	struct spool *sp;
	Hf__TaskResult **list;
	size_t n;
	const uint64_t tasks[][2] = { { 30, 1 }, { 4, 2 }, { 4, 1 }, { 100, 1 } };

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	for (size_t i = 0; i < 4; i++) {
		Hf__TaskResult *r = make_result(tasks[i][0], (uint32_t)tasks[i][1], "x");
		ck_assert_int_eq(spool_write(sp, r), 0);
		result_free(r);
	}
	spool_close(sp);

	/* A new process opens the same directory. */
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert(list[0]->task_id == 4 && list[0]->attempt == 1);
	ck_assert(list[1]->task_id == 4 && list[1]->attempt == 2);
	ck_assert(list[2]->task_id == 30);
	ck_assert(list[3]->task_id == 100);
	spool_results_free(list, n);
	spool_close(sp);
}
END_TEST

START_TEST(test_removed_result_is_gone_and_removing_twice_is_fine)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(5, 1, "x");
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, r), 0);
	ck_assert_int_eq(spool_remove(sp, 5, 1), 0);
	ck_assert(!holds_results("batch-1.results"));
	ck_assert_int_eq(spool_remove(sp, 5, 1), 0);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	spool_results_free(list, n);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_garbage_file_is_moved_aside_and_the_rest_loads)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(8, 1, "x");
	Hf__TaskResult **list;
	size_t n;
	static const char garbage[] = "\xff\xff\xff\xff this is not a TaskResult";

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, r), 0);
	write_raw("9-1.result", garbage, sizeof(garbage));
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(list[0]->task_id, 8);
	ck_assert(!file_exists("9-1.result"));
	ck_assert(file_exists("9-1.result.bad"));
	spool_results_free(list, n);

	/* Moved aside for good: the next load neither sees nor moves it. */
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(file_exists("9-1.result.bad"));
	spool_results_free(list, n);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_result_under_another_name_is_moved_aside)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(1, 1, "x");
	Hf__TaskResult **list;
	size_t n, len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len);

	hf__task_result__pack(r, buf);
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	write_raw("2-1.result", buf, len);       /* valid, but not task 2 */
	write_raw("x-1.result", buf, len);       /* not a spool name */
	write_raw("3-1.result", "", 0);          /* empty: no status */
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(file_exists("2-1.result.bad"));
	ck_assert(file_exists("x-1.result.bad"));
	ck_assert(file_exists("3-1.result.bad"));
	spool_results_free(list, n);
	free(buf);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_leftovers_of_interrupted_writes_are_removed_and_strangers_ignored)
{
	struct spool *sp;
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	write_raw("6-1.result.tmp.4242", "partial", 7);
	write_raw("README", "not ours", 8);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(!file_exists("6-1.result.tmp.4242"));
	ck_assert(file_exists("README"));
	spool_results_free(list, n);
	spool_close(sp);
}
END_TEST

START_TEST(test_failed_write_reports_the_error_and_leaves_nothing)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(11, 1, "x");
	char cmd[128];

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	snprintf(cmd, sizeof(cmd), "rm -r '%s/spool'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(spool_write(sp, r), -ENOENT);
	ck_assert(!holds_results("batch-1.results"));
	result_free(r);
	spool_close(sp);
}
END_TEST


START_TEST(test_a_batch_is_one_file_removed_with_its_last_result)
{
	struct spool *sp;
	Hf__TaskResult *rs[3] = { make_result(1, 1, "a"), make_result(2, 1, "b"), make_result(3, 1, "c") };
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write_batch(sp, rs, 3), 0);
	ck_assert(file_exists("batch-1.results"));
	ck_assert(!file_exists("batch-2.results"));
	ck_assert_int_eq(spool_remove(sp, 2, 1), 0);
	ck_assert_int_eq(spool_remove(sp, 1, 1), 0);
	ck_assert(file_exists("batch-1.results")); /* task 3 is still in it */
	spool_close(sp);

	/* A restart sends again everything of a batch not wholly
	 * acknowledged (results are idempotent by task and attempt). */
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(list[2]->reason, "c");
	spool_results_free(list, n);
	for (uint64_t t = 1; t <= 3; t++)
		ck_assert_int_eq(spool_remove(sp, t, 1), 0);
	ck_assert(!holds_results("batch-1.results"));
	ck_assert(file_exists("batch-1.results")); /* a spare */

	/* The next batch is written over the spare: no file is created. */
	ck_assert_int_eq(spool_write(sp, rs[0]), 0);
	ck_assert(holds_results("batch-1.results"));
	ck_assert(!file_exists("batch-2.results"));
	spool_close(sp);
	/* Before a load the spool knows no spare: a new file, numbered past
	 * every name and every batch in a file (batch-1 holds batch 2). */
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, rs[1]), 0);
	ck_assert(file_exists("batch-3.results"));
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 2);
	spool_results_free(list, n);
	for (size_t i = 0; i < 3; i++)
		result_free(rs[i]);
	spool_close(sp);
}
END_TEST

START_TEST(test_a_large_batch_is_split_into_bounded_files)
{
	struct spool *sp;
	size_t total = SPOOL_BATCH_RESULTS + 5, n;
	Hf__TaskResult **rs = calloc(total, sizeof(*rs)), **list;

	for (size_t i = 0; i < total; i++)
		rs[i] = make_result(i + 1, 1, "x");
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write_batch(sp, rs, total), 0);
	ck_assert(file_exists("batch-1.results"));
	ck_assert(file_exists("batch-2.results"));
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, total);
	spool_results_free(list, n);
	for (size_t i = 0; i < total; i++)
		result_free(rs[i]);
	free(rs);
	spool_close(sp);
}
END_TEST

START_TEST(test_files_of_the_older_layout_still_load_and_go)
{
	struct spool *sp;
	Hf__TaskResult *r = make_result(7, 3, "old");
	Hf__TaskResult **list;
	size_t n, len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len);

	hf__task_result__pack(r, buf);
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	write_raw("7-3.result", buf, len);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(list[0]->reason, "old");
	spool_results_free(list, n);
	ck_assert_int_eq(spool_remove(sp, 7, 3), 0);
	ck_assert(!file_exists("7-3.result"));
	free(buf);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_the_later_copy_of_an_attempt_wins)
{
	struct spool *sp;
	struct raw_batch b;
	Hf__TaskResult *r = make_result(4, 1, "legacy");
	Hf__TaskResult **list;
	size_t n, len = hf__task_result__get_packed_size(r);
	uint8_t *buf = malloc(len);

	hf__task_result__pack(r, buf);
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	write_raw("4-1.result", buf, len);
	batch_begin(&b, "HFSPOOL1");
	batch_add(&b, 4, 1, "older");
	batch_add(&b, 5, 1, "five");
	write_raw("batch-3.results", b.buf, b.len);
	batch_begin(&b, "HFSPOOL1");
	batch_add(&b, 4, 1, "newer");
	write_raw("batch-10.results", b.buf, b.len);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(list[0]->task_id, 4);
	ck_assert_str_eq(list[0]->reason, "newer");
	ck_assert_str_eq(list[1]->reason, "five");
	spool_results_free(list, n);
	/* The single file held only the copy that lost: it is gone. */
	ck_assert(!file_exists("4-1.result"));
	ck_assert_int_eq(spool_remove(sp, 4, 1), 0);
	ck_assert(!holds_results("batch-10.results"));
	ck_assert(file_exists("batch-3.results")); /* task 5 */
	ck_assert_int_eq(spool_remove(sp, 5, 1), 0);
	ck_assert(!holds_results("batch-3.results"));
	/* The next batch goes into a spare, numbered past 10 inside. */
	ck_assert_int_eq(spool_write(sp, r), 0);
	ck_assert(!file_exists("batch-11.results"));
	ck_assert(holds_results("batch-3.results") || holds_results("batch-10.results"));
	free(buf);
	result_free(r);
	spool_close(sp);
}
END_TEST

START_TEST(test_spares_are_found_again_and_written_over)
{
	struct spool *sp;
	Hf__TaskResult *rs[2] = { make_result(1, 1, "a"), make_result(2, 1, "b") };
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, rs[0]), 0);
	ck_assert_int_eq(spool_write(sp, rs[1]), 0);
	ck_assert_int_eq(spool_remove(sp, 1, 1), 0);
	ck_assert_int_eq(spool_remove(sp, 2, 1), 0);
	spool_close(sp);

	/* A restart finds two spares and no result. */
	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 0);
	spool_results_free(list, n);
	ck_assert(file_exists("batch-1.results") && file_exists("batch-2.results"));
	/* The next batches are written over them: no file is created, and
	 * both load. */
	ck_assert_int_eq(spool_write(sp, rs[0]), 0);
	ck_assert_int_eq(spool_write(sp, rs[1]), 0);
	ck_assert(!file_exists("batch-3.results"));
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(list[0]->reason, "a");
	ck_assert_str_eq(list[1]->reason, "b");
	spool_results_free(list, n);
	for (size_t i = 0; i < 2; i++)
		result_free(rs[i]);
	spool_close(sp);
}
END_TEST

START_TEST(test_a_batch_cut_short_fails_its_checksum_and_is_moved_aside)
{
	struct spool *sp;
	Hf__TaskResult *rs[2] = { make_result(1, 1, "first"), make_result(2, 1, "second") };
	Hf__TaskResult **list;
	char path[256];
	size_t n;
	FILE *f;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write(sp, rs[0]), 0);
	ck_assert_int_eq(spool_write(sp, rs[1]), 0);
	spool_close(sp);
	/* A byte of the first batch's record changed, as a write cut short
	 * over a spare leaves the older bytes. */
	snprintf(path, sizeof(path), "%s/spool/batch-1.results", state_dir);
	f = fopen(path, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 30, SEEK_SET), 0);
	ck_assert_int_eq(fputc('X', f), 'X');
	fclose(f);

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(list[0]->reason, "second");
	spool_results_free(list, n);
	ck_assert(file_exists("batch-1.results.bad"));
	ck_assert(!file_exists("batch-1.results"));
	for (size_t i = 0; i < 2; i++)
		result_free(rs[i]);
	spool_close(sp);
}
END_TEST

START_TEST(test_damaged_batch_files_are_moved_aside_whole)
{
	struct spool *sp;
	struct raw_batch b;
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	batch_begin(&b, "HFSPOOLX"); /* not the magic */
	batch_add(&b, 1, 1, "x");
	write_raw("batch-1.results", b.buf, b.len);
	batch_begin(&b, "HFSPOOL1"); /* a length past the end */
	batch_add(&b, 2, 1, "x");
	batch_add_bytes(&b, 1000, "abc", 3);
	write_raw("batch-2.results", b.buf, b.len);
	batch_begin(&b, "HFSPOOL1"); /* a length over any result's */
	batch_add_bytes(&b, 0xffffffffu, "abc", 3);
	write_raw("batch-3.results", b.buf, b.len);
	batch_begin(&b, "HFSPOOL1"); /* cut within a length */
	batch_add(&b, 4, 1, "x");
	b.buf[b.len++] = 1;
	write_raw("batch-4.results", b.buf, b.len);
	write_raw("batch-5.results", "HFSP", 4); /* shorter than the magic */
	write_raw("batch-x.results", "HFSPOOL1", 8); /* not a batch name */
	write_raw("batch-0.results", "HFSPOOL1", 8);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 0);
	spool_results_free(list, n);
	const char *names[] = { "batch-1.results", "batch-2.results", "batch-3.results",
				"batch-4.results", "batch-5.results", "batch-x.results",
				"batch-0.results" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char bad[64];
		snprintf(bad, sizeof(bad), "%s.bad", names[i]);
		ck_assert_msg(!file_exists(names[i]), "%s still there", names[i]);
		ck_assert_msg(file_exists(bad), "%s not there", bad);
	}
	spool_close(sp);
}
END_TEST

START_TEST(test_an_invalid_result_of_a_batch_is_written_aside_and_the_rest_loads)
{
	struct spool *sp;
	struct raw_batch b;
	Hf__TaskResult **list;
	Hf__TaskResult *running;
	size_t n, len;
	uint8_t buf[512];

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	batch_begin(&b, "HFSPOOL1");
	batch_add(&b, 1, 1, "one");
	batch_add_bytes(&b, 8, "\xff\xff\xff\xff\xff\xff\xff\xff", 8); /* not a TaskResult */
	running = make_result(3, 1, "x"); /* not a final status */
	running->status = HF__TASK_STATUS__STATUS_UNSPECIFIED;
	len = hf__task_result__get_packed_size(running);
	ck_assert_uint_le(len, sizeof(buf));
	hf__task_result__pack(running, buf);
	batch_add_bytes(&b, (uint32_t)len, buf, len);
	result_free(running);
	batch_add(&b, 4, 1, "four");
	write_raw("batch-1.results", b.buf, b.len);
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(list[0]->reason, "one");
	ck_assert_str_eq(list[1]->reason, "four");
	spool_results_free(list, n);
	ck_assert(file_exists("batch-1.results"));
	ck_assert(file_exists("batch-1.results.2.bad"));
	ck_assert(file_exists("batch-1.results.3.bad"));
	ck_assert_int_eq(spool_remove(sp, 1, 1), 0);
	ck_assert_int_eq(spool_remove(sp, 4, 1), 0);
	ck_assert(!holds_results("batch-1.results"));
	spool_close(sp);
}
END_TEST

START_TEST(test_set_aside_keeps_the_refused_result_alone)
{
	struct spool *sp;
	Hf__TaskResult *rs[2] = { make_result(1, 1, "a"), make_result(2, 1, "b") };
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_write_batch(sp, rs, 2), 0);
	ck_assert_int_eq(spool_set_aside(sp, rs[0]), 0);
	ck_assert(file_exists("1-1.result.bad"));
	ck_assert(file_exists("batch-1.results")); /* task 2 */
	ck_assert_int_eq(spool_remove(sp, 2, 1), 0);
	ck_assert(!holds_results("batch-1.results"));
	n = load_count(sp, &list);
	ck_assert_uint_eq(n, 0);
	ck_assert(file_exists("1-1.result.bad")); /* never loaded again */
	spool_results_free(list, n);
	result_free(rs[0]);
	result_free(rs[1]);
	spool_close(sp);
}
END_TEST

START_TEST(test_second_process_cannot_open_a_spool_in_use)
{
	struct spool *sp, *other;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_open(state_dir, &other), -EBUSY);
	spool_close(sp);
	ck_assert_int_eq(spool_open(state_dir, &other), 0); /* released on close */
	spool_close(other);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_spool");
	TCase *tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_written_result_loads_back_unchanged);
	tcase_add_test(tc, test_results_survive_a_restart_in_task_order);
	tcase_add_test(tc, test_removed_result_is_gone_and_removing_twice_is_fine);
	tcase_add_test(tc, test_garbage_file_is_moved_aside_and_the_rest_loads);
	tcase_add_test(tc, test_result_under_another_name_is_moved_aside);
	tcase_add_test(tc, test_leftovers_of_interrupted_writes_are_removed_and_strangers_ignored);
	tcase_add_test(tc, test_failed_write_reports_the_error_and_leaves_nothing);
	tcase_add_test(tc, test_second_process_cannot_open_a_spool_in_use);
	tcase_add_test(tc, test_a_batch_is_one_file_removed_with_its_last_result);
	tcase_add_test(tc, test_a_large_batch_is_split_into_bounded_files);
	tcase_add_test(tc, test_files_of_the_older_layout_still_load_and_go);
	tcase_add_test(tc, test_the_later_copy_of_an_attempt_wins);
	tcase_add_test(tc, test_damaged_batch_files_are_moved_aside_whole);
	tcase_add_test(tc, test_spares_are_found_again_and_written_over);
	tcase_add_test(tc, test_a_batch_cut_short_fails_its_checksum_and_is_moved_aside);
	tcase_add_test(tc, test_an_invalid_result_of_a_batch_is_written_aside_and_the_rest_loads);
	tcase_add_test(tc, test_set_aside_keeps_the_refused_result_alone);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
