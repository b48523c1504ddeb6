/* parse.c -- `sockit connect`'s command line: argv into a struct connect_config. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cli.h"
#include "connect.h"

#define CMD "connect"

/* Longest duration we accept: 24 days (576h), a round number that fits
 * poll()'s int of milliseconds. */
#define MAX_DURATION_MS (24ull * 24 * 3600 * 1000)

const char connect_help[] =
	"usage: sockit connect [-u] [-4|-6] [-w DUR] [-i DUR] [-q DUR] [-n] [-z] [-v]\n"
	"                      [--reply-timeout DUR] [--wait-for DUR] [--json]\n"
	"                      HOST PORT [DATA...]\n"
	"\n"
	"With DATA: send the arguments joined by single spaces, plus a newline unless\n"
	"-n, half-close, print the reply until the server closes.  Without DATA: relay\n"
	"stdin to the socket and the socket to stdout, byte-exact, like nc.\n"
	"\n"
	"  -u, --udp              UDP: each DATA argument, or each stdin line, is one\n"
	"                         datagram; replies are printed as they come\n"
	"  -4, --ipv4             only IPv4 addresses (default: every address)\n"
	"  -6, --ipv6             only IPv6 addresses\n"
	"  -w, --timeout DUR      connect timeout per address (default 10s; 0 = none)\n"
	"  -i, --idle-timeout DUR give up after DUR with no data either way (default:\n"
	"                         none); UDP: ends the wait, exit 0 if a reply came\n"
	"  -q, --quit-after DUR   quit DUR after input EOF once it is all sent (default:\n"
	"                         wait for the server to close; -q 0 quits at once)\n"
	"  -n, --no-newline       TCP: do not append '\\n' to DATA; UDP: send DATA and\n"
	"                         stdin lines without their trailing '\\n'\n"
	"  --reply-timeout DUR    UDP: after the last datagram, wait until DUR passes\n"
	"                         without a reply (default 1s; 0 = do not wait)\n"
	"  -z, --zero-io          only check that the port accepts a connection, send\n"
	"                         nothing\n"
	"  --wait-for DUR         retry (backoff 50ms doubling to 1s) until the port\n"
	"                         accepts a connection or DUR passes\n"
	"  -v, --verbose          summary on stderr: addresses tried, bytes, duration, end\n"
	"  --json                 the same summary as one JSON object on stderr (runtime\n"
	"                         errors go into its \"error\" key)\n"
	"  -h, --help             this help\n"
	"  -V, --version          the version\n"
	"\n"
	"HOST: a name, an IPv4 or IPv6 address, or [IPv6].  PORT: 1..65535 or a service\n"
	"name (http).  DUR: 500ms, 2s, 1.5s, 1m; a bare number is seconds.  Options may\n"
	"follow HOST and PORT; put -- before DATA that starts with '-'.\n"
	"\n"
	"What happens when (TCP):\n"
	"  input EOF (stdin or DATA sent)  shut down the write side, keep reading\n"
	"                                  (-q DUR: exit 0 DUR later)\n"
	"  server closes (FIN)             flush stdout, exit 0\n"
	"  server resets (RST)             message, exit 1\n"
	"  -i idle timeout                 message, exit 1\n"
	"  -w connect timeout, refused     a message naming every address tried, exit 1\n"
	"  stdout closed (EPIPE), full     message, exit 1\n"
	"  SIGINT, SIGTERM, SIGHUP         stop, summary (-v/--json), die of the signal\n"
	"UDP: exit 0 when every datagram was sent and a reply came (or none was waited\n"
	"for: no datagram, or --reply-timeout 0); exit 1 if none came or the port is\n"
	"closed (ICMP port unreachable).\n"
	"\n"
	"Exit: 0 success, 1 runtime failure (lost output included), 2 usage error.\n";

enum { OPT_REPLY_TIMEOUT = 256, OPT_WAIT_FOR, OPT_JSON };

static const struct option longopts[] = {
	{"udp", no_argument, NULL, 'u'},
	{"ipv4", no_argument, NULL, '4'},
	{"ipv6", no_argument, NULL, '6'},
	{"timeout", required_argument, NULL, 'w'},
	{"idle-timeout", required_argument, NULL, 'i'},
	{"quit-after", required_argument, NULL, 'q'},
	{"no-newline", no_argument, NULL, 'n'},
	{"zero-io", no_argument, NULL, 'z'},
	{"verbose", no_argument, NULL, 'v'},
	{"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
	{"wait-for", required_argument, NULL, OPT_WAIT_FOR},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* The option as it was spelled: "--timeout" or "-w". */
static const char *spelled(int c, int longindex, char *buf, size_t len)
{
	if (longindex >= 0) {
		snprintf(buf, len, "--%s", longopts[longindex].name);
		return buf;
	}
	snprintf(buf, len, "-%c", c);
	return buf;
}

/* One option; *seen collects the ones whose combinations are checked. */
enum { SEEN_REPLY = 1, SEEN_WAIT = 2 };

static int take_option(struct connect_config *cfg, int c, const char *opt, int *seen)
{
	switch (c) {
	case 'u':
		cfg->udp = 1;
		return 0;
	case '4':
	case '6':
		if (cfg->family != AF_UNSPEC && cfg->family != (c == '4' ? AF_INET : AF_INET6))
			return cli_usage(CMD, "-4 and -6 exclude each other");
		cfg->family = c == '4' ? AF_INET : AF_INET6;
		return 0;
	case 'w':
		return cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->connect_ms);
	case 'i':
		return cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->idle_ms);
	case 'q':
		return cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->quit_ms);
	case OPT_REPLY_TIMEOUT:
		*seen |= SEEN_REPLY;
		return cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->reply_ms);
	case OPT_WAIT_FOR:
		*seen |= SEEN_WAIT;
		return cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &cfg->wait_for_ms);
	case 'n':
		cfg->newline = 0;
		return 0;
	case 'z':
		cfg->zero = 1;
		return 0;
	case 'v':
		cfg->verbose = 1;
		return 0;
	case OPT_JSON:
		cfg->json = 1;
		return 0;
	}
	return 2; /* not reached: getopt_long only returns the options above */
}

/* HOST PORT [DATA...] after the options, and the combinations. */
static int take_operands(struct connect_config *cfg, int left, char **rest, int seen)
{
	if (left < 1)
		return cli_usage(CMD, "missing HOST and PORT");
	if (left < 2)
		return cli_usage(CMD, "missing PORT after HOST '%s'", rest[0]);
	cfg->host = rest[0];
	if (cfg->host[0] == '\0')
		return cli_usage(CMD, "invalid host '' for HOST: empty");
	cfg->name = cli_host(cfg->host, cfg->name_buf, sizeof(cfg->name_buf));
	if (cfg->name == NULL)
		return cli_usage(CMD,
				 "invalid host '%s' for HOST: expected an IPv6 address in "
				 "brackets, as [::1]",
				 cfg->host);
	int rc = cli_opt_port(CMD, "PORT", rest[1], 0, &cfg->port);
	if (rc != 0)
		return rc;
	if (left > 2) {
		cfg->data = rest + 2;
		cfg->ndata = left - 2;
	}
	if (cfg->zero && cfg->ndata > 0)
		return cli_usage(CMD, "-z sends no data, but DATA '%s' was given", cfg->data[0]);
	if (cfg->zero && cfg->udp)
		return cli_usage(CMD, "-z checks TCP connections; it cannot be used with -u");
	if ((seen & SEEN_WAIT) && cfg->udp)
		return cli_usage(CMD, "--wait-for waits for a TCP port; it cannot be used with -u");
	if ((seen & SEEN_REPLY) && !cfg->udp)
		return cli_usage(CMD, "--reply-timeout applies to UDP only; add -u");
	return 0;
}

int connect_parse(int argc, char **argv, struct connect_config *cfg)
{
	*cfg = (struct connect_config){
		.family = AF_UNSPEC,
		.connect_ms = 10000,
		.quit_ms = CONNECT_NEVER,
		.reply_ms = 1000,
		.newline = 1,
	};
	int seen = 0;
	opterr = 0;
	optind = 0; /* full re-initialisation (GNU) */
	for (;;) {
		int longindex = -1;
		int c = getopt_long(argc, argv, ":u46w:i:q:nzvhV", longopts, &longindex);
		if (c == -1)
			break;
		if (c == 'h')
			return CONNECT_PARSE_HELP;
		if (c == 'V')
			return CONNECT_PARSE_VERSION;
		if (c == ':' || c == '?')
			return cli_bad_option(CMD, c, argv[optind - 1]);
		char opt[32];
		int rc = take_option(cfg, c, spelled(c, longindex, opt, sizeof(opt)), &seen);
		if (rc != 0)
			return rc;
	}
	return take_operands(cfg, argc - optind, argv + optind, seen);
}
