/* tutorial_server.c -- the tutorial's server on libsockit: "Received: " + data. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "sockit.h"

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	int port = argc > 1 ? atoi(argv[1]) : 1234;
	int srv = sockit_create_server("localhost", port, SOCK_STREAM, 5, 0);
	if (srv < 0) {
		fprintf(stderr, "tutorial_server: port %d: %s\n", port, sockit_strerror(srv));
		return 1;
	}
	sockit_addr me;
	sockit_getsockname(srv, &me);
	printf("port %d\n", sockit_addr_port(&me)); /* the bound port, for port 0 */
	fflush(stdout);
	for (;;) {
		int c = sockit_accept(srv, NULL, 0, -1);
		if (c == -ECONNABORTED)
			continue; /* that client gave up while queued */
		if (c < 0) {
			/* Out of descriptors, say: report and stop, never spin. */
			fprintf(stderr, "tutorial_server: accept: %s\n", sockit_strerror(c));
			sockit_close(srv);
			return 1;
		}
		char reply[10 + 1024] = "Received: ";
		ssize_t n = sockit_recv(c, reply + 10, 1024, 10000);
		if (n >= 0)
			sockit_sendall(c, reply, 10 + (size_t)n, 10000, NULL);
		sockit_close(c);
	}
}
