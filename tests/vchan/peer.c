/*
 * A vchan peer for interoperability tests, using nothing but Xen's real libxenvchan
 * (Debian: libxen-dev, libxenmisc4.17). Built by the Rust test harness
 * (vproto-test-support's `vchan` module, test-support/src/vchan.rs) with
 *
 *     gcc -O2 -Wall -Wextra -Werror -o peer tests/vchan/peer.c -lxenvchan
 *
 * and run on the project's simulation libraries (LD_LIBRARY_PATH=target/vchan-sim,
 * VPROTO_SIM_DOMID, VPROTO_SIM_DIR, XENSTORED_PATH), or on a real Xen host.
 *
 * Usage:
 *   peer server|client --domain PEER_DOMID --path XS_PATH
 *        [--left BYTES --right BYTES] [--send BYTES] [--expect BYTES] [--seed N]
 *        [--max-chunk BYTES] [--packet] [--no-close] [--wait-close]
 *
 *   server       libxenvchan_server_init(NULL, PEER_DOMID, XS_PATH, left, right); --left is the
 *                ring the server reads (the client writes), --right the one it writes. Defaults
 *                1024 and 2048: both rings inside the shared page (orders 10 and 11).
 *   client       libxenvchan_client_init(NULL, PEER_DOMID, XS_PATH); --left/--right are refused.
 *   --send N     write N bytes of this side's stream.
 *   --expect N   read N bytes and check them against the other side's stream.
 *                With both, the two directions run at once (ctrl->blocking = 0, select() on
 *                libxenvchan_fd_for_select, libxenvchan_wait); with one, blocking calls.
 *   --seed N     the streams' seed (default 0). The server sends stream(seed), the client
 *                stream(seed + 1).
 *   --max-chunk  the largest size of one libxenvchan call (default 65536); each call's size is
 *                drawn from 1..=max-chunk.
 *   --packet     libxenvchan_send/recv (whole packets) instead of write/read; a packet is at
 *                most half the ring, so two peers both in packet mode can never wait on each
 *                other (a writer wanting more space than the reader leaves it).
 *   --no-close   exit(0) at the end without libxenvchan_close: the other side must see this
 *                one gone through the unmap-notify byte alone.
 *   --wait-close after sending and checking, wait until the peer closes (is_open() == 0).
 *   BYTES accepts a K, M or G suffix (binary: 1K = 1024).
 *
 *   peer stream [--seed N] --send BYTES   writes stream(N) to stdout and nothing else (the
 *                harness checks its own generator against this one).
 *
 * Once initialised it prints "ready" on stdout (flushed); at the end, also after a failure
 * once initialised, the summary {"sent":N,"received":N}.
 *
 * The deterministic stream (the Rust side implements the same): xorshift64 with state
 * s = seed (0x9E3779B97F4A7C15 when seed is 0); for every 8 bytes, s ^= s << 13; s ^= s >> 7;
 * s ^= s << 17, then s as 8 little-endian bytes. Call sizes come from another such generator
 * seeded with seed ^ 0xA5A5A5A5A5A5A5A5: size = 1 + s % max_chunk. Counters are 64-bit: a
 * transfer beyond 4 GiB wraps the rings' 32-bit indices.
 *
 * Exit codes: 0 success; 1 data mismatch (offset, expected and received byte on stderr);
 * 2 usage; 3 channel error (initialisation failed, the peer closed while data was due, a
 * libxenvchan call failed).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <libxenvchan.h>

enum { EXIT_MISMATCH = 1, EXIT_USAGE = 2, EXIT_CHANNEL = 3 };

#define DEFAULT_SEED_STATE 0x9E3779B97F4A7C15ULL
#define CHUNK_SEED_MASK 0xA5A5A5A5A5A5A5A5ULL

/* xorshift64 */
struct xorshift {
    uint64_t s;
};

static void xorshift_init(struct xorshift *g, uint64_t seed)
{
    g->s = seed ? seed : DEFAULT_SEED_STATE;
}

static uint64_t xorshift_next(struct xorshift *g)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return g->s;
}

/* A byte stream: the generator's outputs as little-endian bytes. */
struct stream {
    struct xorshift g;
    uint8_t word[8];
    unsigned used; /* bytes of word already handed out */
};

static void stream_init(struct stream *st, uint64_t seed)
{
    xorshift_init(&st->g, seed);
    st->used = 8;
}

static void word_bytes(uint64_t v, uint8_t *out)
{
    for (unsigned b = 0; b < 8; b++)
        out[b] = (uint8_t)(v >> (8 * b));
}

static void stream_fill(struct stream *st, uint8_t *out, size_t n)
{
    size_t i = 0;
    while (i < n && st->used < 8)
        out[i++] = st->word[st->used++];
    /* Whole words straight to the output (the 4 GiB test checks every byte on both sides). */
    for (; n - i >= 8; i += 8)
        word_bytes(xorshift_next(&st->g), out + i);
    if (i < n) {
        word_bytes(xorshift_next(&st->g), st->word);
        st->used = 0;
        while (i < n)
            out[i++] = st->word[st->used++];
    }
}

static void usage(const char *why)
{
    fprintf(stderr,
            "peer: %s\n"
            "usage: peer server|client --domain PEER_DOMID --path XS_PATH [--left BYTES --right BYTES]\n"
            "            [--send BYTES] [--expect BYTES] [--seed N] [--max-chunk BYTES] [--packet]\n"
            "            [--no-close] [--wait-close]\n",
            why);
    exit(EXIT_USAGE);
}

/* A number with an optional K/M/G (binary) suffix. */
static uint64_t parse_bytes(const char *opt, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (errno || end == text || *end || text[0] == '-' || (shift && v > (UINT64_MAX >> shift))) {
        char why[256];
        snprintf(why, sizeof(why), "--%s: not a number of bytes: %s", opt, text);
        usage(why);
    }
    return (uint64_t)v << shift;
}

struct options {
    int server;
    int domain;
    const char *path;
    uint64_t left, right, send, expect, seed, max_chunk;
    int stream, left_given, right_given, packet, no_close, wait_close;
};

static void parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        {"domain", required_argument, NULL, 'd'},
        {"path", required_argument, NULL, 'p'},
        {"left", required_argument, NULL, 'l'},
        {"right", required_argument, NULL, 'r'},
        {"send", required_argument, NULL, 's'},
        {"expect", required_argument, NULL, 'e'},
        {"seed", required_argument, NULL, 'S'},
        {"max-chunk", required_argument, NULL, 'm'},
        {"packet", no_argument, NULL, 'P'},
        {"no-close", no_argument, NULL, 'n'},
        {"wait-close", no_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->domain = -1;
    o->left = 1024;
    o->right = 2048;
    o->max_chunk = 65536;
    if (argc < 2)
        usage("missing role (server or client)");
    if (strcmp(argv[1], "server") == 0)
        o->server = 1;
    else if (strcmp(argv[1], "stream") == 0)
        o->stream = 1;
    else if (strcmp(argv[1], "client") != 0)
        usage("the role is server or client");
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'd': {
            uint64_t d = parse_bytes("domain", optarg);
            if (d > 0x7FF0)
                usage("--domain: not a domain id");
            o->domain = (int)d;
            break;
        }
        case 'p': o->path = optarg; break;
        case 'l': o->left = parse_bytes("left", optarg); o->left_given = 1; break;
        case 'r': o->right = parse_bytes("right", optarg); o->right_given = 1; break;
        case 's': o->send = parse_bytes("send", optarg); break;
        case 'e': o->expect = parse_bytes("expect", optarg); break;
        case 'S': o->seed = parse_bytes("seed", optarg); break;
        case 'm': o->max_chunk = parse_bytes("max-chunk", optarg); break;
        case 'P': o->packet = 1; break;
        case 'n': o->no_close = 1; break;
        case 'w': o->wait_close = 1; break;
        default: usage("unknown option");
        }
    }
    if (optind != argc)
        usage("unexpected argument");
    if (o->stream)
        return;
    if (o->domain < 0)
        usage("--domain is required");
    if (!o->path || !*o->path)
        usage("--path is required");
    if (!o->server && (o->left_given || o->right_given))
        usage("--left/--right are the server's");
    if (o->max_chunk == 0 || o->max_chunk > (1u << 30))
        usage("--max-chunk must be 1..=1G");
}

/* One direction of the transfer. */
struct direction {
    uint64_t total, done;
    struct stream data;
    uint8_t *buf, *want;
    size_t len, off; /* send: the chunk in buf and how much of it went; recv: the call size */
    size_t ring;     /* the ring's size: a packet is at most half of it */
};

static struct libxenvchan *ctrl;
static struct options opt;
static struct xorshift chunks;
static struct direction tx, rx;

static void summary(void)
{
    printf("{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 "}\n", tx.done, rx.done);
    fflush(stdout);
}

static void fail(int code, const char *what)
{
    fprintf(stderr, "peer %s: %s (sent %" PRIu64 " of %" PRIu64 ", received %" PRIu64 " of %" PRIu64 ")\n",
            opt.server ? "server" : "client", what, tx.done, tx.total, rx.done, rx.total);
    summary();
    exit(code);
}

/* The size of the next call for a direction with `left` bytes to go. */
static size_t next_chunk(const struct direction *d)
{
    uint64_t size = 1 + xorshift_next(&chunks) % opt.max_chunk;
    uint64_t left = d->total - d->done;
    if (size > left)
        size = left;
    if (opt.packet && size > d->ring / 2)
        size = d->ring / 2;
    return (size_t)size;
}

/* One send or write call; returns whether it moved data. */
static int send_some(void)
{
    if (tx.off == tx.len) {
        tx.len = next_chunk(&tx);
        tx.off = 0;
        stream_fill(&tx.data, tx.buf, tx.len);
    }
    size_t want = tx.len - tx.off;
    int n = opt.packet ? libxenvchan_send(ctrl, tx.buf + tx.off, want)
                       : libxenvchan_write(ctrl, tx.buf + tx.off, want);
    if (n < 0)
        fail(EXIT_CHANNEL, libxenvchan_is_open(ctrl) ? "libxenvchan write/send failed"
                                                     : "the peer closed while data was still to be sent");
    if ((size_t)n > want)
        fail(EXIT_CHANNEL, "libxenvchan wrote more than asked");
    tx.off += (size_t)n;
    tx.done += (uint64_t)n;
    return n > 0;
}

/* One recv or read call, its bytes checked; returns whether it moved data. */
static int recv_some(void)
{
    if (rx.len == 0)
        rx.len = next_chunk(&rx);
    int n = opt.packet ? libxenvchan_recv(ctrl, rx.buf, rx.len) : libxenvchan_read(ctrl, rx.buf, rx.len);
    if (n < 0)
        fail(EXIT_CHANNEL, libxenvchan_is_open(ctrl) ? "libxenvchan read/recv failed"
                                                     : "the peer closed while data was still expected");
    if ((size_t)n > rx.len || (opt.packet && n != 0 && (size_t)n != rx.len))
        fail(EXIT_CHANNEL, "libxenvchan read a size it was not asked for");
    if (n == 0)
        return 0;
    stream_fill(&rx.data, rx.want, (size_t)n);
    if (memcmp(rx.want, rx.buf, (size_t)n) != 0) {
        size_t i = 0;
        while (rx.want[i] == rx.buf[i])
            i++;
        fprintf(stderr, "peer %s: data mismatch at offset %" PRIu64 ": expected 0x%02x, got 0x%02x\n",
                opt.server ? "server" : "client", rx.done + i, rx.want[i], rx.buf[i]);
        rx.done += i;
        summary();
        exit(EXIT_MISMATCH);
    }
    rx.done += (uint64_t)n;
    rx.len = 0;
    return 1;
}

/* Waits for the next event on the channel (select, then libxenvchan_wait to consume it). */
static void wait_event(void)
{
    int fd = libxenvchan_fd_for_select(ctrl);
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(fd, &readable);
    if (select(fd + 1, &readable, NULL, NULL, NULL) < 0) {
        if (errno == EINTR)
            return;
        fail(EXIT_CHANNEL, "select on the event channel failed");
    }
    if (libxenvchan_wait(ctrl) < 0)
        fail(EXIT_CHANNEL, "libxenvchan_wait failed");
}

static uint8_t *buffer(size_t size)
{
    uint8_t *b = malloc(size ? size : 1);
    if (!b) {
        fprintf(stderr, "peer: out of memory\n");
        exit(EXIT_CHANNEL);
    }
    return b;
}

/* `peer stream --seed N --send BYTES`: the raw stream(seed) on stdout, for checking that the
 * Rust harness's generator is the same. */
static int dump_stream(void)
{
    struct stream st;
    uint8_t chunk[4096];
    stream_init(&st, opt.seed);
    for (uint64_t left = opt.send; left;) {
        size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
        stream_fill(&st, chunk, n);
        if (fwrite(chunk, 1, n, stdout) != n)
            return EXIT_CHANNEL;
        left -= n;
    }
    return fflush(stdout) ? EXIT_CHANNEL : 0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &opt);
    if (opt.stream)
        return dump_stream();
    if (opt.server)
        ctrl = libxenvchan_server_init(NULL, opt.domain, opt.path, opt.left, opt.right);
    else
        ctrl = libxenvchan_client_init(NULL, opt.domain, opt.path);
    if (!ctrl) {
        fprintf(stderr, "peer %s: libxenvchan_%s_init(domain %d, %s) failed: %s\n",
                opt.server ? "server" : "client", opt.server ? "server" : "client", opt.domain, opt.path,
                strerror(errno));
        return EXIT_CHANNEL;
    }
    printf("ready\n");
    fflush(stdout);

    uint64_t seed = opt.seed;
    xorshift_init(&chunks, seed ^ CHUNK_SEED_MASK);
    stream_init(&tx.data, opt.server ? seed : seed + 1);
    stream_init(&rx.data, opt.server ? seed + 1 : seed);
    tx.total = opt.send;
    rx.total = opt.expect;
    tx.ring = (size_t)1 << ctrl->write.order;
    rx.ring = (size_t)1 << ctrl->read.order;
    tx.buf = buffer(opt.max_chunk);
    rx.buf = buffer(opt.max_chunk);
    rx.want = buffer(opt.max_chunk);

    /* One direction: blocking calls, libxenvchan waits itself. Both: never block, wait here
     * when neither direction can move. */
    int duplex = tx.total && rx.total;
    ctrl->blocking = !duplex;
    while (tx.done < tx.total || rx.done < rx.total) {
        int moved = 0;
        if (tx.done < tx.total)
            moved |= send_some();
        if (rx.done < rx.total)
            moved |= recv_some();
        if (!moved)
            wait_event();
    }

    if (opt.wait_close) {
        ctrl->blocking = 0;
        while (libxenvchan_is_open(ctrl))
            wait_event();
    }
    summary();
    if (opt.no_close)
        exit(0);
    libxenvchan_close(ctrl);
    free(tx.buf);
    free(rx.buf);
    free(rx.want);
    return 0;
}
