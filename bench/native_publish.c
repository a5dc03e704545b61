/*
 * A client-publish load generator in C: `--connections` WebSocket clients,
 * none subscribed, each publishing in a closed loop (one publish in flight
 * per connection: the next goes out when the reply to the last one came),
 * all on one epoll loop in one thread.
 *
 * Why C: bench/redis_publish.py compares what client publishes reach with a
 * raw redis-py loop on the same Redis; a Python generator would spend about
 * as much CPU per publish as the server does, and on a 2-core machine the
 * rate it reported would be the two sharing the cores. This one writes a
 * frame and reads a reply per publication.
 *
 * Publication k (k counts publishes sent, over all connections) goes to
 * channel `NS:c<k mod --channels>` with data {"n":k,"text":"x" * 40} (the
 * same data as the API side of bench/redis_publish.py). The run stops
 * sending at `--publications` publishes or after `--duration` seconds,
 * whichever comes first, and waits at most `--drain` seconds more for the
 * replies still due. Each reply must carry the id of its connection's
 * publish in flight.
 *
 * Prints `MARK start` before the first publish and `MARK end` when the last
 * reply came (or the duration ran out; a caller samples the server's CPU
 * there) and one JSON line of results last. Exits 0 only if every
 * connection got ready and stayed open and all `--publications` were
 * answered ok.
 *
 * Build: cc -O2 -o native_publish native_publish.c   (bench/native.py does it)
 */
#include "native_ws.h"

static struct {
    const char *ns;
    int connections, channels, publications;
    double duration, drain, setup_timeout;
} opt = {"stream", 200, 100, 40000, 60.0, 10.0, 120.0};

static conn_t *conns;
static uint64_t *awaited; /* [connection] id of its publish in flight, 0 if none */
static uint64_t *issued;  /* [connection] publishes it sent */
static uint64_t ready, live, sent, in_flight, lost, wrong_ids, extra;
static int stopping; /* no new publishes: the duration ran out */

static void on_closing(conn_t *c) {
    if (c->state == ST_READY) live--;
    if (awaited[c->index]) {
        awaited[c->index] = 0;
        in_flight--;
        lost++;
    }
}

static void on_open(conn_t *c) { send_connect(c); }

static uint8_t setup_replies(const conn_t *c) { (void)c; return 1; } /* connect */

static void on_ready(conn_t *c) {
    (void)c;
    ready++;
    live++;
}

static void on_pub(conn_t *c, const char *p, size_t n) { /* nothing is subscribed */
    (void)c;
    (void)p;
    (void)n;
    extra++;
}

/* c's next publish, unless the run is done sending. */
static void publish(conn_t *c) {
    if (stopping || sent >= (uint64_t)opt.publications || c->state != ST_READY) return;
    uint64_t k = sent++, id = ++issued[c->index] + 1; /* the connect was id 1 */
    char cmd[256];
    int n = snprintf(cmd, sizeof cmd,
                     "{\"id\":%llu,\"publish\":{\"channel\":\"%s:c%llu\",\"data\":{\"n\":%llu,"
                     "\"text\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}}",
                     (unsigned long long)id, opt.ns, (unsigned long long)(k % (uint64_t)opt.channels),
                     (unsigned long long)k);
    awaited[c->index] = id;
    in_flight++;
    if (send_frame(c, 0x1, cmd, (size_t)n) < 0) close_conn(c, 0); /* on_closing counts it lost */
}

/* The reply's id: the number after a leading {"id": in the frame's first bytes, or 0. */
static uint64_t reply_id(const conn_t *c) {
    const char *p = c->pre, *end = c->pre + c->prelen;
    if (c->prelen < 7 || memcmp(p, "{\"id\":", 6) != 0) return 0;
    uint64_t v = 0;
    for (p += 6; p < end && *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
    return v;
}

/* A publish reply (counted as acked or publish_errors by native_ws.h): c may send its next one. */
static void on_ack(conn_t *c, int is_error) {
    (void)is_error;
    uint64_t want = awaited[c->index];
    if (!want) { /* nothing was in flight on c */
        wrong_ids++;
        return;
    }
    if (reply_id(c) != want) wrong_ids++;
    awaited[c->index] = 0;
    in_flight--;
    publish(c);
}

int main(int argc, char **argv) {
    const flag_t flags[] = {
        {"--connections", 'i', &opt.connections},
        {"--channels", 'i', &opt.channels},
        {"--publications", 'i', &opt.publications},
        {"--duration", 'd', &opt.duration},
        {"--drain", 'd', &opt.drain},
        {"--setup-timeout", 'd', &opt.setup_timeout},
        {"--namespace", 's', &opt.ns},
        {0},
    };
    const char *usage = "[--connections N] [--channels C] [--publications TOTAL] [--duration S] [--drain S] "
                        "[--setup-timeout S] [--namespace NS]";
    if (parse_flags(argc, argv, flags, usage) < 0) return 2;
    if (ws.port <= 0 || opt.connections <= 0 || opt.channels <= 0 || opt.publications <= 0 || opt.duration <= 0 ||
        opt.drain < 0 || opt.setup_timeout <= 0) {
        fprintf(stderr, "need --port, positive --connections, --channels, --publications, --duration and "
                        "--setup-timeout, and --drain >= 0\n");
        return 2;
    }
    raise_fd_limit();
    conns = calloc((size_t)opt.connections, sizeof *conns);
    awaited = calloc((size_t)opt.connections, sizeof *awaited);
    issued = calloc((size_t)opt.connections, sizeof *issued);
    epfd = epoll_create1(0);

    double setup_s = open_all(conns, opt.connections, opt.setup_timeout);

    /* Run: every ready connection sends one publish; each reply sends that connection's next. */
    ack_hook = on_ack;
    mark_t start = {0}, end = {0};
    mark(&start, "start", acked);
    for (int i = 0; i < opt.connections; i++) publish(&conns[i]);
    while (in_flight > 0 && now() - start.t < opt.duration) poll_once(10);
    stopping = 1;
    mark(&end, "end", acked);
    uint64_t replies_at_end = acked + publish_errors;
    /* Drain: only if the duration ran out with publishes in flight. */
    double t_drain = now();
    while (in_flight > 0 && now() - t_drain < opt.drain) poll_once(10);

    double span = end.t - start.t, cpu = end.cpu - start.cpu;
    uint64_t measured_ok = end.delivered - start.delivered;
    printf("{\"connections\":%d,\"channels\":%d,\"namespace\":\"%s\",\"publications\":%d,\"ready\":%llu,"
           "\"live\":%llu,\"setup_seconds\":%.3f,\"sent\":%llu,\"ok\":%llu,\"errors\":%llu,\"in_flight\":%llu,"
           "\"lost\":%llu,\"wrong_ids\":%llu,\"extra\":%llu,",
           opt.connections, opt.channels, opt.ns, opt.publications, (unsigned long long)ready,
           (unsigned long long)live, setup_s, (unsigned long long)sent, (unsigned long long)acked,
           (unsigned long long)publish_errors, (unsigned long long)in_flight, (unsigned long long)lost,
           (unsigned long long)wrong_ids, (unsigned long long)extra);
    print_counters();
    printf("\"measured_ok\":%llu,\"measured_replies\":%llu,\"seconds\":%.6f,\"rate\":%.1f,"
           "\"generator_cpu_us_per_publication\":%.2f}\n",
           (unsigned long long)measured_ok, (unsigned long long)replies_at_end, span,
           span > 0 ? (double)measured_ok / span : 0.0, replies_at_end ? cpu * 1e6 / (double)replies_at_end : 0.0);
    int ok = ready == (uint64_t)opt.connections && live == ready && acked == (uint64_t)opt.publications &&
             publish_errors == 0 && reply_errors == 0 && in_flight == 0 && wrong_ids == 0 && extra == 0;
    return ok ? 0 : 1;
}
