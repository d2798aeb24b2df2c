/* x86 CPU features that __builtin_cpu_supports cannot name on every compiler (clang 14 has no "f16c"),
 * read with CPUID: F16C conversions need AVX state enabled by the OS as well. */
#ifndef PKV_CPU_FEATURES_H
#define PKV_CPU_FEATURES_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static inline int pkv_cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (osxsave | avx | f16c)) != (osxsave | avx | f16c)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u; /* XMM and YMM state enabled */
}
#endif

#endif
