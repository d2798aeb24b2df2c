/* PKV_PROFILE counters (profile.h). */
#define _POSIX_C_SOURCE 200809L
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Thread_local double acc[PKV_PROF_KINDS];
static _Thread_local uint32_t submits, depth;
static int enabled = -1;

int pkv_prof_enabled(void)
{
    if (enabled < 0) { /* a benign race: every thread computes the same value */
        const char *e = getenv("PKV_PROFILE");
        enabled = e && *e && *e != '0';
    }
    return enabled;
}

double pkv_clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double pkv_prof_start(void) { return pkv_prof_enabled() ? pkv_clock_s() : 0.0; }

void pkv_prof_add(pkv_prof_kind kind, double t0)
{
    if (pkv_prof_enabled() && t0 > 0.0) acc[kind] += pkv_clock_s() - t0;
}

void pkv_prof_submit(void)
{
    if (pkv_prof_enabled()) submits++;
}

double pkv_prof_begin(void)
{
    if (!pkv_prof_enabled()) return 0.0;
    if (depth++ == 0) {
        for (int k = 0; k < PKV_PROF_KINDS; k++) acc[k] = 0.0;
        submits = 0;
    }
    return pkv_clock_s();
}

void pkv_prof_end(const char *what, double t0, uint32_t layers, uint32_t tokens)
{
    if (!pkv_prof_enabled() || depth == 0 || --depth > 0) return;
    const double total = pkv_clock_s() - t0;
    double rest = total;
    for (int k = 0; k < PKV_PROF_KINDS; k++) rest -= acc[k];
    fprintf(stderr,
            "pkv profile: %s layers %u tokens %u: %.3f ms = check %.3f + stage %.3f + wait %.3f + pipe %.3f + host %.3f"
            " (%u submits)\n",
            what, layers, tokens, total * 1e3, acc[PKV_PROF_CHECK] * 1e3, acc[PKV_PROF_STAGE] * 1e3,
            acc[PKV_PROF_WAIT] * 1e3, acc[PKV_PROF_PIPE] * 1e3, rest * 1e3, submits);
}
