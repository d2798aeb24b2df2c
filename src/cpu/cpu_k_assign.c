/* Key assignment variants of the CPU encoder (pkv_k_assign, issue 14; docs/NUMERICS.md "Key
 * assignment variants"). The paper's rule (min-max distance at flushes, L2 at prefill) stays in
 * cpu_ops.c; this file holds what differs:
 *   L2:    each key's L2-nearest pattern (the kernel table's argmin_l2), at flushes too.
 *   RANGE: per group of G keys, the assignment a that minimises
 *              cost(a) = sum_i (max_t r_ti - min_t r_ti)^2,  r_t = x_t - P[a_t],
 *          i.e. the quantity per-channel K quantization's squared error grows with (its step is
 *          range / (2^b - 1) per channel). Coordinate descent: tokens in order, each moved to the
 *          pattern that lowers the cost most given the others (a strictly lower cost only), up to
 *          RANGE_PASSES passes or until a pass moves nothing; run from two starts, (A) every token
 *          on the pattern L2-nearest to most of them (lowest index on ties), whose residuals have
 *          exactly DIRECT's per-channel ranges, and (B) the L2 assignment; the lower final cost wins,
 *          A on ties. So a group's cost is never above DIRECT's.
 * Everything is float arithmetic in a fixed order (ranges in float, the sum over channels in
 * double), so the result is the same on every run and thread count. */
#include <stdlib.h>
#include <string.h>

#include "cpu_k_assign.h"

#define RANGE_PASSES 64 /* a bound; on real keys a handful of passes converge */

/* Per channel: the largest and second largest, smallest and second smallest residual of the group,
 * and which token holds the extreme (so "the others' extreme" is one comparison). */
typedef struct group_stats {
    float *hi1, *hi2, *lo1, *lo2;
    uint32_t *hi_at, *lo_at;
} group_stats;

static void stats_of(const float *r, uint32_t G, uint32_t d, group_stats *s)
{
    for (uint32_t i = 0; i < d; i++) {
        float h1 = r[i], h2 = -3.0e38f, l1 = r[i], l2 = 3.0e38f;
        uint32_t ha = 0, la = 0;
        for (uint32_t t = 1; t < G; t++) {
            float v = r[(size_t)t * d + i];
            if (v > h1) h2 = h1, h1 = v, ha = t;
            else if (v > h2) h2 = v;
            if (v < l1) l2 = l1, l1 = v, la = t;
            else if (v < l2) l2 = v;
        }
        s->hi1[i] = h1, s->hi2[i] = h2, s->lo1[i] = l1, s->lo2[i] = l2, s->hi_at[i] = ha, s->lo_at[i] = la;
    }
}

static double group_cost(const group_stats *s, uint32_t d)
{
    double c = 0.0;
    for (uint32_t i = 0; i < d; i++) {
        float w = s->hi1[i] - s->lo1[i];
        c += (double)w * w;
    }
    return c;
}

/* Coordinate descent on one group from the assignment in a[]; r[] holds its residuals. Returns the
 * final cost. */
static double descend(const float *x, uint32_t G, uint32_t d, const float *P, uint32_t M, uint8_t *a, float *r,
                      group_stats *s, float *ohi, float *olo)
{
    stats_of(r, G, d, s);
    double cur = group_cost(s, d);
    for (int pass = 0; pass < RANGE_PASSES; pass++) {
        int moved = 0;
        for (uint32_t t = 0; t < G; t++) {
            for (uint32_t i = 0; i < d; i++) { /* the other tokens' extremes */
                ohi[i] = s->hi_at[i] == t ? s->hi2[i] : s->hi1[i];
                olo[i] = s->lo_at[i] == t ? s->lo2[i] : s->lo1[i];
            }
            const float *xt = x + (size_t)t * d;
            uint32_t best = a[t];
            double best_cost = cur;
            for (uint32_t m = 0; m < M; m++) {
                if (m == a[t]) continue;
                const float *p = P + (size_t)m * d;
                double c = 0.0;
                for (uint32_t i = 0; i < d && c < best_cost; i++) {
                    float v = xt[i] - p[i], h = v > ohi[i] ? v : ohi[i], l = v < olo[i] ? v : olo[i], w = h - l;
                    c += (double)w * w;
                }
                if (c < best_cost) best_cost = c, best = m;
            }
            if (best != a[t]) {
                a[t] = (uint8_t)best;
                for (uint32_t i = 0; i < d; i++) r[(size_t)t * d + i] = xt[i] - P[(size_t)best * d + i];
                stats_of(r, G, d, s);
                cur = group_cost(s, d);
                moved = 1;
            }
        }
        if (!moved) break;
    }
    return cur;
}

int pkv_cpu_assign_k_range(const pkv_cpu_kernels *k, const float *x, uint32_t n, uint32_t G, uint32_t d,
                           const float *P, uint32_t M, uint8_t *out)
{
    size_t gd = (size_t)G * d;
    float *r = malloc((2 * gd + 6 * (size_t)d) * sizeof *r);
    uint32_t *l2 = malloc(((size_t)G + 2 * d + M) * sizeof *l2);
    uint8_t *b = malloc(G);
    if (!r || !l2 || !b) {
        free(r), free(l2), free(b);
        return -1;
    }
    float *rb = r + gd, *ohi = rb + gd, *olo = ohi + d;
    group_stats s = {olo + d, olo + 2 * d, olo + 3 * d, olo + 4 * d, l2 + G, l2 + G + d};
    uint32_t *votes = l2 + G + 2 * d;
    for (uint32_t g0 = 0; g0 + G <= n; g0 += G) {
        const float *xg = x + (size_t)g0 * d;
        uint8_t *a = out + g0;
        k->argmin_l2(xg, G, d, P, M, l2);
        memset(votes, 0, M * sizeof *votes);
        uint32_t top = 0;
        for (uint32_t t = 0; t < G; t++) votes[l2[t]]++;
        for (uint32_t m = 1; m < M; m++)
            if (votes[m] > votes[top]) top = m;
        /* start A: one pattern for the whole group (DIRECT's ranges) */
        for (uint32_t t = 0; t < G; t++) {
            a[t] = (uint8_t)top;
            for (uint32_t i = 0; i < d; i++) r[(size_t)t * d + i] = xg[(size_t)t * d + i] - P[(size_t)top * d + i];
        }
        double ca = descend(xg, G, d, P, M, a, r, &s, ohi, olo);
        /* start B: L2 */
        for (uint32_t t = 0; t < G; t++) {
            b[t] = (uint8_t)l2[t];
            for (uint32_t i = 0; i < d; i++) rb[(size_t)t * d + i] = xg[(size_t)t * d + i] - P[(size_t)l2[t] * d + i];
        }
        double cb = descend(xg, G, d, P, M, b, rb, &s, ohi, olo);
        if (cb < ca) memcpy(a, b, G);
    }
    free(r), free(l2), free(b);
    return 0;
}

int pkv_cpu_assign_k(const pkv_cpu_kernels *k, uint32_t variant, int at_flush, const float *x, uint32_t n, uint32_t G,
                     uint32_t d, const float *P, uint32_t M, uint8_t *out)
{
    if (variant == PKV_K_ASSIGN_RANGE) return pkv_cpu_assign_k_range(k, x, n, G, d, P, M, out);
    if (variant == PKV_K_ASSIGN_MINMAX && at_flush) {
        k->argmin_minmax(x, n, d, P, M, out);
        return 0;
    }
    uint32_t *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    if (!tmp) return -1;
    k->argmin_l2(x, n, d, P, M, tmp);
    for (uint32_t t = 0; t < n; t++) out[t] = (uint8_t)tmp[t];
    free(tmp);
    return 0;
}
