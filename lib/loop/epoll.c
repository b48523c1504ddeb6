/* epoll.c -- the epoll backend of the loop (the contract: backend.h). */

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"

struct epoll_backend {
	int epfd;
	struct epoll_event events[LOOP_BATCH];
};

int sk_epoll_new(struct epoll_backend **out)
{
	struct epoll_backend *b = malloc(sizeof(*b));
	int rc;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0) {
		rc = -errno;
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

void sk_epoll_free(struct epoll_backend *b)
{
	if (!b)
		return;
	close(b->epfd);
	free(b);
}

static uint32_t epoll_interest(unsigned mask)
{
	return (mask & SOCKIT_READABLE ? EPOLLIN : 0) | (mask & SOCKIT_WRITABLE ? EPOLLOUT : 0);
}

/* Interest 0 means "not in the epoll set": an fd with an empty mask would
 * still report EPOLLERR/EPOLLHUP, level-triggered, forever. */
int sk_epoll_set(struct epoll_backend *b, int fd, uint32_t gen, unsigned old_mask,
		 unsigned new_mask)
{
	struct epoll_event ev = {.events = epoll_interest(new_mask),
				 .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
	int op;

	if (new_mask == 0)
		op = EPOLL_CTL_DEL;
	else
		op = old_mask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(b->epfd, op, fd, &ev) == 0)
		return 0;
	/* The caller closed and reused the number behind our back, or closed
	 * an fd it then unwatches: resynchronise rather than fail. */
	if (op == EPOLL_CTL_ADD && errno == EEXIST)
		op = EPOLL_CTL_MOD;
	else if (op == EPOLL_CTL_MOD && errno == ENOENT)
		op = EPOLL_CTL_ADD;
	else if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF))
		return 0;
	else
		return -errno;
	return epoll_ctl(b->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

int sk_epoll_poll(struct epoll_backend *b, int timeout_ms, struct loop_fired *fired)
{
	int n = epoll_wait(b->epfd, b->events, LOOP_BATCH, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		uint32_t e = b->events[i].events;
		uint64_t data = b->events[i].data.u64;

		fired[i].fd = (int)(uint32_t)data;
		fired[i].gen = (uint32_t)(data >> 32);
		fired[i].events = (e & EPOLLIN ? SOCKIT_READABLE : 0) |
				  (e & EPOLLOUT ? SOCKIT_WRITABLE : 0) |
				  (e & (EPOLLERR | EPOLLHUP) ? SOCKIT_HANGUP : 0);
	}
	return n;
}
