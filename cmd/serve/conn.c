/* conn.c -- TCP connections: the pool, buffers, idle and linger lists, how each ends.
 *
 * Costs, per connection that must wait (no request yet, a partial write, a
 * lingering close, any line/echo client): a 96-byte struct conn from a
 * per-worker pool (and on io_uring its receive a 64-byte slot of the
 * loop's), plus buffers only while it has unsent output or an unterminated
 * line.
 *
 * Idle timeouts: every connection sits in one intrusive list ordered by
 * last activity (touch = O(1) move to the tail); one timer per worker fires
 * at the head's deadline.  No per-connection timer.  A connection with a
 * backlog notes what the kernel holds for it (SIOCOUTQ) at each activity:
 * less at the deadline means the client is reading.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "conn.h"
#include "sockit_proxy.h"

#define RBUF_MIN (64 * 1024)	/* read area, at least */
#define WBUF_SIZE (256 * 1024)	/* line mode: replies batched per wake */
#define LINGER_BYTES (1u << 20) /* after the reply: discard this much at most */
#define CONN_CHUNK 256		/* struct conns allocated together */

enum { L_NONE, L_IDLE, L_LINGER, L_HEADER };

struct conn_chunk {
	struct conn_chunk *next;
	struct conn conns[CONN_CHUNK];
};

/* ---- Buffers ----------------------------------------------------------- */

int iobuf_append(struct iobuf **pb, const char *p, size_t n)
{
	struct iobuf *b = *pb;
	if (b != NULL && b->off > 0 && (size_t)b->len + n > b->cap) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	size_t need = (b != NULL ? b->len : 0) + n;
	if (need > UINT32_MAX - 64)
		return -ENOMEM;
	if (b == NULL || need > b->cap) {
		size_t cap = b != NULL ? (size_t)b->cap * 2 : 256;
		if (cap < need)
			cap = need;
		if (cap > UINT32_MAX - 64)
			cap = need;
		struct iobuf *nb = realloc(b, sizeof(*nb) + cap);
		if (nb == NULL)
			return -ENOMEM;
		if (b == NULL)
			nb->len = nb->off = 0;
		nb->cap = (uint32_t)cap;
		*pb = b = nb;
	}
	memcpy(b->data + b->len, p, n);
	b->len += (uint32_t)n;
	return 0;
}

int iobuf_prepend(struct iobuf **pb, const char *p, size_t n)
{
	struct iobuf *b = *pb, *nb = NULL;
	int rc = iobuf_append(&nb, p, n);
	if (rc == 0 && b != NULL)
		rc = iobuf_append(&nb, b->data + b->off, b->len - b->off);
	if (rc < 0) {
		free(nb);
		return rc;
	}
	free(b);
	*pb = nb;
	return 0;
}

/* ---- The pool and the lists ---------------------------------------------- */

struct conn *conn_new(struct worker *w, int fd, struct ip_entry *ip)
{
	if (w->free_conns == NULL) {
		struct conn_chunk *ch = malloc(sizeof(*ch));
		if (ch == NULL)
			return NULL;
		ch->next = w->conn_chunks;
		w->conn_chunks = ch;
		for (size_t i = CONN_CHUNK; i-- > 0;) {
			ch->conns[i].next = w->free_conns;
			w->free_conns = &ch->conns[i];
		}
	}
	struct conn *c = w->free_conns;
	w->free_conns = c->next;
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->ip = ip;
	c->w = w;
	return c;
}

static struct conn_list *list_of(struct worker *w, struct conn *c)
{
	return c->list == L_IDLE     ? &w->idle
	       : c->list == L_LINGER ? &w->linger
	       : c->list == L_HEADER ? &w->header
				     : NULL;
}

static void list_remove(struct worker *w, struct conn *c)
{
	struct conn_list *l = list_of(w, c);
	if (l == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	c->list = L_NONE;
}

static void list_push(struct worker *w, struct conn *c, int which)
{
	list_remove(w, c);
	struct conn_list *l = which == L_IDLE	  ? &w->idle
			      : which == L_LINGER ? &w->linger
						  : &w->header;
	c->list = (uint8_t)which;
	c->prev = l->tail;
	c->next = NULL;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static uint64_t deadline_of(const struct worker *w, const struct conn *c)
{
	return c->last_ms + (c->list == L_LINGER   ? LINGER_MS
			     : c->list == L_HEADER ? w->cfg->proxy_timeout_ms
						   : w->cfg->idle_timeout_ms);
}

/* Makes sure the sweep timer fires no later than deadline. */
static void sweep_arm(struct worker *w, uint64_t deadline)
{
	if (sockit_timer_active(&w->sweep) && w->sweep_at <= deadline)
		return;
	uint64_t now = sockit_loop_now_ms(w->loop);
	w->sweep_at = deadline;
	sockit_timer_start(w->loop, &w->sweep, deadline > now ? deadline - now : 0, 0);
}

void conn_arm_deadline(struct worker *w, struct conn *c)
{
	sweep_arm(w, deadline_of(w, c));
}

int conn_unacked(int fd)
{
	int v = sockit_unacked(fd);
	return v >= 0 ? v : -1;
}

int conn_unread(int fd)
{
	int v = 0;
	return ioctl(fd, FIONREAD, &v) == 0 ? v : -1;
}

void conn_note_outq(struct conn *c)
{
	if (c->out != NULL) {
		int q = conn_unacked(c->fd);
		c->outq = q > 0 ? (uint32_t)q : 0;
	}
}

void conn_touch(struct worker *w, struct conn *c)
{
	conn_note_outq(c);
	c->last_ms = sockit_loop_now_ms(w->loop);
	if (c->list != L_IDLE || w->idle.tail != c)
		list_push(w, c, L_IDLE);
	if (w->cfg->idle_timeout_ms > 0)
		sweep_arm(w, deadline_of(w, c));
}

void conn_wait_header(struct worker *w, struct conn *c)
{
	c->last_ms = sockit_loop_now_ms(w->loop);
	list_push(w, c, L_HEADER);
	sweep_arm(w, deadline_of(w, c));
}

/* ---- Ending: accounting, closing ------------------------------------------ */

static const char *const reason_names[] = {
	"done",
	"eof",
	"reset",
	"timeout",
	"limit",
	"tls_plaintext",
	"tls_handshake",
	"tls_cert",
	"tls_timeout",
	"tls_reset",
	"proxy_missing",
	"proxy_malformed",
	"proxy_oversized",
	"proxy_truncated",
	"proxy_timeout",
};

void conn_note_peer(struct worker *w, int fd, const sockit_addr *peer, const struct peer_cred *cred)
{
	if (fd < 0 || peer == NULL)
		return;
	if ((size_t)fd >= w->npeers) {
		size_t n = w->npeers ? w->npeers : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct peer_note *grown = realloc(w->peers, n * sizeof(*grown));
		if (grown == NULL)
			return;
		memset(grown + w->npeers, 0, (n - w->npeers) * sizeof(*grown));
		w->peers = grown;
		w->npeers = n;
	}
	w->peers[fd].addr = *peer;
	w->peers[fd].has_cred = cred != NULL;
	if (cred != NULL)
		w->peers[fd].cred = *cred;
}

/* The debug line of a close: event, fd, peer, reason. */
static void log_close(struct worker *w, int fd, int reason)
{
	char addr[SOCKIT_ADDRSTRLEN] = "?";
	const struct peer_note *p = fd >= 0 && (size_t)fd < w->npeers ? &w->peers[fd] : NULL;
	if (p != NULL && p->has_cred)
		peer_cred_format(&p->cred, addr, sizeof(addr));
	else if (p != NULL && p->addr.len > 0)
		sockit_addr_format(&p->addr, addr, sizeof(addr));
	struct log_fields f = {"closed", fd, addr, reason_names[reason],
			       p != NULL && p->has_cred ? &p->cred : NULL};
	serve_log_event(w->log, LOG_DEBUG, &f, "closed fd %d from %s (%s)", fd, addr,
			reason_names[reason]);
}

/* The reasons of the TLS and PROXY stages. */
static void count_hello_close(struct worker *w, int reason)
{
	switch (reason) {
	case R_TLS_PLAINTEXT:
		CTR_ADD(w, closed_tls_plaintext, 1);
		break;
	case R_TLS_HANDSHAKE:
		CTR_ADD(w, closed_tls_handshake, 1);
		break;
	case R_TLS_CERT:
		CTR_ADD(w, closed_tls_cert, 1);
		break;
	case R_TLS_TIMEOUT:
		CTR_ADD(w, closed_tls_timeout, 1);
		break;
	case R_TLS_RESET:
		CTR_ADD(w, closed_tls_reset, 1);
		break;
	case R_PROXY_MISSING:
		CTR_ADD(w, closed_proxy_missing, 1);
		break;
	case R_PROXY_MALFORMED:
		CTR_ADD(w, closed_proxy_malformed, 1);
		break;
	case R_PROXY_OVERSIZED:
		CTR_ADD(w, closed_proxy_oversized, 1);
		break;
	case R_PROXY_TRUNCATED:
		CTR_ADD(w, closed_proxy_truncated, 1);
		break;
	default:
		CTR_ADD(w, closed_proxy_timeout, 1);
		break;
	}
}

static void count_close(struct worker *w, int fd, int reason)
{
	CTR_SUB(w, active, 1);
	switch (reason) {
	case R_DONE:
		CTR_ADD(w, closed_done, 1);
		break;
	case R_EOF:
		CTR_ADD(w, closed_eof, 1);
		break;
	case R_RESET:
		CTR_ADD(w, closed_reset, 1);
		break;
	case R_TIMEOUT:
		CTR_ADD(w, closed_timeout, 1);
		break;
	case R_LIMIT:
		CTR_ADD(w, closed_limit, 1);
		break;
	default:
		count_hello_close(w, reason);
		break;
	}
	if (w->cfg->metrics_host != NULL)
		duration_close(w, fd);
	if (w->log->level >= LOG_DEBUG)
		log_close(w, fd, reason);
}

void conn_done(struct worker *w, int fd, struct ip_entry *ip, int reason)
{
	if (ip != NULL)
		ip_table_release(w->sh->ips, ip);
	count_close(w, fd, reason);
}

void conn_check_drained(struct worker *w)
{
	if (w->draining && !w->deregistering && w->ctr.active == 0 && w->linger.head == NULL)
		sockit_loop_stop(w->loop);
}

void conn_close_bare(struct worker *w, int fd, struct ip_entry *ip, int reason, int shut)
{
	conn_done(w, fd, ip, reason);
	if (shut)
		sockit_shutdown(fd, SHUT_WR);
	sockit_close(fd);
	if (w->draining)
		conn_check_drained(w);
}

/* The connection was closed while its send was in the ring: what did not
 * go is no longer counted as sent. */
static void on_orphan_sent(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	struct worker *w = arg;
	size_t sent = res > 0 ? (size_t)res : 0;
	if (sent < len)
		CTR_SUB(w, bytes_out, len - sent);
}

void conn_close(struct worker *w, struct conn *c, int reason)
{
	int fd = c->fd;
	if (!(c->flags & F_COUNTED))
		conn_done(w, fd, c->ip, reason);
	if (c->tls != NULL)
		tls_end(c);
	list_remove(w, c);
	if (w->wbuf_owner == c) {
		w->wbuf_owner = NULL;
		w->wbuf_len = 0;
	}
	if (c->recv_op != NULL) {
		sk_loop_op_detach(w->loop, c->recv_op); /* what it still gets is dropped */
		c->recv_op = NULL;
	}
	if (c->send_op != NULL) {
		/* The ring still sends from fd: it closes fd after that. */
		sockit_loop_unwatch(w->loop, fd);
		sk_loop_op_close_after(c->send_op, on_orphan_sent, w);
	} else {
		sockit_loop_close(w->loop, fd);
	}
	free(c->in);
	free(c->out);
	c->in = c->out = NULL; /* a conn on the free list owns no buffers */
	c->next = w->free_conns;
	w->free_conns = c;
	if (w->draining)
		conn_check_drained(w);
}

int conn_finish_reason(const struct conn *c)
{
	return (c->flags & F_LIMIT) ? R_LIMIT : (c->flags & F_EMPTY) ? R_EOF : R_DONE;
}

void conn_set_events(struct worker *w, struct conn *c, unsigned events)
{
	if (c->events == events)
		return;
	c->events = (uint8_t)events;
	sockit_loop_modify(w->loop, c->fd, events);
}

int conn_watch(struct worker *w, struct conn *c, unsigned events, sockit_io_cb cb)
{
	c->events = (uint8_t)events;
	int rc = sockit_loop_watch(w->loop, c->fd, events, cb, c);
	if (rc < 0) {
		struct log_fields f = {"watch_failed", c->fd, NULL, NULL, NULL};
		serve_log_limited(&w->rl_accept, LOG_WARN, &f, "cannot watch a connection: %s",
				  sockit_strerror(rc));
		conn_close(w, c, R_RESET);
	}
	return rc;
}

/* ---- Lingering close: the reply must not be destroyed by a reset ------ */

static void on_linger_io(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	struct conn *c = arg;
	conn_linger_event(c->w, c);
}

/* The exchange is over for the client: the connection is counted as
 * closed (reason) and leaves the limits now; the lingering descriptor
 * stays on the worker's linger list, bounded by LINGER_MS and
 * LINGER_BYTES. */
void conn_linger(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, int reason)
{
	int fresh = c == NULL;
	conn_done(w, fd, ip, reason);
	if (!fresh && c->tls != NULL)
		tls_end(c); /* close_notify before the FIN */
	sockit_shutdown(fd, SHUT_WR);
	if (fresh && (c = conn_new(w, fd, NULL)) == NULL) {
		sockit_close(fd);
		return;
	}
	if (c->recv_op != NULL) {
		/* Lingering reads by readiness: the rest is discarded unseen. */
		sk_loop_op_detach(w->loop, c->recv_op);
		c->recv_op = NULL;
	}
	c->flags |= F_COUNTED;
	c->ip = NULL;
	c->state = ST_LINGER;
	c->discarded = 0;
	c->last_ms = sockit_loop_now_ms(w->loop);
	list_push(w, c, L_LINGER);
	sweep_arm(w, deadline_of(w, c));
	if (fresh)
		conn_watch(w, c, SOCKIT_READABLE, on_linger_io);
	else
		conn_set_events(w, c, SOCKIT_READABLE);
}

void conn_linger_event(struct worker *w, struct conn *c)
{
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = io_recv(c, c->fd, w->rbuf + w->cfg->prefix_len, w->rbuf_size);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			conn_close(w, c, conn_finish_reason(c));
			return;
		}
		if (!(c->flags & F_WAS_TLS))
			CTR_ADD(w, bytes_in, n);
		if (c->discarded < LINGER_BYTES)
			c->discarded += (uint32_t)n;
		/* Past the byte bound, a reply still unacknowledged keeps the
		 * connection lingering, up to LINGER_MS: the close's RST
		 * would destroy what the client has not received. */
		if (c->discarded >= LINGER_BYTES && conn_unacked(c->fd) <= 0) {
			conn_close(w, c, conn_finish_reason(c));
			return;
		}
	}
}

int conn_flush_out(struct worker *w, struct conn *c)
{
	struct iobuf *b = c->out;
	ssize_t s = io_send(c, c->fd, b->data + b->off, b->len - b->off);
	if (s == -EAGAIN)
		return 0;
	if (s < 0)
		return (int)s;
	if (!(c->flags & F_WAS_TLS)) /* else the rest of a session's bytes: counted as plaintext */
		CTR_ADD(w, bytes_out, s);
	b->off += (uint32_t)s;
	if (b->off == b->len) {
		free(b);
		c->out = NULL;
	}
	conn_touch(w, c);
	return 0;
}

/* ---- Sweeping: idle timeouts and linger bounds -------------------------- */

/* A connection past its idle deadline with output waiting may have a
 * client that reads all along: too slowly for the kernel, which holds
 * megabytes for it, to report room before the deadline, so no write of
 * ours counted as activity.  What the kernel holds unacknowledged tells:
 * nothing of ours was added since the last activity (a write touches), so
 * it shrank only if the client read. */
static int still_reading(const struct conn *c)
{
	if (c->out == NULL)
		return 0;
	int q = conn_unacked(c->fd);
	return q >= 0 && (uint32_t)q < c->outq;
}

/* Idle timeout.  Output still waiting is lost: then a reset says so (a
 * FIN would make a cut-off reply look whole), and frees the kernel's copy
 * at once instead of leaving it to an orphaned socket's probes of a
 * window that stays shut (nginx's reset_timedout_connection). */
static void idle_close(struct worker *w, struct conn *c)
{
	if (c->out != NULL || c->send_op != NULL)
		sockit_set_linger(c->fd, 1, 0);
	conn_close(w, c, c->state == ST_HANDSHAKE ? R_TLS_TIMEOUT : R_TIMEOUT);
}

static void on_sweep(sockit_loop *loop, sockit_timer *t)
{
	struct worker *w = t->data;
	uint64_t now = sockit_loop_now_ms(loop);
	while (w->cfg->idle_timeout_ms > 0 && w->idle.head != NULL &&
	       deadline_of(w, w->idle.head) <= now) {
		if (still_reading(w->idle.head))
			conn_touch(w, w->idle.head); /* to the tail, with a new mark */
		else
			idle_close(w, w->idle.head);
	}
	while (w->linger.head != NULL && deadline_of(w, w->linger.head) <= now)
		conn_close(w, w->linger.head, conn_finish_reason(w->linger.head));
	while (w->header.head != NULL && deadline_of(w, w->header.head) <= now)
		conn_close(w, w->header.head, R_PROXY_TIMEOUT);
	uint64_t next = UINT64_MAX;
	if (w->cfg->idle_timeout_ms > 0 && w->idle.head != NULL)
		next = deadline_of(w, w->idle.head);
	if (w->linger.head != NULL && deadline_of(w, w->linger.head) < next)
		next = deadline_of(w, w->linger.head);
	if (w->header.head != NULL && deadline_of(w, w->header.head) < next)
		next = deadline_of(w, w->header.head);
	if (next != UINT64_MAX)
		sweep_arm(w, next);
}

/* ---- A worker's share ---------------------------------------------------- */

int conn_worker_init(struct worker *w)
{
	const struct serve_config *cfg = w->cfg;
	sockit_timer_init(&w->sweep, on_sweep, w);
	/* --proxy-protocol: once mode's first read takes the header too. */
	size_t need = cfg->max_bytes + (cfg->proxy ? SOCKIT_PROXY_MAX : 0);
	w->rbuf_size = need > RBUF_MIN ? need : RBUF_MIN;
	w->rbuf = malloc(cfg->prefix_len + w->rbuf_size);
	if (w->rbuf == NULL)
		return -ENOMEM;
	memcpy(w->rbuf, cfg->prefix, cfg->prefix_len);
	if (cfg->mode == MODE_LINE || cfg->mode == MODE_ECHO) {
		w->wbuf_size = WBUF_SIZE;
		w->wbuf = malloc(w->wbuf_size);
		if (w->wbuf == NULL)
			return -ENOMEM;
	}
	return 0;
}

void conn_close_all(struct worker *w, int count_as_timeout)
{
	while (w->linger.head != NULL)
		conn_close(w, w->linger.head, conn_finish_reason(w->linger.head));
	while (w->idle.head != NULL)
		conn_close(w, w->idle.head, count_as_timeout ? R_TIMEOUT : R_RESET);
	while (w->header.head != NULL)
		conn_close(w, w->header.head, count_as_timeout ? R_PROXY_TIMEOUT : R_RESET);
}

void conn_worker_free(struct worker *w)
{
	if (w->loop != NULL)
		sockit_timer_stop(w->loop, &w->sweep);
	struct conn_chunk *ch = w->conn_chunks;
	while (ch != NULL) {
		struct conn_chunk *next = ch->next;
		free(ch);
		ch = next;
	}
	w->conn_chunks = NULL;
	w->free_conns = NULL;
	free(w->rbuf);
	free(w->wbuf);
	free(w->peers);
	w->rbuf = w->wbuf = NULL;
	w->peers = NULL;
	w->npeers = 0;
}
