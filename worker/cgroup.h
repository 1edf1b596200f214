/* SPDX-License-Identifier: MIT
 *
 * cgroup v2 for contain.c: where the worker may make cgroups (its own
 * delegated cgroup, or the root of the hierarchy it sees), and the few
 * files of a cgroup it uses: cgroup.procs (moving a process, listing),
 * cgroup.kill, cgroup.events.  Paths are of the mounted hierarchy
 * ("/sys/fs/cgroup/...").  Thread-safe; nothing is kept here.
 */
#ifndef CGROUP_H
#define CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Where runners' cgroups go. */
struct cgroup_layout {
	bool usable;
	char *base;      /* groups are made here */
	char *home;      /* the worker's own cgroup */
	bool base_owned; /* base is the worker's alone (<root>/hfleet-worker-<pid>) */
	bool has_kill;   /* cgroup.kill (Linux 5.14) */
	char why[256];   /* why not, when not usable */
};

/* Fills the layout: at the root of the hierarchy the worker sees,
 * base is <root>/hfleet-worker-<pid> (made here) and home the root; in a
 * cgroup delegated to the worker (trusted.delegate or user.delegate set,
 * or write access for a worker that is not root; forced skips the check),
 * home is <own>/worker, made here, and base <own>.  The worker is moved
 * into home, which proves it may move itself.  Not usable: why says why
 * (no cgroup v2 mounted, not delegated, no permission). */
void cgroup_layout_find(struct cgroup_layout *layout, bool forced);

/* dir/name, malloc'd.  Returns 0 or -ENOMEM. */
int cgroup_path(char **ret, const char *dir, const char *name);

/* Writes pid into dir/cgroup.procs: moves that process, all of its
 * threads, into the cgroup.  Returns 0 or a negative errno. */
int cgroup_move(const char *dir, pid_t pid);

/* The pids dir/cgroup.procs lists (malloc'd).  Returns 0 or a negative
 * errno. */
int cgroup_pids(const char *dir, pid_t **ret, size_t *ret_n);

/* Whether processes are left in the cgroup or below (cgroup.events);
 * true when that cannot be read. */
bool cgroup_populated(const char *dir);

/* SIGKILLs every process in the cgroup but the caller: by writing
 * cgroup.kill when use_kill_file, else by SIGKILL to what cgroup.procs
 * lists, until it lists nothing. */
void cgroup_kill(const char *dir, bool use_kill_file);

#endif
