/* parse.c -- `sockit serve`'s command line into a struct serve_config.  No I/O but messages. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cli.h"
#include "serve.h"

#define CMD "serve"
#define MAX_WORKERS 1024
#define MAX_PREFIX 4096
#define MAX_CIDRS 1024
#define MAX_COUNT 100000000ull
#define MAX_IDLE_MS (86400000ull * 365)
#define MAX_DRAIN_MS 86400000ull
#define MAX_BYTES (16u << 20)
#define MAX_LINE (64u << 20)
#define MAX_PENDING (1u << 30)

#define DEFAULT_IDLE_MS 30000
#define DEFAULT_DRAIN_MS 5000
#define DEFAULT_MAX_BYTES 1024
#define DEFAULT_MAX_LINE (64 * 1024)
#define DEFAULT_MAX_PENDING (64 * 1024)
/* Once mode's wake-up coalescing: see --help and docs/DESIGN.md. */
#define DEFAULT_COALESCE_US 100
#define MAX_COALESCE_US 1000000
/* --proxy-protocol: the header must be whole within min(-i, this). */
#define PROXY_TIMEOUT_MS 5000

/* %s: the defaults, formatted as the parsers take them. */
static const char usage_fmt[] =
	"usage: sockit serve [-H HOST] [-p PORT] [-4|-6] [-U PATH [--unix-mode OCTAL]]\n"
	"         [-m once|line|echo] [-u|--udp-only]\n"
	"         [--workers N] [--max-conns N] [--max-conns-per-ip N] [-i DUR]\n"
	"         [--max-bytes SIZE] [--max-line SIZE] [--max-pending SIZE] [--allow CIDR]...\n"
	"         [--deny CIDR]... [--prefix STR] [--udp-rate N] [--dualstack]\n"
	"         [--drain-timeout DUR] [--backend auto|io_uring|epoll] [--coalesce DUR]\n"
	"         [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
	"         [--proxy-protocol [--proxy-from CIDR]...] [--metrics [HOST:]PORT] [-v]\n"
	"         [--log-level error|warn|info|debug] [--log-format text|json] [-h] [-V]\n"
	"\n"
	"The tutorial's acknowledgement server: each client gets PREFIX + what it sent.\n"
	"\n"
	"  -H, --host HOST           address to listen on: a name, IPv4, IPv6 or [IPv6]\n"
	"                            (default 127.0.0.1; '::' is IPv6 only unless --dualstack)\n"
	"  -p, --port PORT           port number or service name (default 1234; 0 picks one)\n"
	"  -4, --ipv4 / -6, --ipv6   listen on HOST's IPv4 / IPv6 address only (-6 alone: ::1)\n"
	"  -U, --unix PATH           a Unix socket instead of TCP (no -H/-p): a file path, or\n"
	"                            @name (abstract); the file is removed on exit.  With\n"
	"                            -u, datagrams too, at PATH.dgram; --udp-only: only there\n"
	"      --unix-mode OCTAL     the socket files' permissions, as 0600 (default: umask)\n"
	"  -m, --mode MODE           once: one read, one reply, close (default, the tutorial)\n"
	"                            line: a reply per line, persistent; echo: RFC 862\n"
	"  -u, --udp                 also serve UDP on the same port (-U: at PATH.dgram)\n"
	"      --udp-only            serve UDP only\n"
	"      --workers N           worker threads, each with its own listener (default: CPUs;\n"
	"                            -U and systemd's sockets: all share the one listener)\n"
	"      --max-conns N         open connections at most (default: from the fd limit)\n"
	"      --max-conns-per-ip N  per client IP, or per UID for Unix sockets (default 0 =\n"
	"                            unlimited)\n"
	"  -i, --idle-timeout DUR    close a connection silent this long (default %s, 0 = never)\n"
	"      --max-bytes SIZE      once mode: size of the one read (default %s)\n"
	"      --max-line SIZE       line mode: longest line (default %s)\n"
	"      --max-pending SIZE    unsent output per connection before reading stops (%s)\n"
	"      --allow CIDR          only clients in these blocks (repeatable; TCP and UDP\n"
	"                            only: Unix peers are not checked, use --unix-mode)\n"
	"      --deny CIDR           never clients in these blocks (repeatable)\n"
	"      --prefix STR          reply prefix (default 'Received: ')\n"
	"      --udp-rate N          datagrams per second per source IP or Unix sender address\n"
	"                            (default 0 = unlimited)\n"
	"      --dualstack           with -H ::, accept IPv4 too\n"
	"      --drain-timeout DUR   on SIGTERM/SIGINT, time for in-flight clients (default %s)\n"
	"      --backend B           event loop: io_uring, epoll, or auto (default: io_uring\n"
	"                            where the kernel allows it, else epoll; with -U: epoll)\n"
	"      --coalesce DUR        after a wake-up that brought fewer than 4 events, wait\n"
	"                            DUR for more before sleeping, so one wake-up serves\n"
	"                            several clients (default %s in once mode, 0 = off\n"
	"                            in the others; adds up to DUR of latency; backs off\n"
	"                            by itself when clients are few)\n"
	"      --tls-cert FILE       TLS on every TCP connection, with this certificate\n"
	"                            chain (PEM); UDP stays plaintext; SIGHUP reloads it\n"
	"      --tls-key FILE        its private key (PEM; default: in --tls-cert's file)\n"
	"      --tls-client-ca FILE  require client certificates signed by these CAs\n"
	"      --proxy-protocol      every TCP connection starts with a PROXY header (v1\n"
	"                            or v2, as HAProxy send-proxy or send-proxy-v2 sends): its\n"
	"                            address is the client for logs, limits, --allow/--deny\n"
	"                            (a header must come within min(-i, 5s))\n"
	"      --proxy-from CIDR     with --proxy-protocol: only these may connect\n"
	"                            (repeatable; default: anyone)\n"
	"      --metrics [HOST:]PORT serve Prometheus metrics on http://HOST:PORT/metrics and\n"
	"                            a health check on /healthz (200, or 503 while draining);\n"
	"                            HOST defaults to 127.0.0.1 (default: off)\n"
	"  -v, --verbose             the same as --log-level debug\n"
	"      --log-level LEVEL     error, warn, info (default) or debug (per connection)\n"
	"      --log-format FMT      text (default) or json (one object per line)\n"
	"  -h, --help                this help\n"
	"  -V, --version             the version\n"
	"\n"
	"Durations take units: 500ms, 2s, 1.5m, 1h (a bare number is seconds).\n"
	"Sizes: 1024, 64k, 1M (each step 1024; KiB, MiB mean the same).\n"
	"SIGUSR1 prints the counters; SIGTERM/SIGINT drain and exit 0 (a second one: at once);\n"
	"SIGUSR2 upgrades: starts the binary now on disk with the same arguments, hands it\n"
	"the listeners, and drains once it is ready (if it fails, this one keeps serving);\n"
	"with --tls-cert, SIGHUP reloads the certificate and key for new connections.\n"
	"Under systemd: socket activation (the passed sockets replace -H/-p/-U, which may\n"
	"only repeat them), and READY=1, STATUS=, STOPPING=1, WATCHDOG=1 to NOTIFY_SOCKET.\n";

enum {
	OPT_UDP_ONLY = 256,
	OPT_WORKERS,
	OPT_MAX_CONNS,
	OPT_MAX_PER_IP,
	OPT_MAX_BYTES,
	OPT_MAX_LINE,
	OPT_MAX_PENDING,
	OPT_ALLOW,
	OPT_DENY,
	OPT_PREFIX,
	OPT_UDP_RATE,
	OPT_DUALSTACK,
	OPT_DRAIN,
	OPT_BACKEND,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_COALESCE,
	OPT_UNIX_MODE,
	OPT_METRICS,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CLIENT_CA,
	OPT_PROXY,
	OPT_PROXY_FROM,
};

static const char short_opts[] = ":H:p:m:i:U:uv46hV";

static const struct option long_opts[] = {
	{"host", required_argument, NULL, 'H'},
	{"port", required_argument, NULL, 'p'},
	{"mode", required_argument, NULL, 'm'},
	{"ipv4", no_argument, NULL, '4'},
	{"ipv6", no_argument, NULL, '6'},
	{"udp", no_argument, NULL, 'u'},
	{"udp-only", no_argument, NULL, OPT_UDP_ONLY},
	{"workers", required_argument, NULL, OPT_WORKERS},
	{"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	{"max-conns-per-ip", required_argument, NULL, OPT_MAX_PER_IP},
	{"idle-timeout", required_argument, NULL, 'i'},
	{"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
	{"max-line", required_argument, NULL, OPT_MAX_LINE},
	{"max-pending", required_argument, NULL, OPT_MAX_PENDING},
	{"allow", required_argument, NULL, OPT_ALLOW},
	{"deny", required_argument, NULL, OPT_DENY},
	{"prefix", required_argument, NULL, OPT_PREFIX},
	{"udp-rate", required_argument, NULL, OPT_UDP_RATE},
	{"dualstack", no_argument, NULL, OPT_DUALSTACK},
	{"drain-timeout", required_argument, NULL, OPT_DRAIN},
	{"backend", required_argument, NULL, OPT_BACKEND},
	{"coalesce", required_argument, NULL, OPT_COALESCE},
	{"unix", required_argument, NULL, 'U'},
	{"unix-mode", required_argument, NULL, OPT_UNIX_MODE},
	{"metrics", required_argument, NULL, OPT_METRICS},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
	{"proxy-protocol", no_argument, NULL, OPT_PROXY},
	{"proxy-from", required_argument, NULL, OPT_PROXY_FROM},
	{"verbose", no_argument, NULL, 'v'},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* What parsing gathers besides the config. */
struct parse_state {
	int udp, udp_only, v4, v6, host_given, port_given, unix_mode;
	char unix_mode_opt[64];
	char opt[64]; /* the option as typed: "-p", "--port" */
};

void serve_config_defaults(struct serve_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->host = "127.0.0.1";
	cfg->family = AF_UNSPEC;
	cfg->port = 1234;
	cfg->mode = MODE_ONCE;
	cfg->tcp = 1;
	cfg->workers = 0; /* online CPUs, in serve_run() */
	cfg->idle_timeout_ms = DEFAULT_IDLE_MS;
	cfg->max_bytes = DEFAULT_MAX_BYTES;
	cfg->max_line = DEFAULT_MAX_LINE;
	cfg->max_pending = DEFAULT_MAX_PENDING;
	cfg->prefix = "Received: ";
	cfg->drain_timeout_ms = DEFAULT_DRAIN_MS;
	cfg->coalesce_us = -1; /* by mode, in check_config() */
	cfg->log_level = LOG_INFO;
	cfg->log_format = LOGF_TEXT;
}

void serve_config_free(struct serve_config *cfg)
{
	free(cfg->allow);
	free(cfg->deny);
	free(cfg->proxy_from);
	cfg->allow = cfg->deny = cfg->proxy_from = NULL;
}

static void print_usage(void)
{
	char idle[32], bytes[32], line[32], pending[32], drain[32], co[32];
	cli_format_duration(idle, sizeof(idle), DEFAULT_IDLE_MS);
	cli_format_size(bytes, sizeof(bytes), DEFAULT_MAX_BYTES);
	cli_format_size(line, sizeof(line), DEFAULT_MAX_LINE);
	cli_format_size(pending, sizeof(pending), DEFAULT_MAX_PENDING);
	cli_format_duration(drain, sizeof(drain), DEFAULT_DRAIN_MS);
	cli_format_duration_us(co, sizeof(co), DEFAULT_COALESCE_US);
	printf(usage_fmt, idle, bytes, line, pending, drain, co);
}

/* One of names, or the usage error listing them (expected). */
static int pick(const char *opt, const char *kind, const char *s, const char *const *names,
		const char *expected, int *out)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			return *out = i, 0;
	return cli_usage(CMD, "invalid %s '%s' for %s: expected %s", kind, s, opt, expected);
}

static int add_cidr(const char *opt, sockit_cidr **list, size_t *n, const char *s)
{
	sockit_cidr c;
	if (*n >= MAX_CIDRS)
		return cli_usage(CMD, "too many %s blocks: %d at most", opt, MAX_CIDRS);
	if (sockit_cidr_parse(s, &c) < 0)
		return cli_usage(CMD,
				 "invalid CIDR '%s' for %s: expected an address/prefix as "
				 "10.0.0.0/8 or ::1/128",
				 s, opt);
	sockit_cidr *grown = realloc(*list, (*n + 1) * sizeof(**list));
	if (grown == NULL)
		return cli_usage(CMD, "out of memory");
	grown[(*n)++] = c;
	*list = grown;
	return 0;
}

/* --metrics [HOST:]PORT, HOST as -H takes it ([IPv6] with a port). */
static int parse_metrics(const char *opt, const char *s, struct serve_config *cfg)
{
	const char *colon = strrchr(s, ':'), *port = s;
	char h[sizeof(cfg->metrics_host_buf)];
	cfg->metrics_host = "127.0.0.1";
	if (colon != NULL) {
		size_t n = (size_t)(colon - s);
		int bracketed = s[0] == '[' && n > 0 && s[n - 1] == ']';
		const char *host = NULL;
		if (n > 0 && n < sizeof(h) && (bracketed || memchr(s, ':', n) == NULL)) {
			memcpy(h, s, n);
			h[n] = '\0';
			host = cli_host(h, cfg->metrics_host_buf, sizeof(cfg->metrics_host_buf));
		}
		if (host == NULL || host[0] == '\0')
			return cli_usage(
				CMD,
				"invalid address '%s' for %s: expected [HOST:]PORT, HOST a "
				"name, an IPv4 address or [IPv6]",
				s, opt);
		if (host == h)
			memcpy(cfg->metrics_host_buf, h, n + 1);
		cfg->metrics_host = cfg->metrics_host_buf;
		port = colon + 1;
	}
	return cli_opt_port(CMD, opt, port, 1, &cfg->metrics_port);
}

/* Options with a size or a number: 0, or 2 after the usage error. */
static int parse_amount(int c, const char *opt, const char *s, struct serve_config *cfg)
{
	uint64_t u;
	int rc;
	switch (c) {
	case OPT_WORKERS:
		return cli_opt_int(CMD, opt, s, 1, MAX_WORKERS, &cfg->workers);
	case OPT_MAX_CONNS:
		return cli_opt_u64(CMD, opt, s, 1, MAX_COUNT, &cfg->max_conns);
	case OPT_MAX_PER_IP:
		return cli_opt_u64(CMD, opt, s, 0, MAX_COUNT, &cfg->max_conns_per_ip);
	case OPT_UDP_RATE:
		return cli_opt_u64(CMD, opt, s, 0, 1000000000, &cfg->udp_rate);
	case 'i':
		return cli_opt_duration(CMD, opt, s, MAX_IDLE_MS, &cfg->idle_timeout_ms);
	case OPT_DRAIN:
		return cli_opt_duration(CMD, opt, s, MAX_DRAIN_MS, &cfg->drain_timeout_ms);
	case OPT_COALESCE:
		rc = cli_opt_duration_us(CMD, opt, s, MAX_COALESCE_US, &u);
		cfg->coalesce_us = rc == 0 ? (int64_t)u : cfg->coalesce_us;
		return rc;
	case OPT_MAX_BYTES:
		rc = cli_opt_size(CMD, opt, s, 1, MAX_BYTES, &u);
		cfg->max_bytes = rc == 0 ? (size_t)u : cfg->max_bytes;
		return rc;
	case OPT_MAX_LINE:
		rc = cli_opt_size(CMD, opt, s, 1, MAX_LINE, &u);
		cfg->max_line = rc == 0 ? (size_t)u : cfg->max_line;
		return rc;
	default: /* OPT_MAX_PENDING */
		rc = cli_opt_size(CMD, opt, s, 1, MAX_PENDING, &u);
		cfg->max_pending = rc == 0 ? (size_t)u : cfg->max_pending;
		return rc;
	}
}

/* Options with a word from a list: 0, or 2 after the usage error. */
static int parse_choice(int c, const char *opt, const char *s, struct serve_config *cfg)
{
	static const char *const modes[] = {"once", "line", "echo", NULL};
	static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
	static const char *const formats[] = {"text", "json", NULL};
	static const char *const backends[] = {"auto", "io_uring", "epoll", NULL};
	int v = 0, rc;
	switch (c) {
	case 'm':
		rc = pick(opt, "mode", s, modes, "once, line or echo", &v);
		cfg->mode = rc == 0 ? (enum serve_mode)v : cfg->mode;
		return rc;
	case OPT_BACKEND:
		rc = pick(opt, "backend", s, backends, "auto, io_uring or epoll", &v);
		cfg->backend = rc == 0 ? (enum serve_backend)v : cfg->backend;
		return rc;
	case OPT_LOG_LEVEL:
		rc = pick(opt, "log level", s, levels, "error, warn, info or debug", &v);
		cfg->log_level = rc == 0 ? (enum log_level)v : cfg->log_level;
		return rc;
	default: /* OPT_LOG_FORMAT */
		rc = pick(opt, "log format", s, formats, "text or json", &v);
		cfg->log_format = rc == 0 ? (enum log_format)v : cfg->log_format;
		return rc;
	}
}

/* -U PATH (and PATH.dgram with -u): a path or "@name" that fits in
 * sun_path.  0, or 2 after the usage error. */
static int check_unix_path(const char *path, const char *dgram_suffix)
{
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	sockit_addr a;
	snprintf(name, sizeof(name), "%s%s", path, dgram_suffix);
	int rc = sockit_addr_from_path(name, &a);
	if (rc == -ENAMETOOLONG || (rc == 0 && strlen(name) >= sizeof(name) - 16))
		return cli_usage(CMD, "invalid path '%s' for -U: too long (%zu bytes at most%s)",
				 path, sizeof(name) - 17 - strlen(dgram_suffix),
				 dgram_suffix[0] ? ", as -u adds \".dgram\"" : "");
	if (rc < 0)
		return cli_usage(CMD, "invalid path '%s' for -U: expected a file path or @name",
				 path);
	return 0;
}

/* --unix-mode: permissions in octal, 1 to 0777. */
static int parse_unix_mode(const char *opt, const char *s, unsigned *out)
{
	char *end = NULL;
	unsigned long v = 0;
	if (s[0] >= '0' && s[0] <= '7' && strlen(s) <= 4)
		v = strtoul(s, &end, 8);
	if (end == NULL || *end != '\0' || v == 0 || v > 0777)
		return cli_usage(CMD,
				 "invalid mode '%s' for %s: expected octal permissions from 1 to "
				 "0777, as 0600",
				 s, opt);
	*out = (unsigned)v;
	return 0;
}

/* The TLS files: names only here; serve_run loads them. */
static int parse_file(int c, const char *opt, const char *s, struct serve_config *cfg)
{
	if (s[0] == '\0')
		return cli_usage(CMD, "invalid file name '' for %s", opt);
	if (c == OPT_TLS_CERT)
		cfg->tls_cert = s;
	else if (c == OPT_TLS_KEY)
		cfg->tls_key = s;
	else
		cfg->tls_client_ca = s;
	return 0;
}

/* One option c with its value: 0, 1 for --help/--version (done), or 2. */
static int parse_option(int c, const char *opt, const char *s, struct serve_config *cfg,
			struct parse_state *st)
{
	switch (c) {
	case 'H':
		cfg->host = cli_host(s, cfg->host_buf, sizeof(cfg->host_buf));
		st->host_given = 1;
		if (cfg->host == NULL || cfg->host[0] == '\0')
			return cli_usage(CMD,
					 "invalid host '%s' for %s: expected a name, an IPv4 "
					 "or IPv6 address, or [IPv6]",
					 s, opt);
		return 0;
	case 'p':
		st->port_given = 1;
		return cli_opt_port(CMD, opt, s, 1, &cfg->port);
	case 'U':
		return cfg->unix_path = s, 0;
	case OPT_UNIX_MODE:
		snprintf(st->unix_mode_opt, sizeof(st->unix_mode_opt), "%s", opt);
		st->unix_mode = 1;
		return parse_unix_mode(opt, s, &cfg->unix_mode);
	case 'u':
		return st->udp = 1, 0;
	case OPT_UDP_ONLY:
		return st->udp_only = 1, 0;
	case '4':
		return st->v4 = 1, 0;
	case '6':
		return st->v6 = 1, 0;
	case 'v':
		return cfg->log_level = LOG_DEBUG, 0;
	case OPT_DUALSTACK:
		return cfg->dualstack = 1, 0;
	case OPT_ALLOW:
		return add_cidr(opt, &cfg->allow, &cfg->nallow, s);
	case OPT_DENY:
		return add_cidr(opt, &cfg->deny, &cfg->ndeny, s);
	case OPT_METRICS:
		return parse_metrics(opt, s, cfg);
	case OPT_PROXY_FROM:
		return add_cidr(opt, &cfg->proxy_from, &cfg->nproxy_from, s);
	case OPT_PROXY:
		return cfg->proxy = 1, 0;
	case OPT_TLS_CERT:
	case OPT_TLS_KEY:
	case OPT_TLS_CLIENT_CA:
		return parse_file(c, opt, s, cfg);
	case OPT_PREFIX:
		if (strlen(s) > MAX_PREFIX)
			return cli_usage(CMD, "invalid prefix for %s: longer than %d bytes", opt,
					 MAX_PREFIX);
		return cfg->prefix = s, 0;
	case 'm':
	case OPT_BACKEND:
	case OPT_LOG_LEVEL:
	case OPT_LOG_FORMAT:
		return parse_choice(c, opt, s, cfg);
	case 'h':
		print_usage();
		return 1;
	case 'V':
		cli_print_version();
		return 1;
	default:
		return parse_amount(c, opt, s, cfg);
	}
}

/* -U's combinations: -1 when they agree, else 2 after the usage error. */
static int check_unix(const struct serve_config *cfg, const struct parse_state *st)
{
	if (cfg->unix_path == NULL)
		return cli_usage(CMD, "%s needs -U PATH", st->unix_mode_opt);
	if (st->host_given || st->port_given)
		return cli_usage(CMD, "-U and %s: choose one (-U replaces the TCP listener)",
				 st->host_given ? "-H" : "-p");
	if (st->v4 || st->v6 || cfg->dualstack)
		return cli_usage(CMD, "-U and %s: choose one (a Unix socket has no IP)",
				 st->v4	  ? "-4"
				 : st->v6 ? "-6"
					  : "--dualstack");
	if (cfg->nallow > 0 || cfg->ndeny > 0)
		return cli_usage(CMD,
				 "%s does not apply to Unix sockets (no IP): limit who may connect "
				 "with --unix-mode and the directory's permissions",
				 cfg->nallow > 0 ? "--allow" : "--deny");
	if (check_unix_path(cfg->unix_path, "") != 0 ||
	    (cfg->udp && check_unix_path(cfg->unix_path, ".dgram") != 0))
		return 2;
	if (st->unix_mode && cfg->unix_path[0] == '@')
		return cli_usage(CMD, "%s: an abstract socket (%s) has no file to set it on",
				 st->unix_mode_opt, cfg->unix_path);
	return -1;
}

/* The combinations, once every option is read. */
static int check_config(struct serve_config *cfg, const struct parse_state *st)
{
	if (st->v4 && st->v6)
		return cli_usage(CMD, "-4 and -6: choose one");
	cfg->family = st->v4 ? AF_INET : st->v6 ? AF_INET6 : AF_UNSPEC;
	if (st->v6 && !st->host_given)
		cfg->host = "::1";
	if (cfg->dualstack && strcmp(cfg->host, "::") != 0)
		return cli_usage(CMD, "--dualstack needs -H :: (got '%s')", cfg->host);
	if (cfg->dualstack && st->v4)
		return cli_usage(CMD, "--dualstack and -4: choose one");
	if (st->udp && st->udp_only)
		return cli_usage(CMD, "--udp and --udp-only: choose one");
	if (st->udp_only) {
		cfg->tcp = 0;
		cfg->udp = 1;
	} else if (st->udp) {
		cfg->udp = 1;
	}
	if ((cfg->tls_key != NULL || cfg->tls_client_ca != NULL) && cfg->tls_cert == NULL)
		return cli_usage(CMD, "%s needs --tls-cert",
				 cfg->tls_key != NULL ? "--tls-key" : "--tls-client-ca");
	if (cfg->tls_cert != NULL && !cfg->tcp)
		return cli_usage(CMD, "--tls-cert and --udp-only: TLS is for TCP connections only");
	if (cfg->nproxy_from > 0 && !cfg->proxy)
		return cli_usage(CMD, "--proxy-from needs --proxy-protocol");
	if (cfg->proxy && !cfg->tcp)
		return cli_usage(CMD,
				 "--proxy-protocol and --udp-only: PROXY headers are for TCP only");
	cfg->proxy_timeout_ms = cfg->idle_timeout_ms > 0 && cfg->idle_timeout_ms < PROXY_TIMEOUT_MS
					? cfg->idle_timeout_ms
					: PROXY_TIMEOUT_MS;
	cfg->prefix_len = strlen(cfg->prefix);
	cfg->host_given = st->host_given;
	cfg->port_given = st->port_given;
	if (cfg->unix_path != NULL || st->unix_mode) {
		int rc = check_unix(cfg, st);
		if (rc >= 0)
			return rc;
	}
	if (cfg->coalesce_us < 0)
		cfg->coalesce_us = cfg->mode == MODE_ONCE ? DEFAULT_COALESCE_US : 0;
	return -1;
}

/* The option as the user typed it: "--port" (from "--port=0"), or "-p". */
static void typed_name(const char *word, int c, char *buf, size_t len)
{
	if (word != NULL && strncmp(word, "--", 2) == 0)
		snprintf(buf, len, "%.*s", (int)strcspn(word, "="), word);
	else
		snprintf(buf, len, "-%c", c < 256 ? c : '?');
}

int serve_parse(int argc, char **argv, struct serve_config *cfg)
{
	struct parse_state st;
	memset(&st, 0, sizeof(st));
	opterr = 0;
	optind = 0; /* GNU: full re-initialisation */
	cfg->argc = argc;
	cfg->argv = argv;
	for (;;) {
		int prev = optind ? optind : 1;
		int c = getopt_long(argc, argv, short_opts, long_opts, NULL);
		if (c == -1)
			break;
		const char *word = prev < argc ? argv[prev] : NULL;
		if (c == '?' || c == ':')
			return cli_bad_option(CMD, c, word);
		typed_name(word, c, st.opt, sizeof(st.opt));
		int rc = parse_option(c, st.opt, optarg, cfg, &st);
		if (rc != 0)
			return rc == 1 ? 0 : rc;
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	return check_config(cfg, &st);
}
