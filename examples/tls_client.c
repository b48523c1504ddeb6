/* tls_client.c -- the tutorial's client over TLS: send argv, print the reply. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockit_tls.h"

/* Handshake, one request, the reply until the server's close_notify. */
static int exchange(sockit_tls *t, const char *data)
{
	int rc = sockit_tls_handshake(t, 5000);
	if (rc < 0)
		return rc;
	char subject[256];
	if ((rc = sockit_tls_peer_subject(t, subject, sizeof(subject))) < 0)
		snprintf(subject, sizeof(subject), "(%s)", sockit_strerror(rc));
	fprintf(stderr, "tls_client: %s %s, server certificate: %s\n", sockit_tls_protocol(t),
		sockit_tls_cipher(t), subject);
	if ((rc = sockit_tls_sendall(t, data, strlen(data), 5000, NULL)) < 0)
		return rc;
	char buf[2048];
	ssize_t n;
	while ((n = sockit_tls_recv(t, buf, sizeof(buf), 5000)) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -EIO;
	return (int)n; /* 0: close_notify; SOCKIT_TLS_ETRUNCATED: cut off */
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5 && argc != 7) {
		fprintf(stderr, "usage: tls_client HOST PORT DATA [CA_FILE [CERT KEY]]\n"
				"  (without CA_FILE the system's trust store is used)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sockit_tls_config cfg = {.ca_file = argc > 4 ? argv[4] : NULL,
				 .cert_file = argc > 5 ? argv[5] : NULL,
				 .key_file = argc > 6 ? argv[6] : NULL};
	sockit_tls_ctx *ctx;
	int rc = sockit_tls_client_ctx_new(&cfg, &ctx);
	if (rc < 0) {
		fprintf(stderr, "tls_client: %s\n", sockit_strerror(rc));
		return 1;
	}
	int fd = sockit_create_connection(argv[1], atoi(argv[2]), 5000);
	if (fd < 0) {
		fprintf(stderr, "tls_client: %s: %s\n", argv[1], sockit_strerror(fd));
		sockit_tls_ctx_free(ctx);
		return 1;
	}
	sockit_tls *t;
	if ((rc = sockit_tls_client(ctx, fd, argv[1], &t)) < 0) {
		sockit_close(fd);
	} else {
		rc = exchange(t, argv[3]);
		int crc = sockit_tls_close(t, 5000);
		if (rc == 0)
			rc = crc;
	}
	sockit_tls_ctx_free(ctx);
	if (fflush(stdout) != 0 && rc == 0)
		rc = -EIO;
	if (rc < 0)
		fprintf(stderr, "tls_client: %s: %s\n", argv[1], sockit_strerror(rc));
	return rc < 0;
}
