/* tcp.h -- what the TCP engine (tcp.c) shares with its TLS layer (tls.c): the thread's
 * state and the request bookkeeping both transports feed.
 *
 * A connection is plaintext or TLS for its whole life (c->tls, set at
 * connect): tcp.c's own read and write paths never look at TLS; tls.c
 * drives the handshake, the encrypted requests and replies, and hands the
 * plaintext to the same consume/EOF/fail functions. */
#ifndef SOCKIT_BENCH_TCP_H
#define SOCKIT_BENCH_TCP_H

#include "engine.h"

#define RBUF_SIZE (64 * 1024)

/* The TCP engine's per-thread state (w->engine). */
struct tcp_engine {
	unsigned char *sess; /* --tls-resume: the session to resume, sess_len bytes */
	size_t sess_len, sess_cap;
	char rbuf[RBUF_SIZE]; /* every read lands here */
};

/* c failed: its requests fail with kind, it is closed and restarted. */
void bench_tcp_fail(struct conn *c, enum bench_err kind);

/* Verifies n received bytes of c.  Returns 0, or -1 on a mismatch (the
 * caller fails c). */
int bench_tcp_consume(struct bench_worker *w, struct conn *c, const char *p, size_t n,
		      uint64_t now);

/* The server closed c cleanly: a once-mode reply's end, a reply cut short,
 * or an idle close.  c is closed. */
void bench_tcp_eof(struct bench_worker *w, struct conn *c, uint64_t now);

/* c's first byte left at time at: the connection is up (state C_OPEN, or
 * with TLS C_HANDSHAKE, which began at). */
void bench_tcp_connected(struct bench_worker *w, struct conn *c, uint64_t at);

/* Watches c for want (the first time with cb).  Returns 0, or -1 if that
 * failed (c failed and was closed). */
int bench_tcp_arm(struct conn *c, unsigned want, sockit_io_cb cb);

/* ---- tls.c ---------------------------------------------------------------- */

/* Wraps c's connecting socket in TLS (no I/O), with the thread's saved
 * session under --tls-resume.  Returns 0 or a negative code. */
int bench_tls_wrap(struct bench_worker *w, struct conn *c);

/* Moves c on: the PROXY header, the handshake, then the unsent requests;
 * arms the events it waits for.  Returns 0, or -1 if c failed (closed). */
int bench_tls_flush(struct conn *c);

/* Sends close_notify (one attempt), closes the socket and frees c->tls. */
void bench_tls_close(struct conn *c);

#endif /* SOCKIT_BENCH_TCP_H */
