/* bench.c -- `sockit bench`: a load generator that checks every reply. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "sockit.h"

#define CMD "bench"
#define MAX_CONNS 1000000u
#define MAX_THREADS 256u
#define MAX_DEPTH 4096u
#define MAX_TCP_SIZE (16u << 20)
#define MAX_UDP_SIZE ((unsigned)SOCKIT_UDP_MAX)
#define MIN_ID 8 /* bytes of unique id a request must hold */
#define MAX_DURATION_MS (366ull * 86400 * 1000)

static const char usage_text[] =
	"usage: sockit bench [-m once|line|echo|udp] [-c CONNS] [-t THREADS] [-d DUR | -n "
	"REQUESTS]\n"
	"                    [-s SIZE] [-P DEPTH] [-R RATE] [--warmup DUR] [--timeout DUR]\n"
	"                    [--prefix STR] [--json] HOST PORT\n"
	"\n"
	"Loads a server that speaks sockit's protocol (or plain echo) and checks every reply\n"
	"byte for byte.  Exit 0 only if no request failed and at least one completed.\n"
	"\n"
	"  -m, --mode MODE      once (default): connect, send, read to EOF, expect "
	"PREFIX+request;\n"
	"                       line: persistent connections, expect PREFIX+line per line;\n"
	"                       echo: persistent connections, expect each line back verbatim;\n"
	"                       udp: datagrams, expect PREFIX+datagram per datagram\n"
	"  -c, --conns N        concurrent requests (once), connections (line, echo) or\n"
	"                       outstanding datagrams (udp); default 16\n"
	"  -t, --threads N      threads, each with its own event loop and share of -c; default 1\n"
	"  -d, --duration DUR   measure for DUR (500ms, 10s, 1m); default 10s\n"
	"  -n, --requests N     instead of -d: exactly N measured requests, then stop\n"
	"  -s, --size SIZE      bytes per request, newline included in line/echo (default 16;\n"
	"                       at least 8 plus the newline: each request carries a unique id)\n"
	"  -P, --depth N        requests in flight on each connection (line, echo); default 1\n"
	"  -R, --rate N         open loop: N requests/s in all, latency measured from when each\n"
	"                       request was due (coordinated omission corrected)\n"
	"      --warmup DUR     run DUR first, leaving it out of the figures (its errors count)\n"
	"      --timeout DUR    a request (with its connect) failing to finish in DUR is a\n"
	"                       timeout error; default 5s\n"
	"      --prefix STR     the reply prefix (default \"Received: \"; not in echo mode)\n"
	"      --json           print the result as one JSON object on stdout\n"
	"  -h, --help           this help;  -V, --version  the version\n"
	"\n"
	"Errors are counted by kind: mismatch, truncated, reset, refused, timeout, connect, "
	"other.\n"
	"Latency runs from sending a request (or from when it was due, with -R) to its verified\n"
	"reply, on CLOCK_MONOTONIC, in histograms with <= 0.4% error.  Ctrl-C prints the result\n"
	"so far.\n";

/* ---- arguments ---------------------------------------------------------- */

enum { OPT_WARMUP = 256, OPT_TIMEOUT, OPT_PREFIX, OPT_JSON };

static const struct option long_opts[] = {
	{"mode", required_argument, NULL, 'm'},
	{"conns", required_argument, NULL, 'c'},
	{"threads", required_argument, NULL, 't'},
	{"duration", required_argument, NULL, 'd'},
	{"requests", required_argument, NULL, 'n'},
	{"size", required_argument, NULL, 's'},
	{"depth", required_argument, NULL, 'P'},
	{"rate", required_argument, NULL, 'R'},
	{"warmup", required_argument, NULL, OPT_WARMUP},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"prefix", required_argument, NULL, OPT_PREFIX},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static const char *const mode_names[] = {"once", "line", "echo", "udp"};

static int parse_rate(const char *s, double *out)
{
	char *end;
	if (s == NULL || !(s[0] >= '0' && s[0] <= '9'))
		return -1;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0 || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

/* The option's name as the user wrote it, for messages. */
static const char *opt_name(int c, char *buf, size_t len)
{
	for (const struct option *o = long_opts; o->name != NULL; o++)
		if (o->val == c) {
			if (c < 256)
				snprintf(buf, len, "-%c", c);
			else
				snprintf(buf, len, "--%s", o->name);
			return buf;
		}
	snprintf(buf, len, "-%c", c);
	return buf;
}

/* Returns 0 to run, 2 after a usage error, -1 after --help/--version. */
static int parse_args(int argc, char **argv, struct bench_config *cfg)
{
	int have_d = 0, have_n = 0, have_p = 0, have_prefix = 0;
	uint64_t v;
	char name[32];
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = BENCH_ONCE;
	cfg->conns = 16;
	cfg->threads = 1;
	cfg->depth = 1;
	cfg->size = 16;
	cfg->duration_ms = 10000;
	cfg->timeout_ms = 5000;
	cfg->prefix = "Received: ";

	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":m:c:t:d:n:s:P:R:hV", long_opts, NULL)) != -1) {
		const char *o = opt_name(c, name, sizeof(name));
		switch (c) {
		case 'm': {
			int found = 0;
			for (unsigned i = 0; i < 4; i++)
				if (strcmp(optarg, mode_names[i]) == 0)
					cfg->mode = (enum bench_mode)i, found = 1;
			if (!found)
				return cli_usage(CMD,
						 "bad -m '%s': expected once, line, echo or udp",
						 optarg);
			break;
		}
		case 'c':
			if (cli_parse_u64(optarg, 1, MAX_CONNS, &v) < 0)
				return cli_usage(CMD, "bad %s '%s': expected 1..%u", o, optarg,
						 MAX_CONNS);
			cfg->conns = (unsigned)v;
			break;
		case 't':
			if (cli_parse_u64(optarg, 1, MAX_THREADS, &v) < 0)
				return cli_usage(CMD, "bad %s '%s': expected 1..%u", o, optarg,
						 MAX_THREADS);
			cfg->threads = (unsigned)v;
			break;
		case 'd':
			if (cli_parse_duration_ms(optarg, MAX_DURATION_MS, &v) < 0 || v == 0)
				return cli_usage(
					CMD, "bad %s '%s': expected a duration like 10s or 500ms",
					o, optarg);
			cfg->duration_ms = v;
			have_d = 1;
			break;
		case 'n':
			if (cli_parse_u64(optarg, 1, (uint64_t)1e15, &v) < 0)
				return cli_usage(CMD, "bad %s '%s': expected a count >= 1", o,
						 optarg);
			cfg->requests = v;
			have_n = 1;
			break;
		case 's':
			if (cli_parse_size(optarg, 1, MAX_TCP_SIZE, &v) < 0)
				return cli_usage(
					CMD, "bad %s '%s': expected a size like 16, 1k or 64KiB", o,
					optarg);
			cfg->size = (size_t)v;
			break;
		case 'P':
			if (cli_parse_u64(optarg, 1, MAX_DEPTH, &v) < 0)
				return cli_usage(CMD, "bad %s '%s': expected 1..%u", o, optarg,
						 MAX_DEPTH);
			cfg->depth = (unsigned)v;
			have_p = 1;
			break;
		case 'R':
			if (parse_rate(optarg, &cfg->rate) < 0)
				return cli_usage(CMD, "bad %s '%s': expected requests/s, > 0", o,
						 optarg);
			break;
		case OPT_WARMUP:
			if (cli_parse_duration_ms(optarg, MAX_DURATION_MS, &cfg->warmup_ms) < 0)
				return cli_usage(CMD, "bad %s '%s': expected a duration like 1s", o,
						 optarg);
			break;
		case OPT_TIMEOUT:
			if (cli_parse_duration_ms(optarg, 3600000, &cfg->timeout_ms) < 0 ||
			    cfg->timeout_ms == 0)
				return cli_usage(
					CMD, "bad %s '%s': expected a duration like 5s or 200ms", o,
					optarg);
			break;
		case OPT_PREFIX:
			cfg->prefix = optarg;
			have_prefix = 1;
			break;
		case OPT_JSON:
			cfg->json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case 'V':
			cli_print_version();
			return -1;
		default:
			return cli_bad_option(CMD, c, argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		return cli_usage(CMD, "expected HOST PORT, got %d argument%s", argc - optind,
				 argc - optind == 1 ? "" : "s");
	cfg->host = argv[optind];
	if (cli_parse_port(argv[optind + 1], 0, &cfg->port) < 0)
		return cli_usage(CMD, "bad PORT '%s': expected 1..65535", argv[optind + 1]);

	/* combinations */
	if (have_d && have_n)
		return cli_usage(CMD, "-d and -n exclude each other: stop by time or by count");
	if (have_n)
		cfg->duration_ms = 0;
	if (cfg->threads > cfg->conns)
		return cli_usage(CMD, "bad -t %u: more threads than -c %u", cfg->threads,
				 cfg->conns);
	int lined = cfg->mode == BENCH_LINE || cfg->mode == BENCH_ECHO;
	if (have_p && cfg->depth > 1 && !lined)
		return cli_usage(CMD, "-P applies to line and echo modes only");
	if (cfg->size < (size_t)MIN_ID + (size_t)lined)
		return cli_usage(CMD, "bad -s %zu: at least %d bytes in %s mode (a unique id%s)",
				 cfg->size, MIN_ID + lined, mode_names[cfg->mode],
				 lined ? " and the newline" : "");
	if (cfg->mode == BENCH_UDP && cfg->size > MAX_UDP_SIZE)
		return cli_usage(CMD, "bad -s %zu: a datagram holds at most %u bytes", cfg->size,
				 MAX_UDP_SIZE);
	if (have_prefix && cfg->mode == BENCH_ECHO)
		return cli_usage(CMD,
				 "--prefix does not apply to echo mode (replies are the lines)");
	cfg->prefix_len = cfg->mode == BENCH_ECHO ? 0 : strlen(cfg->prefix);
	if (cfg->mode == BENCH_UDP && cfg->size + cfg->prefix_len > MAX_UDP_SIZE)
		return cli_usage(CMD, "bad -s %zu: the reply (prefix + request) exceeds a datagram",
				 cfg->size);
	return 0;
}

/* ---- the target ----------------------------------------------------------- */

/* Resolves HOST; with several addresses (TCP), takes the first that accepts
 * a connection.  Returns 0 or prints why not and returns 1. */
static int resolve_target(struct bench_config *cfg)
{
	sockit_addr addrs[8];
	int type = cfg->mode == BENCH_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int n = sockit_resolve(cfg->host, cfg->port, AF_UNSPEC, type, 0, addrs, 8);
	if (n < 0) {
		fprintf(stderr, "sockit bench: cannot resolve '%s': %s\n", cfg->host,
			sockit_strerror(n));
		return 1;
	}
	cfg->addr = addrs[0];
	for (int i = 0; n > 1 && type == SOCK_STREAM && i < n; i++) {
		int fd = sockit_socket(addrs[i].ss.ss_family, SOCK_STREAM);
		int rc = fd < 0 ? fd : sockit_connect(fd, &addrs[i], 1000);
		if (fd >= 0)
			sockit_close(fd);
		if (rc == 0) {
			cfg->addr = addrs[i];
			break;
		}
	}
	return 0;
}

/* Room for every connection's descriptor: raise the soft limit if needed. */
static int check_fd_limit(const struct bench_config *cfg)
{
	if (cfg->mode == BENCH_UDP)
		return 0;
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->conns + 16 + 4 * cfg->threads;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need) {
		fprintf(stderr,
			"sockit bench: -c %u needs %llu descriptors; the limit is %llu (ulimit "
			"-n)\n",
			cfg->conns, (unsigned long long)need, (unsigned long long)rl.rlim_max);
		return 1;
	}
	return 0;
}

/* ---- the report ----------------------------------------------------------- */

struct outcome {
	struct bench_result r; /* merged */
	double elapsed_s;
	uint64_t errors_total;
	int interrupted;
};

/* "812 µs", "4.51 ms", "1.20 s" */
static const char *fmt_us(double us, char *buf, size_t len)
{
	if (us < 10)
		snprintf(buf, len, "%.1f µs", us);
	else if (us < 1000)
		snprintf(buf, len, "%.0f µs", us);
	else if (us < 1e6)
		snprintf(buf, len, "%.2f ms", us / 1e3);
	else
		snprintf(buf, len, "%.2f s", us / 1e6);
	return buf;
}

static const char *fmt_bytes(double b, char *buf, size_t len)
{
	if (b < 1e3)
		snprintf(buf, len, "%.0f B", b);
	else if (b < 1e6)
		snprintf(buf, len, "%.1f kB", b / 1e3);
	else if (b < 1e9)
		snprintf(buf, len, "%.1f MB", b / 1e6);
	else
		snprintf(buf, len, "%.2f GB", b / 1e9);
	return buf;
}

static double pct_us(const struct hist *h, double p)
{
	return (double)hist_percentile(h, p) / 1e3;
}

/* Prints s right-aligned in width columns ("µ" is two bytes, one column). */
static void print_col(const char *s, int width)
{
	int cols = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		cols += (*p & 0xc0) != 0x80;
	printf("%*s%s", width > cols ? width - cols : 0, "", s);
}

static void text_hist_row(const char *label, const struct hist *h)
{
	char b[24];
	double v[7] = {(double)hist_min(h) / 1e3,
		       hist_mean(h) / 1e3,
		       pct_us(h, 50),
		       pct_us(h, 90),
		       pct_us(h, 99),
		       pct_us(h, 99.9),
		       (double)hist_max(h) / 1e3};
	printf("  %-10s", label);
	for (int i = 0; i < 7; i++)
		print_col(fmt_us(v[i], b, sizeof(b)), 10);
	putchar('\n');
}

static double rate_achieved(const struct outcome *o)
{
	return o->elapsed_s > 0 ? (double)o->r.requests / o->elapsed_s : 0.0;
}

/* Sustained: at the end, requests due but not yet sent (no free connection,
 * or the tool too slow) are at most 1% of the window's. */
static int rate_sustained(const struct bench_config *cfg, const struct outcome *o)
{
	double allowed = 0.01 * cfg->rate * o->elapsed_s;
	return (double)o->r.rate_behind <= (allowed > 1 ? allowed : 1);
}

static void report_text(const struct bench_config *cfg, const struct outcome *o)
{
	const struct bench_result *r = &o->r;
	char addr[SOCKIT_ADDRSTRLEN], b1[32], b2[32];
	if (sockit_addr_format(&cfg->addr, addr, sizeof(addr)) < 0)
		snprintf(addr, sizeof(addr), "%s:%d", cfg->host, cfg->port);
	printf("sockit bench: %s %s, ", mode_names[cfg->mode], addr);
	if (cfg->mode == BENCH_ONCE)
		printf("%u concurrent", cfg->conns);
	else if (cfg->mode == BENCH_UDP)
		printf("%u outstanding", cfg->conns);
	else
		printf("%u connections x %u in flight", cfg->conns, cfg->depth);
	printf(", %u thread%s, %zu-byte requests", cfg->threads, cfg->threads == 1 ? "" : "s",
	       cfg->size);
	if (cfg->requests)
		printf(", %llu requests", (unsigned long long)cfg->requests);
	else
		printf(", %.3g s", (double)cfg->duration_ms / 1e3);
	if (cfg->rate > 0)
		printf(" at %.6g/s", cfg->rate);
	if (cfg->warmup_ms)
		printf(" after %.3g s warm-up", (double)cfg->warmup_ms / 1e3);
	printf("%s\n", o->interrupted ? " (interrupted)" : "");

	printf("  requests   %llu verified in %.2f s = %.1f req/s\n",
	       (unsigned long long)r->requests, o->elapsed_s, rate_achieved(o));
	if (o->elapsed_s > 0)
		printf("  bytes/s    out %s, in %s\n",
		       fmt_bytes((double)r->bytes_out / o->elapsed_s, b1, sizeof(b1)),
		       fmt_bytes((double)r->bytes_in / o->elapsed_s, b2, sizeof(b2)));
	if (r->requests > 0) {
		printf("  %-10s%10s%10s%10s%10s%10s%10s%10s\n", "", "min", "mean", "p50", "p90",
		       "p99", "p99.9", "max");
		text_hist_row("latency", &r->latency);
		if (cfg->mode == BENCH_ONCE && r->connect.count > 0)
			text_hist_row("connect", &r->connect);
		printf("  over 100ms %llu\n", (unsigned long long)r->over_100ms);
	}
	if (cfg->rate > 0)
		printf("  rate       target %.6g/s, achieved %.1f/s: %s\n", cfg->rate,
		       rate_achieved(o), rate_sustained(cfg, o) ? "sustained" : "NOT sustained");
	if (cfg->rate > 0 && !rate_sustained(cfg, o))
		printf("             %llu requests were due but not sent at the end\n",
		       (unsigned long long)r->rate_behind);
	if (cfg->rate > 0 && r->send_lag.count > 0)
		text_hist_row("send lag", &r->send_lag);
	if (cfg->mode == BENCH_UDP)
		printf("  late       %llu replies after their timeout\n",
		       (unsigned long long)r->late);
	printf("  errors     %llu", (unsigned long long)o->errors_total);
	const char *sep = " (";
	for (int k = 0; k < ERR_KINDS; k++)
		if (r->errors[k]) {
			printf("%s%s %llu", sep, bench_err_name(k),
			       (unsigned long long)r->errors[k]);
			sep = ", ";
		}
	printf("%s\n", o->errors_total ? ")" : "");
}

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void json_hist(const char *key, const struct hist *h)
{
	printf("\"%s\":", key);
	if (h == NULL) {
		printf("null");
		return;
	}
	if (h->count == 0) {
		printf("{\"min\":null,\"mean\":null,\"p50\":null,\"p90\":null,\"p99\":null,"
		       "\"p999\":null,\"max\":null}");
		return;
	}
	printf("{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
	       "\"max\":%.3f}",
	       (double)hist_min(h) / 1e3, hist_mean(h) / 1e3, pct_us(h, 50), pct_us(h, 90),
	       pct_us(h, 99), pct_us(h, 99.9), (double)hist_max(h) / 1e3);
}

static void report_json(const struct bench_config *cfg, const struct outcome *o)
{
	const struct bench_result *r = &o->r;
	printf("{\"mode\":\"%s\",\"host\":", mode_names[cfg->mode]);
	json_str(cfg->host);
	printf(",\"port\":%d,\"conns\":%u,\"threads\":%u,\"depth\":%u,\"size\":%zu,", cfg->port,
	       cfg->conns, cfg->threads, cfg->depth, cfg->size);
	if (cfg->requests)
		printf("\"duration_s\":null,\"requests_target\":%llu,",
		       (unsigned long long)cfg->requests);
	else
		printf("\"duration_s\":%.3f,\"requests_target\":null,",
		       (double)cfg->duration_ms / 1e3);
	if (cfg->rate > 0)
		printf("\"rate_target\":%.3f,", cfg->rate);
	else
		printf("\"rate_target\":null,");
	printf("\"warmup_s\":%.3f,\"prefix\":", (double)cfg->warmup_ms / 1e3);
	json_str(cfg->mode == BENCH_ECHO ? "" : cfg->prefix);
	printf(",\"requests\":%llu,\"errors\":{", (unsigned long long)r->requests);
	for (int k = 0; k < ERR_KINDS; k++)
		printf("%s\"%s\":%llu", k ? "," : "", bench_err_name(k),
		       (unsigned long long)r->errors[k]);
	double el = o->elapsed_s;
	printf("},\"errors_total\":%llu,\"late\":%llu,\"elapsed_s\":%.6f,\"rps\":%.3f,"
	       "\"bytes_out_per_s\":%.1f,\"bytes_in_per_s\":%.1f,",
	       (unsigned long long)o->errors_total, (unsigned long long)r->late, el,
	       rate_achieved(o), el > 0 ? (double)r->bytes_out / el : 0.0,
	       el > 0 ? (double)r->bytes_in / el : 0.0);
	json_hist("latency_us", &r->latency);
	putchar(',');
	json_hist("connect_us", cfg->mode == BENCH_ONCE ? &r->connect : NULL);
	printf(",\"over_100ms\":%llu,", (unsigned long long)r->over_100ms);
	if (cfg->rate > 0)
		printf("\"rate_achieved\":%.3f,\"rate_sustained\":%s,\"requests_behind\":%llu,",
		       rate_achieved(o), rate_sustained(cfg, o) ? "true" : "false",
		       (unsigned long long)r->rate_behind);
	else
		printf("\"rate_achieved\":null,\"rate_sustained\":null,\"requests_behind\":null,");
	json_hist("send_lag_us", cfg->rate > 0 ? &r->send_lag : NULL);
	putchar(',');
	printf("\"interrupted\":%s}\n", o->interrupted ? "true" : "false");
}

/* ---- the run ------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A worker tells the main thread it has finished. */
static void worker_done(void *arg)
{
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
}

static void progress(struct bench_worker **ws, unsigned n, const struct bench_clock *clk)
{
	uint64_t req = 0, err = 0, now = mono_ns();
	for (unsigned i = 0; i < n; i++) {
		uint64_t a, b;
		bench_worker_progress(ws[i], &a, &b);
		req += a;
		err += b;
	}
	if (now < clk->measure) {
		fprintf(stderr, "\rsockit bench: warming up, %.1f s left, %llu errors\033[K",
			(double)(clk->measure - now) / 1e9, (unsigned long long)err);
	} else {
		double s = (double)(now - clk->measure) / 1e9;
		fprintf(stderr,
			"\rsockit bench: %.1f s, %llu requests, %.0f req/s, %llu errors\033[K", s,
			(unsigned long long)req, s > 0 ? (double)req / s : 0.0,
			(unsigned long long)err);
	}
	fflush(stderr);
}

/* Runs the workers until they finish or a signal stops them; returns 1 if
 * interrupted. */
static int wait_workers(struct bench_worker **ws, unsigned n, const struct bench_clock *clk,
			const sigset_t *sigs)
{
	int tty = isatty(STDERR_FILENO), interrupted = 0;
	for (;;) {
		unsigned done = 0;
		for (unsigned i = 0; i < n; i++)
			done += (unsigned)bench_worker_finished(ws[i]);
		if (done == n)
			break;
		struct timespec ts = {.tv_sec = 1};
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM) {
			interrupted = 1;
			for (unsigned i = 0; i < n; i++)
				bench_worker_stop(ws[i]);
			break;
		}
		if (tty && sig < 0)
			progress(ws, n, clk);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	return interrupted;
}

/* floor(n * part / whole) without overflow (n < 2^50, whole < 2^20). */
static uint64_t share(uint64_t n, unsigned part, unsigned whole)
{
	return (uint64_t)((unsigned __int128)n * part / whole);
}

static int run(struct bench_config *cfg)
{
	struct bench_tmpl tm;
	struct bench_clock clk;
	struct outcome o;
	int rc = 1;
	if (resolve_target(cfg) || check_fd_limit(cfg))
		return 1;
	if (bench_tmpl_init(&tm, cfg) < 0) {
		fprintf(stderr, "sockit bench: out of memory\n");
		return 1;
	}
	struct bench_worker **ws = calloc(cfg->threads, sizeof(*ws));
	memset(&o, 0, sizeof(o));
	hist_init(&o.r.latency);
	hist_init(&o.r.connect);
	hist_init(&o.r.send_lag);

	/* Signals go to sigtimedwait in this thread only; workers inherit the mask. */
	sigset_t sigs, old;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	pthread_t self = pthread_self();

	clk.start = mono_ns();
	clk.measure = clk.start + cfg->warmup_ms * 1000000ull;
	clk.end = cfg->requests ? UINT64_MAX : clk.measure + cfg->duration_ms * 1000000ull;
	unsigned started = 0;
	/* Each thread gets its share of the connections, and the same share of
	 * the rate and of -n (so that all finish together). */
	unsigned conns_before = 0;
	for (unsigned i = 0; ws != NULL && i < cfg->threads; i++) {
		unsigned conns = cfg->conns / cfg->threads + (i < cfg->conns % cfg->threads);
		uint64_t quota = UINT64_MAX;
		if (cfg->requests)
			quota = share(cfg->requests, conns_before + conns, cfg->conns) -
				share(cfg->requests, conns_before, cfg->conns);
		conns_before += conns;
		double rate = cfg->rate * conns / cfg->conns;
		ws[i] = bench_worker_new(cfg, &tm, &clk, i, conns, quota, rate);
		if (ws[i] == NULL) {
			fprintf(stderr, "sockit bench: cannot set up thread %u: out of memory\n",
				i);
			break;
		}
		int e = bench_worker_start(ws[i], worker_done, &self);
		if (e < 0) {
			fprintf(stderr, "sockit bench: cannot start thread %u: %s\n", i,
				sockit_strerror(e));
			break;
		}
		started++;
	}
	if (ws == NULL) {
		fprintf(stderr, "sockit bench: out of memory\n");
	} else if (started < cfg->threads) {
		for (unsigned i = 0; i < started; i++)
			bench_worker_stop(ws[i]);
	} else {
		o.interrupted = wait_workers(ws, cfg->threads, &clk, &sigs);
	}
	uint64_t stop = clk.measure;
	for (unsigned i = 0; ws != NULL && i < cfg->threads && ws[i] != NULL; i++) {
		const struct bench_result *r = bench_worker_join(ws[i]);
		o.r.requests += r->requests;
		for (int k = 0; k < ERR_KINDS; k++)
			o.r.errors[k] += r->errors[k];
		o.r.late += r->late;
		o.r.over_100ms += r->over_100ms;
		o.r.rate_behind += r->rate_behind;
		o.r.bytes_out += r->bytes_out;
		o.r.bytes_in += r->bytes_in;
		if (r->stop_ns > stop)
			stop = r->stop_ns;
		hist_merge(&o.r.latency, &r->latency);
		hist_merge(&o.r.connect, &r->connect);
		hist_merge(&o.r.send_lag, &r->send_lag);
	}
	if (ws != NULL && started == cfg->threads) {
		o.elapsed_s = (double)(stop - clk.measure) / 1e9;
		for (int k = 0; k < ERR_KINDS; k++)
			o.errors_total += o.r.errors[k];
		if (cfg->json)
			report_json(cfg, &o);
		else
			report_text(cfg, &o);
		fflush(stdout);
		if (o.r.requests == 0)
			fprintf(stderr, "sockit bench: no request completed\n");
		rc = o.errors_total == 0 && o.r.requests > 0 ? 0 : 1;
	}
	for (unsigned i = 0; ws != NULL && i < cfg->threads; i++)
		bench_worker_free(ws[i]);
	free(ws);
	bench_tmpl_free(&tm);
	/* A SIGUSR1 still pending from a worker must not outlive the mask. */
	struct timespec zero = {0};
	while (sigtimedwait(&sigs, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_config cfg;
	int rc = parse_args(argc, argv, &cfg);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	return run(&cfg);
}
