/*
 * test_repartition.c - the repartitioner's marks as the instances read
 * them (src/repartition.c, ws_repartition_mark_parse; repartition.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repartition.h"
#include "wstest.h"

#define MAX 4

static int32_t parts[MAX];
static int64_t nexts[MAX];

/* Parses s from a heap copy of exactly its length (a read past the end
 * is an AddressSanitizer error). */
static int parse(const char *s, int max)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    int k;

    if (!copy)
        return -9;
    memcpy(copy, s, n);
    memset(parts, 0xff, sizeof parts);
    memset(nexts, 0xff, sizeof nexts);
    k = ws_repartition_mark_parse(copy, n, parts, nexts, max);
    free(copy);
    return k;
}

static void test_a_mark_names_each_partition_and_its_next_offset(void)
{
    CHECK_EQ_INT(parse("0:12,3:456", MAX), 2);
    CHECK_EQ_INT(parts[0], 0);
    CHECK_EQ_INT(nexts[0], 12);
    CHECK_EQ_INT(parts[1], 3);
    CHECK_EQ_INT(nexts[1], 456);
    CHECK_EQ_INT(parse("1023:9223372036854775", MAX), 1);
    CHECK_EQ_INT(parts[0], 1023);
    CHECK_EQ_INT(nexts[0], INT64_C(9223372036854775));
}

static void test_a_malformed_mark_is_refused(void)
{
    static const char *const bad[] = {
        "", ",", "0", "0:", ":5", "0:1,", "0:1,,2:3", "a:1", "0:1;2:3",
        "0:x", "-1:5", "0:-5", "1024:1", "99999999:1", "0:1 ",
        "0:99999999999999999999",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse(bad[i], MAX) != -1) {
            printf("  \"%s\" was read as a mark\n", bad[i]);
            CHECK(0);
        }
}

static void test_a_mark_longer_than_room_is_refused(void)
{
    CHECK_EQ_INT(parse("0:1,1:2,2:3,3:4", MAX), 4);
    CHECK_EQ_INT(parse("0:1,1:2,2:3,3:4,4:5", MAX), -1);
    CHECK_EQ_INT(parse("0:1", 0), -1);
}

int main(void)
{
    RUN(test_a_mark_names_each_partition_and_its_next_offset);
    RUN(test_a_malformed_mark_is_refused);
    RUN(test_a_mark_longer_than_room_is_refused);
    return WSTEST_END();
}
