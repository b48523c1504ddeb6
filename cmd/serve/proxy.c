/* proxy.c -- --proxy-protocol: a PROXY header (v1 or v2) first; then its client is the client.
 *
 * The balancer's connection is admitted at accept by --proxy-from and
 * --max-conns only; --allow/--deny, --max-conns-per-ip and the logs wait
 * for the header's address.  A v2 LOCAL header (HAProxy's health checks)
 * is served with the socket's own addresses, without those checks, and
 * counted as proxy_local.  The header is parsed by libsockit's pure
 * sockit_proxy_parse; a bad, truncated or slow one closes the connection
 * with its own reason and nothing sent.
 *
 * Costs: plaintext, the header usually comes with the request, so the
 * mode's first read takes both (no extra system call); the bytes after
 * the header are the request.  With TLS the handshake must start at the
 * first byte after the header, which OpenSSL reads from the socket
 * itself: the header is peeked, then exactly its bytes are consumed (one
 * recv more per connection, next to a handshake).  A header that comes in
 * pieces waits in a struct conn, bounded by proxy_timeout_ms.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "sockit_proxy.h"

#define V1_MAX 107 /* a v1 line, CRLF included, at most */
/* Draining: the listeners close this long after the first refused health
 * check (what the balancer routed before it took us out arrives), or
 * after DEREG_MAX_MS without one (no balancer checks us). */
#define DEREG_GRACE_MS 300
#define DEREG_MAX_MS 2000
#define V2_FIXED 16

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

int proxy_from_allows(const struct serve_config *cfg, const sockit_addr *peer)
{
	for (size_t i = 0; i < cfg->nproxy_from; i++)
		if (sockit_cidr_match(&cfg->proxy_from[i], peer) == 1)
			return 1;
	return 0;
}

/* What is wrong with a header sockit_proxy_parse() called bad. */
static int bad_reason(const unsigned char *p, size_t n)
{
	if (memcmp(p, "PROXY ", n < 6 ? n : 6) == 0)
		return n >= V1_MAX && memchr(p, '\n', V1_MAX) == NULL ? R_PROXY_OVERSIZED
								      : R_PROXY_MALFORMED;
	if (memcmp(p, v2_sig, n < sizeof(v2_sig) ? n : sizeof(v2_sig)) == 0) {
		size_t total = n >= V2_FIXED ? V2_FIXED + ((size_t)p[14] << 8 | p[15]) : 0;
		return total > SOCKIT_PROXY_MAX ? R_PROXY_OVERSIZED : R_PROXY_MALFORMED;
	}
	return R_PROXY_MISSING;
}

static const char *bad_words(int reason)
{
	switch (reason) {
	case R_PROXY_MISSING:
		return "no PROXY header";
	case R_PROXY_MALFORMED:
		return "malformed PROXY header";
	case R_PROXY_OVERSIZED:
		return "oversized PROXY header";
	case R_PROXY_TRUNCATED:
		return "closed before the end of its PROXY header";
	default:
		return "PROXY header";
	}
}

/* The address noted at accept (the balancer), if any. */
static const sockit_addr *noted_peer(const struct worker *w, int fd)
{
	if ((size_t)fd < w->npeers && w->peers[fd].addr.len > 0)
		return &w->peers[fd].addr;
	return NULL;
}

/* Closes a connection whose header failed, with reason; nothing is sent. */
static void proxy_fail(struct worker *w, struct conn *c, int fd, int reason)
{
	char addr[SOCKIT_ADDRSTRLEN] = "?";
	sockit_addr a;
	const sockit_addr *peer = noted_peer(w, fd);
	if (peer == NULL && sockit_getpeername(fd, &a) == 0)
		peer = &a;
	if (peer != NULL)
		sockit_addr_format(peer, addr, sizeof(addr));
	struct log_fields f = {"proxy_failed", fd, addr, NULL, NULL};
	serve_log_limited(&w->rl_hello, LOG_WARN, &f, "connection from %s: %s", addr,
			  bad_words(reason));
	if (c != NULL)
		conn_close(w, c, reason);
	else
		conn_close_bare(w, fd, NULL, reason, 0);
}

/* The header named a client that --allow/--deny or --max-conns-per-ip
 * refuses: counted as refused only, as if refused at accept. */
static void proxy_refuse(struct worker *w, struct conn *c, int fd, const sockit_addr *client,
			 const char *reason, const char *why)
{
	CTR_SUB(w, accepted, 1);
	CTR_SUB(w, active, 1);
	if (w->log->level >= LOG_WARN) {
		char addr[SOCKIT_ADDRSTRLEN];
		sockit_addr_format(client, addr, sizeof(addr));
		struct log_fields f = {"refused", -1, addr, reason, NULL};
		serve_log_limited(&w->rl_refused, LOG_WARN, &f, "refused %s: %s", addr, why);
	}
	if (c != NULL) {
		c->flags |= F_COUNTED;
		conn_close(w, c, R_DONE);
		return;
	}
	sockit_close(fd);
	if (w->draining)
		conn_check_drained(w);
}

static void log_local(struct worker *w, int fd)
{
	char addr[SOCKIT_ADDRSTRLEN] = "?";
	const sockit_addr *peer = noted_peer(w, fd);
	if (peer != NULL)
		sockit_addr_format(peer, addr, sizeof(addr));
	struct log_fields f = {"accepted", fd, addr, "proxy_local", NULL};
	serve_log_event(w->log, LOG_DEBUG, &f,
			"accepted fd %d from %s (PROXY LOCAL: a health check)", fd, addr);
}

/* ---- Draining behind a balancer ----------------------------------------------- */

/* A SIGTERM closes the listeners at once, and a client whose handshake the
 * kernel completed just before is reset: behind a balancer, a connection
 * it saw established fail, which no retry saves.  So with
 * --proxy-protocol the balancer is told first: the listeners stay open
 * (everyone is still served) while health checks are refused, and close
 * DEREG_GRACE_MS after the first refused one -- the balancer has taken
 * this server out by then (contrib/haproxy: tcp-check, fall 1) -- or after
 * DEREG_MAX_MS if none comes. */
int proxy_deregister(struct worker *w)
{
	/* After an upgrade the listeners are the new process's: it answers
	 * the checks and accepts what is queued, so this one just stops. */
	if (!w->cfg->proxy || w->tcp_fd < 0 ||
	    __atomic_load_n(&w->sh->handed_over, __ATOMIC_ACQUIRE))
		return 0;
	w->deregistering = 1;
	if (w->id == 0)
		serve_log(w->log, LOG_INFO,
			  "draining behind a load balancer: serving on while its health "
			  "checks are refused, for up to %d ms",
			  DEREG_MAX_MS);
	uint64_t ms = __atomic_load_n(&w->sh->check_refused, __ATOMIC_ACQUIRE) ? DEREG_GRACE_MS
									       : DEREG_MAX_MS;
	w->dereg_at = sockit_loop_now_ms(w->loop) + ms;
	sockit_timer_start(w->loop, &w->dereg_timer, ms, 0);
	return 1;
}

static void dereg_end(struct worker *w)
{
	w->deregistering = 0;
	sockit_timer_stop(w->loop, &w->dereg_timer);
	accept_drain(w);
	conn_check_drained(w);
}

void proxy_on_dereg(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	dereg_end(t->data);
}

/* A wake while deregistering: forced, or another worker refused a check. */
void proxy_dereg_check(struct worker *w, int force)
{
	if (force) {
		dereg_end(w);
		return;
	}
	uint64_t soon = sockit_loop_now_ms(w->loop) + DEREG_GRACE_MS;
	if (__atomic_load_n(&w->sh->check_refused, __ATOMIC_ACQUIRE) && w->dereg_at > soon) {
		w->dereg_at = soon;
		sockit_timer_start(w->loop, &w->dereg_timer, DEREG_GRACE_MS, 0);
	}
}

/* A health check while draining: closed unanswered, so that the balancer
 * takes this server out; the other workers learn that one was. */
static void refuse_check(struct worker *w, struct conn *c, int fd)
{
	if (!__atomic_exchange_n(&w->sh->check_refused, 1, __ATOMIC_ACQ_REL)) {
		serve_log(w->log, LOG_INFO,
			  "draining: refusing the balancer's health checks; closing the "
			  "listeners in %d ms",
			  DEREG_GRACE_MS);
		for (int i = 0; i < w->sh->nworkers; i++)
			if (&w->sh->workers[i] != w)
				sockit_loop_wake(w->sh->workers[i].loop);
	}
	proxy_dereg_check(w, 0);
	if (c != NULL)
		conn_close(w, c, R_DONE);
	else
		conn_close_bare(w, fd, NULL, R_DONE, 0);
}

/* The header is whole: the client's checks, then TLS or the mode, with
 * the n bytes read after the header (plaintext only) as its first input. */
static void proxy_done(struct worker *w, struct conn *c, int fd, const sockit_proxy_hdr *h,
		       char *data, size_t n)
{
	const struct serve_config *cfg = w->cfg;
	struct ip_entry *ip = NULL;
	if (h->local && w->deregistering) {
		refuse_check(w, c, fd);
		return;
	}
	if (h->local) {
		CTR_ADD(w, proxy_local, 1);
		if (w->log->level >= LOG_DEBUG)
			log_local(w, fd);
	} else {
		if ((cfg->nallow > 0 || cfg->ndeny > 0) && !serve_acl_allows(cfg, &h->src)) {
			CTR_ADD(w, refused_denied, 1);
			proxy_refuse(w, c, fd, &h->src, "denied", "denied by --allow/--deny");
			return;
		}
		if (w->sh->ips != NULL && (ip = ip_table_acquire(w->sh->ips, &h->src)) == NULL) {
			CTR_ADD(w, refused_perip, 1);
			proxy_refuse(w, c, fd, &h->src, "max_conns_per_ip",
				     "--max-conns-per-ip reached");
			return;
		}
		sockit_addr via = {0};
		const sockit_addr *balancer = noted_peer(w, fd);
		if (balancer != NULL)
			via = *balancer;
		if (w->log->level >= LOG_DEBUG)
			conn_log_accepted(w, fd, &h->src, balancer != NULL ? &via : NULL, NULL);
		else
			conn_note_peer(w, fd, &h->src, NULL); /* for the TLS failure lines */
	}
	if (c != NULL)
		c->ip = ip;
	if (w->sh->tls != NULL) {
		tls_start(w, fd, ip, c);
	} else if (cfg->mode == MODE_ONCE) {
		/* The request goes where once mode reads it, as one read of
		 * up to --max-bytes would have returned it. */
		if (n > cfg->max_bytes)
			n = cfg->max_bytes;
		memmove(w->rbuf + cfg->prefix_len, data, n);
		once_begin(w, c, fd, ip, (ssize_t)n);
	} else {
		stream_begin(w, c, fd, ip, data, n);
	}
}

/* The header is not whole yet: its bytes so far (buf[0..len), all of them
 * header) wait in c->in until the rest comes. */
static void proxy_wait(struct worker *w, struct conn *c, int fd, const char *buf, size_t len)
{
	int fresh = c == NULL;
	if (fresh) {
		if ((c = conn_new(w, fd, NULL)) == NULL) {
			conn_close_bare(w, fd, NULL, R_LIMIT, 0);
			return;
		}
		c->state = ST_PROXY;
		conn_wait_header(w, c);
	}
	if (c->in != NULL)
		c->in->len = c->in->off = 0;
	if (len > 0 && iobuf_append(&c->in, buf, len) < 0) {
		conn_close(w, c, R_LIMIT);
		return;
	}
	if (fresh)
		conn_watch(w, c, SOCKIT_READABLE, conn_event);
}

/* One look at the socket without taking anything: no library call peeks
 * with a single attempt, so this is recv(2) itself. */
static ssize_t peek(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = recv(fd, buf, len, MSG_PEEK | MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

/* Reads header bytes into buf after the have already there: plaintext,
 * as many as the mode's first read takes; with TLS, only header bytes.
 * Returns the header's length (> 0; *got: the bytes in buf), 0 to wait,
 * or -reason (the connection must close). */
static int header_read(struct worker *w, int fd, char *buf, size_t have, size_t *got,
		       sockit_proxy_hdr *h)
{
	int tls = w->sh->tls != NULL;
	size_t room = tls ? SOCKIT_PROXY_MAX
			  : (w->cfg->mode == MODE_ONCE ? w->cfg->max_bytes + SOCKIT_PROXY_MAX
						       : w->rbuf_size);
	ssize_t n = tls ? peek(fd, buf + have, room - have)
			: io_recv(NULL, fd, buf + have, room - have);
	if (n == -EAGAIN)
		return 0;
	if (n <= 0)
		return -R_PROXY_TRUNCATED;
	int r = sockit_proxy_parse(buf, have + (size_t)n, h);
	if (r == SOCKIT_PROXY_BAD)
		return -bad_reason((const unsigned char *)buf, have + (size_t)n);
	/* With TLS take what is the header's, no more: all of it while
	 * incomplete, else up to its end. */
	size_t take = r == SOCKIT_PROXY_INCOMPLETE ? (size_t)n : (size_t)r - have;
	if (tls && io_recv(NULL, fd, buf + have, take) != (ssize_t)take)
		return -R_PROXY_TRUNCATED;
	*got = tls ? have + take : have + (size_t)n;
	return r == SOCKIT_PROXY_INCOMPLETE ? 0 : r;
}

/* The header's bytes: the first ones (c NULL: at accept), or more of a
 * header that came in pieces. */
static void proxy_read(struct worker *w, struct conn *c, int fd)
{
	char *buf = w->rbuf + w->cfg->prefix_len;
	size_t have = 0, got = 0;
	if (c != NULL && c->in != NULL) {
		have = c->in->len;
		memcpy(buf, c->in->data, have);
	}
	sockit_proxy_hdr h;
	int r = header_read(w, fd, buf, have, &got, &h);
	if (r < 0) {
		proxy_fail(w, c, fd, -r);
		return;
	}
	if (r == 0) {
		if (got > have || c == NULL)
			proxy_wait(w, c, fd, buf, got > have ? got : have);
		return;
	}
	if (c != NULL) {
		free(c->in);
		c->in = NULL;
	}
	proxy_done(w, c, fd, &h, buf + r, got - (size_t)r);
}

void proxy_start(struct worker *w, int fd, const sockit_addr *peer)
{
	if (peer != NULL)
		conn_note_peer(w, fd, peer, NULL);
	else if ((size_t)fd < w->npeers)
		w->peers[fd].addr.len = 0; /* no one's address from an earlier connection */
	proxy_read(w, NULL, fd);
}

void proxy_event(struct worker *w, struct conn *c)
{
	proxy_read(w, c, c->fd);
}
