/*
 * The WebSocket client plumbing both C load generators share: non-blocking
 * connect, the HTTP upgrade, frame parsing, masked sends, pings and the
 * epoll loop. One thread, one epoll set, no allocation per frame.
 *
 * The including program defines four hooks, called from here:
 *   on_open(c)          the upgrade succeeded: send connect/subscribe;
 *   on_ready(c)         c's last setup command (setup_replies(c) of them) was answered;
 *   on_pub(c, p, n)     a publication push; p holds the first min(n, PRE)
 *                       bytes of its payload;
 *   on_closing(c)       c is about to close (undo its bookkeeping).
 * Replies after the setup ones acknowledge publishes (counted here; a program
 * that publishes in a closed loop sets `ack_hook` to hear each one).
 * Included by exactly one .c file, so everything here is static.
 *
 * Two wire formats: Centrifugo's JSON form (text frames) and, with
 * `proto` set, its protobuf form (subprotocol centrifuge-protobuf, binary
 * frames of varint-length-delimited Command/Reply messages; the pb_* helpers).
 * Squall writes one message per frame, so only a frame's first message is read.
 */
#ifndef SQUALL_NATIVE_WS_H
#define SQUALL_NATIVE_WS_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING = 1, ST_HANDSHAKE, ST_OPEN, ST_READY, ST_CLOSED };
enum { PRE = 192, HS_MAX = 1024 };

typedef struct {
    int fd;
    uint32_t index; /* position in the program's connection array */
    uint8_t state;
    uint8_t replies;
    uint8_t in_payload;
    uint8_t hlen;
    uint8_t opcode;
    uint8_t hbuf[14];
    uint16_t prelen;
    uint16_t hslen;
    uint64_t remaining;
    uint64_t payload_len;
    uint64_t count; /* publications received */
    double t_connect; /* when its TCP connect started */
    char pre[PRE];
    char *hs; /* handshake response bytes until the blank line */
} conn_t;

static void on_open(conn_t *c);
static uint8_t setup_replies(const conn_t *c);
static void on_ready(conn_t *c);
static void on_pub(conn_t *c, const char *p, size_t n);
static void on_closing(conn_t *c);

static struct {
    const char *host, *path;
    int port;
    int concurrency; /* most connections in setup (TCP connect to last setup reply) at once */
} ws = {"127.0.0.1", "/connection/websocket", 0, 128};

static int epfd;
static uint64_t closes, handshake_failures, connect_failures, pings;
static uint64_t settled; /* connections that became ready or closed before it */
static uint64_t acked, publish_errors, reply_errors;
static int last_close_code;
static int proto; /* 1: the protobuf form; set by the program before any connection opens */
static uint64_t pub_frame_bytes; /* wire bytes of the publication frames read (header included) */
static char buf[1 << 18];
/* Optional: called on each publish reply (after it is counted), while c->pre still holds the reply's first bytes. */
static void (*ack_hook)(conn_t *c, int is_error);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* One masked client frame; the mask is fixed (servers must accept any key). */
static int send_frame(conn_t *c, uint8_t opcode, const char *data, size_t n) {
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t out[1024];
    size_t h = 0;
    if (n > sizeof(out) - 14) return -1;
    out[h++] = 0x80 | opcode;
    if (n < 126) {
        out[h++] = 0x80 | (uint8_t)n;
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) out[h + i] = (uint8_t)data[i] ^ mask[i & 3];
    ssize_t w = write(c->fd, out, h + n);
    return w == (ssize_t)(h + n) ? 0 : -1;
}

static void close_conn(conn_t *c, int code) {
    if (c->state == ST_CLOSED) return;
    on_closing(c);
    if (c->state >= ST_OPEN) closes++;
    if (c->state != ST_READY) settled++;
    if (code) last_close_code = code;
    c->state = ST_CLOSED;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->hs);
    c->hs = NULL;
}

/* ---- the protobuf form: varints, one Command as a delimited message */
static size_t pb_varint(uint8_t *out, uint64_t v) {
    size_t i = 0;
    while (v >= 0x80) {
        out[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[i++] = (uint8_t)v;
    return i;
}

/* Reads the varint at p[*i] (n bytes in all); 0 if it runs past n. */
static int pb_read(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
    *v = 0;
    for (int shift = 0; *i < n && shift < 64; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* A length-delimited field (wire type 2) into out; returns its size. */
static size_t pb_field(uint8_t *out, int number, const void *body, size_t n) {
    size_t h = pb_varint(out, (uint64_t)number << 3 | 2);
    h += pb_varint(out + h, n);
    if (n) memcpy(out + h, body, n);
    return h + n;
}

/* Command{id, <request field>: body} as one delimited message (what a binary frame carries). */
static size_t pb_command(uint8_t *out, uint64_t id, int request, const uint8_t *body, size_t n) {
    uint8_t msg[900];
    size_t m = pb_varint(msg + 1, id) + 1;
    msg[0] = 0x08; /* field 1, varint */
    m += pb_field(msg + m, request, body, n);
    size_t h = pb_varint(out, m);
    memcpy(out + h, msg, m);
    return h + m;
}

/* A command in the connection's format: `json` as text, or the protobuf Command of
 * request field `request` with `body` (a serialized request). */
static int send_command(conn_t *c, const char *json, size_t jn, uint64_t id, int request, const uint8_t *body, size_t n) {
    if (!proto) return send_frame(c, 0x1, json, jn);
    uint8_t out[1000];
    if (n > 880) return -1;
    size_t k = pb_command(out, id, request, body, n);
    return send_frame(c, 0x2, (const char *)out, k);
}

/* The connect command (anonymous, no token), every generator's first frame; on failure c is closed. */
static int send_connect(conn_t *c) {
    static const char cmd[] = "{\"id\":1,\"connect\":{}}";
    if (send_command(c, cmd, sizeof cmd - 1, 1, 4, NULL, 0) == 0) return 0;
    close_conn(c, 0);
    return -1;
}

static void on_reply(conn_t *c, int is_error) {
    uint8_t setup = setup_replies(c);
    if (c->replies >= setup) { /* publish acknowledgements */
        if (is_error) publish_errors++;
        else acked++;
        if (ack_hook) ack_hook(c, is_error);
        return;
    }
    c->replies++;
    if (is_error) {
        reply_errors++;
        close_conn(c, 0);
        return;
    }
    if (c->replies == setup) {
        c->state = ST_READY;
        settled++;
        on_ready(c);
    }
}

/* A binary frame's first message: Reply{id=1, error=2, push=4}, Push{channel=2, pub=4}; the
 * fields come in number order. An empty Reply is the server's ping (answered by an empty Command). */
static void pb_frame_done(conn_t *c, const uint8_t *p, size_t n) {
    size_t i = 0;
    uint64_t len, tag, v;
    if (!pb_read(p, n, &i, &len)) return;
    if (len == 0) {
        pings++;
        send_frame(c, 0x2, "\0", 1);
        return;
    }
    if (!pb_read(p, n, &i, &tag)) return;
    if (tag == 0x08) { /* a reply: its id, then an error or a result */
        if (!pb_read(p, n, &i, &v)) return;
        int is_error = i < n && p[i] == 0x12;
        on_reply(c, is_error);
        return;
    }
    if (tag != 0x22 || !pb_read(p, n, &i, &len)) return; /* push */
    if (!pb_read(p, n, &i, &tag)) return;
    if (tag == 0x12) { /* its channel: skip */
        if (!pb_read(p, n, &i, &len)) return;
        i += (size_t)len;
        if (!pb_read(p, n, &i, &tag)) return;
    }
    if (tag == 0x22) { /* join/leave and other pushes are not deliveries */
        pub_frame_bytes += c->payload_len + (c->payload_len < 126 ? 2 : 4);
        on_pub(c, (const char *)p, n);
    }
}

static void frame_done(conn_t *c) {
    const char *p = c->pre;
    size_t n = c->prelen;
    if (c->opcode == 0x8) {
        int code = n >= 2 ? ((uint8_t)p[0] << 8) | (uint8_t)p[1] : 1005;
        close_conn(c, code);
        return;
    }
    if (c->opcode == 0x9) { /* WebSocket-level ping */
        send_frame(c, 0xA, p, n);
        return;
    }
    if (c->opcode != 0x1 && c->opcode != 0x2) return;
    if (proto) {
        pb_frame_done(c, (const uint8_t *)p, n);
        return;
    }
    if (c->payload_len == 2 && p[0] == '{' && p[1] == '}') { /* protocol ping */
        pings++;
        send_frame(c, 0x1, "{}", 2);
        return;
    }
    if (n >= 7 && memcmp(p, "{\"push\"", 7) == 0) {
        if (memmem(p, n, "\"pub\":", 6)) { /* join/leave and other pushes are not deliveries */
            pub_frame_bytes += c->payload_len + (c->payload_len < 126 ? 2 : 4);
            on_pub(c, p, n);
        }
        return;
    }
    if (n >= 5 && memcmp(p, "{\"id\"", 5) == 0) on_reply(c, memmem(p, n, "\"error\"", 7) != NULL);
}

static void parse(conn_t *c, const uint8_t *b, size_t n) {
    size_t i = 0;
    while (i < n && c->state != ST_CLOSED) {
        if (!c->in_payload) {
            c->hbuf[c->hlen++] = b[i++];
            if (c->hlen < 2) continue;
            uint8_t l7 = c->hbuf[1] & 0x7f;
            size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->hbuf[1] & 0x80) ? 4 : 0);
            if (c->hlen < need) continue;
            uint64_t len = l7;
            if (l7 == 126) len = ((uint64_t)c->hbuf[2] << 8) | c->hbuf[3];
            if (l7 == 127) {
                len = 0;
                for (int k = 0; k < 8; k++) len = (len << 8) | c->hbuf[2 + k];
            }
            c->opcode = c->hbuf[0] & 0x0f;
            c->payload_len = c->remaining = len;
            c->prelen = 0;
            c->hlen = 0;
            c->in_payload = 1;
            if (len == 0) {
                c->in_payload = 0;
                frame_done(c);
            }
            continue;
        }
        size_t take = n - i < c->remaining ? n - i : (size_t)c->remaining;
        if (c->prelen < PRE) {
            size_t room = (size_t)PRE - c->prelen, k = room < take ? room : take;
            memcpy(c->pre + c->prelen, b + i, k);
            c->prelen += (uint16_t)k;
        }
        i += take;
        c->remaining -= take;
        if (c->remaining == 0) {
            c->in_payload = 0;
            frame_done(c);
        }
    }
}

static void on_handshake(conn_t *c, const char *b, size_t n) {
    if (!c->hs) c->hs = malloc(HS_MAX);
    size_t room = (size_t)HS_MAX - c->hslen, k = room < n ? room : n;
    memcpy(c->hs + c->hslen, b, k);
    c->hslen += (uint16_t)k;
    char *end = memmem(c->hs, c->hslen, "\r\n\r\n", 4);
    if (!end) {
        if (c->hslen == HS_MAX) { handshake_failures++; close_conn(c, 0); }
        return;
    }
    if (c->hslen < 12 || memcmp(c->hs + 9, "101", 3) != 0 ||
        (proto && !memmem(c->hs, c->hslen, "Sec-WebSocket-Protocol: centrifuge-protobuf\r\n", 45))) {
        handshake_failures++;
        close_conn(c, 0);
        return;
    }
    size_t head = (size_t)(end + 4 - c->hs);
    char tail[HS_MAX];
    size_t ntail = c->hslen - head; /* frames that came with the response */
    memcpy(tail, c->hs + head, ntail);
    free(c->hs);
    c->hs = NULL;
    c->state = ST_OPEN;
    on_open(c);
    if (c->state != ST_CLOSED && ntail) parse(c, (const uint8_t *)tail, ntail);
    if (c->state != ST_CLOSED && k < n) parse(c, (const uint8_t *)b + k, n - k);
}

static int start_connect(conn_t *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ws.port)};
    inet_pton(AF_INET, ws.host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->t_connect = now();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        c->state = ST_CLOSED;
        connect_failures++;
        settled++;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void on_writable(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        connect_failures++;
        close_conn(c, 0);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     ws.path, ws.host, ws.port, proto ? "Sec-WebSocket-Protocol: centrifuge-protobuf\r\n" : "");
    c->state = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (write(c->fd, req, (size_t)n) != n) close_conn(c, 0);
}

static void on_readable(conn_t *c) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        close_conn(c, 0);
        return;
    }
    if (c->state == ST_HANDSHAKE) on_handshake(c, buf, (size_t)n);
    else parse(c, (const uint8_t *)buf, (size_t)n);
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[1024];
    int k = epoll_wait(epfd, evs, 1024, timeout_ms);
    for (int i = 0; i < k; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->state == ST_CLOSED) continue;
        if (c->state == ST_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
    }
}

/* Open all n connections, at most ws.concurrency in setup at a time, until
 * each is ready or closed or `timeout` seconds pass; returns the seconds it
 * took. Each start is made as soon as a slot frees, so the rate is the
 * server's (or the concurrency's), not a schedule's. */
static double open_all(conn_t *conns, int n, double timeout) {
    double t = now();
    uint64_t base = settled, next = 0;
    for (int i = 0; i < n; i++) conns[i].index = (uint32_t)i;
    while (now() - t < timeout) {
        while (next < (uint64_t)n && next - (settled - base) < (uint64_t)ws.concurrency) start_connect(&conns[next++]);
        if (settled - base >= (uint64_t)n) break;
        poll_once(10);
    }
    return now() - t;
}

/* One end of the measured interval: announced on stdout (a caller samples the server's CPU there). */
typedef struct {
    int marked;
    double t, cpu;
    uint64_t delivered;
} mark_t;

static void mark(mark_t *m, const char *name, uint64_t delivered) {
    m->t = now();
    m->cpu = cpu_self();
    m->delivered = delivered;
    m->marked = 1;
    printf("MARK %s\n", name);
    fflush(stdout);
}

/* The result line's fields counted here. */
static void print_counters(void) {
    printf("\"acked\":%llu,\"publish_errors\":%llu,\"reply_errors\":%llu,\"connect_failures\":%llu,"
           "\"handshake_failures\":%llu,\"closes\":%llu,\"last_close_code\":%d,\"pings\":%llu,",
           (unsigned long long)acked, (unsigned long long)publish_errors, (unsigned long long)reply_errors,
           (unsigned long long)connect_failures, (unsigned long long)handshake_failures, (unsigned long long)closes,
           last_close_code, (unsigned long long)pings);
}

/* The result line's fields for the interval between two marks. */
__attribute__((unused)) static void print_measured(const mark_t *a, const mark_t *b) {
    double span = b->marked ? b->t - a->t : 0, cpu = b->marked ? b->cpu - a->cpu : 0;
    uint64_t d = b->marked ? b->delivered - a->delivered : 0;
    printf("\"measured_seconds\":%.3f,\"measured_deliveries\":%llu,\"deliveries_per_s\":%.1f,"
           "\"cpu_seconds\":%.3f,\"cpu_us_per_delivery\":%.4f",
           span, (unsigned long long)d, span > 0 ? (double)d / span : 0.0, cpu, d ? cpu * 1e6 / (double)d : 0.0);
}

/* A command-line flag: its name, its kind ('i' int, 'd' double, 's' string) and where its value goes. */
typedef struct {
    const char *name;
    char kind;
    void *dst;
} flag_t;

/* Sets the program's `flags` (a table ended by {0}) and every generator's --port and --path from
 * argv; on an unknown or valueless flag prints the usage line and returns -1. */
static int parse_flags(int argc, char **argv, const flag_t *flags, const char *usage) {
    const flag_t common[] = {{"--port", 'i', &ws.port}, {"--path", 's', &ws.path}, {0}};
    for (int i = 1; i < argc; i++) {
        const flag_t *f = flags;
        while (f->name && strcmp(f->name, argv[i])) f++;
        if (!f->name)
            for (f = common; f->name && strcmp(f->name, argv[i]); f++) {}
        if (!f->name || i + 1 >= argc) {
            fprintf(stderr, "usage: %s --port P %s [--path /connection/websocket]\n", argv[0], usage);
            return -1;
        }
        const char *v = argv[++i];
        if (f->kind == 'i') *(int *)f->dst = (int)atof(v);
        else if (f->kind == 'd') *(double *)f->dst = atof(v);
        else *(const char **)f->dst = v;
    }
    return 0;
}

#endif
