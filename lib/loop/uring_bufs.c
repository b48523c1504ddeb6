/* uring_bufs.c -- the buffers of multishot receives: a provided-buffer ring (uring.h). */

#include <errno.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uring.h"

static int live(const struct recv_bufs *rb, unsigned bid)
{
	return (rb->live[bid / 64] >> (bid % 64)) & 1;
}

void sk_recv_bufs_grow(struct recv_bufs *rb, uint64_t now_ms)
{
	unsigned n = rb->nbufs ? rb->nbufs * 2 : RECV_BUFS_START;
	if (n > RECV_BUFS)
		n = RECV_BUFS;
	/* Those above the old size that have not come back yet are still
	 * the kernel's: given once is enough. */
	for (unsigned i = 0; i < n; i++) {
		if (!live(rb, i)) {
			rb->live[i / 64] |= (uint64_t)1 << (i % 64);
			sk_recv_buf_put(rb, i);
		}
	}
	rb->nbufs = n;
	rb->dry_ms = now_ms;
}

/* A calm period ended (the ring halves), or bid is above the size. */
void sk_recv_buf_back_slow(struct recv_bufs *rb, unsigned bid, uint64_t now_ms)
{
	if (now_ms - rb->dry_ms >= RECV_BUFS_CALM_MS) {
		if (rb->nbufs > RECV_BUFS_START)
			rb->nbufs /= 2;
		rb->dry_ms = now_ms;
	}
	if (bid < rb->nbufs) {
		sk_recv_buf_put(rb, bid);
		return;
	}
	/* Retired: neither the kernel's nor ours; its pages go back too, or
	 * the ring's memory would stay at the largest burst ever seen. */
	rb->live[bid / 64] &= ~((uint64_t)1 << (bid % 64));
	(void)madvise(sk_recv_buf(rb, bid), RECV_BUF_SIZE, MADV_DONTNEED);
}

void sk_recv_bufs_free(struct recv_bufs *rb)
{
	if (rb->br)
		munmap(rb->br, RECV_BUFS * sizeof(struct io_uring_buf));
	if (rb->base)
		munmap(rb->base, (size_t)RECV_BUFS * RECV_BUF_SIZE);
	rb->br = NULL;
	rb->base = NULL;
}

/* Registers the ring once; 0, or -errno (then never again). */
int sk_recv_bufs_init(struct uring_backend *u, struct recv_bufs *rb, uint64_t now_ms)
{
	if (rb->br || rb->err)
		return rb->err;
	/* The ring must be page aligned: a mapping of its own. */
	rb->br = mmap(NULL, RECV_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rb->base = mmap(NULL, (size_t)RECV_BUFS * RECV_BUF_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc = 0;
	if (rb->br == MAP_FAILED || rb->base == MAP_FAILED) {
		rc = -ENOMEM;
		if (rb->br == MAP_FAILED)
			rb->br = NULL;
		if (rb->base == MAP_FAILED)
			rb->base = NULL;
	} else {
		struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)rb->br,
					       .ring_entries = RECV_BUFS,
					       .bgid = RECV_BGID};
		if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0)
			rc = -errno;
	}
	if (rc < 0) {
		sk_recv_bufs_free(rb);
		rb->err = rc;
		return rc;
	}
	sk_recv_bufs_grow(rb, now_ms);
	return 0;
}