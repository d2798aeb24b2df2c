/* A minimal JSON writer: tracks commas, escapes strings, writes non-finite numbers as null. */
#ifndef PKV_CLI_JSON_WRITE_H
#define PKV_CLI_JSON_WRITE_H

#include <stdint.h>
#include <stdio.h>

typedef struct jw {
    FILE *f;
    int depth;
    int need_comma[32];
} jw;

void jw_begin_object(jw *w, const char *key); /* key NULL inside arrays and at the top */
void jw_end_object(jw *w);
void jw_begin_array(jw *w, const char *key);
void jw_end_array(jw *w);
void jw_string(jw *w, const char *key, const char *value);
void jw_number(jw *w, const char *key, double value);
void jw_uint(jw *w, const char *key, uint64_t value);
void jw_bool(jw *w, const char *key, int value);

#endif
