/* The C tests' JSON reader: see json.h. */
#include "json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256

typedef struct {
    const char *s;
    size_t len, pos;
    const char *err;
} parser;

static jval *parse_value(parser *p, int depth);

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static jval *new_val(parser *p, jtype t, size_t start) {
    jval *v = calloc(1, sizeof *v);
    if (!v) {
        p->err = "out of memory";
        return NULL;
    }
    v->type = t;
    v->raw = p->s + start;
    return v;
}

static int push_item(jval *v, jval *item, jval *key) {
    size_t n = v->n + 1;
    jval **items = realloc(v->items, n * sizeof *items);
    if (!items) return 0;
    v->items = items;
    if (v->type == J_OBJ) {
        jval **keys = realloc(v->keys, n * sizeof *keys);
        if (!keys) return 0;
        v->keys = keys;
        v->keys[v->n] = key;
    }
    v->items[v->n] = item;
    v->n = n;
    return 1;
}

static int hex4(parser *p, unsigned *out) {
    unsigned v = 0;
    if (p->len - p->pos < 4) return 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static void put_utf8(sbuf *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    sb_addn(b, u, n);
}

/* A string starting at the opening quote. */
static jval *parse_string(parser *p) {
    size_t start = p->pos;
    sbuf b = {0};
    p->pos++; /* the quote */
    for (;;) {
        if (p->pos >= p->len) { p->err = "unterminated string"; goto fail; }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') { p->pos++; break; }
        if (c < 0x20) { p->err = "control character in string"; goto fail; }
        if (c != '\\') {
            size_t run = p->pos;
            while (run < p->len && p->s[run] != '"' && p->s[run] != '\\' &&
                   (unsigned char)p->s[run] >= 0x20)
                run++;
            sb_addn(&b, p->s + p->pos, run - p->pos);
            p->pos = run;
            continue;
        }
        p->pos++;
        if (p->pos >= p->len) { p->err = "unterminated escape"; goto fail; }
        char e = p->s[p->pos++];
        switch (e) {
        case '"': sb_addn(&b, "\"", 1); break;
        case '\\': sb_addn(&b, "\\", 1); break;
        case '/': sb_addn(&b, "/", 1); break;
        case 'b': sb_addn(&b, "\b", 1); break;
        case 'f': sb_addn(&b, "\f", 1); break;
        case 'n': sb_addn(&b, "\n", 1); break;
        case 'r': sb_addn(&b, "\r", 1); break;
        case 't': sb_addn(&b, "\t", 1); break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(p, &cp)) { p->err = "bad \\u escape"; goto fail; }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    p->err = "lone surrogate"; goto fail;
                }
                p->pos += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) { p->err = "bad surrogate pair"; goto fail; }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                p->err = "lone surrogate"; goto fail;
            }
            put_utf8(&b, cp);
            break;
        }
        default: p->err = "bad escape"; goto fail;
        }
    }
    if (b.oom) { p->err = "out of memory"; goto fail; }
    jval *v = new_val(p, J_STR, start);
    if (!v) goto fail;
    v->len = b.len;
    v->str = b.p ? b.p : calloc(1, 1);
    if (!v->str) { free(v); p->err = "out of memory"; return NULL; }
    v->rawlen = p->pos - start;
    return v;
fail:
    sb_free(&b);
    return NULL;
}

static jval *parse_number(parser *p) {
    size_t start = p->pos;
    const char *s = p->s;
    size_t i = p->pos;
    if (i < p->len && s[i] == '-') i++;
    if (i < p->len && s[i] == '0') i++;
    else if (i < p->len && s[i] >= '1' && s[i] <= '9') { while (i < p->len && s[i] >= '0' && s[i] <= '9') i++; }
    else { p->err = "bad number"; return NULL; }
    if (i < p->len && s[i] == '.') {
        i++;
        if (!(i < p->len && s[i] >= '0' && s[i] <= '9')) { p->err = "bad fraction"; return NULL; }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (!(i < p->len && s[i] >= '0' && s[i] <= '9')) { p->err = "bad exponent"; return NULL; }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    char tmp[128];
    size_t n = i - start;
    if (n >= sizeof tmp) { p->err = "number too long"; return NULL; }
    memcpy(tmp, s + start, n);
    tmp[n] = 0;
    jval *v = new_val(p, J_NUM, start);
    if (!v) return NULL;
    v->num = strtod(tmp, NULL);
    p->pos = i;
    v->rawlen = n;
    return v;
}

static int literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static jval *parse_container(parser *p, int depth, int is_obj) {
    size_t start = p->pos;
    char close = is_obj ? '}' : ']';
    jval *v = new_val(p, is_obj ? J_OBJ : J_ARR, start);
    if (!v) return NULL;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        v->rawlen = p->pos - start;
        return v;
    }
    for (;;) {
        jval *key = NULL;
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') { p->err = "expected a key"; goto fail; }
            key = parse_string(p);
            if (!key) goto fail;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { json_free(key); p->err = "expected ':'"; goto fail; }
            p->pos++;
        }
        jval *item = parse_value(p, depth + 1);
        if (!item) { json_free(key); goto fail; }
        if (!push_item(v, item, key)) {
            json_free(item); json_free(key); p->err = "out of memory"; goto fail;
        }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; break; }
        p->err = is_obj ? "expected ',' or '}'" : "expected ',' or ']'";
        goto fail;
    }
    v->rawlen = p->pos - start;
    return v;
fail:
    json_free(v);
    return NULL;
}

static jval *parse_value(parser *p, int depth) {
    if (depth > MAX_DEPTH) { p->err = "nested too deeply"; return NULL; }
    skip_ws(p);
    if (p->pos >= p->len) { p->err = "unexpected end"; return NULL; }
    size_t start = p->pos;
    char c = p->s[p->pos];
    jval *v;
    switch (c) {
    case '{': return parse_container(p, depth, 1);
    case '[': return parse_container(p, depth, 0);
    case '"': return parse_string(p);
    case 't':
    case 'f':
    case 'n':
        if (literal(p, "true")) { v = new_val(p, J_BOOL, start); if (v) v->boolean = 1; }
        else if (literal(p, "false")) { v = new_val(p, J_BOOL, start); }
        else if (literal(p, "null")) { v = new_val(p, J_NULL, start); }
        else { p->err = "bad literal"; return NULL; }
        if (v) v->rawlen = p->pos - start;
        return v;
    default:
        return parse_number(p);
    }
}

jval *json_parse(const char *text, size_t len, const char **err) {
    parser p = {text, len, 0, NULL};
    jval *v = parse_value(&p, 0);
    if (v) {
        skip_ws(&p);
        if (p.pos != p.len) {
            json_free(v);
            v = NULL;
            p.err = "trailing characters";
        }
    }
    if (err) *err = p.err;
    return v;
}

jval *json_parse_str(const char *text, const char **err) {
    if (!text) {
        if (err) *err = "NULL text";
        return NULL;
    }
    return json_parse(text, strlen(text), err);
}

void json_free(jval *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys) json_free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

static int str_eq(const jval *a, const jval *b) {
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

int json_equal(const jval *a, const jval *b) {
    if (!a || !b) return a == b;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case J_NULL: return 1;
    case J_BOOL: return a->boolean == b->boolean;
    case J_NUM: return a->num == b->num;
    case J_STR: return str_eq(a, b);
    case J_ARR:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!json_equal(a->items[i], b->items[i])) return 0;
        return 1;
    case J_OBJ:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++) {
            size_t j;
            for (j = 0; j < b->n; j++)
                if (str_eq(a->keys[i], b->keys[j])) break;
            if (j == b->n || !json_equal(a->items[i], b->items[j])) return 0;
        }
        return 1;
    }
    return 0;
}

const jval *json_get(const jval *v, const char *key) {
    if (!v || v->type != J_OBJ) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < v->n; i++)
        if (v->keys[i]->len == n && memcmp(v->keys[i]->str, key, n) == 0) return v->items[i];
    return NULL;
}

const char *json_get_str(const jval *v, const char *key) {
    const jval *m = json_get(v, key);
    return m && m->type == J_STR ? m->str : NULL;
}

void sb_addn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

void sb_addf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = 1; return; }
    char *tmp = malloc((size_t)n + 1);
    if (!tmp) { b->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_addn(b, tmp, (size_t)n);
    free(tmp);
}

void sb_quote(sbuf *b, const char *s) {
    sb_addn(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') sb_add(b, "\\\"");
        else if (c == '\\') sb_add(b, "\\\\");
        else if (c < 0x20) sb_addf(b, "\\u%04x", c);
        else sb_addn(b, s, 1);
    }
    sb_addn(b, "\"", 1);
}

void sb_free(sbuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    sbuf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_addn(&b, chunk, n);
    int bad = ferror(f) || b.oom;
    fclose(f);
    if (bad) { sb_free(&b); return NULL; }
    if (!b.p) { b.p = calloc(1, 1); if (!b.p) return NULL; }
    if (len) *len = b.len;
    return b.p;
}
