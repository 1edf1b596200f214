/* SPDX-License-Identifier: MIT
 *
 * cgroup v2 for the containment of runners (see cgroup.h): finding where
 * the worker may make cgroups, and the files of one cgroup.
 */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_util.h"

#define CGROUP_FILE_MAX (1024 * 1024)
#define MOUNTINFO_MAX (4 * 1024 * 1024)
/* Rounds of SIGKILL by cgroup.procs before giving up on a cgroup whose
 * processes fork faster than they die. */
#define KILL_PASSES 16

static int file_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int r = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0)
		r = -errno;
	else if ((size_t)n != strlen(text))
		r = -EIO;
	close(fd);
	return r;
}

static int path_fmt(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_fmt(char **ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

int cgroup_move(const char *dir, pid_t pid)
{
	char *procs, buf[32];
	int r;

	if (path_fmt(&procs, "%s/cgroup.procs", dir) < 0)
		return -ENOMEM;
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	r = file_write(procs, buf);
	free(procs);
	return r;
}

int cgroup_path(char **ret, const char *dir, const char *name)
{
	return path_fmt(ret, "%s/%s", dir, name);
}

int cgroup_pids(const char *dir, pid_t **ret, size_t *ret_n)
{
	char *procs, *text = NULL, *p, *end;
	pid_t *pids = NULL;
	size_t n = 0, cap = 0;
	int r;

	if (path_fmt(&procs, "%s/cgroup.procs", dir) < 0)
		return -ENOMEM;
	r = hf_read_file(procs, CGROUP_FILE_MAX, &text, NULL);
	free(procs);
	if (r < 0)
		return r;
	for (p = text; *p; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			pid_t *grown = realloc(pids, ncap * sizeof(*pids));
			if (!grown) {
				free(pids);
				free(text);
				return -ENOMEM;
			}
			pids = grown;
			cap = ncap;
		}
		if (v > 0)
			pids[n++] = (pid_t)v;
	}
	free(text);
	*ret = pids;
	*ret_n = n;
	return 0;
}

bool cgroup_populated(const char *dir)
{
	char *events, *text = NULL;
	bool populated = true;

	if (path_fmt(&events, "%s/cgroup.events", dir) < 0)
		return true;
	if (hf_read_file(events, 4096, &text, NULL) == 0)
		populated = !strstr(text, "populated 0");
	free(text);
	free(events);
	return populated;
}

/* SIGKILLs every process in the cgroup but the caller: with cgroup.kill
 * when use_kill_file (one write, no process can fork away), else by what
 * cgroup.procs lists, again until nothing is left. */
void cgroup_kill(const char *dir, bool use_kill_file)
{
	pid_t self = getpid();

	if (use_kill_file) {
		char *kill_path;
		int r;

		if (path_fmt(&kill_path, "%s/cgroup.kill", dir) < 0)
			return;
		r = file_write(kill_path, "1");
		free(kill_path);
		if (r == 0 || r == -ENOENT)
			return;
		log_warn("could not write cgroup.kill of \"%s\": %s, killing its processes one by one",
			 dir, strerror(-r));
	}
	for (int pass = 0; pass < KILL_PASSES; pass++) {
		pid_t *pids = NULL;
		size_t n = 0, others = 0;

		if (cgroup_pids(dir, &pids, &n) < 0)
			return;
		for (size_t i = 0; i < n; i++) {
			if (pids[i] == self)
				continue;
			kill(pids[i], SIGKILL);
			others++;
		}
		free(pids);
		if (others == 0)
			return;
	}
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void mountinfo_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* The cgroup2 mount: its root within the hierarchy and where it is. */
static int cgroup2_mount(char **ret_root, char **ret_point)
{
	char *text = NULL, *line, *save = NULL;
	int r = hf_read_file("/proc/self/mountinfo", MOUNTINFO_MAX, &text, NULL);

	if (r < 0)
		return r;
	r = -ENOENT;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char root[1024], point[1024], *dash = strstr(line, " - ");
		char fstype[64];

		if (!dash || sscanf(dash + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, point) != 2)
			continue;
		mountinfo_unescape(root);
		mountinfo_unescape(point);
		*ret_root = strdup(root);
		*ret_point = strdup(point);
		if (!*ret_root || !*ret_point) {
			free(*ret_root);
			free(*ret_point);
			r = -ENOMEM;
		} else {
			r = 0;
		}
		break;
	}
	free(text);
	return r;
}

/* The worker's cgroup v2 path ("0::/a/b"). */
static int own_cgroup(char **ret)
{
	char *text = NULL, *p, *nl;
	int r = hf_read_file("/proc/self/cgroup", 64 * 1024, &text, NULL);

	if (r < 0)
		return r;
	p = strncmp(text, "0::", 3) == 0 ? text : strstr(text, "\n0::");
	if (!p) {
		free(text);
		return -ENOENT;
	}
	p += *p == '\n' ? 4 : 3;
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	*ret = strdup(p);
	free(text);
	return *ret ? 0 : -ENOMEM;
}

static bool cgroup_delegated(const char *dir)
{
	char v[16];

	if (getxattr(dir, "trusted.delegate", v, sizeof(v)) > 0 ||
	    getxattr(dir, "user.delegate", v, sizeof(v)) > 0)
		return true;
	/* Only a delegation gives a user other than root write access. */
	return geteuid() != 0 && access(dir, W_OK) == 0;
}

void cgroup_layout_find(struct cgroup_layout *layout, bool forced)
{
	char *mnt_root = NULL, *mnt_point = NULL, *own = NULL, *own_dir = NULL, *probe = NULL;
	const char *rel;
	size_t root_len;
	int r;

	r = cgroup2_mount(&mnt_root, &mnt_point);
	if (r < 0) {
		snprintf(layout->why, sizeof(layout->why), "%s",
			 r == -ENOENT ? "no cgroup v2 hierarchy is mounted" : strerror(-r));
		goto out;
	}
	r = own_cgroup(&own);
	if (r < 0) {
		snprintf(layout->why, sizeof(layout->why), "the worker's cgroup v2 is unknown: %s",
			 strerror(-r));
		goto out;
	}
	root_len = strcmp(mnt_root, "/") == 0 ? 0 : strlen(mnt_root);
	if (strncmp(own, mnt_root, root_len) != 0 || (own[root_len] != '/' && own[root_len])) {
		snprintf(layout->why, sizeof(layout->why),
			 "the worker's cgroup \"%s\" is outside the mounted hierarchy", own);
		goto out;
	}
	rel = own + root_len;
	if (!*rel || strcmp(rel, "/") == 0) {
		/* The root of what we see: a subtree of our own beside the
		 * rest; the root may hold processes. */
		if (path_fmt(&layout->home, "%s", mnt_point) < 0 ||
		    path_fmt(&layout->base, "%s/hfleet-worker-%d", mnt_point, (int)getpid()) < 0)
			goto oom;
		layout->base_owned = true;
		if (mkdir(layout->base, 0755) < 0 && errno != EEXIST) {
			snprintf(layout->why, sizeof(layout->why), "could not make cgroup \"%s\": %s",
				 layout->base, strerror(errno));
			goto out;
		}
	} else {
		if (path_fmt(&own_dir, "%s%s", mnt_point, rel) < 0)
			goto oom;
		if (!forced && !cgroup_delegated(own_dir)) {
			snprintf(layout->why, sizeof(layout->why),
				 "the worker's cgroup \"%s\" is not delegated to it (Delegate=yes)",
				 own_dir);
			goto out;
		}
		if (path_fmt(&layout->home, "%s/worker", own_dir) < 0)
			goto oom;
		layout->base = own_dir;
		own_dir = NULL;
		if (mkdir(layout->home, 0755) < 0 && errno != EEXIST) {
			snprintf(layout->why, sizeof(layout->why), "could not make cgroup \"%s\": %s",
				 layout->home, strerror(errno));
			goto out;
		}
	}
	/* The worker must be able to move itself: into its home now. */
	r = cgroup_move(layout->home, getpid());
	if (r < 0) {
		snprintf(layout->why, sizeof(layout->why), "could not move the worker into \"%s\": %s",
			 layout->home, strerror(-r));
		goto out;
	}
	if (path_fmt(&probe, "%s/cgroup.kill", layout->base) < 0)
		goto oom;
	layout->has_kill = access(probe, W_OK) == 0;
	layout->usable = true;
	goto out;
oom:
	snprintf(layout->why, sizeof(layout->why), "out of memory");
out:
	if (!layout->usable) {
		free(layout->base);
		free(layout->home);
		layout->base = layout->home = NULL;
	}
	free(probe);
	free(own_dir);
	free(own);
	free(mnt_root);
	free(mnt_point);
}
