/* Prefill k-means on the CPU (cpu_kmeans.h): Lloyd's iteration exactly as docs/NUMERICS.md writes
 * it, with Hamerly's bounds (G. Hamerly, "Making k-means even faster", SDM 2010) to skip work whose
 * outcome is known, so that the centroids, patterns and assignments are bit-identical to the plain
 * iteration (pkv_kmeans_init(plain = 1), which tests compare against).
 *
 * The assignment a_t = argmin_m f_m(x_t), f_m the computed fp32 L2 (docs/NUMERICS.md: diff, square,
 * running sum over i ascending, no FMA). For every token the bounds keep, in double:
 *   u_t >= D(x_t, c_a)  (exact Euclidean distance to its centroid a = a_t),
 *   l_t <= D(x_t, c_m)  for every m != a;
 * when centroids move by delta_m (exact distance, bounded above), u_t grows by delta_a and l_t
 * shrinks by the largest delta of the others (triangle inequality). (Hamerly's other bound, D(x_t, c_m)
 * >= 2 half_a - u_t with half_a half the distance from c_a to its nearest other centroid, is not used:
 * it kept 0.3% more tokens on the bench's prompts for M x M distances per iteration, and l_t, made as
 * the second-nearest distance, is never below it when made.) The computed
 * distance satisfies |f - D^2| <= eps D^2 + tau (eps = (d + 8) 2^-23 covers the d + 2 roundings of
 * the sum and the square and difference; tau covers underflow), so
 *   u^2 (1 + eps) + tau < L^2 (1 - eps) - tau,  L = l_t
 * implies f_a < f_m for every m != a: a is still the strict argmin of the computed distances and the
 * token is skipped. The other tokens go through the kernel table's dots_top2 (x . c_m of every
 * centroid, FMA, any order, reduced in registers to the two smallest h below: several times faster
 * than the exact distances) and resolve_fast: D_m^2 = |x|^2 + |c_m|^2 -
 * 2 x.c_m within a rounding bound, so a token whose best centroid's upper bound, carried to the
 * computed f, lies below the others' lower bounds is assigned (strictly, so ties are not an issue)
 * and gets its bounds from there. Only the rest (a fraction of a percent on clustered and on real
 * data) get all M exact distances from l2_top2 (the same values as the plain kernel), which also
 * remakes their bounds from the best and second-best distance. Doubles round too: every bound moves
 * outward by a factor 1 +- 1e-9 per step, far above that.
 *
 * Centroid sums (the chunk sums, then the pairwise tree of docs/NUMERICS.md): the sum of a chunk of
 * PKV_KMEANS_CHUNK tokens for centroid m is unchanged when no token of the chunk moved to or from m;
 * only the others are summed again (from +0, tokens ascending), the tree is remade every iteration. */
#include "cpu_kmeans.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(PKV_CPU_X86) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "layout.h"
#include "quant.h"

#define UP (1.0 + 1e-9)
#define DN (1.0 - 1e-9)

/* The scratch's arrays, carved from one block in this order (each rounded up to 64 bytes): pass 0
 * counts the bytes, pass 1 sets the pointers. */
static size_t carve(pkv_kmeans *km, uint8_t *base, uint32_t n, uint32_t d, uint32_t M)
{
    const size_t nc = (n + PKV_KMEANS_CHUNK - 1) / PKV_KMEANS_CHUNK, md = (size_t)M * d;
    const size_t nm = n > M ? n : M; /* the kernel's outputs serve the M centroids too */
    size_t off = 0;
#define PKV_KM_ARRAY(field, count)                                                                            \
    do {                                                                                                      \
        if (base) km->field = (void *)(base + off);                                                           \
        off += ((count) * sizeof *km->field + 63) & ~(size_t)63;                                              \
    } while (0)
    PKV_KM_ARRAY(u, (size_t)n);
    PKV_KM_ARRAY(l, (size_t)n);
    PKV_KM_ARRAY(nx2, (size_t)n);
    PKV_KM_ARRAY(delta, (size_t)M);
    PKV_KM_ARRAY(part, nc * md);
    PKV_KM_ARRAY(tree, (nc / 2 + 1) * md);
    PKV_KM_ARRAY(prev, md);
    PKV_KM_ARRAY(d1, nm);
    PKV_KM_ARRAY(d2, nm);
    PKV_KM_ARRAY(nc2, (size_t)M);
    PKV_KM_ARRAY(nc2f, (size_t)M);
    PKV_KM_ARRAY(assign, (size_t)n);
    PKV_KM_ARRAY(count, (size_t)M);
    PKV_KM_ARRAY(idx, (size_t)n);
    PKV_KM_ARRAY(best, nm);
    PKV_KM_ARRAY(dirty, nc * M);
#undef PKV_KM_ARRAY
    return off;
}

size_t pkv_kmeans_scratch_bytes(uint32_t n, uint32_t d, uint32_t M)
{
    pkv_kmeans km;
    return carve(&km, NULL, n, d, M);
}

void pkv_kmeans_init_in(pkv_kmeans *km, void *mem, uint32_t n, uint32_t d, uint32_t M, int plain)
{
    memset(km, 0, sizeof *km);
    km->cap = n;
    km->n = n, km->d = d, km->M = M, km->plain = plain;
    carve(km, mem, n, d, M);
}

void pkv_kmeans_free(pkv_kmeans *km)
{
    free(km->own);
    memset(km, 0, sizeof *km);
}

int pkv_kmeans_init(pkv_kmeans *km, uint32_t n, uint32_t d, uint32_t M, int plain)
{
    void *mem = malloc(pkv_kmeans_scratch_bytes(n, d, M));
    if (!mem) {
        memset(km, 0, sizeof *km);
        return -1;
    }
    pkv_kmeans_init_in(km, mem, n, d, M, plain);
    km->own = mem;
    return 0;
}

/* Squared distances and norms in double for the bounds: sum_i (a_i - b_i)^2 (b NULL: sum_i a_i^2), the
 * d terms in any order (the bounds allow 1e-9 relative, any order is within d 2^-53; only which tokens
 * take which path can depend on it, never a result): running sums in lanes, so that the compiler
 * vectorises them (a latency-bound chain of d additions otherwise). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline double sqd_lanes(const float *a, const float *b, uint32_t d)
{
    double s[8] = {0};
    uint32_t i = 0;
#if defined(__GNUC__)
    /* 8 lanes at once, four independent sums of them */
    typedef double v8d __attribute__((vector_size(64)));
    typedef float v8f __attribute__((vector_size(32)));
    v8d acc[4] = {{0}, {0}, {0}, {0}};
    for (; i + 32 <= d; i += 32)
        for (uint32_t k = 0; k < 4; k++) {
            v8f f;
            memcpy(&f, a + i + 8 * k, sizeof f);
            v8d v = __builtin_convertvector(f, v8d);
            if (b) {
                memcpy(&f, b + i + 8 * k, sizeof f);
                v -= __builtin_convertvector(f, v8d);
            }
            acc[k] += v * v;
        }
    for (uint32_t k = 0; i + 8 <= d; i += 8, k++) {
        v8f f;
        memcpy(&f, a + i, sizeof f);
        v8d v = __builtin_convertvector(f, v8d);
        if (b) {
            memcpy(&f, b + i, sizeof f);
            v -= __builtin_convertvector(f, v8d);
        }
        acc[k] += v * v;
    }
    v8d all = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    memcpy(s, &all, sizeof s);
#endif
    for (; i + 8 <= d; i += 8)
        for (uint32_t k = 0; k < 8; k++) {
            double t = (double)a[i + k] - (b ? (double)b[i + k] : 0.0);
            s[k] += t * t;
        }
    for (; i < d; i++) {
        double t = (double)a[i] - (b ? (double)b[i] : 0.0);
        s[0] += t * t;
    }
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static void norms_generic(double *out, const float *x, uint32_t n, uint32_t d)
{
    for (uint32_t t = 0; t < n; t++) out[t] = sqd_lanes(x + (size_t)t * d, NULL, d);
}

static double sqd_generic(const float *a, const float *b, uint32_t d) { return sqd_lanes(a, b, d); }

#if defined(PKV_CPU_X86) && defined(__GNUC__)
/* The same sums with the eight lanes in one AVX-512 register (the kernel table's level says the CPU has
 * it), four independent sums (any order, as above). */
__attribute__((target("avx512f"), always_inline)) static inline double sqd_avx512_in(const float *a, const float *b,
                                                                                     uint32_t d)
{
    __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    uint32_t i = 0, k = 0;
    for (; i + 8 <= d; i += 8, k = (k + 1) & 3) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(a + i));
        if (b) v = _mm512_sub_pd(v, _mm512_cvtps_pd(_mm256_loadu_ps(b + i)));
        acc[k] = _mm512_add_pd(acc[k], _mm512_mul_pd(v, v));
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(acc[0], acc[1]), _mm512_add_pd(acc[2], acc[3])));
    for (; i < d; i++) {
        double t = (double)a[i] - (b ? (double)b[i] : 0.0);
        s += t * t;
    }
    return s;
}

__attribute__((target("avx512f"))) static void norms_avx512(double *out, const float *x, uint32_t n, uint32_t d)
{
    for (uint32_t t = 0; t < n; t++) out[t] = sqd_avx512_in(x + (size_t)t * d, NULL, d);
}

__attribute__((target("avx512f"))) static double sqd_avx512(const float *a, const float *b, uint32_t d)
{
    return sqd_avx512_in(a, b, d);
}
#define PKV_KM_WIDE(k) ((k)->level == PKV_SIMD_AVX512 || (k)->level == PKV_SIMD_AVX512VNNI)
#endif

/* out[t] = |x_t|^2 for the first n rows of x [n][d] */
static void norms(const pkv_cpu_kernels *k, double *out, const float *x, uint32_t n, uint32_t d)
{
#if defined(PKV_CPU_X86) && defined(__GNUC__)
    if (PKV_KM_WIDE(k)) {
        norms_avx512(out, x, n, d);
        return;
    }
#endif
    (void)k;
    norms_generic(out, x, n, d);
}

/* The exact distance of two fp32 vectors, rounded up (scale: UP) or down (DN). */
static double dist_exact(const pkv_cpu_kernels *k, const float *a, const float *b, uint32_t d, double scale)
{
#if defined(PKV_CPU_X86) && defined(__GNUC__)
    if (PKV_KM_WIDE(k)) return sqrt(sqd_avx512(a, b, d)) * scale;
#endif
    (void)k;
    return sqrt(sqd_generic(a, b, d)) * scale;
}

/* |c_m|^2 of the centroids C [M][d] (double, and float for the dots), and the largest. */
static void centroid_norms(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *C)
{
    norms(k, km->nc2, C, km->M, km->d);
    km->c2max = 0.0;
    for (uint32_t m = 0; m < km->M; m++) {
        km->nc2f[m] = (float)km->nc2[m];
        if (km->nc2[m] > km->c2max) km->c2max = km->nc2[m];
    }
    km->cmax = sqrt(km->c2max);
}

/* The rounding bound of the fast dot products for a row of squared norm nx2 (resolve_fast):
 * D_m^2 = |x|^2 + h_m within it. */
static double dots_bound(const pkv_kmeans *km, double nx2, double tau)
{
    const double K = (2.1 * km->d + 8) * 0x1p-24;
    return K * (sqrt(nx2) * km->cmax + km->c2max) + 1e-12 * nx2 + tau;
}

static int keep(double u, double L, double eps, double tau)
{
    return L > 0.0 && (u * u * (1.0 + eps) + tau) * UP < (L * L * (1.0 - eps) - tau) * DN;
}

static void set_assign(pkv_kmeans *km, uint32_t t, uint32_t now)
{
    uint32_t was = km->assign[t];
    if (was != now) {
        uint8_t *dj = km->dirty + (size_t)(t / PKV_KMEANS_CHUNK) * km->M;
        if (was < km->M) dj[was] = 1;
        dj[now] = 1;
    }
    km->assign[t] = now;
}

/* The tokens idx[0 .. nf) through the fast dot products: with h_m = |c_m|^2 - 2 x.c_m (float),
 * D_m^2 = |x|^2 + h_m within E = (2.1 d + 8) 2^-24 (|x| max|c| + max|c|^2): the dot's rounding
 * (gamma_d |x| |c|, any order, FMA or not) and h's roundings (at most two). A token whose smallest h (b),
 * carried to an upper bound of its computed f, lies below a lower bound of the computed f of the
 * second smallest is assigned here (with its bounds); the others are left in idx for the exact
 * kernel. Returns how many are left. */
static uint32_t resolve_fast(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x, const float *C, uint32_t *idx,
                             uint32_t nf, double eps, double tau)
{
    const uint32_t d = km->d, M = km->M; /* km->nc2f, c2max: C's (centroid_norms) */
    k->dots_top2(x, idx, nf, d, C, M, km->nc2f, km->best, km->d1, km->d2);
    uint32_t left = 0;
    for (uint32_t j = 0; j < nf; j++) {
        const uint32_t t = idx[j], b = km->best[j];
        const float h1 = km->d1[j], h2 = km->d2[j];
        const double nx2 = km->nx2[t], e = dots_bound(km, nx2, tau);
        const double hi = nx2 + h1 + e, lo2 = nx2 + (double)h2 - e;
        if (!((hi * (1.0 + eps) * UP + tau) < lo2 * (1.0 - eps) * DN - tau)) { /* f of another may be <= */
            idx[left++] = t; /* left <= j: compaction in place */
            continue;
        }
        set_assign(km, t, b);
        km->u[t] = sqrt(hi > 0.0 ? hi : 0.0) * UP;
        km->l[t] = isinf(h2) ? INFINITY : sqrt(lo2 > 0.0 ? lo2 : 0.0) * DN;
    }
    return left;
}

/* a_t = argmin_m f_m(x_t) over C [M][d] for the first n tokens; marks the chunks whose assignments
 * changed. Bounds (when made) refer to C afterwards. */
static void assign_step(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x, uint32_t n, const float *C)
{
    const uint32_t d = km->d, M = km->M;
    const double eps = (d + 8) * 0x1p-23, tau = (d + 2) * 0x1p-126;
    km->n_steps += n;
    uint32_t nf = 0;
    uint32_t *idx = NULL;
    if (km->bounded && !km->plain) {
        double dm1 = 0.0, dm2 = 0.0; /* the largest delta (of centroid m1) and the second largest */
        uint32_t m1 = 0;
        for (uint32_t m = 0; m < M; m++) {
            if (km->delta[m] > dm1) dm2 = dm1, dm1 = km->delta[m], m1 = m;
            else if (km->delta[m] > dm2) dm2 = km->delta[m];
        }
        for (uint32_t t = 0; t < n; t++) {
            uint32_t a = km->assign[t];
            double u = (km->u[t] + km->delta[a]) * UP, l = (km->l[t] - (a == m1 ? dm2 : dm1)) * DN;
            if (l < 0.0) l = 0.0;
            km->u[t] = u, km->l[t] = l;
            if (!keep(u, l, eps, tau)) km->idx[nf++] = t;
        }
        idx = km->idx;
    } else {
        nf = n;
    }
    if (k->dots_top2 && !km->plain) { /* most tokens settle with the fast dot products */
        if (!idx)
            for (uint32_t t = 0; t < n; t++) km->idx[t] = t;
        idx = km->idx;
        km->n_fast += nf;
        if (nf) {
            centroid_norms(km, k, C);
            nf = resolve_fast(km, k, x, C, idx, nf, eps, tau);
        }
    }
    km->n_exact += nf;
    if (nf) k->l2_top2(x, idx, nf, d, C, M, km->best, km->d1, km->d2);
    for (uint32_t j = 0; j < nf; j++) {
        uint32_t t = idx ? idx[j] : j;
        set_assign(km, t, km->best[j]);
        double f1 = km->d1[j], f2 = km->d2[j];
        km->u[t] = sqrt((f1 + tau) / (1.0 - eps)) * UP;
        km->l[t] = isinf(f2) ? INFINITY : sqrt((f2 > tau ? f2 - tau : 0.0) / (1.0 + eps)) * DN;
    }
    for (uint32_t m = 0; m < M; m++) km->delta[m] = 0.0;
    km->bounded = !km->plain;
}

/* sum_m,i (docs/NUMERICS.md): the (chunk, centroid) sums marked dirty made again (from +0, the
 * chunk's tokens of that centroid ascending), then the tree. Returns [M][d]. */
static const float *centroid_sums(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x)
{
    const uint32_t n = km->n, d = km->d, M = km->M;
    const uint32_t nc = (n + PKV_KMEANS_CHUNK - 1) / PKV_KMEANS_CHUNK;
    const size_t md = (size_t)M * d;
    for (uint32_t j = 0; j < nc; j++) {
        uint8_t *dj = km->dirty + (size_t)j * M;
        if (km->plain) memset(dj, 1, M);
        uint32_t any = 0;
        for (uint32_t m = 0; m < M; m++) any |= dj[m];
        if (!any) continue;
        float *s = km->part + j * md;
        for (uint32_t m = 0; m < M; m++)
            if (dj[m]) memset(s + (size_t)m * d, 0, d * sizeof *s);
        uint32_t t1 = (j + 1) * PKV_KMEANS_CHUNK < n ? (j + 1) * PKV_KMEANS_CHUNK : n;
        k->sums(x, km->assign, j * PKV_KMEANS_CHUNK, t1, d, dj, s);
        memset(dj, 0, M);
    }
    if (nc == 1) return km->part;
    /* level 0 from the chunk sums into tree, the later levels in place */
    const float *src = km->part;
    for (uint32_t len = nc; len > 1; len = (len + 1) / 2) {
        for (uint32_t q = 0; q < len / 2; q++) {
            float *dst = km->tree + q * md;
            const float *l = src + 2 * q * md, *r = src + (2 * q + 1) * md;
            for (size_t e = 0; e < md; e++) dst[e] = l[e] + r[e];
        }
        if (len & 1) memmove(km->tree + (len / 2) * md, src + (len - 1) * md, md * sizeof *km->tree);
        src = km->tree;
    }
    return km->tree;
}

/* A centroid's update, docs/NUMERICS.md: nv_i = sum_i * r, sq_i = (nv_i - c_i)^2 (pkv_l2_step's two
 * roundings), c_i = nv_i, for i < d (no chain: the compiler vectorises it). */
static void update_row(const float *restrict sum, float r, float *restrict c, float *restrict sq, uint32_t d)
{
    for (uint32_t i = 0; i < d; i++) {
        PKV_PRECISE float nv = sum[i] * r;
        PKV_PRECISE float diff = nv - c[i];
        PKV_PRECISE float s2 = diff * diff;
        sq[i] = s2;
        c[i] = nv;
    }
}

void pkv_kmeans_run(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x, uint32_t n, const uint32_t *init,
                    const float *rcp, uint32_t iters, float tol2, float *c)
{
    if (n > km->cap) n = km->cap; /* (callers size the scratch for n) */
    km->n = n;
    const uint32_t d = km->d, M = km->M;
    for (uint32_t m = 0; m < M; m++) memcpy(c + (size_t)m * d, x + (size_t)init[m] * d, d * sizeof *c);
    km->bounded = 0;
    memset(km->assign, 0xff, (size_t)n * sizeof *km->assign);
    norms(k, km->nx2, x, n, d);
    memset(km->dirty, 1, (size_t)(n + PKV_KMEANS_CHUNK - 1) / PKV_KMEANS_CHUNK * M);
    for (uint32_t it = 0; it < iters; it++) {
        assign_step(km, k, x, n, c);
        memset(km->count, 0, M * sizeof *km->count);
        for (uint32_t t = 0; t < n; t++) km->count[km->assign[t]]++;
        const float *sum = centroid_sums(km, k, x);
        memcpy(km->prev, c, (size_t)M * d * sizeof *c);
        float shift2 = 0.0f;
        /* the centroids that have tokens, PKV_KM_ILP at a time: each one's shift is a chain of d
         * dependent additions (channels ascending), so several run side by side */
#define PKV_KM_ILP 8
        for (uint32_t m0 = 0; m0 < M;) {
            uint32_t act[PKV_KM_ILP], na = 0;
            for (; m0 < M && na < PKV_KM_ILP; m0++)
                if (km->count[m0]) act[na++] = m0;
            float acc[PKV_KM_ILP] = {0};
            if (d <= 256) { /* the new values and squared differences per centroid (vectorised, each value
                             * the same two roundings), then only the additions run as chains */
                float sq[PKV_KM_ILP][256];
                for (uint32_t q = 0; q < na; q++)
                    update_row(sum + (size_t)act[q] * d, rcp[km->count[act[q]]], c + (size_t)act[q] * d, sq[q], d);
                for (uint32_t i = 0; i < d; i++)
                    for (uint32_t q = 0; q < na; q++) {
                        PKV_PRECISE float r = acc[q] + sq[q][i];
                        acc[q] = r;
                    }
            } else {
                for (uint32_t i = 0; i < d; i++)
                    for (uint32_t q = 0; q < na; q++) {
                        const size_t e = (size_t)act[q] * d + i;
                        const float nv = sum[e] * rcp[km->count[act[q]]];
                        acc[q] = pkv_l2_step(acc[q], nv, c[e]);
                        c[e] = nv;
                    }
            }
            for (uint32_t q = 0; q < na; q++) {
                const uint32_t m = act[q];
                if (acc[q] > shift2) shift2 = acc[q];
                km->delta[m] = (km->delta[m] + dist_exact(k, km->prev + (size_t)m * d, c + (size_t)m * d, d, UP)) * UP;
            }
        }
#undef PKV_KM_ILP
        if (shift2 < tol2) break;
    }
}

void pkv_kmeans_assign(pkv_kmeans *km, const pkv_cpu_kernels *k, const float *x, uint32_t nq, int same,
                       const float *c, const float *P, uint32_t *out)
{
    const uint32_t d = km->d;
    if (nq > km->cap) nq = km->cap;
    if (!same) { /* other tokens than the run's: no bounds, the dots and the exact kernel only */
        km->bounded = 0;
        memset(km->assign, 0xff, (size_t)nq * sizeof *km->assign);
        norms(k, km->nx2, x, nq, d);
    }
    if (km->bounded)
        for (uint32_t m = 0; m < km->M; m++)
            km->delta[m] = (km->delta[m] + dist_exact(k, c + (size_t)m * d, P + (size_t)m * d, d, UP)) * UP;
    assign_step(km, k, x, nq, P);
    memcpy(out, km->assign, (size_t)nq * sizeof *out);
    km->bounded = 0; /* the bounds of the tokens past nq no longer hold */
}
