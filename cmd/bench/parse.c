/* parse.c -- `sockit bench`'s arguments: argv -> struct bench_config, with bounded parsers
 * and the one usage message per kind of value (cli_opt_*). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bench.h"
#include "cli.h"

#define CMD "bench"
#define MAX_CONNS 1000000u
#define MAX_THREADS 256u
#define MAX_DEPTH 4096u
#define MAX_TCP_SIZE (16u << 20)
#define MIN_ID 8 /* bytes of unique id a request must hold */
#define MAX_DURATION_MS (366ull * 86400 * 1000)
#define MAX_TIMEOUT_MS 3600000ull
#define MAX_ATTEMPT_DELAY_MS 60000ull

static const char usage_text[] =
	"usage: sockit bench [-m once|line|echo] [-u] [-c CONNS] [-t THREADS] [-d DUR | -n "
	"REQUESTS]\n"
	"                    [-s SIZE] [-P DEPTH] [-R RATE] [--warmup DUR] [-w DUR] [-4|-6]\n"
	"                    [--prefix STR] [--json] [--attempt-delay DUR] [--proxy-header v1|v2]\n"
	"                    [--tls [--tls-ca FILE] [--tls-servername NAME] [--tls-insecure]\n"
	"                    [--tls-resume] [--tls-cert FILE --tls-key FILE]] HOST PORT | -U PATH\n"
	"\n"
	"Loads a server that speaks sockit's protocol (or plain echo) and checks every reply\n"
	"byte for byte.  Exit 0 only if no request failed and at least one completed.\n"
	"\n"
	"  -m, --mode MODE      once (default): connect, send, read to EOF, expect "
	"PREFIX+request;\n"
	"                       line: persistent connections, expect PREFIX+line per line;\n"
	"                       echo: persistent connections, expect each line back verbatim\n"
	"  -u, --udp            datagrams instead: expect PREFIX+datagram per datagram, or with\n"
	"                       -m echo each datagram back verbatim (-m udp = -u)\n"
	"  -c, --conns N        concurrent requests (once), connections (line, echo) or\n"
	"                       outstanding datagrams (-u); default 16\n"
	"  -t, --threads N      threads, each with its own event loop and share of -c; default 1\n"
	"  -d, --duration DUR   measure for DUR (500ms, 10s, 1m); default 10s\n"
	"  -n, --requests N     instead of -d: exactly N measured requests, then stop\n"
	"  -s, --size SIZE      bytes per request, newline included in line/echo (default 16;\n"
	"                       at least 8 plus the newline: each request carries a unique id)\n"
	"  -P, --depth N        requests in flight on each connection (line, echo); default 1\n"
	"  -R, --rate N         open loop: N requests/s in all, latency measured from when each\n"
	"                       request was due (coordinated omission corrected)\n"
	"      --warmup DUR     run DUR first, leaving it out of the figures (its errors count)\n"
	"  -w, --timeout DUR    a request (with its connect) failing to finish in DUR is a\n"
	"                       timeout error; default 5s\n"
	"  -4, --ipv4           resolve HOST to IPv4 only;  -6, --ipv6  IPv6 only\n"
	"  -U, --unix PATH      a Unix socket (PATH, or @name in the abstract namespace)\n"
	"                       instead of HOST PORT; with -u a datagram one (sockit serve -u\n"
	"                       -U P serves datagrams at P.dgram), each thread's socket autobound\n"
	"      --attempt-delay DUR  a name with several addresses is resolved once and raced\n"
	"                       (Happy Eyeballs, RFC 8305) by a first connection whose winner\n"
	"                       the run uses; DUR between attempts, default 250ms, 0 = one\n"
	"                       address after another\n"
	"      --proxy-header v1|v2  each connection starts with a PROXY protocol header\n"
	"                       announcing its own local address and the server's\n"
	"      --tls            speak TLS, verifying the server against the system's CAs and\n"
	"                       HOST; --tls-ca FILE trusts FILE's CAs instead; --tls-servername\n"
	"                       NAME checks (and sends) NAME; --tls-insecure checks nothing;\n"
	"                       --tls-cert FILE --tls-key FILE present a client certificate\n"
	"      --tls-resume     later connections of a thread resume its first session\n"
	"                       (tickets): handshakes are reported full and resumed apart\n"
	"      --prefix STR     the reply prefix (default \"Received: \"; not with echo)\n"
	"      --json           print the result as one JSON object on stdout\n"
	"  -h, --help           this help;  -V, --version  the version\n"
	"\n"
	"HOST is a name, an IPv4 or IPv6 address, or [IPv6]; PORT a number or a service name.\n"
	"Errors are counted by kind: mismatch, truncated, reset, refused, timeout, connect, "
	"other,\n"
	"and with --tls tls_verify, tls_handshake, tls_truncated (no close_notify), tls_alert;\n"
	"the first mismatch is shown (expected and received bytes).  A run stops early when\n"
	"its first 100 connects are all refused.  Latency runs from sending a request (or from\n"
	"when it was due, with -R) to its verified reply, on CLOCK_MONOTONIC, in histograms\n"
	"with <= 0.4% error.  Ctrl-C (SIGINT, SIGTERM, SIGHUP) prints the result so far, then\n"
	"bench dies of the signal.  Exit: 0 every request verified, 1 a failed run (the last\n"
	"line says why), 2 a usage error.\n";

enum {
	OPT_WARMUP = 256,
	OPT_PREFIX,
	OPT_JSON,
	OPT_ATTEMPT_DELAY,
	OPT_PROXY_HEADER,
	OPT_TLS,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_SERVERNAME,
	OPT_TLS_INSECURE,
	OPT_TLS_RESUME,
};

static const struct option long_opts[] = {
	{"mode", required_argument, NULL, 'm'},
	{"udp", no_argument, NULL, 'u'},
	{"conns", required_argument, NULL, 'c'},
	{"threads", required_argument, NULL, 't'},
	{"duration", required_argument, NULL, 'd'},
	{"requests", required_argument, NULL, 'n'},
	{"size", required_argument, NULL, 's'},
	{"depth", required_argument, NULL, 'P'},
	{"rate", required_argument, NULL, 'R'},
	{"warmup", required_argument, NULL, OPT_WARMUP},
	{"timeout", required_argument, NULL, 'w'},
	{"ipv4", no_argument, NULL, '4'},
	{"ipv6", no_argument, NULL, '6'},
	{"prefix", required_argument, NULL, OPT_PREFIX},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"unix", required_argument, NULL, 'U'},
	{"attempt-delay", required_argument, NULL, OPT_ATTEMPT_DELAY},
	{"proxy-header", required_argument, NULL, OPT_PROXY_HEADER},
	{"tls", no_argument, NULL, OPT_TLS},
	{"tls-ca", required_argument, NULL, OPT_TLS_CA},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tls-servername", required_argument, NULL, OPT_TLS_SERVERNAME},
	{"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
	{"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
	{NULL, 0, NULL, 0},
};

static const char *const mode_names[BENCH_MODES] = {"once", "line", "echo", "udp"};

const char *bench_mode_name(enum bench_mode m)
{
	return (unsigned)m < BENCH_MODES ? mode_names[m] : "?";
}

/* What the user set, beyond the config's defaults. */
struct seen {
	int d, n, p, prefix, udp, mode, family, attempt_delay;
	int tls_opt; /* a --tls-* option seen (for "needs --tls"), or 0 */
};

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

static int parse_mode(const char *opt, const char *s, enum bench_mode *out)
{
	for (unsigned i = 0; i < BENCH_MODES; i++)
		if (strcmp(s, mode_names[i]) == 0) {
			*out = (enum bench_mode)i;
			return 0;
		}
	return cli_usage(CMD, "invalid mode '%s' for %s: expected once, line, echo or udp", s, opt);
}

/* The --tls-* options that go with --tls. */
static int parse_tls_opt(int c, const char *opt, struct bench_config *cfg, struct seen *seen)
{
	seen->tls_opt = c;
	switch (c) {
	case OPT_TLS_CA:
		cfg->tls_ca = optarg;
		return 0;
	case OPT_TLS_CERT:
		cfg->tls_cert = optarg;
		return 0;
	case OPT_TLS_KEY:
		cfg->tls_key = optarg;
		return 0;
	case OPT_TLS_SERVERNAME:
		if (optarg[0] == '\0')
			return cli_usage(CMD,
					 "invalid name '' for %s: expected a host name or an "
					 "address",
					 opt);
		cfg->tls_servername = optarg;
		return 0;
	case OPT_TLS_INSECURE:
		cfg->tls_insecure = 1;
		return 0;
	case OPT_TLS_RESUME:
		cfg->tls_resume = 1;
		return 0;
	}
	return 2;
}

/* One option c (named opt as the user wrote it) with its value optarg. */
static int parse_opt(int c, const char *opt, struct bench_config *cfg, struct seen *seen)
{
	uint64_t v = 0;
	int rc = 0;
	switch (c) {
	case 'm':
		seen->mode = 1;
		return parse_mode(opt, optarg, &cfg->mode);
	case 'u':
		seen->udp = 1;
		return 0;
	case 'c':
		rc = cli_opt_u64(CMD, opt, optarg, 1, MAX_CONNS, &v);
		cfg->conns = (unsigned)v;
		return rc;
	case 't':
		rc = cli_opt_u64(CMD, opt, optarg, 1, MAX_THREADS, &v);
		cfg->threads = (unsigned)v;
		return rc;
	case 'd':
		seen->d = 1;
		rc = cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->duration_ms);
		if (rc == 0 && cfg->duration_ms == 0)
			return cli_usage(CMD, "invalid duration '%s' for %s: expected more than 0",
					 optarg, opt);
		return rc;
	case 'n':
		seen->n = 1;
		return cli_opt_u64(CMD, opt, optarg, 1, (uint64_t)1e15, &cfg->requests);
	case 's':
		rc = cli_opt_size(CMD, opt, optarg, 1, MAX_TCP_SIZE, &v);
		cfg->size = (size_t)v;
		return rc;
	case 'P':
		seen->p = 1;
		rc = cli_opt_u64(CMD, opt, optarg, 1, MAX_DEPTH, &v);
		cfg->depth = (unsigned)v;
		return rc;
	case 'R':
		if (parse_rate(optarg, &cfg->rate) < 0)
			return cli_usage(CMD,
					 "invalid rate '%s' for %s: expected requests per second, "
					 "a number > 0 (2000, 2.5)",
					 optarg, opt);
		return 0;
	case OPT_WARMUP:
		return cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->warmup_ms);
	case 'w':
		rc = cli_opt_duration(CMD, opt, optarg, MAX_TIMEOUT_MS, &cfg->timeout_ms);
		if (rc == 0 && cfg->timeout_ms == 0)
			return cli_usage(CMD, "invalid duration '%s' for %s: expected more than 0",
					 optarg, opt);
		return rc;
	case '4':
	case '6':
		seen->family = 1;
		cfg->family = c == '4' ? AF_INET : AF_INET6;
		return 0;
	case OPT_PREFIX:
		seen->prefix = 1;
		cfg->prefix = optarg;
		return 0;
	case OPT_JSON:
		cfg->json = 1;
		return 0;
	case 'U':
		cfg->unix_path = optarg;
		return 0;
	case OPT_ATTEMPT_DELAY:
		seen->attempt_delay = 1;
		rc = cli_opt_duration(CMD, opt, optarg, MAX_ATTEMPT_DELAY_MS, &v);
		cfg->attempt_delay_ms = v == 0 ? -1 : (int)v;
		return rc;
	case OPT_PROXY_HEADER:
		if (strcmp(optarg, "v1") != 0 && strcmp(optarg, "v2") != 0)
			return cli_usage(CMD, "invalid version '%s' for %s: expected v1 or v2",
					 optarg, opt);
		cfg->proxy_header = optarg[1] - '0';
		return 0;
	case OPT_TLS:
		cfg->tls = 1;
		return 0;
	}
	return parse_tls_opt(c, opt, cfg, seen);
}

/* HOST PORT, or -U PATH and no arguments. */
static int parse_target(int argc, char **argv, struct bench_config *cfg)
{
	int n = argc - optind;
	if (cfg->unix_path != NULL) {
		if (n != 0)
			return cli_usage(CMD, "-U PATH replaces HOST PORT: got %d argument%s too",
					 n, n == 1 ? "" : "s");
		int rc = sockit_addr_from_path(cfg->unix_path, &cfg->addr);
		if (rc < 0)
			return cli_usage(CMD, "invalid path '%s' for -U: %s", cfg->unix_path,
					 rc == -ENAMETOOLONG ? "longer than 107 bytes"
							     : "expected a path or @name");
		return 0;
	}
	if (n != 2)
		return cli_usage(CMD, "expected HOST PORT, got %d argument%s", n,
				 n == 1 ? "" : "s");
	cfg->host_arg = argv[optind];
	cfg->host = cli_host(cfg->host_arg, cfg->host_buf, sizeof(cfg->host_buf));
	if (cfg->host == NULL || cfg->host[0] == '\0')
		return cli_usage(CMD,
				 "invalid host '%s' for HOST: expected a name, an address or "
				 "[IPv6]",
				 cfg->host_arg);
	return cli_opt_port(CMD, "PORT", argv[optind + 1], 0, &cfg->port);
}

/* The name of option code c, as --help spells it. */
static const char *long_name(int c)
{
	for (const struct option *o = long_opts; o->name != NULL; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/* -U, --attempt-delay, --proxy-header and --tls against the transport. */
static int check_transport(struct bench_config *cfg, const struct seen *seen)
{
	int udp = cfg->mode == BENCH_UDP, unix_ = cfg->unix_path != NULL;
	if (unix_ && seen->family)
		return cli_usage(CMD, "-4 and -6 do not apply to -U (a Unix socket)");
	if (seen->attempt_delay && (unix_ || udp))
		return cli_usage(CMD, "--attempt-delay applies to TCP connections to HOST only");
	if (cfg->proxy_header && udp)
		return cli_usage(CMD, "--proxy-header applies to TCP (and Unix stream) connections "
				      "only");
	if (cfg->proxy_header == 1 && unix_)
		return cli_usage(CMD, "--proxy-header v1 cannot announce a Unix address: use v2");
	if (!cfg->tls) {
		if (seen->tls_opt)
			return cli_usage(CMD, "--%s needs --tls", long_name(seen->tls_opt));
		return 0;
	}
	if (udp)
		return cli_usage(CMD, "--tls applies to TCP (and Unix stream) connections only: "
				      "there is no DTLS");
	if (cfg->tls_insecure && cfg->tls_ca != NULL)
		return cli_usage(CMD, "--tls-ca and --tls-insecure exclude each other: verify "
				      "against the CA, or not at all");
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		return cli_usage(CMD, "--tls-cert and --tls-key go together");
	if (cfg->tls_servername == NULL && !unix_)
		cfg->tls_servername = cfg->host;
	if (cfg->tls_servername == NULL && !cfg->tls_insecure)
		return cli_usage(CMD, "--tls over -U needs --tls-servername NAME (the name the "
				      "certificate must hold) or --tls-insecure");
	return 0;
}

/* The options' combinations; fills the derived fields. */
static int check_config(struct bench_config *cfg, const struct seen *seen)
{
	if (seen->d && seen->n)
		return cli_usage(CMD, "-d and -n exclude each other: stop by time or by count");
	if (seen->n)
		cfg->duration_ms = 0;
	if (cfg->threads > cfg->conns)
		return cli_usage(CMD, "-t %u is more threads than -c %u connections", cfg->threads,
				 cfg->conns);
	cfg->echo = cfg->mode == BENCH_ECHO;
	if (seen->udp)
		cfg->mode = BENCH_UDP; /* -u -m echo: datagrams back verbatim */
	cfg->lined = cfg->mode == BENCH_LINE || cfg->mode == BENCH_ECHO;
	if (seen->p && cfg->depth > 1 && !cfg->lined)
		return cli_usage(CMD, "-P applies to line and echo modes over TCP only");
	if (cfg->size < (size_t)MIN_ID + (size_t)cfg->lined)
		return cli_usage(CMD,
				 "invalid size '%zu' for -s: at least %d bytes in %s mode (a "
				 "unique id%s)",
				 cfg->size, MIN_ID + cfg->lined, mode_names[cfg->mode],
				 cfg->lined ? " and the newline" : "");
	if (seen->prefix && cfg->echo)
		return cli_usage(CMD, "--prefix does not apply to echo mode (replies are the "
				      "requests)");
	if (cfg->echo)
		cfg->prefix = "";
	cfg->prefix_len = strlen(cfg->prefix);
	if (cfg->mode == BENCH_UDP && cfg->size + cfg->prefix_len > SOCKIT_UDP_MAX)
		return cli_usage(CMD,
				 "invalid size '%zu' for -s: a datagram holds %d bytes, "
				 "the reply's prefix included",
				 cfg->size, SOCKIT_UDP_MAX);
	return check_transport(cfg, seen);
}

int bench_parse(int argc, char **argv, struct bench_config *cfg)
{
	struct seen seen = {0};
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = BENCH_ONCE;
	cfg->family = AF_UNSPEC;
	cfg->conns = 16;
	cfg->threads = 1;
	cfg->depth = 1;
	cfg->size = 16;
	cfg->duration_ms = 10000;
	cfg->timeout_ms = 5000;
	cfg->prefix = "Received: ";
	cfg->attempt_delay_ms = SOCKIT_CONNECT_DELAY_MS;

	optind = 0;
	opterr = 0;
	for (;;) {
		int li = -1,
		    c = getopt_long(argc, argv, ":m:uc:t:d:n:s:P:R:w:46U:hV", long_opts, &li);
		if (c == -1)
			break;
		if (c == 'h') {
			fputs(usage_text, stdout);
			return -1;
		}
		if (c == 'V') {
			cli_print_version();
			return -1;
		}
		if (c == ':' || c == '?')
			return cli_bad_option(CMD, c, argv[optind - 1]);
		char opt[40];
		if (li >= 0)
			snprintf(opt, sizeof(opt), "--%s", long_opts[li].name);
		else
			snprintf(opt, sizeof(opt), "-%c", c);
		int rc = parse_opt(c, opt, cfg, &seen);
		if (rc != 0)
			return rc;
	}
	int rc = parse_target(argc, argv, cfg);
	return rc != 0 ? rc : check_config(cfg, &seen);
}
