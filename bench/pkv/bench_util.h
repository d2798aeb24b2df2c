/* Small numeric helpers shared by the bench parts. */
#ifndef PKV_CLI_BENCH_UTIL_H
#define PKV_CLI_BENCH_UTIL_H

#include <stddef.h>

/* Median of n values (sorts a copy); NAN when n == 0. */
double bench_median(const double *x, size_t n);
double bench_max(const double *x, size_t n);

#endif
