#include "test_cli_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

typedef struct tj_parser {
    const char *s;
    tj_doc *doc;
    int depth;
} tj_parser;

static void ws(tj_parser *p)
{
    while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r') p->s++;
}

static tj_entry *add(tj_parser *p, const char *path, tj_kind kind)
{
    if (p->doc->n == p->doc->cap) {
        size_t nc = p->doc->cap ? 2 * p->doc->cap : 64;
        tj_entry *e = realloc(p->doc->e, nc * sizeof *e);
        if (!e) return NULL;
        p->doc->e = e;
        p->doc->cap = nc;
    }
    tj_entry *e = &p->doc->e[p->doc->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->kind = kind;
    return e;
}

static int string(tj_parser *p, char *out, size_t cap)
{
    if (*p->s != '"') return -1;
    p->s++;
    size_t o = 0;
    while (*p->s && *p->s != '"') {
        char c = *p->s++;
        if ((unsigned char)c < 0x20) return -1;
        if (c == '\\') {
            c = *p->s++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++)
                    if (!*p->s++) return -1;
                c = '?';
            } else if (!strchr("\"\\/bfnrt", c) || !c) return -1;
        }
        if (o + 1 < cap) out[o++] = c;
    }
    if (*p->s != '"') return -1;
    p->s++;
    out[o] = 0;
    return 0;
}

static int value(tj_parser *p, const char *path)
{
    if (++p->depth > 40) return -1;
    ws(p);
    int rc = 0;
    if (*p->s == '{' || *p->s == '[') {
        int obj = *p->s == '{';
        size_t idx = p->doc->n;
        if (!add(p, path, obj ? TJ_OBJECT : TJ_ARRAY)) return -1;
        p->s++;
        ws(p);
        size_t count = 0;
        if (*p->s == (obj ? '}' : ']')) p->s++;
        else
            for (;;) {
                char child[160], key[128];
                ws(p);
                if (obj) {
                    if (string(p, key, sizeof key)) return -1;
                    ws(p);
                    if (*p->s++ != ':') return -1;
                    snprintf(child, sizeof child, "%s%s%s", path, path[0] ? "." : "", key);
                } else {
                    snprintf(child, sizeof child, "%s[%zu]", path, count);
                }
                if (value(p, child)) return -1;
                count++;
                ws(p);
                if (*p->s == ',') { p->s++; continue; }
                if (*p->s == (obj ? '}' : ']')) { p->s++; break; }
                return -1;
            }
        p->doc->e[idx].number = (double)count;
    } else if (*p->s == '"') {
        tj_entry *e = add(p, path, TJ_STRING);
        if (!e) return -1;
        char buf[256];
        rc = string(p, buf, sizeof buf);
        snprintf(p->doc->e[p->doc->n - 1].text, sizeof e->text, "%s", buf);
    } else if (strncmp(p->s, "true", 4) == 0 || strncmp(p->s, "false", 5) == 0) {
        tj_entry *e = add(p, path, TJ_BOOL);
        if (!e) return -1;
        e->number = *p->s == 't';
        p->s += *p->s == 't' ? 4 : 5;
    } else if (strncmp(p->s, "null", 4) == 0) {
        if (!add(p, path, TJ_NULL)) return -1;
        p->s += 4;
    } else {
        char *end;
        double v = strtod(p->s, &end);
        if (end == p->s || (*p->s != '-' && (*p->s < '0' || *p->s > '9'))) return -1;
        tj_entry *e = add(p, path, TJ_NUMBER);
        if (!e) return -1;
        e->number = v;
        p->s = end;
    }
    p->depth--;
    return rc;
}

int tj_parse(const char *text, tj_doc *doc)
{
    memset(doc, 0, sizeof *doc);
    tj_parser p = {text, doc, 0};
    if (value(&p, "")) return -1;
    ws(&p);
    return *p.s ? -1 : 0;
}

void tj_free(tj_doc *doc)
{
    free(doc->e);
    memset(doc, 0, sizeof *doc);
}

const tj_entry *tj_find(const tj_doc *doc, const char *path)
{
    for (size_t i = 0; i < doc->n; i++)
        if (strcmp(doc->e[i].path, path) == 0) return &doc->e[i];
    return NULL;
}

char *tj_read_file(const char *path)
{
    char *text = NULL, err[512];
    size_t n;
    return cli_read_file(path, &text, &n, err, sizeof err) == 0 ? text : NULL;
}
