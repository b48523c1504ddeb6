/* exposition.c -- the Prometheus text format (0.0.4): serve's counters, gauges, histogram, process.
 *
 * Every counter of SERVE_COUNTERS appears without a line here: the names
 * map to metric families by rule (closed_X -> sockit_connections_closed_total
 * {reason="X"}, refused_X and dgrams_dropped_X likewise), by the small
 * table below, or else as sockit_NAME_total.  Reads the workers' state
 * with relaxed loads only; the process_* metrics come from /proc as the
 * Prometheus client libraries read them.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "worker.h"

/* ---- The buffer ------------------------------------------------------------ */

void mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	for (int pass = 0; pass < 2 && !b->oom; pass++) {
		size_t room = b->cap - b->len;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

void mbuf_free(struct mbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- The counters ------------------------------------------------------------ */

struct family {
	const char *prefix; /* a counter name, or with a trailing '_' a prefix */
	const char *metric; /* NULL: not a counter here (a gauge of its own) */
	const char *help;
};

static const struct family families[] = {
	{"active", NULL, NULL},
	{"accepted", "sockit_connections_accepted_total", "TCP connections accepted."},
	{"refused_", "sockit_connections_refused_total",
	 "TCP connections refused at accept, by reason."},
	{"closed_", "sockit_connections_closed_total", "TCP connections closed, by reason."},
	{"bytes_in", "sockit_received_bytes_total", "Bytes received from clients (TCP and UDP)."},
	{"bytes_out", "sockit_sent_bytes_total", "Bytes sent to clients (TCP and UDP)."},
	{"dgrams_in", "sockit_datagrams_received_total", "UDP datagrams received."},
	{"dgrams_out", "sockit_datagrams_sent_total", "UDP datagrams sent."},
	{"dgrams_dropped_", "sockit_datagrams_dropped_total",
	 "UDP datagrams dropped unanswered, by reason."},
	{"cpu_yields", "sockit_cpu_yields_total",
	 "Times a worker gave its CPU to a sibling before sleeping."},
};

struct counter {
	const char *name;
	size_t off;
};

static const struct counter counters[] = {
#define SERVE_COUNTER_ENTRY(n) {#n, offsetof(struct serve_counters, n)},
	SERVE_COUNTERS(SERVE_COUNTER_ENTRY)
#undef SERVE_COUNTER_ENTRY
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))

/* The family of counter name, with the reason label (or NULL) in *label;
 * NULL when it is not exported as a counter.  Unknown names: a family of
 * their own, written into buf. */
static const struct family *family_of(const char *name, const char **label, struct family *own,
				      char *buf, size_t len)
{
	*label = NULL;
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const struct family *f = &families[i];
		size_t n = strlen(f->prefix);
		if (f->prefix[n - 1] == '_' && strncmp(name, f->prefix, n) == 0) {
			*label = name + n;
			return f;
		}
		if (strcmp(name, f->prefix) == 0)
			return f->metric != NULL ? f : NULL;
	}
	snprintf(buf, len, "sockit_%s_total", name);
	own->prefix = name;
	own->metric = buf;
	own->help = "A serve counter (the counters line's name without sockit_ and _total).";
	return own;
}

static uint64_t counter_sum(const struct serve_shared *sh, size_t off)
{
	uint64_t v = 0;
	for (int i = 0; i < sh->nworkers; i++) {
		const uint64_t *p = (const uint64_t *)((const char *)&sh->workers[i].ctr + off);
		v += __atomic_load_n(p, __ATOMIC_RELAXED);
	}
	return v;
}

/* Each family once, its HELP and TYPE, then every counter in it. */
static void render_counters(struct mbuf *b, const struct serve_shared *sh)
{
	char done[NCOUNTERS] = {0};
	for (size_t i = 0; i < NCOUNTERS; i++) {
		const char *label;
		char buf[128], buf2[128];
		struct family own, own2;
		const struct family *f =
			family_of(counters[i].name, &label, &own, buf, sizeof(buf));
		if (done[i] || f == NULL)
			continue;
		mbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", f->metric, f->help, f->metric);
		for (size_t j = i; j < NCOUNTERS; j++) {
			const struct family *g =
				family_of(counters[j].name, &label, &own2, buf2, sizeof(buf2));
			if (g == NULL || strcmp(g->metric, f->metric) != 0)
				continue;
			done[j] = 1;
			unsigned long long v = counter_sum(sh, counters[j].off);
			if (label != NULL)
				mbuf_printf(b, "%s{reason=\"%s\"} %llu\n", f->metric, label, v);
			else
				mbuf_printf(b, "%s %llu\n", f->metric, v);
		}
	}
}

/* ---- Gauges and the histogram ------------------------------------------------- */

static void render_gauges(struct mbuf *b, const struct serve_shared *sh)
{
	uint64_t total = 0;
	mbuf_printf(b, "# HELP sockit_connections_active Open TCP connections, per worker.\n"
		       "# TYPE sockit_connections_active gauge\n");
	for (int i = 0; i < sh->nworkers; i++) {
		uint64_t v = __atomic_load_n(&sh->workers[i].ctr.active, __ATOMIC_RELAXED);
		total += v;
		mbuf_printf(b, "sockit_connections_active{worker=\"%d\"} %llu\n", i,
			    (unsigned long long)v);
	}
	mbuf_printf(b,
		    "# HELP sockit_connections_open Open TCP connections, all workers.\n"
		    "# TYPE sockit_connections_open gauge\nsockit_connections_open %llu\n",
		    (unsigned long long)total);
	mbuf_printf(b,
		    "# HELP sockit_workers Worker threads.\n"
		    "# TYPE sockit_workers gauge\nsockit_workers %d\n",
		    sh->nworkers);
	mbuf_printf(b,
		    "# HELP sockit_draining 1 while the server drains (stopping or upgraded).\n"
		    "# TYPE sockit_draining gauge\nsockit_draining %d\n",
		    __atomic_load_n(&sh->draining, __ATOMIC_RELAXED) ? 1 : 0);
	mbuf_printf(b,
		    "# HELP sockit_build_info The running version.\n"
		    "# TYPE sockit_build_info gauge\nsockit_build_info{version=\"%s\"} 1\n",
		    sockit_version());
}

static void render_histogram(struct mbuf *b, const struct serve_shared *sh)
{
	static const char m[] = "sockit_connection_duration_seconds";
	uint64_t cum = 0, sum_us = 0;
	mbuf_printf(b,
		    "# HELP %s TCP connections from accept to close (in steps of the worker "
		    "loop's clock).\n# TYPE %s histogram\n",
		    m, m);
	for (int k = 0; k < DUR_BUCKETS; k++) {
		for (int i = 0; i < sh->nworkers; i++)
			cum += __atomic_load_n(&sh->workers[i].dur.bucket[k], __ATOMIC_RELAXED);
		if (k < DUR_FINITE)
			mbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", m,
				    (double)((uint64_t)DUR_BASE_US << k) / 1e6,
				    (unsigned long long)cum);
		else
			mbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", m, (unsigned long long)cum);
	}
	for (int i = 0; i < sh->nworkers; i++)
		sum_us += __atomic_load_n(&sh->workers[i].dur.sum_us, __ATOMIC_RELAXED);
	mbuf_printf(b, "%s_sum %.6f\n%s_count %llu\n", m, (double)sum_us / 1e6, m,
		    (unsigned long long)cum);
}

/* ---- process_*: as the Prometheus client libraries name and read them ----------- */

/* /proc/self/stat fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize),
 * 24 (rss); and /proc/stat's btime.  0, or -1 when unreadable. */
static int read_stat(unsigned long long f[5], unsigned long long *btime)
{
	char buf[1024];
	FILE *fp = fopen("/proc/self/stat", "re");
	if (fp == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command name may hold anything */
	if (p == NULL || sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
				"%*d %*d %*d %*d %llu %llu %llu",
				&f[0], &f[1], &f[2], &f[3], &f[4]) != 5)
		return -1;
	*btime = 0;
	fp = fopen("/proc/stat", "re");
	if (fp == NULL)
		return -1;
	char line[256];
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "btime %llu", btime) == 1)
			break;
	fclose(fp);
	return 0;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static void gauge(struct mbuf *b, const char *name, const char *type, const char *help, double v)
{
	mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, v);
}

static void render_process(struct mbuf *b)
{
	unsigned long long f[5], btime;
	double tck = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
	if (read_stat(f, &btime) == 0 && tck > 0) {
		gauge(b, "process_cpu_seconds_total", "counter",
		      "Total user and system CPU time spent in seconds.",
		      (double)(f[0] + f[1]) / tck);
		gauge(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		      (double)f[3]);
		gauge(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		      (double)f[4] * page);
		if (btime > 0)
			gauge(b, "process_start_time_seconds", "gauge",
			      "Start time of the process since unix epoch in seconds.",
			      (double)btime + (double)f[2] / tck);
	}
	long fds = open_fds();
	if (fds >= 0)
		gauge(b, "process_open_fds", "gauge", "Number of open file descriptors.",
		      (double)fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
		      rl.rlim_cur == RLIM_INFINITY ? 1.8446744073709552e19 : (double)rl.rlim_cur);
}

void metrics_render(struct mbuf *b, const struct serve_shared *sh)
{
	render_counters(b, sh);
	render_gauges(b, sh);
	render_histogram(b, sh);
	render_process(b);
}
