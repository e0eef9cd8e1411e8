/*
 * main.c - the walletstream command line.
 *
 *   walletstream replay [OPTIONS] FILE...   JSON lines into a data directory
 *   walletstream serve  [OPTIONS]           the HTTP API, read-only
 *   walletstream help [COMMAND], --help, --version
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "replay.h"
#include "store.h"
#include "ws.h"

#define EXIT_USAGE 2

struct command {
    const char *name;
    enum ws_cmd cmd;
    const char *synopsis;
    const char *summary;
    int (*main)(const ws_config *c, int npos, char **pos);
};

/* ------------------------------------------------------------- replay */

static int cmd_replay(const ws_config *c, int npos, char **pos)
{
    char err[WS_STORE_ERR_MAX], path[4200];
    ws_store *s;
    ws_replay_totals t;
    int e;

    if (npos == 0) {
        fprintf(stderr, "walletstream replay: no input files (use - for "
                        "standard input)\n");
        return EXIT_USAGE;
    }
    e = ws_store_open(c->data_dir, WS_STORE_WRITE, c->max_state_size, &s, err);
    if (e != WS_OK) {
        fprintf(stderr, "walletstream replay: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/dead-letters.jsonl", c->data_dir);
    e = ws_replay_files(s, path, pos, npos, c->batch_max, &t);
    ws_store_close(s);
    if (t.blank)
        fprintf(stderr, "skipped %lld blank lines\n", (long long)t.blank);
    if (t.outcome[WS_REJECTED])
        fprintf(stderr, "rejected lines are in %s\n", path);
    printf("replayed %lld records: %lld applied, %lld duplicate, "
           "%lld rejected\n",
           (long long)t.records, (long long)t.outcome[WS_APPLIED],
           (long long)t.outcome[WS_DUPLICATE],
           (long long)t.outcome[WS_REJECTED]);
    return e == WS_OK ? 0 : 1;
}

/* -------------------------------------------------------------- serve */

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
        fprintf(stderr, "walletstream serve: unexpected argument \"%s\"\n",
                pos[0]);
        return EXIT_USAGE;
    }
    block_signals(&set);
    e = ws_store_open(c->data_dir, WS_STORE_READ, 0, &s, err);
    if (e != WS_OK) {
        fprintf(stderr, "walletstream serve: %s\n", err);
        return 1;
    }
    memset(&api, 0, sizeof api);
    api.store = s;
    e = ws_http_start(c->listen, (unsigned)c->http_threads, &api, &h, err);
    if (e != WS_OK) {
        fprintf(stderr, "walletstream serve: %s\n", err);
        ws_store_close(s);
        return e == WS_ERR_USAGE ? EXIT_USAGE : 1;
    }
    ws_log(WS_LOG_INFO, "serve",
           "walletstream %s serving %s read-only on %s (port %u)", WS_VERSION,
           c->data_dir, c->listen, ws_http_port(h));
    sigwait(&set, &sig);
    ws_log(WS_LOG_INFO, "serve", "signal %d: stopping", sig);
    ws_http_stop(h);
    ws_store_close(s);
    return 0;
}

/* --------------------------------------------------------------- main */

static const struct command commands[] = {
    {"replay", WS_CMD_REPLAY, "replay [OPTIONS] FILE...",
     "feed JSON lines (one record value per line; - is standard input) "
     "through validation and figures into the data directory; rejected "
     "lines go to DIR/dead-letters.jsonl", cmd_replay},
    {"serve", WS_CMD_SERVE, "serve [OPTIONS]",
     "serve the HTTP API read-only from a data directory, beside a writer "
     "or after it", cmd_serve},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    size_t i;

    fprintf(f, "walletstream %s - exact, real-time wallet figures from a "
               "stream of transactions\n\nUsage:\n", WS_VERSION);
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  walletstream %s\n", commands[i].synopsis);
    fprintf(f, "  walletstream help [COMMAND]\n  walletstream --version\n\n"
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
    int npos, e;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("walletstream %s (data format %d)\n", WS_VERSION,
               WS_STORE_FORMAT);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc < 3) {
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
    cmd = find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "walletstream: unknown command \"%s\"\n\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    e = ws_config_parse(&c, cmd->cmd, argc - 2, argv + 2, &npos, err);
    if (e == 1) {
        command_help(stdout, cmd);
        return 0;
    }
    if (e != WS_OK) {
        fprintf(stderr, "walletstream %s: %s\n", cmd->name, err);
        return EXIT_USAGE;
    }
    if (ws_log_set_level(c.log_level) != 0) {
        fprintf(stderr, "walletstream %s: unknown log level \"%s\"\n",
                cmd->name, c.log_level);
        return EXIT_USAGE;
    }
    return cmd->main(&c, npos, argv + 2);
}
