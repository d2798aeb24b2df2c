#include "json_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JR_MAX_DEPTH 64

typedef struct parser {
    const char *s;
    size_t n, i;
    char *err;
    size_t err_len;
} parser;

static int fail(parser *p, const char *what)
{
    if (p->err && p->err_len) snprintf(p->err, p->err_len, "JSON: %s at byte %zu", what, p->i);
    return -1;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int literal(parser *p, const char *word)
{
    size_t l = strlen(word);
    if (p->n - p->i < l || memcmp(p->s + p->i, word, l) != 0) return fail(p, "unexpected token");
    p->i += l;
    return 0;
}

static int hex4(parser *p, unsigned *out)
{
    if (p->n - p->i < 4) return fail(p, "short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static int parse_string(parser *p, char **out)
{
    if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected a string");
    p->i++;
    char *buf = malloc(p->n - p->i + 1); /* the decoded string is never longer than the rest */
    if (!buf) return fail(p, "out of memory");
    size_t o = 0;
    for (;;) {
        if (p->i >= p->n) { free(buf); return fail(p, "unterminated string"); }
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') break;
        if (c < 0x20) { free(buf); return fail(p, "control character in string"); }
        if (c != '\\') { buf[o++] = (char)c; continue; }
        if (p->i >= p->n) { free(buf); return fail(p, "unterminated escape"); }
        char e = p->s[p->i++];
        switch (e) {
        case '"': buf[o++] = '"'; break;
        case '\\': buf[o++] = '\\'; break;
        case '/': buf[o++] = '/'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case 'u': {
            unsigned u;
            if (hex4(p, &u)) { free(buf); return -1; }
            if (u < 0x80) buf[o++] = (char)u;
            else if (u < 0x800) { buf[o++] = (char)(0xC0 | (u >> 6)); buf[o++] = (char)(0x80 | (u & 0x3F)); }
            else {
                buf[o++] = (char)(0xE0 | (u >> 12));
                buf[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
                buf[o++] = (char)(0x80 | (u & 0x3F));
            }
            break;
        }
        default: free(buf); return fail(p, "bad escape");
        }
    }
    buf[o] = 0;
    *out = buf;
    return 0;
}

static int parse_number(parser *p, jr_value *v)
{
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad number");
    int integral = 1;
    while (p->i < p->n && ((p->s[p->i] >= '0' && p->s[p->i] <= '9') || p->s[p->i] == '.' || p->s[p->i] == 'e' ||
                           p->s[p->i] == 'E' || p->s[p->i] == '+' || p->s[p->i] == '-')) {
        char c = p->s[p->i];
        if (c == '.' || c == 'e' || c == 'E' || (c == '-' && p->i > start) || c == '+') integral = 0;
        p->i++;
    }
    char tmp[64];
    size_t l = p->i - start;
    if (l >= sizeof tmp) return fail(p, "number too long");
    memcpy(tmp, p->s + start, l);
    tmp[l] = 0;
    char *end;
    v->type = JR_NUMBER;
    v->number = strtod(tmp, &end);
    if (*end) return fail(p, "bad number");
    if (integral && tmp[0] != '-' && l <= 19) {
        v->is_uint = 1;
        v->uint = strtoull(tmp, NULL, 10);
    }
    return 0;
}

static int parse_value(parser *p, jr_value *v, int depth);

static int grow(jr_value *v, size_t *cap, int with_keys)
{
    if (v->count < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    jr_value *items = realloc(v->items, nc * sizeof *items);
    if (!items) return -1;
    v->items = items;
    if (with_keys) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys) return -1;
        v->keys = keys;
    }
    *cap = nc;
    return 0;
}

static int parse_container(parser *p, jr_value *v, int depth, int is_object)
{
    char close = is_object ? '}' : ']';
    v->type = is_object ? JR_OBJECT : JR_ARRAY;
    p->i++;
    size_t cap = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) { p->i++; return 0; }
    for (;;) {
        if (grow(v, &cap, is_object)) return fail(p, "out of memory");
        char *key = NULL;
        if (is_object) {
            skip_ws(p);
            if (parse_string(p, &key)) return -1;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { free(key); return fail(p, "expected ':'"); }
            p->i++;
            v->keys[v->count] = key;
        }
        memset(&v->items[v->count], 0, sizeof v->items[0]);
        v->count++; /* counted before parsing so jr_free releases a partial item */
        if (parse_value(p, &v->items[v->count - 1], depth + 1)) return -1;
        skip_ws(p);
        if (p->i >= p->n) return fail(p, "unterminated container");
        if (p->s[p->i] == ',') { p->i++; continue; }
        if (p->s[p->i] == close) { p->i++; return 0; }
        return fail(p, "expected ',' or a closing bracket");
    }
}

static int parse_value(parser *p, jr_value *v, int depth)
{
    if (depth > JR_MAX_DEPTH) return fail(p, "nested too deeply");
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end");
    char c = p->s[p->i];
    if (c == '{') return parse_container(p, v, depth, 1);
    if (c == '[') return parse_container(p, v, depth, 0);
    if (c == '"') { v->type = JR_STRING; return parse_string(p, &v->string); }
    if (c == 't') { v->type = JR_BOOL; v->boolean = 1; return literal(p, "true"); }
    if (c == 'f') { v->type = JR_BOOL; return literal(p, "false"); }
    if (c == 'n') { v->type = JR_NULL; return literal(p, "null"); }
    return parse_number(p, v);
}

int jr_parse(const char *text, size_t len, jr_value *out, char *err, size_t err_len)
{
    parser p = {text, len, 0, err, err_len};
    memset(out, 0, sizeof *out);
    if (parse_value(&p, out, 0)) { jr_free(out); return -1; }
    skip_ws(&p);
    /* safetensors pads its header with spaces; anything else after the value is an error */
    if (p.i != p.n) { jr_free(out); return fail(&p, "trailing characters"); }
    return 0;
}

void jr_free(jr_value *v)
{
    if (!v) return;
    free(v->string);
    for (size_t i = 0; i < v->count; i++) {
        jr_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

const jr_value *jr_get(const jr_value *obj, const char *key)
{
    if (!obj || obj->type != JR_OBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}
