/* uring_bufs.c -- the buffers of multishot receives: a provided-buffer ring (uring.h). */

#include <errno.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uring.h"

/* Gives the ring as many buffers again as it has (the first time,
 * RECV_BUFS_START), up to RECV_BUFS. */
void sk_recv_bufs_grow(struct recv_bufs *rb)
{
	unsigned n = rb->nbufs ? rb->nbufs * 2 : RECV_BUFS_START;
	if (n > RECV_BUFS)
		n = RECV_BUFS;
	for (unsigned i = rb->nbufs; i < n; i++)
		sk_recv_buf_put(rb, i);
	rb->nbufs = n;
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
int sk_recv_bufs_init(struct uring_backend *u, struct recv_bufs *rb)
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
	sk_recv_bufs_grow(rb);
	return 0;
}