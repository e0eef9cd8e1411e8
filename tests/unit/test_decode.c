/*
 * test_decode.c - record bytes to a validated transaction (src/decode.c;
 * SPEC §2 input rules, §3 reason codes).
 *
 * Most tests start from one canonical record and change one thing:
 * rec("amount", "-5.00", NULL) is the canonical record with the raw JSON
 * text -5.00 as its amount. Every record is decoded from a heap copy of
 * exactly its length, so that a read past the end of the record is an
 * AddressSanitizer error rather than a lucky pass.
 *
 * The last test runs SPEC §9's conformance examples through the decoder.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "timeutil.h"
#include "wstest.h"

/* 2024-05-11T12:50:00Z, the SPEC's example instant. */
#define T_EXAMPLE INT64_C(1715431800)

/* Room for the largest records built here (some are over 64 KiB). */
#define BUF_CAP (256 * 1024)

static ws_decoder *dec;
static ws_txn txn;
static char detail[WS_DETAIL_MAX];
static char *buf;       /* rec()'s output */

/* ------------------------------------------------------------ helpers */

static const char *const base_key[] = {
    "transaction_id", "wallet_id", "product_id", "type",
    "amount", "currency", "timestamp",
};
static const char *const base_val[] = {
    "\"t1\"", "\"w1\"", "\"p1\"", "\"credit\"",
    "5.00", "\"USD\"", "\"2024-05-11T12:50:00Z\"",
};
#define NBASE (sizeof base_key / sizeof base_key[0])

static void put(size_t *n, const char *s)
{
    size_t k = strlen(s);

    if (*n + k + 1 > BUF_CAP) {
        printf("  rec(): record too large for the test buffer\n");
        exit(2);
    }
    memcpy(buf + *n, s, k);
    *n += k;
    buf[*n] = '\0';
}

/*
 * The canonical record with changes. Arguments are (key, value) pairs and
 * a NULL key ends them. A key of the canonical record gets the new value
 * (raw JSON text), or is dropped when the value is NULL; any other key is
 * appended with its value. A key written "+name" is appended even when
 * the record already has it. Returns buf, NUL-terminated.
 */
static const char *rec(const char *key, ...)
{
    const char *val[NBASE];
    const char *extra_k[32], *extra_v[32];
    size_t nextra = 0, i, n = 0;
    int first = 1;
    va_list ap;

    for (i = 0; i < NBASE; i++)
        val[i] = base_val[i];
    va_start(ap, key);
    for (; key; key = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        int replaced = 0;

        if (key[0] != '+') {
            for (i = 0; i < NBASE; i++) {
                if (strcmp(key, base_key[i]) == 0) {
                    val[i] = v;
                    replaced = 1;
                }
            }
        }
        if (!replaced && nextra < 32) {
            extra_k[nextra] = key[0] == '+' ? key + 1 : key;
            extra_v[nextra++] = v;
        }
    }
    va_end(ap);

    put(&n, "{");
    for (i = 0; i < NBASE + nextra; i++) {
        const char *k = i < NBASE ? base_key[i] : extra_k[i - NBASE];
        const char *v = i < NBASE ? val[i] : extra_v[i - NBASE];

        if (!v)
            continue;
        if (!first)
            put(&n, ",");
        first = 0;
        put(&n, "\"");
        put(&n, k);
        put(&n, "\":");
        put(&n, v);
    }
    put(&n, "}");
    return buf;
}

/* Decodes s[0..n) from a heap copy of exactly n bytes. */
static enum ws_reason decode_n(const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    enum ws_reason r;

    if (!copy) {
        printf("  out of memory\n");
        exit(2);
    }
    memcpy(copy, s, n);
    memset(&txn, 0xA5, sizeof txn);
    memset(detail, 'X', sizeof detail);
    r = ws_decode(dec, copy, n, &txn, detail);
    free(copy);
    return r;
}

static const char *reason_label(enum ws_reason r)
{
    return r == WS_R_NONE ? "(accepted)" : ws_reason_name(r);
}

static int expect_at(const char *file, int line, const char *s, size_t n,
                     enum ws_reason want)
{
    enum ws_reason got = decode_n(s, n);

    if (got != want) {
        int shown = n > 110 ? 110 : (int)n;

        printf("  %s:%d: got %s, want %s (detail \"%.*s\")\n    record: "
               "%.*s%s\n",
               file, line, reason_label(got), reason_label(want),
               WS_DETAIL_MAX - 1, got == WS_R_NONE ? "" : detail, shown, s,
               n > 110 ? "..." : "");
        wstest_failed_checks++;
        return 0;
    }
    return 1;
}

/* Decodes the NUL-terminated record s and checks its reason. Evaluates
 * to 1 when it matched. */
#define EXPECT(s, want) expect_at(__FILE__, __LINE__, (s), strlen(s), (want))
#define EXPECT_N(s, n, want) expect_at(__FILE__, __LINE__, (s), (n), (want))

/* The detail sentence of the last decode names `field`. */
#define CHECK_DETAIL_NAMES(field)                                        \
    do {                                                                 \
        if (!memchr(detail, '\0', sizeof detail) ||                      \
            !strstr(detail, field)) {                                    \
            printf("  detail \"%.*s\" does not name %s\n",               \
                   WS_DETAIL_MAX - 1, detail, field);                    \
            CHECK(0);                                                    \
        }                                                                \
    } while (0)

static int bytes_eq(const char *got, size_t got_len, const char *want,
                    size_t want_len)
{
    return got_len == want_len && memcmp(got, want, want_len) == 0;
}

#define CHECK_BYTES(got, got_len, want)                                  \
    CHECK(bytes_eq((got), (got_len), (want), strlen(want)))

/* The decoded amount printed at its own scale. */
static const char *amount_text(void)
{
    static char out[WS_DEC_TEXT_MAX];

    ws_dec_format(txn.amount, txn.scale, out);
    return out;
}

/* Checks that the record with this amount decodes to `text` (printed at
 * its scale) with `scale`. */
#define CHECK_AMOUNT(json, text, want_scale)                             \
    do {                                                                 \
        if (EXPECT(rec("amount", json, NULL), WS_R_NONE)) {              \
            CHECK_EQ_STR(amount_text(), text);                           \
            CHECK_EQ_INT(txn.scale, want_scale);                         \
        }                                                                \
    } while (0)

#define CHECK_INSTANT(json, want_sec, want_nsec)                         \
    do {                                                                 \
        if (EXPECT(rec("timestamp", json, NULL), WS_R_NONE)) {           \
            CHECK_EQ_INT(txn.ts.sec, want_sec);                          \
            CHECK_EQ_INT(txn.ts.nsec, want_nsec);                        \
        }                                                                \
    } while (0)

#define TS_REJECTED(json)                                                \
    EXPECT(rec("timestamp", json, NULL), WS_R_INVALID_TIMESTAMP)

/* A JSON string literal holding `count` copies of `unit`. */
static char *repeat_str(const char *unit, size_t count)
{
    size_t k = strlen(unit), i;
    char *s = malloc(k * count + 3);

    if (!s)
        exit(2);
    s[0] = '"';
    for (i = 0; i < count; i++)
        memcpy(s + 1 + i * k, unit, k);
    s[1 + k * count] = '"';
    s[2 + k * count] = '\0';
    return s;
}

static const char *const id_fields[] = {"transaction_id", "wallet_id",
                                        "product_id"};

/* --------------------------------------------------------- the record */

static void test_canonical_record_decodes_every_field(void)
{
    const char *r = rec(NULL);

    CHECK_EQ_STR(r, "{\"transaction_id\":\"t1\",\"wallet_id\":\"w1\","
                    "\"product_id\":\"p1\",\"type\":\"credit\","
                    "\"amount\":5.00,\"currency\":\"USD\","
                    "\"timestamp\":\"2024-05-11T12:50:00Z\"}");
    if (!EXPECT(r, WS_R_NONE))
        return;
    CHECK_BYTES(txn.tx_id, txn.tx_id_len, "t1");
    CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "w1");
    CHECK_BYTES(txn.product_id, txn.product_id_len, "p1");
    CHECK_EQ_INT(txn.type, WS_CREDIT);
    CHECK_EQ_STR(amount_text(), "5.00");
    CHECK_EQ_INT(txn.scale, 2);
    CHECK(memcmp(txn.currency, "USD", 3) == 0);
    CHECK_EQ_INT(txn.ts.sec, T_EXAMPLE);
    CHECK_EQ_INT(txn.ts.nsec, 0);
}

/* SPEC §2's example, with its spaces, as the original pipeline wrote it. */
static void test_spec_example_record_is_accepted(void)
{
    const char *r =
        "{\"transaction_id\": \"trans123\",\"wallet_id\": \"b1\","
        "\"product_id\": \"product5678\",\"type\": \"credit\",\"amount\": "
        "5.00,\"currency\": \"USD\",\"timestamp\": \"2024-05-11T12:50:00Z\"}";

    if (EXPECT(r, WS_R_NONE)) {
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "trans123");
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "b1");
        CHECK_BYTES(txn.product_id, txn.product_id_len, "product5678");
    }
}

static void test_decode_works_without_a_detail_buffer(void)
{
    const char *r = rec("amount", "-1", NULL);

    CHECK_EQ_INT(ws_decode(dec, r, strlen(r), &txn, NULL),
                 WS_R_INVALID_AMOUNT);
    r = rec(NULL);
    CHECK_EQ_INT(ws_decode(dec, r, strlen(r), &txn, NULL), WS_R_NONE);
}

static void test_every_rejection_has_a_detail_sentence(void)
{
    static const char *const amounts[] = {"-1", "1e99", "true", "null"};
    size_t i;

    for (i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
        const char *r = rec("amount", amounts[i], NULL);

        CHECK(decode_n(r, strlen(r)) != WS_R_NONE);
        CHECK(memchr(detail, '\0', sizeof detail) != NULL);
        CHECK(detail[0] != '\0');
    }
    CHECK(decode_n("{", 1) == WS_R_INVALID_JSON);
    CHECK(detail[0] != '\0');
    CHECK(decode_n("[]", 2) == WS_R_NOT_AN_OBJECT);
    CHECK(detail[0] != '\0');
}

/* ------------------------------------------------------------ aliases */

static void test_transaction_id_aliases_are_accepted(void)
{
    if (EXPECT(rec("transaction_id", NULL, "transactionID", "\"a1\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "a1");
    if (EXPECT(rec("transaction_id", NULL, "transactionId", "\"a2\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "a2");
}

static void test_wallet_id_aliases_are_accepted(void)
{
    if (EXPECT(rec("wallet_id", NULL, "walletID", "\"wa\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "wa");
    if (EXPECT(rec("wallet_id", NULL, "walletId", "\"wb\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "wb");
}

static void test_product_id_aliases_are_accepted(void)
{
    if (EXPECT(rec("product_id", NULL, "productID", "\"pa\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.product_id, txn.product_id_len, "pa");
    if (EXPECT(rec("product_id", NULL, "productId", "\"pb\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.product_id, txn.product_id_len, "pb");
}

static void test_only_the_listed_aliases_are_fields(void)
{
    static const char *const not_aliases[] = {
        "TransactionID", "transactionid", "transaction_ID", "TRANSACTION_ID",
        "transaction-id", "transaction_id ", "txId", "id",
    };
    size_t i;

    for (i = 0; i < sizeof not_aliases / sizeof not_aliases[0]; i++) {
        EXPECT(rec("transaction_id", NULL, not_aliases[i], "\"a1\"", NULL),
               WS_R_MISSING_FIELD);
        CHECK_DETAIL_NAMES("transaction_id");
    }
    EXPECT(rec("wallet_id", NULL, "walletid", "\"w\"", NULL),
           WS_R_MISSING_FIELD);
    EXPECT(rec("product_id", NULL, "product", "\"p\"", NULL),
           WS_R_MISSING_FIELD);
    EXPECT(rec("type", NULL, "Type", "\"credit\"", NULL), WS_R_MISSING_FIELD);
    EXPECT(rec("amount", NULL, "Amount", "5", NULL), WS_R_MISSING_FIELD);
    EXPECT(rec("currency", NULL, "CURRENCY", "\"USD\"", NULL),
           WS_R_MISSING_FIELD);
    EXPECT(rec("timestamp", NULL, "timeStamp", "\"2024-05-11T12:50:00Z\"",
               NULL),
           WS_R_MISSING_FIELD);
}

/* -------------------------------------------------- duplicate fields */

static void test_field_given_twice_is_duplicate_field(void)
{
    size_t i;

    for (i = 0; i < NBASE; i++) {
        char key[32];

        snprintf(key, sizeof key, "+%s", base_key[i]);
        /* Even with the same value. */
        EXPECT(rec(key, base_val[i], NULL), WS_R_DUPLICATE_FIELD);
        CHECK_DETAIL_NAMES(base_key[i]);
    }
}

static void test_field_given_twice_through_an_alias_is_duplicate_field(void)
{
    EXPECT(rec("transactionId", "\"t1\"", NULL), WS_R_DUPLICATE_FIELD);
    CHECK_DETAIL_NAMES("transaction_id");
    EXPECT(rec("transactionID", "\"t2\"", NULL), WS_R_DUPLICATE_FIELD);
    EXPECT(rec("transaction_id", NULL, "transactionID", "\"a\"",
               "transactionId", "\"b\"", NULL),
           WS_R_DUPLICATE_FIELD);
    EXPECT(rec("walletID", "\"w1\"", NULL), WS_R_DUPLICATE_FIELD);
    CHECK_DETAIL_NAMES("wallet_id");
    EXPECT(rec("wallet_id", NULL, "walletID", "\"a\"", "walletId", "\"b\"",
               NULL),
           WS_R_DUPLICATE_FIELD);
    EXPECT(rec("wallet_id", NULL, "walletId", "\"a\"", "+walletId", "\"a\"",
               NULL),
           WS_R_DUPLICATE_FIELD);
    EXPECT(rec("productId", "\"p1\"", NULL), WS_R_DUPLICATE_FIELD);
    CHECK_DETAIL_NAMES("product_id");
    EXPECT(rec("product_id", NULL, "productID", "\"a\"", "productId", "\"b\"",
               NULL),
           WS_R_DUPLICATE_FIELD);
}

static void test_field_given_twice_with_one_null_is_duplicate_field(void)
{
    EXPECT(rec("+amount", "null", NULL), WS_R_DUPLICATE_FIELD);
    EXPECT(rec("amount", "null", "+amount", "5", NULL), WS_R_DUPLICATE_FIELD);
    EXPECT(rec("transactionId", "null", NULL), WS_R_DUPLICATE_FIELD);
}

static void test_unknown_field_given_twice_is_not_an_error(void)
{
    EXPECT(rec("note", "1", "+note", "2", NULL), WS_R_NONE);
}

/* ----------------------------------------------------- missing fields */

static void test_absent_field_is_missing_field(void)
{
    size_t i;

    for (i = 0; i < NBASE; i++) {
        EXPECT(rec(base_key[i], NULL, NULL), WS_R_MISSING_FIELD);
        CHECK_DETAIL_NAMES(base_key[i]);
    }
    EXPECT("{}", WS_R_MISSING_FIELD);
}

static void test_null_field_counts_as_missing(void)
{
    size_t i;

    for (i = 0; i < NBASE; i++) {
        EXPECT(rec(base_key[i], "null", NULL), WS_R_MISSING_FIELD);
        CHECK_DETAIL_NAMES(base_key[i]);
    }
    EXPECT(rec("wallet_id", NULL, "walletId", "null", NULL),
           WS_R_MISSING_FIELD);
    CHECK_DETAIL_NAMES("wallet_id");
}

static void test_string_null_is_not_missing(void)
{
    if (EXPECT(rec("transaction_id", "\"null\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "null");
    EXPECT(rec("amount", "\"null\"", NULL), WS_R_INVALID_AMOUNT);
}

/* ------------------------------------------------------------- amount */

static void test_amount_as_number_and_as_string(void)
{
    CHECK_AMOUNT("5.00", "5.00", 2);
    CHECK_AMOUNT("\"5.00\"", "5.00", 2);
    CHECK_AMOUNT("12", "12", 0);
    CHECK_AMOUNT("\"12\"", "12", 0);
    CHECK_AMOUNT("\"12.340\"", "12.340", 3);
}

static void test_amount_string_content_is_unescaped(void)
{
    CHECK_AMOUNT("\"\\u0035.00\"", "5.00", 2);
    EXPECT(rec("amount", "\"\\ud800\"", NULL), WS_R_INVALID_AMOUNT);
}

static void test_amount_exponent_forms(void)
{
    CHECK_AMOUNT("5e2", "500", 0);
    CHECK_AMOUNT("5E+2", "500", 0);
    CHECK_AMOUNT("1234E-2", "12.34", 2);
    CHECK_AMOUNT("\"1234E-2\"", "12.34", 2);
    CHECK_AMOUNT("1e-18", "0.000000000000000001", 18);
    CHECK_AMOUNT("1.5e1", "15", 0);
    CHECK_AMOUNT("100e-2", "1.00", 2);
}

static void test_amount_accepts_18_fraction_digits(void)
{
    CHECK_AMOUNT("0.000000000000000001", "0.000000000000000001", 18);
    CHECK_AMOUNT("\"0.000000000000000001\"", "0.000000000000000001", 18);
    CHECK_AMOUNT("1.000000000000000000", "1.000000000000000000", 18);
}

static void test_amount_rejects_more_than_18_fraction_digits(void)
{
    EXPECT(rec("amount", "0.0000000000000000001", NULL),
           WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "\"0.0000000000000000001\"", NULL),
           WS_R_AMOUNT_OUT_OF_RANGE);
    /* 1.0e-18 has 19 fractional digits once the point has moved. */
    EXPECT(rec("amount", "1.0e-18", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "1e-19", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
}

static void test_amount_accepts_15_integer_digits(void)
{
    CHECK_AMOUNT("999999999999999", "999999999999999", 0);
    CHECK_AMOUNT("999999999999999.999999999999999999",
                 "999999999999999.999999999999999999", 18);
    CHECK_AMOUNT("1e14", "100000000000000", 0);
}

static void test_amount_rejects_more_than_15_integer_digits(void)
{
    EXPECT(rec("amount", "1000000000000000", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "\"1000000000000000\"", NULL),
           WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "1e15", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "9999999999999999.5", NULL),
           WS_R_AMOUNT_OUT_OF_RANGE);
}

static void test_amount_huge_exponents_are_out_of_range(void)
{
    EXPECT(rec("amount", "1e999999999", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "1e-999999999", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "\"1e999999999\"", NULL), WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("amount", "1E+9999999999999999999999", NULL),
           WS_R_AMOUNT_OUT_OF_RANGE);
}

/* A record whose exponent has 60,000 digits, 1000 times each way: the
 * answer must not depend on the exponent's value (an exponent loop would
 * never finish), and must be right every time. */
static void test_amount_exponent_of_60000_digits_is_answered_fast(void)
{
    static const char *const forms[] = {"1e", "1e-", "\"1e+"};
    size_t f;

    for (f = 0; f < 3; f++) {
        size_t n0 = strlen(forms[f]), k;
        char *amount = malloc(n0 + 60000 + 2);
        const char *r;
        size_t len;
        int i, wrong = 0;

        if (!amount)
            exit(2);
        memcpy(amount, forms[f], n0);
        memset(amount + n0, '9', 60000);
        k = n0 + 60000;
        if (forms[f][0] == '"')
            amount[k++] = '"';
        amount[k] = '\0';
        r = rec("amount", amount, NULL);
        len = strlen(r);
        CHECK(len > 60000 && len <= WS_MAX_RECORD);
        for (i = 0; i < 1000; i++)
            if (ws_decode(dec, r, len, &txn, detail) !=
                WS_R_AMOUNT_OUT_OF_RANGE)
                wrong++;
        CHECK_EQ_INT(wrong, 0);
        free(amount);
    }
}

static void test_amount_negative_is_invalid_amount(void)
{
    EXPECT(rec("amount", "-5.00", NULL), WS_R_INVALID_AMOUNT);
    EXPECT(rec("amount", "\"-5.00\"", NULL), WS_R_INVALID_AMOUNT);
    EXPECT(rec("amount", "-1e-18", NULL), WS_R_INVALID_AMOUNT);
    CHECK_DETAIL_NAMES("amount");
}

static void test_amount_minus_zero_is_zero(void)
{
    CHECK_AMOUNT("-0", "0", 0);
    CHECK(ws_dec_is_zero(txn.amount));
    CHECK_AMOUNT("-0.00", "0.00", 2);
    CHECK(ws_dec_is_zero(txn.amount));
    CHECK_AMOUNT("\"-0\"", "0", 0);
    CHECK_AMOUNT("0", "0", 0);
}

static void test_amount_that_is_not_a_json_number_is_invalid_amount(void)
{
    static const char *const bad[] = {
        "\"+5\"", "\".5\"", "\"5.\"", "\"NaN\"", "\"Infinity\"",
        "\"-Infinity\"", "\"0x10\"", "\"\"", "\" 5\"", "\"5 \"", "\"05\"",
        "\"1,5\"", "\"five\"", "\"5 USD\"", "\"\\\"5\\\"\"", "true", "false",
        "[1]", "[]", "{}", "{\"value\":5}",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT(rec("amount", bad[i], NULL), WS_R_INVALID_AMOUNT);
        CHECK_DETAIL_NAMES("amount");
    }
}

/* ----------------------------------------------------------- currency */

static void test_currency_is_normalised_to_upper_case(void)
{
    if (EXPECT(rec("currency", "\"usd\"", NULL), WS_R_NONE))
        CHECK(memcmp(txn.currency, "USD", 3) == 0);
    if (EXPECT(rec("currency", "\"eUr\"", NULL), WS_R_NONE))
        CHECK(memcmp(txn.currency, "EUR", 3) == 0);
    if (EXPECT(rec("currency", "\"JPY\"", NULL), WS_R_NONE))
        CHECK(memcmp(txn.currency, "JPY", 3) == 0);
    if (EXPECT(rec("currency", "\"U\\u0053d\"", NULL), WS_R_NONE))
        CHECK(memcmp(txn.currency, "USD", 3) == 0);
}

static void test_currency_must_be_three_ascii_letters(void)
{
    static const char *const bad[] = {
        "\"US\"", "\"USDT\"", "\"\xE2\x82\xACUR\"", "\"U1D\"", "\"\"",
        "\"U D\"", "\"US$\"", "\"\xC3\x9CSD\"", "\" USD\"", "\"USD \"",
        "\"us\"", "\"@SD\"", "\"[SD\"", "\"`SD\"", "\"{SD\"", "840", "true",
        "[\"USD\"]", "{}",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT(rec("currency", bad[i], NULL), WS_R_INVALID_CURRENCY);
        CHECK_DETAIL_NAMES("currency");
    }
}

/* --------------------------------------------------------------- type */

static void test_type_names_the_four_kinds(void)
{
    if (EXPECT(rec("type", "\"credit\"", NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.type, WS_CREDIT);
    if (EXPECT(rec("type", "\"debit\"", NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.type, WS_DEBIT);
    if (EXPECT(rec("type", "\"cancelCredit\"", NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.type, WS_CANCEL_CREDIT);
    if (EXPECT(rec("type", "\"cancelDebit\"", NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.type, WS_CANCEL_DEBIT);
    if (EXPECT(rec("type", "\"d\\u0065bit\"", NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.type, WS_DEBIT);
    CHECK_EQ_STR(ws_type_name(WS_CREDIT), "credit");
    CHECK_EQ_STR(ws_type_name(WS_DEBIT), "debit");
    CHECK_EQ_STR(ws_type_name(WS_CANCEL_CREDIT), "cancelCredit");
    CHECK_EQ_STR(ws_type_name(WS_CANCEL_DEBIT), "cancelDebit");
}

static void test_type_is_case_sensitive(void)
{
    static const char *const bad[] = {
        "\"Credit\"", "\"CREDIT\"", "\"Debit\"", "\"cancelcredit\"",
        "\"CancelDebit\"", "\"cancel_debit\"", "\"credit \"", "\" credit\"",
        "\"\"", "\"refund\"", "\"creditcredit\"", "\"cancelCreditX\"",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(rec("type", bad[i], NULL), WS_R_INVALID_TYPE);
}

static void test_type_not_a_string_is_invalid_type(void)
{
    EXPECT(rec("type", "1", NULL), WS_R_INVALID_TYPE);
    EXPECT(rec("type", "true", NULL), WS_R_INVALID_TYPE);
    EXPECT(rec("type", "[\"credit\"]", NULL), WS_R_INVALID_TYPE);
    EXPECT(rec("type", "{\"credit\":1}", NULL), WS_R_INVALID_TYPE);
}

/* ---------------------------------------------------------- timestamp */

static void test_timestamp_with_z_or_lower_case_z(void)
{
    CHECK_INSTANT("\"2024-05-11T12:50:00Z\"", T_EXAMPLE, 0);
    CHECK_INSTANT("\"2024-05-11T12:50:00z\"", T_EXAMPLE, 0);
}

static void test_timestamp_offsets_are_normalised_to_utc(void)
{
    CHECK_INSTANT("\"2024-05-11T18:20:00+05:30\"", T_EXAMPLE, 0);
    CHECK_INSTANT("\"2024-05-11T04:50:00-08:00\"", T_EXAMPLE, 0);
    CHECK_INSTANT("\"2024-05-11T14:50:00.25+02:00\"", T_EXAMPLE, 250000000);
    CHECK_INSTANT("\"2024-05-11T07:20:00-05:30\"", T_EXAMPLE, 0);
    /* Across midnight, into the next UTC day. */
    CHECK_INSTANT("\"2024-05-11T20:00:00-08:00\"", T_EXAMPLE + 54600, 0);
    CHECK_EQ_INT(ws_time_day(txn.ts), 19855);
}

static void test_timestamp_without_offset_is_utc(void)
{
    CHECK_INSTANT("\"2024-05-11T12:50:00\"", T_EXAMPLE, 0);
}

static void test_timestamp_space_may_replace_t(void)
{
    CHECK_INSTANT("\"2024-05-11 12:50:00Z\"", T_EXAMPLE, 0);
    CHECK_INSTANT("\"2024-05-11 12:50:00\"", T_EXAMPLE, 0);
    CHECK_INSTANT("\"2024-05-11 14:50:00+02:00\"", T_EXAMPLE, 0);
}

static void test_timestamp_fraction_of_1_to_9_digits(void)
{
    CHECK_INSTANT("\"2024-05-11T12:50:00.5Z\"", T_EXAMPLE, 500000000);
    CHECK_INSTANT("\"2024-05-11T12:50:00.12Z\"", T_EXAMPLE, 120000000);
    CHECK_INSTANT("\"2024-05-11T12:50:00.123Z\"", T_EXAMPLE, 123000000);
    CHECK_INSTANT("\"2024-05-11T12:50:00.1234Z\"", T_EXAMPLE, 123400000);
    CHECK_INSTANT("\"2024-05-11T12:50:00.12345Z\"", T_EXAMPLE, 123450000);
    CHECK_INSTANT("\"2024-05-11T12:50:00.123456Z\"", T_EXAMPLE, 123456000);
    CHECK_INSTANT("\"2024-05-11T12:50:00.1234567Z\"", T_EXAMPLE, 123456700);
    CHECK_INSTANT("\"2024-05-11T12:50:00.12345678Z\"", T_EXAMPLE, 123456780);
    CHECK_INSTANT("\"2024-05-11T12:50:00.123456789Z\"", T_EXAMPLE, 123456789);
    CHECK_INSTANT("\"2024-05-11T12:50:00.000000001Z\"", T_EXAMPLE, 1);
}

static void test_timestamp_rejects_10_fraction_digits(void)
{
    TS_REJECTED("\"2024-05-11T12:50:00.1234567890Z\"");
    CHECK_DETAIL_NAMES("timestamp");
    TS_REJECTED("\"2024-05-11T12:50:00.Z\"");
}

static void test_timestamp_leap_days(void)
{
    CHECK_INSTANT("\"2024-02-29T00:00:00Z\"", INT64_C(1709164800), 0);
    CHECK_INSTANT("\"2000-02-29T00:00:00Z\"", INT64_C(951782400), 0);
    TS_REJECTED("\"2023-02-29T00:00:00Z\"");
    TS_REJECTED("\"1900-02-29T00:00:00Z\"");
    TS_REJECTED("\"2100-02-29T00:00:00Z\"");
}

static void test_timestamp_rejects_out_of_range_fields(void)
{
    TS_REJECTED("\"2024-05-11T24:00:00Z\"");
    TS_REJECTED("\"2024-05-11T12:60:00Z\"");
    TS_REJECTED("\"2024-05-11T12:50:60Z\"");
    TS_REJECTED("\"2024-13-11T12:50:00Z\"");
    TS_REJECTED("\"2024-00-11T12:50:00Z\"");
    TS_REJECTED("\"2024-05-00T12:50:00Z\"");
    TS_REJECTED("\"2024-05-32T12:50:00Z\"");
    TS_REJECTED("\"2024-04-31T12:50:00Z\"");
    TS_REJECTED("\"2024-05-11T12:50:00+25:00\"");
    TS_REJECTED("\"2024-05-11T12:50:00+02:60\"");
}

static void test_timestamp_years_must_be_1970_to_9999(void)
{
    CHECK_INSTANT("\"1970-01-01T00:00:00Z\"", 0, 0);
    CHECK_INSTANT("\"9999-12-31T23:59:59.999999999Z\"", WS_TIME_END_SEC - 1,
                  999999999);
    TS_REJECTED("\"1969-12-31T23:59:59Z\"");
    TS_REJECTED("\"10000-01-01T00:00:00Z\"");
    TS_REJECTED("\"0000-01-01T00:00:00Z\"");
}

static void test_timestamp_offset_before_1970_is_rejected(void)
{
    TS_REJECTED("\"1970-01-01T00:30:00+01:00\"");
    TS_REJECTED("\"9999-12-31T23:30:00-01:00\"");
}

static void test_timestamp_rejects_other_text(void)
{
    TS_REJECTED("\"11/05/2024\"");
    TS_REJECTED("\"\"");
    TS_REJECTED("\"2024-05-11\"");
    TS_REJECTED("\"2024-05-11T12:50Z\"");
    TS_REJECTED("\"2024-05-11T12:50:00+0200\"");
    TS_REJECTED("\"2024-05-11T12:50:00Z \"");
    TS_REJECTED("\"now\"");
    TS_REJECTED("\"2024-05-11T12:50:00.00000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000Z\"");
}

static void test_timestamp_string_content_is_unescaped(void)
{
    CHECK_INSTANT("\"2024-05-11T12:50:00\\u005A\"", T_EXAMPLE, 0);
}

static void test_timestamp_epoch_milliseconds(void)
{
    CHECK_INSTANT("1715431800000", T_EXAMPLE, 0);
    CHECK_INSTANT("1715431800250", T_EXAMPLE, 250000000);
    CHECK_INSTANT("0", 0, 0);
    CHECK_INSTANT("253402300799999", WS_TIME_END_SEC - 1, 999000000);
    TS_REJECTED("253402300800000");
}

static void test_timestamp_epoch_must_be_a_plain_integer(void)
{
    TS_REJECTED("-1");
    TS_REJECTED("-0");
    TS_REJECTED("1715431800000.5");
    TS_REJECTED("1715431800000.0");
    TS_REJECTED("1.7154318e12");
    TS_REJECTED("1715431800000e0");
    TS_REJECTED("17154318E5");
    CHECK_DETAIL_NAMES("timestamp");
}

static void test_timestamp_epoch_as_a_string_is_rejected(void)
{
    TS_REJECTED("\"1715431800000\"");
    TS_REJECTED("\"0\"");
}

static void test_timestamp_of_another_type_is_rejected(void)
{
    TS_REJECTED("true");
    TS_REJECTED("false");
    TS_REJECTED("[1715431800000]");
    TS_REJECTED("{}");
}

/* ------------------------------------------------------- ids: UTF-8 */

/* Raw bytes that are not UTF-8 make the record not UTF-8 JSON text. */
static void test_invalid_utf8_in_a_record_is_invalid_json(void)
{
    static const char *const bad[] = {
        "\"c907\xFF\"",         /* never appears in UTF-8 */
        "\"\xC0\xAF\"",         /* overlong '/' */
        "\"\xE0\x80\xAF\"",     /* overlong '/' */
        "\"\xF0\x80\x80\xAF\"", /* overlong '/' */
        "\"\xED\xA0\x80\"",     /* encoded surrogate U+D800 */
        "\"\xED\xBF\xBF\"",     /* encoded surrogate U+DFFF */
        "\"\xF4\x90\x80\x80\"", /* above U+10FFFF */
        "\"ab\xC3\"",           /* truncated */
        "\"\x80\"",             /* lone continuation */
    };
    size_t i, f;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (f = 0; f < 3; f++)
            EXPECT(rec(id_fields[f], bad[i], NULL), WS_R_INVALID_JSON);
        /* Anywhere in the record, an ignored field included. */
        EXPECT(rec("note", bad[i], NULL), WS_R_INVALID_JSON);
    }
    EXPECT("{\"transaction_id\": \"c907\xFF\", \"wallet_id\": \"cw1\"}",
           WS_R_INVALID_JSON);
    EXPECT(rec(NULL), WS_R_NONE);
    buf[strlen(buf) - 1] = '\xFF';      /* in place of the closing brace */
    EXPECT(buf, WS_R_INVALID_JSON);
}

static void test_lone_surrogate_escape_in_an_id_is_invalid_field(void)
{
    static const char *const bad[] = {
        "\"\\ud800\"",          "\"\\udc00\"",        "\"\\uDFFF\"",
        "\"a\\ud800b\"",        "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"",
        "\"\\ud800x\\udc00\"",  "\"\\ud800\\n\"",     "\"\\udc00\\ud800\"",
        "\"\\ude00\\ud83d\"",   "\"x\\udbff\"",
        /* High surrogate, then hex digits of a low one without "\\u". */
        "\"\\ud800--dc00\"",
    };
    size_t i, f;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (f = 0; f < 3; f++) {
            EXPECT(rec(id_fields[f], bad[i], NULL), WS_R_INVALID_FIELD);
            CHECK_DETAIL_NAMES(id_fields[f]);
        }
    }
}

static void test_surrogate_pair_escape_decodes_to_four_utf8_bytes(void)
{
    if (EXPECT(rec("wallet_id", "\"\\ud83d\\ude00\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "\xF0\x9F\x98\x80");
    if (EXPECT(rec("transaction_id", "\"a\\uD83D\\uDE00b\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "a\xF0\x9F\x98\x80" "b");
    if (EXPECT(rec("product_id", "\"\\udbff\\udfff\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.product_id, txn.product_id_len, "\xF4\x8F\xBF\xBF");
    if (EXPECT(rec("product_id", "\"\\ud800\\udc00\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.product_id, txn.product_id_len, "\xF0\x90\x80\x80");
}

static void test_escapes_in_ids_are_decoded(void)
{
    if (EXPECT(rec("wallet_id", "\"caf\\u00e9\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "caf\xC3\xA9");
    if (EXPECT(rec("wallet_id", "\"caf\xC3\xA9\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "caf\xC3\xA9");
    if (EXPECT(rec("wallet_id", "\"\\u20ac\\u0041\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "\xE2\x82\xAC" "A");
    if (EXPECT(rec("wallet_id", "\"a\\\"b\\\\c\\/d\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "a\"b\\c/d");
    /* U+00A0 is a space, not a control character. */
    if (EXPECT(rec("wallet_id", "\"\\u00a0\"", NULL), WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "\xC2\xA0");
}

/* ------------------------------------------------ ids: control chars */

static void test_control_characters_in_ids_are_invalid_field(void)
{
    static const char *const bad[] = {
        "\"a\\u0000b\"", "\"\\u0000\"", "\"tab\\there\"", "\"a\\nb\"",
        "\"a\\rb\"",     "\"a\\bb\"",   "\"a\\fb\"",      "\"\\u001f\"",
        "\"\\u001F\"",   "\"\\u007f\"", "\"\\u0080\"",    "\"\\u0085\"",
        "\"\\u009f\"",   "\"a\x7F" "b\"", "\"a\xC2\x85" "b\"",
        "\"\xC2\x80\"",  "\"\xC2\x9F\"",
    };
    size_t i, f;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (f = 0; f < 3; f++) {
            EXPECT(rec(id_fields[f], bad[i], NULL), WS_R_INVALID_FIELD);
            CHECK_DETAIL_NAMES(id_fields[f]);
        }
    }
}

static void test_raw_control_byte_inside_a_json_string_is_invalid_json(void)
{
    static const char *const bad[] = {
        "\"a\tb\"", "\"a\nb\"", "\"a\rb\"", "\"\x01\"", "\"\x1F\"",
        "\"\x1B[0m\"",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT(rec("transaction_id", bad[i], NULL), WS_R_INVALID_JSON);
        EXPECT(rec("note", bad[i], NULL), WS_R_INVALID_JSON);
    }
    EXPECT(rec("amount", "\"5\x01\"", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("+no\x01te", "1", NULL), WS_R_INVALID_JSON);
    /* A raw NUL inside a string. */
    rec("transaction_id", "\"a_b\"", NULL);
    *strchr(buf, '_') = '\0';
    EXPECT_N(buf, strlen(buf) + 1 + strlen(buf + strlen(buf) + 1),
             WS_R_INVALID_JSON);
}

/* ------------------------------------------------------ ids: length */

static void test_empty_id_is_invalid_field(void)
{
    size_t f;

    for (f = 0; f < 3; f++) {
        EXPECT(rec(id_fields[f], "\"\"", NULL), WS_R_INVALID_FIELD);
        CHECK_DETAIL_NAMES(id_fields[f]);
    }
}

static void test_id_of_256_bytes_is_accepted(void)
{
    char *ascii = repeat_str("x", 256);
    char *two = repeat_str("\xC3\xA9", 128);
    char *four = repeat_str("\xF0\x9F\x98\x80", 64);
    /* 85 three-byte characters (255 bytes), cut from a longer string. */
    char *mixed = repeat_str("\xE2\x82\xAC", 86);
    size_t f;

    for (f = 0; f < 3; f++) {
        EXPECT(rec(id_fields[f], ascii, NULL), WS_R_NONE);
        EXPECT(rec(id_fields[f], two, NULL), WS_R_NONE);
        EXPECT(rec(id_fields[f], four, NULL), WS_R_NONE);
    }
    if (EXPECT(rec("transaction_id", ascii, NULL), WS_R_NONE)) {
        CHECK_EQ_INT(txn.tx_id_len, 256);
        CHECK(memcmp(txn.tx_id, ascii + 1, 256) == 0);
    }
    if (EXPECT(rec("product_id", four, NULL), WS_R_NONE)) {
        CHECK_EQ_INT(txn.product_id_len, 256);
        CHECK(memcmp(txn.product_id, four + 1, 256) == 0);
    }
    /* ... and one ASCII byte: 256. */
    mixed[1 + 255] = 'z';
    mixed[1 + 256] = '"';
    mixed[1 + 257] = '\0';
    if (EXPECT(rec("wallet_id", mixed, NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.wallet_id_len, 256);
    free(ascii);
    free(two);
    free(four);
    free(mixed);
}

static void test_id_of_257_bytes_is_invalid_field(void)
{
    char *ascii = repeat_str("x", 257);
    char *two = repeat_str("\xC3\xA9", 129);            /* 258 bytes */
    char *four = repeat_str("\xF0\x9F\x98\x80", 65);    /* 260 bytes */
    char *long_one = repeat_str("y", 5000);
    size_t f;

    for (f = 0; f < 3; f++) {
        EXPECT(rec(id_fields[f], ascii, NULL), WS_R_INVALID_FIELD);
        CHECK_DETAIL_NAMES(id_fields[f]);
        EXPECT(rec(id_fields[f], two, NULL), WS_R_INVALID_FIELD);
        EXPECT(rec(id_fields[f], four, NULL), WS_R_INVALID_FIELD);
        EXPECT(rec(id_fields[f], long_one, NULL), WS_R_INVALID_FIELD);
    }
    /* 255 ASCII bytes and a 2-byte character: 257. */
    ascii[1 + 255] = '\xC3';
    ascii[1 + 256] = '\xA9';
    ascii[1 + 257] = '"';
    ascii[1 + 258] = '\0';
    EXPECT(rec("wallet_id", ascii, NULL), WS_R_INVALID_FIELD);
    free(ascii);
    free(two);
    free(four);
    free(long_one);
}

/* The limit is on the unescaped bytes, not on the text as written. */
static void test_id_length_counts_unescaped_bytes(void)
{
    char *a256 = repeat_str("\\u0041", 256);        /* 1536 chars -> 256 */
    char *a257 = repeat_str("\\u0041", 257);
    char *e128 = repeat_str("\\u00e9", 128);        /* 256 bytes */
    char *e129 = repeat_str("\\u00e9", 129);        /* 258 bytes */
    char *q256 = repeat_str("\\\"", 256);
    char *p64 = repeat_str("\\ud83d\\ude00", 64);   /* 768 chars -> 256 */
    char *p65 = repeat_str("\\ud83d\\ude00", 65);

    if (EXPECT(rec("transaction_id", a256, NULL), WS_R_NONE)) {
        CHECK_EQ_INT(txn.tx_id_len, 256);
        CHECK(txn.tx_id[0] == 'A' && txn.tx_id[255] == 'A');
    }
    EXPECT(rec("transaction_id", a257, NULL), WS_R_INVALID_FIELD);
    if (EXPECT(rec("wallet_id", e128, NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.wallet_id_len, 256);
    EXPECT(rec("wallet_id", e129, NULL), WS_R_INVALID_FIELD);
    if (EXPECT(rec("product_id", q256, NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.product_id_len, 256);
    if (EXPECT(rec("product_id", p64, NULL), WS_R_NONE))
        CHECK_EQ_INT(txn.product_id_len, 256);
    EXPECT(rec("product_id", p65, NULL), WS_R_INVALID_FIELD);
    free(a256);
    free(a257);
    free(e128);
    free(e129);
    free(q256);
    free(p64);
    free(p65);
}

static void test_id_that_is_not_a_string_is_invalid_field(void)
{
    static const char *const bad[] = {"17", "0", "-1.5", "true", "false",
                                      "[\"a\"]", "{\"id\":\"a\"}", "[]"};
    size_t i, f;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (f = 0; f < 3; f++) {
            EXPECT(rec(id_fields[f], bad[i], NULL), WS_R_INVALID_FIELD);
            CHECK_DETAIL_NAMES(id_fields[f]);
        }
    }
}

static void test_id_valid_function_follows_the_id_rule(void)
{
    char big[WS_MAX_ID + 1];

    memset(big, 'x', sizeof big);
    CHECK(ws_id_valid("a", 1));
    CHECK(ws_id_valid("caf\xC3\xA9", 5));
    CHECK(ws_id_valid("\xC2\xA0", 2));
    CHECK(ws_id_valid(big, WS_MAX_ID));
    CHECK(!ws_id_valid(big, WS_MAX_ID + 1));
    CHECK(!ws_id_valid("", 0));
    CHECK(!ws_id_valid("a\0b", 3));
    CHECK(!ws_id_valid("a\tb", 3));
    CHECK(!ws_id_valid("\x1F", 1));
    CHECK(!ws_id_valid("\x7F", 1));
    CHECK(!ws_id_valid("\xC2\x80", 2));
    CHECK(!ws_id_valid("\xC2\x9F", 2));
    CHECK(!ws_id_valid("\xFF", 1));
    CHECK(!ws_id_valid("\xED\xA0\x80", 3));
    CHECK(!ws_id_valid("\xC3", 1));
}

/* ------------------------------------------------------------- size */

/* The canonical record padded with an ignored field to exactly n bytes. */
static const char *record_of_size(size_t n)
{
    size_t base = strlen(rec("pad", "\"\"", NULL));
    char *pad;
    const char *r;

    if (n < base)
        return NULL;
    pad = repeat_str("x", n - base);
    r = rec("pad", pad, NULL);
    free(pad);
    return r;
}

static void test_record_of_exactly_64_kib_is_not_too_large(void)
{
    const char *r = record_of_size(WS_MAX_RECORD);

    CHECK_EQ_INT(strlen(r), 65536);
    if (EXPECT(r, WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "t1");
}

static void test_record_over_64_kib_is_message_too_large(void)
{
    const char *r = record_of_size(WS_MAX_RECORD + 1);
    char *junk;

    CHECK_EQ_INT(strlen(r), 65537);
    EXPECT(r, WS_R_MESSAGE_TOO_LARGE);
    r = record_of_size(100000);
    EXPECT(r, WS_R_MESSAGE_TOO_LARGE);
    /* Size comes first: not JSON, not UTF-8, still too large. */
    junk = malloc(WS_MAX_RECORD + 1);
    if (!junk)
        exit(2);
    memset(junk, '\xFF', WS_MAX_RECORD + 1);
    EXPECT_N(junk, WS_MAX_RECORD + 1, WS_R_MESSAGE_TOO_LARGE);
    memset(junk, ' ', WS_MAX_RECORD + 1);
    EXPECT_N(junk, WS_MAX_RECORD + 1, WS_R_MESSAGE_TOO_LARGE);
    CHECK(strstr(detail, "65537") != NULL);
    free(junk);
}

/* ------------------------------------------------------- JSON syntax */

static void test_trailing_text_after_the_object_is_invalid_json(void)
{
    static const char *const tails[] = {
        " x", "}", "]", ",", " {}", "\"\"", "1", " 1", "null", " true", "/",
        "\x01", ":", "{", "[",
    };
    size_t i;
    char *r = malloc(BUF_CAP);

    if (!r)
        exit(2);
    for (i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        strcpy(r, rec(NULL));
        strcat(r, tails[i]);
        EXPECT(r, WS_R_INVALID_JSON);
    }
    /* A NUL byte after the object. */
    strcpy(r, rec(NULL));
    EXPECT_N(r, strlen(r) + 1, WS_R_INVALID_JSON);
    free(r);
}

static void test_whitespace_around_the_object_is_allowed(void)
{
    char *r = malloc(BUF_CAP);

    if (!r)
        exit(2);
    strcpy(r, " \t\r\n");
    strcat(r, rec(NULL));
    strcat(r, " \t\r\n");
    EXPECT(r, WS_R_NONE);
    strcpy(r, rec(NULL));
    strcat(r, "\n");
    EXPECT(r, WS_R_NONE);
    /* Between every token too. */
    EXPECT("{ \"transaction_id\" : \"t1\" ,\n\"wallet_id\"\t:\t\"w1\"\r\n,"
           "\"product_id\":\"p1\",\"type\":\"credit\",\"amount\" : 5.00 ,"
           "\"currency\":\"USD\",\"timestamp\":\"2024-05-11T12:50:00Z\" }",
           WS_R_NONE);
    free(r);
}

static void test_only_json_whitespace_is_whitespace(void)
{
    char *r = malloc(BUF_CAP);

    if (!r)
        exit(2);
    strcpy(r, "\f");
    strcat(r, rec(NULL));
    EXPECT(r, WS_R_INVALID_JSON);
    strcpy(r, rec(NULL));
    strcat(r, "\v");
    EXPECT(r, WS_R_INVALID_JSON);
    strcpy(r, "\xC2\xA0");      /* U+00A0 */
    strcat(r, rec(NULL));
    EXPECT(r, WS_R_INVALID_JSON);
    EXPECT(rec("note", "[1,\f2]", NULL), WS_R_INVALID_JSON);
    free(r);
}

static void test_two_objects_are_invalid_json(void)
{
    char *r = malloc(BUF_CAP);

    if (!r)
        exit(2);
    strcpy(r, rec(NULL));
    strcat(r, rec(NULL));
    EXPECT(r, WS_R_INVALID_JSON);
    strcpy(r, rec(NULL));
    strcat(r, "\n");
    strcat(r, rec(NULL));
    EXPECT(r, WS_R_INVALID_JSON);
    EXPECT("{}{}", WS_R_INVALID_JSON);
    EXPECT("{} {}", WS_R_INVALID_JSON);
    EXPECT("{},{}", WS_R_INVALID_JSON);
    free(r);
}

static void test_top_level_value_that_is_not_an_object(void)
{
    static const char *const values[] = {
        "[]", "[{\"transaction_id\": \"c904\"}]", "[1,2,3]", "42", "0",
        "-1.5e3", "\"str\"", "\"\"", "true", "false", "null", " null ",
        "\n42\n", "\"\\ud800\"", "[[[[]]]]",
    };
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++)
        EXPECT(values[i], WS_R_NOT_AN_OBJECT);
}

static void test_malformed_top_level_value_is_invalid_json(void)
{
    static const char *const values[] = {
        "nul", "tru", "True", "NULL", "nulll", "-", "1.", "01", "+1", ".5",
        "1e", "NaN", "Infinity", "-Infinity", "0x10", "1 2", "\"a\" \"b\"",
        "\"abc", "\"a\tb\"", "[1,,2]", "[1,]", "[", "]", "}", "{", "'a'",
        "undefined", "true false", "[1}", "{]",
    };
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++)
        EXPECT(values[i], WS_R_INVALID_JSON);
}

static void test_empty_or_blank_input_is_invalid_json(void)
{
    EXPECT_N("", 0, WS_R_INVALID_JSON);
    EXPECT(" ", WS_R_INVALID_JSON);
    EXPECT(" \t\r\n ", WS_R_INVALID_JSON);
    EXPECT_N("\0", 1, WS_R_INVALID_JSON);
}

/* Every proper prefix of a valid record is truncated JSON. */
static void test_truncated_json_is_invalid_json(void)
{
    char *full = malloc(BUF_CAP);
    size_t n, len;

    if (!full)
        exit(2);
    strcpy(full, rec("note", "{\"a\":[1,-2.5e3,true,null,\"x\\u00e9\"]}",
                     NULL));
    len = strlen(full);
    EXPECT(full, WS_R_NONE);
    for (n = 0; n < len; n++)
        EXPECT_N(full, n, WS_R_INVALID_JSON);
    EXPECT("{\"transaction_id\": \"c905\", ", WS_R_INVALID_JSON);
    free(full);
}

/* Broken JSON inside an otherwise valid record, as an ignored field. */
static void test_malformed_json_in_an_ignored_field_is_invalid_json(void)
{
    static const char *const values[] = {
        "{\"a\":1,}", "[1,,2]", "{\"a\"}", "{\"a\":1 \"b\":2}", "{\"a\"::1}",
        "{\"a\":tru}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}",
        "{\"a\":[1 2]}", "[1,]", "[,1]", "[,]", "{,}", "{\"a\":}", "{:1}",
        "{1:2}", "{\"a\" 1}", "{\"a\":1,,\"b\":2}", "[\"a\":1]", "[1:2]",
        "{\"a\",1}", "[[1]", "{\"a\":{}", "{]", "[}", "'x'", "\"a\\x\"",
        "\"\\u12G4\"", "\"\\u12\"", "True", "NULL", "nulll", "+1", ".5",
        "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "1 2",
        "\"a\" \"b\"", "--1", "1.2.3", "{\"a\":1}{\"b\":2}", "/*c*/1",
        "\"\\'\"", "\"\\U0041\"", "[\"a\",]", "{\"a\":1,\"b\"}",
        "{\"a\":{\"b\":}}", "[{]}", "",
    };
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++)
        EXPECT(rec("note", values[i], NULL), WS_R_INVALID_JSON);
    /* And between the record's own fields. */
    EXPECT("{\"transaction_id\":\"t1\" \"wallet_id\":\"w1\",\"product_id\":"
           "\"p1\",\"type\":\"credit\",\"amount\":5.00,\"currency\":\"USD\","
           "\"timestamp\":\"2024-05-11T12:50:00Z\"}",
           WS_R_INVALID_JSON);
    EXPECT("{transaction_id:\"t1\",\"wallet_id\":\"w1\",\"product_id\":"
           "\"p1\",\"type\":\"credit\",\"amount\":5.00,\"currency\":\"USD\","
           "\"timestamp\":\"2024-05-11T12:50:00Z\"}",
           WS_R_INVALID_JSON);
    EXPECT(rec("amount", "5.00,", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "5..00", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "NaN", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "Infinity", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "+5", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", ".5", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "5.", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "05", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("amount", "0x10", NULL), WS_R_INVALID_JSON);
    EXPECT(rec("timestamp", "01715431800000", NULL), WS_R_INVALID_JSON);
}

static void test_well_formed_ignored_fields_are_accepted(void)
{
    static const char *const values[] = {
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}", "[]", "{}", "\"\"",
        "\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"", "-0.5e+10",
        "true", "false", "null", "0", "[[[]]]", "[ 1 ,\t2 ,\r\n3 ]",
        "{ }", "[ ]", "\"\\ud800\"", "1E400", "-0", "[\"\\u0000\"]",
        "\"\x7F\"", "{\"transaction_id\":\"nested, not a field\"}",
        "{\"a\":1,\"a\":2}",
    };
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++)
        if (EXPECT(rec("note", values[i], NULL), WS_R_NONE))
            CHECK_BYTES(txn.tx_id, txn.tx_id_len, "t1");
}

static void test_unknown_fields_are_ignored(void)
{
    if (EXPECT(rec("note", "\"x\"", "extra", "{\"amount\":-1}", "wallet",
                   "1", "id", "[]", "transaction", "null", NULL),
               WS_R_NONE)) {
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "t1");
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "w1");
        CHECK_EQ_STR(amount_text(), "5.00");
    }
    /* Fields in any order, unknown ones first. */
    EXPECT("{\"z\":0,\"timestamp\":\"2024-05-11T12:50:00Z\",\"currency\":"
           "\"USD\",\"amount\":5.00,\"type\":\"credit\",\"product_id\":\"p1\","
           "\"wallet_id\":\"w1\",\"transaction_id\":\"t1\",\"a\":[1]}",
           WS_R_NONE);
}

/* Fills v with `depth` nested arrays around nothing. */
static void nested_arrays(char *v, size_t depth)
{
    memset(v, '[', depth);
    memset(v + depth, ']', depth);
    v[2 * depth] = '\0';
}

/* RFC 8259 §9 allows a nesting limit: 64 levels, the record included. */
static void test_nesting_up_to_64_levels_is_accepted(void)
{
    char v[200];

    nested_arrays(v, 63);
    if (EXPECT(rec("deep", v, NULL), WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "t1");
    nested_arrays(v, 64);
    EXPECT(rec("deep", v, NULL), WS_R_INVALID_JSON);
    CHECK(strstr(detail, "deeper than 64") != NULL);
    /* brackets inside strings do not count */
    memset(v, '[', 100);
    v[0] = '"';
    v[99] = '"';
    v[100] = '\0';
    EXPECT(rec("deep", v, NULL), WS_R_NONE);
}

/* 30,000 nested arrays in a record under 64 KiB: refused at once, no
 * stack overflow, no crash. */
static void test_deep_nesting_is_invalid_json(void)
{
    size_t depth = 30000;
    char *v = malloc(2 * depth + 1);

    if (!v)
        exit(2);
    nested_arrays(v, depth);
    EXPECT(rec("deep", v, NULL), WS_R_INVALID_JSON);
    CHECK(strlen(buf) <= WS_MAX_RECORD);
    v[2 * depth - 1] = '}';
    EXPECT(rec("deep", v, NULL), WS_R_INVALID_JSON);
    nested_arrays(v, depth);
    EXPECT(v, WS_R_INVALID_JSON);
    free(v);
}

static void test_deeply_nested_objects_are_invalid_json(void)
{
    size_t depth = 10000, i, n = 0;
    char *v = malloc(6 * depth + 2);

    if (!v)
        exit(2);
    for (i = 0; i < depth; i++) {
        memcpy(v + n, "{\"a\":", 5);
        n += 5;
    }
    v[n++] = '1';
    memset(v + n, '}', depth);
    n += depth;
    v[n] = '\0';
    EXPECT(rec("deep", v, NULL), WS_R_INVALID_JSON);
    free(v);
}

static void test_keys_written_with_escapes_match_their_field(void)
{
    if (EXPECT(rec("wallet_id", NULL, "wallet\\u005fid", "\"we\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.wallet_id, txn.wallet_id_len, "we");
    if (EXPECT(rec("transaction_id", NULL, "\\u0074ransaction_id", "\"te\"",
                   NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.tx_id, txn.tx_id_len, "te");
    if (EXPECT(rec("product_id", NULL, "product\\u0049D", "\"pe\"", NULL),
               WS_R_NONE))
        CHECK_BYTES(txn.product_id, txn.product_id_len, "pe");
    EXPECT(rec("type", NULL, "\\u0074\\u0079\\u0070\\u0065", "\"debit\"",
               NULL),
           WS_R_NONE);
    CHECK_EQ_INT(txn.type, WS_DEBIT);
    /* An escaped spelling of a field already present is a duplicate. */
    EXPECT(rec("wallet\\u005fid", "\"w2\"", NULL), WS_R_DUPLICATE_FIELD);
    EXPECT(rec("amoun\\u0074", "5", NULL), WS_R_DUPLICATE_FIELD);
    /* An escape that makes another name is another (ignored) key. */
    EXPECT(rec("wallet_id", NULL, "wallet_id\\u0000", "\"w\"", NULL),
           WS_R_MISSING_FIELD);
}

/* --------------------------------------------------------- precedence */

static void test_precedence_too_large_before_everything(void)
{
    const char *r = record_of_size(WS_MAX_RECORD + 1);

    memcpy(buf + 1, "\xFF", 1);    /* not UTF-8 any more */
    EXPECT_N(r, WS_MAX_RECORD + 1, WS_R_MESSAGE_TOO_LARGE);
}

static void test_precedence_invalid_json_before_not_an_object(void)
{
    EXPECT("[1,\xFF]", WS_R_INVALID_JSON);
    EXPECT("\"\xFF\"", WS_R_INVALID_JSON);
    EXPECT("[1,,2]", WS_R_INVALID_JSON);
}

static void test_precedence_invalid_json_before_field_errors(void)
{
    EXPECT("{\"transaction_id\":\"a\",\"transaction_id\":\"a\",}",
           WS_R_INVALID_JSON);
    EXPECT("{\"amount\":-5,}", WS_R_INVALID_JSON);
    EXPECT(rec("transaction_id", "17", "note", "[1,]", NULL),
           WS_R_INVALID_JSON);
}

static void test_precedence_duplicate_field_before_missing_field(void)
{
    EXPECT("{\"transaction_id\":\"a\",\"transactionId\":\"b\"}",
           WS_R_DUPLICATE_FIELD);
    EXPECT(rec("amount", NULL, "+wallet_id", "\"w\"", NULL),
           WS_R_DUPLICATE_FIELD);
    CHECK_DETAIL_NAMES("wallet_id");
    /* The missing field comes first in the table, the duplicate last. */
    EXPECT(rec("transaction_id", NULL, "+timestamp", "0", NULL),
           WS_R_DUPLICATE_FIELD);
    CHECK_DETAIL_NAMES("timestamp");
}

static void test_precedence_duplicate_field_before_invalid_values(void)
{
    EXPECT(rec("amount", "-5", "+amount", "-5", NULL), WS_R_DUPLICATE_FIELD);
    EXPECT(rec("transaction_id", "17", "+currency", "\"USD\"", NULL),
           WS_R_DUPLICATE_FIELD);
}

static void test_precedence_missing_field_before_invalid_field(void)
{
    EXPECT(rec("transaction_id", "17", "amount", NULL, NULL),
           WS_R_MISSING_FIELD);
    CHECK_DETAIL_NAMES("amount");
    EXPECT(rec("wallet_id", "\"\"", "timestamp", "null", NULL),
           WS_R_MISSING_FIELD);
    CHECK_DETAIL_NAMES("timestamp");
    EXPECT(rec("type", "\"Credit\"", "currency", NULL, NULL),
           WS_R_MISSING_FIELD);
}

/* Field errors follow the order of SPEC §2's table, whatever the order
 * of the fields in the record. */
static void test_precedence_fields_in_table_order(void)
{
    EXPECT(rec("transaction_id", "\"\"", "amount", "-5", NULL),
           WS_R_INVALID_FIELD);
    CHECK_DETAIL_NAMES("transaction_id");
    EXPECT(rec("transaction_id", "1", "wallet_id", "\"\"", NULL),
           WS_R_INVALID_FIELD);
    CHECK_DETAIL_NAMES("transaction_id");
    CHECK(strstr(detail, "wallet_id") == NULL);
    EXPECT(rec("transaction_id", "1", "product_id", "2", NULL),
           WS_R_INVALID_FIELD);
    CHECK_DETAIL_NAMES("transaction_id");
    CHECK(strstr(detail, "product_id") == NULL);
    EXPECT(rec("wallet_id", "1", "product_id", "2", NULL),
           WS_R_INVALID_FIELD);
    CHECK_DETAIL_NAMES("wallet_id");
    CHECK(strstr(detail, "product_id") == NULL);
    EXPECT(rec("product_id", "2", "type", "\"x\"", NULL), WS_R_INVALID_FIELD);
    CHECK_DETAIL_NAMES("product_id");
    EXPECT(rec("type", "\"x\"", "amount", "-5", NULL), WS_R_INVALID_TYPE);
    EXPECT(rec("amount", "-5", "currency", "\"US\"", NULL),
           WS_R_INVALID_AMOUNT);
    EXPECT(rec("amount", "1e99", "currency", "\"US\"", NULL),
           WS_R_AMOUNT_OUT_OF_RANGE);
    EXPECT(rec("currency", "\"US\"", "timestamp", "-1", NULL),
           WS_R_INVALID_CURRENCY);
    /* Reverse textual order: timestamp, currency, amount written first. */
    EXPECT("{\"timestamp\":-1,\"currency\":\"US\",\"amount\":-5,"
           "\"type\":\"credit\",\"product_id\":\"p1\",\"wallet_id\":\"w1\","
           "\"transaction_id\":\"t1\"}",
           WS_R_INVALID_AMOUNT);
    EXPECT("{\"timestamp\":-1,\"currency\":\"US\",\"amount\":5,"
           "\"type\":\"credit\",\"product_id\":\"p1\",\"wallet_id\":\"w1\","
           "\"transaction_id\":\"\"}",
           WS_R_INVALID_FIELD);
}

/* -------------------------------------------------------- conformance */

static FILE *open_example(const char *name)
{
    /* Tests run from the repository root (tests/run does so). */
    const char *dir = getenv("WALLETSTREAM_EXAMPLES");
    char path[1024];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir ? dir : "examples", name);
    f = fopen(path, "rb");
    if (!f)
        printf("  cannot open %s (run from the repository root, or set "
               "WALLETSTREAM_EXAMPLES)\n", path);
    return f;
}

static char *slurp(FILE *f, size_t *len)
{
    size_t cap = 1 << 20, n = 0, k;
    char *data = malloc(cap);

    while (data && (k = fread(data + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *bigger = realloc(data, cap *= 2);

            if (!bigger)
                free(data);
            data = bigger;
        }
    }
    fclose(f);
    *len = n;
    return data;
}

/* The reason of a reason name, WS_R_COUNT when there is none. */
static enum ws_reason reason_of(const char *name, size_t n)
{
    int r;

    for (r = 1; r < WS_R_COUNT; r++)
        if (strlen(ws_reason_name((enum ws_reason)r)) == n &&
            memcmp(ws_reason_name((enum ws_reason)r), name, n) == 0)
            return (enum ws_reason)r;
    return WS_R_COUNT;
}

/* The string value of "key": "..." in a JSON line, or NULL. */
static const char *json_str(const char *line, const char *key, size_t *n)
{
    char pat[64];
    const char *p, *end;

    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    p = strstr(line, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    end = strchr(p, '"');
    if (!end)
        return NULL;
    *n = (size_t)(end - p);
    return p;
}

static void test_conformance_examples_decode_to_their_reason(void)
{
    FILE *fin = open_example("conformance_input.jsonl");
    FILE *fout = open_example("conformance_outcomes.jsonl");
    char *in = NULL, *out = NULL;
    size_t in_len, out_len, ip = 0, op = 0;
    int line = 0, checked_reject = 0, checked_accept = 0;

    if (!fin || !fout) {
        if (fin)
            fclose(fin);
        if (fout)
            fclose(fout);
        CHECK(0);
        return;
    }
    in = slurp(fin, &in_len);
    out = slurp(fout, &out_len);
    if (!in || !out) {
        CHECK(0);
        goto done;
    }
    while (ip < in_len && op < out_len) {
        const char *rec_start = in + ip, *outcome, *reason;
        const char *nl = memchr(rec_start, '\n', in_len - ip);
        size_t rec_len = nl ? (size_t)(nl - rec_start) : in_len - ip;
        char *out_line = out + op, *onl = memchr(out_line, '\n', out_len - op);
        size_t on, rn;
        enum ws_reason want = WS_R_NONE, got;

        line++;
        ip += rec_len + 1;
        if (onl)
            *onl = '\0';
        op += strlen(out_line) + 1;

        outcome = json_str(out_line, "outcome", &on);
        reason = json_str(out_line, "reason", &rn);
        if (!outcome) {
            printf("  outcomes line %d has no outcome\n", line);
            CHECK(0);
            continue;
        }
        if (reason) {
            want = reason_of(reason, rn);
            if (want == WS_R_COUNT) {
                printf("  outcomes line %d: unknown reason %.*s\n", line,
                       (int)rn, reason);
                CHECK(0);
                continue;
            }
        }
        /* Reasons that need state are the engine's; to the decoder those
         * records are valid. */
        if (want == WS_R_CURRENCY_MISMATCH ||
            want == WS_R_CONFLICTING_DUPLICATE ||
            want == WS_R_AGGREGATE_OVERFLOW)
            want = WS_R_NONE;
        got = decode_n(rec_start, rec_len);
        if (got != want) {
            printf("  conformance line %d: got %s, want %s (detail \"%s\")\n",
                   line, reason_label(got), reason_label(want),
                   got == WS_R_NONE ? "" : detail);
            wstest_failed_checks++;
        }
        if (want == WS_R_NONE)
            checked_accept++;
        else
            checked_reject++;
    }
    CHECK_EQ_INT(line, 72);
    CHECK(checked_accept > 0 && checked_reject > 0);
done:
    free(in);
    free(out);
}

int main(void)
{
    if (ws_decoder_new(&dec) != WS_OK || !(buf = malloc(BUF_CAP))) {
        printf("cannot allocate the decoder\n");
        return 2;
    }

    RUN(test_canonical_record_decodes_every_field);
    RUN(test_spec_example_record_is_accepted);
    RUN(test_decode_works_without_a_detail_buffer);
    RUN(test_every_rejection_has_a_detail_sentence);

    RUN(test_transaction_id_aliases_are_accepted);
    RUN(test_wallet_id_aliases_are_accepted);
    RUN(test_product_id_aliases_are_accepted);
    RUN(test_only_the_listed_aliases_are_fields);
    RUN(test_field_given_twice_is_duplicate_field);
    RUN(test_field_given_twice_through_an_alias_is_duplicate_field);
    RUN(test_field_given_twice_with_one_null_is_duplicate_field);
    RUN(test_unknown_field_given_twice_is_not_an_error);
    RUN(test_absent_field_is_missing_field);
    RUN(test_null_field_counts_as_missing);
    RUN(test_string_null_is_not_missing);

    RUN(test_amount_as_number_and_as_string);
    RUN(test_amount_string_content_is_unescaped);
    RUN(test_amount_exponent_forms);
    RUN(test_amount_accepts_18_fraction_digits);
    RUN(test_amount_rejects_more_than_18_fraction_digits);
    RUN(test_amount_accepts_15_integer_digits);
    RUN(test_amount_rejects_more_than_15_integer_digits);
    RUN(test_amount_huge_exponents_are_out_of_range);
    RUN(test_amount_exponent_of_60000_digits_is_answered_fast);
    RUN(test_amount_negative_is_invalid_amount);
    RUN(test_amount_minus_zero_is_zero);
    RUN(test_amount_that_is_not_a_json_number_is_invalid_amount);

    RUN(test_currency_is_normalised_to_upper_case);
    RUN(test_currency_must_be_three_ascii_letters);
    RUN(test_type_names_the_four_kinds);
    RUN(test_type_is_case_sensitive);
    RUN(test_type_not_a_string_is_invalid_type);

    RUN(test_timestamp_with_z_or_lower_case_z);
    RUN(test_timestamp_offsets_are_normalised_to_utc);
    RUN(test_timestamp_without_offset_is_utc);
    RUN(test_timestamp_space_may_replace_t);
    RUN(test_timestamp_fraction_of_1_to_9_digits);
    RUN(test_timestamp_rejects_10_fraction_digits);
    RUN(test_timestamp_leap_days);
    RUN(test_timestamp_rejects_out_of_range_fields);
    RUN(test_timestamp_years_must_be_1970_to_9999);
    RUN(test_timestamp_offset_before_1970_is_rejected);
    RUN(test_timestamp_rejects_other_text);
    RUN(test_timestamp_string_content_is_unescaped);
    RUN(test_timestamp_epoch_milliseconds);
    RUN(test_timestamp_epoch_must_be_a_plain_integer);
    RUN(test_timestamp_epoch_as_a_string_is_rejected);
    RUN(test_timestamp_of_another_type_is_rejected);

    RUN(test_invalid_utf8_in_a_record_is_invalid_json);
    RUN(test_lone_surrogate_escape_in_an_id_is_invalid_field);
    RUN(test_surrogate_pair_escape_decodes_to_four_utf8_bytes);
    RUN(test_escapes_in_ids_are_decoded);
    RUN(test_control_characters_in_ids_are_invalid_field);
    RUN(test_raw_control_byte_inside_a_json_string_is_invalid_json);
    RUN(test_empty_id_is_invalid_field);
    RUN(test_id_of_256_bytes_is_accepted);
    RUN(test_id_of_257_bytes_is_invalid_field);
    RUN(test_id_length_counts_unescaped_bytes);
    RUN(test_id_that_is_not_a_string_is_invalid_field);
    RUN(test_id_valid_function_follows_the_id_rule);

    RUN(test_record_of_exactly_64_kib_is_not_too_large);
    RUN(test_record_over_64_kib_is_message_too_large);
    RUN(test_trailing_text_after_the_object_is_invalid_json);
    RUN(test_whitespace_around_the_object_is_allowed);
    RUN(test_only_json_whitespace_is_whitespace);
    RUN(test_two_objects_are_invalid_json);
    RUN(test_top_level_value_that_is_not_an_object);
    RUN(test_malformed_top_level_value_is_invalid_json);
    RUN(test_empty_or_blank_input_is_invalid_json);
    RUN(test_truncated_json_is_invalid_json);
    RUN(test_malformed_json_in_an_ignored_field_is_invalid_json);
    RUN(test_well_formed_ignored_fields_are_accepted);
    RUN(test_unknown_fields_are_ignored);
    RUN(test_nesting_up_to_64_levels_is_accepted);
    RUN(test_deep_nesting_is_invalid_json);
    RUN(test_deeply_nested_objects_are_invalid_json);
    RUN(test_keys_written_with_escapes_match_their_field);

    RUN(test_precedence_too_large_before_everything);
    RUN(test_precedence_invalid_json_before_not_an_object);
    RUN(test_precedence_invalid_json_before_field_errors);
    RUN(test_precedence_duplicate_field_before_missing_field);
    RUN(test_precedence_duplicate_field_before_invalid_values);
    RUN(test_precedence_missing_field_before_invalid_field);
    RUN(test_precedence_fields_in_table_order);

    RUN(test_conformance_examples_decode_to_their_reason);

    ws_decoder_free(dec);
    free(buf);
    return WSTEST_END();
}
