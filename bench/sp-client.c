/* SPDX-License-Identifier: MIT
 *
 * The fleet simulator's SP REQ client over libuv TCP (see sp-client.h).
 * Loop thread only.
 */
#include "sp-client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_spwire.h"
#include "hf_util.h"

#define MAX_CALLS 8
#define FRAME_MAX (64u << 20)


struct sp_call {
	uint32_t id;            /* 0: free */
	int64_t sent_ms;
	int extra_ms; /* waits this much longer than others (a held poll) */
	nuv_reply_cb cb;
	void *arg;
};

struct sp_client {
	uv_loop_t *loop;
	struct sockaddr_in addr;
	uv_tcp_t *tcp;          /* NULL: not connected */
	bool connected;         /* connect done (writes may go) */
	uint32_t next_id;
	struct sp_call calls[MAX_CALLS];
	uint8_t *in;            /* received, not yet parsed */
	size_t in_len, in_cap;
	bool header_seen;
	/* Frames queued while the connection is being made. */
	uv_buf_t *queued;
	size_t n_queued;
};

struct write_req {
	uv_write_t w;
	uv_buf_t buf;
};

static void fail_all(struct sp_client *c, int rv)
{
	for (int i = 0; i < MAX_CALLS; i++)
		if (c->calls[i].id) {
			struct sp_call k = c->calls[i];
			c->calls[i].id = 0;
			k.cb(rv, NULL, k.arg);
		}
}

static void tcp_free_cb(uv_handle_t *h)
{
	free(h);
}

static void disconnect(struct sp_client *c, int rv)
{
	if (c->tcp) {
		uv_close((uv_handle_t *)c->tcp, tcp_free_cb);
		c->tcp = NULL;
	}
	c->connected = false;
	c->header_seen = false;
	c->in_len = 0;
	for (size_t i = 0; i < c->n_queued; i++)
		free(c->queued[i].base);
	free(c->queued);
	c->queued = NULL;
	c->n_queued = 0;
	fail_all(c, rv);
}

static void write_cb(uv_write_t *w, int status)
{
	struct write_req *r = (struct write_req *)w;

	(void)status; /* a failed write shows as a read error too */
	free(r->buf.base);
	free(r);
}

static int send_buf(struct sp_client *c, uv_buf_t buf)
{
	struct write_req *r = malloc(sizeof(*r));
	int rv;

	if (!r) {
		free(buf.base);
		return -ENOMEM;
	}
	r->buf = buf;
	rv = uv_write(&r->w, (uv_stream_t *)c->tcp, &r->buf, 1, write_cb);
	if (rv < 0) {
		free(buf.base);
		free(r);
	}
	return rv;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct sp_client *c = h->data;
	size_t want = c->in_len + (suggested < 65536 ? 65536 : suggested);

	if (want > c->in_cap) {
		uint8_t *p = realloc(c->in, want);
		if (!p) {
			buf->base = NULL;
			buf->len = 0;
			return;
		}
		c->in = p;
		c->in_cap = want;
	}
	buf->base = (char *)c->in + c->in_len;
	buf->len = c->in_cap - c->in_len;
}

/* Parses whole frames out of c->in; false when the connection broke the
 * framing (it is then closed). */
static bool parse(struct sp_client *c)
{
	size_t off = 0;

	if (!c->header_seen) {
		if (c->in_len < HF_SP_HEADER_LEN)
			return true;
		if (memcmp(c->in, hf_sp_rep_header, HF_SP_HEADER_LEN) != 0)
			return false;
		c->header_seen = true;
		off = HF_SP_HEADER_LEN;
	}
	while (c->in_len - off >= 8) {
		uint64_t n = hf_be64_get(c->in + off);
		uint32_t id;
		nng_msg *m;

		if (n < 4 || n > FRAME_MAX)
			return false;
		if (c->in_len - off - 8 < n)
			break;
		id = hf_be32_get(c->in + off + 8);
		for (int i = 0; i < MAX_CALLS; i++)
			if (c->calls[i].id == id) {
				struct sp_call k = c->calls[i];
				c->calls[i].id = 0;
				if (nng_msg_alloc(&m, (size_t)n - 4) != 0) {
					k.cb(-ENOMEM, NULL, k.arg);
					break;
				}
				memcpy(nng_msg_body(m), c->in + off + 12, (size_t)n - 4);
				k.cb(0, m, k.arg);
				break;
			}
		/* A reply to a call that timed out is dropped. */
		off += 8 + (size_t)n;
		if (!c->tcp)
			return true; /* a callback disconnected */
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return true;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct sp_client *c = s->data;

	(void)buf;
	if (nread < 0) {
		disconnect(c, -ECONNRESET);
		return;
	}
	c->in_len += (size_t)nread;
	if (!parse(c))
		disconnect(c, -EPROTO);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct sp_client *c = req->data;
	uv_tcp_t *tcp = (uv_tcp_t *)req->handle;

	free(req);
	if (tcp != c->tcp)
		return; /* given up meanwhile */
	if (status < 0) {
		disconnect(c, -ECONNREFUSED);
		return;
	}
	c->connected = true;
	uv_read_start((uv_stream_t *)c->tcp, alloc_cb, read_cb);
	for (size_t i = 0; i < c->n_queued; i++)
		send_buf(c, c->queued[i]);
	free(c->queued);
	c->queued = NULL;
	c->n_queued = 0;
}

static int dial(struct sp_client *c)
{
	uv_connect_t *req = malloc(sizeof(*req));
	uv_buf_t hdr = uv_buf_init(malloc(HF_SP_HEADER_LEN), HF_SP_HEADER_LEN);
	uv_buf_t *q = malloc(sizeof(*q));
	int rv;

	c->tcp = malloc(sizeof(*c->tcp));
	if (!req || !hdr.base || !q || !c->tcp) {
		free(req);
		free(hdr.base);
		free(q);
		free(c->tcp);
		c->tcp = NULL;
		return -ENOMEM;
	}
	uv_tcp_init(c->loop, c->tcp);
	uv_tcp_nodelay(c->tcp, 1);
	c->tcp->data = c;
	req->data = c;
	memcpy(hdr.base, hf_sp_req_header, HF_SP_HEADER_LEN);
	q[0] = hdr;
	c->queued = q;
	c->n_queued = 1;
	rv = uv_tcp_connect(req, c->tcp, (const struct sockaddr *)&c->addr, connect_cb);
	if (rv < 0) {
		free(req);
		disconnect(c, rv);
	}
	return rv;
}

int sp_client_open(uv_loop_t *loop, const char *url, struct sp_client **ret)
{
	struct sp_client *c;
	char host[64];
	unsigned port;

	if (sscanf(url, "tcp://%63[0-9.]:%u", host, &port) != 2 || port == 0 || port > 65535)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (uv_ip4_addr(host, (int)port, &c->addr) < 0) {
		free(c);
		return -EINVAL;
	}
	c->loop = loop;
	c->next_id = (uint32_t)rand();
	*ret = c;
	return 0;
}

int sp_client_call(struct sp_client *c, nng_msg *msg, int extra_ms, nuv_reply_cb cb, void *arg)
{
	size_t len = nng_msg_len(msg);
	uv_buf_t buf;
	int slot = -1, rv;
	uint32_t id;

	for (int i = 0; i < MAX_CALLS && slot < 0; i++)
		if (!c->calls[i].id)
			slot = i;
	if (slot < 0) {
		nng_msg_free(msg);
		return -EBUSY;
	}
	if (!c->tcp && (rv = dial(c)) < 0) {
		nng_msg_free(msg);
		return rv;
	}
	buf = uv_buf_init(malloc(12 + len), (unsigned)(12 + len));
	if (!buf.base) {
		nng_msg_free(msg);
		return -ENOMEM;
	}
	id = (c->next_id++ & 0x7fffffffu) | HF_SP_ID_END;
	for (int i = 0; i < 8; i++)
		buf.base[i] = (char)((uint64_t)(len + 4) >> (56 - 8 * i));
	buf.base[8] = (char)(id >> 24);
	buf.base[9] = (char)(id >> 16);
	buf.base[10] = (char)(id >> 8);
	buf.base[11] = (char)id;
	memcpy(buf.base + 12, nng_msg_body(msg), len);
	nng_msg_free(msg);
	c->calls[slot] = (struct sp_call){ .id = id, .sent_ms = hf_mono_ms(), .extra_ms = extra_ms, .cb = cb, .arg = arg };
	if (!c->connected) {
		uv_buf_t *q = realloc(c->queued, (c->n_queued + 1) * sizeof(*q));
		if (!q) {
			c->calls[slot].id = 0;
			free(buf.base);
			return -ENOMEM;
		}
		c->queued = q;
		c->queued[c->n_queued++] = buf;
		return 0;
	}
	rv = send_buf(c, buf);
	if (rv < 0) {
		c->calls[slot].id = 0;
		return rv;
	}
	return 0;
}

void sp_client_expire(struct sp_client *c, int64_t timeout_ms)
{
	int64_t now = hf_mono_ms();

	for (int i = 0; i < MAX_CALLS; i++)
		if (c->calls[i].id && now - c->calls[i].sent_ms > timeout_ms + c->calls[i].extra_ms) {
			struct sp_call k = c->calls[i];
			c->calls[i].id = 0;
			k.cb(-ETIMEDOUT, NULL, k.arg);
		}
}
