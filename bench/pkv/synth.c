#include "synth.h"

#include <math.h>

#include "counter_rng.h"

enum { K_CENTRES = 6, V_CENTRES = 4, RUN = 16, BIG_PAIRS = 4 };
enum { S_KC, S_KDRIFT, S_KBIG, S_KPICK, S_KNOISE, S_VC, S_VPICK, S_VNOISE, S_QPICK, S_QNOISE };

static uint64_t stream(const synth_params *p, uint32_t layer, uint32_t head, uint32_t which)
{
    return cli_hash(p->seed, layer, head, which);
}

/* Zipf-like pick among n centres with weights 1/(j+1). */
static uint32_t pick(uint64_t h, uint32_t n)
{
    double total = 0;
    for (uint32_t j = 0; j < n; j++) total += 1.0 / (j + 1);
    double u = cli_unit(h) * total;
    for (uint32_t j = 0; j < n; j++) {
        u -= 1.0 / (j + 1);
        if (u <= 0) return j;
    }
    return n - 1;
}

/* Offset of the large-magnitude channels (0 for others). */
static double big_offset(const synth_params *p, uint32_t layer, uint32_t head, uint32_t c)
{
    uint32_t d = p->head_dim, pair = c / 2;
    if (pair + BIG_PAIRS < d / 2) return 0;
    uint64_t h = cli_hash(stream(p, layer, head, S_KBIG), c, 0, 0);
    double mag = 4.0 + 4.0 * cli_unit(h);
    return (cli_mix64(h) & 1) ? mag : -mag;
}

/* The per-(layer, head) constants, computed once per call. */
typedef struct head_consts {
    double kbase[K_CENTRES][256], kdrift[K_CENTRES][256], big[256], vc[V_CENTRES][256], theta[128];
} head_consts;

static void consts_init(const synth_params *p, uint32_t layer, uint32_t head, head_consts *hc)
{
    uint32_t d = p->head_dim;
    for (uint32_t c = 0; c < d; c++) {
        hc->big[c] = big_offset(p, layer, head, c);
        for (uint32_t j = 0; j < K_CENTRES; j++) {
            hc->kbase[j][c] = cli_gauss(cli_hash(stream(p, layer, head, S_KC), j, c, 0)) + hc->big[c];
            hc->kdrift[j][c] = 0.3 * cli_gauss(cli_hash(stream(p, layer, head, S_KDRIFT), j, c, 0)) / 4096.0;
        }
        for (uint32_t j = 0; j < V_CENTRES; j++)
            hc->vc[j][c] = 0.5 * cli_gauss(cli_hash(stream(p, layer, head, S_VC), j, c, 0));
    }
    for (uint32_t i = 0; i < d / 2; i++) hc->theta[i] = pow(10000.0, -2.0 * i / d);
}

static void rope(float *x, const head_consts *hc, uint32_t d, uint32_t t)
{
    for (uint32_t i = 0; i < d / 2; i++) {
        double angle = (double)t * hc->theta[i];
        double c = cos(angle), s = sin(angle);
        double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = (float)(a * c - b * s);
        x[2 * i + 1] = (float)(a * s + b * c);
    }
}

void synth_kv(const synth_params *p, uint32_t layer, uint32_t head, uint32_t t0, uint32_t n, float *k, float *v)
{
    static _Thread_local head_consts hc;
    uint32_t d = p->head_dim;
    consts_init(p, layer, head, &hc);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = t0 + i;
        float *kt = k + (uint64_t)i * d, *vt = v + (uint64_t)i * d;
        uint32_t jk = pick(cli_hash(stream(p, layer, head, S_KPICK), t / RUN, 0, 0), K_CENTRES);
        uint32_t jv = pick(cli_hash(stream(p, layer, head, S_VPICK), t / RUN, 0, 0), V_CENTRES);
        uint64_t kn = stream(p, layer, head, S_KNOISE), vn = stream(p, layer, head, S_VNOISE);
        for (uint32_t c = 0; c < d; c++) {
            double noise = 0.35 * cli_gauss(cli_hash(kn, t, c, 0));
            kt[c] = (float)(hc.kbase[jk][c] + hc.kdrift[jk][c] * t + noise);
            vt[c] = (float)(hc.vc[jv][c] + 0.6 * cli_gauss(cli_hash(vn, t, c, 0)));
        }
        rope(kt, &hc, d, t);
    }
}

void synth_q(const synth_params *p, uint32_t layer, uint32_t qh, uint32_t t, float *q)
{
    static _Thread_local head_consts hc;
    uint32_t d = p->head_dim;
    uint32_t group = p->n_q_heads / p->n_kv_heads;
    uint32_t head = qh / (group ? group : 1);
    consts_init(p, layer, head, &hc);
    uint32_t j = pick(cli_hash(stream(p, layer, qh, S_QPICK), t, 0, 0), K_CENTRES);
    for (uint32_t c = 0; c < d; c++) {
        double centre = hc.kbase[j][c] + hc.kdrift[j][c] * t - 0.75 * hc.big[c];
        q[c] = (float)(centre + 0.5 * cli_gauss(cli_hash(stream(p, layer, qh, S_QNOISE), t, c, 1)));
    }
    rope(q, &hc, d, t);
}
