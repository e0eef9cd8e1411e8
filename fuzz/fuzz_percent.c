/*
 * fuzz_percent.c - strict percent-decoding of request paths and queries
 * (ws_api_percent_decode, src/api.c).
 *
 * The input's first byte is the output capacity (0-255, as the id buffer
 * is WS_MAX_ID); the rest is the encoded text. Properties:
 *   - the decoder writes at most `cap` bytes and never reads past n
 *     (AddressSanitizer: the text is a heap copy of exactly its length);
 *   - it succeeds exactly when every '%' starts "%XX" with two hex digits
 *     and the decoded length fits: checked against an independent count;
 *   - text without '%' decodes to itself;
 *   - re-encoding the output as %XX for every byte and decoding again
 *     gives the same bytes (upper- and lower-case hex alike).
 */
#include <string.h>

#include "api.h"
#include "fuzz.h"

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char digits[2][17] = {"0123456789ABCDEF", "0123456789abcdef"};
    size_t cap, n, len = 0, want = 0, i, k, elen, len2 = 0;
    char *in, *out, *enc, *out2;
    int wellformed = 1, rc;

    if (size == 0)
        return 0;
    cap = data[0];
    n = size - 1;
    in = malloc(n ? n : 1);
    out = malloc(cap ? cap : 1);
    PROPERTY(in && out);
    memcpy(in, data + 1, n);

    for (i = 0; i < n; i++, want++) {
        if (in[i] != '%')
            continue;
        if (i + 2 >= n || !is_hex(in[i + 1]) || !is_hex(in[i + 2])) {
            wellformed = 0;
            break;
        }
        i += 2;
    }
    rc = ws_api_percent_decode(in, n, out, cap, &len);
    PROPERTY(rc == 0 || rc == -1);
    PROPERTY((rc == 0) == (wellformed && want <= cap));
    if (rc == 0) {
        PROPERTY(len == want && len <= n);
        if (!memchr(in, '%', n))
            PROPERTY(len == n && memcmp(in, out, n) == 0);

        elen = 3 * len;
        enc = malloc(elen ? elen : 1);
        out2 = malloc(len ? len : 1);
        PROPERTY(enc && out2);
        for (k = 0; k < len; k++) {
            unsigned char c = (unsigned char)out[k];
            const char *dg = digits[(c ^ data[0]) & 1];

            enc[3 * k] = '%';
            enc[3 * k + 1] = dg[c >> 4];
            enc[3 * k + 2] = dg[c & 15];
        }
        PROPERTY(ws_api_percent_decode(enc, elen, out2, len, &len2) == 0);
        PROPERTY(len2 == len && memcmp(out, out2, len) == 0);
        free(enc);
        free(out2);
    }
    free(in);
    free(out);
    return 0;
}
