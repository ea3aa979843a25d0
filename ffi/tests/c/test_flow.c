/*
 * A pushing write through writesync_due / writesync_report to a final sync status (with a
 * retry, a close and reopen of the file in between, and the webhook it causes), the built-in
 * host driver (writesync_run_due) refusing a loopback target and a name resolving to a refused
 * address, answering token requests through the configured broker, and one engine shared by
 * several threads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define ADMIN "admin-token-c"
#define T0 INT64_C(1790000000000)
#define CONFIG "{\"adminToken\":\"" ADMIN "\",\"seed\":\"c-flow\",\"pushRetrySchedule\":[1,2]," \
               "\"webhookRetrySchedule\":[1]}"

/* A request envelope; `auth` is the whole Authorization value or NULL, `headers` extra
 * "name":"value" pairs or "", `body` JSON text or NULL. Free with free(). */
static char *envelope(const char *method, const char *path, const char *auth, const char *headers,
                      const char *body) {
    sbuf b = {0};
    sb_add(&b, "{\"method\":");
    sb_quote(&b, method);
    sb_add(&b, ",\"path\":");
    sb_quote(&b, path);
    sb_add(&b, ",\"headers\":{\"Content-Type\":\"application/json\"");
    if (auth) {
        sb_add(&b, ",\"Authorization\":");
        sb_quote(&b, auth);
    }
    if (headers && *headers) {
        sb_add(&b, ",");
        sb_add(&b, headers);
    }
    sb_add(&b, "}");
    if (body) {
        sb_add(&b, ",\"body\":");
        sb_quote(&b, body);
    }
    sb_add(&b, "}");
    return b.p;
}

static jval *send_req(const writesync_engine *e, int64_t now, const char *method, const char *path,
                      const char *auth, const char *headers, const char *body) {
    char *req = envelope(method, path, auth, headers, body);
    jval *v = req ? call(e, now, req) : NULL;
    free(req);
    return v;
}

static jval *admin(const writesync_engine *e, const char *method, const char *path, const char *body) {
    return send_req(e, T0, method, path, "Bearer " ADMIN, "", body);
}

/* The id field of an answer's body, copied into out. */
static void body_id(const jval *answer, char *out, size_t n) {
    jval *b = body_of(answer);
    const char *id = json_get_str(b, "id");
    snprintf(out, n, "%s", id ? id : "");
    json_free(b);
}

typedef struct {
    char account[64];
    char auth[512];
} tenant;

/* An account with write mode on, an API key (t->auth), the connection `connection_body` and,
 * when webhook_url is not NULL, a webhook for api_push_complete. */
static int make_tenant_with(const writesync_engine *e, const char *connection_body, const char *webhook_url,
                            tenant *t) {
    jval *a = admin(e, "POST", "/admin/accounts", "{\"domain\":\"acme.example.com\",\"writeEnabled\":true}");
    CHECK(status_of(a) == 201, "account: %d", status_of(a));
    body_id(a, t->account, sizeof t->account);
    json_free(a);
    char path[256], body[512];
    snprintf(path, sizeof path, "/admin/accounts/%s/api-keys", t->account);
    jval *k = admin(e, "POST", path, "{\"scopes\":[\"api.read\",\"api.write\"]}");
    CHECK(status_of(k) == 201, "key: %d", status_of(k));
    jval *kb = body_of(k);
    const char *key = json_get_str(kb, "key"), *secret = json_get_str(kb, "secret");
    int ok = key && secret;
    if (ok) {
        char pair[256], enc[400];
        snprintf(pair, sizeof pair, "%s:%s", key, secret);
        base64(pair, enc);
        snprintf(t->auth, sizeof t->auth, "Basic %s", enc);
    }
    json_free(kb);
    json_free(k);
    snprintf(path, sizeof path, "/admin/accounts/%s/connections", t->account);
    jval *c = admin(e, "POST", path, connection_body);
    CHECK(status_of(c) == 201, "connection: %d", status_of(c));
    json_free(c);
    if (webhook_url) {
        snprintf(path, sizeof path, "/admin/accounts/%s/webhooks", t->account);
        snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"api_push_complete\"]}", webhook_url);
        jval *w = admin(e, "POST", path, body);
        CHECK(status_of(w) == 201, "webhook: %d", status_of(w));
        json_free(w);
    }
    return ok;
}

/* make_tenant_with a generic quickbooks connection pushing to push_url. */
static int make_tenant(const writesync_engine *e, const char *push_url, const char *webhook_url, tenant *t) {
    char body[512];
    snprintf(body, sizeof body, "{\"app\":\"quickbooks\",\"type\":\"accounting\",\"pushUrl\":\"%s\"}", push_url);
    return make_tenant_with(e, body, webhook_url, t);
}

static jval *due(const writesync_engine *e, int64_t now) {
    char *out = NULL;
    CHECK_RC(writesync_due(e, now, &out), WRITESYNC_OK);
    jval *v = json_parse_str(out, NULL);
    CHECK(v && v->type == J_ARR, "due answered %s", out ? out : "NULL");
    if (out) writesync_string_free(out);
    return v;
}

static int64_t deadline(const writesync_engine *e) {
    int64_t d = -1;
    CHECK_RC(writesync_next_deadline(e, &d), WRITESYNC_OK);
    return d;
}

static writesync_result report(const writesync_engine *e, const char *id, const char *rest, int64_t now) {
    sbuf b = {0};
    sb_add(&b, "{\"id\":");
    sb_quote(&b, id);
    sb_add(&b, ",");
    sb_add(&b, rest);
    sb_add(&b, "}");
    writesync_result rc = b.p ? writesync_report(e, b.p, now) : WRITESYNC_INVALID_ARGUMENT;
    sb_free(&b);
    return rc;
}

static jval *get_sync(const writesync_engine *e, const tenant *t, const char *sync_id, int64_t now) {
    char path[256];
    snprintf(path, sizeof path, "/api/syncs/%s", sync_id);
    jval *a = send_req(e, now, "GET", path, t->auth, "", NULL);
    CHECK(status_of(a) == 200, "sync: %d", status_of(a));
    jval *b = body_of(a);
    json_free(a);
    return b;
}

static const jval *first_target(const jval *sync) {
    const jval *targets = json_get(sync, "targets");
    return targets && targets->type == J_ARR && targets->n > 0 ? targets->items[0] : NULL;
}

static void push_through_due_and_report(void) {
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, CONFIG, &e), WRITESYNC_OK);
    if (!e) return;
    tenant t;
    make_tenant(e, "https://qb.example.com/push", "https://hooks.example.com/in", &t);

    jval *w = send_req(e, T0 + 1, "POST", "/api/customers", t.auth,
                       "\"X-Sync-Data\":\"push\",\"X-Tracking-ID\":\"trk-c\"", "{\"name\":\"Acme Ltd\"}");
    CHECK(status_of(w) == 201, "write: %d", status_of(w));
    const char *sid = header_of(w, "X-Sync-ID");
    const char *targets = header_of(w, "X-Sync-Targets");
    CHECK(sid != NULL, "no X-Sync-ID");
    CHECK(targets && strcmp(targets, "quickbooks") == 0, "targets %s", targets ? targets : "NULL");
    CHECK(header_of(w, "X-Request-ID") != NULL, "no X-Request-ID");
    char sync_id[64];
    snprintf(sync_id, sizeof sync_id, "%s", sid ? sid : "");
    json_free(w);

    CHECK(deadline(e) == T0 + 1, "deadline %lld", (long long)deadline(e));
    jval *items = due(e, T0 + 1);
    CHECK(items && items->n == 1, "one push due");
    char item_id[128] = "", idem[128] = "";
    if (items && items->n == 1) {
        const jval *it = items->items[0];
        const jval *req = json_get(it, "request");
        snprintf(item_id, sizeof item_id, "%s", json_get_str(it, "id") ? json_get_str(it, "id") : "");
        CHECK(strcmp(json_get_str(it, "kind") ? json_get_str(it, "kind") : "", "push") == 0, "kind");
        CHECK(strcmp(json_get_str(req, "url") ? json_get_str(req, "url") : "", "https://qb.example.com/push") == 0, "url");
        const char *key = json_get_str(json_get(req, "headers"), "Idempotency-Key");
        snprintf(idem, sizeof idem, "%s", key ? key : "");
        CHECK(key != NULL, "no Idempotency-Key");
        const jval *body = json_get(req, "body");
        jval *pb = body && body->type == J_STR ? json_parse(body->str, body->len, NULL) : NULL;
        const char *op = json_get_str(pb, "operation"), *ot = json_get_str(pb, "objectType");
        const char *trk = json_get_str(pb, "trackingId");
        CHECK(op && strcmp(op, "create") == 0, "operation");
        CHECK(ot && strcmp(ot, "customer") == 0, "objectType");
        CHECK(trk && strcmp(trk, "trk-c") == 0, "trackingId");
        json_free(pb);
    }
    json_free(items);

    /* A retryable failure: the push is scheduled again, no sooner than Retry-After. */
    CHECK_RC(report(e, item_id, "\"status\":503,\"headers\":{\"Retry-After\":\"3\"},\"body\":\"busy\"", T0 + 100),
             WRITESYNC_OK);
    CHECK_RC(report(e, item_id, "\"status\":201", T0 + 100), WRITESYNC_ENGINE_ERROR);
    CHECK(strncmp(last_error(), "unknown_work: ", 14) == 0, "message %s", last_error());
    jval *s = get_sync(e, &t, sync_id, T0 + 200);
    const char *st = json_get_str(s, "status");
    CHECK(st && strcmp(st, "in_progress") == 0, "sync status %s", st ? st : "NULL");
    json_free(s);
    int64_t retry_at = deadline(e);
    CHECK(retry_at >= T0 + 3100 && retry_at != WRITESYNC_NO_DEADLINE, "retry at %lld", (long long)retry_at);
    items = due(e, T0 + 200);
    CHECK(items && items->n == 0, "nothing due before the retry");
    json_free(items);

    /* The retry survives closing and reopening the file. */
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    e = NULL;
    CHECK_RC(writesync_open(db.path, CONFIG, &e), WRITESYNC_OK);
    if (!e) return;
    CHECK(deadline(e) == retry_at, "deadline after reopening");
    items = due(e, retry_at);
    CHECK(items && items->n == 1, "the retry is due");
    if (items && items->n == 1) {
        const jval *it = items->items[0];
        const char *key = json_get_str(json_get(json_get(it, "request"), "headers"), "Idempotency-Key");
        CHECK(key && strcmp(key, idem) == 0, "same Idempotency-Key on the retry");
        snprintf(item_id, sizeof item_id, "%s", json_get_str(it, "id") ? json_get_str(it, "id") : "");
    }
    json_free(items);
    CHECK_RC(report(e, item_id, "\"status\":201,\"headers\":{},\"body\":\"{\\\"id\\\":\\\"QB-42\\\"}\"", retry_at + 50),
             WRITESYNC_OK);

    s = get_sync(e, &t, sync_id, retry_at + 60);
    st = json_get_str(s, "status");
    CHECK(st && strcmp(st, "succeeded") == 0, "final sync status %s", st ? st : "NULL");
    const jval *target = first_target(s);
    const char *remote = json_get_str(target, "remoteId"), *tst = json_get_str(target, "status");
    const jval *attempts = json_get(target, "attempts");
    CHECK(remote && strcmp(remote, "QB-42") == 0, "remoteId");
    CHECK(tst && strcmp(tst, "succeeded") == 0, "target status");
    CHECK(attempts && attempts->type == J_NUM && attempts->num == 2, "attempts");
    const char *trk = json_get_str(s, "trackingId");
    CHECK(trk && strcmp(trk, "trk-c") == 0, "trackingId kept");
    json_free(s);

    /* The final status caused an api_push_complete delivery. */
    items = due(e, retry_at + 60);
    CHECK(items && items->n == 1, "one webhook due");
    if (items && items->n == 1) {
        const jval *it = items->items[0];
        const char *kind = json_get_str(it, "kind");
        CHECK(kind && strcmp(kind, "webhook") == 0, "kind webhook");
        const jval *body = json_get(json_get(it, "request"), "body");
        jval *pb = body && body->type == J_STR ? json_parse(body->str, body->len, NULL) : NULL;
        const char *ev = json_get_str(pb, "event");
        CHECK(ev && strcmp(ev, "api_push_complete") == 0, "event");
        json_free(pb);
        CHECK_RC(report(e, json_get_str(it, "id"), "\"status\":200", retry_at + 70), WRITESYNC_OK);
    }
    json_free(items);
    CHECK(deadline(e) == WRITESYNC_NO_DEADLINE, "nothing owed at the end");

    /* Retention: the delivered delivery goes after deliveryRetentionMs (7 days), once. */
    size_t removed = 99;
    CHECK_RC(writesync_prune(e, retry_at + 1000, 100, &removed), WRITESYNC_OK);
    CHECK(removed == 0, "nothing expired yet: %zu", removed);
    int64_t later = retry_at + INT64_C(8) * 24 * 3600 * 1000;
    CHECK_RC(writesync_prune(e, later, 100, &removed), WRITESYNC_OK);
    CHECK(removed > 0, "the finished delivery expired");
    CHECK_RC(writesync_prune(e, later, 100, &removed), WRITESYNC_OK);
    CHECK(removed == 0, "pruned once: %zu", removed);
    s = get_sync(e, &t, sync_id, later);
    st = json_get_str(s, "status");
    CHECK(st && strcmp(st, "succeeded") == 0, "the sync itself is kept");
    json_free(s);

    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    temp_db_remove(&db);
}

static void run_due_refuses_loopback(void) {
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    /* No allowTargetCidrs: loopback is refused, so this sends no traffic at all. */
    CHECK_RC(writesync_open(db.path, "{\"adminToken\":\"" ADMIN "\",\"seed\":\"r\",\"outboundTimeoutMs\":5000}", &e),
             WRITESYNC_OK);
    if (!e) return;
    tenant t;
    make_tenant(e, "http://localhost:9/push", NULL, &t);
    /* A literal refused address is refused at registration. */
    char path[256];
    snprintf(path, sizeof path, "/admin/accounts/%s/connections", t.account);
    jval *c = admin(e, "POST", path, "{\"app\":\"xero\",\"type\":\"accounting\",\"pushUrl\":\"http://127.0.0.1:9/\"}");
    CHECK(status_of(c) == 422, "literal loopback: %d", status_of(c));
    json_free(c);

    jval *w = send_req(e, T0, "POST", "/api/customers", t.auth, "\"X-Sync-Data\":\"push\"", "{\"name\":\"Acme\"}");
    const char *sid = header_of(w, "X-Sync-ID");
    char sync_id[64];
    snprintf(sync_id, sizeof sync_id, "%s", sid ? sid : "");
    json_free(w);
    CHECK_RC(writesync_run_due(e, T0), WRITESYNC_OK);
    jval *s = get_sync(e, &t, sync_id, T0 + 1000);
    const char *st = json_get_str(s, "status");
    CHECK(st && strcmp(st, "failed") == 0, "refused push fails the sync: %s", st ? st : "NULL");
    const jval *target = first_target(s);
    const char *err = json_get_str(target, "lastError");
    const jval *attempts = json_get(target, "attempts");
    CHECK(err && strncmp(err, "refused", 7) == 0, "lastError %s", err ? err : "NULL");
    CHECK(attempts && attempts->num == 1, "not retried");
    json_free(s);
    CHECK(deadline(e) == WRITESYNC_NO_DEADLINE, "nothing owed after a refusal");
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    temp_db_remove(&db);
}

/* A one-shot HTTP server on 127.0.0.1: answers `expected` requests, a request to a path
 * ending in /token as a token broker (200 {"accessToken":"tok-c",...}), any other with
 * 200 {"id":"R-1"}. Keeps the first line and the start of the first two requests. */
typedef struct {
    int fd;
    int port;
    int expected;
    int served;
    char first_line[2][128];
    char request[2][2048];
} mini_server;

static int mini_server_start(mini_server *m, int expected) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(m, 0, sizeof *m);
    m->expected = expected;
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (m->fd < 0) return 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(m->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(m->fd, 4) != 0 ||
        getsockname(m->fd, (struct sockaddr *)&a, &len) != 0) {
        close(m->fd);
        return 0;
    }
    m->port = ntohs(a.sin_port);
    return 1;
}

static void *mini_server_run(void *arg) {
    mini_server *m = arg;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 12\r\nConnection: close\r\n\r\n{\"id\":\"R-1\"}";
    static const char token[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Content-Length: 49\r\nConnection: close\r\n\r\n"
                                "{\"accessToken\":\"tok-c\",\"expiresAt\":4102444800000}";
    while (m->served < m->expected) {
        struct pollfd p = {m->fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) break; /* never hang the tests */
        int c = accept(m->fd, NULL, NULL);
        if (c < 0) break;
        char buf[8192];
        size_t got = 0;
        /* Read the head and the body (Content-Length) of the request. */
        for (;;) {
            struct pollfd q = {c, POLLIN, 0};
            if (poll(&q, 1, 10000) <= 0) break;
            ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
            if (n <= 0) break;
            got += (size_t)n;
            buf[got] = 0;
            char *end = strstr(buf, "\r\n\r\n");
            char *cl = strcasestr(buf, "content-length:");
            if (end && cl && got >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 15)) break;
            if (got == sizeof buf - 1) break;
        }
        size_t l = strcspn(buf, "\r\n");
        int is_token = strncmp(buf, "POST /token ", 12) == 0;
        if (m->served < 2) {
            snprintf(m->first_line[m->served], sizeof m->first_line[0], "%.*s", (int)l, buf);
            snprintf(m->request[m->served], sizeof m->request[0], "%.2047s", buf);
        }
        ssize_t w = is_token ? write(c, token, sizeof token - 1) : write(c, answer, sizeof answer - 1);
        (void)w;
        close(c);
        m->served++;
    }
    close(m->fd);
    return NULL;
}

static void run_due_pushes_to_an_allowed_local_server(void) {
    mini_server m;
    CHECK(mini_server_start(&m, 2), "cannot listen on 127.0.0.1");
    if (!m.port) return;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, mini_server_run, &m) == 0, "pthread_create");
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, "{\"adminToken\":\"" ADMIN "\",\"seed\":\"l\","
                                     "\"allowTargetCidrs\":[\"127.0.0.0/8\"],\"outboundTimeoutMs\":10000}",
                            &e),
             WRITESYNC_OK);
    if (e) {
        char push[128], hook[128];
        snprintf(push, sizeof push, "http://127.0.0.1:%d/push", m.port);
        snprintf(hook, sizeof hook, "http://127.0.0.1:%d/hook", m.port);
        tenant t;
        make_tenant(e, push, hook, &t);
        jval *w = send_req(e, T0, "POST", "/api/customers", t.auth, "\"X-Sync-Data\":\"push\"", "{\"name\":\"Acme\"}");
        const char *sid = header_of(w, "X-Sync-ID");
        char sync_id[64];
        snprintf(sync_id, sizeof sync_id, "%s", sid ? sid : "");
        json_free(w);
        /* One call: the push, then the api_push_complete delivery that its success causes. */
        CHECK_RC(writesync_run_due(e, T0), WRITESYNC_OK);
        jval *s = get_sync(e, &t, sync_id, T0 + 1000);
        const char *st = json_get_str(s, "status");
        CHECK(st && strcmp(st, "succeeded") == 0, "sync status %s", st ? st : "NULL");
        const char *remote = json_get_str(first_target(s), "remoteId");
        CHECK(remote && strcmp(remote, "R-1") == 0, "remoteId %s", remote ? remote : "NULL");
        json_free(s);
        CHECK(deadline(e) == WRITESYNC_NO_DEADLINE, "the delivery was delivered too");
        CHECK_RC(writesync_close(e), WRITESYNC_OK);
    }
    pthread_join(th, NULL);
    CHECK(m.served == 2, "server saw %d requests", m.served);
    CHECK(strcmp(m.first_line[0], "POST /push HTTP/1.1") == 0, "first request: %s", m.first_line[0]);
    CHECK(strcmp(m.first_line[1], "POST /hook HTTP/1.1") == 0, "second request: %s", m.first_line[1]);
    temp_db_remove(&db);
}

/* A provider connection (HubSpot) needs an access token before its push: the token request
 * is POSTed to the broker of the configuration's tokenUrl, and the push carries the token the
 * broker answered. The broker and the provider are one loopback server. */
static void run_due_answers_token_items_through_the_configured_broker(void) {
    mini_server m;
    CHECK(mini_server_start(&m, 2), "cannot listen on 127.0.0.1");
    if (!m.port) return;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, mini_server_run, &m) == 0, "pthread_create");
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    char config[512];
    snprintf(config, sizeof config,
             "{\"adminToken\":\"" ADMIN "\",\"seed\":\"tok\",\"allowTargetCidrs\":[\"127.0.0.0/8\"],"
             "\"tokenUrl\":\"http://127.0.0.1:%d/token\",\"senders\":2}",
             m.port);
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, config, &e), WRITESYNC_OK);
    if (e) {
        char conn[256];
        snprintf(conn, sizeof conn,
                 "{\"app\":\"hubspot\",\"type\":\"crm\",\"connector\":\"hubspot\","
                 "\"baseUrl\":\"http://127.0.0.1:%d\"}",
                 m.port);
        tenant t;
        make_tenant_with(e, conn, NULL, &t);
        jval *w = send_req(e, T0, "POST", "/api/customers", t.auth, "\"X-Sync-Data\":\"push\"", "{\"name\":\"Acme\"}");
        CHECK(status_of(w) == 201, "write: %d", status_of(w));
        const char *sid = header_of(w, "X-Sync-ID");
        char sync_id[64];
        snprintf(sync_id, sizeof sync_id, "%s", sid ? sid : "");
        json_free(w);
        /* One call, on two sender threads: the token request, then the push that waited for it. */
        CHECK_RC(writesync_run_due(e, T0), WRITESYNC_OK);
        jval *s = get_sync(e, &t, sync_id, T0 + 1000);
        const char *st = json_get_str(s, "status");
        CHECK(st && strcmp(st, "succeeded") == 0, "sync status %s", st ? st : "NULL");
        const char *remote = json_get_str(first_target(s), "remoteId");
        CHECK(remote && strcmp(remote, "R-1") == 0, "remoteId %s", remote ? remote : "NULL");
        json_free(s);
        CHECK(deadline(e) == WRITESYNC_NO_DEADLINE, "nothing owed");
        CHECK_RC(writesync_close(e), WRITESYNC_OK);
    }
    pthread_join(th, NULL);
    CHECK(m.served == 2, "server saw %d requests", m.served);
    CHECK(strcmp(m.first_line[0], "POST /token HTTP/1.1") == 0, "first request: %s", m.first_line[0]);
    CHECK(strstr(m.request[0], "\"connectionId\"") && strstr(m.request[0], "\"app\":\"hubspot\""),
          "token request body: %s", m.request[0]);
    CHECK(strcmp(m.first_line[1], "POST /crm/v3/objects/companies HTTP/1.1") == 0, "second request: %s",
          m.first_line[1]);
    CHECK(strcasestr(m.request[1], "\r\nauthorization: Bearer tok-c\r\n") != NULL,
          "the push carries the broker's token: %s", m.request[1]);
    temp_db_remove(&db);
}

/* Without tokenUrl a token request fails at once, and the push waiting for it fails with that
 * reason; nothing is sent. */
static void run_due_without_a_broker_fails_token_items(void) {
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, "{\"adminToken\":\"" ADMIN "\",\"seed\":\"nob\"}", &e), WRITESYNC_OK);
    if (!e) return;
    tenant t;
    /* The provider is never reached: the token request fails first. */
    make_tenant_with(e, "{\"app\":\"hubspot\",\"type\":\"crm\",\"connector\":\"hubspot\",\"baseUrl\":\"https://hubspot.example.com\"}",
                     NULL, &t);
    jval *w = send_req(e, T0, "POST", "/api/customers", t.auth, "\"X-Sync-Data\":\"push\"", "{\"name\":\"Acme\"}");
    const char *sid = header_of(w, "X-Sync-ID");
    char sync_id[64];
    snprintf(sync_id, sizeof sync_id, "%s", sid ? sid : "");
    json_free(w);
    CHECK_RC(writesync_run_due(e, T0), WRITESYNC_OK);
    jval *s = get_sync(e, &t, sync_id, T0 + 1000);
    const char *st = json_get_str(s, "status");
    CHECK(st && strcmp(st, "failed") == 0, "sync status %s", st ? st : "NULL");
    const char *err = json_get_str(first_target(s), "lastError");
    CHECK(err && strstr(err, "no token source"), "lastError %s", err ? err : "NULL");
    json_free(s);
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    temp_db_remove(&db);
}

/* `localhost` resolves to loopback; the policy allows a loopback address, but not that one
 * (127.0.0.2/32 only). The push is refused on the addresses the name resolved to, which are
 * the only ones it could connect to: it fails at once, and the server listening on
 * 127.0.0.1 never sees a connection. */
static void run_due_refuses_a_name_resolving_to_a_restricted_address(void) {
    mini_server m;
    CHECK(mini_server_start(&m, 0), "cannot listen on 127.0.0.1");
    if (!m.port) return;
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, "{\"adminToken\":\"" ADMIN "\",\"seed\":\"rn\","
                                     "\"allowTargetCidrs\":[\"127.0.0.2/32\"]}",
                            &e),
             WRITESYNC_OK);
    if (e) {
        char push[128];
        snprintf(push, sizeof push, "http://localhost:%d/push", m.port);
        tenant t;
        make_tenant(e, push, NULL, &t);
        jval *w = send_req(e, T0, "POST", "/api/customers", t.auth, "\"X-Sync-Data\":\"push\"", "{\"name\":\"Acme\"}");
        const char *sid = header_of(w, "X-Sync-ID");
        char sync_id[64];
        snprintf(sync_id, sizeof sync_id, "%s", sid ? sid : "");
        json_free(w);
        CHECK_RC(writesync_run_due(e, T0), WRITESYNC_OK);
        jval *s = get_sync(e, &t, sync_id, T0 + 1000);
        const char *st = json_get_str(s, "status");
        CHECK(st && strcmp(st, "failed") == 0, "refused push fails the sync: %s", st ? st : "NULL");
        const jval *target = first_target(s);
        const char *err = json_get_str(target, "lastError");
        const jval *attempts = json_get(target, "attempts");
        CHECK(err && strncmp(err, "refused address: localhost resolves only to ", 44) == 0,
              "lastError %s", err ? err : "NULL");
        CHECK(err && strstr(err, "127.0.0.1"), "names the address: %s", err ? err : "NULL");
        CHECK(attempts && attempts->num == 1, "not retried");
        json_free(s);
        CHECK(deadline(e) == WRITESYNC_NO_DEADLINE, "nothing owed after a refusal");
        CHECK_RC(writesync_close(e), WRITESYNC_OK);
    }
    struct pollfd p = {m.fd, POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 0, "no connection reached 127.0.0.1");
    close(m.fd);
    temp_db_remove(&db);
}

#define THREADS 4
#define PER_THREAD 10

typedef struct {
    const writesync_engine *e;
    int index;
    int created;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    for (int j = 0; j < PER_THREAD; j++) {
        char body[128];
        snprintf(body, sizeof body, "{\"domain\":\"t%d-%d.example.com\"}", w->index, j);
        char *req = envelope("POST", "/admin/accounts", "Bearer " ADMIN, "", body);
        char *out = NULL;
        if (req && writesync_handle(w->e, req, T0, &out) == WRITESYNC_OK) {
            jval *a = json_parse_str(out, NULL);
            if (status_of(a) == 201) w->created++;
            json_free(a);
            writesync_string_free(out);
        }
        free(req);
    }
    /* A failure on this thread leaves a message for this thread only. */
    writesync_handle(w->e, NULL, T0, NULL);
    return NULL;
}

static void one_engine_many_threads(void) {
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, CONFIG, &e), WRITESYNC_OK);
    if (!e) return;
    /* This thread's message must survive the other threads' failures. */
    CHECK_RC(writesync_string_free(NULL), WRITESYNC_INVALID_ARGUMENT);
    pthread_t th[THREADS];
    worker ws[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ws[i] = (worker){e, i, 0};
        CHECK(pthread_create(&th[i], NULL, work, &ws[i]) == 0, "pthread_create");
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].created;
    }
    CHECK(total == THREADS * PER_THREAD, "created %d accounts", total);
    CHECK(strcmp(last_error(), "string is NULL") == 0, "message is per thread: %s", last_error());
    /* A duplicate of one of them is a conflict: every write landed in the same file. */
    jval *dup = admin(e, "POST", "/admin/accounts", "{\"domain\":\"t3-9.example.com\"}");
    CHECK(status_of(dup) == 409, "duplicate domain: %d", status_of(dup));
    json_free(dup);
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    temp_db_remove(&db);
}

/* A push handed out and never reported (the process "crashed"): a reopened engine hands it out
 * again only when its lease runs out, unless writesync_recover makes it due at once. */
static void recover_hands_out_again_what_a_crash_left_out(void) {
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(db.path, CONFIG, &e), WRITESYNC_OK);
    if (!e) return;
    tenant t;
    make_tenant(e, "https://qb.example.com/push", NULL, &t);
    jval *w = send_req(e, T0, "POST", "/api/customers", t.auth, "\"X-Sync-Data\":\"push\"",
                       "{\"name\":\"Acme Ltd\"}");
    CHECK(status_of(w) == 201, "write: %d", status_of(w));
    json_free(w);
    jval *items = due(e, T0);
    CHECK(items && items->n == 1, "one push handed out");
    char first[128] = "";
    if (items && items->n == 1) snprintf(first, sizeof first, "%s", json_get_str(items->items[0], "id"));
    json_free(items);
    CHECK_RC(writesync_close(e), WRITESYNC_OK);

    e = NULL;
    CHECK_RC(writesync_open(db.path, CONFIG, &e), WRITESYNC_OK);
    if (!e) return;
    items = due(e, T0 + 1000);
    CHECK(items && items->n == 0, "still leased: nothing due");
    json_free(items);
    size_t written = 99;
    CHECK_RC(writesync_recover(e, T0 + 1000, &written), WRITESYNC_OK);
    CHECK(written == 2, "recover wrote %zu rows (the wake-up entry moved)", written);
    items = due(e, T0 + 1000);
    CHECK(items && items->n == 1, "handed out again at once");
    if (items && items->n == 1) {
        const char *again = json_get_str(items->items[0], "id");
        CHECK(again && strcmp(again, first) != 0, "a new attempt: %s after %s", again ? again : "NULL", first);
    }
    json_free(items);
    CHECK_RC(writesync_recover(e, T0 + 2000, NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_recover(NULL, T0 + 2000, &written), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    temp_db_remove(&db);
}

void test_flow(void) {
    push_through_due_and_report();
    recover_hands_out_again_what_a_crash_left_out();
    run_due_refuses_loopback();
    run_due_pushes_to_an_allowed_local_server();
    run_due_answers_token_items_through_the_configured_broker();
    run_due_without_a_broker_fails_token_items();
    run_due_refuses_a_name_resolving_to_a_restricted_address();
    one_engine_many_threads();
}
