/*
 * config.h - one table of options drives the command-line flags, the
 * WALLETSTREAM_* environment variables, the defaults and --help.
 *
 * Precedence: flag, then environment variable, then default.
 */
#ifndef WS_CONFIG_H
#define WS_CONFIG_H

#include <stdint.h>
#include <stdio.h>

enum ws_cmd {
    WS_CMD_RUN = 1 << 0,
    WS_CMD_SERVE = 1 << 1,
    WS_CMD_REPLAY = 1 << 2,
    WS_CMD_BROKER = 1 << 3,
    WS_CMD_PRODUCE = 1 << 4,
    WS_CMD_EXPORT = 1 << 5,
    WS_CMD_RESHARD = 1 << 6,
};

/* Most -X properties one command line takes. */
#define WS_CONFIG_MAX_PROPS 64

typedef struct ws_config {
    const char *data_dir;
    const char *brokers;        /* bootstrap servers */
    const char *topic;
    const char *group;
    const char *listen;
    const char *log_level;
    const char *log_format;     /* text or json */
    const char *changelog;      /* auto, on or off */
    const char *history;        /* on or off */
    const char *recreated_topic;    /* refuse or read-from-start */
    const char *format;         /* export: csv or jsonl */
    const char *out;            /* export: output directory */
    const char *api_token_file; /* "": no authentication */
    const char *tls_cert;       /* "": plain HTTP */
    const char *tls_key;
    int embedded_broker;        /* run: start the mock cluster instead */
    int print_offsets;          /* produce: one at a time, offsets out */
    uint64_t given;             /* options set by flag or variable */
    uint64_t partitions;
    const char *assignment;     /* "all" or "group" */
    const char *instance_id;    /* "": HOSTNAME-PORT */
    const char *advertise;      /* "": http://HOST:PORT of listen */
    uint64_t session_timeout_ms;
    uint64_t standby_replicas;
    uint64_t batch_max;
    uint64_t workers;           /* 0: the directory's shards, or cores */
    uint64_t batch_linger_ms;
    uint64_t http_threads;
    uint64_t max_connections;
    uint64_t max_connections_per_ip;    /* 0: no limit */
    uint64_t http_timeout;              /* seconds */
    uint64_t max_state_size;
    uint64_t history_days;      /* 0: all */
    char *props[WS_CONFIG_MAX_PROPS];   /* -X key=value, in order */
    int nprops;
    char props_env[4096];       /* WALLETSTREAM_X, split in place */
} ws_config;

/* Kafka's own tools assume a local broker on its default port. */
#define WS_DEFAULT_BROKERS "localhost:9092"

/* Room for a usage error sentence. */
#define WS_CONFIG_ERR_MAX 256

/* Fills c with defaults, then the environment, then the flags of
 * argv[0..argc) that apply to `cmd`. Positional arguments are collected,
 * in order, into argv[0..*npos) (argv is reordered in place; strings are
 * borrowed from argv and the environment). Returns 0, 1 when --help was
 * asked (help printed to stdout), or WS_ERR_USAGE with a sentence in err. */
int ws_config_parse(ws_config *c, enum ws_cmd cmd, int argc, char **argv,
                    int *npos, char *err);

/* 1 when option `name` (without "--") was set by its flag or its
 * variable, 0 when it holds its default. */
int ws_config_given(const ws_config *c, const char *name);

/* Prints the options of `cmd` with their variables and defaults. */
void ws_config_help(FILE *f, enum ws_cmd cmd);

/* Prints the table of every option as Markdown (docs/CONFIGURATION.md);
 * names[i] is the name of the command whose bit is 1 << i. */
void ws_config_markdown(FILE *f, const char *const *names, int ncmds);

#endif
