/*
 * replay.c - JSON lines into the store.
 *
 * A line is one record value. Lines are read with getline() into one
 * reused buffer, and dead letters are gathered in one reused buffer per
 * batch, so the steady state allocates nothing per record. A batch is
 * committed after `batch_max` records and at the end of every file; its
 * dead letters are written and fsynced first (DESIGN §1: a crash may
 * repeat a dead letter, never lose one).
 *
 * Replaying a file again is idempotent for the figures: every line that
 * was applied is now a duplicate (SPEC §3).
 */
#include "replay.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "json_out.h"
#include "lines.h"
#include "log.h"
#include "router.h"
#include "utf8.h"


struct replay {
    ws_router *router;
    const char *dead_path;
    int dead_fd;
    pthread_mutex_t dead_lock;  /* the file, shared by the shards */
    char *const *files;         /* labels, by partition (file index) */
    ws_replay_totals *totals;
    pthread_mutex_t totals_lock;
    struct shard_out {
        ws_buf dead;            /* dead letters of the shard's open batch */
        int64_t pending[WS_OUTCOME_COUNT];
    } out[WS_SHARDS_MAX];
};

static void dead_letter(ws_buf *b, const char *file, int64_t line,
                        const ws_result *res, const char *value, size_t n)
{
    char source[4200];
    int sn = snprintf(source, sizeof source, "%s:%lld", file,
                      (long long)line);

    ws_buf_puts(b, "{\"source\":");
    ws_json_str(b, source, (size_t)sn < sizeof source ? (size_t)sn
                                                       : sizeof source - 1);
    ws_buf_puts(b, ",\"reason\":\"");
    ws_buf_puts(b, ws_reason_name(res->reason));
    ws_buf_puts(b, "\",\"detail\":");
    ws_json_str(b, res->detail, strlen(res->detail));
    if (ws_utf8_valid(value, n)) {
        ws_buf_puts(b, ",\"value\":");
        ws_json_str(b, value, n);
    } else {
        ws_buf_puts(b, ",\"value_base64\":");
        ws_json_base64(b, value, n);
    }
    ws_buf_puts(b, "}\n");
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ------------------------------------------ hooks: on a shard's worker */

static int hook_dead_letter(void *ctx, int shard, const ws_input *in,
                            const ws_result *res, char *why)
{
    struct replay *r = ctx;

    (void)why;
    dead_letter(&r->out[shard].dead, ws_lines_label(r->files[in->partition]),
                in->offset, res, in->value, in->len);
    return 0;
}

static int hook_note(void *ctx, int shard, const ws_input *in,
                     const ws_result *res)
{
    struct replay *r = ctx;

    (void)in;
    r->out[shard].pending[res->outcome]++;
    return 0;
}

/* The batch's dead letters are written and fsynced before it commits
 * (DESIGN §1: a crash may repeat a dead letter, never lose one). */
static int hook_before_commit(void *ctx, int shard, ws_batch *b, char *why)
{
    struct replay *r = ctx;
    ws_buf *d = &r->out[shard].dead;
    int e = 0;

    (void)b;
    if (d->oom) {
        snprintf(why, WS_ROUTER_WHY_MAX, "out of memory");
        return -1;
    }
    if (d->len == 0)
        return 0;
    pthread_mutex_lock(&r->dead_lock);
    if (r->dead_fd < 0)
        r->dead_fd = open(r->dead_path,
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->dead_fd < 0 || write_all(r->dead_fd, d->p, d->len) ||
        fdatasync(r->dead_fd) != 0) {
        snprintf(why, WS_ROUTER_WHY_MAX, "cannot write %s: %s", r->dead_path,
                 strerror(errno));
        e = -1;
    }
    pthread_mutex_unlock(&r->dead_lock);
    ws_buf_reset(d);
    return e;
}

static void hook_after_commit(void *ctx, int shard, int ok, uint64_t records,
                              double seconds, double *ages, size_t nages)
{
    struct replay *r = ctx;
    int i;

    (void)records;
    (void)seconds;
    (void)ages;
    (void)nages;
    pthread_mutex_lock(&r->totals_lock);
    for (i = 0; i < WS_OUTCOME_COUNT; i++) {
        if (ok) {
            r->totals->outcome[i] += r->out[shard].pending[i];
            r->totals->records += r->out[shard].pending[i];
        }
        r->out[shard].pending[i] = 0;
    }
    pthread_mutex_unlock(&r->totals_lock);
    if (!ok)
        ws_buf_reset(&r->out[shard].dead);
}

/* ------------------------------------------------ the routing thread */

/* Routes the lines of one file (partition `index`) from its start; the
 * router skips those a shard already holds. */
static int replay_stream(struct replay *r, FILE *f, int index)
{
    const char *name = ws_lines_label(r->files[index]);
    char *line = NULL;
    size_t cap = 0, n, routed = 0;
    ssize_t got;
    int64_t lineno = 0;
    int e = WS_OK;
    struct stat st;
    /* Lines of a pipe or terminal are handed over at once (the next read
     * may wait); a file's in blocks. */
    size_t block = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? 4096
                                                                       : 1;

    while ((got = ws_lines_read(f, &line, &cap, &n)) >= 0) {
        ws_input in;

        lineno++;
        if (ws_lines_blank(line, n)) {
            if (r->totals)
                r->totals->blank++;
            continue;
        }
        in.partition = index;
        in.offset = lineno;
        in.origin.partition = index;
        in.origin.offset = lineno;
        in.repartitioned = 0;
        in.value = line;        /* copied by the router */
        in.len = n;
        in.ts_ms = -1;
        in.handle = NULL;
        ws_router_put(r->router, &in);
        if (++routed % block == 0) {
            ws_router_push(r->router);
            if (ws_router_failed(r->router, NULL, 0))
                break;
        }
    }
    if (got < 0 && ferror(f)) {
        e = WS_ERR_IO;
        ws_log(WS_LOG_ERROR, "replay", "cannot read %s: %s", name,
               strerror(errno));
    }
    free(line);
    if (e == WS_OK)
        ws_router_quiesce(r->router);   /* every file ends committed */
    return e;
}

/* Routes every file; a failure stops it (and is returned). */
static int replay_all(struct replay *r, int nfiles, char *why, size_t cap)
{
    int i, e = WS_OK;

    for (i = 0; i < nfiles && e == WS_OK; i++) {
        FILE *f = ws_lines_open(r->files[i]);

        if (!f) {
            ws_log(WS_LOG_ERROR, "replay", "cannot open %s: %s", r->files[i],
                   strerror(errno));
            return WS_ERR_IO;
        }
        e = replay_stream(r, f, i);
        ws_lines_close(f);
        if (e == WS_OK && (e = ws_router_failed(r->router, why, cap)) != 0)
            break;
    }
    return e;
}

static int all_seekable(char *const *files, int nfiles)
{
    int i;

    for (i = 0; i < nfiles; i++)
        if (strcmp(files[i], "-") == 0)
            return 0;
    return 1;
}

int ws_replay_files(ws_store *s, const char *dead_letters_path,
                    char *const *files, int nfiles, uint64_t batch_max,
                    uint64_t linger_ms, ws_replay_totals *totals)
{
    static const ws_router_hooks hooks0 = {
        NULL, hook_dead_letter, hook_note, hook_before_commit,
        hook_after_commit, NULL, NULL, NULL};
    ws_router_hooks hooks = hooks0;
    ws_router_opts o;
    struct replay *r;
    char why[WS_ROUTER_WHY_MAX];
    int k, e;

    memset(totals, 0, sizeof *totals);
    if (nfiles > WS_ROUTER_MAX_PARTITIONS) {
        ws_log(WS_LOG_ERROR, "replay", "at most %d files at once",
               WS_ROUTER_MAX_PARTITIONS);
        return WS_ERR_USAGE;
    }
    if (!(r = calloc(1, sizeof *r))) {
        ws_log(WS_LOG_ERROR, "replay", "out of memory");
        return WS_ERR_NOMEM;
    }
    r->dead_path = dead_letters_path;
    r->dead_fd = -1;
    r->files = files;
    r->totals = totals;
    pthread_mutex_init(&r->dead_lock, NULL);
    pthread_mutex_init(&r->totals_lock, NULL);
    for (k = 0; k < WS_SHARDS_MAX; k++)
        ws_buf_init(&r->out[k].dead);
    hooks.ctx = r;
    memset(&o, 0, sizeof o);
    o.store = s;
    o.hooks = &hooks;
    o.batch_max = batch_max;
    o.batch_linger_ms = linger_ms == 0 ? WS_REPLAY_LINGER_MS
                        : linger_ms > UINT_MAX ? UINT_MAX : (unsigned)linger_ms;
    if ((e = ws_router_start(&o, &r->router)) != WS_OK)
        ws_log(WS_LOG_ERROR, "replay", "cannot start the workers: %s",
               ws_strerror(e));
    while (e == WS_OK) {
        why[0] = '\0';
        e = replay_all(r, nfiles, why, sizeof why);
        if (e != WS_ERR_TXN_FULL || o.batch_max <= 1 ||
            !all_seekable(files, nfiles))
            break;
        /* Too many pages for one transaction: the shards keep what they
         * committed (the router skips it), the rest is replayed in
         * smaller batches. */
        o.batch_max /= 2;
        ws_log(WS_LOG_WARN, "replay", "batch too large for one store "
               "transaction; retrying with --batch-max %llu",
               (unsigned long long)o.batch_max);
        if ((e = ws_router_reset(r->router)) == WS_OK)
            ws_router_set_batch_max(r->router, o.batch_max);
    }
    if (e != WS_OK)
        ws_log(WS_LOG_ERROR, "replay", "cannot apply: %s%s%s%s",
               ws_strerror(e), why[0] ? " (" : "", why, why[0] ? ")" : "");
    ws_router_stop(r->router);
    if (r->dead_fd >= 0)
        close(r->dead_fd);
    for (k = 0; k < WS_SHARDS_MAX; k++)
        ws_buf_free(&r->out[k].dead);
    pthread_mutex_destroy(&r->dead_lock);
    pthread_mutex_destroy(&r->totals_lock);
    free(r);
    return e;
}
