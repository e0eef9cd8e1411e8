/*
 * loadgen.c - Kafka load generator and produce-to-queryable probe for
 * walletstream (docs/BENCHMARKS.md, "Stream: ..." sections).
 *
 *   loadgen -b BROKERS [-t TOPIC] (-n COUNT | -r EVENTS_PER_S -d SECONDS)
 *           [-w WALLETS] [-p PRODUCTS] [-s SEED] [-m] [-x PREFIX]
 *           [-k EVERY -a HOST:PORT [-i POLL_US] [-R POLL_PCT] [-u WARMUP_S]
 *            [-T WAIT_S]]
 *           [-X key=value]... [-o FILE.json] [-D EVENTS.jsonl] [-q]
 *   loadgen -a HOST:PORT -W TOTAL [-S START_EPOCH_S] [-T WAIT_S] [-o FILE.json]
 *   loadgen -a HOST:PORT -Y PATH [-S START_EPOCH_S] [-i POLL_US] [-T WAIT_S] [-o FILE.json]
 *
 * Produce mode sends walletstream events, the same JSON as
 * bench/gen_events.c (identical records for the same -n/-w/-p/-s/-m when
 * no probe replaces any), keyed by wallet_id, either flat out (-n) or at a
 * fixed rate (-r, -d). -x puts a prefix on transaction ids, so that runs
 * into the same topic do not deduplicate each other. -m mixes records as
 * gen_events -m does: about 1 % invalid JSON and 6 % reused transaction
 * ids, whose content differs, so the service rejects them as conflicting
 * duplicates (no exact duplicate is sent).
 *
 * Freshness (-k EVERY): every EVERY-th event is replaced by a credit of
 * 1.00 USD to a fresh wallet ("probe-<prefix><n>") that no other event
 * touches. A poller thread keeps one keep-alive HTTP/1.1 connection (raw
 * TCP socket, no library) to the API at -a and asks
 * GET /balance/<probe> for every pending probe until it answers 200,
 * asking each one again after max(POLL_US, POLL_PCT % of its age,
 * pending probes x 50 us) (defaults 200 us and 1 %: 0.2 ms while a probe is
 * younger than 20 ms and fewer than 4 are pending; 1 % resolution beyond,
 * and never more than about 20,000 requests a second, so that a backlog of
 * old probes does not turn the poller into a busy loop that takes the CPU
 * from the service it measures). It also reads /metrics once a second
 * (events processed, batches, commit time). Two latencies per probe, both
 * ending when the 200 response has been read:
 *   from send     from just before rd_kafka_producev() for the probe
 *   from delivery from the delivery report (the broker acknowledged the
 *                 record; excludes producer queueing and linger)
 * Probes sent during the first WARMUP_S seconds (-u, default 0) are left
 * out of the percentiles (not out of the counts). After the last event the
 * poller waits up to WAIT_S (-T, default 30) seconds for the probes still
 * pending; those that never answer are counted as unanswered.
 *
 * Wait mode (-W TOTAL): produce nothing; poll GET /metrics at -a every
 * 10 ms (or -i) until applied + duplicate + rejected >= TOTAL, then print
 * the time since START_EPOCH_S (-S, a CLOCK_REALTIME instant such as
 * `date +%s.%N` just before the service started; default: loadgen's own
 * start), the time of the first answer, and the counters. For throughput
 * runs: the service's time from start to having processed the topic.
 *
 * Ready mode (-Y PATH): produce nothing; ask GET PATH at -a every POLL_US
 * (-i, default 1000) microseconds, connecting again while the connection
 * is refused, until it answers 200; print the time since START_EPOCH_S
 * (-S, as above) and that of the first answer of any status (its status
 * and the start of its body go into the JSON). For restart
 * runs: from the start of a process to its /readyz answering 200.
 *
 * Producer settings: acks=all, linger.ms=5 (librdkafka's default, set
 * explicitly; "from delivery report" excludes it); -X overrides any
 * property. With linger.ms=0 at 10,000 events/s the producer sends one tiny
 * request per few records, and on a 2-core machine the broker (and the
 * embedded broker's one message set per partition per fetch) falls behind.
 *
 * -D writes every record value sent, one per line, so that
 * `walletstream replay` of the file gives the outcome counts the service
 * must reach (they do not depend on the order across partitions).
 *
 * Output: a summary on stdout, and with -o the same figures as JSON.
 * Exit status: 0, 1 on an error or if any record or probe was lost,
 * 2 on a usage error.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
 *        -o build/loadgen bench/loadgen.c $(pkg-config --cflags --libs rdkafka) -lpthread
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define MAX_PROPS 64
#define ID_MAX 64
#define RECORD_MAX 512
#define HTTP_BUF_MIN 16384
#define HTTP_BUF_MAX (8 << 20)
#define QUEUE_FULL_SLEEP_NS 200000L
/* With many probes pending, each is asked at most every pending x this:
 * the poller stays under about 20,000 requests a second. */
#define POLL_SHARE_NS 50000L

/* ------------------------------------------------------------- clock */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double real_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts;

    if (ns <= 0)
        return;
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------- options */

static struct {
    const char *brokers, *topic, *api, *out, *prefix, *dump, *ready_path;
    const char *props[MAX_PROPS];
    int nprops;
    unsigned long long count, wallets, products, seed, every, wait_total;
    double rate, duration, warmup, wait_s, start_epoch, poll_rel;
    long poll_us;
    int mixed, quiet;
} opt = {
    .topic = "transactions_topic", .prefix = "", .wallets = 100000,
    .products = 1000, .seed = 42, .wait_s = 30, .poll_us = -1,
    .start_epoch = -1, .poll_rel = 0.01,
};

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen -b BROKERS [-t TOPIC] (-n COUNT | -r RATE -d SECONDS)\n"
            "               [-w WALLETS] [-p PRODUCTS] [-s SEED] [-m] [-x PREFIX]\n"
            "               [-k EVERY -a HOST:PORT [-i POLL_US] [-R POLL_PCT] [-u WARMUP_S] [-T WAIT_S]]\n"
            "               [-X key=value]... [-o FILE.json] [-D EVENTS.jsonl] [-q]\n"
            "       loadgen -a HOST:PORT -W TOTAL [-S START_EPOCH_S] [-T WAIT_S] [-o FILE.json]\n"
            "       loadgen -a HOST:PORT -Y PATH [-S START_EPOCH_S] [-i POLL_US] [-T WAIT_S] [-o FILE.json]\n");
    exit(2);
}

/* ------------------------------------------------------------- events */

static uint64_t rng;

static uint64_t next_rand(void)
{
    /* xorshift64*, as bench/gen_events.c */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static const char *const types[] = {"credit", "debit", "cancelCredit",
                                    "cancelDebit"};
static const char *const currencies[] = {"USD", "EUR", "GBP", "JPY"};

/* Writes event i (gen_events' record i) into buf; the key into key. */
static int make_event(unsigned long long i, char *buf, size_t cap, char *key,
                      size_t kcap, int *klen)
{
    uint64_t r = next_rand();
    unsigned long long w = r % opt.wallets, p = (r >> 20) % opt.products;
    unsigned long long id = i;
    uint64_t r2 = next_rand();
    unsigned t = (unsigned)(r2 % 10);
    const char *type = types[t < 5 ? 0 : t < 8 ? 1 : t < 9 ? 2 : 3];
    unsigned cents = (unsigned)((r2 >> 8) % 100000);
    unsigned day = (unsigned)((r2 >> 32) % 84), sec = (unsigned)((r2 >> 40) % 86400);
    unsigned month = 1 + day / 28, mday = 1 + day % 28;

    *klen = snprintf(key, kcap, "w%llu", w);
    if (opt.mixed) {
        unsigned m = (unsigned)((r2 >> 50) % 100);
        if (m < 1)
            return snprintf(buf, cap, "{\"transaction_id\": \"broken\", \"amount\": ");
        if (m < 6 && i > 0)
            id = i - 1 - (r2 >> 56) % (i < 100 ? i : 100);
        else if (m < 7 && i > 0) {
            id = i - 1;
            cents += 1;
        }
    }
    return snprintf(buf, cap,
                    "{\"transaction_id\":\"%stx%llu\",\"wallet_id\":\"w%llu\","
                    "\"product_id\":\"p%llu\",\"type\":\"%s\",\"amount\":%u.%02u,"
                    "\"currency\":\"%s\",\"timestamp\":\"2024-%02u-%02uT%02u:%02u:%02uZ\"}",
                    opt.prefix, id, w, p, type, cents / 100, cents % 100,
                    currencies[w % 4], month, mday, sec / 3600, sec / 60 % 60,
                    sec % 60);
}

/* ------------------------------------------------------------- probes */

struct probe {
    char wallet[ID_MAX];
    int64_t t_send;             /* set before it is published */
    _Atomic int64_t t_dr;       /* 0: no delivery report yet; -1: failed */
    int64_t t_seen;             /* poller thread only; 0: not yet */
    int64_t t_prev_req;         /* poller: when the last 404 was asked */
    int64_t t_next;             /* poller: when to ask again */
    unsigned polls;             /* requests that asked for it */
};

static struct probe *probes;
static unsigned long long probes_cap;
static _Atomic unsigned long long probes_sent;   /* published to the poller */
static _Atomic int producing_done;
static _Atomic int poller_stop;
static _Atomic unsigned long long delivered, failed;
static char first_error[256];
static _Atomic int have_error;
static int64_t t_start;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct probe *pr = m->_private;

    (void)rk;
    (void)opaque;
    if (m->err) {
        atomic_fetch_add(&failed, 1);
        if (!atomic_exchange(&have_error, 1))
            snprintf(first_error, sizeof first_error, "%s",
                     rd_kafka_err2str(m->err));
        if (pr)
            atomic_store(&pr->t_dr, -1);
        return;
    }
    atomic_fetch_add(&delivered, 1);
    if (pr)
        atomic_store(&pr->t_dr, now_ns());
}

/* Serves delivery reports as soon as they arrive. */
static void *dr_thread(void *arg)
{
    rd_kafka_t *rk = arg;

    while (!atomic_load(&poller_stop))
        rd_kafka_poll(rk, 20);
    return NULL;
}

/* ------------------------------------------------------------- HTTP */

struct http {
    char host[256], port[16];
    int fd;
    char *buf;
    size_t cap;
    unsigned long long requests, reconnects;
    int64_t rtt_sum;            /* ns, over requests */
    int64_t rtt_max;
};

static int http_connect(struct http *h)
{
    struct addrinfo hints, *res = NULL, *ai;
    int one = 1, rc;

    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(h->host, h->port, &hints, &res)) != 0)
        return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            h->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return h->fd >= 0 ? 0 : -1;
}

static int http_init(struct http *h, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    size_t hn;

    memset(h, 0, sizeof *h);
    h->fd = -1;
    if (!colon || colon == addr || (hn = (size_t)(colon - addr)) >= sizeof h->host ||
        strlen(colon + 1) >= sizeof h->port)
        return -1;
    memcpy(h->host, addr, hn);
    h->host[hn] = '\0';
    snprintf(h->port, sizeof h->port, "%s", colon + 1);
    h->cap = HTTP_BUF_MIN;
    h->buf = malloc(h->cap);
    return h->buf ? 0 : -1;
}

static void http_free(struct http *h)
{
    if (h->fd >= 0)
        close(h->fd);
    free(h->buf);
}

/* Finds header name (case-insensitive) in the head [0, hlen); its value
 * into val. */
static int header(const char *head, size_t hlen, const char *name, char *val,
                  size_t vcap)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + hlen;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t n;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            n = (size_t)(eol - v);
            while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == ' '))
                n--;
            if (n >= vcap)
                n = vcap - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* One request/response exchange on the open connection. Returns the
 * status code, or -1 if the connection failed (caller reconnects).
 * The body is at *body, *blen bytes (valid until the next call). */
static int http_once(struct http *h, const char *path, const char **body,
                     size_t *blen)
{
    char req[512], val[64];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                     path, h->host);
    size_t off = 0, hlen = 0, need = 0;
    int status = -1, chunked = 0, close_after = 0;
    int64_t t0 = now_ns(), rtt;

    if (h->fd < 0 || n <= 0 || (size_t)n >= sizeof req)
        return -1;
    if (send(h->fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    for (;;) {
        ssize_t got;
        if (off + 1 >= h->cap) {
            char *nb;
            if (h->cap >= HTTP_BUF_MAX)
                return -1;
            nb = realloc(h->buf, h->cap * 2);
            if (!nb)
                return -1;
            h->buf = nb;
            h->cap *= 2;
        }
        got = recv(h->fd, h->buf + off, h->cap - off - 1, 0);
        if (got <= 0) {
            if (got < 0 && errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)got;
        h->buf[off] = '\0';
        if (!hlen) {
            char *e = strstr(h->buf, "\r\n\r\n");
            if (!e)
                continue;
            hlen = (size_t)(e - h->buf) + 4;
            if (strncmp(h->buf, "HTTP/1.", 7) != 0 || hlen < 12)
                return -1;
            status = atoi(h->buf + 9);
            if (header(h->buf, hlen, "Transfer-Encoding", val, sizeof val) &&
                strcasecmp(val, "chunked") == 0)
                chunked = 1;
            else if (header(h->buf, hlen, "Content-Length", val, sizeof val))
                need = strtoull(val, NULL, 10);
            else
                return -1;      /* body until close: not expected */
            if (header(h->buf, hlen, "Connection", val, sizeof val) &&
                strcasecmp(val, "close") == 0)
                close_after = 1;
        }
        if (!chunked && off >= hlen + need)
            break;
        if (chunked && off >= hlen + 5 && strstr(h->buf + hlen, "0\r\n\r\n"))
            break;          /* good enough for small bodies; body not decoded */
    }
    rtt = now_ns() - t0;
    h->requests++;
    h->rtt_sum += rtt;
    if (rtt > h->rtt_max)
        h->rtt_max = rtt;
    *body = h->buf + hlen;
    *blen = chunked ? off - hlen : need;
    if (close_after) {
        close(h->fd);
        h->fd = -1;
    }
    return status;
}

/* GET path, reconnecting (up to tries times) when the connection fails. */
static int http_get(struct http *h, const char *path, const char **body,
                    size_t *blen, int tries)
{
    int i, st;

    for (i = 0; i < tries; i++) {
        if (h->fd < 0) {
            if (http_connect(h) != 0) {
                sleep_ns(10000000);
                continue;
            }
            h->reconnects++;
        }
        st = http_once(h, path, body, blen);
        if (st >= 0)
            return st;
        close(h->fd);
        h->fd = -1;
    }
    return -1;
}

/* ------------------------------------------------------------- metrics */

/* Sum of walletstream_events_total{outcome=...} in a /metrics body; the
 * three outcomes and the batch histogram's sum/count into out. */
struct metrics {
    double applied, duplicate, rejected, batches, batch_events, commit_s;
    int found;
};

static void parse_metrics(const char *b, size_t n, struct metrics *m)
{
    const char *p = b, *end = b + n;

    memset(m, 0, sizeof *m);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        char line[256];
        size_t ln;
        double v;
        const char *sp;

        if (!eol)
            eol = end;
        ln = (size_t)(eol - p);
        if (ln < sizeof line && *p != '#') {
            memcpy(line, p, ln);
            line[ln] = '\0';
            sp = strrchr(line, ' ');
            if (sp) {
                v = strtod(sp + 1, NULL);
                if (strncmp(line, "walletstream_events_total{outcome=\"applied\"}", 44) == 0)
                    m->applied = v, m->found++;
                else if (strncmp(line, "walletstream_events_total{outcome=\"duplicate\"}", 46) == 0)
                    m->duplicate = v, m->found++;
                else if (strncmp(line, "walletstream_events_total{outcome=\"rejected\"}", 45) == 0)
                    m->rejected = v, m->found++;
                else if (strncmp(line, "walletstream_batch_events_sum ", 30) == 0)
                    m->batch_events = v;
                else if (strncmp(line, "walletstream_batch_events_count ", 32) == 0)
                    m->batches = v;
                else if (strncmp(line, "walletstream_batch_commit_seconds_sum ", 38) == 0)
                    m->commit_s = v;
            }
        }
        p = eol + 1;
    }
}

/* ------------------------------------------------------------- poller */

struct poller_stats {
    unsigned long long answered, unanswered, max_pending;
    int64_t gap_sum;            /* answered probes: 200 minus the request
                                 * before it (the measurement's uncertainty) */
    int64_t gap_max;
    int error;
};

/* One /metrics sample a second while probing: how far the service got. */
struct sample {
    double t;                   /* s since the first event */
    double events, batches, batch_events, commit_s;
};

static struct http poll_http;
static struct poller_stats pstats;
static struct sample *samples;
static size_t nsamples, samples_cap;

static void take_sample(int64_t t)
{
    struct metrics m;
    const char *body;
    size_t blen;

    if (http_get(&poll_http, "/metrics", &body, &blen, 3) != 200)
        return;
    parse_metrics(body, blen, &m);
    if (nsamples == samples_cap) {
        size_t cap = samples_cap ? samples_cap * 2 : 64;
        struct sample *ns = realloc(samples, cap * sizeof *ns);
        if (!ns)
            return;
        samples = ns;
        samples_cap = cap;
    }
    samples[nsamples].t = (double)(t - t_start) / 1e9;
    samples[nsamples].events = m.applied + m.duplicate + m.rejected;
    samples[nsamples].batches = m.batches;
    samples[nsamples].batch_events = m.batch_events;
    samples[nsamples].commit_s = m.commit_s;
    nsamples++;
}

/* Asks GET /balance/<probe> for every pending probe that is due; a probe
 * is due again after max(POLL_US, POLL_REL x its age), so that a backlog
 * of old probes (seconds of latency) does not turn the poller into a
 * busy loop that takes the CPU from the service it measures. */
static void *poller_thread(void *arg)
{
    unsigned long long *pending = NULL, npending = 0, next = 0, i, j;
    int64_t interval = opt.poll_us * 1000, last_sent = 0, next_sample;
    char path[ID_MAX + 16];

    (void)arg;
    pending = malloc((probes_cap ? probes_cap : 1) * sizeof *pending);
    if (!pending) {
        pstats.error = 1;
        return NULL;
    }
    take_sample(now_ns());
    next_sample = t_start + 1000000000;
    for (;;) {
        unsigned long long sent = atomic_load(&probes_sent);
        int64_t t0 = now_ns(), wake = t0 + interval, now;

        if (t0 >= next_sample && t_start) {
            take_sample(t0);
            while (next_sample <= t0)
                next_sample += 1000000000;
        }
        while (next < sent) {
            probes[next].t_next = 0;
            pending[npending++] = next;
            last_sent = probes[next].t_send;
            next++;
        }
        if (npending > pstats.max_pending)
            pstats.max_pending = npending;
        if (npending == 0) {
            if (atomic_load(&producing_done) || atomic_load(&poller_stop))
                break;
            sleep_ns(interval / 2);
            continue;
        }
        if (atomic_load(&poller_stop) ||
            (atomic_load(&producing_done) &&
             t0 - last_sent > (int64_t)(opt.wait_s * 1e9))) {
            pstats.unanswered = npending;
            break;
        }
        for (i = 0, j = 0; i < npending; i++) {
            struct probe *pr = &probes[pending[i]];
            const char *body;
            size_t blen;
            int64_t t_req, age, again;
            int st;

            now = now_ns();
            if (pr->t_next > now) {
                if (pr->t_next < wake)
                    wake = pr->t_next;
                pending[j++] = pending[i];
                continue;
            }
            snprintf(path, sizeof path, "/balance/%s", pr->wallet);
            t_req = now;
            st = http_get(&poll_http, path, &body, &blen, 50);
            pr->polls++;
            now = now_ns();
            if (st == 200) {
                int64_t gap = now - (pr->t_prev_req ? pr->t_prev_req : pr->t_send);
                pr->t_seen = now;
                pstats.answered++;
                pstats.gap_sum += gap;
                if (gap > pstats.gap_max)
                    pstats.gap_max = gap;
                continue;
            }
            if (st != 404) {
                fprintf(stderr, "loadgen: GET %s answered %d\n", path, st);
                if (st < 0) {
                    pstats.error = 1;
                    atomic_store(&poller_stop, 1);
                }
            }
            pr->t_prev_req = t_req;
            age = now - pr->t_send;
            again = (int64_t)((double)age * opt.poll_rel);
            if (again < interval)
                again = interval;
            if (again < (int64_t)npending * POLL_SHARE_NS)
                again = (int64_t)npending * POLL_SHARE_NS;
            pr->t_next = t_req + again;
            if (pr->t_next < wake)
                wake = pr->t_next;
            pending[j++] = pending[i];
        }
        npending = j;
        now = now_ns();
        if (wake > next_sample)
            wake = next_sample;
        if (wake > now)
            sleep_ns(wake - now);
    }
    take_sample(now_ns());
    free(pending);
    return NULL;
}

/* ------------------------------------------------------------- stats */

/* No libm: the build line links only librdkafka and pthread. */
static unsigned long long ceil_pos(double x)
{
    unsigned long long k = (unsigned long long)x;

    return (double)k < x ? k + 1 : k;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double p)
{
    size_t k;

    if (n == 0)
        return NAN;
    k = (size_t)ceil_pos(p / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

struct summary {
    size_t n;
    double p50, p90, p99, p999, max, min, mean;
};

static struct summary summarize(double *v, size_t n)
{
    struct summary s;
    size_t i;
    double sum = 0;

    memset(&s, 0, sizeof s);
    qsort(v, n, sizeof *v, cmp_double);
    s.n = n;
    for (i = 0; i < n; i++)
        sum += v[i];
    s.mean = n ? sum / (double)n : NAN;
    s.p50 = pct(v, n, 50);
    s.p90 = pct(v, n, 90);
    s.p99 = pct(v, n, 99);
    s.p999 = pct(v, n, 99.9);
    s.max = n ? v[n - 1] : NAN;
    s.min = n ? v[0] : NAN;
    return s;
}

static void print_summary(const char *label, const struct summary *s)
{
    printf("  %-22s p50 %8.3f  p90 %8.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms  (n=%zu)\n",
           label, s->p50, s->p90, s->p99, s->p999, s->max, s->n);
}

static void json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.4f", v);
}

static void json_summary(FILE *f, const char *name, const struct summary *s)
{
    fprintf(f, "    \"%s\": {\"n\": %zu, \"p50\": ", name, s->n);
    json_num(f, s->p50);
    fputs(", \"p90\": ", f);
    json_num(f, s->p90);
    fputs(", \"p99\": ", f);
    json_num(f, s->p99);
    fputs(", \"p99_9\": ", f);
    json_num(f, s->p999);
    fputs(", \"max\": ", f);
    json_num(f, s->max);
    fputs(", \"min\": ", f);
    json_num(f, s->min);
    fputs(", \"mean\": ", f);
    json_num(f, s->mean);
    fputs("}", f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int wait_mode(void)
{
    struct http h;
    struct metrics m, m0;
    const char *body;
    size_t blen;
    int64_t interval = (opt.poll_us > 0 ? opt.poll_us : 10000) * 1000L;
    double start = opt.start_epoch >= 0 ? opt.start_epoch : real_s();
    double first = -1, done = -1, total;
    int st, ok = 0;
    FILE *f;

    memset(&m, 0, sizeof m);
    memset(&m0, 0, sizeof m0);
    if (http_init(&h, opt.api) != 0) {
        fprintf(stderr, "loadgen: bad address %s\n", opt.api);
        return 2;
    }
    for (;;) {
        int64_t t0 = now_ns();
        double now;

        if (interrupted)
            break;
        st = http_get(&h, "/metrics", &body, &blen, 1);
        now = real_s();
        if (now - start > opt.wait_s)
            break;
        if (st == 200) {
            parse_metrics(body, blen, &m);
            if (first < 0) {
                first = now;
                m0 = m;
            }
            total = m.applied + m.duplicate + m.rejected;
            if (m.found == 3 && total >= (double)opt.wait_total) {
                done = now;
                ok = 1;
                break;
            }
        }
        sleep_ns(interval - (now_ns() - t0));
    }
    total = m.applied + m.duplicate + m.rejected;
    printf("%s: %.0f events (%.0f applied, %.0f duplicate, %.0f rejected) "
           "%.3f s after start; first answer after %.3f s; %.0f batches, "
           "%.0f events per batch, %.1f ms per commit\n",
           ok ? "done" : "TIMEOUT", total, m.applied, m.duplicate, m.rejected,
           ok ? done - start : -1.0, first >= 0 ? first - start : -1.0,
           m.batches, m.batches > 0 ? m.batch_events / m.batches : 0.0,
           m.batches > 0 ? 1000.0 * m.commit_s / m.batches : 0.0);
    if (opt.out && (f = fopen(opt.out, "w")) != NULL) {
        fprintf(f, "{\"mode\": \"wait\", \"ok\": %s, \"target\": %llu, "
                   "\"elapsed_s\": %.4f, \"first_answer_s\": %.4f, "
                   "\"applied\": %.0f, \"duplicate\": %.0f, \"rejected\": %.0f, "
                   "\"batches\": %.0f, \"batch_events_sum\": %.0f, "
                   "\"batch_commit_seconds_sum\": %.6f, \"first_answer_total\": %.0f}\n",
                ok ? "true" : "false", opt.wait_total, ok ? done - start : -1.0,
                first >= 0 ? first - start : -1.0, m.applied, m.duplicate,
                m.rejected, m.batches, m.batch_events, m.commit_s,
                m0.applied + m0.duplicate + m0.rejected);
        fclose(f);
    }
    http_free(&h);
    return ok ? 0 : 1;
}

static int ready_mode(void)
{
    struct http h;
    const char *body;
    size_t blen;
    int64_t interval = (opt.poll_us > 0 ? opt.poll_us : 1000) * 1000L;
    double start = opt.start_epoch >= 0 ? opt.start_epoch : real_s();
    double first = -1, done = -1;
    unsigned long long requests = 0, refused = 0;
    int st, first_status = 0, ok = 0;
    char first_body[256] = "";
    FILE *f;

    if (http_init(&h, opt.api) != 0) {
        fprintf(stderr, "loadgen: bad address %s\n", opt.api);
        return 2;
    }
    for (;;) {
        int64_t t0 = now_ns();
        double now;

        if (interrupted)
            break;
        st = -1;
        if (h.fd >= 0 || http_connect(&h) == 0) {
            st = http_once(&h, opt.ready_path, &body, &blen);
            requests++;
            if (st < 0 && h.fd >= 0) {
                close(h.fd);
                h.fd = -1;
            }
        } else {
            refused++;
        }
        now = real_s();
        if (st >= 0 && first < 0) {
            size_t n = blen < sizeof first_body - 1 ? blen : sizeof first_body - 1;
            first = now;
            first_status = st;
            memcpy(first_body, body, n);
            first_body[n] = '\0';
        }
        if (st == 200) {
            done = now;
            ok = 1;
            break;
        }
        if (now - start > opt.wait_s)
            break;
        sleep_ns(interval - (now_ns() - t0));
    }
    printf("%s: GET %s answered 200 %.4f s after start; first answer (%d) after "
           "%.4f s; %llu requests, %llu refused connections\n",
           ok ? "ready" : "TIMEOUT", opt.ready_path, ok ? done - start : -1.0,
           first_status, first >= 0 ? first - start : -1.0, requests, refused);
    if (opt.out && (f = fopen(opt.out, "w")) != NULL) {
        fprintf(f, "{\"mode\": \"ready\", \"ok\": %s, \"path\": ", ok ? "true" : "false");
        json_str(f, opt.ready_path);
        fprintf(f, ", \"elapsed_s\": %.4f, \"first_answer_s\": %.4f, "
                   "\"first_status\": %d, \"requests\": %llu, \"refused\": %llu, "
                   "\"poll_us\": %lld, \"first_body\": ",
                ok ? done - start : -1.0, first >= 0 ? first - start : -1.0,
                first_status, requests, refused, (long long)(interval / 1000));
        json_str(f, first_body);
        fputs("}\n", f);
        fclose(f);
    }
    http_free(&h);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    char errstr[512], buf[RECORD_MAX], key[ID_MAX], linger[16];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    pthread_t drt, pt;
    unsigned long long total, i, nprobe = 0, qfull = 0;
    int64_t t_end_send, t_end, behind_max = 0, interval_ns = 0;
    int c, poller_started = 0, rc = 0;
    struct sigaction sa;
    FILE *dump = NULL;

    while ((c = getopt(argc, argv, "b:t:n:r:d:w:p:s:mx:k:a:i:R:u:T:X:o:D:qW:S:Y:")) != -1) {
        switch (c) {
        case 'b': opt.brokers = optarg; break;
        case 't': opt.topic = optarg; break;
        case 'n': opt.count = strtoull(optarg, NULL, 10); break;
        case 'r': opt.rate = strtod(optarg, NULL); break;
        case 'd': opt.duration = strtod(optarg, NULL); break;
        case 'w': opt.wallets = strtoull(optarg, NULL, 10); break;
        case 'p': opt.products = strtoull(optarg, NULL, 10); break;
        case 's': opt.seed = strtoull(optarg, NULL, 10); break;
        case 'm': opt.mixed = 1; break;
        case 'x': opt.prefix = optarg; break;
        case 'k': opt.every = strtoull(optarg, NULL, 10); break;
        case 'a': opt.api = optarg; break;
        case 'i': opt.poll_us = strtol(optarg, NULL, 10); break;
        case 'R': opt.poll_rel = strtod(optarg, NULL) / 100.0; break;
        case 'u': opt.warmup = strtod(optarg, NULL); break;
        case 'T': opt.wait_s = strtod(optarg, NULL); break;
        case 'X':
            if (opt.nprops >= MAX_PROPS || !strchr(optarg, '='))
                usage();
            opt.props[opt.nprops++] = optarg;
            break;
        case 'o': opt.out = optarg; break;
        case 'D': opt.dump = optarg; break;
        case 'q': opt.quiet = 1; break;
        case 'W': opt.wait_total = strtoull(optarg, NULL, 10); break;
        case 'S': opt.start_epoch = strtod(optarg, NULL); break;
        case 'Y': opt.ready_path = optarg; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (opt.ready_path) {
        if (!opt.api)
            usage();
        return ready_mode();
    }
    if (opt.wait_total) {
        if (!opt.api)
            usage();
        return wait_mode();
    }
    if (!opt.brokers || opt.wallets == 0 || opt.products == 0 ||
        (opt.count == 0) == (opt.rate <= 0) ||
        (opt.rate > 0 && opt.duration <= 0) || (opt.every && !opt.api))
        usage();
    if (opt.poll_us < 0)
        opt.poll_us = 200;
    total = opt.count ? opt.count : (unsigned long long)(opt.rate * opt.duration + 0.5);
    if (opt.rate > 0)
        interval_ns = (int64_t)(1e9 / opt.rate);
    rng = opt.seed * 0x9E3779B97F4A7C15ULL + 1;

    if (opt.every) {
        probes_cap = total / opt.every + 1;
        probes = calloc(probes_cap, sizeof *probes);
        if (!probes || http_init(&poll_http, opt.api) != 0) {
            fprintf(stderr, "loadgen: out of memory or bad address %s\n", opt.api);
            return 2;
        }
        {
            const char *b;
            size_t bl;
            int st = http_get(&poll_http, "/readyz", &b, &bl, 100);
            if (st < 0) {
                fprintf(stderr, "loadgen: API at %s does not answer\n", opt.api);
                return 1;
            }
            if (st != 200)
                fprintf(stderr, "loadgen: warning: %s/readyz answered %d\n", opt.api, st);
        }
    }

    conf = rd_kafka_conf_new();
    snprintf(linger, sizeof linger, "5");
    if (rd_kafka_conf_set(conf, "bootstrap.servers", opt.brokers, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", linger, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "client.id", "walletstream-loadgen", errstr, sizeof errstr)) {
        fprintf(stderr, "loadgen: %s\n", errstr);
        return 2;
    }
    for (c = 0; c < opt.nprops; c++) {
        char k[256];
        const char *eq = strchr(opt.props[c], '=');
        size_t kn = (size_t)(eq - opt.props[c]);
        if (kn >= sizeof k)
            usage();
        memcpy(k, opt.props[c], kn);
        k[kn] = '\0';
        if (rd_kafka_conf_set(conf, k, eq + 1, errstr, sizeof errstr)) {
            fprintf(stderr, "loadgen: -X %s: %s\n", k, errstr);
            return 2;
        }
    }
    {
        size_t ln = sizeof linger;
        rd_kafka_conf_get(conf, "linger.ms", linger, &ln);
    }
    if (opt.dump && !(dump = fopen(opt.dump, "w"))) {
        fprintf(stderr, "loadgen: cannot write %s\n", opt.dump);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "loadgen: cannot create a producer: %s\n", errstr);
        return 1;
    }
    t_start = now_ns();
    if (pthread_create(&drt, NULL, dr_thread, rk) != 0)
        return 1;
    if (opt.every) {
        if (pthread_create(&pt, NULL, poller_thread, NULL) != 0)
            return 1;
        poller_started = 1;
    }

    if (!opt.quiet)
        fprintf(stderr, "loadgen: %llu events to %s at %s, %s%s\n", total,
                opt.topic, opt.brokers,
                opt.count ? "flat out" : "paced",
                opt.every ? ", with probes" : "");
    for (i = 0; i < total && !interrupted && !atomic_load(&poller_stop); i++) {
        int len, klen;
        struct probe *pr = NULL;
        rd_kafka_resp_err_t err;

        if (interval_ns) {
            int64_t due = t_start + (int64_t)i * interval_ns, now = now_ns();
            if (now < due) {
                /* ahead: sleep in short steps so that bursts stay short */
                sleep_ns(due - now);
                now = now_ns();
            }
            if (now - due > behind_max)
                behind_max = now - due;
        }
        if (opt.every && i % opt.every == opt.every - 1) {
            pr = &probes[nprobe];
            klen = snprintf(key, sizeof key, "probe-%s%llu", opt.prefix, nprobe);
            memcpy(pr->wallet, key, (size_t)klen + 1);
            /* consume the generator's randoms so the other events stay
             * those of gen_events */
            next_rand();
            next_rand();
            len = snprintf(buf, sizeof buf,
                           "{\"transaction_id\":\"%sprobe%llu\",\"wallet_id\":\"%s\","
                           "\"product_id\":\"p0\",\"type\":\"credit\",\"amount\":1.00,"
                           "\"currency\":\"USD\",\"timestamp\":\"2024-01-01T00:00:00Z\"}",
                           opt.prefix, nprobe, key);
        } else {
            len = make_event(i, buf, sizeof buf, key, sizeof key, &klen);
        }
        for (;;) {
            if (pr)
                pr->t_send = now_ns();
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(opt.topic),
                                    RD_KAFKA_V_KEY(key, (size_t)klen),
                                    RD_KAFKA_V_VALUE(buf, (size_t)len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_OPAQUE(pr), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            qfull++;
            sleep_ns(QUEUE_FULL_SLEEP_NS);
        }
        if (err) {
            fprintf(stderr, "loadgen: produce: %s\n", rd_kafka_err2str(err));
            rc = 1;
            break;
        }
        if (pr) {
            nprobe++;
            atomic_store(&probes_sent, nprobe);
        }
        if (dump) {
            fwrite(buf, 1, (size_t)len, dump);
            fputc('\n', dump);
        }
    }
    t_end_send = now_ns();
    if (dump && fclose(dump) != 0) {
        fprintf(stderr, "loadgen: cannot write %s\n", opt.dump);
        rc = 1;
    }
    if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "loadgen: %d records undelivered after 120 s\n",
                rd_kafka_outq_len(rk));
        rc = 1;
    }
    t_end = now_ns();
    atomic_store(&producing_done, 1);
    if (poller_started)
        pthread_join(pt, NULL);
    atomic_store(&poller_stop, 1);
    pthread_join(drt, NULL);
    rd_kafka_destroy(rk);

    {
        unsigned long long sent = i, k, nwarm = 0, neg = 0, lost_dr = 0;
        double send_s = (double)(t_end_send - t_start) / 1e9;
        double all_s = (double)(t_end - t_start) / 1e9;
        double *a = NULL, *b = NULL, *d = NULL;
        size_t na = 0, nb = 0, nd = 0;
        struct summary sa_, sb_, sd_;
        int64_t warm_ns = (int64_t)(opt.warmup * 1e9);
        double gap_mean_ms = pstats.answered
                                 ? (double)pstats.gap_sum / 1e6 / (double)pstats.answered
                                 : 0;
        unsigned long long nsec = ceil_pos(send_s) + 1, sidx;
        /* per-second series of the latency from send, by the second the
         * probe was sent in (warm-up included) */
        struct summary *sec = calloc(nsec, sizeof *sec);
        double *tmp = malloc((nprobe + 1) * sizeof *tmp);
        size_t ntmp = 0;
        unsigned long long cur = 0;
        FILE *f;

        a = malloc((nprobe + 1) * sizeof *a);
        b = malloc((nprobe + 1) * sizeof *b);
        d = malloc((nprobe + 1) * sizeof *d);
        if (!a || !b || !d || !sec || !tmp)
            return 1;
        for (k = 0; k < nprobe; k++) {
            struct probe *pr = &probes[k];
            int64_t tdr = atomic_load(&pr->t_dr);
            if (tdr > 0)
                d[nd++] = (double)(tdr - pr->t_send) / 1e6;
            else
                lost_dr++;
            if (!pr->t_seen)
                continue;
            sidx = (unsigned long long)((pr->t_send - t_start) / 1000000000);
            if (sidx != cur) {
                if (cur < nsec && ntmp)
                    sec[cur] = summarize(tmp, ntmp);
                ntmp = 0;
                cur = sidx;
            }
            tmp[ntmp++] = (double)(pr->t_seen - pr->t_send) / 1e6;
            if (pr->t_send - t_start < warm_ns) {
                nwarm++;
                continue;
            }
            a[na++] = (double)(pr->t_seen - pr->t_send) / 1e6;
            if (tdr > 0) {
                b[nb++] = (double)(pr->t_seen - tdr) / 1e6;
                if (pr->t_seen < tdr)
                    neg++;
            }
        }
        if (cur < nsec && ntmp)
            sec[cur] = summarize(tmp, ntmp);
        sa_ = summarize(a, na);
        sb_ = summarize(b, nb);
        sd_ = summarize(d, nd);

        printf("produced %llu of %llu events in %.3f s (%.0f/s%s), all delivered after %.3f s "
               "(%.0f/s); delivered %llu, failed %llu%s%s; queue-full waits %llu; linger.ms %s\n",
               sent, total, send_s, send_s > 0 ? (double)sent / send_s : 0,
               opt.rate > 0 ? "" : ", flat out", all_s,
               all_s > 0 ? (double)atomic_load(&delivered) / all_s : 0,
               atomic_load(&delivered), atomic_load(&failed),
               have_error ? ": " : "", have_error ? first_error : "", qfull, linger);
        if (opt.rate > 0)
            printf("  target %.0f events/s for %.1f s; at most %.3f ms behind schedule\n",
                   opt.rate, opt.duration, (double)behind_max / 1e6);
        if (opt.every) {
            printf("  probes: every %llu-th event, %llu sent, %llu answered, %llu unanswered "
                   "after %.0f s, %llu warm-up (first %.1f s) left out\n",
                   opt.every, nprobe, pstats.answered, nprobe - pstats.answered,
                   opt.wait_s, nwarm, opt.warmup);
            print_summary("from send:", &sa_);
            print_summary("from delivery report:", &sb_);
            print_summary("send to delivery:", &sd_);
            printf("  http: %llu requests (%.0f/s), rtt mean %.1f us max %.1f ms, %llu "
                   "(re)connects; 200 came %.3f ms (mean; max %.3f) after the last 404 "
                   "was asked (poll every max(%ld us, %.1f%% of age, pending x 50 us)); at most %llu pending%s\n",
                   poll_http.requests, all_s > 0 ? (double)poll_http.requests / all_s : 0,
                   poll_http.requests ? (double)poll_http.rtt_sum / 1e3 / (double)poll_http.requests : 0,
                   (double)poll_http.rtt_max / 1e6, poll_http.reconnects, gap_mean_ms,
                   (double)pstats.gap_max / 1e6, opt.poll_us, opt.poll_rel * 100,
                   pstats.max_pending,
                   neg ? "; some probes answered before their delivery report" : "");
            if (nsamples >= 2) {
                struct sample *s0 = &samples[0], *s1 = &samples[nsamples - 1];
                double db = s1->batches - s0->batches, de = s1->batch_events - s0->batch_events;
                printf("  service: %.0f events processed over %.1f s (%.0f/s), %.0f batches, "
                       "%.1f events per batch, %.3f ms per commit (with dead-letter flush)\n",
                       s1->events - s0->events, s1->t - s0->t,
                       s1->t > s0->t ? (s1->events - s0->events) / (s1->t - s0->t) : 0, db,
                       db > 0 ? de / db : 0, db > 0 ? 1000 * (s1->commit_s - s0->commit_s) / db : 0);
            }
        }
        if (nprobe > pstats.answered || atomic_load(&failed) || sent < total ||
            pstats.error)
            rc = 1;

        if (opt.out && (f = fopen(opt.out, "w")) != NULL) {
            fprintf(f, "{\n  \"mode\": \"%s\",\n  \"brokers\": ", opt.rate > 0 ? "rate" : "count");
            json_str(f, opt.brokers);
            fprintf(f, ", \"topic\": ");
            json_str(f, opt.topic);
            fprintf(f, ", \"api\": ");
            json_str(f, opt.api ? opt.api : "");
            fprintf(f, ",\n  \"events\": %llu, \"sent\": %llu, \"delivered\": %llu, \"failed\": %llu,\n",
                    total, sent, atomic_load(&delivered), atomic_load(&failed));
            fprintf(f, "  \"wallets\": %llu, \"products\": %llu, \"seed\": %llu, \"mixed\": %s, "
                       "\"prefix\": ",
                    opt.wallets, opt.products, opt.seed, opt.mixed ? "true" : "false");
            json_str(f, opt.prefix);
            fprintf(f, ", \"linger_ms\": %s,\n", linger);
            fprintf(f, "  \"target_rate\": %.1f, \"duration_s\": %.1f, \"send_s\": %.4f, "
                       "\"send_rate\": %.1f, \"all_delivered_s\": %.4f, \"delivered_rate\": %.1f,\n",
                    opt.rate, opt.duration, send_s, send_s > 0 ? (double)sent / send_s : 0,
                    all_s, all_s > 0 ? (double)atomic_load(&delivered) / all_s : 0);
            fprintf(f, "  \"behind_schedule_max_ms\": %.3f, \"queue_full_waits\": %llu,\n",
                    (double)behind_max / 1e6, qfull);
            fprintf(f, "  \"probes\": {\"every\": %llu, \"sent\": %llu, \"answered\": %llu, "
                       "\"unanswered\": %llu, \"no_delivery_report\": %llu, \"warmup_s\": %.1f, "
                       "\"warmup_left_out\": %llu, \"answered_before_delivery_report\": %llu,\n",
                    opt.every, nprobe, pstats.answered, nprobe - pstats.answered, lost_dr,
                    opt.warmup, nwarm, neg);
            fprintf(f, "    \"unit\": \"ms\",\n");
            json_summary(f, "from_send", &sa_);
            fputs(",\n", f);
            json_summary(f, "from_delivery_report", &sb_);
            fputs(",\n", f);
            json_summary(f, "send_to_delivery_report", &sd_);
            fprintf(f, ",\n    \"per_second_from_send\": [");
            for (k = 0; k < nsec; k++) {
                fprintf(f, "%s\n      {\"s\": %llu, \"n\": %zu, \"p50\": ", k ? "," : "",
                        k, sec[k].n);
                json_num(f, sec[k].n ? sec[k].p50 : NAN);
                fputs(", \"p99\": ", f);
                json_num(f, sec[k].n ? sec[k].p99 : NAN);
                fputs(", \"max\": ", f);
                json_num(f, sec[k].n ? sec[k].max : NAN);
                fputs("}", f);
            }
            fprintf(f, "]},\n  \"service_samples\": [");
            for (k = 0; k < nsamples; k++)
                fprintf(f, "%s\n    {\"t\": %.3f, \"events\": %.0f, \"batches\": %.0f, "
                           "\"batch_events\": %.0f, \"commit_s\": %.6f}",
                        k ? "," : "", samples[k].t, samples[k].events, samples[k].batches,
                        samples[k].batch_events, samples[k].commit_s);
            fprintf(f, "],\n");
            fprintf(f, "  \"http\": {\"requests\": %llu, \"rtt_mean_us\": %.2f, \"rtt_max_ms\": %.3f, "
                       "\"connects\": %llu, \"poll_min_us\": %ld, \"poll_rel\": %.4f, "
                       "\"gap_mean_ms\": %.4f, \"gap_max_ms\": %.4f, \"max_pending\": %llu}\n}\n",
                    poll_http.requests,
                    poll_http.requests ? (double)poll_http.rtt_sum / 1e3 / (double)poll_http.requests : 0,
                    (double)poll_http.rtt_max / 1e6, poll_http.reconnects, opt.poll_us,
                    opt.poll_rel, gap_mean_ms, (double)pstats.gap_max / 1e6, pstats.max_pending);
            fclose(f);
        }
        free(a);
        free(b);
        free(d);
        free(sec);
        free(tmp);
        free(samples);
    }
    if (opt.every)
        http_free(&poll_http);
    free(probes);
    return rc;
}
