#include "cli_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = (uint32_t)v;
    return 0;
}

int cli_valid_bits(uint32_t b) { return b == 2 || b == 3 || b == 4 || b == 8; }

const char *cli_repo_file(const char *rel, char *buf, size_t len)
{
    if (access(rel, R_OK) == 0) return rel;
#ifdef PKV_SOURCE_DIR
    snprintf(buf, len, "%s/%s", PKV_SOURCE_DIR, rel);
    if (access(buf, R_OK) == 0) return buf;
#else
    (void)buf, (void)len;
#endif
    return NULL;
}

int cli_read_file(const char *path, char **data, size_t *len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break; /* end of file or an error, told apart below */
        char *grown = realloc(buf, cap * 2);
        if (!grown) free(buf);
        buf = grown, cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        snprintf(err, err_len, "%s: %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return -1;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}
