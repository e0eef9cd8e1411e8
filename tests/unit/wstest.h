/*
 * wstest.h - the smallest test harness that does the job.
 *
 * A test is a `static void test_name(void)` registered in main with
 * RUN(test_name). CHECK(cond) records a failure with file:line and goes on;
 * CHECK_EQ_STR / CHECK_EQ_INT print both sides. Each test prints
 * "PASS name" or "FAIL name"; WSTEST_END() prints "N passed, M failed"
 * and returns the exit code.
 */
#ifndef WSTEST_H
#define WSTEST_H

#include <stdio.h>
#include <string.h>

static int wstest_failed_checks;
static int wstest_passed, wstest_failed;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__,      \
                   #cond);                                                 \
            wstest_failed_checks++;                                        \
        }                                                                  \
    } while (0)

#define CHECK_EQ_STR(got, want)                                            \
    do {                                                                   \
        const char *g_ = (got), *w_ = (want);                              \
        if (strcmp(g_, w_) != 0) {                                         \
            printf("  %s:%d: got \"%s\", want \"%s\"\n", __FILE__,         \
                   __LINE__, g_, w_);                                      \
            wstest_failed_checks++;                                        \
        }                                                                  \
    } while (0)

#define CHECK_EQ_INT(got, want)                                            \
    do {                                                                   \
        long long g_ = (long long)(got), w_ = (long long)(want);           \
        if (g_ != w_) {                                                    \
            printf("  %s:%d: %s is %lld, want %lld\n", __FILE__, __LINE__, \
                   #got, g_, w_);                                          \
            wstest_failed_checks++;                                        \
        }                                                                  \
    } while (0)

#define RUN(test)                                                          \
    do {                                                                   \
        int before_ = wstest_failed_checks;                                \
        test();                                                            \
        if (wstest_failed_checks == before_) {                             \
            printf("PASS %s\n", #test);                                    \
            wstest_passed++;                                               \
        } else {                                                           \
            printf("FAIL %s\n", #test);                                    \
            wstest_failed++;                                               \
        }                                                                  \
        fflush(stdout);                                                    \
    } while (0)

#define WSTEST_END()                                                       \
    (printf("%d passed, %d failed\n", wstest_passed, wstest_failed),       \
     wstest_failed ? 1 : 0)

#endif
