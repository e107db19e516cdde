/* A peer linked against Xen's own libxenvchan, for the simulation's interop test:
 *
 *   vchan_pair server PEER PATH BYTES LEFT RIGHT
 *   vchan_pair client PEER PATH BYTES END          (END: close, exit or hang)
 *
 * The server offers a channel (ring sizes LEFT and RIGHT), says "ready", writes BYTES of its
 * pattern, reads BYTES of the client's and checks them, then waits until the client is gone
 * and says "peer gone". The client reads, checks, writes, says "done", then closes the channel,
 * exits without closing it, or hangs until killed. */
#include <libxenvchan.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char pattern(int server, size_t i)
{
	return (unsigned char)(i * (server ? 7 : 13) + (i >> 12));
}

static int transfer(struct libxenvchan *ctrl, int sending, int server, size_t bytes)
{
	unsigned char buf[3000];
	size_t done = 0;
	while (done < bytes) {
		size_t n = bytes - done < sizeof buf ? bytes - done : sizeof buf;
		if (sending) {
			for (size_t i = 0; i < n; i++)
				buf[i] = pattern(server, done + i);
			if (libxenvchan_write(ctrl, buf, n) != (int)n)
				return -1;
		} else {
			int got = libxenvchan_read(ctrl, buf, n);
			if (got <= 0)
				return -1;
			for (int i = 0; i < got; i++)
				if (buf[i] != pattern(server, done + i)) {
					fprintf(stderr, "byte %zu is wrong\n", done + i);
					return -1;
				}
			n = got;
		}
		done += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc != 6 + (strcmp(argv[1], "server") == 0)) {
		fprintf(stderr, "usage: %s server PEER PATH BYTES LEFT RIGHT | client PEER PATH BYTES END\n", argv[0]);
		return 2;
	}
	int server = strcmp(argv[1], "server") == 0;
	size_t bytes = strtoul(argv[4], NULL, 0);
	struct libxenvchan *ctrl = server
		? libxenvchan_server_init(NULL, atoi(argv[2]), argv[3], strtoul(argv[5], NULL, 0), strtoul(argv[6], NULL, 0))
		: libxenvchan_client_init(NULL, atoi(argv[2]), argv[3]);
	if (!ctrl) {
		perror(server ? "libxenvchan_server_init" : "libxenvchan_client_init");
		return 1;
	}
	ctrl->blocking = 1;
	if (server) {
		printf("ready\n");
		fflush(stdout);
	}
	if (transfer(ctrl, server, 1, bytes) || transfer(ctrl, !server, 0, bytes)) {
		fprintf(stderr, "%s: the transfer failed\n", argv[1]);
		return 1;
	}
	if (server) {
		while (libxenvchan_is_open(ctrl))
			if (libxenvchan_wait(ctrl))
				break;
		printf("peer gone\n");
		libxenvchan_close(ctrl);
		return 0;
	}
	printf("done\n");
	fflush(stdout);
	if (strcmp(argv[5], "exit") == 0)
		exit(0);
	if (strcmp(argv[5], "hang") == 0)
		for (;;)
			pause();
	libxenvchan_close(ctrl);
	return 0;
}
