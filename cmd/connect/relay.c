/* relay.c -- what the TCP and UDP relays share: bounded buffers, the wait, stdout. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay.h"

size_t relay_buf_room(struct relay_buf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->len == b->cap && b->off > 0) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	return b->cap - b->len;
}

int relay_would_block(long rc)
{
	return rc == -EAGAIN || rc == -EINTR;
}

int relay_until(uint64_t deadline, uint64_t now)
{
	if (deadline == CONNECT_NEVER)
		return -1;
	if (deadline <= now)
		return 0;
	uint64_t d = deadline - now;
	return d > INT_MAX ? INT_MAX : (int)d;
}

int relay_wait(struct pollfd *pfd, nfds_t n, int timeout_ms, const struct connect_link *link,
	       struct connect_result *res)
{
	pfd[0] = (struct pollfd){.fd = link->sigfd, .events = POLLIN};
	int ready = poll(pfd, n, timeout_ms);
	if (ready < 0)
		return errno == EINTR ? 0 : -errno;
	if (ready > 0 && (pfd[0].revents & POLLIN)) {
		struct signalfd_siginfo si;
		if (read(link->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			res->end = END_SIGNAL; /* stop now: nothing more is written */
			res->signo = (int)si.ssi_signo;
			return 0;
		}
	}
	return ready;
}

size_t relay_stdout_max(size_t cap)
{
	struct stat st;
	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode))
		return cap;
	return PIPE_BUF < cap ? PIPE_BUF : cap;
}

int relay_write_stdout(const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n >= 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		/* A non-blocking stdout (shared with another program): wait. */
		struct pollfd out = {.fd = STDOUT_FILENO, .events = POLLOUT};
		(void)poll(&out, 1, -1);
	}
	return 0;
}

void relay_stdout_failed(struct connect_result *res, int rc)
{
	res->stdout_failed = 1;
	if (rc == -EPIPE)
		connect_result_fail(res, END_STDOUT, "stdout closed before all data was written");
	else
		connect_result_fail(res, END_ERROR, "cannot write to standard output: %s",
				    sockit_strerror(rc));
}

int relay_read_stdin(struct relay_buf *b, struct connect_result *res)
{
	size_t room = relay_buf_room(b);
	ssize_t n = read(STDIN_FILENO, b->p + b->len, room);
	if (n > 0) {
		b->len += (size_t)n;
		return 1;
	}
	if (n == 0)
		return 0;
	int rc = -errno;
	if (rc == -EINTR || rc == -EAGAIN)
		return -EAGAIN;
	connect_result_fail(res, END_ERROR, "cannot read standard input: %s", sockit_strerror(rc));
	return rc;
}

void relay_terminal_newline(int last_byte, const struct connect_result *res)
{
	if (last_byte >= 0 && last_byte != '\n' && !res->stdout_failed && isatty(STDOUT_FILENO))
		(void)relay_write_stdout("\n", 1);
}

void relay_peer_name(const struct connect_link *link, char *buf, size_t len)
{
	if (sockit_addr_format(link->peer, buf, len) < 0)
		snprintf(buf, len, "the server");
}
