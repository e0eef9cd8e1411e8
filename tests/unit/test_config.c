/*
 * test_config.c - options: defaults, WALLETSTREAM_* variables, flags,
 * -X properties, precedence and usage errors (SPEC §6).
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ws.h"
#include "wstest.h"

static int parse(ws_config *c, enum ws_cmd cmd, int argc, char **argv,
                 int *npos)
{
    char err[WS_CONFIG_ERR_MAX];
    int e = ws_config_parse(c, cmd, argc, argv, npos, err);

    if (e == WS_ERR_USAGE)
        printf("  usage error: %s\n", err);
    return e;
}

static void test_defaults_follow_the_spec(void)
{
    ws_config c;
    int npos;

    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 0, NULL, &npos), WS_OK);
    CHECK_EQ_STR(c.data_dir, "./data");
    CHECK_EQ_STR(c.listen, "127.0.0.1:8000");
    CHECK_EQ_STR(c.topic, "transactions_topic");
    CHECK_EQ_STR(c.group, "walletstream");
    CHECK_EQ_STR(c.brokers, "localhost:9092");  /* SPEC §6: Kafka's own */
    CHECK_EQ_INT(c.embedded_broker, 0);  /* the test broker: by choice only */
    CHECK_EQ_INT(ws_config_given(&c, "brokers"), 0);
    CHECK_EQ_INT(c.nprops, 0);
    CHECK_EQ_INT(npos, 0);
}

static void test_embedded_broker_is_a_switch(void)
{
    char err[WS_CONFIG_ERR_MAX];
    char *flag[] = {"--embedded-broker"};
    char *off[] = {"--embedded-broker=0"};
    char *bad[] = {"--embedded-broker=yes"};
    char *brokers[] = {"--brokers", "k:9092", "--embedded-broker"};
    ws_config c;
    int npos;

    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 1, flag, &npos), WS_OK);
    CHECK_EQ_INT(c.embedded_broker, 1);
    CHECK_EQ_INT(npos, 0);      /* takes no value: nothing left over */
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 1, off, &npos), WS_OK);
    CHECK_EQ_INT(c.embedded_broker, 0);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 1, bad, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "not 1 or 0") != NULL);
    setenv("WALLETSTREAM_EMBEDDED_BROKER", "1", 1);
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 0, NULL, &npos), WS_OK);
    CHECK_EQ_INT(c.embedded_broker, 1);
    unsetenv("WALLETSTREAM_EMBEDDED_BROKER");
    /* produce has no such option */
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_PRODUCE, 1, flag, &npos, err),
                 WS_ERR_USAGE);
    /* given: by flag or variable, not by default (run refuses both) */
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 3, brokers, &npos), WS_OK);
    CHECK_EQ_INT(ws_config_given(&c, "brokers"), 1);
    CHECK_EQ_INT(ws_config_given(&c, "topic"), 0);
    setenv("WALLETSTREAM_BROKERS", "e:1", 1);
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 0, NULL, &npos), WS_OK);
    CHECK_EQ_INT(ws_config_given(&c, "brokers"), 1);
    unsetenv("WALLETSTREAM_BROKERS");
}

static void test_flags_in_both_spellings(void)
{
    char *argv[] = {"--data-dir", "d1", "--listen=0.0.0.0:9", "--batch-max",
                    "7", "--max-state-size", "2M"};
    ws_config c;
    int npos;

    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 7, argv, &npos), WS_OK);
    CHECK_EQ_STR(c.data_dir, "d1");
    CHECK_EQ_STR(c.listen, "0.0.0.0:9");
    CHECK_EQ_INT(c.batch_max, 7);
    CHECK_EQ_INT(c.max_state_size, 2 << 20);
}

static void test_environment_sets_every_option_and_flags_win(void)
{
    char *argv[] = {"--topic", "from_flag"};
    ws_config c;
    int npos;

    setenv("WALLETSTREAM_TOPIC", "from_env", 1);
    setenv("WALLETSTREAM_BATCH_LINGER", "9", 1);
    setenv("WALLETSTREAM_BROKERS", "k1:9092,k2:9092", 1);
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 0, NULL, &npos), WS_OK);
    CHECK_EQ_STR(c.topic, "from_env");
    CHECK_EQ_INT(c.batch_linger_ms, 9);
    CHECK_EQ_STR(c.brokers, "k1:9092,k2:9092");
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 2, argv, &npos), WS_OK);
    CHECK_EQ_STR(c.topic, "from_flag");
    unsetenv("WALLETSTREAM_TOPIC");
    unsetenv("WALLETSTREAM_BATCH_LINGER");
    unsetenv("WALLETSTREAM_BROKERS");
}

static void test_x_properties_from_flags_and_environment(void)
{
    char *argv[] = {"-X", "security.protocol=SASL_SSL", "-Xsasl.mechanism=PLAIN",
                    "file.jsonl"};
    ws_config c;
    int npos;

    setenv("WALLETSTREAM_X", "client.rack=r1;fetch.wait.max.ms=50", 1);
    CHECK_EQ_INT(parse(&c, WS_CMD_PRODUCE, 4, argv, &npos), WS_OK);
    CHECK_EQ_INT(c.nprops, 4);
    if (c.nprops == 4) {
        /* environment first, so flags override it */
        CHECK_EQ_STR(c.props[0], "client.rack=r1");
        CHECK_EQ_STR(c.props[1], "fetch.wait.max.ms=50");
        CHECK_EQ_STR(c.props[2], "security.protocol=SASL_SSL");
        CHECK_EQ_STR(c.props[3], "sasl.mechanism=PLAIN");
    }
    CHECK_EQ_INT(npos, 1);
    CHECK_EQ_STR(argv[0], "file.jsonl");
    unsetenv("WALLETSTREAM_X");
}

static void test_positional_arguments_are_collected_in_order(void)
{
    char *argv[] = {"a.jsonl", "--data-dir", "d", "b.jsonl", "--", "--c"};
    ws_config c;
    int npos;

    CHECK_EQ_INT(parse(&c, WS_CMD_REPLAY, 6, argv, &npos), WS_OK);
    CHECK_EQ_INT(npos, 3);
    CHECK_EQ_STR(argv[0], "a.jsonl");
    CHECK_EQ_STR(argv[1], "b.jsonl");
    CHECK_EQ_STR(argv[2], "--c");
}

static void test_usage_errors(void)
{
    char err[WS_CONFIG_ERR_MAX];
    char *unknown[] = {"--nope"};
    char *missing[] = {"--data-dir"};
    char *badnum[] = {"--batch-max", "ten"};
    char *zero[] = {"--batch-max", "0"};
    char *badsize[] = {"--max-state-size", "5Q"};
    char *badx[] = {"-X", "novalue"};
    char *other_cmd[] = {"--brokers", "x"};
    ws_config c;
    int npos;

    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 1, unknown, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "--nope") != NULL);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 1, missing, &npos, err),
                 WS_ERR_USAGE);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 2, badnum, &npos, err),
                 WS_ERR_USAGE);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 2, zero, &npos, err),
                 WS_ERR_USAGE);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 2, badsize, &npos, err),
                 WS_ERR_USAGE);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 2, badx, &npos, err),
                 WS_ERR_USAGE);
    /* an option of another command */
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_SERVE, 2, other_cmd, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "not an option of this command") != NULL);
    setenv("WALLETSTREAM_BATCH_MAX", "-3", 1);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_REPLAY, 0, NULL, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "WALLETSTREAM_BATCH_MAX") != NULL);
    unsetenv("WALLETSTREAM_BATCH_MAX");
}

static void test_choice_options_take_only_their_values(void)
{
    char err[WS_CONFIG_ERR_MAX];
    char *json[] = {"--log-format", "json", "--log-level=debug",
                    "--changelog", "off"};
    char *badfmt[] = {"--log-format", "xml"};
    char *badlevel[] = {"--log-level", "loud"};
    ws_config c;
    int npos;

    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 0, NULL, &npos), WS_OK);
    CHECK_EQ_STR(c.log_format, "text");
    CHECK_EQ_STR(c.log_level, "info");
    CHECK_EQ_STR(c.changelog, "auto");
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 5, json, &npos), WS_OK);
    CHECK_EQ_STR(c.log_format, "json");
    CHECK_EQ_STR(c.log_level, "debug");
    CHECK_EQ_STR(c.changelog, "off");
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_SERVE, 2, badfmt, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "text|json") != NULL);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_REPLAY, 2, badlevel, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "\"loud\"") != NULL);
    setenv("WALLETSTREAM_LOG_FORMAT", "yaml", 1);
    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_SERVE, 0, NULL, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "WALLETSTREAM_LOG_FORMAT") != NULL);
    unsetenv("WALLETSTREAM_LOG_FORMAT");
}

static void test_empty_values_only_where_the_default_is_empty(void)
{
    char err[WS_CONFIG_ERR_MAX];
    char *empty_dir[] = {"--data-dir="};
    char *empty_token[] = {"--api-token-file", ""};
    ws_config c;
    int npos;

    CHECK_EQ_INT(ws_config_parse(&c, WS_CMD_RUN, 1, empty_dir, &npos, err),
                 WS_ERR_USAGE);
    CHECK(strstr(err, "--data-dir") != NULL);
    CHECK_EQ_INT(parse(&c, WS_CMD_RUN, 2, empty_token, &npos), WS_OK);
    CHECK_EQ_STR(c.api_token_file, "");
}

static void test_help_is_asked(void)
{
    char *argv[] = {"--data-dir", "d", "--help"};
    ws_config c;
    int npos;

    CHECK_EQ_INT(parse(&c, WS_CMD_SERVE, 3, argv, &npos), 1);
}

int main(void)
{
    RUN(test_defaults_follow_the_spec);
    RUN(test_embedded_broker_is_a_switch);
    RUN(test_flags_in_both_spellings);
    RUN(test_environment_sets_every_option_and_flags_win);
    RUN(test_x_properties_from_flags_and_environment);
    RUN(test_positional_arguments_are_collected_in_order);
    RUN(test_usage_errors);
    RUN(test_choice_options_take_only_their_values);
    RUN(test_empty_values_only_where_the_default_is_empty);
    RUN(test_help_is_asked);
    return WSTEST_END();
}
