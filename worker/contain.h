/* SPDX-License-Identifier: MIT
 *
 * Containment of the processes a runner starts: every process a task,
 * health check or warm runner starts dies with it, also one that called
 * setsid() or was double-forked to leave its process group.
 *
 * Two mechanisms, chosen once at start (contain_new) and logged:
 *
 *   cgroup   where cgroup v2 is mounted and hf-worker may manage a subtree
 *            of it: its own cgroup delegated to it (systemd's Delegate=yes,
 *            told by the trusted.delegate or user.delegate attribute of the
 *            cgroup, or by write access for a worker that is not root), or
 *            the root of the hierarchy it sees (a container, a CI sandbox).
 *            Delegated: the worker moves into <own>/worker (the cgroup v2
 *            rule that a cgroup with children distributing resources holds
 *            no processes) and makes the groups beside it, <own>/<name>.
 *            At the root: the groups go under /hfleet-worker-<pid>/, and
 *            the worker stays where it is.  A runner is put in its group
 *            at the fork: the worker moves itself into the group's cgroup
 *            for the spawn and back to its own right after, so the child is
 *            born inside and no instant passes in which it could fork
 *            outside.  A group is killed with cgroup.kill (Linux 5.14), or
 *            by SIGKILLing what cgroup.procs lists until it is empty, and
 *            removed (rmdir, retried while its last processes exit).
 *            Delegated, a descendant of the worker found in <own> or
 *            <own>/worker (a runner moved it there) is killed too.
 *   subreaper otherwise: the worker is a child subreaper
 *            (PR_SET_CHILD_SUBREAPER), so whatever a runner leaves behind
 *            is re-parented to the worker instead of to init.  A process
 *            re-parented to the worker belongs to the group whose runner
 *            leads its session (or process group); one that left its
 *            runner's session (setsid) belongs to no one.  A group is
 *            killed by SIGKILL to the runner's process group, then a sweep
 *            of /proc: everything in the runner's session, every adopted
 *            process of the group or of no one, and all their descendants
 *            are stopped (SIGSTOP, repeated until no new process appears,
 *            so none can fork away meanwhile) and then SIGKILLed.  A
 *            process that escaped its session can therefore die at the end
 *            of any task, not only of its own.
 *
 * In both modes the worker is a child subreaper and reaps every adopted
 * process when it exits (its own SIGCHLD watcher, waitpid on that pid only:
 * the runners libuv spawned, registered by contain_spawn_leave until
 * contain_exited, are never waited for here, so libuv's exit callbacks
 * still come).
 *
 * HFLEET_CONTAIN in the environment forces a mechanism: "subreaper", or
 * "cgroup" (taken without the delegation check, still falling back when
 * the cgroup cannot be used); unset or "auto": as above.
 *
 * Threads and ownership: everything runs on the loop thread.  A group is
 * the caller's until contain_group_free; the containment is freed once it
 * was closed and its last group freed.
 */
#ifndef CONTAIN_H
#define CONTAIN_H

#include <stdbool.h>
#include <sys/types.h>

#include <uv.h>

struct contain;
struct contain_group;

enum contain_mode {
	CONTAIN_SUBREAPER,
	CONTAIN_CGROUP,
};

/* Chooses the mechanism (logged at info) and starts reaping adopted
 * processes.  Returns 0 or -ENOMEM; a machine without cgroup v2 or
 * permission is not an error (the subreaper is used). */
int contain_new(uv_loop_t *loop, struct contain **ret);

enum contain_mode contain_mode(const struct contain *c);

/* "cgroup" or "subreaper". */
const char *contain_mode_name(enum contain_mode mode);

/* A group for one runner; name (letters, digits, '-', '_') names its
 * cgroup.  Returns 0, -EINVAL for a bad name, -ESHUTDOWN after contain_close,
 * -ENOMEM, or the errno of making the cgroup. */
int contain_group_new(struct contain *c, const char *name, struct contain_group **ret);

/* Around the uv_spawn of the group's runner (one per group): enter before,
 * leave right after with the child's pid (0 when the spawn failed).  With
 * a cgroup the worker itself is in the group's cgroup in between, so the
 * child is born there.  The pid is the group's leader: its session and
 * process group id, as every runner is spawned UV_PROCESS_DETACHED.
 * contain_spawn_enter returns 0 or the errno of entering the cgroup (then
 * spawn nothing, and do not call contain_spawn_leave). */
int contain_spawn_enter(struct contain_group *g);
void contain_spawn_leave(struct contain_group *g, pid_t pid);

/* The leader's exit was seen (libuv reaped it): its pid is no one's now. */
void contain_exited(struct contain_group *g);

/* Sends sig to the group.  SIGKILL kills everything in it, the leader
 * too while it lives (the whole cgroup; or its process group and the
 * subreaper sweep above); another signal goes to the leader's process
 * group and, with a cgroup, to every other process in it. */
void contain_signal(struct contain_group *g, int sig);

/* Kills every process of the group that is not in its leader's session
 * (a warm runner keeps its own children between tasks; what left its
 * session goes at the end of each task).  With a cgroup that lists only
 * the leader this costs one pread of its cgroup.procs, kept open. */
void contain_kill_escaped(struct contain_group *g);

/* Kills what is left of the group and releases it (its cgroup is removed
 * once empty).  NULL is fine. */
void contain_group_free(struct contain_group *g);

/* Kills every process any group still has, and, with the subreaper,
 * every descendant the worker has left, stops reaping and releases the
 * containment once its last group is freed.  NULL is fine. */
void contain_close(struct contain *c);

#endif
