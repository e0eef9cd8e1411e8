/*
 * decode.c - record value -> ws_txn, or one reason code.
 *
 * Order of checks (the first failing one is the reason, SPEC §3):
 *   size (message_too_large) -> UTF-8 and JSON syntax (invalid_json) ->
 *   top-level object (not_an_object) -> a field given twice, directly or
 *   through an alias (duplicate_field) -> absent or null fields
 *   (missing_field) -> each field in the order of SPEC §2's table.
 *
 * JSON is tokenised with jsmn, which keeps the exact text of numbers.
 * jsmn is a tokenizer, not a validator: it accepts misplaced commas and
 * colons, bad literals and raw control characters in strings. So after
 * tokenising we walk the tokens in document order and check that the text
 * between them is exactly the punctuation the JSON grammar wants there,
 * that primitives are true, false, null or a JSON number, and that
 * strings hold no raw control characters. The walk is iterative (its
 * stack lives in the decoder), so deep nesting cannot overflow the C
 * stack.
 */
#include "decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STRICT
#define JSMN_STATIC
/* Parent links keep jsmn linear on wide objects and arrays; without them
 * it searches back through every earlier token at each comma. */
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "timeutil.h"
#include "utf8.h"

/* Every token takes at least one byte of input. */
#define MAX_TOKENS (WS_MAX_RECORD + 2)
/* RFC 8259 §9 lets a parser limit nesting. jsmn's work grows with depth
 * times size, so a 64 KiB record of nested brackets would cost a tenth of
 * a second; no transaction needs more than a few levels. */
#define MAX_DEPTH 64

struct frame {
    int remaining;      /* children (object: keys) still to read */
    int first;          /* no child read yet */
    int is_object;
    int close;          /* position of the closing bracket */
};

struct ws_decoder {
    jsmntok_t tokens[MAX_TOKENS];
    struct frame stack[MAX_TOKENS];
    char scratch[WS_MAX_RECORD];    /* an unescaped amount string */
};

int ws_decoder_new(ws_decoder **out)
{
    *out = malloc(sizeof **out);
    return *out ? WS_OK : WS_ERR_NOMEM;
}

void ws_decoder_free(ws_decoder *d)
{
    free(d);
}

const char *ws_type_name(enum ws_type t)
{
    static const char *const names[] = {"credit", "debit", "cancelCredit",
                                        "cancelDebit"};
    return (unsigned)t < 4 ? names[t] : "";
}

/* ------------------------------------------------------- JSON syntax */

static size_t skip_ws(const char *s, size_t n, size_t p)
{
    while (p < n && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' ||
                     s[p] == '\r'))
        p++;
    return p;
}

static int primitive_ok(const char *s, size_t n)
{
    ws_num_text num;

    if ((n == 4 && memcmp(s, "true", 4) == 0) ||
        (n == 5 && memcmp(s, "false", 5) == 0) ||
        (n == 4 && memcmp(s, "null", 4) == 0))
        return 1;
    return ws_dec_scan(s, n, &num) == 0;
}

static int string_chars_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return 0;
    return 1;
}

/* Checks that token t begins exactly at p and is well formed itself;
 * returns the position after it, or (size_t)-1. Containers are only
 * opened here: the caller's loop reads their children. */
static size_t scalar_end(const char *s, size_t n, const jsmntok_t *t,
                         size_t p)
{
    size_t start = (size_t)t->start, end = (size_t)t->end;

    if (t->type == JSMN_STRING) {
        if (p >= n || s[p] != '"' || start != p + 1 || end >= n ||
            !string_chars_ok(s + start, end - start))
            return (size_t)-1;
        return end + 1;
    }
    if (t->type == JSMN_PRIMITIVE) {
        if (start != p || !primitive_ok(s + start, end - start))
            return (size_t)-1;
        return end;
    }
    return (size_t)-1;
}

/* Walks ntok tokens of s[0..n) and checks the grammar between them.
 * Returns 0 when s is exactly one JSON value, else -1. */
static int check_grammar(ws_decoder *d, const char *s, size_t n, int ntok)
{
    const jsmntok_t *tok = d->tokens;
    struct frame *stack = d->stack;
    int depth = 0, i = 0;
    size_t pos = skip_ws(s, n, 0);

    for (;;) {
        const jsmntok_t *t;

        /* Read the next value, at pos. */
        if (i >= ntok)
            return -1;
        t = &tok[i++];
        if (t->type == JSMN_OBJECT || t->type == JSMN_ARRAY) {
            if ((size_t)t->start != pos || s[pos] != "[{"[t->type == JSMN_OBJECT] ||
                t->end < 2 || (size_t)t->end > n)
                return -1;
            stack[depth].remaining = t->size;
            stack[depth].first = 1;
            stack[depth].is_object = t->type == JSMN_OBJECT;
            stack[depth].close = t->end - 1;
            depth++;
            pos++;
        } else {
            pos = scalar_end(s, n, t, pos);
            if (pos == (size_t)-1)
                return -1;
        }

        /* Close finished containers; position pos at the next value. */
        for (;;) {
            struct frame *f;

            if (depth == 0) {
                pos = skip_ws(s, n, pos);
                return pos == n && i == ntok ? 0 : -1;
            }
            f = &stack[depth - 1];
            pos = skip_ws(s, n, pos);
            if (f->remaining == 0) {
                if (pos != (size_t)f->close || pos >= n ||
                    s[pos] != "]}"[f->is_object])
                    return -1;
                pos++;
                depth--;
                continue;
            }
            if (!f->first) {
                if (pos >= n || s[pos] != ',')
                    return -1;
                pos = skip_ws(s, n, pos + 1);
            }
            f->first = 0;
            f->remaining--;
            if (f->is_object) {
                if (i >= ntok || tok[i].type != JSMN_STRING)
                    return -1;
                pos = scalar_end(s, n, &tok[i++], pos);
                if (pos == (size_t)-1)
                    return -1;
                pos = skip_ws(s, n, pos);
                if (pos >= n || s[pos] != ':')
                    return -1;
                pos = skip_ws(s, n, pos + 1);
            }
            break;
        }
    }
}

/* ------------------------------------------------------------ strings */

static int hex4(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    int k;

    for (k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned long)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

enum { UNESC_OK = 0, UNESC_SURROGATE = -1, UNESC_TOO_LONG = -2 };

/* Unescapes the content of a JSON string (already grammar-checked) into
 * out[0..cap). Returns UNESC_OK with *len set, UNESC_SURROGATE for a lone
 * surrogate escape, UNESC_TOO_LONG when the result exceeds cap. */
static int unescape(const char *s, size_t n, char *out, size_t cap,
                    size_t *len)
{
    size_t i = 0, o = 0;

    if (!memchr(s, '\\', n)) {
        if (n > cap)
            return UNESC_TOO_LONG;
        memcpy(out, s, n);
        *len = n;
        return UNESC_OK;
    }
    while (i < n) {
        char c = s[i];
        char enc[4];
        size_t k = 1;

        if (c != '\\') {
            enc[0] = c;
            i++;
        } else {
            char e = s[i + 1];
            unsigned long cp;

            i += 2;
            switch (e) {
            case 'b': enc[0] = '\b'; break;
            case 'f': enc[0] = '\f'; break;
            case 'n': enc[0] = '\n'; break;
            case 'r': enc[0] = '\r'; break;
            case 't': enc[0] = '\t'; break;
            case 'u':
                if (i + 4 > n || hex4(s + i, &cp) != 0)
                    return UNESC_SURROGATE;
                i += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return UNESC_SURROGATE;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned long lo;

                    if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u' ||
                        hex4(s + i + 2, &lo) != 0 || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return UNESC_SURROGATE;
                    i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                k = ws_utf8_put(cp, enc);
                break;
            default: enc[0] = e; break;    /* \" \\ \/ */
            }
        }
        if (o + k > cap)
            return UNESC_TOO_LONG;
        memcpy(out + o, enc, k);
        o += k;
    }
    *len = o;
    return UNESC_OK;
}

int ws_id_valid(const char *id, size_t n)
{
    const unsigned char *s = (const unsigned char *)id;
    size_t i;

    if (n == 0 || n > WS_MAX_ID || !ws_utf8_valid(id, n))
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7F)
            return 0;
        /* C1 controls U+0080-U+009F are encoded C2 80 - C2 9F. */
        if (s[i] == 0xC2 && i + 1 < n && s[i + 1] <= 0x9F)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------- fields */

enum field {
    F_TRANSACTION_ID,
    F_WALLET_ID,
    F_PRODUCT_ID,
    F_TYPE,
    F_AMOUNT,
    F_CURRENCY,
    F_TIMESTAMP,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "transaction_id", "wallet_id", "product_id", "type",
    "amount", "currency", "timestamp",
};

/* Every spelling of every field: SPEC §2's names and aliases. */
#define SPELLING(s, f) {s, sizeof s - 1, f}
static const struct {
    const char *name;
    size_t len;
    enum field field;
} spellings[] = {
    SPELLING("transaction_id", F_TRANSACTION_ID),
    SPELLING("transactionID", F_TRANSACTION_ID),
    SPELLING("transactionId", F_TRANSACTION_ID),
    SPELLING("wallet_id", F_WALLET_ID),
    SPELLING("walletID", F_WALLET_ID),
    SPELLING("walletId", F_WALLET_ID),
    SPELLING("product_id", F_PRODUCT_ID),
    SPELLING("productID", F_PRODUCT_ID),
    SPELLING("productId", F_PRODUCT_ID),
    SPELLING("type", F_TYPE),
    SPELLING("amount", F_AMOUNT),
    SPELLING("currency", F_CURRENCY),
    SPELLING("timestamp", F_TIMESTAMP),
};

/* Longest spelling above, plus room to tell a longer key apart. */
#define KEY_MAX 16

static int field_of_key(const char *s, const jsmntok_t *key)
{
    char buf[KEY_MAX];
    size_t len, i;
    const char *raw = s + key->start;
    size_t raw_len = (size_t)(key->end - key->start);

    if (unescape(raw, raw_len, buf, sizeof buf, &len) != UNESC_OK)
        return -1;
    for (i = 0; i < sizeof spellings / sizeof spellings[0]; i++)
        if (spellings[i].len == len &&
            memcmp(spellings[i].name, buf, len) == 0)
            return (int)spellings[i].field;
    return -1;
}

/* Number of tokens in the subtree rooted at tok[i]. */
static int subtree(const jsmntok_t *tok, int i)
{
    int j = i, pending = 1;

    while (pending > 0) {
        pending += tok[j].size - 1;
        j++;
    }
    return j - i;
}

static int is_null(const char *s, const jsmntok_t *t)
{
    return t->type == JSMN_PRIMITIVE && t->end - t->start == 4 &&
           memcmp(s + t->start, "null", 4) == 0;
}

#define DETAIL(...)                                                     \
    do {                                                                \
        if (detail)                                                     \
            snprintf(detail, WS_DETAIL_MAX, __VA_ARGS__);               \
    } while (0)

static enum ws_reason decode_id(const char *s, const jsmntok_t *t,
                                enum field f, char *out, size_t *len,
                                char *detail)
{
    int r;

    if (t->type != JSMN_STRING) {
        DETAIL("%s must be a string", field_names[f]);
        return WS_R_INVALID_FIELD;
    }
    r = unescape(s + t->start, (size_t)(t->end - t->start), out, WS_MAX_ID,
                 len);
    if (r == UNESC_TOO_LONG) {
        DETAIL("%s is longer than %d bytes", field_names[f], WS_MAX_ID);
        return WS_R_INVALID_FIELD;
    }
    if (r == UNESC_SURROGATE) {
        DETAIL("%s holds a lone surrogate escape", field_names[f]);
        return WS_R_INVALID_FIELD;
    }
    if (*len == 0) {
        DETAIL("%s is empty", field_names[f]);
        return WS_R_INVALID_FIELD;
    }
    if (!ws_id_valid(out, *len)) {
        DETAIL("%s holds a control character", field_names[f]);
        return WS_R_INVALID_FIELD;
    }
    return WS_R_NONE;
}

static enum ws_reason decode_type(const char *s, const jsmntok_t *t,
                                  enum ws_type *out, char *detail)
{
    char buf[KEY_MAX];
    size_t len;
    int k;

    if (t->type == JSMN_STRING &&
        unescape(s + t->start, (size_t)(t->end - t->start), buf, sizeof buf,
                 &len) == UNESC_OK) {
        for (k = 0; k < 4; k++) {
            const char *name = ws_type_name((enum ws_type)k);
            if (strlen(name) == len && memcmp(name, buf, len) == 0) {
                *out = (enum ws_type)k;
                return WS_R_NONE;
            }
        }
    }
    DETAIL("type must be one of credit, debit, cancelCredit, cancelDebit");
    return WS_R_INVALID_TYPE;
}

static enum ws_reason decode_amount(ws_decoder *d, const char *s,
                                    const jsmntok_t *t, ws_txn *out,
                                    char *detail)
{
    char *buf = d->scratch;
    const char *text = s + t->start;
    size_t len = (size_t)(t->end - t->start);
    enum ws_reason r;

    if (t->type == JSMN_STRING) {
        if (unescape(text, len, buf, sizeof d->scratch, &len) != UNESC_OK) {
            DETAIL("amount is not a number");
            return WS_R_INVALID_AMOUNT;
        }
        text = buf;
    } else if (t->type != JSMN_PRIMITIVE) {
        DETAIL("amount must be a number or a string holding one");
        return WS_R_INVALID_AMOUNT;
    }
    r = ws_dec_parse_amount(text, len, &out->amount, &out->scale);
    if (r == WS_R_INVALID_AMOUNT)
        DETAIL("amount must be a non-negative JSON number");
    else if (r == WS_R_AMOUNT_OUT_OF_RANGE)
        DETAIL("amount needs at most %d integer and %d fractional digits",
               WS_DEC_MAX_INT_DIGITS, WS_DEC_MAX_SCALE);
    return r;
}

static enum ws_reason decode_currency(const char *s, const jsmntok_t *t,
                                      char out[3], char *detail)
{
    char buf[KEY_MAX];
    size_t len, k;

    if (t->type == JSMN_STRING &&
        unescape(s + t->start, (size_t)(t->end - t->start), buf, sizeof buf,
                 &len) == UNESC_OK &&
        len == 3) {
        for (k = 0; k < 3; k++) {
            char c = buf[k];
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            if (c < 'A' || c > 'Z')
                break;
            out[k] = c;
        }
        if (k == 3)
            return WS_R_NONE;
    }
    DETAIL("currency must be 3 ASCII letters");
    return WS_R_INVALID_CURRENCY;
}

static enum ws_reason decode_timestamp(const char *s, const jsmntok_t *t,
                                       ws_instant *out, char *detail)
{
    char buf[64];
    size_t len;
    const char *why = "timestamp must be an RFC 3339 string or epoch "
                      "milliseconds";
    int ok = -1;

    if (t->type == JSMN_STRING) {
        if (unescape(s + t->start, (size_t)(t->end - t->start), buf,
                     sizeof buf, &len) == UNESC_OK)
            ok = ws_time_parse_rfc3339(buf, len, out, &why);
    } else if (t->type == JSMN_PRIMITIVE && !is_null(s, t)) {
        ok = ws_time_parse_epoch_ms(s + t->start,
                                    (size_t)(t->end - t->start), out, &why);
    }
    if (ok == 0)
        return WS_R_NONE;
    DETAIL("timestamp: %s", why);
    return WS_R_INVALID_TIMESTAMP;
}

/* --------------------------------------------------------------- main */

/* 1 when brackets outside strings nest deeper than MAX_DEPTH. */
static int too_deep(const char *s, size_t n)
{
    size_t i, opening = 0;
    int depth = 0, in_string = 0;

    /* Usual records have one or two brackets: count them first with
     * memchr (vectorised in libc), and walk strings only when it matters. */
    for (i = 0; i < 2 && opening <= MAX_DEPTH; i++) {
        const char *p = s, *end = s + n;

        while (opening <= MAX_DEPTH &&
               (p = memchr(p, "[{"[i], (size_t)(end - p))) != NULL) {
            opening++;
            p++;
        }
    }
    if (opening <= MAX_DEPTH)
        return 0;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > MAX_DEPTH)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* Tokenises and checks buf[0..len) as one JSON text that starts with a
 * bracket or a quote. Returns 0 (tokens in d->tokens), or -1. */
static int tokenize(ws_decoder *d, const char *buf, size_t len)
{
    jsmn_parser parser;
    int ntok;

    if (too_deep(buf, len))
        return -1;
    jsmn_init(&parser);
    ntok = jsmn_parse(&parser, buf, len, d->tokens, MAX_TOKENS);
    return ntok > 0 && check_grammar(d, buf, len, ntok) == 0 ? 0 : -1;
}

int ws_decode_wallet_key(ws_decoder *d, const char *buf, size_t len,
                         char *out, size_t *n)
{
    const jsmntok_t *tok = d->tokens;
    int i = 1, left;

    if (len > WS_MAX_RECORD || !ws_utf8_valid(buf, len) ||
        tokenize(d, buf, len) != 0 || tok[0].type != JSMN_OBJECT)
        return -1;
    for (left = tok[0].size; left > 0; left--) {
        const jsmntok_t *v = &tok[i + 1];

        if (field_of_key(buf, &tok[i]) == F_WALLET_ID) {
            return v->type == JSMN_STRING &&
                           unescape(buf + v->start,
                                    (size_t)(v->end - v->start), out,
                                    WS_MAX_ID, n) == UNESC_OK
                       ? 0
                       : -1;
        }
        i += 1 + subtree(tok, i + 1);
    }
    return -1;
}

enum ws_reason ws_decode(ws_decoder *d, const char *buf, size_t len,
                         ws_txn *out, char *detail)
{
    const jsmntok_t *tok = d->tokens;
    int i, end, k, found[F_COUNT];
    size_t start;
    enum ws_reason r;

    if (detail)
        detail[0] = '\0';
    if (len > WS_MAX_RECORD) {
        DETAIL("record of %zu bytes is over the %d-byte limit", len,
               WS_MAX_RECORD);
        return WS_R_MESSAGE_TOO_LARGE;
    }
    if (!ws_utf8_valid(buf, len)) {
        DETAIL("record is not valid UTF-8");
        return WS_R_INVALID_JSON;
    }
    start = skip_ws(buf, len, 0);
    if (start < len && buf[start] != '{' && buf[start] != '[' &&
        buf[start] != '"') {
        /* A bare literal or number: jsmn's strict mode wants a delimiter
         * after a primitive, so check it here. */
        size_t stop = len;

        while (stop > start && (buf[stop - 1] == ' ' || buf[stop - 1] == '\t' ||
                                buf[stop - 1] == '\n' || buf[stop - 1] == '\r'))
            stop--;
        if (primitive_ok(buf + start, stop - start)) {
            DETAIL("record is a JSON value but not an object");
            return WS_R_NOT_AN_OBJECT;
        }
        DETAIL("record is not valid JSON");
        return WS_R_INVALID_JSON;
    }
    if (tokenize(d, buf, len) != 0) {
        if (too_deep(buf, len))
            DETAIL("record nests deeper than %d levels", MAX_DEPTH);
        else
            DETAIL("record is not valid JSON");
        return WS_R_INVALID_JSON;
    }
    if (tok[0].type != JSMN_OBJECT) {
        DETAIL("record is a JSON value but not an object");
        return WS_R_NOT_AN_OBJECT;
    }

    /* Find each field once; a second spelling of one is an error. */
    for (k = 0; k < F_COUNT; k++)
        found[k] = -1;
    i = 1;
    for (end = tok[0].size; end > 0; end--) {
        int f = field_of_key(buf, &tok[i]);

        if (f >= 0) {
            if (found[f] >= 0) {
                DETAIL("field %s is given more than once", field_names[f]);
                return WS_R_DUPLICATE_FIELD;
            }
            found[f] = i + 1;
        }
        i += 1 + subtree(tok, i + 1);
    }
    for (k = 0; k < F_COUNT; k++) {
        if (found[k] < 0 || is_null(buf, &tok[found[k]])) {
            DETAIL("field %s is missing", field_names[k]);
            return WS_R_MISSING_FIELD;
        }
    }

    r = decode_id(buf, &tok[found[F_TRANSACTION_ID]], F_TRANSACTION_ID,
                  out->tx_id, &out->tx_id_len, detail);
    if (r == WS_R_NONE)
        r = decode_id(buf, &tok[found[F_WALLET_ID]], F_WALLET_ID,
                      out->wallet_id, &out->wallet_id_len, detail);
    if (r == WS_R_NONE)
        r = decode_id(buf, &tok[found[F_PRODUCT_ID]], F_PRODUCT_ID,
                      out->product_id, &out->product_id_len, detail);
    if (r == WS_R_NONE)
        r = decode_type(buf, &tok[found[F_TYPE]], &out->type, detail);
    if (r == WS_R_NONE)
        r = decode_amount(d, buf, &tok[found[F_AMOUNT]], out, detail);
    if (r == WS_R_NONE)
        r = decode_currency(buf, &tok[found[F_CURRENCY]], out->currency,
                            detail);
    if (r == WS_R_NONE)
        r = decode_timestamp(buf, &tok[found[F_TIMESTAMP]], &out->ts, detail);
    return r;
}
