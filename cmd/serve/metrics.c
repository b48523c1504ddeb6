/* metrics.c -- the --metrics endpoint: GET /metrics and /healthz on a thread and loop of its own.
 *
 * One response per connection (Connection: close), then a half-close and
 * a bounded wait for the scraper's EOF, so unread input never turns our
 * close into an RST that would overtake the response.  Bounds: the slots
 * below (a scraper beyond them is closed at accept), a 4 KiB request head
 * (http.h), METRICS_TIMEOUT_MS to send it and as much to take the reply:
 * a slowloris scraper holds one slot for 5 s and nothing else.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http.h"
#include "worker.h"

#define ACCEPT_BATCH 16
#define ACCEPT_PAUSE_MS 100 /* after an accept error such as EMFILE */
#define LINGER_BYTES 65536  /* after the reply: discard this much at most */

enum { MC_FREE, MC_READ, MC_WRITE, MC_LINGER };
enum { MCMD_RUN, MCMD_HANDOVER, MCMD_STOP };

struct mconn {
	struct metrics *m;
	int fd;
	int state;
	size_t inlen, off, discarded;
	struct mbuf out;
	sockit_timer timer;
	char in[METRICS_REQ_MAX];
};

struct metrics {
	struct serve_shared *sh;
	const struct serve_log *lg;
	sockit_loop *loop;
	pthread_t thread;
	int lfd;
	int cmd; /* MCMD_*, atomic */
	sockit_timer pause;
	struct mconn conns[METRICS_MAX_CONNS];
};

/* ---- Connections ------------------------------------------------------------- */

static void mconn_close(struct mconn *c)
{
	sockit_timer_stop(c->m->loop, &c->timer);
	sockit_loop_close(c->m->loop, c->fd);
	mbuf_free(&c->out);
	c->fd = -1;
	c->state = MC_FREE;
}

static void on_mconn(sockit_loop *loop, int fd, unsigned events, void *arg);

/* One write; at the end, the half-close and the wait for EOF. */
static void mconn_write(struct mconn *c)
{
	while (c->off < c->out.len) {
		ssize_t n = sockit_try_send(c->fd, c->out.p + c->off, c->out.len - c->off, 0);
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			mconn_close(c);
			return;
		}
		c->off += (size_t)n;
	}
	sockit_shutdown(c->fd, SHUT_WR);
	mbuf_free(&c->out);
	c->state = MC_LINGER;
	sockit_loop_modify(c->m->loop, c->fd, SOCKIT_READABLE);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	default:
		return "Service Unavailable";
	}
}

/* Queues the response and starts writing it. */
static void mconn_respond(struct mconn *c, int status, const char *type, const struct mbuf *body,
			  int head)
{
	mbuf_printf(&c->out,
		    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		    "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
		    status, status_text(status), type, body->len,
		    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head && body->len > 0)
		mbuf_printf(&c->out, "%.*s", (int)body->len, body->p);
	if (c->out.oom) {
		mconn_close(c);
		return;
	}
	c->state = MC_WRITE;
	c->off = 0;
	sockit_timer_start(c->m->loop, &c->timer, METRICS_TIMEOUT_MS, 0);
	sockit_loop_modify(c->m->loop, c->fd, SOCKIT_WRITABLE);
	mconn_write(c);
}

static void mconn_text(struct mconn *c, int status, const char *text)
{
	struct mbuf body = {0};
	mbuf_printf(&body, "%s\n", text);
	mconn_respond(c, status, "text/plain; charset=utf-8", &body, 0);
	mbuf_free(&body);
}

/* A whole request head: the answer. */
static void mconn_route(struct mconn *c, const struct http_req *r)
{
	int get = http_req_is(r, "GET", "/metrics") || http_req_is(r, "GET", "/healthz");
	int head = http_req_is(r, "HEAD", "/metrics") || http_req_is(r, "HEAD", "/healthz");
	int metrics = r->path_len == 8 && memcmp(r->path, "/metrics", 8) == 0;
	int health = r->path_len == 8 && memcmp(r->path, "/healthz", 8) == 0;
	struct mbuf body = {0};
	if (r->has_body) {
		mconn_text(c, 400, "bad request: a body");
	} else if (!metrics && !health) {
		mconn_text(c, 404, "not found: try /metrics or /healthz");
	} else if (!get && !head) {
		mconn_text(c, 405, "method not allowed: GET or HEAD");
	} else if (health) {
		int draining = __atomic_load_n(&c->m->sh->draining, __ATOMIC_RELAXED);
		mbuf_printf(&body, "%s\n", draining ? "draining" : "ok");
		mconn_respond(c, draining ? 503 : 200, "text/plain; charset=utf-8", &body, head);
	} else {
		metrics_render(&body, c->m->sh);
		if (body.oom)
			mconn_close(c);
		else
			mconn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &body,
				      head);
	}
	mbuf_free(&body);
}

static void mconn_read(struct mconn *c)
{
	ssize_t n = sockit_try_recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		mconn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	struct http_req r;
	int rc = http_request_parse(c->in, c->inlen, &r);
	if (rc == HTTP_INCOMPLETE && c->inlen < sizeof(c->in))
		return;
	if (rc < 0)
		mconn_text(c, 400, "bad request");
	else
		mconn_route(c, &r);
}

static void mconn_discard(struct mconn *c)
{
	char buf[4096];
	ssize_t n = sockit_try_recv(c->fd, buf, sizeof(buf));
	if (n == -EAGAIN)
		return;
	c->discarded += n > 0 ? (size_t)n : 0;
	if (n <= 0 || c->discarded > LINGER_BYTES)
		mconn_close(c);
}

static void on_mconn(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)fd;
	struct mconn *c = arg;
	if (c->state == MC_READ)
		mconn_read(c);
	else if (c->state == MC_WRITE)
		mconn_write(c);
	else if (c->state == MC_LINGER && (events & (SOCKIT_READABLE | SOCKIT_HANGUP)))
		mconn_discard(c);
}

static void on_mconn_timer(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	mconn_close(t->data);
}

/* ---- The listener -------------------------------------------------------------- */

static void on_accept(sockit_loop *loop, int lfd, unsigned events, void *arg)
{
	(void)events;
	struct metrics *m = arg;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = sockit_try_accept(lfd, NULL, SOCK_NONBLOCK);
		if (fd == -EAGAIN)
			return;
		if (fd < 0) {
			if (fd == -ECONNABORTED)
				continue;
			sockit_loop_unwatch(loop, lfd); /* EMFILE and the like: a pause */
			sockit_timer_start(loop, &m->pause, ACCEPT_PAUSE_MS, 0);
			return;
		}
		struct mconn *c = NULL;
		for (int k = 0; k < METRICS_MAX_CONNS && c == NULL; k++)
			if (m->conns[k].state == MC_FREE)
				c = &m->conns[k];
		if (c == NULL || sockit_loop_watch(loop, fd, SOCKIT_READABLE, on_mconn, c) < 0) {
			sockit_close(fd); /* full: at once, so the queue cannot grow */
			continue;
		}
		c->fd = fd;
		c->state = MC_READ;
		c->inlen = c->discarded = 0;
		sockit_timer_start(loop, &c->timer, METRICS_TIMEOUT_MS, 0);
	}
}

static void on_pause_over(sockit_loop *loop, sockit_timer *t)
{
	struct metrics *m = t->data;
	if (m->lfd >= 0)
		sockit_loop_watch(loop, m->lfd, SOCKIT_READABLE, on_accept, m);
}

static void close_listener(struct metrics *m)
{
	sockit_timer_stop(m->loop, &m->pause);
	if (m->lfd < 0)
		return;
	/* unwatch first: handed over, the socket lives on in the new process,
	 * and closing our descriptor would not take it out of our epoll set */
	sockit_loop_unwatch(m->loop, m->lfd);
	sockit_close(m->lfd);
	__atomic_store_n(&m->lfd, -1, __ATOMIC_RELAXED);
}

static void on_wake(sockit_loop *loop, void *arg)
{
	struct metrics *m = arg;
	int cmd = __atomic_load_n(&m->cmd, __ATOMIC_ACQUIRE);
	if (cmd >= MCMD_HANDOVER)
		close_listener(m);
	if (cmd >= MCMD_STOP) {
		for (int k = 0; k < METRICS_MAX_CONNS; k++)
			if (m->conns[k].state != MC_FREE)
				mconn_close(&m->conns[k]);
		sockit_loop_stop(loop);
	}
}

static void *metrics_main(void *arg)
{
	struct metrics *m = arg;
	int rc = sockit_loop_run(m->loop);
	if (rc < 0)
		serve_log(m->lg, LOG_ERROR, "metrics: event loop failed: %s", sockit_strerror(rc));
	return NULL;
}

/* ---- What run.c calls ------------------------------------------------------------ */

static int metrics_listen(struct metrics *m, const struct serve_config *cfg, int fd)
{
	if (fd < 0)
		fd = sockit_create_server(cfg->metrics_host, cfg->metrics_port, SOCK_STREAM, 64,
					  SOCKIT_NONBLOCK);
	if (fd < 0) {
		const char *fmt = strchr(cfg->metrics_host, ':') ? "[%s]:%d" : "%s:%d";
		char hp[300];
		snprintf(hp, sizeof(hp), fmt, cfg->metrics_host, cfg->metrics_port);
		serve_log_fail(m->lg, "cannot listen on %s for --metrics: %s%s", hp,
			       sockit_strerror(fd),
			       fd == -EADDRINUSE ? ": pick another port for --metrics" : "");
		return fd;
	}
	m->lfd = fd;
	char addr[SOCKIT_ADDRSTRLEN];
	if (sockit_sockname_str(fd, addr, sizeof(addr)) >= 0)
		serve_log(m->lg, LOG_INFO, "metrics on http://%s/metrics", addr);
	return sockit_loop_watch(m->loop, fd, SOCKIT_READABLE, on_accept, m);
}

int metrics_start(struct metrics **out, const struct serve_config *cfg, struct serve_shared *sh,
		  const struct serve_log *lg, int fd)
{
	*out = NULL;
	struct metrics *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		serve_log_fail(lg, "out of memory");
		return -ENOMEM;
	}
	m->sh = sh;
	m->lg = lg;
	m->lfd = -1;
	for (int k = 0; k < METRICS_MAX_CONNS; k++) {
		m->conns[k].m = m;
		m->conns[k].fd = -1;
		sockit_timer_init(&m->conns[k].timer, on_mconn_timer, &m->conns[k]);
	}
	sockit_timer_init(&m->pause, on_pause_over, m);
	int rc = sockit_loop_new(&m->loop);
	if (rc < 0) {
		serve_log_fail(lg, "cannot create the metrics event loop: %s", sockit_strerror(rc));
		if (fd >= 0)
			sockit_close(fd);
		free(m);
		return rc;
	}
	sockit_loop_on_wake(m->loop, on_wake, m);
	rc = metrics_listen(m, cfg, fd);
	if (rc >= 0) {
		rc = -pthread_create(&m->thread, NULL, metrics_main, m);
		if (rc < 0)
			serve_log_fail(lg, "cannot start the metrics thread: %s",
				       sockit_strerror(rc));
	}
	if (rc < 0) {
		close_listener(m);
		sockit_loop_free(m->loop);
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int metrics_listener(const struct metrics *m)
{
	return m != NULL ? __atomic_load_n(&m->lfd, __ATOMIC_RELAXED) : -1;
}

void metrics_handover(struct metrics *m)
{
	if (m == NULL)
		return;
	__atomic_store_n(&m->cmd, MCMD_HANDOVER, __ATOMIC_RELEASE);
	sockit_loop_wake(m->loop);
}

void metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	__atomic_store_n(&m->cmd, MCMD_STOP, __ATOMIC_RELEASE);
	sockit_loop_wake(m->loop);
	pthread_join(m->thread, NULL);
	sockit_loop_free(m->loop);
	free(m);
}
