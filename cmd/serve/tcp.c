/* serve_tcp.c -- TCP clients: accept, once/line/echo, idle timeout, lingering close.
 *
 * Costs, per connection:
 * - once mode, request already there at accept (TCP_DEFER_ACCEPT makes that
 *   the rule): accept4, recv, send, shutdown, close -- no epoll
 *   registration, no allocation.  The one read and the reply share the worker's buffer (the
 *   prefix sits just before the read area, so the reply is one send).  On
 *   io_uring the accept (multishot), the send and the close run in the
 *   ring: recv and shutdown are the only system calls of their own.
 * - line/echo: one read per wake; the replies of that read go out in one
 *   send, which on io_uring the ring makes inside the loop's next wait.  On
 *   io_uring the read is a multishot receive into the loop's buffers, armed
 *   once per connection: a request costs no system call of its own, only
 *   its share of the loop's io_uring_enter.
 * - A connection that must wait (no request yet, a partial write, a
 *   lingering close, any line/echo client) gets an 88-byte struct conn from a
 *   per-worker pool (and on io_uring its receive a 64-byte slot of the
 *   loop's), plus buffers only while it has unsent output or an
 *   unterminated line.
 * - Idle timeouts: every connection sits in one intrusive list ordered by
 *   last activity (touch = O(1) move to the tail); one timer per worker
 *   fires at the head's deadline.  No per-connection timer.  A connection
 *   with a backlog notes what the kernel holds for it (SIOCOUTQ) at each
 *   activity: less at the deadline means the client is reading.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "../../lib/loop/ops.h"
#include "serve.h"
#include "sockit.h"

#define ACCEPT_BATCH 64		/* accepts per wake, so connections are not starved */
#define READS_PER_WAKE 4	/* reads per wake per connection (line/echo) */
#define RBUF_MIN (64 * 1024)	/* read area, at least */
#define HOLD_MAX (64 * 1024)	/* ring receive: output held for the next chunk, at most */
#define KEPT_PIECE (8 * 1024)	/* kept input is parsed this much at a time */
#define WBUF_SIZE (256 * 1024)	/* line mode: replies batched per wake */
#define LINGER_MS 2000		/* after the reply: discard input this long at most */
#define LINGER_BYTES (1u << 20) /* ... and this much at most */
#define CONN_CHUNK 256		/* struct conns allocated together */
#define ACCEPT_PAUSE_MS 100	/* out of descriptors: retry accepting this often */
#define SAFE_REPLY 1152		/* Linux's smallest initial receive window (rcvbuf 2304) */

static const char line_too_long_msg[] = "error: line too long\n";

/* Unsent output, or the unterminated line so far. */
struct iobuf {
	uint32_t len, off, cap;
	char data[];
};

enum conn_state {
	ST_WAIT,   /* once: waiting for the request */
	ST_STREAM, /* line/echo: reading and answering */
	ST_FLUSH,  /* writing what is left, then finishing */
	ST_LINGER, /* write side shut: discarding input until EOF or a bound */
};

enum {
	F_EOF = 0x1,	   /* the client's EOF was read */
	F_EMPTY = 0x2,	   /* once: the client sent nothing before EOF */
	F_LIMIT = 0x4,	   /* line too long: finish with closed_limit */
	F_COUNTED = 0x8,   /* lingering: already counted as closed, slots released */
	F_KEPT = 0x10,	   /* in holds input kept unparsed while output is backlogged */
	F_KEPT_EOF = 0x20, /* ... and the client's EOF came after it */
};

enum { L_NONE, L_IDLE, L_LINGER };

struct conn {
	struct conn *prev, *next; /* in w->idle or w->linger */
	struct iobuf *in;	  /* line mode: the unterminated line; or F_KEPT input */
	struct iobuf *out;	  /* unsent output (behind send_op's bytes, if any) */
	struct loop_op *send_op;  /* io_uring: a send in the ring, or NULL */
	struct loop_op *recv_op;  /* io_uring: the armed multishot receive, or NULL */
	struct ip_entry *ip;	  /* per-IP slot, or NULL */
	struct worker *w;
	uint64_t last_ms; /* last activity (linger: when it started) */
	int fd;
	uint8_t state, flags, list, events;
	uint32_t discarded; /* linger: bytes thrown away */
	uint32_t outq;	    /* with a backlog: unacknowledged bytes at the last activity */
};

struct conn_chunk {
	struct conn_chunk *next;
	struct conn conns[CONN_CHUNK];
};

/* ---- The byte I/O seam: where a TLS layer or a PROXY header parser will
 * sit.  -EAGAIN means "nothing now"; other negatives are fatal.  Each is
 * one system call: lib/nbio's single attempts (as bench uses them), and
 * the library's timeout-0 send where a flag is needed. ---------------------- */

static ssize_t io_recv(int fd, void *buf, size_t len)
{
	return sockit_try_recv(fd, buf, len);
}

static ssize_t io_send(int fd, const void *buf, size_t len)
{
	return sockit_try_send(fd, buf, len, 0);
}

/* send(MSG_MORE): the data waits in the socket for the FIN that follows
 * at once (shutdown or close), so reply and FIN leave in one segment --
 * one packet less to send, receive and acknowledge. */
static ssize_t io_send_more(int fd, const void *buf, size_t len)
{
	return sockit_try_send(fd, buf, len, MSG_MORE);
}

/* sockit_accept() with timeout 0 would also ask fcntl(F_GETFL) whether the
 * listener blocks: a syscall per connection.  Ours never blocks. */
static int io_accept(int lfd, sockit_addr *peer)
{
	return sockit_try_accept(lfd, peer, SOCK_NONBLOCK);
}

/* ---- Buffers ----------------------------------------------------------- */

static int iobuf_append(struct iobuf **pb, const char *p, size_t n)
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

/* Puts n bytes in front of *pb's unsent ones. */
static int iobuf_prepend(struct iobuf **pb, const char *p, size_t n)
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

/* ---- Connections: pool, lists, timer ---------------------------------- */

static struct conn *conn_new(struct worker *w, int fd, struct ip_entry *ip)
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
	return c->list == L_IDLE ? &w->idle : c->list == L_LINGER ? &w->linger : NULL;
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
	struct conn_list *l = which == L_IDLE ? &w->idle : &w->linger;
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
	return c->last_ms + (c->list == L_LINGER ? LINGER_MS : w->cfg->idle_timeout_ms);
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

/* Bytes sent but not yet acknowledged by the peer, or -1. */
static int unacked(int fd)
{
	int v = sockit_unacked(fd);
	return v >= 0 ? v : -1;
}

/* With a backlog: notes what the kernel holds unacknowledged now, for
 * still_reading(). */
static void note_outq(struct conn *c)
{
	if (c->out != NULL) {
		int q = unacked(c->fd);
		c->outq = q > 0 ? (uint32_t)q : 0;
	}
}

/* Records activity: the connection moves to the idle list's tail. */
static void touch(struct worker *w, struct conn *c)
{
	note_outq(c);
	c->last_ms = sockit_loop_now_ms(w->loop);
	if (c->list != L_IDLE || w->idle.tail != c)
		list_push(w, c, L_IDLE);
	if (w->cfg->idle_timeout_ms > 0)
		sweep_arm(w, deadline_of(w, c));
}

static void release_slot(struct worker *w, struct ip_entry *ip)
{
	if (ip != NULL)
		ip_table_release(w->sh->ips, ip);
}

static const char *reason_name(int reason)
{
	switch (reason) {
	case 0:
		return "done";
	case 1:
		return "eof";
	case 2:
		return "reset";
	case 3:
		return "timeout";
	default:
		return "limit";
	}
}

enum { R_DONE, R_EOF, R_RESET, R_TIMEOUT, R_LIMIT };

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
	default:
		CTR_ADD(w, closed_limit, 1);
		break;
	}
	if (w->log->level >= LOG_DEBUG)
		serve_log(w->log, LOG_DEBUG, "closed fd %d (%s)", fd, reason_name(reason));
}

/* Ends a connection's accounting (its slots free, its reason counted)
 * before the client can see the end: a client that reconnects as soon as
 * it reads EOF always finds its slot free, on any worker. */
static void conn_done(struct worker *w, int fd, struct ip_entry *ip, int reason)
{
	release_slot(w, ip);
	count_close(w, fd, reason);
}

/* Closes a descriptor that never had a struct conn (never watched); shut
 * != 0 sends the FIN first (see once_reply). */
static void close_bare(struct worker *w, int fd, struct ip_entry *ip, int reason, int shut)
{
	conn_done(w, fd, ip, reason);
	if (shut)
		sockit_shutdown(fd, SHUT_WR);
	sockit_close(fd);
	if (w->draining)
		worker_maybe_finish(w);
}

static void on_orphan_sent(sockit_loop *loop, void *arg, int res, int more, size_t len);

static void conn_close(struct worker *w, struct conn *c, int reason)
{
	int fd = c->fd;
	if (!(c->flags & F_COUNTED))
		conn_done(w, fd, c->ip, reason);
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
	c->next = w->free_conns;
	w->free_conns = c;
	if (w->draining)
		worker_maybe_finish(w);
}

static int finish_reason(const struct conn *c)
{
	return (c->flags & F_LIMIT) ? R_LIMIT : (c->flags & F_EMPTY) ? R_EOF : R_DONE;
}

static void set_events(struct worker *w, struct conn *c, unsigned events)
{
	if (c->events == events)
		return;
	c->events = (uint8_t)events;
	sockit_loop_modify(w->loop, c->fd, events);
}

static void on_conn_event(sockit_loop *loop, int fd, unsigned events, void *arg);
static void on_stream_recv(sockit_loop *loop, void *arg, int res, int more, size_t len);

/* Starts watching a new struct conn's fd; closes it on failure. */
static int conn_watch(struct worker *w, struct conn *c, unsigned events)
{
	c->events = (uint8_t)events;
	int rc = sockit_loop_watch(w->loop, c->fd, events, on_conn_event, c);
	if (rc < 0) {
		serve_log_limited(w->log, &w->rl_accept, sockit_loop_now_ms(w->loop), LOG_WARN,
				  "cannot watch a connection: %s", sockit_strerror(rc));
		conn_close(w, c, R_RESET);
	}
	return rc;
}

/* ---- Lingering close: the reply must not be destroyed by a reset ------ */

/* Shuts the write side and discards input until EOF, LINGER_MS or
 * LINGER_BYTES, so unread input never turns our close into an RST that
 * would overtake the reply.  c may be NULL (a fast-path connection).  The
 * exchange is over for the client: the connection is counted as closed
 * (reason) and leaves the limits now; the lingering descriptor stays on
 * the worker's linger list. */
static void start_linger(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, int reason)
{
	int fresh = c == NULL;
	conn_done(w, fd, ip, reason);
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
		conn_watch(w, c, SOCKIT_READABLE);
	else
		set_events(w, c, SOCKIT_READABLE);
}

static void linger_event(struct worker *w, struct conn *c)
{
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = io_recv(c->fd, w->rbuf + w->cfg->prefix_len, w->rbuf_size);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			conn_close(w, c, finish_reason(c));
			return;
		}
		CTR_ADD(w, bytes_in, n);
		if (c->discarded < LINGER_BYTES)
			c->discarded += (uint32_t)n;
		/* Past the byte bound, a reply still unacknowledged keeps the
		 * connection lingering, up to LINGER_MS: the close's RST
		 * would destroy what the client has not received. */
		if (c->discarded >= LINGER_BYTES && unacked(c->fd) <= 0) {
			conn_close(w, c, finish_reason(c));
			return;
		}
	}
}

/* ---- Output ------------------------------------------------------------ */

static void on_stream_sent(sockit_loop *loop, void *arg, int res, int more, size_t len);

/* Sends what the kernel takes now and queues the rest on c->out.  On
 * io_uring the send goes into the ring instead, to run inside the loop's
 * next wait: one system call fewer per reply.  Its bytes count as sent
 * now (a client that read them sees them counted); its completion takes
 * back what did not go.  Not for a connection that ends after this reply
 * (EOF, or a line too long): the loop's wait does not end for a send's
 * completion alone, and the close would wait with it. */
static int send_or_queue(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (c->send_op != NULL)
		return iobuf_append(&c->out, p, n); /* behind the one in the ring */
	if (w->ops && n <= LOOP_SEND_MAX && !(c->flags & (F_EOF | F_LIMIT)) &&
	    sk_loop_send(w->loop, c->fd, p, n, 0, on_stream_sent, c, &c->send_op) == 0) {
		CTR_ADD(w, bytes_out, n);
		return 0;
	}
	ssize_t s = io_send(c->fd, p, n);
	if (s == -EAGAIN)
		s = 0;
	if (s < 0)
		return (int)s;
	CTR_ADD(w, bytes_out, s);
	if ((size_t)s < n)
		return iobuf_append(&c->out, p + s, n - (size_t)s);
	return 0;
}

static int wbuf_flush(struct worker *w, struct conn *c)
{
	if (w->wbuf_len == 0)
		return 0;
	size_t n = w->wbuf_len;
	w->wbuf_len = 0;
	return send_or_queue(w, c, w->wbuf, n);
}

/* Queues output: into the worker's per-wake batch while the connection has
 * no backlog, else behind its backlog. */
static int out_put(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (c->out != NULL)
		return iobuf_append(&c->out, p, n);
	if (w->wbuf_len + n <= w->wbuf_size) {
		memcpy(w->wbuf + w->wbuf_len, p, n);
		w->wbuf_len += n;
		return 0;
	}
	int rc = wbuf_flush(w, c);
	if (rc < 0)
		return rc;
	if (c->out != NULL)
		return iobuf_append(&c->out, p, n);
	if (n <= w->wbuf_size) {
		memcpy(w->wbuf, p, n);
		w->wbuf_len = n;
		return 0;
	}
	return send_or_queue(w, c, p, n);
}

/* A ring send's bytes that did not go are no longer counted as sent. */
static void sent_short(struct worker *w, int res, size_t len)
{
	size_t sent = res > 0 ? (size_t)res : 0;
	if (sent < len)
		CTR_SUB(w, bytes_out, len - sent);
}

static void stream_settle(struct worker *w, struct conn *c);

/* A connection's ring send completed: what did not go (a full socket
 * buffer) goes back in front of its backlog, which then waits for room. */
static void on_stream_sent(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	struct conn *c = arg;
	struct worker *w = c->w;
	const char *data = sk_loop_op_data(c->send_op);
	c->send_op = NULL;
	sent_short(w, res, len);
	if (res < 0 && res != -EAGAIN) {
		conn_close(w, c, R_RESET);
		return;
	}
	size_t sent = res > 0 ? (size_t)res : 0;
	if (sent < len) {
		if (iobuf_prepend(&c->out, data + sent, len - sent) < 0) {
			conn_close(w, c, R_LIMIT);
			return;
		}
		if (sent > 0)
			touch(w, c);
		else
			note_outq(c);
	}
	stream_settle(w, c);
}

/* The connection was closed while its send was in the ring. */
static void on_orphan_sent(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	sent_short(arg, res, len);
}

/* One write of the backlog.  Returns 0 or a negative code. */
static int flush_out(struct worker *w, struct conn *c)
{
	struct iobuf *b = c->out;
	ssize_t s = io_send(c->fd, b->data + b->off, b->len - b->off);
	if (s == -EAGAIN)
		return 0;
	if (s < 0)
		return (int)s;
	CTR_ADD(w, bytes_out, s);
	b->off += (uint32_t)s;
	if (b->off == b->len) {
		free(b);
		c->out = NULL;
	}
	touch(w, c);
	return 0;
}

/* ---- once mode --------------------------------------------------------- */

/* The kernel's report on a reply handed over with loop_send_close().
 * The connection was counted as finished (done or eof), and its bytes as
 * sent, when it was queued: a client that has read the reply finds the
 * counters saying so.  A short or failed send takes back what did not
 * go; a failed one also moves the connection to the resets. */
static void reply_sent(struct worker *w, int res, size_t len, int reason)
{
	if (res >= 0) {
		if ((size_t)res < len)
			CTR_SUB(w, bytes_out, len - (size_t)res);
		return;
	}
	CTR_SUB(w, bytes_out, len);
	if (reason == R_DONE)
		CTR_SUB(w, closed_done, 1);
	else
		CTR_SUB(w, closed_eof, 1);
	CTR_ADD(w, closed_reset, 1);
}

static void on_reply_done(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	reply_sent(arg, res, len, R_DONE);
}

static void on_reply_eof(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	reply_sent(arg, res, len, R_EOF);
}

/* io_uring: reply, FIN and close as one chain that the kernel runs inside
 * the loop's next wait -- three system calls fewer per connection.  Returns
 * 0, or -1 when the caller must do it itself. */
static int once_reply_async(struct worker *w, int fd, struct ip_entry *ip, ssize_t n, size_t len)
{
	int reason = n == 0 ? R_EOF : R_DONE;
	if (sk_loop_send_close(w->loop, fd, w->rbuf, len, MSG_MORE, n > 0,
			       reason == R_DONE ? on_reply_done : on_reply_eof, w) < 0)
		return -1;
	CTR_ADD(w, bytes_out, len);
	conn_done(w, fd, ip, reason);
	if (w->draining)
		worker_maybe_finish(w);
	return 0;
}

/* Answers the one read (n bytes at rbuf + prefix_len, or n < 0 an error). */
static void once_reply(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, ssize_t n)
{
	const struct serve_config *cfg = w->cfg;
	if (n < 0) {
		if (c != NULL)
			conn_close(w, c, R_RESET);
		else
			close_bare(w, fd, ip, R_RESET, 0);
		return;
	}
	CTR_ADD(w, bytes_in, n);
	size_t len = cfg->prefix_len + (size_t)n;
	/* The request is all here (the read returned less than asked, so it
	 * emptied the receive queue, or saw EOF) and the reply fits Linux's
	 * smallest receive window (so send() hands it all to the client at
	 * once): we close right after it, and its FIN rides with it. */
	int quick = (size_t)n < cfg->max_bytes && len <= SAFE_REPLY;
	if (quick && c == NULL && w->ops && once_reply_async(w, fd, ip, n, len) == 0)
		return;
	ssize_t s = quick ? io_send_more(fd, w->rbuf, len) : io_send(fd, w->rbuf, len);
	if (s == -EAGAIN)
		s = 0;
	if (s < 0) {
		int reason = n == 0 ? R_EOF : R_RESET;
		if (c != NULL)
			conn_close(w, c, reason);
		else
			close_bare(w, fd, ip, reason, 0);
		return;
	}
	CTR_ADD(w, bytes_out, s);
	if ((size_t)s == len) {
		/* Close at once if the request is all here and the reply is out
		 * of our hands: quick (above), or a larger reply that SIOCOUTQ
		 * says is acknowledged (a slow reader's window may hold it back,
		 * and an RST would destroy the rest).  The write side is shut
		 * first so the FIN goes with the reply: a client that sends more
		 * as soon as the reply arrives then finds reply + FIN queued
		 * before any RST its extra bytes provoke (in CLOSE_WAIT an RST
		 * no longer hides the EOF).  After EOF a close is enough. */
		if (quick || ((size_t)n < cfg->max_bytes && unacked(fd) == 0)) {
			int reason = n == 0 ? R_EOF : R_DONE;
			if (c == NULL) {
				close_bare(w, fd, ip, reason, n > 0);
				return;
			}
			conn_done(w, fd, c->ip, reason);
			c->flags |= F_COUNTED;
			if (n > 0)
				sockit_shutdown(fd, SHUT_WR);
			conn_close(w, c, reason);
		} else {
			start_linger(w, c, fd, ip, R_DONE);
		}
		return;
	}
	/* Partial write: keep the rest, finish when it drains. */
	int fresh = c == NULL;
	if (fresh && (c = conn_new(w, fd, ip)) == NULL) {
		close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	if (n == 0)
		c->flags |= F_EOF | F_EMPTY;
	if (iobuf_append(&c->out, w->rbuf + s, len - (size_t)s) < 0) {
		conn_close(w, c, R_LIMIT);
		return;
	}
	c->state = ST_FLUSH;
	touch(w, c);
	if (fresh)
		conn_watch(w, c, SOCKIT_WRITABLE);
	else
		set_events(w, c, SOCKIT_WRITABLE);
}

static void once_start(struct worker *w, int fd, struct ip_entry *ip)
{
	const struct serve_config *cfg = w->cfg;
	ssize_t n = io_recv(fd, w->rbuf + cfg->prefix_len, cfg->max_bytes);
	if (n != -EAGAIN) {
		once_reply(w, NULL, fd, ip, n);
		return;
	}
	struct conn *c = conn_new(w, fd, ip);
	if (c == NULL) {
		close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	c->state = ST_WAIT;
	touch(w, c);
	/* Accepted without data under TCP_DEFER_ACCEPT: the kernel already held
	 * it for defer_ms; that counts towards the idle timeout.  (The list
	 * may then be out of order by up to defer_ms; a sweep is at most that
	 * late.) */
	uint64_t held = w->defer_ms < cfg->idle_timeout_ms ? w->defer_ms : cfg->idle_timeout_ms;
	if (held > 0 && c->last_ms > held) {
		c->last_ms -= held;
		sweep_arm(w, deadline_of(w, c));
	}
	conn_watch(w, c, SOCKIT_READABLE);
}

/* ---- line and echo modes ----------------------------------------------- */

static int line_too_long(struct worker *w, struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->flags |= F_LIMIT;
	return out_put(w, c, line_too_long_msg, sizeof(line_too_long_msg) - 1);
}

/* Feeds n bytes of input: each complete line gets prefix + line. */
static int line_feed(struct worker *w, struct conn *c, const char *p, size_t n)
{
	const struct serve_config *cfg = w->cfg;
	int rc;
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t have = c->in != NULL ? c->in->len : 0;
		if (nl == NULL) {
			if (have + n > cfg->max_line)
				return line_too_long(w, c);
			return iobuf_append(&c->in, p, n);
		}
		size_t len = (size_t)(nl - p) + 1;
		if (have + len - 1 > cfg->max_line)
			return line_too_long(w, c);
		if ((rc = out_put(w, c, cfg->prefix, cfg->prefix_len)) < 0)
			return rc;
		if (have > 0) {
			rc = out_put(w, c, c->in->data, have);
			free(c->in);
			c->in = NULL;
			if (rc < 0)
				return rc;
		}
		if ((rc = out_put(w, c, p, len)) < 0)
			return rc;
		p += len;
		n -= len;
	}
	return 0;
}

/* At EOF: the unterminated last line gets its reply too. */
static int line_eof(struct worker *w, struct conn *c)
{
	if (c->in == NULL || c->in->len == 0)
		return 0;
	int rc = out_put(w, c, w->cfg->prefix, w->cfg->prefix_len);
	if (rc == 0)
		rc = out_put(w, c, c->in->data, c->in->len);
	free(c->in);
	c->in = NULL;
	return rc;
}

/* n bytes of input: echoed, or fed to the line parser.  Echo goes through
 * the per-wake batch only when output is held there (see on_stream_recv). */
static int stream_input(struct worker *w, struct conn *c, const char *buf, size_t n, int hold)
{
	CTR_ADD(w, bytes_in, n);
	if (w->cfg->mode == MODE_LINE)
		return line_feed(w, c, buf, n);
	if (c->out != NULL)
		return iobuf_append(&c->out, buf, n);
	return hold || w->wbuf_len > 0 ? out_put(w, c, buf, n) : send_or_queue(w, c, buf, n);
}

/* Output backlog at which a connection's input pauses. */
static int input_paused(const struct worker *w, const struct conn *c)
{
	return c->out != NULL && c->out->len - c->out->off >= w->cfg->max_pending;
}

/* A line/echo connection's I/O failed (rc < 0): its batched output is
 * dropped and it is closed; out of memory counts as a limit. */
static void stream_failed(struct worker *w, struct conn *c, int rc)
{
	w->wbuf_len = 0;
	conn_close(w, c, rc == -ENOMEM ? R_LIMIT : R_RESET);
}

/* The per-wake batch may hold another connection's output between two of
 * its chunks (on_stream_recv): that goes out before c uses the batch. */
static void wbuf_take(struct worker *w, struct conn *c)
{
	struct conn *o = w->wbuf_owner;
	w->wbuf_owner = NULL;
	if (o == NULL || o == c)
		return;
	int rc = wbuf_flush(w, o);
	if (rc < 0) {
		stream_failed(w, o, rc);
		return;
	}
	stream_settle(w, o);
}

/* The client's EOF: the unterminated last line is answered. */
static int stream_eof(struct worker *w, struct conn *c)
{
	c->flags |= F_EOF;
	return w->cfg->mode == MODE_LINE ? line_eof(w, c) : 0;
}

static int stream_read(struct worker *w, struct conn *c)
{
	const struct serve_config *cfg = w->cfg;
	wbuf_take(w, c);
	char *buf = w->rbuf + cfg->prefix_len;
	int rc = 0;
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = io_recv(c->fd, buf, w->rbuf_size);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0) {
			rc = stream_eof(w, c);
			break;
		}
		rc = stream_input(w, c, buf, (size_t)n, 0);
		if (rc < 0 || (c->flags & F_LIMIT))
			break;
		if (input_paused(w, c))
			break;
		if ((size_t)n < w->rbuf_size)
			break; /* the receive queue is empty: no EAGAIN round trip */
	}
	int frc = wbuf_flush(w, c);
	if (rc == 0)
		rc = frc;
	touch(w, c);
	return rc;
}

/* Input received while output is backlogged is kept unparsed (see
 * on_stream_recv).  The parser's unterminated line, if any, heads it, to
 * be parsed again with what follows.  Kept input counts as input once
 * parsed, so that line's bytes leave bytes_in until then. */
static int keep_input(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (!(c->flags & F_KEPT) && c->in != NULL)
		CTR_SUB(w, bytes_in, c->in->len - c->in->off);
	c->flags |= F_KEPT;
	return iobuf_append(&c->in, p, n);
}

/* Parses the input kept while output was backlogged (see on_stream_recv),
 * a piece at a time while the backlog has room; the rest stays kept.  It
 * counts as input as it is parsed. */
static int kept_feed(struct worker *w, struct conn *c)
{
	struct iobuf *k = c->in;
	size_t off = k->off;
	int rc = 0;

	c->in = NULL;
	c->flags &= (uint8_t)~F_KEPT;
	wbuf_take(w, c);
	while (rc == 0 && off < k->len && !(c->flags & F_LIMIT) && !input_paused(w, c)) {
		size_t n = k->len - off < KEPT_PIECE ? k->len - off : KEPT_PIECE;
		rc = stream_input(w, c, k->data + off, n, 0);
		off += n;
	}
	if (rc == 0 && off < k->len && !(c->flags & F_LIMIT))
		rc = keep_input(w, c, k->data + off, k->len - off);
	free(k);
	if (rc == 0 && !(c->flags & F_KEPT) && (c->flags & F_KEPT_EOF)) {
		c->flags &= (uint8_t)~F_KEPT_EOF;
		rc = stream_eof(w, c);
	}
	if (rc == 0)
		rc = wbuf_flush(w, c);
	return rc;
}

/* After I/O on a line/echo (or flushing once) connection: finish it or
 * set what it waits for. */
static void stream_settle(struct worker *w, struct conn *c)
{
	/* Input kept while the backlog was full: parsed once it has room. */
	if ((c->flags & F_KEPT) && !input_paused(w, c)) {
		int rc = kept_feed(w, c);
		if (rc < 0) {
			stream_failed(w, c, rc);
			return;
		}
	}
	/* A send in the ring: its completion settles the connection again. */
	if (c->out == NULL && c->send_op == NULL) {
		if (c->flags & F_LIMIT) {
			start_linger(w, c, c->fd, c->ip, R_LIMIT);
			return;
		}
		if (c->state == ST_FLUSH) {
			/* once: the reply is out */
			if (c->flags & F_EOF)
				conn_close(w, c, finish_reason(c));
			else
				start_linger(w, c, c->fd, c->ip, finish_reason(c));
			return;
		}
		if (c->flags & F_EOF) {
			conn_close(w, c, R_EOF);
			return;
		}
	}
	unsigned want = 0;
	if (c->state == ST_STREAM && !(c->flags & (F_EOF | F_LIMIT | F_KEPT)) &&
	    !input_paused(w, c))
		want |= SOCKIT_READABLE;
	if (c->out != NULL && c->send_op == NULL)
		want |= SOCKIT_WRITABLE;
	if ((want & SOCKIT_READABLE) && w->ops) {
		/* io_uring: input comes by a multishot receive (one system call
		 * fewer per request); readiness only if it cannot be had. */
		if (c->recv_op == NULL)
			(void)sk_loop_recv_multi(w->loop, c->fd, on_stream_recv, c, &c->recv_op);
		if (c->recv_op != NULL)
			want &= ~SOCKIT_READABLE;
	} else if (c->recv_op != NULL) {
		/* Input paused: chunks already on their way still come, and
		 * the last one settles the connection again. */
		sk_loop_op_cancel(w->loop, c->recv_op);
	}
	set_events(w, c, want);
}

/* Input by the ring's multishot receive (see stream_settle). */
static void on_stream_recv(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)len;
	struct conn *c = arg;
	struct worker *w = c->w;
	const char *data = sk_loop_op_data(c->recv_op);
	/* More input waits in the socket, its chunk comes next: this chunk's
	 * output waits in the per-wake batch to go with it, up to HOLD_MAX, so
	 * a burst costs one send per HOLD_MAX, as a read of that size would (a
	 * 64 KiB echo comes in 8 chunks).  Not behind a backlog, which waits
	 * for room anyway.  Whatever ends the receive still calls back, and
	 * that call sends. */
	wbuf_take(w, c);
	int hold = more && res > 0 && sk_loop_op_more_input(c->recv_op) && c->out == NULL &&
		   w->wbuf_len < HOLD_MAX;
	int rc = 0;
	if (!more)
		c->recv_op = NULL; /* ended: stream_settle starts another if input is wanted */
	if (res > 0 && (c->flags & (F_EOF | F_LIMIT))) {
		CTR_ADD(w, bytes_in, res); /* after a line too long: discarded */
	} else if (res > 0 && ((c->flags & F_KEPT) || input_paused(w, c))) {
		/* Input is paused, but what the kernel received before the
		 * cancel still comes.  Parsed now, it would grow the backlog
		 * past --max-pending (a line's reply is larger than the line),
		 * so it is kept as it is until the backlog has room. */
		rc = keep_input(w, c, data, (size_t)res);
	} else if (res > 0) {
		rc = stream_input(w, c, data, (size_t)res, hold);
	} else if (res == 0 && (c->flags & F_KEPT)) {
		c->flags |= F_KEPT_EOF; /* after the kept input */
	} else if (res == 0) {
		rc = stream_eof(w, c);
	} else if (res != -ENOBUFS && res != -ECANCELED) {
		rc = res; /* ENOBUFS: the input waits in the socket for the next one */
	}
	if (rc == 0 && hold && c->out == NULL && w->wbuf_len > 0 && !(c->flags & F_LIMIT))
		w->wbuf_owner = c; /* (a line too long: the connection ends now) */
	else if (rc == 0)
		rc = wbuf_flush(w, c);
	if (rc < 0) {
		stream_failed(w, c, rc);
		return;
	}
	if (res >= 0)
		touch(w, c);
	stream_settle(w, c);
}

static void on_conn_event(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)fd;
	struct conn *c = arg;
	struct worker *w = c->w;
	int rc = 0;
	switch (c->state) {
	case ST_WAIT:
		rc = (int)io_recv(c->fd, w->rbuf + w->cfg->prefix_len, w->cfg->max_bytes);
		if (rc != -EAGAIN)
			once_reply(w, c, c->fd, c->ip, rc);
		return;
	case ST_LINGER:
		linger_event(w, c);
		return;
	case ST_FLUSH:
		rc = flush_out(w, c);
		break;
	case ST_STREAM:
		if (c->out != NULL && c->send_op == NULL &&
		    (events & (SOCKIT_WRITABLE | SOCKIT_HANGUP)))
			rc = flush_out(w, c);
		if (rc == 0 && (c->events & SOCKIT_READABLE) &&
		    (events & (SOCKIT_READABLE | SOCKIT_HANGUP)))
			rc = stream_read(w, c);
		break;
	}
	if (rc < 0) {
		stream_failed(w, c, rc);
		return;
	}
	stream_settle(w, c);
}

static void stream_start(struct worker *w, int fd, struct ip_entry *ip)
{
	struct conn *c = conn_new(w, fd, ip);
	if (c == NULL) {
		close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	sockit_set_nodelay(fd, 1); /* replies are batched already; don't let Nagle wait */
	c->state = ST_STREAM;
	touch(w, c);
	/* On io_uring the fd is known to the loop but not polled: input comes
	 * by the receive that stream_settle starts. */
	if (conn_watch(w, c, w->ops ? 0 : SOCKIT_READABLE) == 0 && w->ops)
		stream_settle(w, c);
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
	int q = unacked(c->fd);
	return q >= 0 && (uint32_t)q < c->outq;
}

/* Idle timeout.  Output still waiting is lost: then a reset says so (a
 * FIN would make a cut-off reply look whole), and frees the kernel's copy
 * at once instead of leaving it to an orphaned socket's probes of a
 * window that stays shut (nginx's reset_timedout_connection). */
static void idle_close(struct worker *w, struct conn *c)
{
	if (c->out != NULL || c->send_op != NULL) {
		sockit_set_linger(c->fd, 1, 0);
	}
	conn_close(w, c, R_TIMEOUT);
}

static void on_sweep(sockit_loop *loop, sockit_timer *t)
{
	struct worker *w = t->data;
	uint64_t now = sockit_loop_now_ms(loop);
	while (w->cfg->idle_timeout_ms > 0 && w->idle.head != NULL &&
	       deadline_of(w, w->idle.head) <= now) {
		if (still_reading(w->idle.head))
			touch(w, w->idle.head); /* to the tail, with a new mark */
		else
			idle_close(w, w->idle.head);
	}
	while (w->linger.head != NULL && deadline_of(w, w->linger.head) <= now)
		conn_close(w, w->linger.head, finish_reason(w->linger.head));
	uint64_t next = UINT64_MAX;
	if (w->cfg->idle_timeout_ms > 0 && w->idle.head != NULL)
		next = deadline_of(w, w->idle.head);
	if (w->linger.head != NULL && deadline_of(w, w->linger.head) < next)
		next = deadline_of(w, w->linger.head);
	if (next != UINT64_MAX)
		sweep_arm(w, next);
}

/* ---- Accepting ----------------------------------------------------------- */

static void accept_arm(struct worker *w);

static void on_accept_timer(sockit_loop *loop, sockit_timer *t)
{
	struct worker *w = t->data;
	if (w->tcp_fd >= 0 && w->accept_paused) {
		w->accept_paused = 0;
		if (w->accept_multi)
			accept_arm(w);
		else
			sockit_loop_modify(loop, w->tcp_fd, SOCKIT_READABLE);
	}
}

/* Out of descriptors (or memory): stop watching the listener for a moment
 * instead of spinning on a readable listener we cannot accept from.  Pending
 * clients wait in the backlog and are served once descriptors free up. */
static void accept_pause(struct worker *w, int err)
{
	if (!w->emfile_episode) {
		w->emfile_episode = 1;
		serve_log(w->log, LOG_WARN, "accept: %s; pausing accepts, retrying every %d ms",
			  sockit_strerror(err), ACCEPT_PAUSE_MS);
	}
	w->accept_paused = 1;
	if (w->accept_op != NULL)
		sk_loop_op_cancel(w->loop, w->accept_op);
	else if (!w->accept_multi)
		sockit_loop_modify(w->loop, w->tcp_fd, 0);
	sockit_timer_start(w->loop, &w->accept_timer, ACCEPT_PAUSE_MS, 0);
}

/* The other workers' active connections, read with relaxed loads. */
static uint64_t others_active(const struct worker *w)
{
	uint64_t total = 0;
	for (int i = 0; i < w->sh->nworkers; i++)
		if (i != w->id)
			total += __atomic_load_n(&w->sh->workers[i].ctr.active, __ATOMIC_RELAXED);
	return total;
}

/* 1 if one more connection fits under --max-conns (global).  Far from the
 * limit the other workers' count read within the last millisecond is good
 * enough; within a margin of it, they are re-read for every connection.
 * No lock, no read-modify-write: two workers admitting at the same instant
 * at the very limit may overshoot it by one each. */
static int room_for_one(struct worker *w)
{
	uint64_t max = w->cfg->max_conns;
	uint64_t margin = (uint64_t)ACCEPT_BATCH * (uint64_t)w->sh->nworkers;
	if (w->ctr.active + w->others + margin < max)
		return 1;
	w->others = others_active(w);
	return w->ctr.active + w->others < max;
}

static void refuse(struct worker *w, int fd, const sockit_addr *peer, const char *why)
{
	sockit_close(fd);
	if (w->log->level >= LOG_WARN) {
		char addr[SOCKIT_ADDRSTRLEN] = "?";
		if (peer != NULL)
			sockit_addr_format(peer, addr, sizeof(addr));
		serve_log_limited(w->log, &w->rl_refused, sockit_loop_now_ms(w->loop), LOG_WARN,
				  "refused %s: %s", addr, why);
	}
}

/* Accepting until EAGAIN costs one failed accept4 per wake: a waste when
 * each wake finds one client (light load, or the load spread over
 * workers).  Then take one per wake: if more wait, the level-triggered
 * listener is reported again at once (an epoll_wait that does not sleep,
 * no dearer than the failed accept4).  Back to batches when wakes come
 * back to back, where one failed accept4 per batch is cheaper. */
static void accept_adapt(struct worker *w, int got, uint64_t now)
{
	if (!w->accept_one) {
		if (got <= 1) {
			w->accept_one = 1;
			w->accept_busy = 0;
		}
		return;
	}
	if (got == 1 && now == w->accept_ms) {
		if (++w->accept_busy >= 4)
			w->accept_one = 0;
	} else {
		w->accept_busy = 0;
	}
	w->accept_ms = now;
}

/* Whether accepting needs the client's address. */
static int need_peer(const struct worker *w)
{
	const struct serve_config *cfg = w->cfg;
	return cfg->nallow > 0 || cfg->ndeny > 0 || w->sh->ips != NULL ||
	       w->log->level >= LOG_DEBUG;
}

/* Refreshes the others' count at most once a millisecond: it is a cache
 * line they write all the time. */
static void others_refresh(struct worker *w, uint64_t now)
{
	if (w->sh->nworkers > 1 && now != w->others_ms) {
		w->others = others_active(w);
		w->others_ms = now;
	}
}

/* A new connection fd (peer NULL when need_peer() is 0): admit or refuse. */
static void accept_one(struct worker *w, int fd, const sockit_addr *peer)
{
	const struct serve_config *cfg = w->cfg;
	if (w->emfile_episode) {
		w->emfile_episode = 0;
		serve_log(w->log, LOG_INFO, "descriptors available again; accepting");
	}
	if (peer != NULL && (cfg->nallow > 0 || cfg->ndeny > 0) && !serve_acl_allows(cfg, peer)) {
		CTR_ADD(w, refused_denied, 1);
		refuse(w, fd, peer, "denied by --allow/--deny");
		return;
	}
	if (!room_for_one(w)) {
		CTR_ADD(w, refused_maxconns, 1);
		refuse(w, fd, peer, "--max-conns reached");
		return;
	}
	struct ip_entry *ip = NULL;
	if (w->sh->ips != NULL && (ip = ip_table_acquire(w->sh->ips, peer)) == NULL) {
		CTR_ADD(w, refused_perip, 1);
		refuse(w, fd, peer, "--max-conns-per-ip reached");
		return;
	}
	CTR_ADD(w, accepted, 1);
	CTR_ADD(w, active, 1);
	if (w->log->level >= LOG_DEBUG) {
		char addr[SOCKIT_ADDRSTRLEN] = "?";
		sockit_addr_format(peer, addr, sizeof(addr));
		serve_log(w->log, LOG_DEBUG, "accepted fd %d from %s", fd, addr);
	}
	if (cfg->mode == MODE_ONCE)
		once_start(w, fd, ip);
	else
		stream_start(w, fd, ip);
}

/* An accept error: ECONNABORTED, EPERM (firewall), EPROTO... are one
 * client's; running out of descriptors or memory pauses accepting. */
static int accept_error(struct worker *w, int err)
{
	if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
		accept_pause(w, err);
		return -1;
	}
	serve_log_limited(w->log, &w->rl_accept, sockit_loop_now_ms(w->loop), LOG_WARN,
			  "accept: %s", sockit_strerror(err));
	return 0;
}

void tcp_on_accept(sockit_loop *loop, int lfd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	struct worker *w = arg;
	int peer_wanted = need_peer(w);
	uint64_t now = sockit_loop_now_ms(w->loop);
	others_refresh(w, now);
	int limit = w->accept_one ? 1 : ACCEPT_BATCH, got = 0;
	for (int i = 0; i < limit && w->tcp_fd == lfd; i++) {
		sockit_addr peer;
		int fd = io_accept(lfd, peer_wanted ? &peer : NULL);
		if (fd < 0) {
			if (fd == -EAGAIN)
				break;
			if (accept_error(w, fd) < 0)
				return;
			continue;
		}
		got++;
		accept_one(w, fd, peer_wanted ? &peer : NULL);
	}
	accept_adapt(w, got, now);
}

/* io_uring: one multishot accept hands us every new connection inside the
 * loop's wait, no accept4 per client.  It has no room for the peer's
 * address, so it is used only when nothing needs it (need_peer()). */
static void on_accept_op(sockit_loop *loop, void *arg, int res, int more, size_t len);

static void accept_arm(struct worker *w)
{
	if (w->accept_op != NULL || w->tcp_fd < 0)
		return;
	int rc = sk_loop_accept_multi(w->loop, w->tcp_fd, SOCK_NONBLOCK, on_accept_op, w,
				      &w->accept_op);
	if (rc < 0)
		accept_pause(w, rc); /* out of memory or ring space: retry soon */
}

static void on_accept_op(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)len;
	struct worker *w = arg;
	if (!more)
		w->accept_op = NULL;
	if (res >= 0) {
		others_refresh(w, sockit_loop_now_ms(loop));
		accept_one(w, res, NULL);
	} else if (res != -ECANCELED && accept_error(w, res) < 0) {
		return; /* paused: the timer re-arms */
	}
	if (more || w->accept_paused || w->draining)
		return;
	if (res < 0 && res != -ECANCELED)
		accept_pause(w, res); /* an error ended it: re-arming at once could spin */
	else
		accept_arm(w);
}

/* ---- Worker life --------------------------------------------------------- */

int tcp_worker_init(struct worker *w)
{
	const struct serve_config *cfg = w->cfg;
	w->rbuf_size = cfg->max_bytes > RBUF_MIN ? cfg->max_bytes : RBUF_MIN;
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
	sockit_timer_init(&w->sweep, on_sweep, w);
	sockit_timer_init(&w->accept_timer, on_accept_timer, w);
	w->ops = sk_loop_ops_available(w->loop);
	if (w->tcp_fd < 0)
		return 0;
	if (w->ops && !need_peer(w)) {
		w->accept_multi = 1;
		accept_arm(w);
		return w->accept_op != NULL ? 0 : -errno;
	}
	return sockit_loop_watch(w->loop, w->tcp_fd, SOCKIT_READABLE, tcp_on_accept, w);
}

void tcp_worker_drain(struct worker *w)
{
	if (w->accept_op != NULL)
		sk_loop_op_cancel(w->loop, w->accept_op); /* it holds the listener open */
	if (w->tcp_fd >= 0) {
		sockit_loop_close(w->loop, w->tcp_fd);
		w->tcp_fd = -1;
	}
	sockit_timer_stop(w->loop, &w->accept_timer);
}

void tcp_worker_close_all(struct worker *w, int count_as_timeout)
{
	while (w->linger.head != NULL)
		conn_close(w, w->linger.head, finish_reason(w->linger.head));
	while (w->idle.head != NULL)
		conn_close(w, w->idle.head, count_as_timeout ? R_TIMEOUT : R_RESET);
}

void tcp_worker_free(struct worker *w)
{
	if (w->loop != NULL) {
		sockit_timer_stop(w->loop, &w->sweep);
		sockit_timer_stop(w->loop, &w->accept_timer);
	}
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
	w->rbuf = w->wbuf = NULL;
}
