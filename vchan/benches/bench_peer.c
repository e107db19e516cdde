/*
 * The C side of the vchan benchmark (vchan/benches/vchan.rs): Xen's libxenvchan, blocking
 * calls, no data generation or checks, so that what is timed is the channel.
 *
 *   bench_peer server|client DOMAIN XS_PATH RING_BYTES bulk BYTES CHUNK
 *   bench_peer server|client DOMAIN XS_PATH RING_BYTES pingpong COUNT SIZE
 *
 * bulk: the server writes BYTES in CHUNK-byte writes, the client reads them.
 * pingpong: the client sends SIZE bytes and waits for them back, COUNT times.
 * The client prints the nanoseconds from connecting to the last byte; exit 0 on success.
 */
#include <libxenvchan.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fail(const char *what)
{
	fprintf(stderr, "bench_peer: %s\n", what);
	return 3;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: bench_peer server|client DOMAIN XS_PATH RING_BYTES bulk|pingpong N M\n");
		return 2;
	}
	int server = strcmp(argv[1], "server") == 0;
	int domain = atoi(argv[2]);
	const char *path = argv[3];
	size_t ring = strtoull(argv[4], NULL, 10);
	int bulk = strcmp(argv[5], "bulk") == 0;
	unsigned long long n = strtoull(argv[6], NULL, 10);
	size_t m = strtoull(argv[7], NULL, 10);
	char *buf = calloc(1, m ? m : 1);
	struct libxenvchan *chan = server ? libxenvchan_server_init(NULL, domain, path, ring, ring)
					  : libxenvchan_client_init(NULL, domain, path);
	if (!chan || !buf)
		return fail("cannot set up the channel");
	chan->blocking = 1;
	if (server) {
		printf("ready\n");
		fflush(stdout);
		while (libxenvchan_is_open(chan) == 2)
			if (libxenvchan_wait(chan))
				return fail("wait failed");
		if (bulk) {
			for (unsigned long long sent = 0; sent < n;) {
				size_t len = n - sent < m ? n - sent : m;
				if (libxenvchan_write(chan, buf, len) != (int)len)
					return fail("write failed");
				sent += len;
			}
			/* The client has read everything once the ring is empty again. */
			while (libxenvchan_is_open(chan) && libxenvchan_buffer_space(chan) < (int)ring)
				libxenvchan_wait(chan);
		} else {
			while (libxenvchan_recv(chan, buf, m) == (int)m)
				if (libxenvchan_send(chan, buf, m) != (int)m)
					break;
		}
		libxenvchan_close(chan);
		return 0;
	}
	long long start = now_ns();
	if (bulk) {
		for (unsigned long long got = 0; got < n;) {
			int r = libxenvchan_read(chan, buf, m);
			if (r <= 0)
				return fail("read failed");
			got += (unsigned long long)r;
		}
	} else {
		for (unsigned long long i = 0; i < n; i++) {
			if (libxenvchan_send(chan, buf, m) != (int)m || libxenvchan_recv(chan, buf, m) != (int)m)
				return fail("ping-pong failed");
		}
	}
	printf("%lld\n", now_ns() - start);
	libxenvchan_close(chan);
	return 0;
}
