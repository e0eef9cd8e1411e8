/*
 * fuzz_api.c - the routes of the HTTP API (ws_api_handle, src/api.c) over
 * a real store holding a few figures, as libmicrohttpd hands requests
 * over: method, raw path, raw query values (currency, limit, before,
 * min_offset, wait_ms), authorized or not.
 *
 * Input: byte 0 selects method (bits 0-2), authorization (bit 3) and
 * whether query values are given (bit 4); the rest is
 * "path\0currency\0limit\0before\0min_offset\0wait_ms" (values that are
 * not there are absent). Requests never wait (their wait has run out: a
 * min_offset not included answers 504).
 * Properties:
 *   - the status is one the API documents (200, 400, 401, 404, 405, 409,
 *     504) and never 500 or 503 (the store is healthy); the body is
 *     non-empty; the request never asks to wait;
 *   - unauthorized requests get 401 with WWW-Authenticate on every route
 *     but /healthz and /readyz; Allow is set exactly on 405;
 *   - a JSON answer is one JSON object (checked by ws_decode's parser:
 *     anything but invalid_json/not_an_object/message_too_large);
 *   - the route name for metrics is never NULL.
 * The store lives in a temporary directory removed at exit.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "decode.h"
#include "fuzz.h"
#include "replay.h"

static ws_api api;
static ws_decoder *dec;
static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);

static void cleanup(void)
{
    char cmd[128];

    ws_store_close(api.store);
    ws_decoder_free(dec);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_api: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char lines[] =
        "{\"transaction_id\":\"t1\",\"wallet_id\":\"w1\",\"product_id\":\"p1\","
        "\"type\":\"credit\",\"amount\":10.5,\"currency\":\"USD\","
        "\"timestamp\":\"2024-05-11T12:50:00Z\"}\n"
        "{\"transaction_id\":\"t2\",\"wallet_id\":\"w1\",\"product_id\":\"p1\","
        "\"type\":\"debit\",\"amount\":\"0.25\",\"currency\":\"USD\","
        "\"timestamp\":1715431800000}\n"
        "{\"transaction_id\":\"t3\",\"wallet_id\":\"a/b\",\"product_id\":\"p1\","
        "\"type\":\"credit\",\"amount\":3,\"currency\":\"EUR\","
        "\"timestamp\":\"2024-05-12T00:00:00Z\"}\n";
    char err[WS_STORE_ERR_MAX], input[128], dlq[128];
    char *files[1];
    ws_replay_totals t;
    FILE *f;

    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/ws-fuzz-api-XXXXXX");
    PROPERTY(mkdtemp(dir) != NULL);
    snprintf(input, sizeof input, "%s/in.jsonl", dir);
    snprintf(dlq, sizeof dlq, "%s/dlq.jsonl", dir);
    f = fopen(input, "w");
    PROPERTY(f && fputs(lines, f) >= 0 && fclose(f) == 0);
    memset(&api, 0, sizeof api);
    strcat(dir, "/data");
    PROPERTY(ws_store_open(dir, WS_STORE_WRITE, 0, &api.store, err) == WS_OK);
    PROPERTY(ws_store_set_history(api.store, WS_HISTORY_ALL) == WS_OK);
    dir[strlen(dir) - 5] = '\0';
    files[0] = input;
    PROPERTY(ws_replay_files(api.store, dlq, files, 1, 100, 0, &t) == WS_OK);
    PROPERTY(t.outcome[WS_APPLIED] == 3);
    PROPERTY(ws_decoder_new(&dec) == WS_OK);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[8] = {"GET", "HEAD", "POST", "PUT",
                                           "DELETE", "OPTIONS", "get", ""};
    char *path, *nul, *end;
    const char **fields[6];
    ws_query q;
    int authorized, open_route, i;
    ws_reply r;
    ws_txn txn;
    enum ws_reason why;

    if (size == 0)
        return 0;
    authorized = !(data[0] & 8);
    /* NUL-terminated copies, as libmicrohttpd passes them. */
    path = malloc(size + 1);
    PROPERTY(path != NULL);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    memset(&q, 0, sizeof q);
    q.arrived_ms = INT64_MIN / 2;
    fields[0] = &q.currency;
    fields[1] = &q.limit;
    fields[2] = &q.before;
    fields[3] = &q.min_offset;
    fields[4] = &q.wait_ms;
    fields[5] = &q.scope;
    end = path + size - 1;
    nul = memchr(path, '\0', size);
    for (i = 0; (data[0] & 16) && i < 6 && nul && nul < end; i++) {
        *fields[i] = nul + 1;
        nul = memchr(nul + 1, '\0', (size_t)(end - nul));
    }

    memset(&r, 0xA5, sizeof r);
    ws_api_handle(&api, methods[data[0] & 7], path, &q, authorized, &r);
    PROPERTY(!r.wait);
    PROPERTY(r.route != NULL && r.content_type != NULL);
    PROPERTY(r.status == 200 || r.status == 400 || r.status == 401 ||
             r.status == 404 || r.status == 405 || r.status == 409 ||
             r.status == 504);
    PROPERTY(r.body.len > 0 && !r.body.oom);
    PROPERTY((r.allow != NULL) == (r.status == 405));
    PROPERTY((r.www_authenticate != NULL) == (r.status == 401));
    open_route = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
    if (!authorized)
        PROPERTY(open_route ? r.status != 401 : r.status == 401);
    if (strncmp(r.content_type, "application/json", 16) == 0) {
        why = ws_decode(dec, r.body.p, r.body.len, &txn, NULL);
        PROPERTY(why != WS_R_INVALID_JSON && why != WS_R_NOT_AN_OBJECT &&
                 why != WS_R_MESSAGE_TOO_LARGE);
    }
    ws_buf_free(&r.body);
    ws_buf_free(&r.offsets);
    free(path);
    return 0;
}
