/* SPDX-License-Identifier: MIT
 *
 * Unit tests for common/hf_spclient.c, the worker's client (nuv_client_*),
 * over real sockets.  A tiny REP peer runs on a thread of the test: it
 * accepts one connection at a time and answers each request as its body
 * says (echo it, hold it until "release", answer late, hang up, send a
 * reply over the client's limit or with a bad id); another variant greets
 * with a bad SP header.  Each test also checks the client against the
 * real server (nuv_server_open) where it matters: the wire is nng's.
 * No timing is asserted: timeouts are short and the waits generous.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "hf_nuv.h"
#include "hf_spwire.h"
#include "hf_util.h"

#define RECV_MAX 4096

/* ---- the test's REP peer (its own thread, blocking sockets) ---- */

struct peer {
	int lfd;
	bool ipc, bad_hello;
	char url[160];
	char path[108];
	pthread_t th;
	int accepted; /* connections taken */
	pthread_mutex_t mu;
};

static bool read_all(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* send(MSG_NOSIGNAL): a client that hung up (the bad-header test's does,
 * and reconnects) must not kill the test with SIGPIPE. */
static bool write_all(int fd, const void *buf, size_t len)
{
	for (size_t put = 0; put < len;) {
		ssize_t n = send(fd, (const char *)buf + put, len - put, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		put += (size_t)n;
	}
	return true;
}

/* Writes a reply frame: head (IPC's type byte), length, id, body. */
static bool peer_reply(struct peer *p, int fd, const uint8_t id[4], const void *body, size_t len, uint64_t claim)
{
	uint8_t head[13];
	size_t h = p->ipc ? 9 : 8;

	head[0] = 1;
	hf_be64_put(head + h - 8, claim ? claim : len + 4);
	memcpy(head + h, id, 4);
	return write_all(fd, head, h + 4) && write_all(fd, body, len);
}

/* Serves one connection until it ends or a request says to hang up. */
static void peer_serve(struct peer *p, int fd)
{
	/* A bad peer greets with a REQ's header, as the client does. */
	const uint8_t *greeting = p->bad_hello ? hf_sp_req_header : hf_sp_rep_header;
	uint8_t hello[HF_SP_HEADER_LEN], held_id[4] = { 0 };
	bool holding = false;
	size_t h = p->ipc ? 9 : 8;

	if (!write_all(fd, greeting, HF_SP_HEADER_LEN) || !read_all(fd, hello, HF_SP_HEADER_LEN))
		return;
	ck_assert_mem_eq(hello, hf_sp_req_header, HF_SP_HEADER_LEN);
	for (;;) {
		uint8_t head[9], id[4], body[256];
		uint64_t len = 0;
		if (!read_all(fd, head, h))
			return;
		if (p->ipc)
			ck_assert_uint_eq(head[0], 1);
		len = hf_be64_get(head + h - 8);
		ck_assert(len >= 4 && len - 4 < sizeof(body));
		if (!read_all(fd, id, 4) || !read_all(fd, body, len - 4))
			return;
		ck_assert(id[0] & 0x80);
		len -= 4;
		body[len] = 0;
		if (strcmp((char *)body, "hold") == 0) {
			memcpy(held_id, id, 4);
			holding = true;
		} else if (strcmp((char *)body, "release") == 0) {
			/* Answers the later request first: matched by id. */
			peer_reply(p, fd, id, "released", 8, 0);
			if (holding)
				peer_reply(p, fd, held_id, "held", 4, 0);
			holding = false;
		} else if (strcmp((char *)body, "late") == 0) {
			usleep(300 * 1000);
			peer_reply(p, fd, id, "late", 4, 0);
		} else if (strcmp((char *)body, "drop") == 0) {
			return;
		} else if (strcmp((char *)body, "big") == 0) {
			peer_reply(p, fd, id, "xxxx", 4, RECV_MAX + 100);
		} else if (strcmp((char *)body, "badid") == 0) {
			uint8_t low[4] = { 0, 0, 0, 1 };
			peer_reply(p, fd, low, "bad", 3, 0);
		} else {
			peer_reply(p, fd, id, body, len, 0);
		}
	}
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	for (;;) {
		int fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&p->mu);
		p->accepted++;
		pthread_mutex_unlock(&p->mu);
		peer_serve(p, fd);
		close(fd);
	}
}

static int peer_accepted(struct peer *p)
{
	pthread_mutex_lock(&p->mu);
	int n = p->accepted;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* A socket bound to a free loopback port, and the port. */
static int tcp_listener(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static void peer_start(struct peer *p, bool ipc, bool bad_hello)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	p->ipc = ipc;
	p->bad_hello = bad_hello;
	if (ipc) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(p->path, sizeof(p->path), "/tmp/hf-spclient-%d-%p.sock", (int)getpid(), (void *)p);
		unlink(p->path);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->path);
		p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		snprintf(p->url, sizeof(p->url), "ipc://%s", p->path);
	} else {
		int port;
		p->lfd = tcp_listener(&port);
		snprintf(p->url, sizeof(p->url), "tcp://127.0.0.1:%d", port);
	}
	ck_assert_int_eq(listen(p->lfd, 8), 0);
	ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(struct peer *p)
{
	shutdown(p->lfd, SHUT_RDWR);
	close(p->lfd);
	pthread_join(p->th, NULL);
	if (p->ipc)
		unlink(p->path);
}

/* A TCP URL nobody listens on: a free port, closed again. */
static void unused_tcp_url(char *url, size_t len)
{
	int port, fd = tcp_listener(&port);

	close(fd);
	snprintf(url, len, "tcp://127.0.0.1:%d", port);
}

/* ---- the client's side ---- */

struct result {
	bool done;
	int rv;
	char body[64];
};

static void reply_cb(int rv, nng_msg *reply, void *arg)
{
	struct result *r = arg;

	ck_assert(!r->done); /* exactly once */
	r->done = true;
	r->rv = rv;
	if (reply) {
		size_t n = nng_msg_len(reply) < sizeof(r->body) - 1 ? nng_msg_len(reply) : sizeof(r->body) - 1;
		memcpy(r->body, nng_msg_body(reply), n);
		nng_msg_free(reply);
	}
}

static void call(nuv_client_t *c, const char *body, int timeout_ms, struct result *r)
{
	nng_msg *msg;

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(nng_msg_alloc(&msg, 0), 0);
	ck_assert_int_eq(nng_msg_append(msg, body, strlen(body)), 0);
	ck_assert_int_eq(nuv_client_call(c, msg, timeout_ms, reply_cb, r), 0);
}

static void guard_cb(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until every result in rs is done (or 10 s: a failure). */
static void wait_for(uv_loop_t *loop, struct result **rs, size_t n)
{
	uv_timer_t guard;
	bool expired = false, all = false;

	uv_timer_init(loop, &guard);
	guard.data = &expired;
	uv_timer_start(&guard, guard_cb, 10000, 0);
	while (!all && !expired) {
		uv_run(loop, UV_RUN_ONCE);
		all = true;
		for (size_t i = 0; i < n; i++)
			all &= rs[i]->done;
	}
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	ck_assert_msg(all, "calls not done in 10 s");
}

static void wait1(uv_loop_t *loop, struct result *r)
{
	wait_for(loop, &r, 1);
}

static nuv_client_t *open_client(uv_loop_t *loop, const char *url)
{
	nuv_client_t *c = NULL;
	char err[256];

	ck_assert_msg(nuv_client_open(loop, url, NULL, RECV_MAX, &c, err, sizeof(err)) == 0, "%s", err);
	return c;
}

static void close_client(uv_loop_t *loop, nuv_client_t *c)
{
	nuv_client_close(c);
	uv_run(loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* What most tests start with: the peer, a loop, a client of the peer. */
struct rig {
	struct peer p;
	uv_loop_t loop;
	nuv_client_t *c;
};

static void rig_open(struct rig *r, bool ipc, bool bad_hello)
{
	peer_start(&r->p, ipc, bad_hello);
	uv_loop_init(&r->loop);
	r->c = open_client(&r->loop, r->p.url);
}

static void rig_close(struct rig *r)
{
	close_client(&r->loop, r->c);
	peer_stop(&r->p);
}

/* Two calls outstanding, answered in the other order: each gets its own
 * reply.  Then an ordinary call on the same connection. */
static void check_matching(bool ipc)
{
	struct rig r;
	struct result a, b, e;

	rig_open(&r, ipc, false);
	call(r.c, "hold", 5000, &a);
	call(r.c, "release", 5000, &b);
	wait_for(&r.loop, (struct result *[]){ &a, &b }, 2);
	ck_assert_int_eq(a.rv, 0);
	ck_assert_str_eq(a.body, "held");
	ck_assert_int_eq(b.rv, 0);
	ck_assert_str_eq(b.body, "released");
	call(r.c, "hello", 5000, &e);
	wait1(&r.loop, &e);
	ck_assert_int_eq(e.rv, 0);
	ck_assert_str_eq(e.body, "hello");
	ck_assert_int_eq(peer_accepted(&r.p), 1);
	rig_close(&r);
}

START_TEST(test_replies_matched_by_id_tcp)
{
	check_matching(false);
}
END_TEST

START_TEST(test_replies_matched_by_id_ipc)
{
	check_matching(true);
}
END_TEST

/* A call times out; its reply, coming later, is dropped, and the next
 * call on the same connection gets its own reply. */
START_TEST(test_timeout_then_late_reply_dropped)
{
	struct rig r;
	struct result a, b;

	rig_open(&r, false, false);
	call(r.c, "late", 50, &a);
	wait1(&r.loop, &a);
	ck_assert_int_eq(a.rv, -ETIMEDOUT);
	call(r.c, "after", 5000, &b); /* queued behind the late reply */
	wait1(&r.loop, &b);
	ck_assert_int_eq(b.rv, 0);
	ck_assert_str_eq(b.body, "after");
	ck_assert_int_eq(peer_accepted(&r.p), 1);
	rig_close(&r);
}
END_TEST

/* The peer hangs up with two calls outstanding: both fail with
 * -ECONNRESET, and the next call connects again and is answered. */
static void check_drop(bool ipc)
{
	struct rig r;
	struct result a, b, e;

	rig_open(&r, ipc, false);
	call(r.c, "hold", 5000, &a);
	call(r.c, "drop", 5000, &b);
	wait_for(&r.loop, (struct result *[]){ &a, &b }, 2);
	ck_assert_int_eq(a.rv, -ECONNRESET);
	ck_assert_int_eq(b.rv, -ECONNRESET);
	call(r.c, "again", 5000, &e);
	wait1(&r.loop, &e);
	ck_assert_int_eq(e.rv, 0);
	ck_assert_str_eq(e.body, "again");
	ck_assert_int_eq(peer_accepted(&r.p), 2);
	rig_close(&r);
}

START_TEST(test_drop_fails_outstanding_and_reconnects_tcp)
{
	check_drop(false);
}
END_TEST

START_TEST(test_drop_fails_outstanding_and_reconnects_ipc)
{
	check_drop(true);
}
END_TEST

/* A reply claiming more than recv_max, or with an id lacking its high
 * bit, closes the connection (the call fails), and the next call is
 * answered on a new one. */
static void check_bad_reply(const char *what)
{
	struct rig r;
	struct result a, b;

	rig_open(&r, false, false);
	call(r.c, what, 5000, &a);
	wait1(&r.loop, &a);
	ck_assert_int_eq(a.rv, -ECONNRESET);
	call(r.c, "fine", 5000, &b);
	wait1(&r.loop, &b);
	ck_assert_int_eq(b.rv, 0);
	ck_assert_str_eq(b.body, "fine");
	ck_assert_int_eq(peer_accepted(&r.p), 2);
	rig_close(&r);
}

START_TEST(test_oversize_reply_closes)
{
	check_bad_reply("big");
}
END_TEST

START_TEST(test_bad_id_closes)
{
	check_bad_reply("badid");
}
END_TEST

/* A peer that greets with a REQ's header instead of a REP's: the client
 * never takes a reply from it; the call times out, nothing crashes, and
 * it keeps trying (more than one connection). */
START_TEST(test_garbage_header)
{
	struct rig r;
	struct result a;

	rig_open(&r, false, true);
	call(r.c, "echo", 500, &a);
	wait1(&r.loop, &a);
	ck_assert(a.rv == -ETIMEDOUT || a.rv == -ECONNRESET);
	ck_assert_int_ge(peer_accepted(&r.p), 1);
	rig_close(&r);
}
END_TEST

/* Closing with calls outstanding (one queued, never connected; two held
 * by the peer): every callback runs, with -ESHUTDOWN, before close
 * returns. */
START_TEST(test_close_with_calls_outstanding)
{
	struct rig r;
	struct result a, b, e;

	rig_open(&r, false, false);
	call(r.c, "warm", 5000, &e);
	wait1(&r.loop, &e);
	call(r.c, "hold", 5000, &a);
	call(r.c, "hold", 5000, &b);
	for (int i = 0; i < 20; i++)
		uv_run(&r.loop, UV_RUN_NOWAIT);
	nuv_client_close(r.c);
	ck_assert(a.done && b.done);
	ck_assert_int_eq(a.rv, -ESHUTDOWN);
	ck_assert_int_eq(b.rv, -ESHUTDOWN);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
	peer_stop(&r.p);

	/* Never connected: the call waits in the queue, and close ends it. */
	uv_loop_t loop;
	char url[64];
	unused_tcp_url(url, sizeof(url));
	uv_loop_init(&loop);
	nuv_client_t *c = open_client(&loop, url);
	call(c, "nobody", 60000, &a);
	uv_run(&loop, UV_RUN_NOWAIT);
	nuv_client_close(c);
	ck_assert(a.done);
	ck_assert_int_eq(a.rv, -ESHUTDOWN);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* A list whose first address has nobody listening: the second is used;
 * a call made before any connection waits for it. */
START_TEST(test_second_url_used)
{
	struct peer p;
	uv_loop_t loop;
	struct result a;
	char nobody[64], urls[400];

	unused_tcp_url(nobody, sizeof(nobody));
	peer_start(&p, false, false);
	snprintf(urls, sizeof(urls), "%s,%s", nobody, p.url);
	uv_loop_init(&loop);
	nuv_client_t *c = open_client(&loop, urls);
	call(c, "standby", 5000, &a);
	wait1(&loop, &a);
	ck_assert_int_eq(a.rv, 0);
	ck_assert_str_eq(a.body, "standby");
	close_client(&loop, c);
	peer_stop(&p);
}
END_TEST

/* Against the real server (hf_spserver.c) on TCP and IPC: many calls
 * outstanding at once, each answered with its own body. */
static void server_echo_cb(nuv_request_t *req, nng_msg *msg, void *arg)
{
	(void)arg;
	nuv_reply(req, msg);
}

static void check_real_server(const char *url)
{
	uv_loop_t loop;
	nuv_server_t *srv;
	struct result r[6], *rs[6];
	char body[16];

	uv_loop_init(&loop);
	ck_assert_int_eq(nuv_server_open(&loop, url, NULL, 16, 0, server_echo_cb, NULL, &srv), 0);
	nuv_client_t *c = open_client(&loop, url);
	for (int i = 0; i < 6; i++) {
		snprintf(body, sizeof(body), "call %d", i);
		call(c, body, 5000, &r[i]);
		rs[i] = &r[i];
	}
	wait_for(&loop, rs, 6);
	for (int i = 0; i < 6; i++) {
		snprintf(body, sizeof(body), "call %d", i);
		ck_assert_int_eq(r[i].rv, 0);
		ck_assert_str_eq(r[i].body, body);
	}
	nuv_client_close(c);
	nuv_server_close(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

START_TEST(test_real_server_tcp_and_ipc)
{
	char url[128];

	unused_tcp_url(url, sizeof(url));
	check_real_server(url);
	snprintf(url, sizeof(url), "ipc:///tmp/hf-spclient-srv-%d.sock", (int)getpid());
	check_real_server(url);
	unlink(url + 6);
}
END_TEST

static Suite *spclient_suite(void)
{
	Suite *s = suite_create("spclient");
	TCase *tc = tcase_create("client");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_replies_matched_by_id_tcp);
	tcase_add_test(tc, test_replies_matched_by_id_ipc);
	tcase_add_test(tc, test_timeout_then_late_reply_dropped);
	tcase_add_test(tc, test_drop_fails_outstanding_and_reconnects_tcp);
	tcase_add_test(tc, test_drop_fails_outstanding_and_reconnects_ipc);
	tcase_add_test(tc, test_oversize_reply_closes);
	tcase_add_test(tc, test_bad_id_closes);
	tcase_add_test(tc, test_garbage_header);
	tcase_add_test(tc, test_close_with_calls_outstanding);
	tcase_add_test(tc, test_second_url_used);
	tcase_add_test(tc, test_real_server_tcp_and_ipc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spclient_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
