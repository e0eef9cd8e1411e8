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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "json_out.h"
#include "lines.h"
#include "log.h"
#include "utf8.h"

struct replay {
    ws_store *store;
    ws_decoder *decoder;
    ws_batch *batch;        /* open batch or NULL */
    uint64_t in_batch;      /* records in the open batch */
    int64_t pending[WS_OUTCOME_COUNT];  /* outcomes in the open batch */
    ws_buf dead;            /* dead letters of the open batch */
    const char *dead_path;
    int dead_fd;
    ws_replay_totals *totals;
};

static void dead_letter(struct replay *r, const char *file, int64_t line,
                        const ws_result *res, const char *value, size_t n)
{
    ws_buf *b = &r->dead;
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

/* Writes the batch's dead letters durably, then commits the batch. On
 * failure the caller drops what remains of the batch. */
static int flush(struct replay *r)
{
    int e, i;

    if (!r->batch)
        return WS_OK;
    if (r->dead.oom)
        return WS_ERR_NOMEM;
    if (r->dead.len > 0) {
        if (r->dead_fd < 0)
            r->dead_fd = open(r->dead_path,
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (r->dead_fd < 0 || write_all(r->dead_fd, r->dead.p, r->dead.len) ||
            fdatasync(r->dead_fd) != 0) {
            ws_log(WS_LOG_ERROR, "replay", "cannot write %s: %s",
                   r->dead_path, strerror(errno));
            return WS_ERR_IO;
        }
        ws_buf_reset(&r->dead);
    }
    e = ws_batch_commit(r->batch);
    r->batch = NULL;
    if (e != WS_OK)
        return e;
    for (i = 0; i < WS_OUTCOME_COUNT; i++) {
        r->totals->outcome[i] += r->pending[i];
        r->totals->records += r->pending[i];
        r->pending[i] = 0;
    }
    r->in_batch = 0;
    return WS_OK;
}

/* Drops the open batch and what it gathered. */
static void drop(struct replay *r)
{
    int i;

    if (r->batch)
        ws_batch_abort(r->batch);
    r->batch = NULL;
    ws_buf_reset(&r->dead);
    for (i = 0; i < WS_OUTCOME_COUNT; i++)
        r->pending[i] = 0;
    r->in_batch = 0;
}

static int replay_stream(struct replay *r, FILE *f, const char *name,
                         uint64_t batch_max)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t lineno = 0, batch_line = 0;
    off_t pos = 0, batch_pos = 0;
    int seekable = fseeko(f, 0, SEEK_CUR) == 0;
    ws_result res;
    int e = WS_OK;

    for (;;) {
        size_t n;

        got = ws_lines_read(f, &line, &cap, &n);
        if (got < 0) {
            if (ferror(f)) {
                e = WS_ERR_IO;
                ws_log(WS_LOG_ERROR, "replay", "cannot read %s: %s", name,
                       strerror(errno));
            } else {
                e = flush(r);
            }
        } else {
            lineno++;
            pos += got;
            if (ws_lines_blank(line, n)) {
                r->totals->blank++;
                continue;
            }
            if (!r->batch) {
                batch_pos = pos - got;
                batch_line = lineno - 1;
                e = ws_store_begin(r->store, &r->batch);
            }
            if (e == WS_OK)
                e = ws_engine_record(r->batch, r->decoder, line, n, &res);
            if (e == WS_OK) {
                r->pending[res.outcome]++;
                if (res.outcome == WS_REJECTED)
                    dead_letter(r, name, lineno, &res, line, n);
                if (++r->in_batch >= batch_max)
                    e = flush(r);
            }
        }
        if (e == WS_ERR_TXN_FULL && seekable && r->in_batch > 1) {
            /* Too many pages for one transaction: replay the same lines
             * in batches half as large. */
            batch_max = r->in_batch / 2;
            drop(r);
            ws_log(WS_LOG_WARN, "replay",
                   "%s:%lld: batch too large for one store transaction; "
                   "retrying with --batch-max %llu", name,
                   (long long)batch_line + 1, (unsigned long long)batch_max);
            if (fseeko(f, batch_pos, SEEK_SET) != 0) {
                e = WS_ERR_IO;
                break;
            }
            pos = batch_pos;
            lineno = batch_line;
            e = WS_OK;
            continue;
        }
        if (e != WS_OK || got < 0)
            break;
    }
    if (e != WS_OK && e != WS_ERR_IO)
        ws_log(WS_LOG_ERROR, "replay", "%s:%lld: cannot apply: %s%s", name,
               (long long)lineno, ws_strerror(e),
               e == WS_ERR_MAP_FULL ? " (raise --max-state-size)" :
               e == WS_ERR_TXN_FULL ? " (lower --batch-max)" : "");
    drop(r);
    free(line);
    return e;
}

int ws_replay_files(ws_store *s, const char *dead_letters_path,
                    char *const *files, int nfiles, uint64_t batch_max,
                    ws_replay_totals *totals)
{
    struct replay r;
    int i, e = WS_OK;

    memset(&r, 0, sizeof r);
    memset(totals, 0, sizeof *totals);
    r.store = s;
    r.dead_path = dead_letters_path;
    r.dead_fd = -1;
    r.totals = totals;
    ws_buf_init(&r.dead);
    if (ws_decoder_new(&r.decoder) != WS_OK) {
        ws_log(WS_LOG_ERROR, "replay", "out of memory");
        return WS_ERR_NOMEM;
    }
    for (i = 0; i < nfiles && e == WS_OK; i++) {
        FILE *f = ws_lines_open(files[i]);

        if (!f) {
            ws_log(WS_LOG_ERROR, "replay", "cannot open %s: %s", files[i],
                   strerror(errno));
            e = WS_ERR_IO;
            break;
        }
        e = replay_stream(&r, f, ws_lines_label(files[i]), batch_max);
        ws_lines_close(f);
    }
    if (r.dead_fd >= 0)
        close(r.dead_fd);
    ws_buf_free(&r.dead);
    ws_decoder_free(r.decoder);
    return e;
}
