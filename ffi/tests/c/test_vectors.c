/*
 * Replays every .json file of tests/vectors (format: tests/vectors/README.md) against a fresh
 * engine over a fresh SQLite file, through the C API, and compares as the Rust runner does:
 * answers by status, whole header map and body (parsed when JSON, else the text), due items
 * exactly with request bodies parsed, report results by error code, deadlines by value.
 * One check per step.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The Rust runner gives a configuration without seed the all-zero seed. */
#define ZERO_SEED "0000000000000000000000000000000000000000000000000000000000000000"

static void show(const char *what, const char *text, size_t len) {
    if (len > 3000) len = 3000;
    fprintf(stderr, "  %s: %.*s\n", what, (int)len, text);
}

/* The comparable form of a body text: its JSON when it parses, else the text itself. */
static int body_matches(const jval *expect, const char *text, size_t len) {
    if (!expect) return 0;
    jval *parsed = len ? json_parse(text, len, NULL) : NULL;
    int ok;
    if (parsed) {
        ok = json_equal(expect, parsed);
        json_free(parsed);
    } else {
        ok = expect->type == J_STR && expect->len == len && memcmp(expect->str, text, len) == 0;
    }
    return ok;
}

static int answer_matches(const jval *expect, const jval *got) {
    const jval *body = json_get(got, "body");
    return got && got->type == J_OBJ && got->n == 3 && expect && expect->type == J_OBJ &&
           expect->n == 3 && json_equal(json_get(expect, "status"), json_get(got, "status")) &&
           json_equal(json_get(expect, "headers"), json_get(got, "headers")) && body &&
           body->type == J_STR && body_matches(json_get(expect, "body"), body->str, body->len);
}

static int request_matches(const jval *expect, const jval *got) {
    if (!expect || !got || expect->type != J_OBJ || got->type != J_OBJ || expect->n != got->n)
        return 0;
    for (size_t i = 0; i < expect->n; i++) {
        const char *key = expect->keys[i]->str;
        const jval *g = json_get(got, key);
        if (!g) return 0;
        if (strcmp(key, "body") == 0) {
            if (g->type != J_STR || !body_matches(expect->items[i], g->str, g->len)) return 0;
        } else if (!json_equal(expect->items[i], g)) {
            return 0;
        }
    }
    return 1;
}

static int items_match(const jval *expect, const jval *got) {
    if (!expect || !got || expect->type != J_ARR || got->type != J_ARR || expect->n != got->n)
        return 0;
    for (size_t i = 0; i < expect->n; i++) {
        const jval *e = expect->items[i], *g = got->items[i];
        if (e->type != J_OBJ || g->type != J_OBJ || e->n != g->n) return 0;
        for (size_t k = 0; k < e->n; k++) {
            const char *key = e->keys[k]->str;
            const jval *gv = json_get(g, key);
            if (!gv) return 0;
            if (strcmp(key, "request") == 0 ? !request_matches(e->items[k], gv)
                                            : !json_equal(e->items[k], gv))
                return 0;
        }
    }
    return 1;
}

/* "{" + prefix + ("," if obj has members) + the rest of obj's text after its "{". */
static char *object_with(const jval *obj, const char *prefix) {
    sbuf b = {0};
    sb_add(&b, "{");
    sb_add(&b, prefix);
    if (obj->n > 0) sb_add(&b, ",");
    sb_addn(&b, obj->raw + 1, obj->rawlen - 1);
    if (b.oom) {
        sb_free(&b);
        return NULL;
    }
    return b.p;
}

static int64_t num_i64(const jval *v) { return v && v->type == J_NUM ? (int64_t)v->num : 0; }

static int replay_step(const writesync_engine *e, const char *name, size_t index, const jval *step) {
    const char *kind = json_get_str(step, "kind");
    const jval *expect = json_get(step, "expect");
    int64_t now = num_i64(json_get(step, "now"));
    char where[512];
    snprintf(where, sizeof where, "%s step %zu (%s)", name, index, kind ? kind : "?");
    if (!kind || !expect) {
        CHECK(0, "%s: no kind or expect", where);
        return 0;
    }
    int ok = 0;
    if (strcmp(kind, "request") == 0) {
        const jval *req = json_get(step, "request");
        if (!req) {
            CHECK(0, "%s: no request", where);
            return 0;
        }
        char *text = strndup(req->raw, req->rawlen);
        char *out = NULL;
        writesync_result rc = text ? writesync_handle(e, text, now, &out) : WRITESYNC_INVALID_ARGUMENT;
        jval *got = rc == WRITESYNC_OK ? json_parse_str(out, NULL) : NULL;
        ok = rc == WRITESYNC_OK && answer_matches(expect, got);
        CHECK(ok, "%s: rc %d %s", where, (int)rc, rc ? last_error() : "answer differs");
        if (!ok) {
            show("request ", req->raw, req->rawlen);
            show("expected", expect->raw, expect->rawlen);
            if (out) show("got     ", out, strlen(out));
        }
        json_free(got);
        if (out) writesync_string_free(out);
        free(text);
    } else if (strcmp(kind, "due") == 0) {
        const jval *limit = json_get(step, "limit");
        char *out = NULL;
        writesync_result rc =
            writesync_due_limit(e, now, limit ? (size_t)limit->num : WRITESYNC_DUE_DEFAULT_LIMIT, &out);
        jval *got = rc == WRITESYNC_OK ? json_parse_str(out, NULL) : NULL;
        ok = rc == WRITESYNC_OK && items_match(json_get(expect, "items"), got);
        CHECK(ok, "%s: rc %d %s", where, (int)rc, rc ? last_error() : "items differ");
        if (!ok) {
            show("expected", expect->raw, expect->rawlen);
            if (out) show("got     ", out, strlen(out));
        }
        json_free(got);
        if (out) writesync_string_free(out);
    } else if (strcmp(kind, "report") == 0) {
        const jval *id = json_get(step, "id");
        const jval *outcome = json_get(step, "outcome");
        const jval *want = json_get(expect, "error");
        if (!id || id->type != J_STR || !outcome || outcome->type != J_OBJ || !want) {
            CHECK(0, "%s: malformed report step", where);
            return 0;
        }
        sbuf prefix = {0};
        sb_add(&prefix, "\"id\":");
        sb_addn(&prefix, id->raw, id->rawlen);
        char *result = prefix.oom ? NULL : object_with(outcome, prefix.p);
        sb_free(&prefix);
        writesync_result rc = result ? writesync_report(e, result, now) : WRITESYNC_INVALID_ARGUMENT;
        const char *msg = rc == WRITESYNC_OK ? "" : last_error();
        if (want->type == J_NULL) {
            ok = rc == WRITESYNC_OK;
        } else if (want->type == J_STR) {
            /* The engine's code leads the message: "unknown_work: ...". */
            ok = rc == WRITESYNC_ENGINE_ERROR || rc == WRITESYNC_STORAGE_ERROR;
            ok = ok && strncmp(msg, want->str, want->len) == 0 && msg[want->len] == ':';
        }
        CHECK(ok, "%s: expected error %.*s, got rc %d \"%s\"", where, (int)expect->rawlen,
              expect->raw, (int)rc, msg);
        free(result);
    } else if (strcmp(kind, "deadline") == 0) {
        const jval *want = json_get(expect, "deadline");
        int64_t d = 0;
        writesync_result rc = writesync_next_deadline(e, &d);
        if (want && want->type == J_NULL) ok = rc == WRITESYNC_OK && d == WRITESYNC_NO_DEADLINE;
        else if (want && want->type == J_NUM) ok = rc == WRITESYNC_OK && d == num_i64(want);
        CHECK(ok, "%s: expected %.*s, got rc %d deadline %lld", where, (int)expect->rawlen,
              expect->raw, (int)rc, (long long)d);
    } else {
        CHECK(0, "%s: unknown step kind", where);
    }
    return ok;
}

static void replay_file(const char *dir, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len = 0;
    char *text = read_file(path, &len);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return;
    const char *err = NULL;
    jval *v = json_parse(text, len, &err);
    CHECK(v != NULL, "%s is not JSON: %s", path, err);
    const jval *config = json_get(v, "config");
    const jval *steps = json_get(v, "steps");
    CHECK(config && config->type == J_OBJ && steps && steps->type == J_ARR, "%s: no config or steps", path);
    if (!config || config->type != J_OBJ || !steps || steps->type != J_ARR) goto out;
    const char *name = json_get_str(v, "name");
    char *config_text = json_get(config, "seed") ? strndup(config->raw, config->rawlen)
                                                 : object_with(config, "\"seed\":\"" ZERO_SEED "\"");
    temp_db db;
    CHECK(temp_db_make(&db), "cannot make a temporary directory");
    writesync_engine *e = NULL;
    writesync_result rc = config_text ? writesync_open(db.path, config_text, &e) : WRITESYNC_INVALID_ARGUMENT;
    CHECK_RC(rc, WRITESYNC_OK);
    if (rc == WRITESYNC_OK) {
        size_t failed = 0;
        for (size_t i = 0; i < steps->n; i++)
            if (!replay_step(e, name ? name : file, i, steps->items[i])) failed++;
        fprintf(stderr, "vector %s: %zu steps, %zu failed\n", file, steps->n, failed);
        CHECK_RC(writesync_close(e), WRITESYNC_OK);
    }
    temp_db_remove(&db);
    free(config_text);
out:
    json_free(v);
    free(text);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void test_vectors(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open the vectors directory %s", dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t l = strlen(ent->d_name);
        if (l < 6 || strcmp(ent->d_name + l - 5, ".json") != 0) continue;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", dir, ent->d_name);
        /* Files only: subdirectories (crashers/, ...) are not vectors. */
        DIR *sub = opendir(full);
        if (sub) {
            closedir(sub);
            continue;
        }
        char **grown = realloc(names, (n + 1) * sizeof *names);
        if (!grown) break;
        names = grown;
        names[n] = strdup(ent->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    CHECK(n > 0, "no *.json vector in %s", dir);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        replay_file(dir, names[i]);
        free(names[i]);
    }
    free(names);
    fprintf(stderr, "vectors: %zu files replayed from %s\n", n, dir);
}
