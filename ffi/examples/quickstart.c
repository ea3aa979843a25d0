/*
 * quickstart.c: embed writesync in a C program.
 *
 * Creates an account, an API key and a connection, writes a customer with a push to the
 * connection, then plays the host that does its own networking: takes the due push, "sends"
 * it (here: pretends the source application answered 201), reports the outcome, and reads the
 * final sync status.
 *
 * Build (from the repository root, after `cargo build -p writesync-ffi --release`):
 *   cc -Iffi/include ffi/examples/quickstart.c -Ltarget/release -lwritesync_ffi -Wl,-rpath,"$PWD/target/release" -o quickstart
 * Run:
 *   ./quickstart quickstart.db
 *
 * JSON is built and read with plain string functions to keep the example short; a real
 * program would use its JSON library.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "writesync.h"

#define ADMIN "example-admin-token"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Print the error of a failed call and exit. */
static void check(writesync_result rc, const char *what) {
    if (rc == WRITESYNC_OK) return;
    char msg[512];
    writesync_last_error_message(msg, sizeof msg, NULL);
    fprintf(stderr, "%s failed (%d): %s\n", what, (int)rc, msg);
    exit(1);
}

/* Send one request envelope; returns the answer (free with writesync_string_free). */
static char *request(writesync_engine *e, const char *envelope) {
    char *answer = NULL;
    check(writesync_handle(e, envelope, now_ms(), &answer), "writesync_handle");
    printf("> %s\n< %s\n\n", envelope, answer);
    return answer;
}

/* Copy the first string value of "key" in `json` into out; with in_body, look inside the
 * answer's body text (where quotes are escaped). Naive, for this example's ids only. */
static void field(const char *json, const char *key, int in_body, char *out, size_t n) {
    char pat[64];
    const char *p;
    out[0] = 0;
    if (in_body) snprintf(pat, sizeof pat, "\\\"%s\\\":\\\"", key); /* \"key\":\" */
    else snprintf(pat, sizeof pat, "\"%s\":\"", key);
    if ((p = strstr(json, pat)) == NULL) return;
    p += strlen(pat);
    size_t i = 0;
    while (p[i] && p[i] != '"' && p[i] != '\\' && i + 1 < n) {
        out[i] = p[i];
        i++;
    }
    out[i] = 0;
}

static void base64(const char *s, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned)(unsigned char)s[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

int main(int argc, char **argv) {
    const char *db = argc > 1 ? argv[1] : "quickstart.db";
    char env[2048], account[64], key[64], secret[128], pair[256], auth[400], sync_id[64], work_id[128];
    writesync_engine *e = NULL;

    check(writesync_open(db, "{\"adminToken\":\"" ADMIN "\",\"pushRetrySchedule\":[1,5,30]}", &e),
          "writesync_open");

    /* An account with write mode on, an API key, and a connection to push to. */
    char *a = request(e, "{\"method\":\"POST\",\"path\":\"/admin/accounts\",\"headers\":{"
                         "\"Authorization\":\"Bearer " ADMIN "\",\"Content-Type\":\"application/json\"},"
                         "\"body\":\"{\\\"domain\\\":\\\"acme.example.com\\\",\\\"writeEnabled\\\":true}\"}");
    field(a, "id", 1, account, sizeof account);
    writesync_string_free(a);
    if (!account[0]) {
        fprintf(stderr, "no account (run again with a new database file)\n");
        return 1;
    }
    snprintf(env, sizeof env,
             "{\"method\":\"POST\",\"path\":\"/admin/accounts/%s/api-keys\",\"headers\":{"
             "\"Authorization\":\"Bearer " ADMIN "\",\"Content-Type\":\"application/json\"},"
             "\"body\":\"{\\\"scopes\\\":[\\\"api.read\\\",\\\"api.write\\\"]}\"}",
             account);
    char *k = request(e, env);
    field(k, "key", 1, key, sizeof key);
    field(k, "secret", 1, secret, sizeof secret);
    writesync_string_free(k);
    snprintf(env, sizeof env,
             "{\"method\":\"POST\",\"path\":\"/admin/accounts/%s/connections\",\"headers\":{"
             "\"Authorization\":\"Bearer " ADMIN "\",\"Content-Type\":\"application/json\"},"
             "\"body\":\"{\\\"app\\\":\\\"quickbooks\\\",\\\"type\\\":\\\"accounting\\\","
             "\\\"pushUrl\\\":\\\"https://quickbooks.example.com/push\\\"}\"}",
             account);
    writesync_string_free(request(e, env));

    /* A write that pushes to the connection. */
    snprintf(pair, sizeof pair, "%s:%s", key, secret);
    base64(pair, auth);
    snprintf(env, sizeof env,
             "{\"method\":\"POST\",\"path\":\"/api/customers\",\"headers\":{"
             "\"Authorization\":\"Basic %s\",\"Content-Type\":\"application/json\","
             "\"X-Sync-Data\":\"push\",\"X-Tracking-ID\":\"quickstart-1\"},"
             "\"body\":\"{\\\"name\\\":\\\"Acme Ltd\\\",\\\"email\\\":\\\"ap@acme.example.com\\\"}\"}",
             auth);
    char *w = request(e, env);
    field(w, "X-Sync-ID", 0, sync_id, sizeof sync_id);
    writesync_string_free(w);

    /* The host's side: take the due push, perform it, report what happened. */
    char *work = NULL;
    check(writesync_due(e, now_ms(), &work), "writesync_due");
    printf("due: %s\n\n", work);
    field(work, "id", 0, work_id, sizeof work_id);
    writesync_string_free(work);
    /* ... POST the item's request.body to request.url with request.headers here ... */
    char result[512];
    snprintf(result, sizeof result,
             "{\"id\":\"%s\",\"status\":201,\"headers\":{},\"body\":\"{\\\"id\\\":\\\"QB-1001\\\"}\"}", work_id);
    check(writesync_report(e, result, now_ms()), "writesync_report");

    snprintf(env, sizeof env,
             "{\"method\":\"GET\",\"path\":\"/api/syncs/%s\",\"headers\":{\"Authorization\":\"Basic %s\"}}",
             sync_id, auth);
    writesync_string_free(request(e, env));

    int64_t next = 0;
    check(writesync_next_deadline(e, &next), "writesync_next_deadline");
    if (next == WRITESYNC_NO_DEADLINE) printf("nothing more is owed\n");
    else printf("next work is due at %lld\n", (long long)next);

    check(writesync_close(e), "writesync_close");
    return 0;
}
