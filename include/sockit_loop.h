/* sockit_loop.h -- a small event loop: fds, timers, signals, wake-ups. */
#ifndef SOCKIT_LOOP_H
#define SOCKIT_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "sockit.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One loop per thread; a loop is not thread-safe except sockit_loop_wake().
 * Results follow sockit.h: >= 0 or a negative code for sockit_strerror().
 * Dispatch is level-triggered.  Costs: watch/unwatch is O(1) plus one
 * epoll_ctl when the interest really changes; timers are a binary heap,
 * O(log n) start/stop, O(1) to find the next deadline.
 *
 * Re-entrancy: any callback may watch, unwatch or close any fd (the one
 * being dispatched included), start or stop any timer, or stop the loop
 * (but not run or free the loop it is called from).
 * Events already collected for an fd that was unwatched (or closed and
 * reused for a new watch) in the same iteration are dropped, never
 * delivered to the new owner.
 */

typedef struct sockit_loop sockit_loop;

#define SOCKIT_READABLE 0x1u
#define SOCKIT_WRITABLE 0x2u
/* Delivered (never requested): error or hang-up on the fd.  Comes with
 * READABLE/WRITABLE set as far as they were watched, so a callback that
 * reads or writes will see the error from the call itself. */
#define SOCKIT_HANGUP 0x4u

typedef void (*sockit_io_cb)(sockit_loop *loop, int fd, unsigned events, void *arg);

/* Creates a loop on the default backend, epoll, into *out.  Returns 0, or
 * a negative code with *out NULL: -ENOMEM, or the kernel's refusal of a
 * descriptor (-EMFILE, -ENFILE).  out NULL is -EINVAL. */
SOCKIT_API int sockit_loop_new(sockit_loop **out);
/* Creates a loop on backend name into *out: "epoll", or "io_uring"
 * (readiness through one-shot polls re-armed each iteration, everything
 * submitted with the wait in one system call).  name NULL means the
 * default.  Returns 0, or a negative code with *out NULL: -EINVAL for an
 * unknown name, the kernel's refusal of the backend (-ENOSYS on a kernel
 * without io_uring, -EPERM where it is disabled by sysctl or seccomp),
 * -ENOMEM, -EMFILE. */
SOCKIT_API int sockit_loop_new_backend(sockit_loop **out, const char *name);
/* Frees the loop.  Does not close the watched fds (the caller owns them). */
SOCKIT_API void sockit_loop_free(sockit_loop *loop);

/* Sets the interest for fd to events (READABLE|WRITABLE), replacing any
 * earlier interest, callback and argument.  events 0 keeps the fd known but
 * silent (out of the kernel's set: going 0 <-> non-0 costs one epoll_ctl).
 * Returns 0, -EINVAL, -ENOMEM, -EBADF, or epoll_ctl's error. */
SOCKIT_API int sockit_loop_watch(sockit_loop *loop, int fd, unsigned events, sockit_io_cb cb,
				 void *arg);

/* Changes only the interest mask of an fd already watched (cheap: no
 * syscall if unchanged). */
SOCKIT_API int sockit_loop_modify(sockit_loop *loop, int fd, unsigned events);

/* Forgets fd.  Call before closing it (closing first is also safe: the
 * kernel drops it from epoll; the loop then just forgets). Returns 0 or
 * -ENOENT. */
SOCKIT_API int sockit_loop_unwatch(sockit_loop *loop, int fd);

/* Forgets fd and closes it, saving the epoll_ctl(DEL) that unwatch makes
 * (the kernel drops a closed fd from epoll by itself).  Only for fds that
 * were never dup()ed.  Returns 0 (close errors are not reported). */
SOCKIT_API int sockit_loop_close(sockit_loop *loop, int fd);

/* ---- Timers: intrusive, the caller owns the memory -------------------- */

typedef struct sockit_timer sockit_timer;
typedef void (*sockit_timer_cb)(sockit_loop *loop, sockit_timer *t);

struct sockit_timer {
	uint64_t when_ns;   /* private: deadline on CLOCK_MONOTONIC */
	uint64_t repeat_ns; /* private */
	uint64_t seq;	    /* private: start order, breaks ties between equal deadlines */
	size_t index;	    /* private: heap slot, SIZE_MAX when idle */
	sockit_timer_cb cb;
	void *data; /* the caller's */
};

/* Prepares t (idle).  Must be called once before any other timer call. */
SOCKIT_API void sockit_timer_init(sockit_timer *t, sockit_timer_cb cb, void *data);

/* Arms t to fire after timeout_ms, then every repeat_ms if > 0.  Restarting
 * an armed timer moves it.  Timers with equal deadlines fire in the order
 * they were started.  Returns 0 or -ENOMEM. */
SOCKIT_API int sockit_timer_start(sockit_loop *loop, sockit_timer *t, uint64_t timeout_ms,
				  uint64_t repeat_ms);

/* Disarms t; harmless if idle.  A timer may stop itself in its callback. */
SOCKIT_API void sockit_timer_stop(sockit_loop *loop, sockit_timer *t);

/* 1 if t is armed. */
SOCKIT_API int sockit_timer_active(const sockit_timer *t);

/* ---- Signals ---------------------------------------------------------- */

typedef void (*sockit_signal_cb)(sockit_loop *loop, int signo, void *arg);

/* Delivers signo to cb inside the loop (signalfd).  Blocks signo in the
 * calling thread; block it in every other thread too (create threads after
 * this call, or use pthread_sigmask) so the kernel queues it for the loop.
 * Signal dispositions are not touched.  Returns 0 or a negative code. */
SOCKIT_API int sockit_loop_signal(sockit_loop *loop, int signo, sockit_signal_cb cb, void *arg);

/* ---- Control ---------------------------------------------------------- */

typedef void (*sockit_loop_cb)(sockit_loop *loop, void *arg);

/* Runs until sockit_loop_stop(); returns 0, or a negative code if waiting
 * for events failed. */
SOCKIT_API int sockit_loop_run(sockit_loop *loop);

/* Waits at most timeout_ms (-1: until something happens) for events and
 * timers, dispatches them, and returns the number of callbacks run (fd,
 * timer, signal and wake callbacks; not before-sleep), or a negative code
 * if waiting failed.  Does not sleep if a stop is pending. */
SOCKIT_API int sockit_loop_run_once(sockit_loop *loop, int timeout_ms);

/* Makes sockit_loop_run() return after the current iteration. */
SOCKIT_API void sockit_loop_stop(sockit_loop *loop);

/* Adaptive wake-up coalescing, for a loop whose events come one per
 * wake-up (many short connections): after an iteration that took fewer
 * than 4 events, the loop first takes what is ready without waiting, and
 * if nothing is, sleeps usec outside the kernel's wait and takes what
 * came meanwhile in one batch, instead of being woken (a cross-CPU
 * interrupt, dear on virtual machines) for each.  A linger that gathers
 * fewer than 2 events makes the next small batches wait as usual, 1, 2,
 * 4 ... up to 64 of them, so a lone client's latency is barely touched.
 * Costs: up to usec of added latency per event under a steady trickle,
 * two more system calls per linger.  The first linger sets the running
 * thread's timer slack to 1 us (prctl PR_SET_TIMERSLACK), so the sleep is
 * as long as asked.  usec 0 turns it off (the default); at most 1000000.
 * Returns 0 or -EINVAL. */
SOCKIT_API int sockit_loop_coalesce(sockit_loop *loop, uint64_t usec);

/* How many lingers the loop made, and how many of them gathered 2 or more
 * events (either pointer may be NULL). */
SOCKIT_API void sockit_loop_coalesce_stats(const sockit_loop *loop, uint64_t *lingers,
					   uint64_t *fruitful);

/* Called before each sleep in the loop (e.g. to flush batched writes). */
SOCKIT_API void sockit_loop_before_sleep(sockit_loop *loop, sockit_loop_cb cb, void *arg);

/* Thread-safe: wakes the loop from any thread (or a signal handler) and
 * runs the callback set with sockit_loop_on_wake() in the loop's thread.
 * Several wakes before the loop runs may coalesce into one callback. */
SOCKIT_API int sockit_loop_wake(sockit_loop *loop);
SOCKIT_API void sockit_loop_on_wake(sockit_loop *loop, sockit_loop_cb cb, void *arg);

/* The loop's cached monotonic time, updated once per iteration. */
SOCKIT_API uint64_t sockit_loop_now_ms(const sockit_loop *loop);
SOCKIT_API uint64_t sockit_loop_now_ns(const sockit_loop *loop);

/* The loop's backend: "epoll" or "io_uring". */
SOCKIT_API const char *sockit_loop_backend(const sockit_loop *loop);

#ifdef __cplusplus
}
#endif

#endif /* SOCKIT_LOOP_H */
