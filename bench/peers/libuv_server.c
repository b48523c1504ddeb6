/*
 * libuv_server.c -- the sockit protocol written the way a libuv user would:
 * uv_listen/uv_accept/uv_read_start/uv_write, one uv_tcp_t per connection,
 * reads into one static buffer (the loop is single-threaded).
 *
 * Usage: libuv_server once|line|udp PORT   (127.0.0.1; PORT 0 picks one and
 * prints "port N" on stdout), or libuv_server once|line -U PATH: the same
 * on a Unix stream socket, libuv's pipes (uv_pipe_t), printing "unix PATH".
 *
 * once: the first read (at most 1024 bytes) gets "Received: " + data, then
 *       the connection is closed once the write completes; EOF before any
 *       data gets "Received: ".
 * line: "Received: " + line per \n-terminated line, pipelined; a final
 *       unterminated line is answered at EOF; reading stops while more than
 *       64 KiB of replies are queued (backpressure); a line over 64 KiB
 *       closes the connection.
 * udp:  one datagram "Received: " + data back per datagram, received with
 *       libuv's recvmmsg batching (UV_UDP_RECVMMSG).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define PREFIX "Received: "
#define PREFIX_LEN 10
#define ONCE_MAX 1024
#define MAX_LINE (64 * 1024)
#define MAX_PENDING (64 * 1024)
#define UDP_SLOTS 16

struct conn {
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;	    /* the stream: TCP, or a pipe with -U */
	char *part; /* carried partial line */
	size_t part_len;
	int answered; /* once: the reply is on its way */
	int closing;  /* line: close after the last write */
	int paused;
	unsigned writes; /* writes not completed yet */
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_pipe_t pipe_server;
static int use_pipe;
static uv_udp_t udp;
static int mode_line;
static char rbuf[MAX_LINE + 65536];
static char udp_buf[UDP_SLOTS * 65536];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(rbuf, 65536);
}

static void on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	free(c->part);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->h))
		uv_close((uv_handle_t *)&c->h, on_closed);
}

static void line_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;

	free(w);
	c->writes--;
	if (status < 0 || !mode_line || (c->closing && !c->writes)) {
		conn_close(c);
		return;
	}
	if (c->paused && uv_stream_get_write_queue_size((uv_stream_t *)&c->h) < MAX_PENDING) {
		c->paused = 0;
		(void)uv_read_start((uv_stream_t *)&c->h, on_alloc, line_read);
	}
}

/* Queues len bytes at w->data; returns a libuv error or 0. */
static int conn_write(struct conn *c, struct wreq *w, size_t len)
{
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	int r;

	w->c = c;
	r = uv_write(&w->req, (uv_stream_t *)&c->h, &b, 1, on_written);
	if (r == 0)
		c->writes++;
	return r;
}

static struct wreq *wreq_new(size_t len)
{
	return malloc(sizeof(struct wreq) + len);
}

static void once_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct wreq *w;

	if (n == 0 || c->answered)
		return;
	if (n < 0 && n != UV_EOF) {
		conn_close(c);
		return;
	}
	if (n == UV_EOF)
		n = 0;
	if (n > ONCE_MAX)
		n = ONCE_MAX;
	c->answered = 1;
	uv_read_stop(s);
	w = wreq_new(PREFIX_LEN + (size_t)n);
	if (!w) {
		conn_close(c);
		return;
	}
	memcpy(w->data, PREFIX, PREFIX_LEN);
	memcpy(w->data + PREFIX_LEN, buf->base, (size_t)n);
	if (conn_write(c, w, PREFIX_LEN + (size_t)n) < 0) {
		free(w);
		conn_close(c);
	}
}

/* Counts the replies' size for data[0..len), which starts with no partial. */
static size_t line_out_size(const char *data, size_t len, size_t *complete)
{
	size_t i, out = 0, start = 0;

	for (i = 0; i < len; i++) {
		if (data[i] == '\n') {
			out += PREFIX_LEN + i + 1 - start;
			start = i + 1;
		}
	}
	*complete = start;
	return out;
}

static void line_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	const char *data = buf->base;
	size_t len, complete, out, i, start = 0, o = 0;
	struct wreq *w;

	if (n == 0)
		return;
	if (n == UV_EOF) {
		uv_read_stop(s);
		c->closing = 1;
		if (!c->part_len) {
			if (!c->writes)
				conn_close(c);
			return; /* closed by on_written after the last write */
		}
		w = wreq_new(PREFIX_LEN + c->part_len);
		if (!w) {
			conn_close(c);
			return;
		}
		memcpy(w->data, PREFIX, PREFIX_LEN);
		memcpy(w->data + PREFIX_LEN, c->part, c->part_len);
		if (conn_write(c, w, PREFIX_LEN + c->part_len) < 0) {
			free(w);
			conn_close(c);
		}
		return;
	}
	if (n < 0) {
		conn_close(c);
		return;
	}
	len = (size_t)n;
	if (c->part_len) { /* rbuf has room after the chunk for the joined line */
		memmove(rbuf + c->part_len, rbuf, len);
		memcpy(rbuf, c->part, c->part_len);
		len += c->part_len;
	}
	out = line_out_size(data, len, &complete);
	if (len - complete > MAX_LINE) {
		conn_close(c);
		return;
	}
	if (out) {
		w = wreq_new(out);
		if (!w) {
			conn_close(c);
			return;
		}
		for (i = 0; i < complete; i++) {
			if (data[i] != '\n')
				continue;
			memcpy(w->data + o, PREFIX, PREFIX_LEN);
			memcpy(w->data + o + PREFIX_LEN, data + start, i + 1 - start);
			o += PREFIX_LEN + i + 1 - start;
			start = i + 1;
		}
		if (conn_write(c, w, out) < 0) {
			free(w);
			conn_close(c);
			return;
		}
	}
	if (c->part_len || len > complete) {
		char *p = NULL;
		if (len > complete) {
			p = malloc(len - complete);
			if (!p) {
				conn_close(c);
				return;
			}
			memcpy(p, data + complete, len - complete);
		}
		free(c->part);
		c->part = p;
		c->part_len = len - complete;
	}
	if (uv_stream_get_write_queue_size(s) >= MAX_PENDING) {
		c->paused = 1;
		uv_read_stop(s);
	}
}

static void on_connection(uv_stream_t *srv, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	if (use_pipe) {
		uv_pipe_init(loop, &c->h.pipe, 0);
		c->h.pipe.data = c;
	} else {
		uv_tcp_init(loop, &c->h.tcp);
		c->h.tcp.data = c;
	}
	if (uv_accept(srv, (uv_stream_t *)&c->h) < 0) {
		conn_close(c);
		return;
	}
	(void)uv_read_start((uv_stream_t *)&c->h, on_alloc, mode_line ? line_read : once_read);
}

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(udp_buf, sizeof(udp_buf));
}

static void on_sent(uv_udp_send_t *req, int status)
{
	(void)status;
	free(req);
}

static void udp_read(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr,
		     unsigned flags)
{
	static char out[65536 + PREFIX_LEN] = PREFIX;
	size_t len;
	uv_buf_t b;

	(void)flags;
	if (n < 0 || !addr)
		return; /* n == 0 && !addr: nothing more to read */
	len = PREFIX_LEN + (size_t)n;
	if (len > 65507)
		len = 65507;
	memcpy(out + PREFIX_LEN, buf->base, len - PREFIX_LEN);
	b = uv_buf_init(out, (unsigned)len);
	if (uv_udp_try_send(h, &b, 1, addr) == UV_EAGAIN) {
		uv_udp_send_t *req = malloc(sizeof(*req) + len);
		if (!req)
			return;
		memcpy(req + 1, out, len);
		b = uv_buf_init((char *)(req + 1), (unsigned)len);
		if (uv_udp_send(req, h, &b, 1, addr, on_sent) < 0)
			free(req);
	}
}

static int serve_pipe(const char *path)
{
	int r;

	use_pipe = 1;
	(void)unlink(path);
	uv_pipe_init(loop, &pipe_server, 0);
	r = uv_pipe_bind(&pipe_server, path);
	if (!r)
		r = uv_listen((uv_stream_t *)&pipe_server, 4096, on_connection);
	if (r) {
		fprintf(stderr, "libuv_server: %s: %s\n", path, uv_strerror(r));
		return 1;
	}
	printf("unix %s\n", path);
	fflush(stdout);
	return uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	int namelen = sizeof(sa), r;

	if ((argc != 3 && !(argc == 4 && !strcmp(argv[2], "-U"))) ||
	    (strcmp(argv[1], "once") && strcmp(argv[1], "line") && strcmp(argv[1], "udp")) ||
	    (argc == 4 && !strcmp(argv[1], "udp"))) {
		fprintf(stderr, "usage: libuv_server once|line|udp PORT | once|line -U PATH\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	mode_line = !strcmp(argv[1], "line");
	if (argc == 4)
		return serve_pipe(argv[3]);
	uv_ip4_addr("127.0.0.1", atoi(argv[2]), &sa);
	if (!strcmp(argv[1], "udp")) {
		uv_udp_init_ex(loop, &udp, AF_INET | UV_UDP_RECVMMSG);
		r = uv_udp_bind(&udp, (struct sockaddr *)&sa, UV_UDP_REUSEADDR);
		if (!r)
			r = uv_udp_recv_start(&udp, udp_alloc, udp_read);
		if (!r)
			r = uv_udp_getsockname(&udp, (struct sockaddr *)&sa, &namelen);
	} else {
		uv_tcp_init(loop, &server);
		r = uv_tcp_bind(&server, (struct sockaddr *)&sa, 0);
		if (!r)
			r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
		if (!r)
			r = uv_tcp_getsockname(&server, (struct sockaddr *)&sa, &namelen);
	}
	if (r) {
		fprintf(stderr, "libuv_server: %s\n", uv_strerror(r));
		return 1;
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	return uv_run(loop, UV_RUN_DEFAULT);
}
