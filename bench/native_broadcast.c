/*
 * A broadcast load generator in C: N WebSocket subscribers of one channel
 * plus one publisher, all on one epoll loop in one thread.
 *
 * Why C: on a 2-core machine `--processes 2` can only show its gain if the
 * load generator costs far less CPU per delivery than the server does. The
 * Python load tester spends about as much per delivery as Squall (see
 * docs/LOADTEST.md); this one reads each socket into one big buffer and only
 * walks WebSocket headers, so it costs a small fraction of that.
 *
 * Speaks the Centrifugo JSON protocol (connect, subscribe, publish, ping `{}`
 * answered with `{}`). The publisher keeps at most `--window` publications
 * ahead of the slowest subscriber (a closed loop, so no server queue grows).
 * Each subscriber must receive every publication in order; what it does not
 * is loss.
 *
 * Prints `MARK start` and `MARK end` lines around the measured interval (a
 * caller samples the server's CPU there) and one JSON line of results last.
 *
 * Build: cc -O2 -o native_broadcast native_broadcast.c   (bench/native.py does it)
 */
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
enum { PRE = 96, HS_MAX = 1024, MAX_PENDING = 128 };

typedef struct {
    int fd;
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
    char pre[PRE];
    char *hs; /* handshake response bytes until the blank line */
} conn_t;

static struct {
    const char *host, *path, *channel;
    int port, subscribers, window, size, batch;
    double duration, warmup, drain, setup_timeout;
} opt = {"127.0.0.1", "/connection/websocket", "bench:native", 0, 1000, 8, 100, 1, 15.0, 3.0, 10.0, 120.0};

static conn_t *conns; /* [0] is the publisher */
static int nconns, epfd;
static uint64_t sent, acked, publish_errors, reply_errors, closes, handshake_failures, connect_failures, extra, pings;
static uint64_t total_delivered, ready, live, min_done;
static uint32_t *at; /* at[c % ring] = live subscribers holding exactly c publications */
static uint64_t ring;
static int last_close_code;
static char buf[1 << 18];
static char pub_data[512];

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

static void advance_min(void) {
    while (min_done < sent && at[min_done % ring] == 0) min_done++;
}

static void close_conn(conn_t *c, int code) {
    if (c->state == ST_CLOSED) return;
    if (c != conns && c->state == ST_READY) {
        at[c->count % ring]--;
        live--;
    }
    if (c->state >= ST_OPEN) closes++;
    if (code) last_close_code = code;
    c->state = ST_CLOSED;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->hs);
    c->hs = NULL;
    advance_min();
}

static void send_commands(conn_t *c) {
    char cmd[256];
    int n = snprintf(cmd, sizeof cmd, "{\"id\":1,\"connect\":{}}");
    if (send_frame(c, 0x1, cmd, (size_t)n) < 0) { close_conn(c, 0); return; }
    if (c == conns) return;
    n = snprintf(cmd, sizeof cmd, "{\"id\":2,\"subscribe\":{\"channel\":\"%s\"}}", opt.channel);
    if (send_frame(c, 0x1, cmd, (size_t)n) < 0) close_conn(c, 0);
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
    if (c->payload_len == 2 && p[0] == '{' && p[1] == '}') { /* protocol ping */
        pings++;
        send_frame(c, 0x1, "{}", 2);
        return;
    }
    if (n >= 7 && memcmp(p, "{\"push\"", 7) == 0) {
        if (!memmem(p, n, "\"pub\":", 6)) return; /* join/leave or another push: not a delivery */
        if (c == conns || c->state != ST_READY) { extra++; return; }
        if (c->count >= sent) { extra++; return; }
        at[c->count % ring]--;
        c->count++;
        at[c->count % ring]++;
        total_delivered++;
        if (at[min_done % ring] == 0) advance_min();
        return;
    }
    if (n >= 5 && memcmp(p, "{\"id\"", 5) == 0) {
        int is_error = memmem(p, n, "\"error\"", 7) != NULL;
        if (c == conns && c->replies >= 1) { /* publish acknowledgements */
            if (is_error) publish_errors++;
            else acked++;
            return;
        }
        c->replies++;
        if (is_error) {
            reply_errors++;
            close_conn(c, 0);
            return;
        }
        if (c == conns) {
            c->state = ST_READY;
        } else if (c->replies == 2) {
            c->state = ST_READY;
            c->count = min_done; /* joins now: owes only what comes next */
            at[c->count % ring]++;
            ready++;
            live++;
        }
    }
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
    if (c->hslen < 12 || memcmp(c->hs + 9, "101", 3) != 0) {
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
    send_commands(c);
    if (c->state != ST_CLOSED && ntail) parse(c, (const uint8_t *)tail, ntail);
    if (c->state != ST_CLOSED && k < n) parse(c, (const uint8_t *)b + k, n - k);
}

static int start_connect(conn_t *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = ST_CONNECTING;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        c->state = ST_CLOSED;
        connect_failures++;
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
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     opt.path, opt.host, opt.port);
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

static void publish_some(void) {
    conn_t *p = conns;
    while (p->state == ST_READY && sent - min_done < (uint64_t)opt.window && live > 0) {
        char cmd[768];
        int n = snprintf(cmd, sizeof cmd, "{\"id\":%llu,\"publish\":{\"channel\":\"%s\",\"data\":{\"s\":%llu,\"x\":\"%s\"}}}",
                         (unsigned long long)(sent + 2), opt.channel, (unsigned long long)(sent + 1), pub_data);
        sent++;
        if (send_frame(p, 0x1, cmd, (size_t)n) < 0) {
            close_conn(p, 0);
            return;
        }
    }
}

/* Wake for a socket only once about `frames` publications wait in it (SO_RCVLOWAT). */
static void set_lowat(int frames) {
    int bytes = frames > 1 ? frames * opt.size : 1;
    for (int i = 1; i < nconns; i++)
        if (conns[i].state == ST_READY) setsockopt(conns[i].fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
}

static double arg_d(char **argv, int *i, int argc) { return *i + 1 < argc ? atof(argv[++*i]) : 0; }

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--port")) opt.port = (int)arg_d(argv, &i, argc);
        else if (!strcmp(a, "--subscribers")) opt.subscribers = (int)arg_d(argv, &i, argc);
        else if (!strcmp(a, "--window")) opt.window = (int)arg_d(argv, &i, argc);
        else if (!strcmp(a, "--batch")) opt.batch = (int)arg_d(argv, &i, argc);
        else if (!strcmp(a, "--size")) opt.size = (int)arg_d(argv, &i, argc);
        else if (!strcmp(a, "--duration")) opt.duration = arg_d(argv, &i, argc);
        else if (!strcmp(a, "--warmup")) opt.warmup = arg_d(argv, &i, argc);
        else if (!strcmp(a, "--drain")) opt.drain = arg_d(argv, &i, argc);
        else if (!strcmp(a, "--channel") && i + 1 < argc) opt.channel = argv[++i];
        else if (!strcmp(a, "--path") && i + 1 < argc) opt.path = argv[++i];
        else {
            fprintf(stderr, "usage: %s --port P [--subscribers N] [--window W] [--size BYTES] [--batch FRAMES] [--duration S] "
                            "[--warmup S] [--drain S] [--channel C] [--path /connection/websocket]\n", argv[0]);
            return 2;
        }
    }
    if (opt.port <= 0 || opt.subscribers <= 0 || opt.window <= 0 || opt.warmup >= opt.duration ||
        opt.batch < 1 || opt.batch >= opt.window) {
        fprintf(stderr, "need --port, positive --subscribers and --window, 1 <= --batch < --window, "
                        "and --warmup < --duration\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    int pad = opt.size - 60 > 0 ? opt.size - 60 : 0; /* the push around the data adds ~60 bytes */
    if (pad > (int)sizeof(pub_data) - 1) pad = sizeof(pub_data) - 1;
    memset(pub_data, 'x', (size_t)pad);
    ring = 2 * (uint64_t)opt.window + 4;
    at = calloc(ring, sizeof *at);
    nconns = opt.subscribers + 1;
    conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(0);

    /* Setup: the publisher, then subscribers with at most MAX_PENDING handshakes in flight. */
    double t_setup = now();
    start_connect(&conns[0]);
    int next = 1;
    while (now() - t_setup < opt.setup_timeout) {
        int pending = 0, done = 0;
        for (int i = 1; i < next; i++) {
            if (conns[i].state == ST_READY || conns[i].state == ST_CLOSED) done++;
            else pending++;
        }
        while (next < nconns && pending < MAX_PENDING) {
            start_connect(&conns[next++]);
            pending++;
        }
        if (done == opt.subscribers && conns[0].state != ST_CONNECTING && conns[0].state != ST_HANDSHAKE &&
            conns[0].state != ST_OPEN)
            break;
        poll_once(10);
    }
    double setup_s = now() - t_setup;

    /* Run: publish within the window; the measured interval skips the warm-up. */
    set_lowat(opt.batch);
    double t0 = now(), t_start = t0 + opt.warmup, t_end = t0 + opt.duration;
    double cpu_start = 0, cpu_end = 0;
    uint64_t d_start = 0, d_end = 0;
    int marked = 0;
    while (live > 0 && conns[0].state == ST_READY) {
        double t = now();
        if (!marked && t >= t_start) {
            d_start = total_delivered;
            cpu_start = cpu_self();
            printf("MARK start\n");
            fflush(stdout);
            marked = 1;
        }
        if (t >= t_end) break;
        publish_some();
        poll_once(1);
    }
    double t_stop = now();
    if (marked) {
        d_end = total_delivered;
        cpu_end = cpu_self();
        printf("MARK end\n");
        fflush(stdout);
    }
    /* Drain: every live subscriber must catch up with everything sent. */
    set_lowat(1);
    double t_drain = now();
    while (live > 0 && min_done < sent && now() - t_drain < opt.drain) poll_once(10);
    while (conns[0].state == ST_READY && acked + publish_errors < sent && now() - t_drain < opt.drain) poll_once(10);

    uint64_t owed = 0, got = 0;
    for (int i = 1; i < nconns; i++) {
        if (conns[i].state != ST_READY) continue;
        got += conns[i].count;
    }
    /* Every subscriber alive at the end owes what was sent since it joined (all join before the first publish). */
    owed = sent * live;
    double measured = marked ? t_stop - t_start : 0;
    double rate = measured > 0 ? (double)(d_end - d_start) / measured : 0;
    printf("{\"subscribers\":%d,\"ready\":%llu,\"live\":%llu,\"setup_seconds\":%.3f,\"window\":%d,\"size\":%d,"
           "\"published\":%llu,\"acked\":%llu,\"publish_errors\":%llu,\"reply_errors\":%llu,"
           "\"connect_failures\":%llu,\"handshake_failures\":%llu,\"closes\":%llu,\"last_close_code\":%d,"
           "\"extra\":%llu,\"pings\":%llu,\"deliveries\":%llu,\"expected\":%llu,\"loss\":%lld,"
           "\"measured_seconds\":%.3f,\"measured_deliveries\":%llu,\"deliveries_per_s\":%.1f,"
           "\"cpu_seconds\":%.3f,\"cpu_us_per_delivery\":%.4f}\n",
           opt.subscribers, (unsigned long long)ready, (unsigned long long)live, setup_s, opt.window, opt.size,
           (unsigned long long)sent, (unsigned long long)acked, (unsigned long long)publish_errors,
           (unsigned long long)reply_errors, (unsigned long long)connect_failures,
           (unsigned long long)handshake_failures, (unsigned long long)closes, last_close_code,
           (unsigned long long)extra, (unsigned long long)pings, (unsigned long long)got, (unsigned long long)owed,
           (long long)owed - (long long)got, measured, (unsigned long long)(d_end - d_start), rate,
           cpu_end - cpu_start, d_end > d_start ? (cpu_end - cpu_start) * 1e6 / (double)(d_end - d_start) : 0.0);
    return ready == (uint64_t)opt.subscribers && live == ready && owed == got && publish_errors == 0 ? 0 : 1;
}
