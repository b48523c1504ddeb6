/*
 * lg2.c -- the second load generator of `make bench`: once mode only, simple,
 * and unlike `sockit bench` in the two ways that could flatter a server's
 * figures: how connects arrive, and who closes first.
 *
 * Usage: lg2 [-c CONNS] [-d SECONDS] [-s SIZE] [-p jitter|burst] [-j US]
 *            [-T US] [-k first|last] [-w SECONDS] (HOST PORT | -U PATH)
 *
 * CONNS slots (default 16), one thread, level-triggered epoll.  Each slot:
 * non-blocking connect, wait for writability, send SIZE bytes (default 16:
 * a unique decimal id padded with '.', then '\n'), then, with -k first (the
 * default), shutdown(SHUT_WR): the client's FIN goes out right behind its
 * request; read to EOF; check the reply is exactly "Received: " + request;
 * close.  -k last: close only after EOF, as `sockit bench` does.
 * Pacing: -p jitter (default) starts a slot's next connect a random 0..US
 * microseconds (-j, default 50) after its last one ended; -p burst starts
 * every idle slot together once per tick of US microseconds (-T, default
 * 200), so connects arrive in bursts.
 *
 * Prints one JSON object: requests (verified, completed within -d seconds,
 * default 2), errors_total and errors by kind (connect, reset, truncated,
 * mismatch, timeout: no reply within -w seconds, default 5), duration_ms,
 * rate_per_s, latency_ms {p50, p99, max} from connect to verified EOF, and
 * over_100ms.  Exit 0 if at least one request completed and none failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "Received: "
#define PREFIX_LEN 10
#define MAX_SIZE 1024
#define MAX_EVENTS 1024
#define HIST_US 1000000 /* latency buckets of 1 us up to 1 s, then one more */

enum state { S_IDLE, S_CONNECTING, S_READING };
enum err { E_CONNECT, E_RESET, E_TRUNCATED, E_MISMATCH, E_TIMEOUT, E_KINDS };
static const char *err_names[E_KINDS] = {"connect", "reset", "truncated", "mismatch", "timeout"};

struct slot {
	int fd;
	enum state state;
	uint64_t t0, due;
	size_t got, req_len;
	char req[MAX_SIZE];
	char rx[PREFIX_LEN + MAX_SIZE + 1];
};

static struct {
	int conns, burst, close_first;
	double seconds, timeout;
	unsigned jitter_us, tick_us;
	size_t size;
	struct sockaddr_storage addr;
	socklen_t addr_len;
} cfg = {16, 0, 1, 2.0, 5.0, 50, 200, 16, {0}, 0};

static struct slot *slots;
static int ep;
static uint64_t next_id, requests, errors[E_KINDS], over_100ms, end_ns;
static uint32_t hist[HIST_US + 1];
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rand64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void schedule(struct slot *s, uint64_t now)
{
	if (cfg.burst) {
		uint64_t tick = (uint64_t)cfg.tick_us * 1000;
		s->due = (now / tick + 1) * tick;
	} else {
		s->due = now + (rand64() % (cfg.jitter_us + 1)) * 1000;
	}
}

static void slot_end(struct slot *s, int kind, uint64_t now)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->state = S_IDLE;
	if (now < end_ns) {
		if (kind >= 0) {
			errors[kind]++;
		} else {
			uint64_t us = (now - s->t0) / 1000;
			requests++;
			hist[us < HIST_US ? us : HIST_US]++;
			over_100ms += us > 100000;
		}
	}
	schedule(s, now);
}

static void slot_start(struct slot *s, uint64_t now)
{
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
	uint64_t id = next_id++;
	int n;

	s->t0 = now;
	s->got = 0;
	n = snprintf(s->req, sizeof(s->req), "%llu", (unsigned long long)id);
	memset(s->req + n, '.', cfg.size - 1 - (size_t)n);
	s->req[cfg.size - 1] = '\n';
	s->req_len = cfg.size;
	s->fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		slot_end(s, E_CONNECT, now);
		return;
	}
	if (connect(s->fd, (struct sockaddr *)&cfg.addr, cfg.addr_len) < 0 &&
	    errno != EINPROGRESS) {
		slot_end(s, E_CONNECT, now);
		return;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		slot_end(s, E_CONNECT, now);
		return;
	}
	s->state = S_CONNECTING;
}

static void slot_writable(struct slot *s, uint64_t now)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		slot_end(s, E_CONNECT, now);
		return;
	}
	/* 16 bytes always fit a fresh socket's send buffer. */
	if (send(s->fd, s->req, s->req_len, MSG_NOSIGNAL) != (ssize_t)s->req_len) {
		slot_end(s, E_RESET, now);
		return;
	}
	if (cfg.close_first)
		(void)shutdown(s->fd, SHUT_WR);
	if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) < 0) {
		slot_end(s, E_RESET, now);
		return;
	}
	s->state = S_READING;
}

static void slot_readable(struct slot *s, uint64_t now)
{
	size_t want = PREFIX_LEN + s->req_len;
	ssize_t n = recv(s->fd, s->rx + s->got, sizeof(s->rx) - s->got, 0);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			slot_end(s, E_RESET, now);
		return;
	}
	if (n > 0) {
		s->got += (size_t)n;
		if (s->got > want)
			slot_end(s, E_MISMATCH, now);
		return;
	}
	if (s->got < want)
		slot_end(s, E_TRUNCATED, now);
	else if (memcmp(s->rx, PREFIX, PREFIX_LEN) ||
		 memcmp(s->rx + PREFIX_LEN, s->req, s->req_len))
		slot_end(s, E_MISMATCH, now);
	else
		slot_end(s, -1, now);
}

/* Starts the slots that are due; returns the nanoseconds until the next
 * one is (capped at 10 ms, for the timeouts), and fails overdue requests. */
static uint64_t tick(uint64_t now)
{
	uint64_t next = 10000000, tmo = (uint64_t)(cfg.timeout * 1e9);

	for (int i = 0; i < cfg.conns; i++) {
		struct slot *s = &slots[i];
		if (s->state == S_IDLE && s->due <= now && now < end_ns)
			slot_start(s, now);
		if (s->state == S_IDLE && s->due > now && s->due - now < next)
			next = s->due - now;
		else if (s->state != S_IDLE && now - s->t0 > tmo)
			slot_end(s, s->state == S_CONNECTING ? E_CONNECT : E_TIMEOUT, now);
	}
	return next;
}

static double percentile(double p)
{
	uint64_t rank = (uint64_t)(p * (double)requests), seen = 0;

	for (uint32_t us = 0; us <= HIST_US; us++) {
		seen += hist[us];
		if (seen > rank)
			return us / 1000.0 + 0.0005; /* the bucket's middle */
	}
	return 0;
}

static void report(double secs)
{
	uint64_t total = 0;
	double max = 0;

	printf("{\"tool\":\"lg2\",\"mode\":\"once\",\"conns\":%d,\"size\":%zu,\"pace\":\"%s\","
	       "\"close\":\"%s\",\"requests\":%llu,\"errors\":{",
	       cfg.conns, cfg.size, cfg.burst ? "burst" : "jitter",
	       cfg.close_first ? "first" : "last", (unsigned long long)requests);
	for (int k = 0; k < E_KINDS; k++) {
		printf("%s\"%s\":%llu", k ? "," : "", err_names[k], (unsigned long long)errors[k]);
		total += errors[k];
	}
	for (uint32_t us = 0; us <= HIST_US; us++)
		if (hist[us])
			max = us / 1000.0;
	printf("},\"errors_total\":%llu,\"duration_ms\":%.3f,\"rate_per_s\":%.3f,"
	       "\"latency_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.3f},\"over_100ms\":%llu}\n",
	       (unsigned long long)total, secs * 1000, requests / secs,
	       requests ? percentile(0.5) : 0, requests ? percentile(0.99) : 0, max,
	       (unsigned long long)over_100ms);
}

static void usage(void)
{
	fprintf(stderr, "usage: lg2 [-c CONNS] [-d SECONDS] [-s SIZE] [-p jitter|burst] [-j US] "
			"[-T US] [-k first|last] [-w SECONDS] (HOST PORT | -U PATH)\n");
	exit(2);
}

static void resolve(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo(host, port, &hints, &ai);

	if (rc) {
		fprintf(stderr, "lg2: %s: %s\n", host, gai_strerror(rc));
		exit(1);
	}
	memcpy(&cfg.addr, ai->ai_addr, ai->ai_addrlen);
	cfg.addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void parse(int argc, char **argv)
{
	const char *unix_path = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "c:d:s:p:j:T:k:w:U:")) != -1) {
		switch (opt) {
		case 'c':
			cfg.conns = atoi(optarg);
			break;
		case 'd':
			cfg.seconds = atof(optarg);
			break;
		case 's':
			cfg.size = (size_t)atol(optarg);
			break;
		case 'p':
			cfg.burst = !strcmp(optarg, "burst");
			break;
		case 'j':
			cfg.jitter_us = (unsigned)atol(optarg);
			break;
		case 'T':
			cfg.tick_us = (unsigned)atol(optarg);
			break;
		case 'k':
			cfg.close_first = !strcmp(optarg, "first");
			break;
		case 'w':
			cfg.timeout = atof(optarg);
			break;
		case 'U':
			unix_path = optarg;
			break;
		default:
			usage();
		}
	}
	if (cfg.conns < 1 || cfg.seconds <= 0 || cfg.size < 8 || cfg.size > MAX_SIZE ||
	    cfg.tick_us < 1 || cfg.timeout <= 0)
		usage();
	if (unix_path) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&cfg.addr;
		if (optind != argc || strlen(unix_path) >= sizeof(sun->sun_path))
			usage();
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, unix_path);
		cfg.addr_len = sizeof(*sun);
	} else {
		if (optind + 2 != argc)
			usage();
		resolve(argv[optind], argv[optind + 1]);
	}
}

int main(int argc, char **argv)
{
	static struct epoll_event evs[MAX_EVENTS];
	struct rlimit rl;
	uint64_t start, now;

	parse(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	slots = calloc((size_t)cfg.conns, sizeof(*slots));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!slots || ep < 0) {
		perror("lg2");
		return 1;
	}
	start = now_ns();
	end_ns = start + (uint64_t)(cfg.seconds * 1e9);
	for (int i = 0; i < cfg.conns; i++) {
		slots[i].fd = -1;
		schedule(&slots[i], start);
	}
	for (now = start; now < end_ns; now = now_ns()) {
		uint64_t wait = tick(now);
		struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
		int n = epoll_pwait2(ep, evs, MAX_EVENTS, &ts, NULL);
		now = now_ns();
		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;
			if (s->state == S_CONNECTING)
				slot_writable(s, now);
			else if (s->state == S_READING)
				slot_readable(s, now);
		}
	}
	report((double)(end_ns - start) / 1e9);
	return requests && !(errors[0] + errors[1] + errors[2] + errors[3] + errors[4]) ? 0 : 1;
}
