/* SPDX-License-Identifier: MIT
 *
 * Containment of runner processes (see contain.h): choosing the mechanism,
 * a group per runner, the /proc sweep of the subreaper, and reaping the
 * processes re-parented to the worker; the cgroup v2 files are cgroup.c's.
 * The cgroup layout (where the worker lives, where groups go) is the
 * process's, found once; a containment object per executor keeps its
 * groups (and through them the runners libuv waits for) and the cgroups
 * still to remove.
 */
#include "contain.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "hf_log.h"
#include "hf_util.h"

#define GROUP_NAME_MAX 64
#define PROC_STAT_MAX 4096
/* Rounds of SIGSTOP in a sweep before giving up on a process that forks
 * faster than it can be stopped. */
#define SWEEP_PASSES 16
/* How often, and how long, an emptied cgroup is tried again for rmdir. */
#define RMDIR_RETRY_MS 50
#define RMDIR_RETRIES 200
/* At close: how long the last cgroups may take to empty. */
#define CLOSE_WAIT_MS 1000

struct contain_group {
	struct contain *c;
	struct contain_group *prev, *next;   /* c->groups */
	char name[GROUP_NAME_MAX];
	char *path;                          /* its cgroup; NULL with the subreaper */
	pid_t leader;                        /* the runner; 0 before the spawn */
	bool leader_alive;                   /* libuv has not reaped it */
	bool holds_worker;                   /* the worker could not leave its cgroup */
	int procs_fd;                        /* its cgroup.procs, kept open, or -1 */
};

/* A removed group's cgroup that still had processes. */
struct stale_cgroup {
	struct stale_cgroup *next;
	char *path;
	unsigned tries;
};

/* The process's cgroup layout, found by the first contain_new. */
static struct cgroup_layout layout;
static bool layout_done;

struct contain {
	uv_loop_t *loop;
	enum contain_mode mode;
	bool has_kill;                       /* cgroup.kill */
	struct contain_group *groups;
	size_t n_groups;
	struct stale_cgroup *stale;
	uv_signal_t sigchld;
	uv_timer_t rmdir_timer;
	int open_handles;
	bool closing;
};

/* ---- /proc ---- */

struct proc_entry {
	pid_t pid, ppid, pgid, sid;
	char state;
	bool condemned;
	bool under_leader;   /* a descendant of the sweep's runner */
};

static int proc_stat_read(pid_t pid, struct proc_entry *e)
{
	char path[64], *text = NULL, *p;
	int ppid, pgid, sid;
	char state;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = hf_read_file(path, PROC_STAT_MAX, &text, NULL);
	if (r < 0)
		return r;
	/* The command name may hold anything, ')' too: the fields follow
	 * the last one. */
	p = strrchr(text, ')');
	if (!p || sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgid, &sid) != 4) {
		free(text);
		return -EBADMSG;
	}
	free(text);
	*e = (struct proc_entry){ .pid = pid, .ppid = ppid, .pgid = pgid, .sid = sid, .state = state };
	return 0;
}

/* Every process /proc shows (malloc'd). */
static int proc_scan(struct proc_entry **ret, size_t *ret_n)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct proc_entry *list = NULL;
	size_t n = 0, cap = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		struct proc_entry e;

		if (*end || pid <= 0 || proc_stat_read((pid_t)pid, &e) < 0)
			continue; /* not a process, or gone meanwhile */
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct proc_entry *grown = realloc(list, ncap * sizeof(*list));
			if (!grown) {
				free(list);
				closedir(d);
				return -ENOMEM;
			}
			list = grown;
			cap = ncap;
		}
		list[n++] = e;
	}
	closedir(d);
	*ret = list;
	*ret_n = n;
	return 0;
}

static bool contain_is_leader(const struct contain *c, pid_t pid)
{
	for (const struct contain_group *g = c->groups; g; g = g->next)
		if (g->leader_alive && g->leader == pid)
			return true;
	return false;
}

/* The group whose runner leads the session (or process group) of e. */
static const struct contain_group *contain_owner(const struct contain *c,
						  const struct proc_entry *e)
{
	for (const struct contain_group *g = c->groups; g; g = g->next)
		if (g->leader > 0 && (g->leader == e->sid || g->leader == e->pgid))
			return g;
	return NULL;
}

/* Reaps the adopted processes that have exited: never a runner libuv
 * waits for.  Every adopted child is asked, whatever state /proc showed
 * (the kernel signals the parent a moment before /proc shows the zombie,
 * while waitpid waits for it). */
static void contain_reap(struct contain *c, const struct proc_entry *list, size_t n)
{
	pid_t self = getpid();

	for (size_t i = 0; i < n; i++) {
		const struct proc_entry *e = &list[i];
		if (e->ppid != self || contain_is_leader(c, e->pid))
			continue;
		while (waitpid(e->pid, NULL, WNOHANG) < 0 && errno == EINTR)
			;
	}
}

enum sweep_what {
	SWEEP_GROUP,    /* the group's and no one's */
	SWEEP_ESCAPED,  /* no one's: left their session */
	SWEEP_ALL,      /* every descendant of the worker */
};

/* Marks the descendants of pid (under_leader). */
static void mark_descendants(struct proc_entry *list, size_t n, pid_t pid)
{
	bool grew;

	do {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			struct proc_entry *e = &list[i];
			if (e->under_leader)
				continue;
			for (size_t j = 0; j < n; j++) {
				if (list[j].pid == e->ppid && (list[j].under_leader || e->ppid == pid)) {
					e->under_leader = true;
					grew = true;
					break;
				}
			}
		}
	} while (grew);
}

/* Marks what the sweep takes; returns how many are newly condemned. */
static size_t sweep_mark(const struct contain *c, const struct contain_group *g,
			 enum sweep_what what, struct proc_entry *list, size_t n)
{
	pid_t self = getpid();
	size_t marked = 0;
	bool grew;

	if (what == SWEEP_ESCAPED && g && g->leader_alive)
		mark_descendants(list, n, g->leader);

	for (size_t i = 0; i < n; i++) {
		struct proc_entry *e = &list[i];
		bool take = false;

		if (e->state == 'Z' || e->pid == self)
			continue;
		if (what == SWEEP_ALL) {
			take = e->ppid == self;
		} else if (e->under_leader) {
			/* The runner's own descendant that left its session. */
			take = e->sid != g->leader;
		} else if (g && e->pid == g->leader) {
			/* The runner itself: only when the whole group goes
			 * (its children that left its session go with it). */
			take = what == SWEEP_GROUP && g->leader_alive;
		} else if (g && g->leader > 0 && what == SWEEP_GROUP && e->sid == g->leader) {
			take = true;
		} else if (e->ppid == self && !contain_is_leader(c, e->pid)) {
			const struct contain_group *owner = contain_owner(c, e);
			take = !owner || (what == SWEEP_GROUP && owner == g);
		}
		if (take && !e->condemned) {
			e->condemned = true;
			marked++;
		}
	}
	/* And all their descendants. */
	do {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			struct proc_entry *e = &list[i];
			if (e->condemned || e->state == 'Z')
				continue;
			for (size_t j = 0; j < n; j++) {
				if (list[j].condemned && list[j].pid == e->ppid) {
					e->condemned = true;
					marked++;
					grew = true;
					break;
				}
			}
		}
	} while (grew);
	return marked;
}

/* The subreaper's sweep: stops what it takes until no new process
 * appears, then kills all of it. */
static void contain_sweep(struct contain *c, const struct contain_group *g, enum sweep_what what)
{
	pid_t *stopped = NULL;
	size_t n_stopped = 0, cap = 0;

	for (int pass = 0; pass < SWEEP_PASSES; pass++) {
		struct proc_entry *list = NULL;
		size_t n = 0, fresh = 0;

		if (proc_scan(&list, &n) < 0) {
			log_warn("could not read /proc to find the processes left by runners, ignoring");
			break;
		}
		contain_reap(c, list, n);
		sweep_mark(c, g, what, list, n);
		for (size_t i = 0; i < n; i++) {
			bool known = false;
			if (!list[i].condemned)
				continue;
			for (size_t j = 0; j < n_stopped && !known; j++)
				known = stopped[j] == list[i].pid;
			if (known)
				continue;
			if (n_stopped == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				pid_t *grown = realloc(stopped, ncap * sizeof(*stopped));
				if (!grown)
					break;
				stopped = grown;
				cap = ncap;
			}
			kill(list[i].pid, SIGSTOP);
			stopped[n_stopped++] = list[i].pid;
			fresh++;
		}
		free(list);
		if (fresh == 0)
			break;
	}
	for (size_t i = 0; i < n_stopped; i++)
		kill(stopped[i], SIGKILL);
	if (n_stopped)
		log_debug("killed %zu process%s left behind by %s%s", n_stopped,
			  n_stopped == 1 ? "" : "es", g ? "runner " : "runners",
			  g ? g->name : "");
	free(stopped);
}

/* ---- cgroups ---- */

/* Whether pid descends from the worker (its parents, up to a bound). */
static bool descends_from_worker(pid_t pid)
{
	pid_t self = getpid();
	struct proc_entry e;

	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		if (proc_stat_read(pid, &e) < 0)
			return false;
		if (e.ppid == self)
			return true;
		pid = e.ppid;
	}
	return false;
}

/* In a delegated cgroup, the worker's own cgroup and its leaf hold the
 * worker alone: a descendant of the worker there is a runner's process
 * that moved itself out of its group (a runner of the worker's user may
 * write cgroup.procs), and dies.  (systemd may run a control process such
 * as ExecReload's in the unit's cgroup: not a descendant, it is left
 * alone.)  At the root of a hierarchy nothing is done: it is shared. */
static void kill_strays(void)
{
	const char *dirs[] = { layout.base, layout.home };
	pid_t self = getpid();

	if (!layout.usable || layout.base_owned)
		return;
	for (size_t d = 0; d < 2; d++) {
		pid_t *pids = NULL;
		size_t n = 0;

		if (cgroup_pids(dirs[d], &pids, &n) < 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (pids[i] == self || !descends_from_worker(pids[i]))
				continue;
			log_warn("killing pid %d, which a runner moved into the worker's cgroup \"%s\"",
				 (int)pids[i], dirs[d]);
			kill(pids[i], SIGKILL);
		}
		free(pids);
	}
}

static void group_cgroup_kill(const struct contain_group *g)
{
	cgroup_kill(g->path, g->c->has_kill && !g->holds_worker);
}

/* Sends sig to every process in the cgroup that is not in the leader's
 * process group (contain_signal signals that group itself, and a process
 * should not get the signal twice); with only_escaped, to those not in the
 * leader's session. */
static void cgroup_signal(const struct contain_group *g, int sig, bool only_escaped)
{
	pid_t *pids = NULL, self = getpid();
	size_t n = 0;

	if (cgroup_pids(g->path, &pids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct proc_entry e;

		if (pids[i] == self || pids[i] == g->leader || proc_stat_read(pids[i], &e) < 0)
			continue;
		if (only_escaped ? e.sid == g->leader : e.pgid == g->leader)
			continue;
		kill(pids[i], sig);
	}
	free(pids);
}

static void rmdir_timer_cb(uv_timer_t *h);

/* Removes a group's cgroup, or keeps trying while its processes exit. */
static void cgroup_remove(struct contain *c, char *path)
{
	struct stale_cgroup *s;

	if (rmdir(path) == 0 || errno == ENOENT) {
		free(path);
		return;
	}
	if (errno != EBUSY) {
		log_warn("could not remove cgroup \"%s\": %s, ignoring", path, strerror(errno));
		free(path);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		free(path);
		return;
	}
	s->path = path;
	s->next = c->stale;
	c->stale = s;
	if (!c->closing && !uv_is_active((uv_handle_t *)&c->rmdir_timer))
		uv_timer_start(&c->rmdir_timer, rmdir_timer_cb, RMDIR_RETRY_MS, RMDIR_RETRY_MS);
}

/* One more try at each stale cgroup; returns how many are left. */
static size_t stale_retry(struct contain *c, bool last)
{
	struct stale_cgroup **pp = &c->stale;
	size_t left = 0;

	while (*pp) {
		struct stale_cgroup *s = *pp;
		bool gone = rmdir(s->path) == 0 || errno == ENOENT;

		if (!gone && errno == EBUSY && ++s->tries < RMDIR_RETRIES && !last) {
			/* Something still lives there: kill it again. */
			cgroup_kill(s->path, c->has_kill);
			pp = &s->next;
			left++;
			continue;
		}
		if (!gone)
			log_warn("could not remove cgroup \"%s\": %s, leaving it", s->path,
				 strerror(errno));
		*pp = s->next;
		free(s->path);
		free(s);
	}
	return left;
}

static void rmdir_timer_cb(uv_timer_t *h)
{
	struct contain *c = h->data;

	if (stale_retry(c, false) == 0)
		uv_timer_stop(&c->rmdir_timer);
}

/* ---- choosing the mechanism ---- */

/* Groups an earlier worker left in dir (it crashed): their processes
 * die, their cgroups go. */
static void clean_stale_groups(struct contain *c, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *path;

		if (de->d_type != DT_DIR ||
		    (strncmp(de->d_name, "task-", 5) != 0 && strncmp(de->d_name, "check-", 6) != 0 &&
		     strncmp(de->d_name, "warm-", 5) != 0))
			continue;
		if (cgroup_path(&path, dir, de->d_name) < 0)
			break;
		log_info("killing what is left in cgroup \"%s\", from an earlier run", path);
		cgroup_kill(path, c->has_kill);
		cgroup_remove(c, path);
	}
	closedir(d);
}

/* At the root: the subtrees of workers that are gone (/hfleet-worker-PID
 * without a process PID), with whatever their groups still hold. */
static void clean_dead_workers(struct contain *c, const char *root)
{
	DIR *d = opendir(root);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end, *dir, proc[64];
		long pid;

		if (de->d_type != DT_DIR || strncmp(de->d_name, "hfleet-worker-", 14) != 0)
			continue;
		pid = strtol(de->d_name + 14, &end, 10);
		snprintf(proc, sizeof(proc), "/proc/%ld", pid);
		if (*end || pid <= 0 || access(proc, F_OK) == 0)
			continue;
		if (cgroup_path(&dir, root, de->d_name) < 0)
			break;
		clean_stale_groups(c, dir);
		stale_retry(c, false);
		if (!c->stale && rmdir(dir) < 0 && errno != ENOENT)
			log_warn("could not remove cgroup \"%s\" of a worker that is gone: %s, ignoring",
				 dir, strerror(errno));
		free(dir);
	}
	closedir(d);
}

/* ---- reaping ---- */

static void sigchld_cb(uv_signal_t *h, int signum)
{
	struct contain *c = h->data;
	struct proc_entry *list = NULL;
	size_t n = 0;

	(void)signum;
	if (proc_scan(&list, &n) == 0)
		contain_reap(c, list, n);
	free(list);
}

/* ---- the containment ---- */

const char *contain_mode_name(enum contain_mode mode)
{
	return mode == CONTAIN_CGROUP ? "cgroup" : "subreaper";
}

enum contain_mode contain_mode(const struct contain *c)
{
	return c->mode;
}

int contain_new(uv_loop_t *loop, struct contain **ret)
{
	const char *want = getenv("HFLEET_CONTAIN");
	bool force_cgroup = false, force_subreaper = false;
	bool subreaper;
	struct contain *c;

	if (want && *want && strcmp(want, "auto") != 0) {
		force_cgroup = strcmp(want, "cgroup") == 0;
		force_subreaper = strcmp(want, "subreaper") == 0;
		if (!force_cgroup && !force_subreaper)
			log_warn("HFLEET_CONTAIN=\"%s\" is neither cgroup, subreaper nor auto, ignoring",
				 want);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
	if (!subreaper)
		log_warn("could not make the worker a child subreaper: %s", strerror(errno));
	if (!force_subreaper && !layout_done) {
		cgroup_layout_find(&layout, force_cgroup);
		layout_done = true;
	}
	if (!force_subreaper && layout.usable) {
		c->mode = CONTAIN_CGROUP;
		c->has_kill = layout.has_kill;
		log_info("runner processes are contained by cgroup v2: a cgroup per task under "
			 "\"%s\", killed with %s",
			 layout.base, c->has_kill ? "cgroup.kill" : "SIGKILL to each of cgroup.procs");
	} else {
		c->mode = CONTAIN_SUBREAPER;
		log_info("runner processes are contained by the worker as child subreaper and a "
			 "sweep of what it adopts%s%s%s",
			 force_subreaper ? " (HFLEET_CONTAIN=subreaper)" : "",
			 !force_subreaper && layout.why[0] ? "; no cgroup: " : "",
			 !force_subreaper ? layout.why : "");
		if (!subreaper)
			log_warn("without the subreaper, a process that leaves its runner's process "
				 "group can outlive its task");
	}
	uv_signal_init(loop, &c->sigchld);
	c->sigchld.data = c;
	uv_signal_start(&c->sigchld, sigchld_cb, SIGCHLD);
	uv_unref((uv_handle_t *)&c->sigchld);
	uv_timer_init(loop, &c->rmdir_timer);
	c->rmdir_timer.data = c;
	c->open_handles = 2;
	if (c->mode == CONTAIN_CGROUP && layout.base_owned && mkdir(layout.base, 0755) < 0 &&
	    errno != EEXIST)
		log_warn("could not make cgroup \"%s\": %s", layout.base, strerror(errno));
	if (c->mode == CONTAIN_CGROUP && !layout.base_owned)
		clean_stale_groups(c, layout.base);
	if (c->mode == CONTAIN_CGROUP && layout.base_owned)
		clean_dead_workers(c, layout.home);
	*ret = c;
	return 0;
}

/* A cgroup subtree of our own goes with the last group of a closed
 * containment (the next contain_new of this process makes it again). */
static void contain_base_remove(struct contain *c)
{
	if (c->mode == CONTAIN_CGROUP && layout.base_owned && c->n_groups == 0 && !c->stale &&
	    rmdir(layout.base) < 0 && errno != ENOENT && errno != EBUSY)
		log_warn("could not remove cgroup \"%s\": %s, ignoring", layout.base,
			 strerror(errno));
}

static void contain_free(struct contain *c)
{
	free(c);
}

static void contain_handle_closed_cb(uv_handle_t *h)
{
	struct contain *c = h->data;

	if (--c->open_handles == 0 && c->n_groups == 0)
		contain_free(c);
}

static bool group_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= GROUP_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

int contain_group_new(struct contain *c, const char *name, struct contain_group **ret)
{
	struct contain_group *g;
	int r;

	if (c->closing)
		return -ESHUTDOWN;
	if (!group_name_valid(name))
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->c = c;
	g->procs_fd = -1;
	hf_strlcpy(g->name, name, sizeof(g->name));
	if (c->mode == CONTAIN_CGROUP) {
		if (cgroup_path(&g->path, layout.base, name) < 0) {
			free(g);
			return -ENOMEM;
		}
		r = mkdir(g->path, 0755) < 0 ? -errno : 0;
		if (r == -EEXIST) {
			/* Left by an earlier attempt of the same name. */
			group_cgroup_kill(g);
			rmdir(g->path);
			r = mkdir(g->path, 0755) < 0 && errno != EEXIST ? -errno : 0;
		}
		if (r < 0) {
			log_error("could not make cgroup \"%s\": %s", g->path, strerror(-r));
			free(g->path);
			free(g);
			return r;
		}
	}
	g->next = c->groups;
	if (c->groups)
		c->groups->prev = g;
	c->groups = g;
	c->n_groups++;
	*ret = g;
	return 0;
}

int contain_spawn_enter(struct contain_group *g)
{
	int r;

	if (!g->path)
		return 0;
	r = cgroup_move(g->path, getpid());
	if (r < 0)
		log_error("could not enter cgroup \"%s\" to start a runner there: %s", g->path,
			  strerror(-r));
	return r;
}

void contain_spawn_leave(struct contain_group *g, pid_t pid)
{
	if (g->path) {
		int r = cgroup_move(layout.home, getpid());
		for (int i = 0; r < 0 && i < 3; i++)
			r = cgroup_move(layout.home, getpid());
		if (r < 0) {
			/* Never cgroup.kill the worker with its runner. */
			g->holds_worker = true;
			log_error("could not move the worker back into \"%s\": %s; it stays in \"%s\"",
				  layout.home, strerror(-r), g->path);
		}
	}
	if (pid > 0) {
		g->leader = pid;
		g->leader_alive = true;
	}
}

void contain_exited(struct contain_group *g)
{
	g->leader_alive = false;
}

void contain_signal(struct contain_group *g, int sig)
{
	if (g->leader > 0 && (g->leader_alive || sig == SIGKILL) && kill(-g->leader, sig) < 0 &&
	    errno != ESRCH)
		log_warn("could not send %s to the process group of runner pid %d: %s",
			 sigabbrev_np(sig) ? sigabbrev_np(sig) : "a signal", (int)g->leader,
			 strerror(errno));
	if (g->path) {
		if (sig == SIGKILL) {
			group_cgroup_kill(g);
			kill_strays();
		} else {
			cgroup_signal(g, sig, false);
		}
	} else if (sig == SIGKILL) {
		contain_sweep(g->c, g, SWEEP_GROUP);
	}
}

/* Whether the group's cgroup holds nothing but its leader, the common case
 * after each task of a warm runner: then there is nothing to look at.  Its
 * cgroup.procs stays open and is read again from the start, one pread
 * instead of an open, a stat, two reads and a close; false (look closer)
 * whenever it cannot tell. */
static bool cgroup_only_leader(struct contain_group *g)
{
	char path[PATH_MAX], text[64], want[24];
	ssize_t n;

	if (g->procs_fd < 0) {
		if (snprintf(path, sizeof(path), "%s/cgroup.procs", g->path) >= (int)sizeof(path))
			return false;
		g->procs_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (g->procs_fd < 0)
			return false;
	}
	do
		n = pread(g->procs_fd, text, sizeof(text) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return false;
	text[n] = '\0';
	snprintf(want, sizeof(want), "%d\n", (int)g->leader);
	return g->leader > 0 && strcmp(text, want) == 0;
}

void contain_kill_escaped(struct contain_group *g)
{
	if (g->path && cgroup_only_leader(g))
		return;
	if (g->path)
		cgroup_signal(g, SIGKILL, true);
	else
		contain_sweep(g->c, g, SWEEP_ESCAPED);
}

void contain_group_free(struct contain_group *g)
{
	struct contain *c;

	if (!g)
		return;
	c = g->c;
	if (g->path || g->leader_alive)
		contain_signal(g, SIGKILL);
	if (g->prev)
		g->prev->next = g->next;
	else
		c->groups = g->next;
	if (g->next)
		g->next->prev = g->prev;
	c->n_groups--;
	if (g->procs_fd >= 0)
		close(g->procs_fd);
	if (g->path && !g->holds_worker)
		cgroup_remove(c, g->path); /* takes the path */
	else
		free(g->path);
	free(g);
	if (c->closing) {
		stale_retry(c, true);
		contain_base_remove(c);
		if (c->n_groups == 0 && c->open_handles == 0)
			contain_free(c);
	}
}

void contain_close(struct contain *c)
{
	if (!c)
		return;
	c->closing = true;
	for (struct contain_group *g = c->groups; g; g = g->next)
		contain_signal(g, SIGKILL);
	if (c->mode == CONTAIN_SUBREAPER)
		contain_sweep(c, NULL, SWEEP_ALL);
	/* The killed need a moment to leave their cgroups. */
	for (int waited = 0; c->stale && waited < CLOSE_WAIT_MS; waited += 10) {
		bool busy = false;
		for (struct stale_cgroup *s = c->stale; s && !busy; s = s->next)
			busy = cgroup_populated(s->path);
		if (!busy)
			break;
		usleep(10000);
	}
	stale_retry(c, true);
	contain_base_remove(c);
	uv_close((uv_handle_t *)&c->sigchld, contain_handle_closed_cb);
	uv_close((uv_handle_t *)&c->rmdir_timer, contain_handle_closed_cb);
}
