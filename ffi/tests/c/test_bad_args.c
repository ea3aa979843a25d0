/*
 * Bad arguments: NULL pointers, strings that are not UTF-8, text that is not JSON or not of the
 * right shape, bad configurations, storage that cannot be opened, unknown work ids, and the
 * error message function itself. Each is reported with its code and a message; none crashes.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CFG "{\"adminToken\":\"t\",\"seed\":\"bad-args\"}"

static const char BAD_UTF8[] = {'{', '"', (char)0xff, (char)0xfe, '"', '}', 0};

static int message_starts(const char *prefix) {
    return strncmp(last_error(), prefix, strlen(prefix)) == 0;
}

static void open_and_close(const char *dir) {
    writesync_engine *e = (writesync_engine *)&e; /* not NULL: must be reset on failure */
    char path[400];
    snprintf(path, sizeof path, "%s/x.db", dir);

    CHECK_RC(writesync_open(NULL, CFG, &e), WRITESYNC_INVALID_ARGUMENT);
    CHECK(e == NULL, "engine_out reset to NULL on failure");
    CHECK(strcmp(last_error(), "db_path is NULL") == 0, "%s", last_error());
    CHECK_RC(writesync_open(path, NULL, &e), WRITESYNC_INVALID_ARGUMENT);
    CHECK(strcmp(last_error(), "config_json is NULL") == 0, "%s", last_error());
    CHECK_RC(writesync_open(path, CFG, NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_open(BAD_UTF8, CFG, &e), WRITESYNC_INVALID_UTF8);
    CHECK(message_starts("db_path is not valid UTF-8"), "%s", last_error());
    CHECK_RC(writesync_open(path, BAD_UTF8, &e), WRITESYNC_INVALID_UTF8);
    CHECK_RC(writesync_open(path, "{", &e), WRITESYNC_INVALID_JSON);
    CHECK(message_starts("config_json: "), "%s", last_error());
    CHECK_RC(writesync_open(path, "[1,2]", &e), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_open(path, "{\"adminTokn\":\"t\"}", &e), WRITESYNC_INVALID_JSON);
    CHECK(strstr(last_error(), "adminTokn") != NULL, "names the unknown field: %s", last_error());
    CHECK_RC(writesync_open(path, "{\"pushRetrySchedule\":[-1]}", &e), WRITESYNC_ENGINE_ERROR);
    CHECK(message_starts("invalid_input: "), "%s", last_error());
    CHECK_RC(writesync_open(path, "{\"allowTargetCidrs\":[\"nope\"]}", &e), WRITESYNC_ENGINE_ERROR);
    CHECK_RC(writesync_open(path, "{\"outboundTimeoutMs\":-5}", &e), WRITESYNC_ENGINE_ERROR);
    CHECK_RC(writesync_open("/nonexistent-writesync-dir/a/b.db", CFG, &e), WRITESYNC_STORAGE_ERROR);
    CHECK(message_starts("storage: "), "%s", last_error());
    CHECK(e == NULL, "no engine after a failure");

    CHECK_RC(writesync_close(NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK(strcmp(last_error(), "engine is NULL") == 0, "%s", last_error());
    CHECK_RC(writesync_string_free(NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK(strcmp(last_error(), "string is NULL") == 0, "%s", last_error());

    /* Without a seed the engine draws one from the OS. */
    CHECK_RC(writesync_open(path, "{}", &e), WRITESYNC_OK);
    CHECK(e != NULL, "engine");
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
}

static void calls_on_an_engine(const char *dir) {
    char path[400];
    snprintf(path, sizeof path, "%s/y.db", dir);
    writesync_engine *e = NULL;
    CHECK_RC(writesync_open(path, CFG, &e), WRITESYNC_OK);
    if (!e) return;
    const char *ok_req = "{\"method\":\"GET\",\"path\":\"/healthz\"}";
    char *out = (char *)ok_req; /* not NULL: must be reset on failure */

    /* writesync_handle */
    CHECK_RC(writesync_handle(NULL, ok_req, 0, &out), WRITESYNC_INVALID_ARGUMENT);
    CHECK(out == NULL, "response_json_out reset to NULL on failure");
    CHECK_RC(writesync_handle(e, NULL, 0, &out), WRITESYNC_INVALID_ARGUMENT);
    CHECK(strcmp(last_error(), "request_json is NULL") == 0, "%s", last_error());
    CHECK_RC(writesync_handle(e, ok_req, 0, NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_handle(e, BAD_UTF8, 0, &out), WRITESYNC_INVALID_UTF8);
    CHECK_RC(writesync_handle(e, "not json", 0, &out), WRITESYNC_INVALID_JSON);
    CHECK(message_starts("request_json: "), "%s", last_error());
    CHECK_RC(writesync_handle(e, "{\"path\":\"/healthz\"}", 0, &out), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_handle(e, "{\"method\":\"GET\",\"path\":\"/healthz\",\"headers\":{\"A\":1}}", 0, &out),
             WRITESYNC_INVALID_JSON);
    CHECK(out == NULL, "still NULL");
    /* A bad request inside a good envelope is an answer, not an error. */
    jval *a = call(e, 0, "{\"method\":\"POST\",\"path\":\"/admin/accounts\",\"headers\":"
                         "{\"Authorization\":\"Bearer t\",\"Content-Type\":\"application/json\"},"
                         "\"body\":\"{not json\"}");
    CHECK(status_of(a) == 400, "malformed body: %d", status_of(a));
    json_free(a);
    a = call(e, 0, "{\"method\":\"GET\",\"path\":\"/admin/accounts/x\",\"headers\":{\"Authorization\":\"Bearer no\"}}");
    CHECK(status_of(a) == 401, "bad token: %d", status_of(a));
    json_free(a);
    a = call(e, 0, ok_req);
    CHECK(status_of(a) == 200, "healthz: %d", status_of(a));
    json_free(a);

    /* writesync_due / writesync_due_limit */
    out = (char *)ok_req;
    CHECK_RC(writesync_due(NULL, 0, &out), WRITESYNC_INVALID_ARGUMENT);
    CHECK(out == NULL, "work_json_out reset");
    CHECK_RC(writesync_due(e, 0, NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_due_limit(NULL, 0, 5, &out), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_due_limit(e, 0, 5, NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_due(e, 0, &out), WRITESYNC_OK);
    CHECK(out && strcmp(out, "[]") == 0, "nothing due: %s", out ? out : "NULL");
    CHECK_RC(writesync_string_free(out), WRITESYNC_OK);

    /* writesync_report */
    CHECK_RC(writesync_report(NULL, "{\"id\":\"t.x.1\",\"status\":200}", 0), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_report(e, NULL, 0), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_report(e, BAD_UTF8, 0), WRITESYNC_INVALID_UTF8);
    CHECK_RC(writesync_report(e, "{\"id\":", 0), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_report(e, "{\"status\":200}", 0), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_report(e, "{\"id\":7,\"status\":200}", 0), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_report(e, "{\"id\":\"t.x.1\",\"what\":1}", 0), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_report(e, "{\"id\":\"t.x.1\",\"status\":\"200\"}", 0), WRITESYNC_INVALID_JSON);
    CHECK_RC(writesync_report(e, "{\"id\":\"t.x.1\",\"status\":200}", 0), WRITESYNC_ENGINE_ERROR);
    CHECK(message_starts("unknown_work: "), "%s", last_error());
    CHECK_RC(writesync_report(e, "{\"id\":\"nonsense\",\"error\":\"timeout\"}", 0), WRITESYNC_ENGINE_ERROR);
    CHECK(message_starts("unknown_work: "), "%s", last_error());

    /* writesync_next_deadline */
    int64_t d = 0;
    CHECK_RC(writesync_next_deadline(NULL, &d), WRITESYNC_INVALID_ARGUMENT);
    CHECK(d == WRITESYNC_NO_DEADLINE, "deadline_ms_out set on failure too");
    CHECK_RC(writesync_next_deadline(e, NULL), WRITESYNC_INVALID_ARGUMENT);
    d = 0;
    CHECK_RC(writesync_next_deadline(e, &d), WRITESYNC_OK);
    CHECK(d == WRITESYNC_NO_DEADLINE, "nothing owed");

    /* writesync_prune */
    size_t removed = 7;
    CHECK_RC(writesync_prune(NULL, 0, 10, &removed), WRITESYNC_INVALID_ARGUMENT);
    CHECK(removed == 0, "removed_out set on failure too");
    CHECK_RC(writesync_prune(e, 0, 10, NULL), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_prune(e, 0, 10, &removed), WRITESYNC_OK);

    /* writesync_run_due */
    CHECK_RC(writesync_run_due(NULL, 0), WRITESYNC_INVALID_ARGUMENT);
    CHECK_RC(writesync_run_due(e, 0), WRITESYNC_OK);

    CHECK_RC(writesync_close(e), WRITESYNC_OK);
}

static void error_messages(void) {
    /* Make a known message, then read it in every way. */
    CHECK_RC(writesync_close(NULL), WRITESYNC_INVALID_ARGUMENT);
    size_t n = 0;
    CHECK_RC(writesync_last_error_message(NULL, 0, &n), WRITESYNC_OK);
    CHECK(n == strlen("engine is NULL"), "length only: %zu", n);
    CHECK_RC(writesync_last_error_message(NULL, 8, &n), WRITESYNC_INVALID_ARGUMENT);
    char small[7];
    memset(small, 'x', sizeof small);
    CHECK_RC(writesync_last_error_message(small, sizeof small, &n), WRITESYNC_OK);
    CHECK(strcmp(small, "engine") == 0 && n == 14, "cut copy: %s %zu", small, n);
    char one[1] = {'x'};
    CHECK_RC(writesync_last_error_message(one, 1, NULL), WRITESYNC_OK);
    CHECK(one[0] == 0, "len 1 gives an empty string");
    /* Reading it (even with a bad argument) did not change it; a success does not either. */
    char *out = NULL;
    writesync_engine *e = NULL;
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    CHECK_RC(writesync_open(db.path, CFG, &e), WRITESYNC_OK);
    CHECK(strcmp(last_error(), "engine is NULL") == 0, "kept: %s", last_error());
    CHECK_RC(writesync_handle(e, "{\"method\":\"GET\",\"path\":\"/healthz\"}", 0, &out), WRITESYNC_OK);
    CHECK_RC(writesync_string_free(out), WRITESYNC_OK);
    CHECK(strcmp(last_error(), "engine is NULL") == 0, "kept after success: %s", last_error());
    CHECK_RC(writesync_close(e), WRITESYNC_OK);
    temp_db_remove(&db);
    /* Multi-byte text is never cut inside a character. */
    CHECK_RC(writesync_open(db.path, "{\"allowTargetCidrs\":[\"\xc3\xa9\xc3\xa9\"]}", &e), WRITESYNC_ENGINE_ERROR);
    size_t full = 0;
    writesync_last_error_message(NULL, 0, &full);
    char *msg = malloc(full + 1);
    if (msg) {
        CHECK_RC(writesync_last_error_message(msg, full + 1, &n), WRITESYNC_OK);
        char *acc = strstr(msg, "\xc3\xa9");
        if (acc) {
            size_t cut = (size_t)(acc - msg) + 2; /* room for the text before it and half of "é" */
            char *part = malloc(cut);
            if (part) {
                CHECK_RC(writesync_last_error_message(part, cut, NULL), WRITESYNC_OK);
                CHECK(strlen(part) == (size_t)(acc - msg), "cut at a character boundary");
                free(part);
            }
        }
        CHECK(acc != NULL, "message quotes the value: %s", msg);
        free(msg);
    }
}

void test_bad_args(void) {
    temp_db db;
    CHECK(temp_db_make(&db), "temp dir");
    open_and_close(db.dir);
    calls_on_an_engine(db.dir);
    error_messages();
    temp_db_remove(&db);
}
