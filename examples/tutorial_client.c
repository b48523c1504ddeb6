/* tutorial_client.c -- the tutorial's client on libsockit: send argv, print the reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockit.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: tutorial_client HOST PORT DATA\n");
		return 2;
	}
	int fd = sockit_create_connection(argv[1], atoi(argv[2]), 5000);
	if (fd < 0) {
		fprintf(stderr, "tutorial_client: %s: %s\n", argv[1], sockit_strerror(fd));
		return 1;
	}
	char buf[2048];
	ssize_t n = sockit_sendall(fd, argv[3], strlen(argv[3]), 5000, NULL);
	while (n >= 0 && (n = sockit_recv(fd, buf, sizeof(buf), 5000)) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	sockit_close(fd);
	if (n < 0)
		fprintf(stderr, "tutorial_client: %s\n", sockit_strerror((int)n));
	return n < 0;
}
