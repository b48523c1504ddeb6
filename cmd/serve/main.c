/* serve.c -- `sockit serve`: parse the command line into a config, run it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"

#define MAX_WORKERS 1024
#define MAX_PREFIX 4096
#define MAX_CIDRS 1024

static const char usage_text[] =
	"usage: sockit serve [-H HOST] [-p PORT] [-m|--mode once|line|echo] [--udp|--udp-only]\n"
	"         [--workers N] [--max-conns N] [--max-conns-per-ip N] [--idle-timeout DUR]\n"
	"         [--max-bytes N] [--max-line N] [--max-pending N] [--allow CIDR]... [--deny "
	"CIDR]...\n"
	"         [--prefix STR] [--udp-rate N] [--dualstack] [--drain-timeout DUR]\n"
	"         [--backend auto|io_uring|epoll]\n"
	"         [--log-level error|warn|info|debug] [--log-format text|json] [--help] "
	"[--version]\n"
	"\n"
	"The tutorial's acknowledgement server: each client gets PREFIX + what it sent.\n"
	"\n"
	"  -H, --host HOST         address to listen on (default 127.0.0.1; '::' is IPv6 only\n"
	"                          unless --dualstack)\n"
	"  -p, --port PORT         port (default 1234; 0 picks a free one)\n"
	"  -m, --mode MODE         once: one read, one reply, close (default, the tutorial)\n"
	"                          line: a reply per line, persistent; echo: RFC 862\n"
	"      --udp               also serve UDP on the same port\n"
	"      --udp-only          serve UDP only\n"
	"      --workers N         worker threads, each with its own listener (default: CPUs)\n"
	"      --max-conns N       open connections at most (default: from the fd limit)\n"
	"      --max-conns-per-ip N  per client address (default 0 = unlimited)\n"
	"      --idle-timeout DUR  close a connection silent this long (default 30s, 0 = never)\n"
	"      --max-bytes N       once mode: size of the one read (default 1024)\n"
	"      --max-line N        line mode: longest line (default 64KiB)\n"
	"      --max-pending N     unsent output per connection before reading stops (64KiB)\n"
	"      --allow CIDR        only clients in these blocks (repeatable)\n"
	"      --deny CIDR         never clients in these blocks (repeatable)\n"
	"      --prefix STR        reply prefix (default 'Received: ')\n"
	"      --udp-rate N        datagrams per second per source IP (default 0 = unlimited)\n"
	"      --dualstack         with -H ::, accept IPv4 too\n"
	"      --drain-timeout DUR on SIGTERM/SIGINT, time for in-flight clients (default 5s)\n"
	"      --backend B         event loop: io_uring, epoll, or auto (default: io_uring\n"
	"                          where the kernel allows it, else epoll)\n"
	"      --log-level LEVEL   error, warn, info (default) or debug (per connection)\n"
	"      --log-format FMT    text (default) or json (one object per line)\n"
	"\n"
	"Durations take units: 500ms, 2s, 1m (a bare number is seconds).  Sizes: 1024, 64k.\n"
	"SIGUSR1 prints the counters; SIGTERM/SIGINT drain and exit 0 (a second one: at once).\n";

enum {
	OPT_UDP = 256,
	OPT_UDP_ONLY,
	OPT_WORKERS,
	OPT_MAX_CONNS,
	OPT_MAX_PER_IP,
	OPT_IDLE,
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
	OPT_VERSION,
};

static const struct option long_opts[] = {
	{"host", required_argument, NULL, 'H'},
	{"port", required_argument, NULL, 'p'},
	{"mode", required_argument, NULL, 'm'},
	{"udp", no_argument, NULL, OPT_UDP},
	{"udp-only", no_argument, NULL, OPT_UDP_ONLY},
	{"workers", required_argument, NULL, OPT_WORKERS},
	{"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	{"max-conns-per-ip", required_argument, NULL, OPT_MAX_PER_IP},
	{"idle-timeout", required_argument, NULL, OPT_IDLE},
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
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static int pick(const char *s, const char *const *names, int *out)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			return *out = i, 0;
	return -1;
}

static int add_cidr(sockit_cidr **list, size_t *n, const char *s)
{
	if (*n >= MAX_CIDRS)
		return -1;
	sockit_cidr c;
	if (sockit_cidr_parse(s, &c) < 0)
		return -1;
	sockit_cidr *grown = realloc(*list, (*n + 1) * sizeof(**list));
	if (grown == NULL)
		return -1;
	grown[(*n)++] = c;
	*list = grown;
	return 0;
}

static void config_defaults(struct serve_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->host = "127.0.0.1";
	cfg->port = 1234;
	cfg->mode = MODE_ONCE;
	cfg->tcp = 1;
	cfg->workers = 0; /* online CPUs, in run() */
	cfg->idle_timeout_ms = 30000;
	cfg->max_bytes = 1024;
	cfg->max_line = 64 * 1024;
	cfg->max_pending = 64 * 1024;
	cfg->prefix = "Received: ";
	cfg->drain_timeout_ms = 5000;
	cfg->log_level = LOG_INFO;
	cfg->log_format = LOGF_TEXT;
}

static void config_free(struct serve_config *cfg)
{
	free(cfg->allow);
	free(cfg->deny);
}

/* Parses argv into cfg.  Returns -1 to go on, or an exit code (0 for
 * --help/--version, 2 for a usage error). */
static int parse_args(int argc, char **argv, struct serve_config *cfg)
{
	static const char *const modes[] = {"once", "line", "echo", NULL};
	static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
	static const char *const formats[] = {"text", "json", NULL};
	static const char *const backends[] = {"auto", "io_uring", "epoll", NULL};
	int udp = 0, udp_only = 0, v;
	uint64_t u;

	opterr = 0;
	optind = 0; /* GNU: full re-initialisation */
	for (;;) {
		int prev = optind ? optind : 1;
		int c = getopt_long(argc, argv, ":H:p:m:h", long_opts, NULL);
		if (c == -1)
			break;
		const char *opt = argv[prev] ? argv[prev] : "?";
		switch (c) {
		case 'H':
			cfg->host = optarg;
			break;
		case 'p':
			if (cli_parse_port(optarg, 1, &cfg->port) < 0)
				return cli_usage("serve", "bad --port '%s': want 0..65535", optarg);
			break;
		case 'm':
			if (pick(optarg, modes, &v) < 0)
				return cli_usage("serve",
						 "bad --mode '%s': want once, line or echo",
						 optarg);
			cfg->mode = (enum serve_mode)v;
			break;
		case OPT_UDP:
			udp = 1;
			break;
		case OPT_UDP_ONLY:
			udp_only = 1;
			break;
		case OPT_WORKERS:
			if (cli_parse_int(optarg, 1, MAX_WORKERS, &cfg->workers) < 0)
				return cli_usage("serve", "bad --workers '%s': want 1..%d", optarg,
						 MAX_WORKERS);
			break;
		case OPT_MAX_CONNS:
			if (cli_parse_u64(optarg, 1, 100000000, &cfg->max_conns) < 0)
				return cli_usage("serve", "bad --max-conns '%s': want 1..100000000",
						 optarg);
			break;
		case OPT_MAX_PER_IP:
			if (cli_parse_u64(optarg, 0, 100000000, &cfg->max_conns_per_ip) < 0)
				return cli_usage("serve",
						 "bad --max-conns-per-ip '%s': want 0..100000000",
						 optarg);
			break;
		case OPT_IDLE:
			if (cli_parse_duration_ms(optarg, 86400000ull * 365,
						  &cfg->idle_timeout_ms) < 0)
				return cli_usage(
					"serve",
					"bad --idle-timeout '%s': want a duration like 30s, "
					"500ms, 0",
					optarg);
			break;
		case OPT_MAX_BYTES:
			if (cli_parse_size(optarg, 1, 16u << 20, &u) < 0)
				return cli_usage("serve", "bad --max-bytes '%s': want 1..16MiB",
						 optarg);
			cfg->max_bytes = (size_t)u;
			break;
		case OPT_MAX_LINE:
			if (cli_parse_size(optarg, 1, 64u << 20, &u) < 0)
				return cli_usage("serve", "bad --max-line '%s': want 1..64MiB",
						 optarg);
			cfg->max_line = (size_t)u;
			break;
		case OPT_MAX_PENDING:
			if (cli_parse_size(optarg, 1, 1u << 30, &u) < 0)
				return cli_usage("serve", "bad --max-pending '%s': want 1..1GiB",
						 optarg);
			cfg->max_pending = (size_t)u;
			break;
		case OPT_ALLOW:
		case OPT_DENY:
			if (add_cidr(c == OPT_ALLOW ? &cfg->allow : &cfg->deny,
				     c == OPT_ALLOW ? &cfg->nallow : &cfg->ndeny, optarg) < 0)
				return cli_usage(
					"serve",
					"bad --%s '%s': want a CIDR like 10.0.0.0/8 or ::1/128",
					c == OPT_ALLOW ? "allow" : "deny", optarg);
			break;
		case OPT_PREFIX:
			if (strlen(optarg) > MAX_PREFIX)
				return cli_usage("serve", "bad --prefix: longer than %d bytes",
						 MAX_PREFIX);
			cfg->prefix = optarg;
			break;
		case OPT_UDP_RATE:
			if (cli_parse_u64(optarg, 0, 1000000000, &cfg->udp_rate) < 0)
				return cli_usage("serve", "bad --udp-rate '%s': want 0..1000000000",
						 optarg);
			break;
		case OPT_DUALSTACK:
			cfg->dualstack = 1;
			break;
		case OPT_DRAIN:
			if (cli_parse_duration_ms(optarg, 86400000ull, &cfg->drain_timeout_ms) < 0)
				return cli_usage(
					"serve",
					"bad --drain-timeout '%s': want a duration like 5s",
					optarg);
			break;
		case OPT_BACKEND:
			if (pick(optarg, backends, &v) < 0)
				return cli_usage("serve",
						 "bad --backend '%s': want auto, io_uring or epoll",
						 optarg);
			cfg->backend = (enum serve_backend)v;
			break;
		case OPT_LOG_LEVEL:
			if (pick(optarg, levels, &v) < 0)
				return cli_usage(
					"serve",
					"bad --log-level '%s': want error, warn, info or debug",
					optarg);
			cfg->log_level = (enum log_level)v;
			break;
		case OPT_LOG_FORMAT:
			if (pick(optarg, formats, &v) < 0)
				return cli_usage("serve",
						 "bad --log-format '%s': want text or json",
						 optarg);
			cfg->log_format = (enum log_format)v;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case OPT_VERSION:
			cli_print_version();
			return 0;
		default:
			return cli_bad_option("serve", c, opt);
		}
	}
	if (optind < argc)
		return cli_usage("serve", "unexpected argument '%s'", argv[optind]);
	if (cfg->host[0] == '\0')
		return cli_usage("serve", "bad --host '': want an address or name");
	if (cfg->dualstack && strcmp(cfg->host, "::") != 0)
		return cli_usage("serve", "--dualstack needs -H :: (got '%s')", cfg->host);
	if (udp && udp_only)
		return cli_usage("serve", "--udp and --udp-only: choose one");
	if (udp_only) {
		cfg->tcp = 0;
		cfg->udp = 1;
	} else if (udp) {
		cfg->udp = 1;
	}
	cfg->prefix_len = strlen(cfg->prefix);
	return -1;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_config cfg;
	config_defaults(&cfg);
	int rc = parse_args(argc, argv, &cfg);
	if (rc < 0)
		rc = serve_run(&cfg);
	config_free(&cfg);
	return rc;
}
