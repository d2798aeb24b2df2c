/* A tiny JSON checker for the CLI tests, independent of the CLI's own parser: parses a document
 * into a flat table of (path, kind, number, string) so a test can look values up by path, e.g.
 * "fidelity[0].mode" or "device.backend". */
#ifndef PKV_TEST_CLI_JSON_H
#define PKV_TEST_CLI_JSON_H

#include <stddef.h>

typedef enum tj_kind { TJ_NULL, TJ_BOOL, TJ_NUMBER, TJ_STRING, TJ_ARRAY, TJ_OBJECT } tj_kind;

typedef struct tj_entry {
    char path[160];
    tj_kind kind;
    double number;   /* numbers and bools; the item count of arrays and objects */
    char text[256];  /* strings */
} tj_entry;

typedef struct tj_doc {
    tj_entry *e;
    size_t n, cap;
} tj_doc;

/* 0 when text is one well-formed JSON value, else -1. */
int tj_parse(const char *text, tj_doc *doc);
void tj_free(tj_doc *doc);
const tj_entry *tj_find(const tj_doc *doc, const char *path);
/* Reads a whole file (NUL-terminated); NULL on failure. */
char *tj_read_file(const char *path);

#endif
