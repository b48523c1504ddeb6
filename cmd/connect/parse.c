/* parse.c -- `sockit connect`'s command line: argv into a struct connect_config. */
#include <errno.h>
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
	"                      [--attempt-delay DUR] [--proxy-header v1|v2]\n"
	"                      [--tls [--tls-ca FILE] [--tls-cert FILE [--tls-key FILE]]\n"
	"                       [--tls-servername NAME] [--tls-insecure]]\n"
	"                      HOST PORT [DATA...]\n"
	"       sockit connect [options] -U PATH [DATA...]\n"
	"\n"
	"With DATA: send the arguments joined by single spaces, plus a newline unless\n"
	"-n, half-close, print the reply until the server closes.  Without DATA: relay\n"
	"stdin to the socket and the socket to stdout, byte-exact, like nc.\n"
	"\n"
	"  -u, --udp              UDP: each DATA argument, or each stdin line, is one\n"
	"                         datagram; replies are printed as they come\n"
	"  -U, --unix PATH        a Unix-domain socket (PATH, or @name for an abstract\n"
	"                         one) instead of HOST PORT; every word after the\n"
	"                         options is DATA.  With -u: a datagram socket, bound to\n"
	"                         an automatic abstract name so replies can come back\n"
	"                         (nothing to remove afterwards)\n"
	"  -4, --ipv4             only IPv4 addresses (default: every address)\n"
	"  -6, --ipv6             only IPv6 addresses\n"
	"  -w, --timeout DUR      one deadline for connecting (every address) and the\n"
	"                         TLS handshake (default 10s; 0 = none)\n"
	"  --attempt-delay DUR    Happy Eyeballs (RFC 8305): start the next address\n"
	"                         after DUR without a connection, keep the others\n"
	"                         going, take the first that connects (default 250ms;\n"
	"                         0 = one address after another)\n"
	"  -i, --idle-timeout DUR give up after DUR with no data either way (default:\n"
	"                         none); UDP: ends the wait, exit 0 if a reply came\n"
	"  -q, --quit-after DUR   quit DUR after input EOF once it is all sent (default:\n"
	"                         wait for the server to close; -q 0 quits at once)\n"
	"  -n, --no-newline       TCP: do not append '\\n' to DATA; UDP: send DATA and\n"
	"                         stdin lines without their trailing '\\n'\n"
	"  --reply-timeout DUR    UDP: after the last datagram, wait until DUR passes\n"
	"                         without a reply (default 1s; 0 = do not wait)\n"
	"  -z, --zero-io          only check that the port accepts a connection, send\n"
	"                         nothing (with --tls: and that the handshake succeeds)\n"
	"  --wait-for DUR         retry (backoff 50ms doubling to 1s) until the port\n"
	"                         accepts a connection or DUR passes\n"
	"  --proxy-header v1|v2   first send a PROXY protocol header announcing this\n"
	"                         connection's real addresses (before TLS); v2 only\n"
	"                         with -U\n"
	"  --tls                  TLS: verify the server's certificate against the\n"
	"                         system's CAs and HOST; nothing is sent before it\n"
	"  --tls-ca FILE          trust the CA certificates in FILE (PEM) instead\n"
	"  --tls-cert FILE        present this client certificate (PEM)\n"
	"  --tls-key FILE         its private key (default: in the --tls-cert file)\n"
	"  --tls-servername NAME  the name to verify and send as SNI instead of HOST\n"
	"                         (with -U: required unless --tls-insecure)\n"
	"  --tls-insecure         do not verify the certificate at all (says so)\n"
	"  -v, --verbose          summary on stderr: addresses tried, bytes, duration, end\n"
	"                         (and the TLS version, cipher, peer)\n"
	"  --json                 the same summary as one JSON object on stderr (runtime\n"
	"                         errors go into its \"error\" key)\n"
	"  -h, --help             this help\n"
	"  -V, --version          the version\n"
	"\n"
	"HOST: a name, an IPv4 or IPv6 address, or [IPv6].  PORT: 1..65535 or a service\n"
	"name (http).  DUR: 500ms, 2s, 1.5s, 1m; a bare number is seconds.  Options may\n"
	"follow HOST and PORT; put -- before DATA that starts with '-'.  A file of\n"
	"--tls-ca, --tls-cert or --tls-key that cannot be loaded is a usage error naming\n"
	"it (exit 2).\n"
	"\n"
	"What happens when (TCP and Unix streams; TLS the same, as noted):\n"
	"  input EOF (stdin or DATA sent)  shut down the write side (TLS: send\n"
	"                                  close_notify), keep reading (-q DUR: exit 0\n"
	"                                  DUR later)\n"
	"  server closes (FIN)             flush stdout, exit 0 (TLS: its close_notify)\n"
	"  TLS: FIN without close_notify   truncation: message, exit 1\n"
	"  server resets (RST)             message, exit 1\n"
	"  TLS handshake or verification   the reason, exit 1; no DATA was sent\n"
	"  fails\n"
	"  -i idle timeout                 message, exit 1\n"
	"  -w connect timeout, refused     a message naming every address tried, exit 1\n"
	"  stdout closed (EPIPE), full     message, exit 1\n"
	"  SIGINT, SIGTERM, SIGHUP         stop, summary (-v/--json), die of the signal\n"
	"UDP: exit 0 when every datagram was sent and a reply came (or none was waited\n"
	"for: no datagram, or --reply-timeout 0); exit 1 if none came or the port is\n"
	"closed (ICMP port unreachable).\n"
	"\n"
	"Exit: 0 success, 1 runtime failure (lost output included), 2 usage error.\n";

enum {
	OPT_REPLY_TIMEOUT = 256,
	OPT_WAIT_FOR,
	OPT_JSON,
	OPT_ATTEMPT_DELAY,
	OPT_PROXY_HEADER,
	OPT_TLS,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_SERVERNAME,
	OPT_TLS_INSECURE,
};

static const struct option longopts[] = {
	{"udp", no_argument, NULL, 'u'},
	{"unix", required_argument, NULL, 'U'},
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
	{"attempt-delay", required_argument, NULL, OPT_ATTEMPT_DELAY},
	{"proxy-header", required_argument, NULL, OPT_PROXY_HEADER},
	{"tls", no_argument, NULL, OPT_TLS},
	{"tls-ca", required_argument, NULL, OPT_TLS_CA},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tls-servername", required_argument, NULL, OPT_TLS_SERVERNAME},
	{"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
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
enum {
	SEEN_REPLY = 1,
	SEEN_WAIT = 2,
	SEEN_DELAY = 4,
	SEEN_TLS_OPT = 8, /* a --tls-* option (which needs --tls) */
};

/* --proxy-header v1|v2. */
static int take_proxy_version(struct connect_config *cfg, const char *opt, const char *s)
{
	if (strcmp(s, "v1") == 0 || strcmp(s, "v2") == 0) {
		cfg->proxy_header = s[1] - '0';
		return 0;
	}
	return cli_usage(CMD, "invalid version '%s' for %s: expected v1 or v2", s, opt);
}

/* -U PATH: checked here, so that a bad one is a usage error. */
static int take_unix_path(struct connect_config *cfg, const char *opt, const char *s)
{
	sockit_addr a;
	int rc = sockit_addr_from_path(s, &a);
	if (rc == -ENAMETOOLONG)
		return cli_usage(CMD, "invalid path '%s' for %s: at most 107 bytes", s, opt);
	if (rc < 0)
		return cli_usage(CMD, "invalid path '%s' for %s: expected a path or @name", s, opt);
	cfg->unix_path = s;
	return 0;
}

/* The --tls-* options (each also marks SEEN_TLS_OPT). */
static int take_tls_option(struct connect_config *cfg, int c, const char *opt)
{
	if (c != OPT_TLS_INSECURE && optarg[0] == '\0')
		return cli_usage(CMD, "invalid value '' for %s: empty", opt);
	switch (c) {
	case OPT_TLS_CA:
		cfg->tls_ca = optarg;
		break;
	case OPT_TLS_CERT:
		cfg->tls_cert = optarg;
		break;
	case OPT_TLS_KEY:
		cfg->tls_key = optarg;
		break;
	case OPT_TLS_SERVERNAME:
		cfg->tls_name = optarg;
		break;
	case OPT_TLS_INSECURE:
		cfg->tls_insecure = 1;
		break;
	}
	return 0;
}

static int take_option(struct connect_config *cfg, int c, const char *opt, int *seen)
{
	switch (c) {
	case 'u':
		cfg->udp = 1;
		return 0;
	case 'U':
		return take_unix_path(cfg, opt, optarg);
	case OPT_ATTEMPT_DELAY: {
		*seen |= SEEN_DELAY;
		uint64_t ms = 0;
		int rc = cli_opt_duration(CMD, opt, optarg, MAX_DURATION_MS, &ms);
		cfg->attempt_delay_ms = ms == 0 ? -1 : (int)ms; /* 0: no racing */
		return rc;
	}
	case OPT_PROXY_HEADER:
		return take_proxy_version(cfg, opt, optarg);
	case OPT_TLS:
		cfg->tls = 1;
		return 0;
	case OPT_TLS_CA:
	case OPT_TLS_CERT:
	case OPT_TLS_KEY:
	case OPT_TLS_SERVERNAME:
	case OPT_TLS_INSECURE:
		*seen |= SEEN_TLS_OPT;
		return take_tls_option(cfg, c, opt);
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

/* HOST PORT, or nothing with -U; returns how many words they took. */
static int take_address(struct connect_config *cfg, int left, char **rest, int *used)
{
	*used = 0;
	if (cfg->unix_path != NULL) {
		cfg->host = cfg->name = cfg->unix_path;
		return 0;
	}
	if (left < 1)
		return cli_usage(CMD, "missing HOST and PORT (or -U PATH)");
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
	*used = 2;
	return cli_opt_port(CMD, "PORT", rest[1], 0, &cfg->port);
}

/* What -U and -u rule out. */
static int check_unix_udp(const struct connect_config *cfg, int seen)
{
	if (cfg->unix_path != NULL && cfg->family != AF_UNSPEC)
		return cli_usage(CMD, "-4 and -6 pick a HOST's addresses; they cannot be used "
				      "with -U");
	if (cfg->unix_path != NULL && (seen & SEEN_DELAY))
		return cli_usage(CMD, "--attempt-delay races a HOST's addresses; it cannot be "
				      "used with -U");
	if (cfg->zero && cfg->udp)
		return cli_usage(CMD, "-z checks TCP connections; it cannot be used with -u");
	if ((seen & SEEN_WAIT) && cfg->udp)
		return cli_usage(CMD, "--wait-for waits for a TCP port; it cannot be used with -u");
	if ((seen & SEEN_REPLY) && !cfg->udp)
		return cli_usage(CMD, "--reply-timeout applies to UDP only; add -u");
	if ((seen & SEEN_DELAY) && cfg->udp)
		return cli_usage(CMD, "--attempt-delay races TCP connections; it cannot be used "
				      "with -u");
	if (cfg->proxy_header != 0 && cfg->udp)
		return cli_usage(CMD, "--proxy-header is sent on streams; it cannot be used "
				      "with -u");
	if (cfg->proxy_header == 1 && cfg->unix_path != NULL)
		return cli_usage(CMD, "--proxy-header v1 announces TCP addresses only; use v2 "
				      "with -U");
	return 0;
}

/* What --tls and its options need. */
static int check_tls(struct connect_config *cfg, int seen)
{
	if (!cfg->tls) {
		if (seen & SEEN_TLS_OPT)
			return cli_usage(CMD, "the --tls-* options apply to --tls only; add --tls");
		return 0;
	}
	if (cfg->udp)
		return cli_usage(CMD, "--tls is for streams (there is no DTLS); it cannot be "
				      "used with -u");
	if (cfg->tls_key != NULL && cfg->tls_cert == NULL)
		return cli_usage(CMD, "--tls-key needs --tls-cert (the certificate it belongs to)");
	if (cfg->tls_insecure && cfg->tls_ca != NULL)
		return cli_usage(CMD, "--tls-insecure verifies nothing; --tls-ca would not be "
				      "used");
	if (cfg->tls_name == NULL && cfg->unix_path == NULL)
		cfg->tls_name = cfg->name;
	if (cfg->tls_name == NULL && !cfg->tls_insecure)
		return cli_usage(CMD, "--tls with -U needs --tls-servername NAME (the name the "
				      "certificate must match) or --tls-insecure");
	return 0;
}

/* The operands after the options, and the combinations. */
static int take_operands(struct connect_config *cfg, int left, char **rest, int seen)
{
	int used = 0;
	int rc = take_address(cfg, left, rest, &used);
	if (rc != 0)
		return rc;
	if (left > used) {
		cfg->data = rest + used;
		cfg->ndata = left - used;
	}
	if (cfg->zero && cfg->ndata > 0)
		return cli_usage(CMD, "-z sends no data, but DATA '%s' was given", cfg->data[0]);
	rc = check_unix_udp(cfg, seen);
	return rc != 0 ? rc : check_tls(cfg, seen);
}

int connect_parse(int argc, char **argv, struct connect_config *cfg)
{
	*cfg = (struct connect_config){
		.family = AF_UNSPEC,
		.connect_ms = 10000,
		.quit_ms = CONNECT_NEVER,
		.reply_ms = 1000,
		.newline = 1,
		.attempt_delay_ms = SOCKIT_CONNECT_DELAY_MS,
	};
	int seen = 0;
	opterr = 0;
	optind = 0; /* full re-initialisation (GNU) */
	for (;;) {
		int longindex = -1;
		int c = getopt_long(argc, argv, ":uU:46w:i:q:nzvhV", longopts, &longindex);
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
