/*
 * A small JSON reader for the C tests: parses text into a tree, compares trees (objects
 * unordered, numbers by value), and remembers where each value sits in the source text so
 * that parts of a vector file can be handed to the library verbatim. Strict RFC 8259 grammar,
 * UTF-8 in, \u escapes (with surrogate pairs) decoded to UTF-8. Not a general-purpose library:
 * it is sized for test vectors.
 */
#ifndef WRITESYNC_TEST_JSON_H
#define WRITESYNC_TEST_JSON_H

#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    int boolean;          /* J_BOOL */
    double num;           /* J_NUM */
    char *str;            /* J_STR: decoded, NUL-terminated (may also contain NULs) */
    size_t len;           /* J_STR: bytes in str */
    size_t n;             /* J_ARR, J_OBJ: number of items */
    struct jval **items;  /* J_ARR, J_OBJ: the values */
    struct jval **keys;   /* J_OBJ: the keys (J_STR values) */
    const char *raw;      /* where the value starts in the parsed text */
    size_t rawlen;        /* and its length */
} jval;

/* Parse exactly one JSON value (surrounded by optional whitespace) from text[0..len).
 * Returns NULL on a syntax error, with a static description in *err (when err is not NULL).
 * The raw pointers point into `text`, which must outlive the tree. */
jval *json_parse(const char *text, size_t len, const char **err);
/* Parse a NUL-terminated string. */
jval *json_parse_str(const char *text, const char **err);
void json_free(jval *v);

/* Deep equality: objects compare as unordered key sets, arrays in order, numbers by value,
 * strings byte for byte. */
int json_equal(const jval *a, const jval *b);
/* The member `key` of an object, or NULL (also when v is not an object). */
const jval *json_get(const jval *v, const char *key);
/* The member's string value, or NULL when absent or not a string. */
const char *json_get_str(const jval *v, const char *key);

/* A growable string. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;
void sb_addn(sbuf *b, const char *s, size_t n);
void sb_add(sbuf *b, const char *s);
void sb_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quoted and escaped). */
void sb_quote(sbuf *b, const char *s);
void sb_free(sbuf *b);

/* Read a whole file into a NUL-terminated buffer (free it with free()); NULL on failure. */
char *read_file(const char *path, size_t *len);

#endif
