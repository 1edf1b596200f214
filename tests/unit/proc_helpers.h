/* SPDX-License-Identifier: MIT
 *
 * Process helpers shared by the worker tests that run real children
 * (test_worker_executor.c, test_worker_warm.c).
 */
#ifndef HF_TEST_PROC_HELPERS_H
#define HF_TEST_PROC_HELPERS_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "hf_util.h"

/* True once pid is gone or a zombie waiting for its new parent, polled
 * every 20 ms at most tries times. */
static bool process_dead_within(pid_t pid, int tries)
{
	for (int i = 0; i < tries; i++) {
		char path[64], *text = NULL;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		if (hf_read_file(path, 4096, &text, NULL) < 0)
			return true;
		char *close_paren = strrchr(text, ')');
		bool zombie = close_paren && close_paren[2] == 'Z';
		free(text);
		if (zombie)
			return true;
		usleep(20000);
	}
	return false;
}

/* The pid a test script wrote to dir/name. */
static pid_t read_pid_in(const char *dir, const char *name)
{
	char path[512], *text = NULL;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_int_eq(hf_read_file(path, 64, &text, NULL), 0);
	pid = (pid_t)atoi(text);
	free(text);
	ck_assert_int_gt(pid, 1);
	return pid;
}

#endif
