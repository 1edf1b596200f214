/* SPDX-License-Identifier: MIT
 *
 * hfleet-hop-cost: what the machine charges for the hops every task of
 * hfleet makes, measured alone, so that docs/performance.md can say how far
 * a figure is from the floor of the design rather than guess.  A task
 * crosses processes and threads: the worker's loop hands the task to its
 * runner over a pipe and waits for the done line (a process round trip),
 * nng's threads hand each reply to a loop with an eventfd (a thread
 * wake-up), the coordinator's loop hands a database op to the database
 * thread and back (two), the database thread waits for PostgreSQL's reply
 * (a round trip over a unix socket) and a commit waits for the WAL's flush
 * (an fdatasync), amortised over the tasks of a group commit.
 *
 *   hfleet-hop-cost [--rounds N] [--dir DIR]
 *
 * Prints, for each hop, the wall time and the CPU time (both sides, from
 * getrusage of the process and its children) per round, one line each:
 *   pipe round trip between two processes (2 wake-ups)
 *   eventfd round trip between two threads (2 wake-ups)
 *   unix stream socket round trip between two processes (2 wake-ups)
 *   fdatasync of a 4 KiB append to a file in DIR (default .)
 * Performance is measured here, never asserted: the exit status is 0
 * whenever the measurements ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process and its waited-for children. */
static double cpu_s(void)
{
	struct rusage a, b;
	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec) / 1e6;
}

static void report(const char *what, long rounds, double wall0, double cpu0)
{
	double wall = now_s() - wall0, cpu = cpu_s() - cpu0;
	printf("%-52s %8.1f us wall %8.1f us CPU per round\n", what, wall / (double)rounds * 1e6,
	       cpu / (double)rounds * 1e6);
	fflush(stdout);
}

static void die(const char *what)
{
	fprintf(stderr, "hfleet-hop-cost: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void xwrite(int fd, const void *b, size_t n)
{
	if (write(fd, b, n) != (ssize_t)n)
		die("write");
}

static void xread(int fd, void *b, size_t n)
{
	if (read(fd, b, n) != (ssize_t)n)
		die("read");
}

/* Two processes bounce a 64-byte message over a pair of descriptors
 * (pipes or a socketpair): each round is two wake-ups. */
static void process_round_trips(const char *what, int a_out, int a_in, int b_out, int b_in, long rounds)
{
	char msg[64] = { 0 };
	double w0, c0;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		for (long i = 0; i < rounds; i++) {
			xread(b_in, msg, sizeof(msg));
			xwrite(b_out, msg, sizeof(msg));
		}
		_exit(0);
	}
	w0 = now_s();
	c0 = cpu_s();
	for (long i = 0; i < rounds; i++) {
		xwrite(a_out, msg, sizeof(msg));
		xread(a_in, msg, sizeof(msg));
	}
	waitpid(pid, NULL, 0);
	report(what, rounds, w0, c0);
}

struct efd_pair {
	int ping, pong;
	long rounds;
};

static void *efd_echo(void *arg)
{
	struct efd_pair *p = arg;
	uint64_t v;

	for (long i = 0; i < p->rounds; i++) {
		xread(p->ping, &v, sizeof(v));
		xwrite(p->pong, &v, sizeof(v));
	}
	return NULL;
}

static void eventfd_round_trips(long rounds)
{
	struct efd_pair p = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC), rounds };
	pthread_t t;
	uint64_t one = 1, v;
	double w0, c0;

	if (p.ping < 0 || p.pong < 0)
		die("eventfd");
	if (pthread_create(&t, NULL, efd_echo, &p) != 0)
		die("pthread_create");
	w0 = now_s();
	c0 = cpu_s();
	for (long i = 0; i < rounds; i++) {
		xwrite(p.ping, &one, sizeof(one));
		xread(p.pong, &v, sizeof(v));
	}
	pthread_join(t, NULL);
	report("eventfd round trip, two threads (2 wake-ups)", rounds, w0, c0);
	close(p.ping);
	close(p.pong);
}

static void fdatasync_appends(const char *dir, long rounds)
{
	char path[4096], block[4096];
	double w0, c0;
	int fd;

	memset(block, 'x', sizeof(block));
	snprintf(path, sizeof(path), "%s/hfleet-hop-cost.%ld", dir, (long)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(path);
	w0 = now_s();
	c0 = cpu_s();
	for (long i = 0; i < rounds; i++) {
		xwrite(fd, block, sizeof(block));
		if (fdatasync(fd) < 0)
			die("fdatasync");
	}
	report("fdatasync of a 4 KiB append", rounds, w0, c0);
	close(fd);
	unlink(path);
}

int main(int argc, char **argv)
{
	long rounds = 20000;
	const char *dir = ".";
	int p1[2], p2[2], sv[2];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: hfleet-hop-cost [--rounds N] [--dir DIR]\n");
			return 2;
		}
	}
	if (rounds < 1)
		rounds = 1;
	if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0)
		die("pipe");
	process_round_trips("pipe round trip, two processes (2 wake-ups)", p1[1], p2[0], p2[1], p1[0], rounds);
	eventfd_round_trips(rounds);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	process_round_trips("unix socket round trip, two processes (2 wake-ups)", sv[0], sv[0], sv[1], sv[1],
			    rounds);
	fdatasync_appends(dir, rounds / 20 > 0 ? rounds / 20 : 1);
	return 0;
}
