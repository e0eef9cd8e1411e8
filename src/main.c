/*
 * main.c - the walletstream command line.
 *
 *   walletstream [run] [OPTIONS]             the stream processor (default)
 *   walletstream serve  [OPTIONS]            the HTTP API, read-only
 *   walletstream replay [OPTIONS] FILE...    JSON lines into a data directory
 *   walletstream broker [OPTIONS]            the embedded Kafka broker alone
 *   walletstream produce [OPTIONS] [FILE...] JSON lines to the topic
 *   walletstream export [OPTIONS]            the figures as table files
 *   walletstream help [COMMAND], --help, --version
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "broker_embedded.h"
#include "config.h"
#include "changelog.h"
#include "export.h"
#include "producer.h"
#include "http.h"
#include "kafka_source.h"
#include "log.h"
#include "members.h"
#include "metrics.h"
#include "peer.h"
#include "produce.h"
#include "repartition.h"
#include "replay.h"
#include "standby.h"
#include "store.h"
#include "topics.h"
#include "stream.h"
#include "ws.h"

#define EXIT_USAGE 2

struct command {
    const char *name;
    enum ws_cmd cmd;
    const char *synopsis;
    const char *summary;
    int (*main)(const ws_config *c, int npos, char **pos);
};

/* The number of cores this process may use (at least 1, at most the
 * shards a directory may have). */
static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > WS_SHARDS_MAX ? WS_SHARDS_MAX : (int)n;
}

/* Opens the data directory as its writer with --workers shards (0: its
 * own count, or the number of cores for a new directory), or exactly
 * `exact` shards when > 0 (a group's instance: one per partition). */
static int open_writer(const ws_config *c, int exact, ws_store **s,
                       char *err)
{
    int shards = exact > 0 ? exact
                 : c->workers ? (int)(c->workers > WS_SHARDS_MAX
                                          ? WS_SHARDS_MAX + 1 : c->workers)
                              : -cores();

    int e;

    if (c->history_days > WS_HISTORY_DAYS_MAX) {
        snprintf(err, WS_STORE_ERR_MAX, "--history-days is at most %d",
                 WS_HISTORY_DAYS_MAX);
        return WS_ERR_USAGE;
    }
    e = ws_store_open_shards(c->data_dir, WS_STORE_WRITE, c->max_state_size,
                             shards, s, err);
    if (e == WS_OK &&
        (e = ws_store_set_history(*s, strcmp(c->history, "off") == 0
                                          ? WS_HISTORY_OFF
                                          : (int)c->history_days)) != WS_OK) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot record the --history "
                 "setting in %s: %s", c->data_dir, ws_strerror(e));
        ws_store_close(*s);
        *s = NULL;
    }
    return e;
}

/* ------------------------------------------------------------- replay */

static int cmd_replay(const ws_config *c, int npos, char **pos)
{
    char err[WS_STORE_ERR_MAX], path[4200];
    ws_store *s;
    ws_replay_totals t;
    int e;

    if (npos == 0) {
        ws_log_fail("replay", "no input files (use - for standard input)");
        return EXIT_USAGE;
    }
    e = open_writer(c, 0, &s, err);
    if (e != WS_OK) {
        ws_log_fail("replay", "%s", err);
        return e == WS_ERR_USAGE ? EXIT_USAGE : 1;
    }
    snprintf(path, sizeof path, "%s/dead-letters.jsonl", c->data_dir);
    e = ws_replay_files(s, path, pos, npos, c->batch_max,
                        ws_config_given(c, "batch-linger") ? c->batch_linger_ms
                                                           : 0, &t);
    if (e == WS_OK && ws_store_sync(s) != WS_OK) {
        fprintf(stderr, "walletstream replay: cannot sync the state to "
                "disk\n");
        e = WS_ERR_IO;
    }
    ws_store_close(s);
    if (t.blank)
        ws_log(WS_LOG_INFO, "replay", "skipped %lld blank lines",
               (long long)t.blank);
    if (t.outcome[WS_REJECTED])
        ws_log(WS_LOG_INFO, "replay", "rejected lines are in %s", path);
    printf("replayed %lld records: %lld applied, %lld duplicate, "
           "%lld rejected\n",
           (long long)t.records, (long long)t.outcome[WS_APPLIED],
           (long long)t.outcome[WS_DUPLICATE],
           (long long)t.outcome[WS_REJECTED]);
    return e == WS_OK ? 0 : 1;
}

/* -------------------------------------------------------------- serve */

static unsigned clamp_uint(uint64_t v)
{
    return v > UINT_MAX ? UINT_MAX : (unsigned)v;
}

/* The HTTP API of run and serve, as the options say. */
static int start_http(const ws_config *c, const ws_api *api, ws_http **h,
                      char *err)
{
    ws_http_opts o;

    memset(&o, 0, sizeof o);
    o.listen = c->listen;
    o.threads = clamp_uint(c->http_threads);
    o.max_connections = clamp_uint(c->max_connections);
    o.max_per_ip = clamp_uint(c->max_connections_per_ip);
    o.timeout_s = clamp_uint(c->http_timeout);
    o.token_file = c->api_token_file;
    o.tls_cert = c->tls_cert;
    o.tls_key = c->tls_key;
    return ws_http_start(&o, api, h, err);
}

/* Blocks the termination signals in every thread, so that the main
 * thread alone takes them with sigwait(). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

static int cmd_serve(const ws_config *c, int npos, char **pos)
{
    char err[WS_STORE_ERR_MAX];
    ws_store *s;
    ws_http *h;
    ws_api api;
    sigset_t set;
    int sig, e;

    (void)pos;
    if (npos > 0) {
        ws_log_fail("serve", "unexpected argument \"%s\"", pos[0]);
        return EXIT_USAGE;
    }
    block_signals(&set);
    e = ws_store_open(c->data_dir, WS_STORE_READ, 0, &s, err);
    if (e != WS_OK) {
        ws_log_fail("serve", "%s", err);
        return 1;
    }
    memset(&api, 0, sizeof api);
    api.store = s;
    e = start_http(c, &api, &h, err);
    if (e != WS_OK) {
        ws_log_fail("serve", "%s", err);
        ws_store_close(s);
        return e == WS_ERR_USAGE ? EXIT_USAGE : 1;
    }
    ws_log(WS_LOG_INFO, "serve",
           "walletstream %s serving %s read-only: API on http://%s/ "
           "(port %u), dashboard at /", WS_VERSION,
           c->data_dir, c->listen, ws_http_port(h));
    sigwait(&set, &sig);
    ws_log(WS_LOG_INFO, "serve", "signal %d: stopping", sig);
    ws_http_stop(h);
    ws_store_close(s);
    return 0;
}

/* ---------------------------------------------------------------- run */

/* Set by SIGINT/SIGTERM; read by the stream loop. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int ready(void *arg, char *why, size_t cap)
{
    return ws_status_ready(arg, why, cap);
}

static void kafka_opts(const ws_config *c, const char *brokers,
                       ws_kafka_opts *k)
{
    k->brokers = brokers;
    k->topic = c->topic;
    k->group = c->group;
    k->props = c->props;
    k->nprops = c->nprops;
    k->recreated_from_start = c->recreated_topic &&
                              strcmp(c->recreated_topic, "read-from-start") == 0;
}

/* What run holds, made in order by cmd_run and its helpers and released
 * in reverse order by run_release. */
struct run {
    const ws_config *c;
    ws_store *store;
    ws_status *status;
    ws_http *http;
    ws_broker *broker;          /* the embedded one, or NULL */
    const char *brokers;        /* its address, or --brokers */
    ws_kafka_opts k, kc;        /* producer, consumer */
    char *cprops[WS_CONFIG_MAX_PROPS + 1], *pprops[WS_CONFIG_MAX_PROPS + 1];
    ws_source *source;
    ws_producer *producer;
    char dlq_topic[512];
    int changelog;              /* the changelog topics are written */
    /* --assignment group: the topics, partitions (= shards), this
     * instance's name and URL, the repartitioner. */
    int group;
    char by_wallet[600], state_topic[600];
    int partitions;
    int input_partitions;       /* of the input topic; <= 0: unknown */
    char instance[256], advertise[512], client_id[600];
    ws_repartition *repartition;
    ws_members *members;        /* who owns what, for the API */
    ws_peer *peer;
    ws_api_group peer_hooks;
    ws_standby *standby;        /* --standby-replicas > 0 */
};

/* Starts the embedded broker when asked (and publishes its address in
 * the data directory) or keeps --brokers, and tells the metrics which.
 * Returns 0 or an error with a sentence in err. */
static int run_broker(struct run *r, char *err)
{
    const ws_config *c = r->c;

    if (c->embedded_broker) {
        if (ws_broker_start(c->topic, (int)c->partitions, &r->broker, err) ||
            ws_broker_publish(r->broker, c->data_dir, err))
            return WS_ERR_IO;
        r->brokers = ws_broker_bootstrap(r->broker);
        printf("embedded test broker at %s (written to %s/kafka.bootstrap)\n"
               "%s\n", r->brokers, c->data_dir, WS_BROKER_LIMITS);
        fflush(stdout);
    }
    ws_metrics_broker(r->brokers, r->broker != NULL);
    return WS_OK;
}

/* The producer's and the consumer's options: the command line's, with
 * the embedded broker's needs first. */
static void run_kafka_opts(struct run *r)
{
    const ws_config *c = r->c;

    kafka_opts(c, r->brokers, &r->k);
    r->kc = r->k;
    if (r->broker) {
        /* The mock cluster answers a fetch only when fetch.wait.max.ms has
         * passed, even when records arrive meanwhile (a real broker
         * answers at once): keep the wait short so that records are
         * queryable within milliseconds. Its sockets also keep Nagle's
         * algorithm, so a response to the second of two pipelined produce
         * requests waits for the client's delayed ACK (measured: 45 ms
         * round trips, 40 ms per commit); one request in flight avoids
         * that. -X can still override both. */
        r->cprops[0] = (char *)"fetch.wait.max.ms=5";
        memcpy(r->cprops + 1, c->props,
               (size_t)c->nprops * sizeof r->cprops[0]);
        r->kc.props = r->cprops;
        r->kc.nprops = c->nprops + 1;
        r->pprops[0] = (char *)"max.in.flight.requests.per.connection=1";
        memcpy(r->pprops + 1, c->props,
               (size_t)c->nprops * sizeof r->pprops[0]);
        r->k.props = r->pprops;
        r->k.nprops = c->nprops + 1;
    }
}

/* Unless --changelog off, creates the changelog topics on a real broker,
 * waiting for Kafka meanwhile (/readyz says so), and sets r->changelog
 * when they can be written. Returns -1 to go on, or the exit code of run:
 * 0 when a signal stopped the wait, 1 when --changelog on and the topics
 * cannot be created. */
static int run_changelog_topics(struct run *r)
{
    const ws_config *c = r->c;
    char err[WS_STORE_ERR_MAX];
    int topics_ok = 1, e;

    if (strcmp(c->changelog, "off") == 0)
        return -1;
    if (r->broker) {
        ws_log(WS_LOG_INFO, "changelog", "the embedded broker keeps the "
               "changelog topics but does not compact them");
    } else {
        /* Nothing can be processed without the broker: wait for it,
         * then create the topics or learn that they cannot be. */
        snprintf(err, sizeof err, "connecting to Kafka at %s", r->brokers);
        ws_status_set(r->status, err);
        while ((e = ws_changelog_create_topics(
                    ws_producer_handle(r->producer), c->topic, err)) ==
                   WS_ERR_IO && !stop_requested) {
            char why[sizeof err + 300];

            snprintf(why, sizeof why, "connecting to Kafka at %s: %s",
                     r->brokers, err);
            ws_metrics_broker_up(0);
            ws_status_set(r->status, why);
        }
        if (stop_requested)
            return 0;
        if (e != WS_OK && strcmp(c->changelog, "on") == 0) {
            ws_log_fail("run", "changelog topics: %s", err);
            return 1;
        }
        if (e != WS_OK) {
            ws_log(WS_LOG_WARN, "changelog", "changelog off: %s", err);
            topics_ok = 0;
        }
    }
    r->changelog = topics_ok;
    return -1;
}

/* Opens the producer's connections to the topics it writes before the
 * first batch needs them. */
static void run_warm_topics(struct run *r)
{
    int i;

    ws_producer_warm(r->producer, r->dlq_topic, 2000);
    if (!r->changelog)
        return;
    for (i = 0; i < WS_CL_COUNT; i++) {
        char name[600];

        snprintf(name, sizeof name, "%s.%s", r->c->topic,
                 ws_changelog_suffixes[i]);
        ws_producer_warm(r->producer, name, 2000);
    }
}

/* The stream thread's loop until a signal or an error; run's exit code. */
static int run_stream(struct run *r)
{
    ws_stream_opts so;
    int rc;

    memset(&so, 0, sizeof so);
    so.store = r->store;
    so.source = r->source;
    so.producer = r->producer;
    so.producer_opts = &r->k;
    so.dlq_topic = r->dlq_topic;
    so.changelog = r->changelog;
    so.status = r->status;
    so.topic = r->group ? r->by_wallet : r->c->topic;
    so.in_topic = r->c->topic;
    so.group_mode = r->group;
    so.state_topic = r->state_topic;
    so.group = r->c->group;
    so.consumer_opts = &r->kc;
    so.standby = r->standby;
    so.brokers = r->brokers;
    so.batch_max = r->c->batch_max;
    so.batch_linger_ms = r->c->batch_linger_ms;
    so.ignore_stored = r->broker != NULL;
    so.stop = &stop_requested;
    rc = ws_stream_run(&so) == WS_OK ? 0 : 1;
    ws_log(WS_LOG_INFO, "run", "stopped");
    return rc;
}

/* ------------------------------------------------- --assignment group */

/* This instance's name in the group and the URL of its API (the other
 * instances forward to it). */
static void group_names(struct run *r)
{
    const ws_config *c = r->c;
    const char *colon = strrchr(c->listen, ':');
    const char *port = colon ? colon + 1 : "8000";
    char host[200];
    int all = colon && (colon == c->listen ||
                        strncmp(c->listen, "0.0.0.0:", 8) == 0 ||
                        strncmp(c->listen, "[::]:", 5) == 0);

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    if (c->instance_id && c->instance_id[0])
        snprintf(r->instance, sizeof r->instance, "%s", c->instance_id);
    else
        snprintf(r->instance, sizeof r->instance, "%s-%s", host, port);
    if (c->advertise && c->advertise[0])
        snprintf(r->advertise, sizeof r->advertise, "%s", c->advertise);
    else if (all || !colon)
        snprintf(r->advertise, sizeof r->advertise, "http://%s:%s", host,
                 port);
    else
        snprintf(r->advertise, sizeof r->advertise, "http://%s", c->listen);
    snprintf(r->client_id, sizeof r->client_id, "walletstream %s",
             r->advertise);
}

/* The input topic's partition count, 0 when it does not exist (yet). */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int n = 0;

    if (t && rd_kafka_metadata(rk, 0, t, &md, 5000) == 0) {
        if (md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

/* A group's instance, before its state is opened: the producer, Kafka
 * reached, <topic>.by-wallet and <topic>.state created where missing
 * with as many partitions as the input topic (or --partitions), and
 * their count learnt: it is the state's shard count. Returns -1 to go
 * on, or run's exit code. */
static int run_group_prepare(struct run *r)
{
    const ws_config *c = r->c;
    char err[WS_STORE_ERR_MAX];
    ws_topic_spec specs[2];
    int e, n;

    if (c->embedded_broker) {
        ws_log_fail("run", "--assignment group needs a real Kafka (its "
                    "transactions fence a partition's former owner): the "
                    "embedded broker does not implement them");
        return EXIT_USAGE;
    }
    {
        /* Port 0 (any free port) is known only once the API listens,
         * after the group was told where to reach this instance. */
        const char *colon = strrchr(c->listen, ':');

        if (colon && strcmp(colon + 1, "0") == 0 &&
            (!c->advertise || !c->advertise[0] || !c->instance_id ||
             !c->instance_id[0])) {
            ws_log_fail("run", "--assignment group with --listen %s: the "
                        "other instances could not reach this one (port 0 "
                        "is chosen after the group is told the URL); give a "
                        "port, or --advertise URL and --instance-id NAME",
                        c->listen);
            return EXIT_USAGE;
        }
    }
    group_names(r);
    if (run_broker(r, err) != WS_OK) {
        ws_log_fail("run", "%s", err);
        return 1;
    }
    run_kafka_opts(r);
    r->k.instance_id = r->kc.instance_id = r->instance;
    r->k.session_timeout_ms = r->kc.session_timeout_ms =
        c->session_timeout_ms > 3600000 ? 3600000
                                        : (unsigned)c->session_timeout_ms;
    if (ws_producer_open(&r->k, &r->producer, err) != WS_OK) {
        ws_log_fail("run", "%s", err);
        return EXIT_USAGE;
    }
    /* Named after the group too: another group on the same topic has its
     * own (docs/DECISIONS.md, issue 16). */
    snprintf(r->by_wallet, sizeof r->by_wallet, "%s.%s.by-wallet", c->topic,
             c->group);
    snprintf(r->state_topic, sizeof r->state_topic, "%s.%s.state", c->topic,
             c->group);
    do {
        r->input_partitions =
            topic_partitions(ws_producer_handle(r->producer), c->topic);
        n = ws_config_given(c, "partitions") ? (int)c->partitions
                                              : r->input_partitions;
        if (n <= 0)
            n = (int)c->partitions;
        memset(specs, 0, sizeof specs);
        specs[0].name = r->by_wallet;
        specs[0].partitions = n;
        specs[1].name = r->state_topic;
        specs[1].partitions = n;
        specs[1].compact = 1;
        e = ws_topics_ensure(ws_producer_handle(r->producer), specs, 2,
                             "group", err);
        if (e == WS_ERR_IO)
            ws_log(WS_LOG_WARN, "run", "waiting for Kafka at %s: %s",
                   r->brokers, err);
    } while (e == WS_ERR_IO && !stop_requested);
    if (stop_requested)
        return 0;
    if (e != WS_OK) {
        ws_log_fail("run", "%s", err);
        return 1;
    }
    r->partitions = specs[0].partitions_found;
    if (specs[1].partitions_found != r->partitions ||
        r->partitions > WS_SHARDS_MAX) {
        ws_log_fail("run", "%s has %d partitions and %s %d: they must have "
                    "the same count, at most %d", r->by_wallet,
                    r->partitions, r->state_topic,
                    specs[1].partitions_found, WS_SHARDS_MAX);
        return 1;
    }
    if (c->workers && (int)c->workers != r->partitions) {
        ws_log_fail("run", "--workers %d: with --assignment group the "
                    "workers are the %d partitions of %s (leave --workers "
                    "out)", (int)c->workers, r->partitions, r->by_wallet);
        return EXIT_USAGE;
    }
    r->kc.topic = r->by_wallet;
    r->kc.group_mode = 1;
    r->kc.instance_id = r->instance;
    r->kc.client_id = r->client_id;
    ws_log(WS_LOG_INFO, "run", "instance %s of group %s (API %s): %s has %d "
           "partitions", r->instance, c->group, r->advertise, r->by_wallet,
           r->partitions);
    return -1;
}

static void run_release(struct run *r)
{
    ws_standby_free(r->standby);
    if (r->peer)
        ws_peer_set_repartition(r->peer, NULL);
    ws_repartition_stop(r->repartition);
    ws_http_stop(r->http);
    ws_peer_free(r->peer);
    ws_members_stop(r->members);
    ws_source_close(r->source);
    ws_producer_close(r->producer);
    if (r->broker)
        ws_broker_unpublish(r->broker, r->c->data_dir);
    ws_broker_stop(r->broker);
    ws_status_free(r->status);
    ws_store_close(r->store);
}

static int cmd_run(const ws_config *c, int npos, char **pos)
{
    char err[WS_STORE_ERR_MAX];
    struct run r;
    ws_api api;
    struct sigaction sa;
    int rc = 1, e;

    if (npos > 0) {
        ws_log_fail("run", "unexpected argument \"%s\"", pos[0]);
        return EXIT_USAGE;
    }
    if (c->embedded_broker && ws_config_given(c, "brokers")) {
        ws_log_fail("run", "--brokers and --embedded-broker exclude each "
                    "other: choose one");
        return EXIT_USAGE;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    memset(&r, 0, sizeof r);
    r.c = c;
    r.brokers = c->brokers;
    r.group = strcmp(c->assignment, "group") == 0;
    if (r.group && (rc = run_group_prepare(&r)) >= 0)
        goto done;
    e = open_writer(c, r.partitions, &r.store, err);
    if (e != WS_OK) {
        ws_log_fail("run", "%s", err);
        rc = e == WS_ERR_USAGE ? EXIT_USAGE : 1;
        goto done;
    }
    if (r.group) {
        /* Nothing is served until the group gives partitions; each
         * batch's changes go to the state topic. */
        ws_store_journal(r.store, 1);
        ws_store_set_owned(r.store, 0);
    }
    rc = 1;
    if (ws_status_new(&r.status) != WS_OK)
        goto done;
    ws_metrics_broker_up(0);    /* until the broker answers */
    /* The API first: it serves the stored figures, and /readyz says what
     * the stream is waiting for, while the rest starts. */
    memset(&api, 0, sizeof api);
    api.store = r.store;
    api.ready = ready;
    api.ready_arg = r.status;
    api.partitions = ws_status_partitions;
    api.partitions_arg = r.status;
    if (r.group) {
        /* Requests for what other instances own go to them. */
        if (ws_members_start(ws_producer_handle(r.producer), c->group,
                             r.by_wallet, r.advertise, &r.members) != WS_OK ||
            ws_peer_new(r.members, &r.peer, &r.peer_hooks) != WS_OK)
            goto done;
        api.group = &r.peer_hooks;
        api.input_topic = c->topic;
        api.input_partitions = r.input_partitions > 0 ? r.input_partitions
                                                      : 0;
    }
    e = start_http(c, &api, &r.http, err);
    if (e != WS_OK) {
        ws_log_fail("run", "%s", err);
        rc = e == WS_ERR_USAGE ? EXIT_USAGE : 1;
        goto done;
    }
    if (r.peer && ws_peer_set_token(r.peer, ws_http_token(r.http)) != WS_OK)
        goto done;
    if (!r.group && run_broker(&r, err) != WS_OK) {
        ws_log_fail("run", "%s", err);
        goto done;
    }
    if (!r.group)
        run_kafka_opts(&r);
    snprintf(r.dlq_topic, sizeof r.dlq_topic, "%s.dlq", c->topic);
    if (ws_source_open(&r.kc, &r.source, err) != WS_OK ||
        (!r.producer && ws_producer_open(&r.k, &r.producer, err) != WS_OK)) {
        ws_log_fail("run", "%s", err);
        rc = EXIT_USAGE;
        goto done;
    }
    ws_log(WS_LOG_INFO, "run",
           "walletstream %s: data %s, brokers %s%s, topic %s, group %s, "
           "API on http://%s/ (port %u), dashboard at /", WS_VERSION,
           c->data_dir, r.brokers,
           r.broker ? " (embedded)" : "", c->topic, c->group, c->listen,
           ws_http_port(r.http));
    if ((rc = run_changelog_topics(&r)) >= 0)
        goto done;
    run_warm_topics(&r);
    if (r.group &&
        (ws_repartition_start(&r.k, r.by_wallet, r.partitions,
                              &r.repartition, err) != WS_OK ||
         (c->standby_replicas > 0 &&
          ws_standby_new(&r.kc, r.state_topic, r.store, r.members,
                         r.instance, c->standby_replicas > 8
                                         ? 8 : (int)c->standby_replicas,
                         &r.standby, err) != WS_OK))) {
        ws_log_fail("run", "%s", err);
        rc = 1;
        goto done;
    }
    if (r.peer)
        ws_peer_set_repartition(r.peer, r.repartition);
    rc = run_stream(&r);
done:
    run_release(&r);
    return rc;
}

/* ------------------------------------------------------------- broker */

static int cmd_broker(const ws_config *c, int npos, char **pos)
{
    char err[WS_BROKER_ERR_MAX];
    ws_broker *b;
    sigset_t set;
    int sig;

    if (npos > 0) {
        ws_log_fail("broker", "unexpected argument \"%s\"", pos[0]);
        return EXIT_USAGE;
    }
    block_signals(&set);
    if (ws_store_mkdirs(c->data_dir) != 0) {
        ws_log_fail("broker", "cannot create %s: %s", c->data_dir,
                    strerror(errno));
        return 1;
    }
    if (ws_broker_start(c->topic, (int)c->partitions, &b, err) != WS_OK ||
        ws_broker_publish(b, c->data_dir, err) != WS_OK) {
        ws_log_fail("broker", "%s", err);
        return 1;
    }
    printf("%s\n", ws_broker_bootstrap(b));
    fflush(stdout);
    ws_log(WS_LOG_INFO, "broker", "embedded Kafka broker at %s with topics "
           "%s (%d partitions) and %s.dlq; address written to "
           "%s/kafka.bootstrap. %s", ws_broker_bootstrap(b), c->topic,
           (int)c->partitions, c->topic, c->data_dir, WS_BROKER_LIMITS);
    sigwait(&set, &sig);
    ws_broker_unpublish(b, c->data_dir);
    ws_broker_stop(b);
    return 0;
}

/* ------------------------------------------------------------ produce */

static int cmd_produce(const ws_config *c, int npos, char **pos)
{
    char err[WS_BROKER_ERR_MAX], found[256];
    const char *brokers = c->brokers;
    ws_kafka_opts k;
    ws_produce_totals t;
    int e;

    /* Not given: the broker `make run` or an embedded broker published
     * in the data directory, else the default. */
    if (!ws_config_given(c, "brokers") &&
        ws_broker_read_bootstrap(c->data_dir, found, sizeof found, err) ==
            WS_OK)
        brokers = found;
    kafka_opts(c, brokers, &k);
    t.print_offsets = c->print_offsets;
    e = ws_produce_files(&k, pos, npos, &t);
    /* With the offsets on stdout, the summary goes to stderr. */
    fprintf(c->print_offsets ? stderr : stdout,
            "delivered %llu of %llu records to %s at %s\n",
           (unsigned long long)t.delivered, (unsigned long long)t.sent,
           c->topic, brokers);
    return e == WS_OK ? 0 : 1;
}

/* ------------------------------------------------------------- export */

static int cmd_export(const ws_config *c, int npos, char **pos)
{
    char err[WS_EXPORT_ERR_MAX];
    enum ws_export_format format;
    ws_export_totals t;
    ws_store *s;
    int e;

    if (npos > 0) {
        fprintf(stderr, "walletstream export: unexpected argument \"%s\"\n",
                pos[0]);
        return EXIT_USAGE;
    }
    if (ws_export_format_parse(c->format, &format) != 0) {
        fprintf(stderr, "walletstream export: --format is csv or jsonl, not "
                        "\"%s\"\n", c->format);
        return EXIT_USAGE;
    }
    /* Read-only, like serve: a running writer keeps going beside it. */
    e = ws_store_open(c->data_dir, WS_STORE_READ, 0, &s, err);
    if (e != WS_OK) {
        fprintf(stderr, "walletstream export: %s\n", err);
        return 1;
    }
    e = ws_export_write(s, format, c->out, &t, err);
    ws_store_close(s);
    if (e != WS_OK) {
        fprintf(stderr, "walletstream export: %s\n", err);
        return 1;
    }
    printf("exported %lld wallets, %lld products and %lld statement lines "
           "(%lld applied, %lld duplicate, %lld rejected events) to %s\n",
           (long long)t.wallets, (long long)t.products, (long long)t.lines,
           (long long)t.counts.outcome[WS_APPLIED],
           (long long)t.counts.outcome[WS_DUPLICATE],
           (long long)t.counts.outcome[WS_REJECTED], c->out);
    return 0;
}

/* ------------------------------------------------------------ reshard */

static int cmd_reshard(const ws_config *c, int npos, char **pos)
{
    char err[WS_STORE_ERR_MAX];
    int shards = c->workers ? (int)(c->workers > WS_SHARDS_MAX
                                        ? WS_SHARDS_MAX + 1 : c->workers)
                            : cores();
    int from = 0, format = 0, e;

    if (npos > 0) {
        fprintf(stderr, "walletstream reshard: unexpected argument \"%s\"\n",
                pos[0]);
        return EXIT_USAGE;
    }
    e = ws_store_reshard(c->data_dir, shards, &from, &format, err);
    if (e != WS_OK) {
        fprintf(stderr, "walletstream reshard: %s\n", err);
        return e == WS_ERR_USAGE ? EXIT_USAGE : 1;
    }
    if (format == 0)
        printf("%s already has %d shards: nothing to do\n", c->data_dir,
               shards);
    else if (format < 0)
        printf("finished the interrupted reshard of %s\n", c->data_dir);
    else
        printf("resharded %s from %d to %d shards (data format %d to %d)\n",
               c->data_dir, from, shards, format, WS_STORE_FORMAT);
    return 0;
}

/* --------------------------------------------------------------- main */

static const struct command commands[] = {
    {"run", WS_CMD_RUN, "[run] [OPTIONS]",
     "the stream processor (the default command): consumes the topic, "
     "keeps the figures exactly once in the data directory and serves the "
     "HTTP API. It reads from --brokers (default " WS_DEFAULT_BROKERS ", "
     "as Kafka's own tools assume; `make run` starts a real Kafka there); "
     "while no broker answers it keeps trying and /readyz says so. "
     "--embedded-broker starts a test broker in-process instead and writes "
     "its address to DIR/kafka.bootstrap. " WS_BROKER_LIMITS
     " SIGINT/SIGTERM commit the current batch and exit 0", cmd_run},
    {"broker", WS_CMD_BROKER, "broker [OPTIONS]",
     "run the embedded Kafka broker alone, so that `run --brokers ADDRESS` "
     "can be stopped and restarted while the topic keeps its records; "
     "prints the address and writes it to DIR/kafka.bootstrap. "
     WS_BROKER_LIMITS, cmd_broker},
    {"produce", WS_CMD_PRODUCE, "produce [OPTIONS] [FILE...]",
     "send JSON lines (standard input by default) to the topic, keyed by "
     "wallet_id, to --brokers, else to the broker named in "
     "DIR/kafka.bootstrap (`make run`, the embedded broker), else to "
     WS_DEFAULT_BROKERS "; prints how many were delivered and exits "
     "non-zero if any was not", cmd_produce},
    {"replay", WS_CMD_REPLAY, "replay [OPTIONS] FILE...",
     "feed JSON lines (one record value per line; - is standard input) "
     "through validation and figures into the data directory; rejected "
     "lines go to DIR/dead-letters.jsonl", cmd_replay},
    {"serve", WS_CMD_SERVE, "serve [OPTIONS]",
     "serve the HTTP API read-only from a data directory, beside a writer "
     "or after it", cmd_serve},
    {"export", WS_CMD_EXPORT, "export [OPTIONS]",
     "write the figures as the original pipeline's three tables "
     "(balances, avg_debits, top_credits) into --out, as CSV for cqlsh "
     "COPY FROM or as JSON lines, consistent as of one committed batch, "
     "with manifest.json (counters and input offsets of that batch); reads "
     "the data directory read-only, beside a running writer", cmd_export},
    {"reshard", WS_CMD_RESHARD, "reshard [OPTIONS]",
     "rewrite a stopped data directory's state into --workers shards (the "
     "number of cores by default): upgrades a format-1 directory, or "
     "changes the worker count. Every figure, remembered id, counter and "
     "offset is copied into state.new/ and made durable before the old "
     "state is replaced; interrupted, it is run again to finish", cmd_reshard},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    size_t i;

    fprintf(f, "walletstream %s - exact, real-time wallet figures from a "
               "stream of transactions\n\nUsage:\n", WS_VERSION);
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  walletstream %s\n", commands[i].synopsis);
    fprintf(f, "  walletstream help [COMMAND | --markdown]\n"
               "  walletstream --version\n\n"
               "`walletstream help COMMAND` describes a command and its "
               "options.\n");
}

static void command_help(FILE *f, const struct command *c)
{
    fprintf(f, "Usage: walletstream %s\n\n%s.\n\n", c->synopsis, c->summary);
    ws_config_help(f, c->cmd);
}

static const struct command *find(const char *name)
{
    size_t i;

    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    char err[WS_CONFIG_ERR_MAX];
    const struct command *cmd;
    ws_config c;
    int npos, e, first = 2;

    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("walletstream %s (data format %d)\n", WS_VERSION,
               WS_STORE_FORMAT);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "help") == 0) {
        if (argc >= 3 && strcmp(argv[2], "--markdown") == 0) {
            /* Command names by their bit in enum ws_cmd. */
            static const char *const names[] = {"run", "serve", "replay",
                                                "broker", "produce",
                                                "export", "reshard"};
            ws_config_markdown(stdout, names, 7);
            return 0;
        }
        if (argc < 3 || strcmp(argv[2], "help") == 0) {
            usage(stdout);
            return 0;
        }
        cmd = find(argv[2]);
        if (!cmd) {
            fprintf(stderr, "walletstream: unknown command \"%s\"\n", argv[2]);
            return EXIT_USAGE;
        }
        command_help(stdout, cmd);
        return 0;
    }
    /* No command, or options first: the default command, run. */
    if (argc < 2 || argv[1][0] == '-') {
        cmd = &commands[0];
        first = 1;
    } else if (!(cmd = find(argv[1]))) {
        fprintf(stderr, "walletstream: unknown command \"%s\"\n\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    e = ws_config_parse(&c, cmd->cmd, argc - first, argv + first, &npos, err);
    if (e == 1) {
        command_help(stdout, cmd);
        return 0;
    }
    if (e != WS_OK) {
        fprintf(stderr, "walletstream %s: %s\n(`walletstream help %s` lists "
                        "its options)\n", cmd->name, err, cmd->name);
        return EXIT_USAGE;
    }
    ws_log_set_format(c.log_format);   /* both checked by the option table */
    if (ws_log_set_level(c.log_level) != 0) {
        fprintf(stderr, "walletstream %s: unknown log level \"%s\"\n",
                cmd->name, c.log_level);
        return EXIT_USAGE;
    }
    /* libcurl's (a group's instances ask each other) before any thread. */
    if (ws_peer_global_init() != WS_OK) {
        fprintf(stderr, "walletstream: cannot initialise libcurl\n");
        return 1;
    }
    e = cmd->main(&c, npos, argv + first);
    ws_peer_global_cleanup();
    return e;
}
