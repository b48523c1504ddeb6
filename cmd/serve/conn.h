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
	ST_WAIT,   /* once: waiting for the request */
	ST_STREAM, /* line/echo: reading and answering */
	ST_FLUSH,  /* once: writing what is left, then finishing */
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

/* Why a connection closed: the closed_* counter it adds to. */
enum close_reason { R_DONE, R_EOF, R_RESET, R_TIMEOUT, R_LIMIT };

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

/* ---- The byte I/O seam: where a TLS layer or a PROXY header parser will
 * sit.  -EAGAIN means "nothing now"; other negatives are fatal.  Each is
 * one system call: the library's single attempts. ------------------------- */

static inline ssize_t io_recv(int fd, void *buf, size_t len)
{
	return sockit_try_recv(fd, buf, len);
}

static inline ssize_t io_send(int fd, const void *buf, size_t len)
{
	return sockit_try_send(fd, buf, len, 0);
}

/* send(MSG_MORE): the data waits in the socket for the FIN that follows
 * at once (shutdown or close), so reply and FIN leave in one segment --
 * one packet less to send, receive and acknowledge. */
static inline ssize_t io_send_more(int fd, const void *buf, size_t len)
{
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

/* ---- The modes, started by accept.c on an admitted connection ------------ */

void once_start(struct worker *w, int fd, struct ip_entry *ip);	  /* once.c */
void stream_start(struct worker *w, int fd, struct ip_entry *ip); /* stream.c */

#endif /* SOCKIT_SERVE_CONN_H */
