/* How the MSE quantizer's 17-candidate search was chosen (bench/RESULTS.md 2026-12-05, docs/NUMERICS.md
 * "Quantizer range search"): on real V tokens (data/tinyllm/kv_fixture.safetensors: 4 layers x 2 heads x
 * 4096 tokens x d 64, every third token) or on Gaussian / Laplacian d-128 values, the total squared error
 * of each search over the 8x8 grid of clipped ranges against the whole grid's (the search before
 * 2026-12-05), the share of runs where it picks the grid's choice, and the candidates it visits; then
 * where the grid's best lies. Not built by the project; from the repository root:
 *   gcc -O2 -ffp-contract=off -I src/core -I shaders/common -I include \
 *       bench/results/2026-12-05_mse_search17_s12/search_sim.c src/core/quant.c src/core/f16.c -lm -o /tmp/sim
 *   /tmp/sim 0   (real V; 1: Gaussian, 2: Laplacian) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "quant.h"

int pkv_fail(int s, ...) { return s; } /* f16.c's error path, not reached here */

static float err_of(const float *x, int n, int bits, uint32_t c) { return pkv_quant_sq_error(x, n, 1, bits, c, INFINITY); }

/* the whole grid, k = 0..63 in order, the first strictly least (the search until 2026-12-05) */
static uint32_t grid64(const float *x, int n, int bits, pkv_span s, int *bk)
{
    float inv = pkv_inv_maxq(bits);
    uint32_t bc = pkv_mse_candidate(s, 0, inv);
    float be = err_of(x, n, bits, bc);
    *bk = 0;
    for (int k = 1; k < 64; k++) {
        uint32_t c = pkv_mse_candidate(s, (uint32_t)k, inv);
        float e = err_of(x, n, bits, c);
        if (e < be) be = e, bc = c, *bk = k;
    }
    return bc;
}

/* coarse points (i, j), then `rounds` rounds of the 8 neighbours of the best (stopping when it stays) */
typedef struct { const char *name; int n; int pts[16][2]; int rounds; } strat;
static uint32_t walk(const strat *st, const float *x, int n, int bits, pkv_span s, int *ne)
{
    float inv = pkv_inv_maxq(bits), be = INFINITY;
    uint32_t bc = 0;
    int bi = 0, bj = 0, cnt = 0;
    for (int q = 0; q < st->n; q++) {
        int i = st->pts[q][0], j = st->pts[q][1];
        uint32_t c = pkv_mse_candidate(s, (uint32_t)(i * 8 + j), inv);
        float e = err_of(x, n, bits, c);
        cnt++;
        if (q == 0 || e < be) be = e, bc = c, bi = i, bj = j;
    }
    for (int r = 0; r < st->rounds; r++) {
        int i0 = bi, j0 = bj;
        for (int di = -1; di <= 1; di++)
            for (int dj = -1; dj <= 1; dj++) {
                int i = i0 + di, j = j0 + dj;
                if ((!di && !dj) || i < 0 || i > 7 || j < 0 || j > 7) continue;
                uint32_t c = pkv_mse_candidate(s, (uint32_t)(i * 8 + j), inv);
                float e = err_of(x, n, bits, c);
                cnt++;
                if (e < be) be = e, bc = c, bi = i, bj = j;
            }
        if (bi == i0 && bj == j0) break;
    }
    *ne = cnt;
    return bc;
}

static const strat S[] = {
    {"{0,3,6}^2 +1", 9, {{0, 0}, {0, 3}, {0, 6}, {3, 0}, {3, 3}, {3, 6}, {6, 0}, {6, 3}, {6, 6}}, 1},
    {"{0,2,4,6}^2 +1", 16, {{0,0},{0,2},{0,4},{0,6},{2,0},{2,2},{2,4},{2,6},{4,0},{4,2},{4,4},{4,6},{6,0},{6,2},{6,4},{6,6}}, 1},
    {"{0,1,2}^2 +1", 9, {{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}, {2, 0}, {2, 1}, {2, 2}}, 1},
    {"00,{1,3,5}^2 +2", 10, {{0, 0}, {1, 1}, {1, 3}, {1, 5}, {3, 1}, {3, 3}, {3, 5}, {5, 1}, {5, 3}, {5, 5}}, 2},
    {"00 climb", 1, {{0, 0}}, 9},
    {"00,33 +3", 2, {{0, 0}, {3, 3}}, 3},
};
#define NS (int)(sizeof S / sizeof S[0])

int main(int argc, char **argv)
{
    int synth = argc > 1 ? atoi(argv[1]) : 0;
    int L = 4, H = 2, T = 4096, D = 64;
    float *v = malloc((size_t)L * H * T * 128 * sizeof(float));
    if (!synth) {
        FILE *f = fopen("data/tinyllm/kv_fixture.safetensors", "rb");
        uint64_t hn;
        if (!f || fread(&hn, 8, 1, f) != 1) return 1;
        fseek(f, (long)(8 + hn + 4194304), SEEK_SET); /* "v": F16 [4, 2, 4096, 64] after "k" */
        size_t N = (size_t)L * H * T * D;
        uint16_t *vh = malloc(N * 2);
        if (fread(vh, 2, N, f) != N) return 1;
        fclose(f);
        for (size_t i = 0; i < N; i++) v[i] = pkv_f16_to_f32(vh[i]);
    } else {
        D = 128, T = 2048;
        srand(1);
        for (size_t i = 0; i < (size_t)L * H * T * D; i++) {
            double u = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = (rand() + 1.0) / (RAND_MAX + 2.0);
            double g = synth == 2 ? (u2 < 0.5 ? -1 : 1) * log(u) : sqrt(-2 * log(u)) * cos(6.283185307 * u2);
            v[i] = pkv_f16_to_f32((uint16_t)pkv_f32_to_f16((float)g));
        }
    }
    float x[128];
    for (int bits = 2; bits <= 8; bits = bits == 4 ? 8 : bits + 1) {
        double tot[NS + 2] = {0}, tgrid = 0, tmm = 0;
        long same[NS + 2] = {0}, nev[NS + 2] = {0}, ntok = 0, hist[8][8] = {{0}};
        for (int lh = 0; lh < L * H; lh++)
            for (int t = 0; t < T; t += 3) {
                memcpy(x, v + ((size_t)lh * T + t) * D, (size_t)D * sizeof(float));
                pkv_span s = pkv_span_of(x[0]);
                for (int i = 1; i < D; i++) s = pkv_span_add(s, x[i]);
                int bk;
                uint32_t g = grid64(x, D, bits, s, &bk);
                hist[bk >> 3][bk & 7]++;
                tgrid += err_of(x, D, bits, g), ntok++;
                tmm += err_of(x, D, bits, pkv_mse_candidate(s, 0, pkv_inv_maxq(bits)));
                uint16_t sh, zh; /* the library's search */
                pkv_quant_params_mse(x, (uint32_t)D, 1, (uint32_t)bits, &sh, &zh);
                uint32_t c = sh | (uint32_t)zh << 16;
                tot[NS] += err_of(x, D, bits, c), same[NS] += c == g, nev[NS] += PKV_MSE_VISITS;
                for (int k = 0; k < NS; k++) {
                    int ne;
                    c = walk(&S[k], x, D, bits, s, &ne);
                    tot[k] += err_of(x, D, bits, c), same[k] += c == g, nev[k] += ne;
                }
            }
        printf("bits %d, %s, %ld runs of %d: min-max / grid %.4f\n", bits,
               synth == 0 ? "real V (model 1)" : synth == 1 ? "Gaussian" : "Laplacian", ntok, D, tmm / tgrid);
        printf("  %-22s error / grid  same as grid  candidates\n", "search");
        printf("  %-22s %.5f       %.4f        %.1f\n", "library (17)", tot[NS] / tgrid, (double)same[NS] / ntok,
               (double)nev[NS] / ntok);
        for (int k = 0; k < NS; k++)
            printf("  %-22s %.5f       %.4f        %.1f\n", S[k].name, tot[k] / tgrid, (double)same[k] / ntok,
                   (double)nev[k] / ntok);
        printf("  the grid's best (rows i: clipped at the bottom, columns j: at the top, 1/16 of the span each):\n");
        for (int i = 0; i < 8; i++) {
            printf("   ");
            for (int j = 0; j < 8; j++) printf("%6ld", hist[i][j]);
            printf("\n");
        }
    }
    return 0;
}
