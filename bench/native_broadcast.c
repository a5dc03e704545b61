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
 * answered with `{}`), or with `--format protobuf` its protobuf form
 * (subprotocol centrifuge-protobuf, binary frames; the publication data is the
 * same JSON bytes, so both formats carry the same payload). The publisher keeps at most `--window` publications
 * ahead of the slowest subscriber (a closed loop, so no server queue grows).
 * Each subscriber must receive every publication in order; what it does not
 * is loss.
 *
 * Prints `MARK start` and `MARK end` lines around the measured interval (a
 * caller samples the server's CPU there) and one JSON line of results last.
 *
 * Build: cc -O2 -o native_broadcast native_broadcast.c   (bench/native.py does it)
 */
#include "native_ws.h"

static struct {
    const char *channel, *format;
    int subscribers, window, size, batch;
    double duration, warmup, drain, setup_timeout;
} opt = {"bench:native", "json", 1000, 8, 100, 1, 15.0, 3.0, 10.0, 120.0};

static conn_t *conns; /* [0] is the publisher */
static int nconns;
static uint64_t sent, extra;
static uint64_t total_delivered, ready, live, min_done;
static uint32_t *at; /* at[c % ring] = live subscribers holding exactly c publications */
static uint64_t ring;
static char pub_data[512];

static void advance_min(void) {
    while (min_done < sent && at[min_done % ring] == 0) min_done++;
}

static void on_closing(conn_t *c) {
    if (c != conns && c->state == ST_READY) {
        at[c->count % ring]--;
        live--;
        advance_min();
    }
}

static void on_open(conn_t *c) {
    if (send_connect(c) < 0 || c == conns) return;
    char cmd[256];
    uint8_t req[256];
    int n = snprintf(cmd, sizeof cmd, "{\"id\":2,\"subscribe\":{\"channel\":\"%s\"}}", opt.channel);
    size_t k = pb_field(req, 1, opt.channel, strlen(opt.channel)); /* SubscribeRequest.channel */
    if (send_command(c, cmd, (size_t)n, 2, 5, req, k) < 0) close_conn(c, 0);
}

static uint8_t setup_replies(const conn_t *c) { return c == conns ? 1 : 2; } /* connect (, subscribe) */

static void on_ready(conn_t *c) {
    if (c == conns) return;
    c->count = min_done; /* joins now: owes only what comes next */
    at[c->count % ring]++;
    ready++;
    live++;
}

static void on_pub(conn_t *c, const char *p, size_t n) {
    (void)p;
    (void)n;
    if (c == conns || c->state != ST_READY || c->count >= sent) { extra++; return; }
    at[c->count % ring]--;
    c->count++;
    at[c->count % ring]++;
    total_delivered++;
    if (at[min_done % ring] == 0) advance_min();
}

static void publish_some(void) {
    conn_t *p = conns;
    while (p->state == ST_READY && sent - min_done < (uint64_t)opt.window && live > 0) {
        char cmd[768], data[600];
        uint8_t req[800];
        int n = snprintf(cmd, sizeof cmd, "{\"id\":%llu,\"publish\":{\"channel\":\"%s\",\"data\":{\"s\":%llu,\"x\":\"%s\"}}}",
                         (unsigned long long)(sent + 2), opt.channel, (unsigned long long)(sent + 1), pub_data);
        int dn = snprintf(data, sizeof data, "{\"s\":%llu,\"x\":\"%s\"}", (unsigned long long)(sent + 1), pub_data);
        size_t k = pb_field(req, 1, opt.channel, strlen(opt.channel)); /* PublishRequest.channel, .data */
        k += pb_field(req + k, 2, data, (size_t)dn);
        uint64_t id = sent + 2;
        sent++;
        if (send_command(p, cmd, (size_t)n, id, 7, req, k) < 0) {
            close_conn(p, 0);
            return;
        }
    }
}

/* Bytes of one publication frame: --size until the warm-up measured it (the formats' frames
 * differ: a protobuf push is ~40 bytes shorter than the JSON one of the same data). */
static double frame_size;

/* Wake for a socket only once about `frames` publications wait in it (SO_RCVLOWAT). */
static void set_lowat(int frames) {
    int bytes = frames > 1 ? (int)(frames * frame_size) : 1;
    for (int i = 1; i < nconns; i++)
        if (conns[i].state == ST_READY) setsockopt(conns[i].fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
}

int main(int argc, char **argv) {
    const flag_t flags[] = {
        {"--subscribers", 'i', &opt.subscribers},
        {"--window", 'i', &opt.window},
        {"--batch", 'i', &opt.batch},
        {"--size", 'i', &opt.size},
        {"--duration", 'd', &opt.duration},
        {"--warmup", 'd', &opt.warmup},
        {"--drain", 'd', &opt.drain},
        {"--channel", 's', &opt.channel},
        {"--format", 's', &opt.format},
        {0},
    };
    const char *usage = "[--subscribers N] [--window W] [--size BYTES] [--batch FRAMES] "
                        "[--duration S] [--warmup S] [--drain S] [--channel C] [--format json|protobuf]";
    if (parse_flags(argc, argv, flags, usage) < 0) return 2;
    proto = strcmp(opt.format, "protobuf") == 0;
    if (!proto && strcmp(opt.format, "json") != 0) {
        fprintf(stderr, "--format is json or protobuf\n");
        return 2;
    }
    if (ws.port <= 0 || opt.subscribers <= 0 || opt.window <= 0 || opt.warmup >= opt.duration ||
        opt.batch < 1 || opt.batch >= opt.window) {
        fprintf(stderr, "need --port, positive --subscribers and --window, 1 <= --batch < --window, "
                        "and --warmup < --duration\n");
        return 2;
    }
    raise_fd_limit();

    int pad = opt.size - 60 > 0 ? opt.size - 60 : 0; /* the push around the data adds ~60 bytes */
    if (pad > (int)sizeof(pub_data) - 1) pad = sizeof(pub_data) - 1;
    memset(pub_data, 'x', (size_t)pad);
    ring = 2 * (uint64_t)opt.window + 4;
    at = calloc(ring, sizeof *at);
    nconns = opt.subscribers + 1;
    conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(0);

    /* Setup: the publisher first, then the subscribers. */
    double setup_s = open_all(conns, nconns, opt.setup_timeout);

    /* Run: publish within the window; the measured interval skips the warm-up, at whose end
     * the batched reads are resized to the frames actually seen (same frames per wake in every format). */
    frame_size = opt.size;
    set_lowat(opt.batch);
    double t0 = now(), t_start = t0 + opt.warmup, t_end = t0 + opt.duration;
    mark_t start = {0}, end = {0};;
    while (live > 0 && conns[0].state == ST_READY) {
        double t = now();
        if (!start.marked && t >= t_start) {
            if (total_delivered) frame_size = (double)pub_frame_bytes / (double)total_delivered;
            set_lowat(opt.batch);
            mark(&start, "start", total_delivered);
        }
        if (t >= t_end) break;
        publish_some();
        poll_once(1);
    }
    if (start.marked) mark(&end, "end", total_delivered);
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
    printf("{\"format\":\"%s\",\"subscribers\":%d,\"ready\":%llu,\"live\":%llu,\"setup_seconds\":%.3f,\"window\":%d,\"size\":%d,"
           "\"published\":%llu,\"frame_bytes\":%.1f,",
           opt.format, opt.subscribers, (unsigned long long)ready, (unsigned long long)live, setup_s, opt.window, opt.size,
           (unsigned long long)sent, frame_size);
    print_counters();
    printf("\"extra\":%llu,\"deliveries\":%llu,\"expected\":%llu,\"loss\":%lld,", (unsigned long long)extra,
           (unsigned long long)got, (unsigned long long)owed, (long long)owed - (long long)got);
    print_measured(&start, &end);
    printf("}\n");
    return ready == (uint64_t)opt.subscribers && live == ready && owed == got && publish_errors == 0 ? 0 : 1;
}
