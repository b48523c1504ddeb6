/* report.c -- `sockit bench`'s verdict and its result, as text or as one JSON object. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "codec.h"
#include "json.h"

const char *bench_err_name(enum bench_err e)
{
	static const char *const names[ERR_KINDS] = {
		"mismatch", "truncated",  "reset",	   "refused",	    "timeout",	 "connect",
		"other",    "tls_verify", "tls_handshake", "tls_truncated", "tls_alert",
	};
	return (unsigned)e < ERR_KINDS ? names[e] : "other";
}

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

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

/* A rate: integers as integers ("2000000"), else one decimal ("2.5"). */
static const char *fmt_rate(double v, char *buf, size_t len)
{
	if (v == floor(v) && v < 1e15)
		snprintf(buf, len, "%.0f", v);
	else if (v >= 1000)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f", v);
	return buf;
}

static const char *fmt_addr(const struct bench_config *cfg, char *buf, size_t len)
{
	if (sockit_addr_format(&cfg->addr, buf, len) < 0)
		snprintf(buf, len, "%s:%d", cfg->host, cfg->port);
	return buf;
}

static double rate_achieved(const struct bench_outcome *o)
{
	return o->elapsed_s > 0 ? (double)o->r.requests / o->elapsed_s : 0.0;
}

/* Sustained: at the end, requests due but not yet sent (no free connection,
 * or the tool too slow) are at most 1% of the window's. */
static int rate_sustained(const struct bench_config *cfg, const struct bench_outcome *o)
{
	double allowed = 0.01 * cfg->rate * o->elapsed_s;
	return (double)o->r.rate_behind <= (allowed > 1 ? allowed : 1);
}

/* "truncated 3, timeout 1" */
static void error_kinds(const struct bench_result *r, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (int k = 0; k < ERR_KINDS && o < len; k++)
		if (r->errors[k])
			o += (size_t)snprintf(buf + o, len - o, "%s%s %llu", o ? ", " : "",
					      bench_err_name(k), (unsigned long long)r->errors[k]);
}

static enum bench_err top_error(const struct bench_result *r)
{
	int top = 0;
	for (int k = 1; k < ERR_KINDS; k++)
		if (r->errors[k] > r->errors[top])
			top = k;
	return (enum bench_err)top;
}

/* The next step for a run whose main failure is kind. */
static const char *hint_for(const struct bench_config *cfg, enum bench_err kind)
{
	static const char *const mode_hint[BENCH_MODES] = {
		"is the server in once mode?",
		"is the server in line mode?",
		"is the server in echo mode?",
		"is the server a UDP server?",
	};
	switch (kind) {
	case ERR_MISMATCH:
		if (cfg->echo)
			return "is the server an echo server?";
		if (cfg->mode == BENCH_UDP)
			return "does the server echo datagrams (then -u -m echo), or reply with "
			       "another --prefix?";
		return "is the server in this mode, with this --prefix?";
	case ERR_TRUNCATED:
	case ERR_TIMEOUT:
		return mode_hint[cfg->mode];
	case ERR_REFUSED:
		return "is the server listening on that port?";
	case ERR_OTHER:
		return "out of descriptors or memory? raise the limit with ulimit -n, or lower -c";
	case ERR_TLS_VERIFY:
		return "trust the server's CA with --tls-ca FILE, name the certificate's host with "
		       "--tls-servername NAME, or skip the check with --tls-insecure";
	case ERR_TLS_HANDSHAKE:
		return "does the server speak TLS on that port?";
	case ERR_TLS_TRUNCATED:
		return "the server closed without close_notify: is it a TLS server in this mode?";
	default:
		return NULL;
	}
}

void bench_judge(const struct bench_config *cfg, struct bench_outcome *o)
{
	const struct bench_result *r = &o->r;
	char kinds[160], addr[SOCKIT_ADDRSTRLEN], wait[32];
	o->errors_total = 0;
	for (int k = 0; k < ERR_KINDS; k++)
		o->errors_total += r->errors[k];
	o->exit = 1;
	o->hint = NULL;
	error_kinds(r, kinds, sizeof(kinds));
	if (r->dead) {
		snprintf(o->error, sizeof(o->error),
			 "nothing listens on %s: %llu %s refused, none answered",
			 fmt_addr(cfg, addr, sizeof(addr)),
			 (unsigned long long)r->errors[ERR_REFUSED],
			 cfg->mode == BENCH_UDP ? "datagrams were" : "connects were");
	} else if (o->errors_total > 0) {
		uint64_t total = r->requests + o->errors_total;
		snprintf(o->error, sizeof(o->error), "%llu of %llu request%s failed (%s)",
			 (unsigned long long)o->errors_total, (unsigned long long)total,
			 plural(total), kinds);
		o->hint = hint_for(cfg, top_error(r));
		if (r->tls_error != 0 && top_error(r) >= ERR_TLS_VERIFY) {
			/* the first TLS error in words, then the next step */
			snprintf(o->hint_buf, sizeof(o->hint_buf), "%s%s%s",
				 sockit_strerror(r->tls_error), o->hint ? ": " : "",
				 o->hint ? o->hint : "");
			o->hint = o->hint_buf;
		}
	} else if (r->requests == 0 && r->unfinished > 0) {
		snprintf(o->error, sizeof(o->error),
			 "no request completed: %llu still waited for a reply at the end, one for "
			 "%s",
			 (unsigned long long)r->unfinished,
			 fmt_us((double)r->oldest_wait_ns / 1e3, wait, sizeof(wait)));
		o->hint = hint_for(cfg, ERR_TIMEOUT);
	} else if (r->requests == 0) {
		snprintf(o->error, sizeof(o->error), "no request completed");
	} else {
		o->error[0] = '\0';
		o->exit = 0;
	}
	if (o->signo != 0)
		o->exit = 128 + o->signo;
}

/* ---- text ----------------------------------------------------------------- */

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
	double v[7] = {(double)hist_min(h),
		       hist_mean(h),
		       (double)hist_percentile(h, 50),
		       (double)hist_percentile(h, 90),
		       (double)hist_percentile(h, 99),
		       (double)hist_percentile(h, 99.9),
		       (double)hist_max(h)};
	printf("  %-10s", label);
	for (int i = 0; i < 7; i++)
		print_col(fmt_us(v[i] / 1e3, b, sizeof(b)), 10);
	putchar('\n');
}

static void text_header(const struct bench_config *cfg, const struct bench_outcome *o)
{
	char addr[SOCKIT_ADDRSTRLEN], b[32];
	printf("sockit bench: %s%s %s, ", bench_mode_name(cfg->mode),
	       cfg->mode == BENCH_UDP && cfg->echo ? " echo" : "",
	       fmt_addr(cfg, addr, sizeof(addr)));
	if (cfg->tls)
		printf("TLS%s%s, ", cfg->tls_resume ? " resuming sessions" : "",
		       cfg->tls_insecure ? " (not verified)" : "");
	if (cfg->proxy_header)
		printf("PROXY v%d headers, ", cfg->proxy_header);
	if (cfg->mode == BENCH_ONCE)
		printf("%u concurrent", cfg->conns);
	else if (cfg->mode == BENCH_UDP)
		printf("%u outstanding", cfg->conns);
	else
		printf("%u connection%s x %u in flight", cfg->conns, plural(cfg->conns),
		       cfg->depth);
	printf(", %u thread%s, %zu-byte requests", cfg->threads, plural(cfg->threads), cfg->size);
	if (cfg->requests) {
		printf(", %llu request%s", (unsigned long long)cfg->requests,
		       plural(cfg->requests));
	} else {
		cli_format_duration(b, sizeof(b), cfg->duration_ms);
		printf(", %s", b);
	}
	if (cfg->rate > 0)
		printf(" at %s/s", fmt_rate(cfg->rate, b, sizeof(b)));
	if (cfg->warmup_ms) {
		cli_format_duration(b, sizeof(b), cfg->warmup_ms);
		printf(" after %s warm-up", b);
	}
	printf("%s\n", o->signo ? " (interrupted)" : "");
}

static void text_rate(const struct bench_config *cfg, const struct bench_outcome *o)
{
	char b1[32], b2[32];
	if (cfg->rate <= 0)
		return;
	printf("  rate       target %s/s, achieved %s/s: %s\n", fmt_rate(cfg->rate, b1, sizeof(b1)),
	       fmt_rate(rate_achieved(o), b2, sizeof(b2)),
	       rate_sustained(cfg, o) ? "sustained" : "NOT sustained");
	if (!rate_sustained(cfg, o))
		printf("             %llu request%s due but not sent at the end\n",
		       (unsigned long long)o->r.rate_behind,
		       o->r.rate_behind == 1 ? " was" : "s were");
	if (o->r.send_lag.count > 0)
		text_hist_row("send lag", &o->r.send_lag);
}

/* The end of a failed run: what was left waiting, and the first mismatch. */
static void text_failure(const struct bench_outcome *o)
{
	const struct bench_result *r = &o->r;
	char b[32], exp[4 * BENCH_SAMPLE + 1], got[4 * BENCH_SAMPLE + 1];
	if (r->unfinished > 0 && !r->dead)
		printf("  unfinished %llu (waiting for a reply at the end, the oldest for %s)\n",
		       (unsigned long long)r->unfinished,
		       fmt_us((double)r->oldest_wait_ns / 1e3, b, sizeof(b)));
	if (r->mismatch.set) {
		bench_escape(exp, sizeof(exp), r->mismatch.expected, r->mismatch.elen);
		bench_escape(got, sizeof(got), r->mismatch.received, r->mismatch.rlen);
		printf("  mismatch   first at reply byte %zu: expected \"%s\"%s\n"
		       "             received \"%s\"%s\n",
		       r->mismatch.offset, exp, r->mismatch.elen ? "" : " (the reply's end)", got,
		       r->mismatch.rlen == BENCH_SAMPLE ? "..." : "");
	}
}

void bench_report_text(const struct bench_config *cfg, const struct bench_outcome *o)
{
	const struct bench_result *r = &o->r;
	char b1[32], b2[32], kinds[160];
	if (!o->started)
		return; /* the error alone says it */
	text_header(cfg, o);
	printf("  requests   %llu verified in %s = %s req/s\n", (unsigned long long)r->requests,
	       fmt_us(o->elapsed_s * 1e6, b1, sizeof(b1)),
	       fmt_rate(rate_achieved(o), b2, sizeof(b2)));
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
		if (r->hs_full.count > 0)
			text_hist_row("handshake", &r->hs_full);
		if (r->hs_resumed.count > 0)
			text_hist_row("resumed", &r->hs_resumed);
		printf("  over 100ms %llu\n", (unsigned long long)r->over_100ms);
	}
	text_rate(cfg, o);
	if (cfg->tls) {
		uint64_t hs = r->hs_full.count + r->hs_resumed.count;
		printf("  tls        %llu handshake%s, %llu resumed (%.1f%%)\n",
		       (unsigned long long)hs, plural(hs), (unsigned long long)r->tls_resumed,
		       hs ? 100.0 * (double)r->tls_resumed / (double)hs : 0.0);
	}
	if (cfg->mode == BENCH_UDP)
		printf("  late       %llu repl%s after their timeout\n",
		       (unsigned long long)r->late, r->late == 1 ? "y" : "ies");
	error_kinds(r, kinds, sizeof(kinds));
	printf("  errors     %llu%s%s%s\n", (unsigned long long)o->errors_total,
	       o->errors_total ? " (" : "", kinds, o->errors_total ? ")" : "");
	if (o->exit != 0)
		text_failure(o);
}

/* ---- JSON ----------------------------------------------------------------- */

static void json_hist(const char *key, const struct hist *h)
{
	printf(",\"%s\":", key);
	if (h == NULL) {
		printf("null");
		return;
	}
	if (h->count == 0) {
		printf("{\"min\":null,\"mean\":null,\"p50\":null,\"p90\":null,\"p99\":null,"
		       "\"p999\":null,\"max\":null}");
		return;
	}
	printf("{\"min\":%.6f,\"mean\":%.6f,\"p50\":%.6f,\"p90\":%.6f,\"p99\":%.6f,\"p999\":%.6f,"
	       "\"max\":%.6f}",
	       (double)hist_min(h) / 1e6, hist_mean(h) / 1e6, (double)hist_percentile(h, 50) / 1e6,
	       (double)hist_percentile(h, 90) / 1e6, (double)hist_percentile(h, 99) / 1e6,
	       (double)hist_percentile(h, 99.9) / 1e6, (double)hist_max(h) / 1e6);
}

static void json_config(const struct bench_config *cfg)
{
	char addr[SOCKIT_ADDRSTRLEN];
	printf("{\"mode\":\"%s\",\"udp\":%s,\"echo\":%s,\"host\":", bench_mode_name(cfg->mode),
	       cfg->mode == BENCH_UDP ? "true" : "false", cfg->echo ? "true" : "false");
	json_put_str(stdout, cfg->host);
	if (cfg->unix_path != NULL)
		printf(",\"port\":null,\"address\":");
	else
		printf(",\"port\":%d,\"address\":", cfg->port);
	json_put_str(stdout, cfg->addr.len > 0 ? fmt_addr(cfg, addr, sizeof(addr)) : NULL);
	printf(",\"unix\":");
	json_put_str(stdout, cfg->unix_path);
	printf(",\"tls\":%s,\"tls_resume\":%s,\"tls_insecure\":%s,\"tls_servername\":",
	       cfg->tls ? "true" : "false", cfg->tls_resume ? "true" : "false",
	       cfg->tls_insecure ? "true" : "false");
	json_put_str(stdout, cfg->tls ? cfg->tls_servername : NULL);
	if (cfg->proxy_header)
		printf(",\"proxy_header\":\"v%d\"", cfg->proxy_header);
	else
		printf(",\"proxy_header\":null");
	printf(",\"attempt_delay_ms\":%d", cfg->attempt_delay_ms < 0 ? 0 : cfg->attempt_delay_ms);
	printf(",\"conns\":%u,\"threads\":%u,\"depth\":%u,\"size\":%zu,\"prefix\":", cfg->conns,
	       cfg->threads, cfg->depth, cfg->size);
	json_put_str(stdout, cfg->prefix);
	if (cfg->requests)
		printf(",\"duration_target_ms\":null,\"requests_target\":%llu",
		       (unsigned long long)cfg->requests);
	else
		printf(",\"duration_target_ms\":%llu,\"requests_target\":null",
		       (unsigned long long)cfg->duration_ms);
	if (cfg->rate > 0)
		printf(",\"rate_target_per_s\":%.3f", cfg->rate);
	else
		printf(",\"rate_target_per_s\":null");
	printf(",\"warmup_ms\":%llu,\"timeout_ms\":%llu", (unsigned long long)cfg->warmup_ms,
	       (unsigned long long)cfg->timeout_ms);
}

static void json_mismatch(const struct bench_sample *s)
{
	char exp[4 * BENCH_SAMPLE + 1], got[4 * BENCH_SAMPLE + 1];
	printf(",\"first_mismatch\":");
	if (!s->set) {
		printf("null");
		return;
	}
	bench_escape(exp, sizeof(exp), s->expected, s->elen);
	bench_escape(got, sizeof(got), s->received, s->rlen);
	printf("{\"offset\":%zu,\"expected\":", s->offset);
	json_put_str(stdout, exp);
	printf(",\"received\":");
	json_put_str(stdout, got);
	putchar('}');
}

/* --tls: handshakes (all, full, resumed), the resumed share, the first
 * TLS error in words; null without --tls. */
static void json_tls(const struct bench_config *cfg, const struct bench_result *r)
{
	static struct hist all; /* 58 KiB: not on the stack; one report per process */
	uint64_t hs = r->hs_full.count + r->hs_resumed.count;
	hist_init(&all);
	hist_merge(&all, &r->hs_full);
	hist_merge(&all, &r->hs_resumed);
	json_hist("handshake_ms", cfg->tls ? &all : NULL);
	json_hist("handshake_full_ms", cfg->tls ? &r->hs_full : NULL);
	json_hist("handshake_resumed_ms", cfg->tls ? &r->hs_resumed : NULL);
	if (cfg->tls)
		printf(",\"tls_handshakes\":%llu,\"tls_resumed\":%llu,\"tls_resumed_share\":%.4f",
		       (unsigned long long)hs, (unsigned long long)r->tls_resumed,
		       hs ? (double)r->tls_resumed / (double)hs : 0.0);
	else
		printf(",\"tls_handshakes\":null,\"tls_resumed\":null,\"tls_resumed_share\":null");
	printf(",\"tls_error\":");
	json_put_str(stdout, r->tls_error ? sockit_strerror(r->tls_error) : NULL);
}

static void json_result(const struct bench_config *cfg, const struct bench_outcome *o)
{
	const struct bench_result *r = &o->r;
	double el = o->elapsed_s;
	printf(",\"requests\":%llu,\"errors\":{", (unsigned long long)r->requests);
	for (int k = 0; k < ERR_KINDS; k++)
		printf("%s\"%s\":%llu", k ? "," : "", bench_err_name(k),
		       (unsigned long long)r->errors[k]);
	printf("},\"errors_total\":%llu,\"unfinished\":%llu,\"late\":%llu,\"duration_ms\":%.3f,"
	       "\"rate_per_s\":%.3f,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
	       "\"bytes_sent_per_s\":%.1f,\"bytes_received_per_s\":%.1f",
	       (unsigned long long)o->errors_total, (unsigned long long)r->unfinished,
	       (unsigned long long)r->late, el * 1e3, rate_achieved(o),
	       (unsigned long long)r->bytes_out, (unsigned long long)r->bytes_in,
	       el > 0 ? (double)r->bytes_out / el : 0.0, el > 0 ? (double)r->bytes_in / el : 0.0);
	json_hist("latency_ms", &r->latency);
	json_hist("connect_ms", cfg->mode == BENCH_ONCE ? &r->connect : NULL);
	printf(",\"over_100ms\":%llu", (unsigned long long)r->over_100ms);
	if (cfg->rate > 0)
		printf(",\"rate_sustained\":%s,\"requests_behind\":%llu",
		       rate_sustained(cfg, o) ? "true" : "false",
		       (unsigned long long)r->rate_behind);
	else
		printf(",\"rate_sustained\":null,\"requests_behind\":null");
	json_hist("send_lag_ms", cfg->rate > 0 ? &r->send_lag : NULL);
	json_tls(cfg, r);
	json_mismatch(&r->mismatch);
	printf(",\"interrupted\":%s", o->signo ? "true" : "false");
}

void bench_report_json(const struct bench_config *cfg, const struct bench_outcome *o)
{
	json_config(cfg);
	if (o->started)
		json_result(cfg, o);
	printf(",\"exit\":%d,\"error\":", o->exit);
	json_put_str(stdout, o->error[0] ? o->error : NULL);
	printf("}\n");
}
