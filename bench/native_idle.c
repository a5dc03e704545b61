/*
 * A connection-setup and idle load generator in C: `--connections` WebSocket
 * clients, each connecting and subscribing to `--per-client` channels of a
 * pool, opened as fast as the server takes them (at most `--concurrency` in
 * setup at once), then held idle for `--duration` seconds answering the
 * server's pings, all on one epoll loop in one thread.
 *
 * Why C: a connection costs the server a few hundred µs of CPU, and the
 * Python load tester spends about as much on its side of each one, so on a
 * 2-core machine the setup rate it reports is its own, not the server's
 * (docs/PERFORMANCE.md). This one spends a few tens of µs per connection.
 *
 * Channels as the Python load tester's idle scenario: connection i joins
 * `NS:idle-((i * k + j) % pool)` for j < k.
 *
 * Prints `MARK start` before the first connect, `MARK connected` when every
 * connection is ready (or refused) and `MARK end` after the idle hold (a
 * caller samples the server's CPU and RSS there), and one JSON line of
 * results last. Exits 0 only if every connection got ready and stayed open.
 *
 * `--linger S` keeps every connection open after `MARK end`, still answering
 * pings, until stdin reaches end of file or S seconds pass: a caller that
 * samples the server at `MARK end` over its own connection (/metrics) closes
 * stdin when done, so what it read does not include the mass disconnect of
 * this process's exit.
 *
 * Build: cc -O2 -o native_idle native_idle.c   (bench/native.py does it)
 */
#include "native_ws.h"
#include <poll.h>
#include "native_hist.h"

static struct {
    const char *ns;
    int connections, per_client, pool;
    double duration, setup_timeout, linger;
} opt = {"bench", 1000, 2, 0, 10.0, 120.0, 0.0};

static conn_t *conns;
static uint64_t ready, live;
static hist_t setup_time;

static void on_closing(conn_t *c) {
    if (c->state == ST_READY) live--;
}

static void on_open(conn_t *c) {
    if (send_connect(c) < 0) return;
    for (int j = 0; j < opt.per_client; j++) {
        uint64_t ch = ((uint64_t)c->index * (uint64_t)opt.per_client + (uint64_t)j) % (uint64_t)opt.pool;
        char cmd[256];
        int n = snprintf(cmd, sizeof cmd, "{\"id\":%d,\"subscribe\":{\"channel\":\"%s:idle-%llu\"}}", j + 2, opt.ns,
                     (unsigned long long)ch);
        if (send_frame(c, 0x1, cmd, (size_t)n) < 0) { close_conn(c, 0); return; }
    }
}

static uint8_t setup_replies(const conn_t *c) { (void)c; return (uint8_t)(1 + opt.per_client); } /* connect, subscribes */

static void on_ready(conn_t *c) {
    hist_add(&setup_time, (now() - c->t_connect) * 1e6);
    ready++;
    live++;
}

/* 1 once stdin is at end of file (or unreadable): the caller's signal to go. */
static int stdin_done(void) {
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    char buf[256];
    return read(0, buf, sizeof buf) <= 0;
}

static void on_pub(conn_t *c, const char *p, size_t n) {
    (void)c;
    (void)p;
    (void)n;
}

int main(int argc, char **argv) {
    const flag_t flags[] = {
        {"--connections", 'i', &opt.connections},
        {"--per-client", 'i', &opt.per_client},
        {"--pool", 'i', &opt.pool},
        {"--concurrency", 'i', &ws.concurrency},
        {"--duration", 'd', &opt.duration},
        {"--setup-timeout", 'd', &opt.setup_timeout},
        {"--linger", 'd', &opt.linger},
        {"--namespace", 's', &opt.ns},
        {0},
    };
    const char *usage = "[--connections N] [--per-client K] [--pool CHANNELS] "
                        "[--concurrency C] [--duration S] [--setup-timeout S] [--linger S] [--namespace NS]";
    if (parse_flags(argc, argv, flags, usage) < 0) return 2;
    if (opt.pool <= 0) opt.pool = opt.connections / 10 > 0 ? opt.connections / 10 : 1;
    if (ws.port <= 0 || opt.connections <= 0 || opt.per_client < 0 || opt.per_client > 250 || ws.concurrency <= 0 ||
        opt.duration < 0 || opt.setup_timeout <= 0 || opt.linger < 0) {
        fprintf(stderr, "need --port, positive --connections, --concurrency and --setup-timeout, "
                        "0 <= --per-client <= 250, --duration >= 0 and --linger >= 0\n");
        return 2;
    }
    raise_fd_limit();
    conns = calloc((size_t)opt.connections, sizeof *conns);
    epfd = epoll_create1(0);

    mark_t start = {0}, connected = {0}, end = {0};
    mark(&start, "start", 0);
    double setup_s = open_all(conns, opt.connections, opt.setup_timeout);
    mark(&connected, "connected", ready);
    double t_hold = now();
    while (live > 0 && now() - t_hold < opt.duration) poll_once(100);
    mark(&end, "end", ready);
    double t_end = now();
    while (live > 0 && now() - t_end < opt.linger && !stdin_done()) poll_once(50);

    printf("{\"connections\":%d,\"per_client\":%d,\"pool\":%d,\"concurrency\":%d,\"ready\":%llu,\"live\":%llu,"
           "\"connect_seconds\":%.6f,\"connect_rate\":%.1f,\"hold_seconds\":%.3f,"
           "\"generator_cpu_us_per_connect\":%.1f,",
           opt.connections, opt.per_client, opt.pool, ws.concurrency, (unsigned long long)ready,
           (unsigned long long)live, setup_s, setup_s > 0 ? (double)ready / setup_s : 0.0, end.t - connected.t,
           ready ? (connected.cpu - start.cpu) * 1e6 / (double)ready : 0.0);
    print_counters();
    hist_json("connect_time_ms", &setup_time);
    printf("}\n");
    int ok = ready == (uint64_t)opt.connections && live == ready && reply_errors == 0 && connect_failures == 0 &&
             handshake_failures == 0;
    return ok ? 0 : 1;
}
