/* conn.h -- a TCP connection: its state, buffers, lists, and how it ends.
 *
 * conn.c keeps the pool, the idle and linger lists with their one timer,
 * the lingering close and the accounting of every close; once.c and
 * stream.c (started by accept.c) drive connections through it.
 */
#ifndef SOCKIT_SERVE_CONN_H
#define SOCKIT_SERVE_CONN_H

#include <sys/socket.h>

#include "../../lib/loop/ops.h"
#include "sockit_tls.h"
#include "tls/cork.h"
#include "worker.h"

#define READS_PER_WAKE 4 /* reads per wake per connection (line/echo, linger) */
#define LINGER_MS 2000	 /* after the reply: discard input this long at most */
#define SAFE_REPLY 1152	 /* Linux's smallest initial receive window (rcvbuf 2304) */

/* Unsent output, or the unterminated line so far. */
struct iobuf {
	uint32_t len, off, cap;
	char data[];
};

enum conn_state {
	ST_WAIT,      /* once: waiting for the request */
	ST_STREAM,    /* line/echo: reading and answering */
	ST_FLUSH,     /* once: writing what is left, then finishing */
	ST_LINGER,    /* write side shut: discarding input until EOF or a bound */
	ST_PROXY,     /* --proxy-protocol: waiting for the rest of the header (proxy.c) */
	ST_HANDSHAKE, /* TLS: the handshake goes on (tls.c) */
};

enum {
	F_EOF = 0x1,	   /* the client's EOF was read */
	F_EMPTY = 0x2,	   /* once: the client sent nothing before EOF */
	F_LIMIT = 0x4,	   /* line too long: finish with closed_limit */
	F_COUNTED = 0x8,   /* lingering: already counted as closed, slots released */
	F_KEPT = 0x10,	   /* in holds input kept unparsed while output is backlogged */
	F_KEPT_EOF = 0x20, /* ... and the client's EOF came after it */
	F_WAS_TLS = 0x40,  /* its TLS session ended: what lingers is records, not input */
};

/* Why a connection closed: the closed_* counter it adds to. */
enum close_reason {
	R_DONE,
	R_EOF,
	R_RESET,
	R_TIMEOUT,
	R_LIMIT,
	R_TLS_PLAINTEXT, /* TLS: the client spoke plaintext */
	R_TLS_HANDSHAKE, /* ... sent garbage, or the handshake failed */
	R_TLS_CERT,	 /* ... no client certificate, or a bad one */
	R_TLS_TIMEOUT,	 /* ... stopped in the middle of the handshake */
	R_TLS_RESET,	 /* ... closed or reset in the middle of the handshake */
	R_PROXY_MISSING, /* PROXY: the connection did not start with a header */
	R_PROXY_MALFORMED,
	R_PROXY_OVERSIZED,
	R_PROXY_TRUNCATED, /* ... EOF or reset before its end */
	R_PROXY_TIMEOUT,   /* ... not whole within proxy_timeout_ms */
};

struct conn {
	struct conn *prev, *next; /* in w->idle or w->linger */
	struct iobuf *in;	  /* line mode: the unterminated line; or F_KEPT input */
	struct iobuf *out;	  /* unsent output (behind send_op's bytes, if any) */
	struct loop_op *send_op;  /* io_uring: a send in the ring, or NULL */
	struct loop_op *recv_op;  /* io_uring: the armed multishot receive, or NULL */
	struct ip_entry *ip;	  /* per-IP slot, or NULL */
	struct worker *w;
	sockit_tls *tls;  /* TLS: the session (tls.c), until the exchange ends */
	uint64_t last_ms; /* last activity (linger: when it started) */
	int fd;
	uint8_t state, flags, list, events;
	uint32_t discarded; /* linger: bytes thrown away */
	uint32_t outq;	    /* with a backlog: unacknowledged bytes at the last activity */
};

/* ---- The byte I/O seam: plaintext, or TLS when c has a session.
 * -EAGAIN means "nothing now"; other negatives are fatal; 0 from a recv is
 * the end.  Plaintext: one system call each (the library's single
 * attempts); c may be NULL (a connection without a struct conn yet). -- */

ssize_t tls_io_recv(struct conn *c, void *buf, size_t len);	  /* tls.c */
ssize_t tls_io_send(struct conn *c, const void *buf, size_t len); /* tls.c */

static inline int io_tls(const struct conn *c)
{
	return __builtin_expect(c != NULL && c->tls != NULL, 0);
}

static inline ssize_t io_recv(struct conn *c, int fd, void *buf, size_t len)
{
	if (io_tls(c))
		return tls_io_recv(c, buf, len);
	return sockit_try_recv(fd, buf, len);
}

static inline ssize_t io_send(struct conn *c, int fd, const void *buf, size_t len)
{
	if (io_tls(c))
		return tls_io_send(c, buf, len);
	return sockit_try_send(fd, buf, len, 0);
}

/* send(MSG_MORE): the data waits in the socket for the FIN that follows
 * at once (shutdown or close), so reply and FIN leave in one segment --
 * one packet less to send, receive and acknowledge. */
static inline ssize_t io_send_more(struct conn *c, int fd, const void *buf, size_t len)
{
	if (io_tls(c))
		return tls_io_send(c, buf, len);
	return sockit_try_send(fd, buf, len, MSG_MORE);
}

/* ---- Buffers (conn.c) ---------------------------------------------------- */

/* Appends n bytes (allocating or growing *pb).  0 or -ENOMEM. */
int iobuf_append(struct iobuf **pb, const char *p, size_t n);
/* Puts n bytes in front of *pb's unsent ones.  0 or -ENOMEM. */
int iobuf_prepend(struct iobuf **pb, const char *p, size_t n);

/* ---- Connections (conn.c) ------------------------------------------------ */

/* A zeroed struct conn from the worker's pool, or NULL (out of memory). */
struct conn *conn_new(struct worker *w, int fd, struct ip_entry *ip);
/* Starts watching c's fd with cb (c as its argument); closes c on failure. */
int conn_watch(struct worker *w, struct conn *c, unsigned events, sockit_io_cb cb);
void conn_set_events(struct worker *w, struct conn *c, unsigned events);
/* Records activity: c moves to the idle list's tail, its deadline with it. */
void conn_touch(struct worker *w, struct conn *c);
/* With a backlog: notes what the kernel holds unacknowledged now. */
void conn_note_outq(struct conn *c);
/* Makes sure the sweep runs no later than c's deadline. */
void conn_arm_deadline(struct worker *w, struct conn *c);
/* Bytes sent but not yet acknowledged by the peer, or -1. */
int conn_unacked(int fd);
/* Bytes received and not read yet (FIONREAD), or -1. */
int conn_unread(int fd);

/* Ends a connection's accounting (its slots free, its reason counted)
 * before the client can see the end: a client that reconnects as soon as
 * it reads EOF always finds its slot free, on any worker. */
void conn_done(struct worker *w, int fd, struct ip_entry *ip, int reason);
/* Closes a descriptor that never had a struct conn; shut != 0 sends the
 * FIN first. */
void conn_close_bare(struct worker *w, int fd, struct ip_entry *ip, int reason, int shut);
/* Closes c (counted under reason unless F_COUNTED) and returns it to the pool. */
void conn_close(struct worker *w, struct conn *c, int reason);
/* The reason a finished exchange closes with: limit, eof or done. */
int conn_finish_reason(const struct conn *c);
/* Shuts the write side and discards input until EOF or a bound, so unread
 * input never turns our close into an RST that would overtake the reply.
 * c may be NULL (a descriptor that never had one: conn.c watches it);
 * else c's watcher passes ST_LINGER's events to conn_linger_event().
 * Counted as closed (reason) now. */
void conn_linger(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, int reason);
/* A lingering connection's input. */
void conn_linger_event(struct worker *w, struct conn *c);
/* One write of c's backlog.  0 or a negative code. */
int conn_flush_out(struct worker *w, struct conn *c);

/* --log-level debug: the peer of fd (and a Unix peer's credentials, or
 * NULL), noted at accept for the close line. */
void conn_note_peer(struct worker *w, int fd, const sockit_addr *peer,
		    const struct peer_cred *cred);
/* The debug "accepted" line (noting the peer for the close line); via is
 * the balancer's address for a proxied connection, else NULL. */
void conn_log_accepted(struct worker *w, int fd, const sockit_addr *peer, const sockit_addr *via,
		       const struct peer_cred *cred);
/* --proxy-protocol: c waits for its header on the header list (its own
 * deadline, proxy_timeout_ms from now). */
void conn_wait_header(struct worker *w, struct conn *c);
/* The readiness a read of c waits for: readable, or what TLS asks (what
 * a corked session kept goes out first: see tls_step). */
unsigned conn_read_events(struct conn *c);

/* ---- The modes, started by accept.c on an admitted connection ------------ */

void once_start(struct worker *w, int fd, struct ip_entry *ip);	  /* once.c */
void stream_start(struct worker *w, int fd, struct ip_entry *ip); /* stream.c */

/* The same after a PROXY header or a TLS handshake.  c is the connection's
 * struct conn, watched with conn_event, or NULL (plaintext: the header
 * came whole with the first read).  Input read with the header is
 * answered first: once: n > 0 bytes at rbuf + prefix_len (n <= 0: read
 * now); stream: data[0..n). */
void once_begin(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, ssize_t n);
void stream_begin(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, const char *data,
		  size_t n);
void once_event(sockit_loop *loop, int fd, unsigned events, void *arg);
void stream_event(sockit_loop *loop, int fd, unsigned events, void *arg);

/* The watcher of connections that began with a header or a handshake:
 * by c->state, the stage or the mode's own handler. */
void conn_event(sockit_loop *loop, int fd, unsigned events, void *arg);

/* ---- Before the mode: the PROXY header (proxy.c), TLS (tls.c) ----------- */

/* Admits a connection on the worker (the checks that need the client's
 * address are done): TLS handshake first if on, else the mode. */
void conn_admitted(struct worker *w, int fd, struct ip_entry *ip);

/* --proxy-protocol: a connection accepted from peer (the balancer, or NULL
 * when unknown); counted as accepted and active already. */
void proxy_start(struct worker *w, int fd, const sockit_addr *peer);
/* 1 if --proxy-from lets peer (never NULL) connect. */
int proxy_from_allows(const struct serve_config *cfg, const sockit_addr *peer);
void proxy_event(struct worker *w, struct conn *c);

/* TLS: starts the handshake on fd (a struct conn is made) or on c. */
void tls_start(struct worker *w, int fd, struct ip_entry *ip, struct conn *c);
void tls_event(struct worker *w, struct conn *c);
/* Ends c's session: close_notify if the handshake was done (one attempt),
 * then the session is freed; c is plaintext afterwards. */
void tls_end(struct conn *c);
/* The same for once mode's reply: the close_notify and what the corked
 * session kept (the ticket, the reply's record) go out in one send with
 * MSG_MORE, for the FIN to ride with them; what the socket did not take
 * is appended to c->out.  0, or -ENOMEM or the send's error. */
int tls_end_reply(struct conn *c);

#endif /* SOCKIT_SERVE_CONN_H */
