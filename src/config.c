/*
 * config.c - the option table.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

/* K_CHOICE: a string that must be one of the '|'-separated values its
 * metavar lists ("text|json"). K_NUMBER: a count where 0 is allowed.
 * K_FLAG: a switch (int 0 or 1): the flag alone turns it on; its
 * variable, or --flag=VALUE, takes 1 or 0. */
enum kind { K_STRING, K_COUNT, K_BYTES, K_CHOICE, K_NUMBER, K_FLAG };

struct option {
    const char *name;       /* flag without "--"; variable WALLETSTREAM_<NAME> */
    const char *metavar;
    enum kind kind;
    size_t offset;
    const char *def;
    unsigned cmds;
    const char *help;
};

#define ALL (WS_CMD_RUN | WS_CMD_SERVE | WS_CMD_REPLAY | WS_CMD_BROKER | \
             WS_CMD_PRODUCE | WS_CMD_EXPORT | WS_CMD_RESHARD)
#define KAFKA (WS_CMD_RUN | WS_CMD_PRODUCE)
#define AT(field) offsetof(ws_config, field)

static const struct option options[] = {
    {"data-dir", "DIR", K_STRING, AT(data_dir), "./data", ALL,
     "data directory: state, offsets, dead letters"},
    {"brokers", "LIST", K_STRING, AT(brokers), WS_DEFAULT_BROKERS, KAFKA,
     "Kafka bootstrap servers (produce, when not given, first reads "
     "DIR/kafka.bootstrap, written by `make run` and the embedded broker)"},
    {"embedded-broker", "", K_FLAG, AT(embedded_broker), "0", WS_CMD_RUN,
     "instead of --brokers, start librdkafka's mock cluster in-process: a "
     "test broker that keeps about 5 MiB per partition in memory (older "
     "records vanish) and loses everything when the process ends; for "
     "quick tests and demos only"},
    {"topic", "NAME", K_STRING, AT(topic), "transactions_topic",
     KAFKA | WS_CMD_BROKER, "input topic; dead letters go to NAME.dlq"},
    {"group", "ID", K_STRING, AT(group), "walletstream", WS_CMD_RUN,
     "consumer group the offsets are mirrored to, for lag tools; with "
     "--assignment group, the group whose instances share the topic"},
    {"recreated-topic", "refuse|read-from-start", K_CHOICE,
     AT(recreated_topic), "refuse", WS_CMD_RUN,
     "a partition whose stored offset lies beyond its log's end (the topic "
     "was deleted and created again): refuse to read the topic (not ready, "
     "the reason in /readyz) or read the new log from its start on top of "
     "the current state, once, as run starts"},
    {"changelog", "auto|on|off", K_CHOICE, AT(changelog), "auto", WS_CMD_RUN,
     "publish changed figures to compacted topics NAME.balances, "
     "NAME.avg_debits and NAME.top_credits (auto: when they exist or can "
     "be created)"},
    {"print-offsets", "", K_FLAG, AT(print_offsets), "0", WS_CMD_PRODUCE,
     "send each line once the previous one is acknowledged and print its "
     "PARTITION:OFFSET on stdout, for ?min_offset= (read-your-writes)"},
    {"history", "on|off", K_CHOICE, AT(history), "on",
     WS_CMD_RUN | WS_CMD_REPLAY,
     "keep each wallet's statement (its applied transactions with the "
     "balance after each) for GET /wallets/{id}/transactions and export; "
     "off drops the statements kept so far (docs/DECISIONS.md, "
     "\"Statements\": about 76 bytes per applied transaction)"},
    {"history-days", "D", K_NUMBER, AT(history_days), "0",
     WS_CMD_RUN | WS_CMD_REPLAY,
     "keep only the statement lines of the last D days of event time: "
     "each commit drops the oldest lines whose day is more than D days "
     "before its batch's latest (up to 20,000 a commit); 0: all"},
    {"partitions", "N", K_COUNT, AT(partitions), "3",
     WS_CMD_RUN | WS_CMD_BROKER,
     "partitions of the input topic the embedded broker creates "
     "(--embedded-broker, broker); with --assignment group, given: the "
     "partitions of NAME.GROUP.by-wallet and NAME.GROUP.state when they "
     "are created (else as many as the input topic has)"},
    {"assignment", "all|group", K_CHOICE, AT(assignment), "all", WS_CMD_RUN,
     "all: this instance reads every partition of the topic (a second "
     "instance is a full replica); group: the instances of --group share "
     "the partitions of NAME.GROUP.by-wallet (Kafka's consumer group, "
     "cooperative-sticky, static membership), each keeping the state of "
     "its own, restored from NAME.GROUP.state when a partition moves "
     "(docs/OPERATIONS.md, \"Many instances\")"},
    {"instance-id", "ID", K_STRING, AT(instance_id), "", WS_CMD_RUN,
     "with --assignment group: this instance's stable name in the group "
     "(group.instance.id: a restart within the session timeout moves "
     "nothing); empty: HOSTNAME-PORT of --listen"},
    {"session-timeout", "MS", K_COUNT, AT(session_timeout_ms), "10000",
     WS_CMD_RUN,
     "with --assignment group: an instance that sends no heartbeat for "
     "this long is taken as gone and its partitions move (Kafka's "
     "session.timeout.ms, within the broker's group.min/max.session."
     "timeout.ms; 6000-300000 on a default broker); a restart within it "
     "moves nothing"},
    {"standby-replicas", "N", K_NUMBER, AT(standby_replicas), "0",
     WS_CMD_RUN,
     "with --assignment group: keep a warm copy of N other instances' "
     "partitions each (the N members after a partition's owner, by "
     "instance id), fed from NAME.GROUP.state as they commit, so that a "
     "partition that moves here is restored from where its copy stops; "
     "each copy costs its partition's write work again (at most 8)"},
    {"advertise", "URL", K_STRING, AT(advertise), "", WS_CMD_RUN,
     "with --assignment group: the URL the other instances reach this "
     "one's API at; empty: http://HOST:PORT of --listen (the host name "
     "when it listens on all addresses; port 0 then needs --advertise and "
     "--instance-id)"},
    {"listen", "HOST:PORT", K_STRING, AT(listen), "127.0.0.1:8000",
     WS_CMD_RUN | WS_CMD_SERVE, "address of the HTTP API"},
    {"http-threads", "N", K_COUNT, AT(http_threads), "4",
     WS_CMD_RUN | WS_CMD_SERVE, "HTTP worker threads"},
    {"max-connections", "N", K_COUNT, AT(max_connections), "1000",
     WS_CMD_RUN | WS_CMD_SERVE,
     "HTTP connections open at once at most (each holds at most 32 KiB of "
     "request); beyond it new ones wait in the listen queue until one "
     "closes"},
    {"max-connections-per-ip", "N", K_NUMBER, AT(max_connections_per_ip),
     "0", WS_CMD_RUN | WS_CMD_SERVE,
     "HTTP connections from one client address at most; 0: no limit "
     "(behind a proxy every client has the proxy's address)"},
    {"http-timeout", "SECONDS", K_COUNT, AT(http_timeout), "30",
     WS_CMD_RUN | WS_CMD_SERVE,
     "an HTTP connection that neither sends nor receives anything for this "
     "long is closed"},
    {"api-token-file", "FILE", K_STRING, AT(api_token_file), "",
     WS_CMD_RUN | WS_CMD_SERVE,
     "file holding a bearer token: every request but /healthz and /readyz "
     "must then carry `Authorization: Bearer TOKEN` or gets 401"},
    {"tls-cert", "FILE", K_STRING, AT(tls_cert), "", WS_CMD_RUN | WS_CMD_SERVE,
     "PEM certificate (chain) with --tls-key: serve HTTPS instead of HTTP"},
    {"tls-key", "FILE", K_STRING, AT(tls_key), "", WS_CMD_RUN | WS_CMD_SERVE,
     "PEM private key of --tls-cert"},
    {"workers", "N", K_NUMBER, AT(workers), "0",
     WS_CMD_RUN | WS_CMD_REPLAY | WS_CMD_RESHARD,
     "threads that apply records, one per shard of the wallets (1-64); 0: "
     "the data directory's shard count, or the number of cores for a new "
     "one (reshard: the number of cores). A directory with another count "
     "is refused until `walletstream reshard --workers N` rewrites it"},
    {"batch-max", "N", K_COUNT, AT(batch_max), "100000",
     WS_CMD_RUN | WS_CMD_REPLAY, "records per committed batch at most"},
    {"batch-linger", "MS", K_COUNT, AT(batch_linger_ms), "5",
     WS_CMD_RUN | WS_CMD_REPLAY,
     "milliseconds a batch may wait for more records before it commits "
     "(run: under a backlog up to 3x the last commit, at most 1 s; "
     "replay: when not given, 1000)"},
    {"max-state-size", "BYTES", K_BYTES, AT(max_state_size), "64G",
     WS_CMD_RUN | WS_CMD_REPLAY,
     "largest size the state may grow to, split evenly between its "
     "shards (suffixes K, M, G, T)"},
    {"format", "csv|jsonl", K_CHOICE, AT(format), "csv", WS_CMD_EXPORT,
     "csv (RFC 4180, Cassandra's columns, for cqlsh COPY FROM) or jsonl "
     "(the API's JSON, one line per wallet or product)"},
    {"out", "DIR", K_STRING, AT(out), ".", WS_CMD_EXPORT,
     "directory the tables and manifest.json are written to (created when "
     "missing)"},
    {"log-level", "error|warn|info|debug", K_CHOICE, AT(log_level), "info",
     ALL, "least severe log lines written to stderr"},
    {"log-format", "text|json", K_CHOICE, AT(log_format), "text", ALL,
     "stderr log lines as text, or as one JSON object each (time, level, "
     "subsystem, message)"},
};

#define NOPTIONS (sizeof options / sizeof options[0])

/* ws_config.given has one bit per option. */
_Static_assert(NOPTIONS <= 64, "ws_config.given holds 64 options");

int ws_config_given(const ws_config *c, const char *name)
{
    size_t k;

    for (k = 0; k < NOPTIONS; k++)
        if (strcmp(options[k].name, name) == 0)
            return (c->given >> k) & 1;
    return 0;
}

static int parse_number(const char *s, enum kind kind, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    if (kind == K_BYTES && *end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mult = (uint64_t)1 << 10; break;
        case 'M': mult = (uint64_t)1 << 20; break;
        case 'G': mult = (uint64_t)1 << 30; break;
        case 'T': mult = (uint64_t)1 << 40; break;
        default: return -1;
        }
        end++;
        if (*end == 'B' || *end == 'b')
            end++;
    }
    if (*end || (v && mult > UINT64_MAX / v))
        return -1;
    *out = (uint64_t)v * mult;
    return 0;
}

/* 1 when value is one of the '|'-separated choices. */
static int is_choice(const char *choices, const char *value)
{
    size_t n = strlen(value);
    const char *p = choices;

    while (*p) {
        size_t len = strcspn(p, "|");
        if (len == n && strncmp(p, value, n) == 0)
            return 1;
        p += len + (p[len] == '|');
    }
    return 0;
}

static int set(ws_config *c, const struct option *o, const char *value,
               const char *from, char *err)
{
    char *field = (char *)c + o->offset;

    if (o->kind == K_CHOICE && !is_choice(o->metavar, value)) {
        snprintf(err, WS_CONFIG_ERR_MAX, "%s: \"%s\" is not one of %s", from,
                 value, o->metavar);
        return WS_ERR_USAGE;
    }
    if (!value[0] && o->def[0]) {
        snprintf(err, WS_CONFIG_ERR_MAX, "%s: an empty value is not valid",
                 from);
        return WS_ERR_USAGE;
    }
    if (o->kind == K_STRING || o->kind == K_CHOICE) {
        memcpy(field, &value, sizeof value);
        return WS_OK;
    }
    if (o->kind == K_FLAG) {
        int on = strcmp(value, "1") == 0;

        if (!on && strcmp(value, "0") != 0) {
            snprintf(err, WS_CONFIG_ERR_MAX, "%s: \"%s\" is not 1 or 0",
                     from, value);
            return WS_ERR_USAGE;
        }
        memcpy(field, &on, sizeof on);
        return WS_OK;
    }
    if (parse_number(value, o->kind, (uint64_t *)(void *)field) != 0 ||
        (o->kind == K_COUNT && *(uint64_t *)(void *)field == 0)) {
        snprintf(err, WS_CONFIG_ERR_MAX, "%s: \"%s\" is not a valid %s", from,
                 value, o->kind == K_BYTES    ? "size"
                        : o->kind == K_NUMBER ? "number"
                                              : "positive number");
        return WS_ERR_USAGE;
    }
    return WS_OK;
}

static void env_name(const struct option *o, char *buf, size_t cap)
{
    size_t i, n = strlen("WALLETSTREAM_");

    memcpy(buf, "WALLETSTREAM_", n);
    for (i = 0; o->name[i] && n + 1 < cap; i++)
        buf[n++] = o->name[i] == '-' ? '_' : (char)toupper((unsigned char)o->name[i]);
    buf[n] = '\0';
}

int ws_config_parse(ws_config *c, enum ws_cmd cmd, int argc, char **argv,
                    int *npos, char *err)
{
    size_t k;
    int i, e, pos = 0;

    memset(c, 0, sizeof *c);
    if ((cmd & KAFKA) && getenv("WALLETSTREAM_X")) {
        char *save = NULL, *tok;

        snprintf(c->props_env, sizeof c->props_env, "%s",
                 getenv("WALLETSTREAM_X"));
        for (tok = strtok_r(c->props_env, ";\n", &save); tok;
             tok = strtok_r(NULL, ";\n", &save)) {
            if (!*tok)
                continue;
            if (c->nprops == WS_CONFIG_MAX_PROPS || !strchr(tok, '=')) {
                snprintf(err, WS_CONFIG_ERR_MAX,
                         "WALLETSTREAM_X: properties are key=value, "
                         "separated by ';' (at most %d)", WS_CONFIG_MAX_PROPS);
                return WS_ERR_USAGE;
            }
            c->props[c->nprops++] = tok;
        }
    }
    for (k = 0; k < NOPTIONS; k++) {
        char var[64], from[80];
        const char *v;

        env_name(&options[k], var, sizeof var);
        v = getenv(var);
        snprintf(from, sizeof from, "%s", var);
        if ((e = set(c, &options[k], options[k].def, "default", err)) != 0)
            return e;
        if (v && (options[k].cmds & cmd)) {
            if ((e = set(c, &options[k], v, from, err)) != 0)
                return e;
            c->given |= (uint64_t)1 << k;
        }
    }
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        size_t len;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "-X", 2) == 0 && (cmd & KAFKA)) {
            const char *kv = arg[2] ? arg + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!kv || !strchr(kv, '=')) {
                snprintf(err, WS_CONFIG_ERR_MAX, "-X wants key=value");
                return WS_ERR_USAGE;
            }
            if (c->nprops == WS_CONFIG_MAX_PROPS) {
                snprintf(err, WS_CONFIG_ERR_MAX, "too many -X properties");
                return WS_ERR_USAGE;
            }
            c->props[c->nprops++] = (char *)kv;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            for (i++; i < argc; i++)
                argv[pos++] = argv[i];
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            argv[pos++] = argv[i];
            continue;
        }
        arg += 2;
        len = strcspn(arg, "=");
        if (arg[len] == '=')
            value = arg + len + 1;
        for (k = 0; k < NOPTIONS; k++)
            if (strlen(options[k].name) == len &&
                strncmp(options[k].name, arg, len) == 0)
                break;
        if (k == NOPTIONS || !(options[k].cmds & cmd)) {
            snprintf(err, WS_CONFIG_ERR_MAX, k == NOPTIONS
                         ? "unknown option --%.*s"
                         : "--%.*s is not an option of this command",
                     (int)len, arg);
            return WS_ERR_USAGE;
        }
        if (!value && options[k].kind == K_FLAG)
            value = "1";
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, WS_CONFIG_ERR_MAX, "--%s needs a value",
                         options[k].name);
                return WS_ERR_USAGE;
            }
            value = argv[++i];
        }
        {
            char from[80];
            snprintf(from, sizeof from, "--%s", options[k].name);
            if ((e = set(c, &options[k], value, from, err)) != 0)
                return e;
            c->given |= (uint64_t)1 << k;
        }
    }
    *npos = pos;
    return WS_OK;
}

void ws_config_help(FILE *f, enum ws_cmd cmd)
{
    size_t k;

    fprintf(f, "Options (each also read from its environment variable):\n");
    for (k = 0; k < NOPTIONS; k++) {
        char var[64], flag[64];

        if (!(options[k].cmds & cmd))
            continue;
        env_name(&options[k], var, sizeof var);
        snprintf(flag, sizeof flag, "--%s%s%s", options[k].name,
                 options[k].metavar[0] ? " " : "", options[k].metavar);
        if (options[k].kind == K_FLAG)
            fprintf(f, "  %-26s %s\n  %-26s [%s=1 or 0, default %s]\n",
                    flag, options[k].help, "", var, options[k].def);
        else
            fprintf(f, "  %-26s %s\n  %-26s [%s, default %s]\n", flag,
                    options[k].help, "", var,
                    options[k].def[0] ? options[k].def : "none");
    }
    if (cmd & KAFKA)
        fprintf(f, "  %-26s %s\n  %-26s [%s, ';'-separated]\n",
                "-X key=value", "any librdkafka property (repeatable), "
                "e.g. SASL/TLS settings", "", "WALLETSTREAM_X");
}

void ws_config_markdown(FILE *f, const char *const *names, int ncmds)
{
    size_t k;
    int i;

    fprintf(f, "# Configuration\n\n"
               "Generated by `walletstream help --markdown` from the option "
               "table in `src/config.c`;\na test keeps this file in step "
               "with the code. Every option is a flag and an\nenvironment "
               "variable; a flag wins over the variable, the variable over "
               "the default.\n\n"
               "| flag | variable | default | commands | meaning |\n"
               "|---|---|---|---|---|\n");
    for (k = 0; k < NOPTIONS; k++) {
        char var[64];
        const char *m;
        int first = 1;

        env_name(&options[k], var, sizeof var);
        fprintf(f, "| `--%s%s", options[k].name,
                options[k].metavar[0] ? " " : "");
        /* A '|' of a list of choices would end the table cell. */
        for (m = options[k].metavar; *m; m++)
            if (*m == '|')
                fputs("\\|", f);
            else
                fputc(*m, f);
        fprintf(f, "` | `%s` | %s%s%s | ", var, options[k].def[0] ? "`" : "",
                options[k].def[0] ? options[k].def : "none",
                options[k].def[0] ? "`" : "");
        for (i = 0; i < ncmds; i++)
            if (options[k].cmds & (1u << i)) {
                fprintf(f, "%s%s", first ? "" : ", ", names[i]);
                first = 0;
            }
        fprintf(f, " | %s |\n", options[k].help);
    }
    fprintf(f, "| `-X key=value` | `WALLETSTREAM_X` (`;`-separated) | none "
               "| run, produce | any librdkafka property, repeatable (e.g. "
               "SASL/TLS settings), as kcat does |\n");
}
