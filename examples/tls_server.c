/* tls_server.c -- the tutorial's server over TLS: "Received: " + data, one connection at a time. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockit_tls.h"

/* One client: handshake, one read, the reply, close_notify. */
static void serve_one(sockit_tls_ctx *ctx, int fd)
{
	sockit_tls *t;
	int rc = sockit_tls_server(ctx, fd, &t);
	if (rc < 0) {
		fprintf(stderr, "tls_server: %s\n", sockit_strerror(rc));
		sockit_close(fd);
		return;
	}
	if ((rc = sockit_tls_handshake(t, 10000)) < 0) {
		fprintf(stderr, "tls_server: handshake: %s\n", sockit_strerror(rc));
		sockit_tls_close(t, 1000); /* lingers: the client reads the alert */
		return;
	}
	char subject[256] = "none";
	rc = sockit_tls_peer_subject(t, subject, sizeof(subject));
	if (rc < 0 && rc != -ENODATA)
		fprintf(stderr, "tls_server: peer subject: %s\n", sockit_strerror(rc));
	fprintf(stderr, "tls_server: %s %s, client certificate: %s\n", sockit_tls_protocol(t),
		sockit_tls_cipher(t), subject);
	char reply[10 + 1024] = "Received: ";
	ssize_t n = sockit_tls_recv(t, reply + 10, 1024, 10000);
	if (n < 0)
		fprintf(stderr, "tls_server: recv: %s\n", sockit_strerror((int)n));
	else if ((rc = sockit_tls_sendall(t, reply, 10 + (size_t)n, 10000, NULL)) < 0)
		fprintf(stderr, "tls_server: send: %s\n", sockit_strerror(rc));
	if ((rc = sockit_tls_close(t, 10000)) < 0)
		fprintf(stderr, "tls_server: close: %s\n", sockit_strerror(rc));
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: tls_server [HOST:]PORT CERT KEY [CLIENT_CA]\n"
				"  (HOST: localhost unless given, e.g. [::1]:0)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char host[256] = "localhost";
	int port = atoi(argv[1]);
	if (strchr(argv[1], ':') != NULL &&
	    sockit_hostport_split(argv[1], host, sizeof(host), &port, -1) < 0) {
		fprintf(stderr, "tls_server: bad [HOST:]PORT '%s'\n", argv[1]);
		return 2;
	}
	sockit_tls_config cfg = {
		.cert_file = argv[2], .key_file = argv[3], .ca_file = argc > 4 ? argv[4] : NULL};
	sockit_tls_ctx *ctx;
	int rc = sockit_tls_server_ctx_new(&cfg, &ctx);
	if (rc < 0) {
		fprintf(stderr, "tls_server: %s / %s: %s\n", argv[2], argv[3], sockit_strerror(rc));
		return 1;
	}
	int srv = sockit_create_server(host, port, SOCK_STREAM, 5, 0);
	if (srv < 0) {
		fprintf(stderr, "tls_server: %s port %d: %s\n", host, port, sockit_strerror(srv));
		sockit_tls_ctx_free(ctx);
		return 1;
	}
	sockit_addr me;
	if ((rc = sockit_getsockname(srv, &me)) < 0) {
		fprintf(stderr, "tls_server: %s\n", sockit_strerror(rc));
		return 1;
	}
	printf("port %d\n", sockit_addr_port(&me)); /* the bound port, for port 0 */
	if (fflush(stdout) != 0)
		return 1;
	for (;;) {
		int c = sockit_accept(srv, NULL, 0, -1);
		if (c < 0)
			fprintf(stderr, "tls_server: accept: %s\n", sockit_strerror(c));
		else
			serve_one(ctx, c);
	}
}
