/* summary.c -- how a `sockit connect` run ended, in words: the message, -v and --json.
 *
 * It reads the result the relays and run filled in; it calls nothing
 * else of connect.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "connect.h"
#include "json.h"

void connect_result_fail(struct connect_result *res, enum connect_end end, const char *fmt, ...)
{
	if (res->end != END_NONE && res->error[0] != '\0')
		return;
	res->end = end;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
}

static void format_addr(const sockit_addr *a, char *buf, size_t len)
{
	if (sockit_addr_format(a, buf, len) < 0)
		snprintf(buf, len, "?");
}

/* Why one attempt failed: "connection refused", "connection timed out
 * after 10s". */
static void attempt_error(const struct connect_attempts *att, int error, char *buf, size_t len)
{
	if (error == -ETIMEDOUT && att->timeout_ms > 0) {
		char d[32];
		cli_format_duration(d, sizeof(d), (uint64_t)att->timeout_ms);
		snprintf(buf, len, "%s after %s", sockit_strerror(error), d);
		return;
	}
	snprintf(buf, len, "%s", sockit_strerror(error));
}

/* The next step for an error, where there is an obvious one. */
static const char *next_step(int error)
{
	switch (-error) {
	case ECONNREFUSED:
		return "is the server running?";
	case EMFILE:
	case ENFILE:
		return "raise the limit with ulimit -n";
	}
	return NULL;
}

/* " (still closed after 3 rounds in 1.2s; is the server running?)", or "". */
static void failure_note(const struct connect_attempts *att, int last_error, char *buf, size_t len)
{
	const char *step = next_step(last_error);
	char rounds[96] = "";
	if (att->rounds > 1) {
		char d[32];
		cli_format_duration(d, sizeof(d), att->took_ms);
		snprintf(rounds, sizeof(rounds), "still closed after %d rounds in %s", att->rounds,
			 d);
	}
	if (rounds[0] != '\0' && step != NULL)
		snprintf(buf, len, " (%s; %s)", rounds, step);
	else if (rounds[0] != '\0' || step != NULL)
		snprintf(buf, len, " (%s)", rounds[0] != '\0' ? rounds : step);
	else
		buf[0] = '\0';
}

/* The address named by HOST alone?  Then it is said once. */
static int host_is_the_address(const struct connect_config *cfg, const sockit_addr *a)
{
	char ip[SOCKIT_ADDRSTRLEN];
	return sockit_addr_format_ip(a, ip, sizeof(ip)) >= 0 && strcmp(ip, cfg->name) == 0;
}

void connect_describe_failure(const struct connect_config *cfg, const struct connect_attempts *att,
			      struct connect_result *res)
{
	char note[160], why[128], a[SOCKIT_ADDRSTRLEN];
	if (att->nfailed == 0) {
		int eai = SOCKIT_IS_EAI(att->resolve_error);
		failure_note(att, att->resolve_error, note, sizeof(note));
		connect_result_fail(res, eai ? END_RESOLVE_FAILED : END_CONNECT_FAILED,
				    "cannot %s '%s' port %d: %s%s", eai ? "resolve" : "connect to",
				    cfg->host, cfg->port, sockit_strerror(att->resolve_error),
				    note);
		return;
	}
	size_t shown = att->nfailed < CONNECT_MAX_TRIED ? att->nfailed : CONNECT_MAX_TRIED;
	failure_note(att, att->failed[shown - 1].error, note, sizeof(note));
	if (att->nfailed == 1) {
		const sockit_addr *addr = &att->failed[0].addr;
		format_addr(addr, a, sizeof(a));
		attempt_error(att, att->failed[0].error, why, sizeof(why));
		if (host_is_the_address(cfg, addr))
			connect_result_fail(res, END_CONNECT_FAILED, "cannot connect to %s: %s%s",
					    a, why, note);
		else
			connect_result_fail(res, END_CONNECT_FAILED,
					    "cannot connect to %s (%s): %s%s", cfg->host, a, why,
					    note);
		return;
	}
	/* Several: a header naming the host, then one line per address. */
	char msg[sizeof(res->error)];
	size_t used = (size_t)snprintf(msg, sizeof(msg), "cannot connect to %s port %d:", cfg->host,
				       cfg->port);
	for (size_t i = 0; i < shown && used < sizeof(msg); i++) {
		format_addr(&att->failed[i].addr, a, sizeof(a));
		attempt_error(att, att->failed[i].error, why, sizeof(why));
		used += (size_t)snprintf(msg + used, sizeof(msg) - used, "\n  %s: %s%s", a, why,
					 i + 1 == shown ? note : "");
	}
	if (att->nfailed > shown && used < sizeof(msg))
		snprintf(msg + used, sizeof(msg) - used, "\n  and %zu more", att->nfailed - shown);
	connect_result_fail(res, END_CONNECT_FAILED, "%s", msg);
}

const char *connect_end_name(enum connect_end e)
{
	static const char *const names[] = {
		[END_NONE] = "none",
		[END_FIN] = "fin",
		[END_QUIT] = "quit",
		[END_OPEN] = "open",
		[END_DONE] = "done",
		[END_RESET] = "reset",
		[END_TRUNCATED] = "truncated",
		[END_TLS_FAILED] = "tls-failed",
		[END_IDLE] = "idle-timeout",
		[END_STDOUT] = "stdout-closed",
		[END_NO_REPLY] = "no-reply",
		[END_REFUSED] = "refused",
		[END_ERROR] = "error",
		[END_RESOLVE_FAILED] = "resolve-failed",
		[END_CONNECT_FAILED] = "connect-failed",
		[END_SIGNAL] = "signal",
	};
	if ((unsigned)e < sizeof(names) / sizeof(names[0]) && names[e] != NULL)
		return names[e];
	return "none";
}

int connect_exit_code(const struct connect_result *res)
{
	switch (res->end) {
	case END_FIN:
	case END_QUIT:
	case END_OPEN:
	case END_DONE:
		return 0;
	case END_SIGNAL:
		return 128 + res->signo;
	default:
		return 1;
	}
}

/* "tcp", "udp", "unix" (a Unix stream) or "unix-dgram". */
static const char *proto_name(const struct connect_config *cfg)
{
	if (cfg->unix_path != NULL)
		return cfg->udp ? "unix-dgram" : "unix";
	return cfg->udp ? "udp" : "tcp";
}

/* The TLS keys, with --tls: what the handshake settled (null before). */
static void print_json_tls(FILE *f, const struct connect_config *cfg,
			   const struct connect_tls_info *t)
{
	fputs(",\"tls_version\":", f);
	json_put_str(f, t->done ? t->version : NULL);
	fputs(",\"tls_cipher\":", f);
	json_put_str(f, t->done ? t->cipher : NULL);
	fputs(",\"tls_peer_subject\":", f);
	json_put_str(f, t->done && t->subject[0] != '\0' ? t->subject : NULL);
	fprintf(f, ",\"tls_resumed\":%s,\"tls_verified\":%s", t->resumed ? "true" : "false",
		t->done && !cfg->tls_insecure ? "true" : "false");
}

static void print_json(FILE *f, const struct connect_config *cfg,
		       const struct connect_attempts *att, const struct connect_result *res,
		       double duration_ms)
{
	char a[SOCKIT_ADDRSTRLEN], why[128];
	fputs("{\"host\":", f);
	json_put_str(f, cfg->host);
	if (cfg->unix_path != NULL)
		fputs(",\"port\":null", f);
	else
		fprintf(f, ",\"port\":%d", cfg->port);
	fprintf(f, ",\"proto\":\"%s\",\"address\":", proto_name(cfg));
	format_addr(&att->used, a, sizeof(a));
	json_put_str(f, att->connected ? a : NULL);
	fputs(",\"attempts\":[", f);
	size_t shown = att->nfailed < CONNECT_MAX_TRIED ? att->nfailed : CONNECT_MAX_TRIED;
	for (size_t i = 0; i < shown; i++) {
		format_addr(&att->failed[i].addr, a, sizeof(a));
		attempt_error(att, att->failed[i].error, why, sizeof(why));
		fprintf(f, "%s{\"address\":", i ? "," : "");
		json_put_str(f, a);
		fputs(",\"error\":", f);
		json_put_str(f, why);
		fputc('}', f);
	}
	if (att->connected) {
		format_addr(&att->used, a, sizeof(a));
		fprintf(f, "%s{\"address\":", shown ? "," : "");
		json_put_str(f, a);
		fputs(",\"error\":null}", f);
	}
	fputc(']', f);
	if (att->connected)
		fprintf(f, ",\"connect_ms\":%llu", (unsigned long long)att->connect_ms);
	else
		fputs(",\"connect_ms\":null", f);
	if (cfg->tls)
		print_json_tls(f, cfg, &res->tls);
	fprintf(f,
		",\"rounds\":%d,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
		"\"datagrams_sent\":%llu,\"datagrams_received\":%llu,\"duration_ms\":%.3f,"
		"\"end\":\"%s\",\"exit\":%d,\"error\":",
		att->rounds, (unsigned long long)res->bytes_sent,
		(unsigned long long)res->bytes_received, (unsigned long long)res->dgrams_sent,
		(unsigned long long)res->dgrams_received, duration_ms, connect_end_name(res->end),
		connect_exit_code(res));
	json_put_str(f, res->error[0] != '\0' ? res->error : NULL);
	fputs("}\n", f);
}

static void print_text(FILE *f, const struct connect_config *cfg,
		       const struct connect_attempts *att, const struct connect_result *res,
		       double duration_ms)
{
	char a[SOCKIT_ADDRSTRLEN], why[128], d[32];
	if (att->connected) {
		/* A failed connect already named every address in its message. */
		size_t shown = att->nfailed < CONNECT_MAX_TRIED ? att->nfailed : CONNECT_MAX_TRIED;
		for (size_t i = 0; i < shown; i++) {
			format_addr(&att->failed[i].addr, a, sizeof(a));
			attempt_error(att, att->failed[i].error, why, sizeof(why));
			fprintf(f, "sockit connect: tried %s: %s\n", a, why);
		}
		format_addr(&att->used, a, sizeof(a));
		if (host_is_the_address(cfg, &att->used))
			fprintf(f, "sockit connect: connected to %s (%s)\n", a, proto_name(cfg));
		else
			fprintf(f, "sockit connect: connected to %s (%s, %s)\n", a, proto_name(cfg),
				cfg->host);
	}
	const struct connect_tls_info *t = &res->tls;
	if (t->done)
		fprintf(f, "sockit connect: TLS %s %s, peer %s, %s%s\n", t->version, t->cipher,
			t->subject[0] != '\0' ? t->subject : "(no certificate)",
			cfg->tls_insecure ? "NOT verified (--tls-insecure)" : "verified",
			t->resumed ? ", resumed" : "");
	fprintf(f, "sockit connect: sent %llu bytes", (unsigned long long)res->bytes_sent);
	if (cfg->udp)
		fprintf(f, " in %llu datagrams", (unsigned long long)res->dgrams_sent);
	fprintf(f, ", received %llu bytes", (unsigned long long)res->bytes_received);
	if (cfg->udp)
		fprintf(f, " in %llu datagrams", (unsigned long long)res->dgrams_received);
	cli_format_duration(d, sizeof(d), (uint64_t)(duration_ms + 0.5));
	fprintf(f, ", %s, end=%s exit=%d\n", d, connect_end_name(res->end), connect_exit_code(res));
}

void connect_report(FILE *f, const struct connect_config *cfg, const struct connect_attempts *att,
		    const struct connect_result *res, double duration_ms)
{
	if (cfg->json) {
		print_json(f, cfg, att, res, duration_ms);
		return;
	}
	if (res->error[0] != '\0')
		fprintf(f, "sockit connect: %s\n", res->error);
	if (cfg->verbose)
		print_text(f, cfg, att, res, duration_ms);
}
