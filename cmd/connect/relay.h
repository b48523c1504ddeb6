/* relay.h -- what the TCP and UDP relays share: bounded buffers, the wait, stdout.
 *
 * stdin and stdout are left blocking (they may be shared with a shell);
 * they are only read or written after poll says so, and writes to a pipe,
 * socket or terminal stay within PIPE_BUF (relay_stdout_max) so a ready
 * descriptor cannot block.
 */
#ifndef SOCKIT_CONNECT_RELAY_H
#define SOCKIT_CONNECT_RELAY_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "connect.h"

/* A bounded byte buffer: data is p[off, len); partial I/O moves off. */
struct relay_buf {
	char *p;
	size_t cap, off, len;
};

static inline size_t relay_buf_pending(const struct relay_buf *b)
{
	return b->len - b->off;
}

/* Room at the end, after moving the data to the front when that helps. */
size_t relay_buf_room(struct relay_buf *b);

/* Whether a sockit_* result means "try again after poll". */
int relay_would_block(long rc);

/* Milliseconds from now until deadline for poll(): -1 for CONNECT_NEVER,
 * never negative. */
int relay_until(uint64_t deadline, uint64_t now);

/* poll() over pfd[1..n-1]; pfd[0] is filled in here with link->sigfd.
 * Returns the number of ready descriptors; 0 after a timeout, EINTR, or a
 * stop signal (then res->end is END_SIGNAL and res->signo says which); or
 * a negative errno. */
int relay_wait(struct pollfd *pfd, nfds_t n, int timeout_ms, const struct connect_link *link,
	       struct connect_result *res);

/* The largest write to stdout that cannot block once poll said POLLOUT:
 * cap for a regular file, PIPE_BUF for anything else. */
size_t relay_stdout_max(size_t cap);

/* Writes all len bytes to stdout, waiting in poll() if it is
 * non-blocking.  Returns 0 or a negative errno. */
int relay_write_stdout(const char *p, size_t len);

/* Records a failed stdout write (rc < 0): EPIPE ends the run as
 * END_STDOUT ("stdout closed"), anything else as END_ERROR naming the
 * error; either way res->stdout_failed is set and the relay stops. */
void relay_stdout_failed(struct connect_result *res, int rc);

/* Reads stdin into b (room > 0).  Returns 1 on data, 0 at EOF, -EAGAIN to
 * try later, or records the error in res and returns it. */
int relay_read_stdin(struct relay_buf *b, struct connect_result *res);

/* On a terminal, a reply without a final newline would run into the shell
 * prompt: add one there, and nowhere else (pipes and files get the bytes). */
void relay_terminal_newline(int last_byte, const struct connect_result *res);

/* The peer as "127.0.0.1:1234", for messages. */
void relay_peer_name(const struct connect_link *link, char *buf, size_t len);

#endif /* SOCKIT_CONNECT_RELAY_H */
