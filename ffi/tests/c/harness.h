/* Shared helpers of the C tests: counting checks, temporary databases, calling the library. */
#ifndef WRITESYNC_TEST_HARNESS_H
#define WRITESYNC_TEST_HARNESS_H

#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "writesync.h"

extern int g_passed, g_failed;

/* Count one check; print the failure with its place. */
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            g_passed++;                                                         \
        } else {                                                                \
            g_failed++;                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_RC(rc, want) \
    CHECK((rc) == (want), "got %d, wanted %d (%s)", (int)(rc), (int)(want), last_error())

/* The calling thread's last error message (a static buffer of this thread). */
const char *last_error(void);

/* A fresh temporary directory holding the path of a database file; remove with temp_db_remove. */
typedef struct {
    char dir[256];
    char path[300];
} temp_db;
int temp_db_make(temp_db *t);
void temp_db_remove(temp_db *t);

/* writesync_handle on a request built as text; returns the parsed answer (free with json_free)
 * or NULL when the call failed (counted as a failed check). */
jval *call(const writesync_engine *e, int64_t now, const char *request_json);
/* The answer's status, or -1. */
int status_of(const jval *answer);
/* The answer's body, parsed (free with json_free), or NULL. */
jval *body_of(const jval *answer);
/* The answer's header, or NULL. */
const char *header_of(const jval *answer, const char *name);

/* Base64 of s, into out (at least 4 * (strlen(s) + 2) / 3 + 1 bytes). */
void base64(const char *s, char *out);

/* The groups of tests; each adds to g_passed and g_failed. */
void test_vectors(const char *dir);
void test_flow(void);
void test_bad_args(void);

#endif
