/*
 * A chat load generator in C: `--rooms` rooms of `--members` WebSocket
 * clients, each member subscribed to its room's channel and publishing to it
 * `--rate` times a second, all on one epoll loop in one thread.
 *
 * Why C: at the chat target's 40,000 deliveries/s the Python load tester
 * needs most of a core of its own, so on a 2-core machine its own stalls and
 * its competition with the server show up in the latency it reports. This
 * one reads each frame where it lands and costs a few µs per delivery, so the
 * latency it reports is the server's (plus the kernel's loopback).
 *
 * Publications go out open-loop on a fixed schedule spread evenly over the
 * members (publication k is member k mod N's, at k / (N * rate) seconds);
 * each carries its member's index in the room, a per-member sequence number
 * and its send time, so every receiver checks that it gets each member's
 * publications once and in order (a gap is loss) and measures latency.
 * Latency is kept for publications sent after `--warmup` apart from those
 * sent before.
 *
 * Prints `MARK start` and `MARK end` lines around the measured interval (a
 * caller samples the server's CPU there) and one JSON line of results last.
 *
 * Build: cc -O2 -o native_chat native_chat.c   (bench/native.py does it)
 */
#include "native_ws.h"
#include "native_hist.h"

static struct {
    const char *ns;
    int rooms, members, size;
    double rate, duration, warmup, drain, setup_timeout;
} opt = {"bench", 200, 10, 100, 2.0, 20.0, 2.0, 10.0, 120.0};

static conn_t *conns;
static int nconns;
static uint64_t *seq_sent; /* [member] publications member has sent */
static uint64_t *seq_got;  /* [receiver * members + sender] the last sequence number receiver got from sender */
static uint64_t sent, extra, gaps, late_sends, skipped;
static uint64_t ready, live, total_delivered;
static double t0, t_start, t_end;
static hist_t warm, measured;
static char pub_data[512];

static void on_closing(conn_t *c) {
    if (c->state == ST_READY) live--;
}

static void on_open(conn_t *c) {
    if (send_connect(c) < 0) return;
    char cmd[256];
    int n = snprintf(cmd, sizeof cmd, "{\"id\":2,\"subscribe\":{\"channel\":\"%s:room-%u\"}}", opt.ns,
                 c->index / (uint32_t)opt.members);
    if (send_frame(c, 0x1, cmd, (size_t)n) < 0) close_conn(c, 0);
}

/* The unsigned number of JSON member `key` (e.g. "\"s\"") in p[0..n), or -1; spaces around ':' allowed. */
static int64_t field(const char *p, size_t n, const char *key) {
    size_t k = strlen(key);
    const char *at = memmem(p, n, key, k), *end = p + n;
    if (!at) return -1;
    const char *d = at + k;
    while (d < end && *d == ' ') d++;
    if (d >= end || *d++ != ':') return -1;
    while (d < end && *d == ' ') d++;
    if (d >= end || *d < '0' || *d > '9') return -1;
    int64_t v = 0;
    while (d < end && *d >= '0' && *d <= '9') v = v * 10 + (*d++ - '0');
    return d < end ? v : -1; /* a number cut off at the prefix's end is not trusted */
}

static void on_pub(conn_t *c, const char *p, size_t n) {
    const char *data = memmem(p, n, "\"data\"", 6);
    if (!data || c->state != ST_READY) { extra++; return; }
    size_t rest = n - (size_t)(data - p);
    int64_t m = field(data, rest, "\"m\""), s = field(data, rest, "\"s\""), t = field(data, rest, "\"t\"");
    if (m < 0 || m >= opt.members || s < 1 || t < 0) { extra++; return; }
    uint64_t *last = &seq_got[(uint64_t)c->index * (uint64_t)opt.members + (uint64_t)m];
    if ((uint64_t)s <= *last) { extra++; return; } /* a repeat or out of order */
    gaps += (uint64_t)s - *last - 1;
    *last = (uint64_t)s;
    c->count++;
    total_delivered++;
    double t_now = now(), t_sent = t0 + (double)t / 1e6;
    double us = (t_now - t_sent) * 1e6;
    hist_add(t_sent >= t_start && t_sent < t_end ? &measured : &warm, us);
}

static uint8_t setup_replies(const conn_t *c) { (void)c; return 2; } /* connect, subscribe */

static void on_ready(conn_t *c) {
    (void)c;
    ready++;
    live++;
}

static void publish(conn_t *c) {
    uint32_t member = c->index % (uint32_t)opt.members;
    uint64_t s = ++seq_sent[c->index];
    char cmd[768];
    uint64_t t_us = (uint64_t)((now() - t0) * 1e6);
    int n = snprintf(cmd, sizeof cmd,
                     "{\"id\":%llu,\"publish\":{\"channel\":\"%s:room-%u\",\"data\":{\"m\":%u,\"s\":%llu,\"t\":%llu,"
                     "\"x\":\"%s\"}}}",
                     (unsigned long long)(s + 2), opt.ns, c->index / (uint32_t)opt.members, member,
                     (unsigned long long)s, (unsigned long long)t_us, pub_data);
    sent++;
    if (send_frame(c, 0x1, cmd, (size_t)n) < 0) close_conn(c, 0);
}

/* What live receivers still miss of what their room's members sent. */
static uint64_t missing(void) {
    uint64_t miss = 0;
    for (int r = 0; r < nconns; r++) {
        if (conns[r].state != ST_READY) continue;
        int base = r - r % opt.members;
        for (int m = 0; m < opt.members; m++) {
            uint64_t want = seq_sent[base + m], got = seq_got[(uint64_t)r * (uint64_t)opt.members + (uint64_t)m];
            if (want > got) miss += want - got;
        }
    }
    return miss;
}

int main(int argc, char **argv) {
    const flag_t flags[] = {
        {"--rooms", 'i', &opt.rooms},
        {"--members", 'i', &opt.members},
        {"--rate", 'd', &opt.rate},
        {"--size", 'i', &opt.size},
        {"--duration", 'd', &opt.duration},
        {"--warmup", 'd', &opt.warmup},
        {"--drain", 'd', &opt.drain},
        {"--namespace", 's', &opt.ns},
        {0},
    };
    const char *usage = "[--rooms R] [--members M] [--rate MSGS_PER_S_PER_MEMBER] [--size BYTES] "
                        "[--duration S] [--warmup S] [--drain S] [--namespace NS]";
    if (parse_flags(argc, argv, flags, usage) < 0) return 2;
    if (ws.port <= 0 || opt.rooms <= 0 || opt.members <= 0 || opt.rate <= 0 || opt.warmup >= opt.duration) {
        fprintf(stderr, "need --port, positive --rooms, --members and --rate, and --warmup < --duration\n");
        return 2;
    }
    raise_fd_limit();

    int pad = opt.size - 90 > 0 ? opt.size - 90 : 0; /* the push and the m/s/t fields add ~90 bytes */
    if (pad > (int)sizeof(pub_data) - 1) pad = sizeof(pub_data) - 1;
    memset(pub_data, 'x', (size_t)pad);
    nconns = opt.rooms * opt.members;
    conns = calloc((size_t)nconns, sizeof *conns);
    seq_sent = calloc((size_t)nconns, sizeof *seq_sent);
    seq_got = calloc((size_t)nconns * (size_t)opt.members, sizeof *seq_got);
    epfd = epoll_create1(0);

    double setup_s = open_all(conns, nconns, opt.setup_timeout);

    /* Run: publication k at t0 + k / (N * rate) from member k mod N. */
    double total_rate = (double)nconns * opt.rate;
    t0 = now();
    t_start = t0 + opt.warmup;
    t_end = t0 + opt.duration;
    mark_t start = {0}, end = {0};
    uint64_t k = 0;
    while (live > 0) {
        double t = now();
        if (!start.marked && t >= t_start) mark(&start, "start", total_delivered);
        if (t >= t_end) break;
        double due;
        while ((due = t0 + (double)k / total_rate) <= t && due < t_end) {
            if (t - due > 0.005) late_sends++; /* the generator itself fell behind */
            conn_t *c = &conns[k % (uint64_t)nconns];
            if (c->state == ST_READY) publish(c);
            else skipped++;
            k++;
        }
        double wait_ms = (t0 + (double)k / total_rate - now()) * 1000.0;
        poll_once(wait_ms <= 0 ? 0 : wait_ms < 1 ? 1 : (int)wait_ms);
    }
    if (start.marked) mark(&end, "end", total_delivered);
    /* Drain: every live member must get all its room sent, every publish must be answered. */
    double t_drain = now();
    while (live > 0 && missing() > 0 && now() - t_drain < opt.drain) poll_once(10);
    while (live > 0 && acked + publish_errors < sent && now() - t_drain < opt.drain) poll_once(10);

    uint64_t miss = missing(), got = total_delivered;
    printf("{\"rooms\":%d,\"members\":%d,\"rate\":%.3f,\"connections\":%d,\"ready\":%llu,\"live\":%llu,"
           "\"setup_seconds\":%.3f,\"size\":%d,\"published\":%llu,",
           opt.rooms, opt.members, opt.rate, nconns, (unsigned long long)ready, (unsigned long long)live, setup_s,
           opt.size, (unsigned long long)sent);
    print_counters();
    printf("\"extra\":%llu,\"skipped\":%llu,\"late_sends\":%llu,\"deliveries\":%llu,\"expected\":%llu,"
           "\"loss\":%llu,\"gaps\":%llu,",
           (unsigned long long)extra, (unsigned long long)skipped, (unsigned long long)late_sends,
           (unsigned long long)got, (unsigned long long)(got + miss + gaps), (unsigned long long)(miss + gaps),
           (unsigned long long)gaps);
    print_measured(&start, &end);
    printf(",");
    hist_json("latency_ms", &measured);
    printf(",");
    hist_json("latency_warmup_ms", &warm);
    printf("}\n");
    int ok = ready == (uint64_t)nconns && live == ready && miss == 0 && gaps == 0 && publish_errors == 0 &&
             reply_errors == 0 && acked == sent;
    return ok ? 0 : 1;
}
