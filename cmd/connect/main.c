/* connect.c -- `sockit connect`: a netcat-style client (options, connect, summary). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "connect.h"
#include "sockit.h"

#define CMD "connect"

/* Longest duration we accept: what fits an int of milliseconds. */
#define MAX_DURATION_MS ((uint64_t)INT_MAX)

/* --wait-for's backoff between rounds of attempts. */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000

static const char help_text[] =
	"usage: sockit connect [-u] [-4|-6] [-w DUR] [-i DUR] [-q DUR] [-n|--no-newline]\n"
	"                      [--reply-timeout DUR] [-z] [--wait-for DUR] [-v] [--json]\n"
	"                      HOST PORT [DATA...]\n"
	"\n"
	"With DATA: send the arguments joined by single spaces, plus a newline unless\n"
	"-n, half-close, print the reply until the server closes.  Without DATA: relay\n"
	"stdin to the socket and the socket to stdout, byte-exact, like nc.\n"
	"\n"
	"  -u                 UDP: each DATA argument, or each stdin line, is one datagram;\n"
	"                     replies are printed as they come\n"
	"  -4, -6             only IPv4 / only IPv6 addresses (default: every address)\n"
	"  -w DUR             connect timeout per address (default 10s; 0 = none)\n"
	"  -i DUR             idle timeout: give up after DUR with no data either way\n"
	"                     (default: none)\n"
	"  -q DUR             quit DUR after input EOF once it is all sent (default: wait\n"
	"                     for the server to close; -q 0 quits at once)\n"
	"  -n, --no-newline   TCP: do not append '\\n' to DATA; UDP: send DATA and stdin\n"
	"                     lines without their trailing '\\n'\n"
	"  --reply-timeout DUR  UDP: after the last datagram, wait until DUR passes\n"
	"                     without a reply (default 1s; 0 = do not wait)\n"
	"  -z                 only check that the port accepts a connection, send nothing\n"
	"  --wait-for DUR     retry (backoff 50ms doubling to 1s) until the port accepts a\n"
	"                     connection or DUR passes\n"
	"  -v                 summary on stderr: addresses tried, bytes, duration, end\n"
	"  --json             the same summary as one JSON object on stderr (and runtime\n"
	"                     errors go into its \"error\" key)\n"
	"  -h, --help         this help; -V, --version: the version\n"
	"\n"
	"DUR: 500ms, 2s, 1.5s, 1m; a bare number is seconds.  Options may follow HOST\n"
	"and PORT; put -- before DATA that starts with '-'.\n"
	"\n"
	"What happens when (TCP):\n"
	"  input EOF (stdin or DATA sent)  shut down the write side, keep reading\n"
	"                                  (-q DUR: exit 0 DUR later)\n"
	"  server closes (FIN)             flush stdout, exit 0\n"
	"  server resets (RST)             message, exit 1\n"
	"  -i idle timeout                 message, exit 1\n"
	"  -w connect timeout, refused     one message naming every address tried, exit 1\n"
	"  stdout closed (EPIPE)           message, exit 1\n"
	"  SIGINT, SIGTERM, SIGHUP         stop, summary (-v/--json), die of the signal\n"
	"UDP: exit 0 when every datagram was sent and a reply came (or none was waited\n"
	"for: no datagram, or --reply-timeout 0); exit 1 if none came or the port is\n"
	"closed (ICMP port unreachable).\n"
	"\n"
	"Exit: 0 success, 1 runtime failure, 2 usage error.\n";

volatile sig_atomic_t connect_signal;

uint64_t connect_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void connect_fail(struct connect_summary *sum, enum connect_end end, const char *fmt, ...)
{
	if (sum->end != END_NONE && sum->error[0] != '\0')
		return;
	sum->end = end;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sum->error, sizeof(sum->error), fmt, ap);
	va_end(ap);
}

/* ---- Options ------------------------------------------------------------ */

enum { OPT_REPLY_TIMEOUT = 256, OPT_WAIT_FOR, OPT_JSON };

static int parse_duration(const char *opt, const char *arg, uint64_t *out)
{
	if (cli_parse_duration_ms(arg, MAX_DURATION_MS, out) < 0)
		return cli_usage(CMD, "bad %s '%s': expected a duration like 500ms, 2s or 1m", opt,
				 arg);
	return 0;
}

/* Parses argv into cfg.  Returns 0, 2 after a usage message, or -1 when
 * --help/--version printed and the exit code is 0. */
static int parse_args(int argc, char **argv, struct connect_config *cfg)
{
	static const struct option longopts[] = {
		{"no-newline", no_argument, NULL, 'n'},
		{"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
		{"wait-for", required_argument, NULL, OPT_WAIT_FOR},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	*cfg = (struct connect_config){
		.family = AF_UNSPEC,
		.connect_ms = 10000,
		.quit_ms = CONNECT_NEVER,
		.reply_ms = 1000,
		.newline = 1,
	};
	int reply_set = 0, wait_set = 0, rc = 0;
	opterr = 0;
	optind = 0; /* full re-initialisation (GNU) */
	for (;;) {
		int c = getopt_long(argc, argv, ":u46w:i:q:nzvhV", longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'u':
			cfg->udp = 1;
			break;
		case '4':
		case '6':
			if (cfg->family != AF_UNSPEC &&
			    cfg->family != (c == '4' ? AF_INET : AF_INET6))
				return cli_usage(CMD, "-4 and -6 exclude each other");
			cfg->family = c == '4' ? AF_INET : AF_INET6;
			break;
		case 'w':
			rc = parse_duration("-w", optarg, &cfg->connect_ms);
			break;
		case 'i':
			rc = parse_duration("-i", optarg, &cfg->idle_ms);
			break;
		case 'q':
			rc = parse_duration("-q", optarg, &cfg->quit_ms);
			break;
		case OPT_REPLY_TIMEOUT:
			rc = parse_duration("--reply-timeout", optarg, &cfg->reply_ms);
			reply_set = 1;
			break;
		case OPT_WAIT_FOR:
			rc = parse_duration("--wait-for", optarg, &cfg->wait_for_ms);
			wait_set = 1;
			break;
		case 'n':
			cfg->newline = 0;
			break;
		case 'z':
			cfg->zero = 1;
			break;
		case 'v':
			cfg->verbose = 1;
			break;
		case OPT_JSON:
			cfg->json = 1;
			break;
		case 'h':
			fputs(help_text, stdout);
			return -1;
		case 'V':
			cli_print_version();
			return -1;
		default:
			return cli_bad_option(CMD, c, argv[optind - 1]);
		}
		if (rc != 0)
			return rc;
	}
	int left = argc - optind;
	if (left < 1)
		return cli_usage(CMD, "missing HOST and PORT");
	if (left < 2)
		return cli_usage(CMD, "missing PORT after HOST '%s'", argv[optind]);
	cfg->host = argv[optind];
	if (cfg->host[0] == '\0')
		return cli_usage(CMD, "bad HOST '': empty");
	const char *port = argv[optind + 1];
	if (cli_parse_port(port, 0, &cfg->port) < 0)
		return cli_usage(CMD, "bad PORT '%s': expected a number 1..65535", port);
	if (left > 2) {
		cfg->data = argv + optind + 2;
		cfg->ndata = left - 2;
	}
	if (cfg->zero && cfg->ndata > 0)
		return cli_usage(CMD, "-z sends no data, but DATA '%s' was given", cfg->data[0]);
	if (cfg->zero && cfg->udp)
		return cli_usage(CMD, "-z checks TCP connections; it cannot be used with -u");
	if (wait_set && cfg->udp)
		return cli_usage(CMD, "--wait-for waits for a TCP port; it cannot be used with -u");
	if (reply_set && !cfg->udp)
		return cli_usage(CMD, "--reply-timeout applies to UDP only; add -u");
	return 0;
}

/* Makes sure fds 0, 1 and 2 are open, so a socket never lands on them. */
static void keep_std_fds_open(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (nfd >= 0 && nfd != fd) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
}

/* ---- Connecting --------------------------------------------------------- */

/* Host as given, without the brackets of "[::1]". */
static const char *bare_host(const char *host, char *buf, size_t len)
{
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < len) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		return buf;
	}
	return host;
}

static void format_addr(const sockit_addr *a, char *buf, size_t len)
{
	if (sockit_addr_format(a, buf, len) < 0)
		snprintf(buf, len, "?");
}

/* "[::1]:1234: connection refused; 127.0.0.1:1234: connection refused" */
static void describe_failures(const struct connect_summary *sum, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	size_t shown = sum->nfailed < CONNECT_MAX_TRIED ? sum->nfailed : CONNECT_MAX_TRIED;
	for (size_t i = 0; i < shown && used < len; i++) {
		char a[SOCKIT_ADDRSTRLEN];
		format_addr(&sum->failed[i].addr, a, sizeof(a));
		int n = snprintf(buf + used, len - used, "%s%s: %s", i ? "; " : "", a,
				 sockit_strerror(sum->failed[i].error));
		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (sum->nfailed > shown && used < len)
		snprintf(buf + used, len - used, "; and %zu more", sum->nfailed - shown);
}

/* One round: every resolved address, each within -w.  Returns the fd or a
 * negative code; fills the summary's failures. */
static int connect_round(const struct connect_config *cfg, const char *host, int timeout_ms,
			 struct connect_summary *sum)
{
	sum->rounds++;
	sum->nfailed = 0;
	int fd = sockit_create_connection_ex(
		host, cfg->port, cfg->family, cfg->udp ? SOCK_DGRAM : SOCK_STREAM, timeout_ms,
		sum->failed, CONNECT_MAX_TRIED, &sum->nfailed, &sum->used);
	if (fd >= 0)
		sum->connected = 1;
	return fd;
}

/* Connects, retrying with backoff until --wait-for passes.  Returns the fd,
 * or -1 after recording the failure in the summary. */
static int open_connection(const struct connect_config *cfg, struct connect_summary *sum)
{
	char hbuf[256];
	const char *host = bare_host(cfg->host, hbuf, sizeof(hbuf));
	uint64_t deadline = sum->start_ms + cfg->wait_for_ms;
	uint64_t backoff = BACKOFF_FIRST_MS;
	int fd;
	for (;;) {
		int timeout = cfg->connect_ms == 0 ? -1 : (int)cfg->connect_ms;
		uint64_t now = connect_now_ms();
		if (cfg->wait_for_ms > 0) {
			uint64_t left = deadline > now ? deadline - now : 1;
			if (timeout < 0 || (uint64_t)timeout > left)
				timeout = (int)left;
		}
		fd = connect_round(cfg, host, timeout, sum);
		if (fd >= 0)
			return fd;
		now = connect_now_ms();
		if (cfg->wait_for_ms == 0 || now >= deadline)
			break;
		uint64_t nap = backoff < deadline - now ? backoff : deadline - now;
		struct timespec ts = {.tv_sec = (time_t)(nap / 1000),
				      .tv_nsec = (long)(nap % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	char after[96] = "";
	if (cfg->wait_for_ms > 0)
		snprintf(after, sizeof(after), " (still closed after %d attempts in %llums)",
			 sum->rounds, (unsigned long long)(connect_now_ms() - sum->start_ms));
	if (sum->nfailed == 0) {
		/* Nothing was tried: the resolver (or the socket) failed. */
		int eai = SOCKIT_IS_EAI(fd);
		connect_fail(sum, eai ? END_RESOLVE_FAILED : END_CONNECT_FAILED,
			     "cannot %s '%s' port %d: %s%s", eai ? "resolve" : "connect to",
			     cfg->host, cfg->port, sockit_strerror(fd), after);
		return -1;
	}
	char why[900];
	describe_failures(sum, why, sizeof(why));
	connect_fail(sum, END_CONNECT_FAILED, "cannot connect to %s port %d%s: %s", cfg->host,
		     cfg->port, after, why);
	return -1;
}

/* ---- The summary -------------------------------------------------------- */

static const char *end_name(enum connect_end e)
{
	switch (e) {
	case END_NONE:
		return "none";
	case END_FIN:
		return "fin";
	case END_QUIT:
		return "quit";
	case END_OPEN:
		return "open";
	case END_DONE:
		return "done";
	case END_RESET:
		return "reset";
	case END_IDLE:
		return "idle-timeout";
	case END_STDOUT:
		return "stdout-closed";
	case END_NO_REPLY:
		return "no-reply";
	case END_REFUSED:
		return "refused";
	case END_ERROR:
		return "error";
	case END_RESOLVE_FAILED:
		return "resolve-failed";
	case END_CONNECT_FAILED:
		return "connect-failed";
	case END_SIGNAL:
		return "signal";
	}
	return "none";
}

/* The exit code; after a signal, what the shell will report (128 + N). */
static int end_exit(enum connect_end e)
{
	if (e == END_SIGNAL)
		return 128 + connect_signal;
	return e == END_FIN || e == END_QUIT || e == END_OPEN || e == END_DONE ? 0 : 1;
}

/* Writes s as a JSON string (quotes included). */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void print_json(const struct connect_config *cfg, const struct connect_summary *sum,
		       uint64_t duration_ms)
{
	FILE *f = stderr;
	char a[SOCKIT_ADDRSTRLEN];
	fputs("{\"host\":", f);
	json_string(f, cfg->host);
	fprintf(f, ",\"port\":%d,\"proto\":\"%s\",\"tried\":[", cfg->port,
		cfg->udp ? "udp" : "tcp");
	size_t shown = sum->nfailed < CONNECT_MAX_TRIED ? sum->nfailed : CONNECT_MAX_TRIED;
	for (size_t i = 0; i < shown; i++) {
		format_addr(&sum->failed[i].addr, a, sizeof(a));
		fprintf(f, "%s{\"addr\":", i ? "," : "");
		json_string(f, a);
		fputs(",\"error\":", f);
		json_string(f, sockit_strerror(sum->failed[i].error));
		fputc('}', f);
	}
	if (sum->connected) {
		format_addr(&sum->used, a, sizeof(a));
		fprintf(f, "%s{\"addr\":", shown ? "," : "");
		json_string(f, a);
		fputs(",\"error\":null}", f);
	}
	fputs("],\"connected\":", f);
	if (sum->connected)
		json_string(f, a);
	else
		fputs("null", f);
	fprintf(f,
		",\"attempts\":%d,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
		"\"datagrams_sent\":%llu,\"datagrams_received\":%llu,\"duration_ms\":%llu,"
		"\"end\":\"%s\",\"exit\":%d,\"error\":",
		sum->rounds, (unsigned long long)sum->bytes_sent,
		(unsigned long long)sum->bytes_received, (unsigned long long)sum->dgrams_sent,
		(unsigned long long)sum->dgrams_received, (unsigned long long)duration_ms,
		end_name(sum->end), end_exit(sum->end));
	if (sum->error[0] != '\0')
		json_string(f, sum->error);
	else
		fputs("null", f);
	fputs("}\n", f);
}

static void print_text(const struct connect_config *cfg, const struct connect_summary *sum,
		       uint64_t duration_ms)
{
	char a[SOCKIT_ADDRSTRLEN];
	size_t shown = sum->nfailed < CONNECT_MAX_TRIED ? sum->nfailed : CONNECT_MAX_TRIED;
	for (size_t i = 0; i < shown; i++) {
		format_addr(&sum->failed[i].addr, a, sizeof(a));
		fprintf(stderr, "sockit connect: tried %s: %s\n", a,
			sockit_strerror(sum->failed[i].error));
	}
	if (sum->connected) {
		format_addr(&sum->used, a, sizeof(a));
		fprintf(stderr, "sockit connect: connected to %s (%s, %s port %d)\n", a,
			cfg->udp ? "udp" : "tcp", cfg->host, cfg->port);
	}
	fprintf(stderr, "sockit connect: sent %llu bytes", (unsigned long long)sum->bytes_sent);
	if (cfg->udp)
		fprintf(stderr, " in %llu datagrams", (unsigned long long)sum->dgrams_sent);
	fprintf(stderr, ", received %llu bytes", (unsigned long long)sum->bytes_received);
	if (cfg->udp)
		fprintf(stderr, " in %llu datagrams", (unsigned long long)sum->dgrams_received);
	fprintf(stderr, ", %llu ms, end=%s exit=%d\n", (unsigned long long)duration_ms,
		end_name(sum->end), end_exit(sum->end));
}

static int finish(const struct connect_config *cfg, const struct connect_summary *sum)
{
	uint64_t duration_ms = connect_now_ms() - sum->start_ms;
	fflush(stdout);
	if (cfg->json) {
		print_json(cfg, sum, duration_ms);
	} else {
		if (sum->error[0] != '\0')
			fprintf(stderr, "sockit connect: %s\n", sum->error);
		if (cfg->verbose)
			print_text(cfg, sum, duration_ms);
	}
	return end_exit(sum->end);
}

static void on_stop_signal(int signo)
{
	connect_signal = signo;
}

/* Once connected, SIGINT, SIGTERM and SIGHUP end the relay with its summary
 * (then the process dies of the signal, as the shell expects).  They stay
 * blocked except inside the relay's ppoll(), whose mask *wait_mask gets.
 * A signal the caller ignores (a background job's SIGINT) stays ignored. */
static void catch_stop_signals(sigset_t *wait_mask)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	sigset_t block;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old, sa = {.sa_handler = on_stop_signal};
		sigemptyset(&sa.sa_mask);
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaddset(&block, sigs[i]);
		sigaction(sigs[i], &sa, NULL);
	}
	sigprocmask(SIG_BLOCK, &block, wait_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigdelset(wait_mask, sigs[i]);
}

/* After the summary: die of the signal that stopped us. */
static void reraise_stop_signal(void)
{
	int signo = connect_signal;
	if (signo == 0)
		return;
	signal(signo, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(signo);
}

static int run(const struct connect_config *cfg)
{
	struct connect_summary sum = {.start_ms = connect_now_ms()};
	int fd = open_connection(cfg, &sum);
	if (fd >= 0) {
		sigset_t wait_mask;
		catch_stop_signals(&wait_mask);
		if (cfg->zero)
			sum.end = END_OPEN;
		else if (cfg->udp)
			connect_relay_udp(cfg, fd, &wait_mask, &sum);
		else
			connect_relay_tcp(cfg, fd, &wait_mask, &sum);
		sockit_close(fd);
	}
	int rc = finish(cfg, &sum);
	reraise_stop_signal();
	return rc;
}

int cmd_connect(int argc, char **argv)
{
	struct connect_config cfg;
	int rc = parse_args(argc, argv, &cfg);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	keep_std_fds_open();
	return run(&cfg);
}
