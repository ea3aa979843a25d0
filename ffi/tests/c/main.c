/*
 * The C tests of writesync-ffi: bad arguments, a pushing write through due/report, threads,
 * and the replay of every shared vector. Usage: writesync_c_tests VECTORS_DIR
 * The last line is "N passed, M failed"; the exit status is 0 only when nothing failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

int g_passed, g_failed;

const char *last_error(void) {
    static __thread char buf[4096];
    size_t n = 0;
    if (writesync_last_error_message(buf, sizeof buf, &n) != WRITESYNC_OK) return "(no message)";
    return buf;
}

int temp_db_make(temp_db *t) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(t->dir, sizeof t->dir, "%s/writesync-ctest-XXXXXX", base);
    if (!mkdtemp(t->dir)) return 0;
    snprintf(t->path, sizeof t->path, "%s/test.db", t->dir);
    return 1;
}

void temp_db_remove(temp_db *t) {
    DIR *d = opendir(t->dir);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d)) != NULL) {
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", t->dir, ent->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(t->dir);
}

jval *call(const writesync_engine *e, int64_t now, const char *request_json) {
    char *out = NULL;
    writesync_result rc = writesync_handle(e, request_json, now, &out);
    CHECK_RC(rc, WRITESYNC_OK);
    if (rc != WRITESYNC_OK) return NULL;
    const char *err = NULL;
    jval *v = json_parse_str(out, &err);
    CHECK(v != NULL, "answer is not JSON (%s): %s", err, out);
    writesync_string_free(out);
    return v;
}

int status_of(const jval *answer) {
    const jval *s = json_get(answer, "status");
    return s && s->type == J_NUM ? (int)s->num : -1;
}

jval *body_of(const jval *answer) {
    const jval *b = json_get(answer, "body");
    if (!b || b->type != J_STR) return NULL;
    return json_parse(b->str, b->len, NULL);
}

const char *header_of(const jval *answer, const char *name) {
    return json_get_str(json_get(answer, "headers"), name);
}

void base64(const char *s, char *out) {
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
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    test_bad_args();
    test_flow();
    test_vectors(argv[1]);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
