/* session.c -- between connect and relay: the PROXY header, then the TLS handshake.
 *
 * Both happen before a byte of DATA or stdin is sent: the header first (a
 * PROXY-aware server reads it before anything else, TLS included), then
 * the handshake, which verifies the server's certificate unless
 * --tls-insecure.  A failure is recorded in the result and ends the run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "connect.h"
#include "sockit_proxy.h"

#define CMD "connect"

/* The option that names the file a context error is about. */
static const char *bad_file_option(const struct connect_config *cfg, int rc, const char **file)
{
	switch (rc) {
	case SOCKIT_TLS_ECAFILE:
		*file = cfg->tls_ca;
		return "--tls-ca";
	case SOCKIT_TLS_EKEYFILE:
		*file = cfg->tls_key != NULL ? cfg->tls_key : cfg->tls_cert;
		return cfg->tls_key != NULL ? "--tls-key" : "--tls-cert";
	case SOCKIT_TLS_ECERTFILE:
	case SOCKIT_TLS_EKEYMISMATCH:
		*file = cfg->tls_cert;
		return "--tls-cert";
	}
	/* -ENOENT, -EACCES, ...: the first file that cannot be read. */
	const char *files[] = {cfg->tls_ca, cfg->tls_cert, cfg->tls_key};
	static const char *const opts[] = {"--tls-ca", "--tls-cert", "--tls-key"};
	for (size_t i = 0; i < 3; i++) {
		if (files[i] != NULL && access(files[i], R_OK) != 0) {
			*file = files[i];
			return opts[i];
		}
	}
	*file = NULL;
	return NULL;
}

int connect_tls_context(const struct connect_config *cfg, sockit_tls_ctx **out)
{
	*out = NULL;
	if (!cfg->tls)
		return 0;
	sockit_tls_config tc = {
		.cert_file = cfg->tls_cert,
		.key_file = cfg->tls_key,
		.ca_file = cfg->tls_ca,
		.flags = cfg->tls_insecure ? SOCKIT_TLS_INSECURE : 0,
	};
	int rc = sockit_tls_client_ctx_new(&tc, out);
	if (rc == 0)
		return 0;
	const char *file;
	const char *opt = bad_file_option(cfg, rc, &file);
	if (opt != NULL && file != NULL)
		return cli_usage(CMD, "invalid file '%s' for %s: %s", file, opt,
				 sockit_strerror(rc));
	/* Not about a file (out of memory): a runtime failure. */
	fprintf(stderr, "sockit %s: cannot set up TLS: %s\n", CMD, sockit_strerror(rc));
	return 1;
}

/* The PROXY header: this socket's real local address, and the peer. */
static int send_proxy_header(const struct connect_config *cfg, int fd, const sockit_addr *peer,
			     int timeout_ms, struct connect_result *res)
{
	sockit_addr local, remote = *peer;
	char hdr[SOCKIT_PROXY_FORMAT_MAX];
	int rc = sockit_getsockname(fd, &local);
	if (rc == 0 && remote.ss.ss_family == AF_UNIX)
		rc = sockit_getpeername(fd, &remote); /* the path as the kernel has it */
	int len =
		rc < 0 ? rc
		       : sockit_proxy_format(cfg->proxy_header, &local, &remote, hdr, sizeof(hdr));
	if (len < 0) {
		connect_result_fail(res, END_ERROR, "cannot write a PROXY v%d header: %s",
				    cfg->proxy_header, sockit_strerror(len));
		return len;
	}
	rc = sockit_sendall(fd, hdr, (size_t)len, timeout_ms, NULL);
	if (rc < 0)
		connect_result_fail(res, rc == -ECONNRESET || rc == -EPIPE ? END_RESET : END_ERROR,
				    "cannot send the PROXY header: %s", sockit_strerror(rc));
	return rc;
}

/* "TLS handshake with 127.0.0.1:443 failed: certificate has expired". */
static void handshake_failed(const struct connect_config *cfg, const sockit_addr *peer, int rc,
			     int timeout_ms, struct connect_result *res)
{
	char a[SOCKIT_ADDRSTRLEN], d[32] = "";
	if (sockit_addr_format(peer, a, sizeof(a)) <= 0)
		snprintf(a, sizeof(a), "%s", cfg->host);
	if (rc == -ETIMEDOUT && timeout_ms > 0) {
		d[0] = ' ';
		cli_format_duration(d + 1, sizeof(d) - 1, (uint64_t)cfg->connect_ms);
	}
	char step[320] = "";
	if (rc == SOCKIT_TLS_EUNKNOWNCA && cfg->tls_ca == NULL)
		snprintf(step, sizeof(step), " (a private CA? trust it with --tls-ca FILE)");
	else if (rc == SOCKIT_TLS_EHOSTNAME && cfg->tls_name != NULL)
		snprintf(step, sizeof(step), " (the certificate is not for '%s')", cfg->tls_name);
	else if (rc == SOCKIT_TLS_ECERTREQUIRED)
		snprintf(step, sizeof(step), " (present one with --tls-cert FILE)");
	connect_result_fail(res, END_TLS_FAILED, "TLS handshake with %s failed: %s%s%s%s", a,
			    sockit_strerror(rc), d[0] != '\0' ? " after" : "", d, step);
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

int connect_session_open(const struct connect_config *cfg, int fd, const sockit_addr *peer,
			 sockit_tls_ctx *ctx, int timeout_ms, sockit_tls **tls,
			 struct connect_result *res)
{
	*tls = NULL;
	int rc = 0;
	if (cfg->proxy_header != 0 && (rc = send_proxy_header(cfg, fd, peer, timeout_ms, res)) < 0)
		return rc;
	if (ctx == NULL)
		return 0;
	sockit_tls *t = NULL;
	if ((rc = sockit_tls_client(ctx, fd, cfg->tls_name, &t)) < 0) {
		connect_result_fail(res, END_ERROR, "cannot start TLS: %s", sockit_strerror(rc));
		return rc;
	}
	if ((rc = sockit_tls_handshake(t, timeout_ms)) < 0) {
		handshake_failed(cfg, peer, rc, timeout_ms, res);
		sockit_tls_free(t); /* the handshake sent its alert; the fd is run's */
		return rc;
	}
	struct connect_tls_info *info = &res->tls;
	info->done = 1;
	copy(info->version, sizeof(info->version), sockit_tls_protocol(t));
	copy(info->cipher, sizeof(info->cipher), sockit_tls_cipher(t));
	if (sockit_tls_peer_subject(t, info->subject, sizeof(info->subject)) < 0)
		info->subject[0] = '\0';
	info->resumed = sockit_tls_resumed(t);
	*tls = t;
	return 0;
}
