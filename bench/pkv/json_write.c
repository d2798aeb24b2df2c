#include "json_write.h"

#include <math.h>

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void prefix(jw *w, const char *key)
{
    if (w->depth > 0 && w->need_comma[w->depth]) fputc(',', w->f);
    if (w->depth > 0) {
        fputc('\n', w->f);
        for (int i = 0; i < w->depth; i++) fputs("  ", w->f);
        w->need_comma[w->depth] = 1;
    }
    if (key) {
        put_string(w->f, key);
        fputs(": ", w->f);
    }
}

static void open_(jw *w, const char *key, char c)
{
    prefix(w, key);
    fputc(c, w->f);
    if (w->depth < 31) w->depth++;
    w->need_comma[w->depth] = 0;
}

static void close_(jw *w, char c)
{
    int had = w->need_comma[w->depth];
    w->depth--;
    if (had) {
        fputc('\n', w->f);
        for (int i = 0; i < w->depth; i++) fputs("  ", w->f);
    }
    fputc(c, w->f);
    if (w->depth == 0) fputc('\n', w->f);
}

void jw_begin_object(jw *w, const char *key) { open_(w, key, '{'); }
void jw_end_object(jw *w) { close_(w, '}'); }
void jw_begin_array(jw *w, const char *key) { open_(w, key, '['); }
void jw_end_array(jw *w) { close_(w, ']'); }

void jw_string(jw *w, const char *key, const char *value)
{
    prefix(w, key);
    put_string(w->f, value ? value : "");
}

void jw_number(jw *w, const char *key, double value)
{
    prefix(w, key);
    if (isfinite(value)) fprintf(w->f, "%.9g", value);
    else fputs("null", w->f);
}

void jw_uint(jw *w, const char *key, uint64_t value)
{
    prefix(w, key);
    fprintf(w->f, "%llu", (unsigned long long)value);
}

void jw_bool(jw *w, const char *key, int value)
{
    prefix(w, key);
    fputs(value ? "true" : "false", w->f);
}
