/*
 * members.c - the group's members, described every second.
 */
#include "members.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"
#include "ws.h"

#define REFRESH_MS 1000
#define DESCRIBE_TIMEOUT_MS 5000
#define MAX_MEMBERS 64
#define MAX_PARTITIONS 1024
#define URL_PREFIX "walletstream "

struct member {
    char instance[256];
    char url[WS_MEMBERS_URL_MAX];
};

struct ws_members {
    rd_kafka_t *rk;
    char *group, *topic, *self;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop, poke, started;
    uint64_t generation;        /* descriptions made so far */
    /* The last description (under lock). */
    int described;
    int64_t described_ms;
    char state[32];
    struct member members[MAX_MEMBERS];
    int nmembers;
    short owner[MAX_PARTITIONS];    /* member index, -1: none */
};

/* One description of the group into m (under its lock). */
static void describe(ws_members *m)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(m->rk);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(m->rk, RD_KAFKA_ADMIN_OP_ANY);
    const char *groups[1] = {m->group};
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_DescribeConsumerGroups_result_t *res;
    const rd_kafka_ConsumerGroupDescription_t **gd;
    size_t ng = 0, i, k;
    int p;

    if (q && opt) {
        rd_kafka_AdminOptions_set_request_timeout(opt, DESCRIBE_TIMEOUT_MS,
                                                  NULL, 0);
        rd_kafka_DescribeConsumerGroups(m->rk, groups, 1, opt, q);
        ev = rd_kafka_queue_poll(q, DESCRIBE_TIMEOUT_MS + 1000);
    }
    if (ev && !rd_kafka_event_error(ev) &&
        (res = rd_kafka_event_DescribeConsumerGroups_result(ev)) &&
        (gd = rd_kafka_DescribeConsumerGroups_result_groups(res, &ng)) &&
        ng == 1 && !rd_kafka_ConsumerGroupDescription_error(gd[0])) {
        size_t nm = rd_kafka_ConsumerGroupDescription_member_count(gd[0]);

        pthread_mutex_lock(&m->lock);
        snprintf(m->state, sizeof m->state, "%s",
                 rd_kafka_consumer_group_state_name(
                     rd_kafka_ConsumerGroupDescription_state(gd[0])));
        for (p = 0; p < MAX_PARTITIONS; p++)
            m->owner[p] = -1;
        m->nmembers = 0;
        for (i = 0; i < nm && m->nmembers < MAX_MEMBERS; i++) {
            const rd_kafka_MemberDescription_t *md =
                rd_kafka_ConsumerGroupDescription_member(gd[0], i);
            const char *cid = rd_kafka_MemberDescription_client_id(md);
            const char *iid =
                rd_kafka_MemberDescription_group_instance_id(md);
            const rd_kafka_MemberAssignment_t *ma =
                rd_kafka_MemberDescription_assignment(md);
            const rd_kafka_topic_partition_list_t *tp =
                ma ? rd_kafka_MemberAssignment_partitions(ma) : NULL;
            struct member *mb = &m->members[m->nmembers];

            if (!cid || strncmp(cid, URL_PREFIX, strlen(URL_PREFIX)) != 0)
                continue;   /* not an instance of walletstream */
            snprintf(mb->url, sizeof mb->url, "%s",
                     cid + strlen(URL_PREFIX));
            snprintf(mb->instance, sizeof mb->instance, "%s",
                     iid ? iid : rd_kafka_MemberDescription_consumer_id(md));
            for (k = 0; tp && k < (size_t)tp->cnt; k++)
                if (strcmp(tp->elems[k].topic, m->topic) == 0 &&
                    tp->elems[k].partition >= 0 &&
                    tp->elems[k].partition < MAX_PARTITIONS)
                    m->owner[tp->elems[k].partition] = (short)m->nmembers;
            m->nmembers++;
        }
        m->described = 1;
        m->described_ms = ws_clock_ms();
        pthread_mutex_unlock(&m->lock);
    } else if (ev) {
        ws_log(WS_LOG_DEBUG, "group", "cannot describe group %s: %s",
               m->group, rd_kafka_event_error_string(ev));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    if (opt)
        rd_kafka_AdminOptions_destroy(opt);
    if (q)
        rd_kafka_queue_destroy(q);
}

static void *run(void *arg)
{
    ws_members *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        struct timespec until;

        m->poke = 0;
        pthread_mutex_unlock(&m->lock);
        describe(m);
        pthread_mutex_lock(&m->lock);
        m->generation++;    /* a try, answered or not */
        pthread_cond_broadcast(&m->wake);
        ws_clock_deadline(&until, REFRESH_MS);
        while (!m->stop && !m->poke &&
               pthread_cond_timedwait(&m->wake, &m->lock, &until) !=
                   ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int ws_members_start(rd_kafka_t *admin, const char *group, const char *topic,
                     const char *self, ws_members **out)
{
    ws_members *m = calloc(1, sizeof *m);
    int p;

    *out = NULL;
    if (!m)
        return WS_ERR_NOMEM;
    m->rk = admin;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    for (p = 0; p < MAX_PARTITIONS; p++)
        m->owner[p] = -1;
    if (!(m->group = strdup(group)) || !(m->topic = strdup(topic)) ||
        !(m->self = strdup(self)) ||
        pthread_create(&m->thread, NULL, run, m) != 0) {
        ws_members_stop(m);
        return WS_ERR_NOMEM;
    }
    m->started = 1;
    *out = m;
    return WS_OK;
}

void ws_members_stop(ws_members *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (m->started)
        pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m->group);
    free(m->topic);
    free(m->self);
    free(m);
}

void ws_members_refresh(ws_members *m)
{
    pthread_mutex_lock(&m->lock);
    m->poke = 1;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
}

void ws_members_refresh_wait(ws_members *m, int timeout_ms)
{
    struct timespec until;
    uint64_t want;

    ws_clock_deadline(&until, timeout_ms);
    pthread_mutex_lock(&m->lock);
    /* A description begun after this call: the one under way may have
     * asked before the change that made the caller ask. */
    want = m->generation + 2;
    m->poke = 1;
    pthread_cond_broadcast(&m->wake);
    while (!m->stop && m->generation < want &&
           pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&m->lock);
}

int ws_members_owner(ws_members *m, int p, char *url, size_t cap)
{
    int e = WS_ERR_NOT_FOUND, i;

    if (p < 0 || p >= MAX_PARTITIONS)
        return e;
    pthread_mutex_lock(&m->lock);
    if ((i = m->owner[p]) >= 0) {
        snprintf(url, cap, "%s", m->members[i].url);
        e = strcmp(m->members[i].url, m->self) == 0 ? 1 : WS_OK;
    }
    pthread_mutex_unlock(&m->lock);
    return e;
}

static int by_instance(const void *a, const void *b)
{
    const struct member *x = *(const struct member *const *)a;
    const struct member *y = *(const struct member *const *)b;

    return strcmp(x->instance, y->instance);
}

uint64_t ws_members_standby(ws_members *m, const char *self, int replicas)
{
    const struct member *sorted[MAX_MEMBERS];
    int rank[MAX_MEMBERS], i, j, p, n, me = -1;
    uint64_t mask = 0;

    pthread_mutex_lock(&m->lock);
    n = m->nmembers;
    for (i = 0; i < n; i++)
        sorted[i] = &m->members[i];
    qsort(sorted, (size_t)n, sizeof sorted[0], by_instance);
    for (i = 0; i < n; i++) {
        rank[sorted[i] - m->members] = i;
        if (strcmp(sorted[i]->instance, self) == 0)
            me = i;
    }
    for (p = 0; me >= 0 && p < 64 && p < MAX_PARTITIONS; p++) {
        int o = m->owner[p];

        if (o < 0 || rank[o] == me)
            continue;
        for (j = 1; j <= replicas && j < n; j++)
            if ((rank[o] + j) % n == me)
                mask |= (uint64_t)1 << p;
    }
    pthread_mutex_unlock(&m->lock);
    return mask;
}

int ws_members_peers(ws_members *m, char urls[][WS_MEMBERS_URL_MAX], int cap)
{
    int i, n = 0;

    pthread_mutex_lock(&m->lock);
    if (!m->described)
        n = -1;
    for (i = 0; n >= 0 && i < m->nmembers && n < cap; i++)
        if (strcmp(m->members[i].url, m->self) != 0)
            snprintf(urls[n++], WS_MEMBERS_URL_MAX, "%s", m->members[i].url);
    pthread_mutex_unlock(&m->lock);
    return n;
}

void ws_members_json(ws_members *m, ws_buf *b)
{
    int i, p, first;

    pthread_mutex_lock(&m->lock);
    ws_buf_puts(b, "{\"group\":");
    ws_json_str(b, m->group, strlen(m->group));
    ws_buf_puts(b, ",\"topic\":");
    ws_json_str(b, m->topic, strlen(m->topic));
    ws_buf_puts(b, ",\"self\":");
    ws_json_str(b, m->self, strlen(m->self));
    ws_buf_puts(b, ",\"state\":");
    ws_json_str(b, m->state, strlen(m->state));
    ws_buf_puts(b, ",\"members\":[");
    for (i = 0; i < m->nmembers; i++) {
        ws_buf_puts(b, i ? ",{\"instance\":" : "{\"instance\":");
        ws_json_str(b, m->members[i].instance, strlen(m->members[i].instance));
        ws_buf_puts(b, ",\"url\":");
        ws_json_str(b, m->members[i].url, strlen(m->members[i].url));
        ws_buf_puts(b, ",\"partitions\":[");
        for (p = 0, first = 1; p < MAX_PARTITIONS; p++)
            if (m->owner[p] == i) {
                ws_buf_printf(b, first ? "%d" : ",%d", p);
                first = 0;
            }
        ws_buf_puts(b, "]}");
    }
    ws_buf_printf(b, "],\"described_ms_ago\":%lld}",
                  m->described ? (long long)(ws_clock_ms() - m->described_ms)
                               : -1LL);
    pthread_mutex_unlock(&m->lock);
}
