/*
 * A latency histogram for the C load generators: fixed memory, one add per
 * sample, percentiles good to 1.6% at any scale, so a server seconds behind
 * gets real percentiles rather than its max. Included after native_ws.h
 * (which brings the system headers) by exactly one .c file.
 */
#ifndef SQUALL_NATIVE_HIST_H
#define SQUALL_NATIVE_HIST_H

/* Log-linear latency buckets over whole µs: exact below 64 µs, then 64 per power of two
 * (at most 1.6% wide), up to 2^40 µs; no latency a run can see overflows them. */
enum { SUB = 64, BUCKETS = SUB * 36 };

typedef struct {
    uint32_t counts[BUCKETS];
    uint64_t total;
    double max_us;
} hist_t;

static int bucket_of(uint64_t us) {
    if (us < SUB) return (int)us;
    int msb = 63 - __builtin_clzll(us); /* >= 6 */
    int b = (msb - 5) * SUB + (int)((us >> (msb - 6)) & (SUB - 1));
    return b < BUCKETS ? b : BUCKETS - 1;
}

static double bucket_top(int b) { /* the first µs above bucket b */
    if (b < SUB) return b + 1;
    int msb = b / SUB + 5;
    return (double)(((uint64_t)SUB + (uint64_t)(b % SUB) + 1) << (msb - 6));
}

static void hist_add(hist_t *h, double us) {
    h->counts[bucket_of(us <= 0 ? 0 : (uint64_t)us)]++;
    h->total++;
    if (us > h->max_us) h->max_us = us;
}

/* The q-quantile in ms: the upper edge of the bucket holding it, never above the max. */
static double hist_q(const hist_t *h, double q) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999), seen = 0;
    if (rank < 1) rank = 1;
    for (int b = 0; b < BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            double edge = bucket_top(b);
            return (edge < h->max_us ? edge : h->max_us) / 1000.0;
        }
    }
    return h->max_us / 1000.0;
}

static void hist_json(const char *name, const hist_t *h) {
    printf("\"%s\":{\"count\":%llu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}", name,
           (unsigned long long)h->total, hist_q(h, 0.5), hist_q(h, 0.9), hist_q(h, 0.99), hist_q(h, 0.999),
           h->max_us / 1000.0);
}

#endif
