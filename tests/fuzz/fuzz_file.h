/* The fuzz targets' shared helper: the readers take paths, so each input is written to one file of
 * this process (in $TMPDIR or /tmp) before it is read. */
#ifndef PKV_FUZZ_FILE_H
#define PKV_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_write_file(const char *ext, const uint8_t *data, size_t size)
{
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/pkv_fuzz_%ld%s", dir && *dir ? dir : "/tmp", (long)getpid(), ext);
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

#endif
