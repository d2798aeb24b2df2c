/* The three ops on the OpenCL device: prefill mining, window flush, attention. Each uploads its small
 * inputs, launches its kernels on the in-order queue and waits, so a failure is reported by the op
 * that caused it; kernels write only the slots the common layer reserved. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "attn_plan.h"
#include "ocl_internal.h"
#include "ocl_params.h"
#include "profile.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void fill_geom(uint32_t *P, const pkv_geom *g)
{
    memset(P, 0, PP_COUNT * sizeof *P);
    P[PP_D] = g->d;
    P[PP_G] = g->G;
    P[PP_R] = g->R;
    P[PP_H] = g->H;
    P[PP_KBITS] = g->k_bits;
    P[PP_VBITS] = g->v_bits;
    P[PP_MODE] = g->mode;
    P[PP_BLOCK_BYTES] = g->block_bytes;
    P[PP_CHUNK_BYTES] = g->chunk_bytes;
    P[PP_WINDOW_BYTES] = g->window_bytes;
    P[PP_KROW] = g->k_row_words;
    P[PP_VROW] = g->v_row_words;
    P[PP_OFF_KCODES] = g->off_kcodes;
    P[PP_OFF_KSCALE] = g->off_kscale;
    P[PP_OFF_KZERO] = g->off_kzero;
    P[PP_OFF_VCODES] = g->off_vcodes;
    P[PP_OFF_VSCALE] = g->off_vscale;
    P[PP_OFF_VZERO] = g->off_vzero;
    P[PP_OFF_KIDX] = g->off_kidx;
    P[PP_OFF_VIDX] = g->off_vidx;
    P[PP_OFF_VMASK] = g->off_vmask;
    P[PP_OFF_KFP16] = g->off_kfp16;
    P[PP_OFF_VFP16] = g->off_vfp16;
    P[PP_GATE_K2] = f32_bits(g->gate_k2);
    P[PP_INV_K] = f32_bits(g->inv_maxq_k);
    P[PP_INV_V] = f32_bits(g->inv_maxq_v);
    P[PP_QMSE] = pkv_geom_mse_halves(g);
}

static cl_mem mem_or_dummy(pkv_ocl *o, pkv_buf *b)
{
    if (b && b->mem) return b->mem;
    pkv_ocl_scratch_reserve(o, &o->s[PKV_S_DUMMY], 64);
    return o->s[PKV_S_DUMMY].mem;
}

static pkv_status upload(pkv_ocl *o, int id, const void *src, size_t bytes)
{
    static const uint32_t zero[4] = {0};
    if (!src || !bytes) return pkv_ocl_scratch_upload(o, &o->s[id], zero, sizeof zero);
    return pkv_ocl_scratch_upload(o, &o->s[id], src, bytes);
}

/* Turns a CL error of an op into a status with a message. */
static pkv_status op_failed(const char *op, cl_int err)
{
    pkv_status st = pkv_ocl_status(err);
    return pkv_fail(NULL, st, "opencl: %s failed (%s)", op, pkv_ocl_error_name(err));
}

static pkv_status finish(pkv_ocl *o, const char *op, cl_int err)
{
    const double tw = pkv_prof_start();
    if (err == CL_SUCCESS && !o->deferred) err = o->cl->clFinish(o->q), pkv_prof_submit();
    pkv_prof_add(PKV_PROF_WAIT, tw);
    pkv_ocl_op_end(o, err == CL_SUCCESS && !o->deferred);
    return err == CL_SUCCESS ? PKV_OK : op_failed(op, err);
}

#define ARG(x) sizeof(x), (const void *)&(x)
#define UNIT_WORDS 16u /* UDESC_WORDS of ocl_params.h */
/* Scratch of one mining run of several layers (PKV_OPENCL_MINE_BYTES overrides it). */
#define MINE_BYTES_DEFAULT (1ull << 30)

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

/* Offsets in words, 16-word aligned. */
static uint32_t take(size_t *words, size_t n)
{
    size_t at = *words;
    *words += (n + 15) & ~(size_t)15;
    return (uint32_t)at;
}

/* The work-group size of kernel k, at most `cap`. */
static size_t wg_of(const pkv_ocl *o, int k, size_t cap) { return o->wg[k] < cap ? o->wg[k] : cap; }

/* Patterns (or centroids) per local-memory block of an assignment kernel (MB_MAX at most): what
 * fits in the device's local memory less 4 KiB. */
static uint32_t assign_mb(const pkv_ocl *o, uint32_t d)
{
    const size_t mb = (o->local_mem > 4096 ? o->local_mem - 4096 : 1024) / (4 * (size_t)d);
    return (uint32_t)(mb < 1 ? 1 : mb > 32 ? 32 : mb);
}

/* Runs per work-group of ocl_quant_search (its local size is that times PKV_MSE_COARSE): layout.h's
 * pkv_geom_mse_runs_per_group, fewer where the device allows less. */
static uint32_t qsearch_runs(const pkv_ocl *o, const pkv_geom *g)
{
    uint32_t runs = pkv_geom_mse_runs_per_group(g);
    while (runs > 1 && runs * PKV_MSE_COARSE > o->wg[PKV_K_QSEARCH]) runs /= 2;
    return runs;
}

/* Words of the work buffer that ocl_quant_search's answers take (none without the MSE quantizer). */
static size_t qsearch_words(const pkv_geom *g, uint32_t units, uint32_t n_blocks)
{
    return pkv_geom_mse_halves(g) ? (size_t)units * n_blocks * (g->d + g->G) : 0;
}

/* Encodes n_blocks blocks per unit from src (the token upload or the windows) with the assignments
 * in work (PATTERN), after the MSE quantizer's range search where it applies (into
 * work[PP_W_QSEARCH]). */
static cl_int launch_encode(pkv_ocl *o, const pkv_store *st, cl_mem params, cl_mem src, cl_mem tab, cl_mem work,
                            uint32_t units, uint32_t n_blocks)
{
    const pkv_geom *g = st->g;
    cl_mem chunks = mem_or_dummy(o, st->chunks), blocks = mem_or_dummy(o, st->blocks);
    cl_int err = CL_SUCCESS;
    if (pkv_geom_mse_halves(g)) {
        cl_kernel k = o->k[PKV_K_QSEARCH];
        const uint32_t runs = qsearch_runs(o, g), slices = ceil_div(pkv_geom_mse_run_max(g), runs);
        err = pkv_ocl_args(o, k, 5, ARG(params), ARG(src), ARG(tab), ARG(chunks), ARG(work));
        if (err == CL_SUCCESS)
            err = pkv_ocl_launch(o, k, (size_t)units * n_blocks * 2 * slices, (size_t)runs * PKV_MSE_COARSE);
    }
    cl_kernel k = o->k[PKV_K_ENCODE];
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, k, 6, ARG(params), ARG(src), ARG(tab), ARG(chunks), ARG(work), ARG(blocks));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (size_t)units * n_blocks, o->wg[PKV_K_ENCODE]);
    return err;
}

typedef struct mine_plan {
    uint32_t units, lists, nc, nblk, mb, km_local;
    uint32_t t_udesc, t_bslot, t_init, t_rcp;       /* table upload */
    uint32_t w_cent, w_part, w_cnt, w_kassign, w_flags, w_assign, w_qsearch; /* work buffer */
    size_t tab_words, work_words, token_bytes;
} mine_plan;

static void plan_mine(const pkv_ocl *o, const pkv_geom *g, const pkv_mine_op *op, uint32_t layers, mine_plan *mp)
{
    const size_t H = g->H, d = g->d, M = g->M, n = op->n_tokens, ns = op->n_sample;
    memset(mp, 0, sizeof *mp);
    mp->units = layers * g->H, mp->lists = 2 * mp->units, mp->nc = ceil_div(op->n_sample, PKV_KMEANS_CHUNK);
    mp->nblk = op->n_quant / g->G;
    size_t t = 0, w = 0;
    mp->t_udesc = take(&t, (size_t)mp->units * UNIT_WORDS);
    mp->t_bslot = take(&t, (size_t)mp->units * mp->nblk + 1);
    mp->t_init = take(&t, (size_t)mp->lists * M);
    mp->t_rcp = take(&t, ns + 1);
    mp->tab_words = t;
    mp->w_cent = take(&w, (size_t)mp->lists * M * d);
    mp->w_part = take(&w, (size_t)mp->lists * mp->nc * M * d);
    mp->w_cnt = take(&w, (size_t)mp->lists * mp->nc * M);
    mp->w_kassign = take(&w, (size_t)mp->lists * ns);
    mp->w_flags = take(&w, (size_t)mp->lists * 2);
    mp->w_assign = take(&w, (size_t)mp->lists * op->n_quant + 1);
    mp->w_qsearch = take(&w, qsearch_words(g, mp->units, mp->nblk));
    mp->work_words = w;
    mp->token_bytes = (size_t)layers * 2 * n * H * d * 2;
    /* centroids per local-memory block of the assignment, and the sums in local memory when they fit
     * (PKV_OPENCL_KMEANS_GLOBAL=1 keeps them in global memory: tests cover both paths) */
    mp->mb = assign_mb(o, d) < M ? assign_mb(o, d) : M;
    const char *force_global = getenv("PKV_OPENCL_KMEANS_GLOBAL");
    mp->km_local = M * d * 4 + 2 * PKV_KMEANS_CHUNK * 4 + PKV_MAX_BANK * 4 + 1024 <= o->local_mem && !(force_global && atoi(force_global) == 1);
}

/* One mining run of layers [l0, l0 + nl) of the op. */
static pkv_status mine_group(pkv_ocl *o, const pkv_store *st, const pkv_mine_op *op, uint32_t l0, uint32_t nl,
                             double *ms)
{
    const pkv_geom *g = st->g;
    const size_t H = g->H, d = g->d, M = g->M, n = op->n_tokens, ns = op->n_sample;
    mine_plan mp;
    plan_mine(o, g, op, nl, &mp);
    uint32_t P[PP_COUNT];
    fill_geom(P, g);
    P[PP_N_TOKENS] = (uint32_t)n;
    P[PP_N_SAMPLE] = (uint32_t)ns;
    P[PP_M] = (uint32_t)M;
    P[PP_MAX_ITERS] = op->max_iters;
    P[PP_TOL2] = f32_bits(op->tol2);
    P[PP_SRC_WINDOW] = 0;
    P[PP_NB] = mp.nblk;
    P[PP_KM_LOCAL] = mp.km_local;
    P[PP_N_SRC_LAYERS] = nl;
    P[PP_UNITS] = mp.units;
    P[PP_NC] = mp.nc;
    P[PP_N_ASSIGN] = op->n_quant;
    P[PP_MB] = mp.mb;
    P[PP_T_UDESC] = mp.t_udesc, P[PP_T_BSLOT] = mp.t_bslot, P[PP_T_INIT] = mp.t_init, P[PP_T_RCP] = mp.t_rcp;
    P[PP_W_CENT] = mp.w_cent, P[PP_W_PART] = mp.w_part, P[PP_W_CNT] = mp.w_cnt, P[PP_W_KASSIGN] = mp.w_kassign;
    P[PP_W_FLAGS] = mp.w_flags, P[PP_W_ASSIGN] = mp.w_assign, P[PP_W_QSEARCH] = mp.w_qsearch;
    uint32_t *tab = calloc(mp.tab_words, sizeof *tab);
    if (!tab) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "opencl mine: out of host memory");
    for (uint32_t l = 0; l < nl; l++) {
        const pkv_mine_layer *ml = &op->layers[l0 + l];
        for (uint32_t h = 0; h < H; h++) {
            uint32_t *u = tab + mp.t_udesc + ((size_t)l * H + h) * UNIT_WORDS;
            u[1] = (uint32_t)M;
            memcpy(u + 4, ml->chunk_table + (size_t)h * PKV_MAX_CHUNKS, PKV_MAX_CHUNKS * sizeof *u);
        }
        memcpy(tab + mp.t_bslot + (size_t)l * H * mp.nblk, ml->block_slot, H * mp.nblk * sizeof *tab);
        memcpy(tab + mp.t_init + (size_t)l * H * 2 * M, ml->init_index, H * 2 * M * sizeof *tab);
    }
    memcpy(tab + mp.t_rcp, op->rcp, (ns + 1) * sizeof *tab);
    pkv_status s = upload(o, PKV_S_PARAMS, P, sizeof P);
    if (s == PKV_OK) s = upload(o, PKV_S_TAB, tab, mp.tab_words * 4);
    free(tab);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_TOKENS], mp.token_bytes);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_WORK], mp.work_words * 4);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: mine could not allocate its scratch buffers");
    pkv_ocl_op_begin(o);
    cl_mem params = o->s[PKV_S_PARAMS].mem, tokens = o->s[PKV_S_TOKENS].mem, tb = o->s[PKV_S_TAB].mem,
           work = o->s[PKV_S_WORK].mem, chunks = mem_or_dummy(o, st->chunks);
    const size_t layer_bytes = n * H * d * 2;
    cl_int err = CL_SUCCESS;
    if (!op->tokens_k) /* engine integration: one layer's K then V, converted on the device */
        err = o->cl->clEnqueueCopyBuffer(o->q, op->tokens_buf->mem, tokens, op->tokens_off, 0, 2 * layer_bytes, 0, NULL, NULL);
    /* host tokens (pkv_ocl_upload_host): a synchronous op's memory outlives the op (no waits), on GPUs
     * staged through pinned memory on threads (a 32-layer 32K-token prompt is 4 GiB of fp16, which a
     * driver's pageable write copies on one thread); an enqueued call (o->deferred) returns before the
     * op ran, and its host tokens (an engine's late mining, README "Mining and chunked prefill") are
     * freed then: written blocking */
    for (uint32_t l = 0; op->tokens_k && l < nl && err == CL_SUCCESS; l++) {
        err = pkv_ocl_upload_host(o, tokens, l * layer_bytes, op->tokens_k[l0 + l], layer_bytes);
        if (err == CL_SUCCESS) err = pkv_ocl_upload_host(o, tokens, (nl + l) * layer_bytes, op->tokens_v[l0 + l], layer_bytes);
    }
    const size_t values = (size_t)mp.lists * M * d;
    cl_kernel k = o->k[PKV_K_KM_INIT];
    size_t wl = o->wg[PKV_K_KM_INIT];
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, k, 4, ARG(params), ARG(tokens), ARG(tb), ARG(work));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (values + wl - 1) / wl, wl);
    const size_t wa = wg_of(o, PKV_K_KM_ASSIGN, 64), wp = wg_of(o, PKV_K_KM_PARTIAL, 128), wr = wg_of(o, PKV_K_KM_REDUCE, 128);
    const cl_uint kmeans = 0, final = 1;
    cl_kernel ka = o->k[PKV_K_KM_ASSIGN], kp = o->k[PKV_K_KM_PARTIAL], kr = o->k[PKV_K_KM_REDUCE], kf = o->k[PKV_K_KM_FINISH];
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, ka, 7, ARG(params), ARG(tokens), ARG(tb), ARG(chunks), ARG(work), (size_t)mp.mb * d * 4, NULL,
                           ARG(kmeans));
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, kp, 4, ARG(params), ARG(tokens), ARG(work), mp.km_local ? M * d * 4 : sizeof(float), NULL);
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, kr, 3, ARG(params), ARG(tb), ARG(work));
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, kf, 2, ARG(params), ARG(work));
    for (uint32_t it = 0; it < op->max_iters && err == CL_SUCCESS; it++) {
        err = pkv_ocl_launch(o, ka, (size_t)mp.lists * ceil_div((uint32_t)ns, (uint32_t)wa), wa);
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, kp, (size_t)mp.lists * mp.nc, wp);
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, kr, (size_t)mp.lists * M, wr);
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, kf, ceil_div(mp.lists, 64), wg_of(o, PKV_K_KM_FINISH, 64));
    }
    k = o->k[PKV_K_KM_STORE];
    wl = o->wg[PKV_K_KM_STORE];
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, k, 4, ARG(params), ARG(tb), ARG(work), ARG(chunks));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (values + wl - 1) / wl, wl);
    if (err == CL_SUCCESS && mp.nblk > 0) {
        err = o->cl->clSetKernelArg(ka, 6, sizeof final, &final);
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, ka, (size_t)mp.lists * ceil_div(op->n_quant, (uint32_t)wa), wa);
        if (err == CL_SUCCESS) err = launch_encode(o, st, params, tokens, tb, work, mp.units, mp.nblk);
    }
    pkv_status r = finish(o, "mine", err);
    *ms = o->last_op_ms;
    return r;
}

pkv_status pkv_ocl_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op)
{
    if (!op->tokens_k && op->n_layers != 1)
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "opencl mine: tokens in device memory come one layer at a time");
    pkv_ocl *o = pkv_ocl_of(be);
    const pkv_geom *g = st->g;
    if (g->mode != PKV_MODE_PATTERN || g->M > PKV_MAX_BANK || op->n_tokens < g->M)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "opencl: mine needs PATTERN mode and n_tokens >= M");
    const char *env = getenv("PKV_OPENCL_MINE_BYTES");
    uint64_t budget = env && *env ? strtoull(env, NULL, 10) : MINE_BYTES_DEFAULT;
    uint32_t per = 1;
    while (per < op->n_layers) {
        mine_plan mp;
        plan_mine(o, g, op, per + 1, &mp);
        if (mp.token_bytes + mp.work_words * 4 > budget || mp.token_bytes > o->max_alloc || mp.work_words * 4 > o->max_alloc)
            break;
        per++;
    }
    pkv_status s = PKV_OK;
    double total = 0.0;
    for (uint32_t l0 = 0; l0 < op->n_layers && s == PKV_OK; l0 += per) {
        double ms = -1.0;
        s = mine_group(o, st, op, l0, op->n_layers - l0 < per ? op->n_layers - l0 : per, &ms);
        total = total < 0 || ms < 0 ? -1.0 : total + ms;
    }
    o->last_op_ms = s == PKV_OK ? total : -1.0;
    return s;
}

pkv_status pkv_ocl_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op)
{
    pkv_ocl *o = pkv_ocl_of(be);
    const pkv_geom *g = st->g;
    const size_t H = g->H;
    const uint32_t nb = g->R / g->G, units = op->n_layers * g->H;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    int any_centre = 0;
    for (uint32_t l = 0; l < op->n_layers; l++) {
        const uint32_t npat = op->layers[l].bank_count + (op->layers[l].append_pattern ? 1u : 0u);
        if (pattern && (npat == 0 || npat > PKV_MAX_BANK))
            return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "opencl: flush with %u patterns", npat);
        any_centre |= pattern && op->layers[l].append_pattern;
    }
    uint32_t P[PP_COUNT];
    fill_geom(P, g);
    P[PP_SRC_WINDOW] = 1;
    P[PP_NB] = nb;
    P[PP_UNITS] = units;
    P[PP_N_ASSIGN] = g->R;
    P[PP_MB] = assign_mb(o, g->d); /* the assignment's patterns per local-memory block */
    size_t t = 0, w = 0;
    P[PP_T_UDESC] = take(&t, (size_t)units * UNIT_WORDS);
    P[PP_T_BSLOT] = take(&t, (size_t)units * nb);
    P[PP_W_ASSIGN] = take(&w, pattern ? (size_t)units * 2 * g->R : 0);
    P[PP_W_QSEARCH] = take(&w, qsearch_words(g, units, nb));
    uint32_t *tab = calloc(t, sizeof *tab);
    if (!tab) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "opencl flush: out of host memory");
    for (uint32_t l = 0; l < op->n_layers; l++) {
        const pkv_flush_layer *fl = &op->layers[l];
        for (uint32_t h = 0; h < H; h++) {
            uint32_t *u = tab + P[PP_T_UDESC] + ((size_t)l * H + h) * UNIT_WORDS;
            u[0] = fl->window_slot[h];
            if (pattern) {
                u[1] = fl->bank_count + fl->append_pattern, u[2] = fl->bank_count, u[3] = fl->append_pattern;
                memcpy(u + 4, fl->chunk_table + h * PKV_MAX_CHUNKS, PKV_MAX_CHUNKS * sizeof *u);
            }
        }
        memcpy(tab + P[PP_T_BSLOT] + (size_t)l * H * nb, fl->block_slot, H * nb * sizeof *tab);
    }
    pkv_status s = upload(o, PKV_S_PARAMS, P, sizeof P);
    if (s == PKV_OK) s = upload(o, PKV_S_TAB, tab, t * 4);
    free(tab);
    if (s == PKV_OK && w) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_WORK], w * 4);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: flush could not upload its inputs");
    pkv_ocl_op_begin(o);
    cl_mem params = o->s[PKV_S_PARAMS].mem, tb = o->s[PKV_S_TAB].mem, windows = mem_or_dummy(o, st->windows),
           chunks = mem_or_dummy(o, st->chunks), work = w ? o->s[PKV_S_WORK].mem : mem_or_dummy(o, NULL);
    cl_int err = CL_SUCCESS;
    if (any_centre) {
        cl_kernel k = o->k[PKV_K_CENTRE];
        err = pkv_ocl_args(o, k, 4, ARG(params), ARG(windows), ARG(tb), ARG(chunks));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, 2 * (size_t)units, o->wg[PKV_K_CENTRE]);
    }
    if (err == CL_SUCCESS && pattern) {
        cl_kernel k = o->k[PKV_K_ASSIGN];
        const size_t wl = wg_of(o, PKV_K_ASSIGN, 64);
        err = pkv_ocl_args(o, k, 6, ARG(params), ARG(windows), ARG(tb), ARG(chunks), ARG(work), (size_t)P[PP_MB] * g->d * 4, NULL);
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (size_t)units * 2 * ceil_div(g->R, (uint32_t)wl), wl);
    }
    if (err == CL_SUCCESS) err = launch_encode(o, st, params, windows, tb, work, units, nb);
    return finish(o, "flush", err);
}

/* Window rows from device memory (engine integration; a decode step's rows: one per token, head and
 * K|V of every sequence, each to its own window slot): the runs re-based to source rows [lo, hi)
 * uploaded without a wait, those rows copied after them on the device, and the window kernel: three
 * commands instead of a copy command per row (a batch of 8 x 8 heads made 128 per layer). */
static pkv_status window_from_device(pkv_ocl *o, const pkv_store *st, const pkv_window_op *op, uint32_t lo, uint32_t hi)
{
    const size_t d = st->g->d, run_words = ((size_t)op->n_runs * 3 + 15) & ~(size_t)15;
    const size_t bytes = (run_words + (size_t)(hi - lo) * d / 2) * 4;
    if (run_words * 4 > o->wstage_bytes) {
        uint32_t *p = realloc(o->wstage, run_words * 4 * 2);
        if (!p) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "opencl window write: out of host memory");
        o->wstage = p;
        o->wstage_bytes = run_words * 4 * 2;
    }
    for (uint32_t r = 0; r < op->n_runs; r++) {
        const uint32_t *run = op->runs + 3 * (size_t)r;
        o->wstage[3 * r] = run[0] - lo, o->wstage[3 * r + 1] = run[1], o->wstage[3 * r + 2] = run[2];
    }
    pkv_status s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_WROWS], bytes); /* then the upload does not regrow it */
    if (s == PKV_OK) s = pkv_ocl_scratch_upload_async(o, &o->s[PKV_S_WROWS], o->wstage, (size_t)op->n_runs * 3 * 4);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl window write: upload failed");
    cl_mem up = o->s[PKV_S_WROWS].mem, windows = mem_or_dummy(o, st->windows);
    cl_int err = o->cl->clEnqueueCopyBuffer(o->q, op->rows_buf->mem, up, op->rows_off + (size_t)lo * d * 2, run_words * 4,
                                            (size_t)(hi - lo) * d * 2, 0, NULL, NULL);
    const cl_uint n_runs = op->n_runs, rows_at = (cl_uint)run_words, row_words = (cl_uint)(d / 2);
    cl_kernel k = o->k[PKV_K_WINDOW];
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, k, 5, ARG(up), ARG(n_runs), ARG(rows_at), ARG(row_words), ARG(windows));
    size_t local = wg_of(o, PKV_K_WINDOW, 64), global = (size_t)op->n_runs * local;
    if (err == CL_SUCCESS) err = o->cl->clEnqueueNDRangeKernel(o->q, k, 1, NULL, &global, &local, 0, NULL, NULL);
    return err == CL_SUCCESS ? PKV_OK : op_failed("window write", err);
}

/* One upload (runs, then the rows) and one launch, not waited for: the in-order queue runs it
 * before the next op, whose wait reports its errors. */
pkv_status pkv_ocl_write_window(pkv_backend *be, const pkv_store *st, const pkv_window_op *op)
{
    pkv_ocl *o = pkv_ocl_of(be);
    if (!op->rows) { /* engine integration: rows in device memory */
        const size_t row = (size_t)st->g->d * 2;
        uint32_t lo = UINT32_MAX, hi = 0, used = 0;
        for (uint32_t r = 0; r < op->n_runs; r++) {
            const uint32_t *run = op->runs + 3 * (size_t)r;
            lo = run[0] < lo ? run[0] : lo, hi = run[0] + run[2] > hi ? run[0] + run[2] : hi, used += run[2];
        }
        if (op->n_runs > 4 && hi - lo <= 4 * (size_t)used) return window_from_device(o, st, op, lo, hi);
        cl_int err = CL_SUCCESS; /* few runs, or far apart (a long append's round): a copy each, in place */
        for (uint32_t r = 0; r < op->n_runs && err == CL_SUCCESS; r++) {
            const uint32_t *run = op->runs + 3 * (size_t)r;
            err = o->cl->clEnqueueCopyBuffer(o->q, op->rows_buf->mem, st->windows->mem, op->rows_off + run[0] * row,
                                             (size_t)run[1] * row, (size_t)run[2] * row, 0, NULL, NULL);
        }
        return err == CL_SUCCESS ? PKV_OK : op_failed("window write", err);
    }
    const size_t d = st->g->d, run_words = ((size_t)op->n_runs * 3 + 15) & ~(size_t)15;
    size_t rows = 0;
    for (uint32_t r = 0; r < op->n_runs; r++) rows += op->runs[3 * (size_t)r + 2];
    const size_t bytes = (run_words + rows * d / 2) * 4;
    /* packed straight into a pinned slot when there is one (no allocation and one copy per call),
     * else into wstage, from which an asynchronous upload copies them */
    uint32_t slot = 0;
    uint32_t *stage = (uint32_t *)pkv_ocl_wslot_take(o, bytes, &slot);
    if (!stage && bytes > o->wstage_bytes) {
        uint32_t *p = realloc(o->wstage, bytes + bytes / 2);
        if (!p) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "opencl window write: out of host memory");
        o->wstage = p;
        o->wstage_bytes = bytes + bytes / 2;
    }
    /* the runs re-based on the rows as they are packed here, in run order; source rows that follow
     * each other (the core gathers them so) copied as one span */
    uint32_t *runs = stage ? stage : o->wstage, *dst = runs + run_words;
    const double tc = pkv_prof_start();
    size_t at = 0, span_from = 0, span_at = 0, span_rows = 0;
    for (uint32_t r = 0; r < op->n_runs; r++) {
        const uint32_t *run = op->runs + 3 * (size_t)r;
        if (span_rows && run[0] != span_from + span_rows) {
            memcpy(dst + span_at * d / 2, op->rows + span_from * d, span_rows * d * 2);
            span_rows = 0;
        }
        if (!span_rows) span_from = run[0], span_at = at;
        span_rows += run[2];
        runs[3 * r] = (uint32_t)at, runs[3 * r + 1] = run[1], runs[3 * r + 2] = run[2];
        at += run[2];
    }
    if (span_rows) memcpy(dst + span_at * d / 2, op->rows + span_from * d, span_rows * d * 2);
    pkv_prof_add(PKV_PROF_STAGE, tc);
    /* not waited for (a blocking write waited for the queue each decode step) */
    pkv_status s = PKV_OK;
    if (stage) {
        s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_WROWS], bytes);
        if (s == PKV_OK) s = pkv_ocl_status(pkv_ocl_wslot_write(o, slot, o->s[PKV_S_WROWS].mem, bytes));
    } else
        s = pkv_ocl_scratch_upload_async(o, &o->s[PKV_S_WROWS], o->wstage, bytes);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl window write: upload failed");
    cl_mem up = o->s[PKV_S_WROWS].mem, windows = mem_or_dummy(o, st->windows);
    const cl_uint n_runs = op->n_runs, rows_at = (cl_uint)run_words, row_words = (cl_uint)(d / 2);
    cl_kernel k = o->k[PKV_K_WINDOW];
    cl_int err = pkv_ocl_args(o, k, 5, ARG(up), ARG(n_runs), ARG(rows_at), ARG(row_words), ARG(windows));
    size_t local = wg_of(o, PKV_K_WINDOW, 64), global = (size_t)op->n_runs * local;
    if (err == CL_SUCCESS) err = o->cl->clEnqueueNDRangeKernel(o->q, k, 1, NULL, &global, &local, 0, NULL, NULL);
    return err == CL_SUCCESS ? PKV_OK : op_failed("window write", err);
}

/* Local memory the attention kernel declares for nr rows, with or without the V codes staged
 * (ocl_attention.cl's attn_local). */
static size_t attn_local_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr, int stage_v)
{
    const size_t wg = sh.bps * g->G;
    return pkv_attn_decode_local_bytes(g, sh, nr, stage_v) + 8 * wg * nr * sh.bps + 64;
}

/* The parameter block of ocl_attention.cl (its A_* indices). */
static void attn_params(const pkv_geom *g, const pkv_attn_op *op, const pkv_attn_plan *plan, const pkv_attn_env *env,
                        uint32_t *A)
{
    const int fp16 = g->mode == PKV_MODE_FP16;
    const uint32_t v[] = {g->H, op->n_q_heads, op->q_len, op->n_q_heads / g->H, plan->tiles, plan->cps,
                          g->block_bytes, fp16 ? g->off_kfp16 : g->off_kcodes, g->off_kscale, g->off_kzero,
                          fp16 ? g->off_vfp16 : g->off_vcodes, g->off_vscale, g->off_vzero, g->off_kidx, g->off_vidx,
                          g->off_vmask, g->chunk_bytes, g->window_bytes, g->R, f32_bits(op->scale * 1.44269504088896341f),
                          pkv_attn_flags(env), 1};
    memcpy(A, v, sizeof v);
    for (uint32_t s = 0; s < op->n_seqs; s++) /* q.C pre-pass: work-groups of 64 patterns */
        if ((op->seqs[s].bank_count + 63) / 64 > A[21]) A[21] = (op->seqs[s].bank_count + 63) / 64;
}

/* Split attention (ocl_attention.cl's ocl_attn_logits, ocl_attn_values; the compressed modes' default
 * where it serves, PKV_ATTN_SPLIT=0 turns it off): work-groups of G, one token per work-item. Local memory of the larger pass
 * for nr rows (their arrays; the histogram in float). */
#define SPLIT_GROUPS_PER_CU 8u /* Vulkan's wave for the same kernels (vk_ops.c) */
static size_t split_acc_floats(const pkv_geom *g, uint32_t ch, uint32_t nr)
{
    return (size_t)g->G * ch > (size_t)nr * g->d ? (size_t)g->G * ch : (size_t)nr * g->d;
}
static size_t split_local_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const size_t nrv = (nr + 3) / 4, G = g->G, cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1, red = 8 * G * nr;
    const size_t logits = 16 * g->d * nrv + 4 * G * (g->k_row_words + 1) + red;
    const size_t values = 4 * G * g->v_row_words + 16 * G * nrv + 8 * nr * cap + 4 + 4 * split_acc_floats(g, sh.vch, nr) + 32 + red + 4;
    return (logits > values ? logits : values) + 64;
}

/* Whether split attention serves this shape (pkv_attn_split_serves; FP16 mode keeps the one-pass kernel
 * on OpenCL) and its local memory fits. */
static int split_fits(const pkv_ocl *o, const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    return pkv_attn_split_serves(g, sh, (uint32_t)o->max_wg, 0) && split_local_bytes(g, sh, nr) <= o->local_mem;
}

/* Whether an op has few chunks for the device: under 8 chunk x KV head pairs per compute unit, where
 * split attention's second dispatch costs more than it wins (H100: 1 x 4K PATTERN 2-bit 0.049 ms
 * one-pass, 0.068 split; 1 x 32K 0.139 / 0.107; bench/RESULTS.md, session 17). */
static int attn_few_chunks(const pkv_ocl *o, const pkv_geom *g, const pkv_attn_op *op)
{
    return pkv_attn_op_chunk_pairs(op, g->G, g->H) < 8ull * (o->compute_units ? o->compute_units : 1);
}

/* The attention program's shape for an op's query rows: the most rows per work-group that fit in
 * local memory, with the V codes staged if possible (split attention where it serves, unless the op
 * has few chunks or PKV_ATTN_SPLIT says otherwise).
 * Attention and pkv_ocl_prewarm share it. */
static void attn_shape(const pkv_ocl *o, const pkv_geom *g, const pkv_attn_op *op, const pkv_attn_env *env, int few,
                       uint32_t shape[PKV_OCL_ATTN_SHAPE])
{
    pkv_attn_shape ks = pkv_attn_shape_for(g, env, PKV_BACKEND_OPENCL);
    uint32_t nr, stage_v;
    pkv_attn_shape sp = ks; /* split attention: one chunk per step, 8 V channels unless asked otherwise */
    sp.bps = 1, sp.stage_k = 0, sp.hist_fixed = 0;
    if (!env->vch) sp.vch = 8;
    nr = pkv_attn_rows_per_group(op, g->H, 8, env);
    while (nr > 1 && split_local_bytes(g, sp, nr) > o->local_mem) nr /= 2;
    if (few && !env->split) sp.split = 0; /* the default leaves ops of few chunks to the one-pass kernel */
    const int use_split = split_fits(o, g, sp, nr); /* sp.split: the default or PKV_ATTN_SPLIT */
    if (use_split) {
        ks = sp, stage_v = 1;
    } else {
        for (;;) {
            nr = pkv_attn_rows_per_group(op, g->H, 8, env), stage_v = 1;
            while (nr > 1 && attn_local_bytes(g, ks, nr, stage_v) > o->local_mem) nr /= 2;
            if (attn_local_bytes(g, ks, nr, stage_v) > o->local_mem) {
                stage_v = 0;
                nr = pkv_attn_rows_per_group(op, g->H, 8, env);
                while (nr > 1 && attn_local_bytes(g, ks, nr, stage_v) > o->local_mem) nr /= 2;
            }
            if (attn_local_bytes(g, ks, nr, stage_v) <= o->local_mem || !ks.stage_k) break;
            ks.stage_k = 0; /* staged K rows (a speed choice) go first */
        }
    }
    const uint32_t s[PKV_OCL_ATTN_SHAPE] = {g->d, g->G, g->k_bits, g->v_bits, g->mode, nr,
                                            g->mode == PKV_MODE_PATTERN ? g->capacity : 1, stage_v, ks.vch, ks.stage_k, ks.bps, ks.prefetch,
                                            ks.hist_fixed, ks.vb, (uint32_t)use_split};
    memcpy(shape, s, sizeof s);
}

pkv_status pkv_ocl_prewarm(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len)
{
    pkv_ocl *o = pkv_ocl_of(be);
    pkv_status s = PKV_OK;
    for (uint32_t ql = 1; ql <= max_q_len && ql <= 64 && s == PKV_OK; ql++) { /* rows per work-group <= 8 */
        pkv_attn_op op = {.n_seqs = 1, .q_len = ql, .n_q_heads = n_q_heads};
        for (int few = 0; few <= 1 && s == PKV_OK; few++) { /* both kernels an op size may take */
            uint32_t shape[PKV_OCL_ATTN_SHAPE];
            attn_shape(o, g, &op, &be->attn_env, few, shape);
            pkv_ocl_attn_program *prog;
            s = pkv_ocl_attn_program_get(o, shape, (pkv_attn_flags(&be->attn_env) & PKV_ATTN_SEPARATE_MERGE) != 0,
                                         &prog); /* built once per shape, then found */
        }
    }
    return s;
}

pkv_status pkv_ocl_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    pkv_ocl *o = pkv_ocl_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, ns = op->n_seqs;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    pkv_ocl_attn_program *prog;
    uint32_t shape[PKV_OCL_ATTN_SHAPE];
    attn_shape(o, g, op, &be->attn_env, attn_few_chunks(o, g, op), shape);
    const uint32_t nr = shape[5], vch = shape[8], bps = shape[10], wg = bps * g->G, split = shape[14];
    pkv_status s = pkv_ocl_attn_program_get(o, shape, (pkv_attn_flags(&be->attn_env) & PKV_ATTN_SEPARATE_MERGE) != 0, &prog);
    if (s != PKV_OK) return s;
    /* the merge keeps two floats per item and row in the work-group x channels array of the slices'
     * sums (ocl_attn_merge's; split attention's values pass has at least as many); the
     * plan is the last op's while the sequences' lengths are (every layer of a decode step after the first) */
    const pkv_attn_plan *plan;
    const uint32_t per_cu = split ? SPLIT_GROUPS_PER_CU : pkv_attn_groups_per_cu(g->mode);
    s = pkv_attn_plan_memo_get(&o->attn_plan, op, g, nr, o->compute_units * per_cu,
                               wg * vch / (2 * nr), bps, 1, &be->attn_env, &plan);
    if (s != PKV_OK) return s;
    pkv_ocl_op_begin(o);
    uint32_t A[PP_COUNT] = {0};
    attn_params(g, op, plan, &be->attn_env, A);
    const size_t groups = (size_t)ns * H * plan->tiles, nrv = (nr + 3) / 4;
    const size_t out_floats = (size_t)ns * op->q_len * op->n_q_heads * d;
    s = upload(o, PKV_S_PARAMS, A, sizeof A);
    if (s == PKV_OK) s = upload(o, PKV_S_U0, plan->seq_desc, (size_t)ns * PKV_ATTN_SEQ_WORDS * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U1, plan->items, (size_t)plan->n_items * 2 * sizeof(uint32_t));
    /* the table: every sequence's chunks and windows from the host, its block slots from the
     * device's copy (ocl_tables.c) */
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_U2], ((size_t)op->table_len + 4) * sizeof(uint32_t));
    if (s == PKV_OK) s = pkv_ocl_write_at(o, o->s[PKV_S_U2].mem, 0, op->table, (size_t)op->fixed_len * sizeof(uint32_t));
    if (s == PKV_OK) s = pkv_ocl_tables_record(be, H, op, o->s[PKV_S_U2].mem);
    if (s != PKV_OK) pkv_ocl_tables_forget(op);
    if (s == PKV_OK && op->q) s = upload(o, PKV_S_TOKENS, op->q, out_floats * sizeof(float));
    if (s == PKV_OK && !op->q) { /* engine integration: q converted on the device */
        s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_TOKENS], out_floats * sizeof(float));
        if (s == PKV_OK)
            s = pkv_ocl_status(o->cl->clEnqueueCopyBuffer(o->q, op->q_buf->mem, o->s[PKV_S_TOKENS].mem, op->q_off, 0,
                                                          out_floats * sizeof(float), 0, NULL, NULL));
    }
    if (s == PKV_OK)
        s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_PART], ((size_t)plan->n_slots * H * plan->tiles * nr * (d + 4) + 1) * 4);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_QC], (pattern ? groups * g->capacity * nrv : 1) * 16);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_COUNTERS], groups * 4);
    /* split attention's logit records: per (item, chunk of it, tile, kv head) G + 1 rows of nrv float4 */
    const size_t n_recs = (size_t)plan->n_items * plan->cps * plan->tiles * H;
    if (s == PKV_OK && split) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_LOGITS], n_recs * (g->G + 1) * nrv * 16);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_OUT], out_floats * sizeof(float));
    const uint32_t n_groups = plan->n_items * plan->tiles * H, n_slots = plan->n_slots;
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: attention could not allocate its buffers");

    cl_mem blocks = mem_or_dummy(o, st->blocks), chunks = mem_or_dummy(o, st->chunks),
           windows = mem_or_dummy(o, st->windows), params = o->s[PKV_S_PARAMS].mem, sd = o->s[PKV_S_U0].mem,
           items = o->s[PKV_S_U1].mem, table = o->s[PKV_S_U2].mem, q = o->s[PKV_S_TOKENS].mem,
           qc = o->s[PKV_S_QC].mem, part = o->s[PKV_S_PART].mem, cnt = o->s[PKV_S_COUNTERS].mem,
           out = o->s[PKV_S_OUT].mem, lg = split ? o->s[PKV_S_LOGITS].mem : NULL;
    const cl_uint zero = 0;
    /* the merge counters start at zero (the last work-group of each resets its own) */
    cl_int err = o->cl->clEnqueueFillBuffer(o->q, cnt, &zero, sizeof zero, 0, groups * 4, 0, NULL, NULL);
    const uint32_t flags = A[20];
    if (err == CL_SUCCESS && pattern && !(flags & PKV_ATTN_SKIP_QC)) {
        err = pkv_ocl_args(o, prog->qc, 6, ARG(params), ARG(sd), ARG(table), ARG(q), ARG(chunks), ARG(qc));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->qc, groups * A[21], 64);
    }
    if (split) { /* the logits pass (a work-group per chunk of an item, tile and kv head), then the values pass */
        if (err == CL_SUCCESS && !(flags & PKV_ATTN_SKIP_LOGITS)) {
            err = pkv_ocl_args(o, prog->logits, 9, ARG(params), ARG(sd), ARG(items), ARG(table), ARG(q), ARG(blocks),
                               ARG(windows), ARG(qc), ARG(lg));
            if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->logits, n_recs, wg);
        }
        if (err == CL_SUCCESS && !(flags & PKV_ATTN_SKIP_VALUES)) {
            err = pkv_ocl_args(o, prog->values, 11, ARG(params), ARG(sd), ARG(items), ARG(table), ARG(blocks), ARG(windows),
                               ARG(chunks), ARG(lg), ARG(part), ARG(cnt), ARG(out));
            if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->values, n_groups, wg);
        }
    } else {
        if (err == CL_SUCCESS)
            err = pkv_ocl_args(o, prog->attn, 12, ARG(params), ARG(sd), ARG(items), ARG(table), ARG(q), ARG(blocks),
                               ARG(windows), ARG(chunks), ARG(qc), ARG(part), ARG(cnt), ARG(out));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->attn, n_groups, wg);
    }
    if (err == CL_SUCCESS && (flags & PKV_ATTN_SEPARATE_MERGE) && n_slots) {
        err = pkv_ocl_args(o, prog->merge, 4, ARG(params), ARG(sd), ARG(part), ARG(out));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->merge, groups, wg);
    }
    if (err == CL_SUCCESS && op->out)
        err = o->cl->clEnqueueReadBuffer(o->q, out, CL_TRUE, 0, out_floats * sizeof(float), op->out, 0, NULL, NULL);
    else if (err == CL_SUCCESS) /* engine integration: into the application's buffer */
        err = o->cl->clEnqueueCopyBuffer(o->q, out, op->out_buf->mem, 0, op->out_off, out_floats * sizeof(float), 0, NULL, NULL);
    if (err != CL_SUCCESS) pkv_ocl_tables_forget(op);
    return finish(o, "attention", err);
}
