/* Monotonic wall-clock time in seconds. */
#ifndef PKV_CLI_TIMER_H
#define PKV_CLI_TIMER_H

#include <time.h>

static inline double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
