/* Helpers for the CLI tests: run pkv in-process with its stderr captured, temporary paths. */
#ifndef PKV_TEST_CLI_UTIL_H
#define PKV_TEST_CLI_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

static inline char *cli_slurp_fd(int fd)
{
    off_t n = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (!buf) return NULL;
    if (n <= 0 || read(fd, buf, (size_t)n) != n) n = 0;
    buf[n] = 0;
    return buf;
}

/* Runs `pkv args...` in this process with stdout and stderr captured into *out_text and *err_text
 * (malloc'd; either pointer may be NULL to discard). Returns the exit status. */
static inline int cli_runv2(char **err_text, char **out_text, int n, char **args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "pkv";
    for (int i = 0; i < n && argc < 63; i++) argv[argc++] = args[i];
    argv[argc] = NULL;

    char epath[] = "/tmp/pkv-test-stderr-XXXXXX", opath[] = "/tmp/pkv-test-stdout-XXXXXX";
    int efd = mkstemp(epath), ofd = mkstemp(opath);
    fflush(stdout);
    fflush(stderr);
    int saved_err = dup(2), saved_out = dup(1);
    if (efd >= 0) dup2(efd, 2);
    if (ofd >= 0) dup2(ofd, 1);
    int rc = pkv_cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_err, 2);
    dup2(saved_out, 1);
    close(saved_err);
    close(saved_out);
    if (err_text) *err_text = efd >= 0 ? cli_slurp_fd(efd) : NULL;
    if (out_text) *out_text = ofd >= 0 ? cli_slurp_fd(ofd) : NULL;
    if (efd >= 0) {
        close(efd);
        unlink(epath);
    }
    if (ofd >= 0) {
        close(ofd);
        unlink(opath);
    }
    return rc;
}

static inline int cli_runv(char **err_text, int keep_stdout, int n, char **args)
{
    (void)keep_stdout;
    return cli_runv2(err_text, NULL, n, args);
}

static inline int cli_run(char **err_text, int keep_stdout, ...)
{
    char *args[64];
    int n = 0;
    va_list ap;
    va_start(ap, keep_stdout);
    for (char *a; n < 63 && (a = va_arg(ap, char *)) != NULL;) args[n++] = a;
    va_end(ap);
    return cli_runv(err_text, keep_stdout, n, args);
}

/* A fresh temporary directory; returns its path (static buffer per call site is the caller's). */
static inline void cli_tmpdir(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/pkv-test-XXXXXX");
    if (!mkdtemp(out)) out[0] = 0;
}

/* Removes a directory made by cli_tmpdir; 0 on success. */
static inline int cli_rmdir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
