/* The three ops on the OpenCL device: prefill mining, window flush, attention. Each uploads its small
 * inputs, launches its kernels on the in-order queue and waits, so a failure is reported by the op
 * that caused it; kernels write only the slots the common layer reserved. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "attn_plan.h"
#include "ocl_internal.h"
#include "ocl_params.h"

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
    if (err == CL_SUCCESS) err = o->cl->clFinish(o->q);
    pkv_ocl_op_end(o, err == CL_SUCCESS);
    return err == CL_SUCCESS ? PKV_OK : op_failed(op, err);
}

#define ARG(x) sizeof(x), (const void *)&(x)

/* Encodes n_blocks blocks per head: in PATTERN mode ocl_assign first, then ocl_encode. */
static cl_int launch_encode(pkv_ocl *o, const pkv_store *st, cl_mem params, cl_mem src, cl_mem window_slot,
                            cl_mem chunk_table, cl_mem block_slot, uint32_t n_blocks)
{
    const size_t H = st->g->H, jobs = H * n_blocks * st->g->G * 2;
    cl_mem chunks = mem_or_dummy(o, st->chunks), blocks = mem_or_dummy(o, st->blocks), assign = mem_or_dummy(o, NULL);
    cl_int err = CL_SUCCESS;
    if (st->g->mode == PKV_MODE_PATTERN) {
        if (pkv_ocl_scratch_reserve(o, &o->s[PKV_S_TOKASSIGN], jobs * sizeof(uint32_t)) != PKV_OK)
            return CL_MEM_OBJECT_ALLOCATION_FAILURE;
        assign = o->s[PKV_S_TOKASSIGN].mem;
        cl_kernel k = o->k[PKV_K_ASSIGN];
        const size_t wl = o->wg[PKV_K_ASSIGN], lanes = jobs * 16; /* ASSIGN_SLICES lanes per job */
        err = pkv_ocl_args(o, k, 6, ARG(params), ARG(src), ARG(window_slot), ARG(chunk_table), ARG(chunks), ARG(assign));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (lanes + wl - 1) / wl, wl);
    }
    cl_kernel k = o->k[PKV_K_ENCODE];
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, k, 8, ARG(params), ARG(src), ARG(window_slot), ARG(chunk_table), ARG(block_slot),
                           ARG(chunks), ARG(assign), ARG(blocks));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, H * n_blocks, o->wg[PKV_K_ENCODE]);
    return err;
}

pkv_status pkv_ocl_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op)
{
    if (!op->tokens) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "opencl mine: tokens must be in host memory");
    pkv_ocl *o = pkv_ocl_of(be);
    pkv_ocl_op_begin(o);
    const pkv_geom *g = st->g;
    const size_t H = g->H, d = g->d, n = op->n_tokens, M = g->M;
    const uint32_t nb = op->n_quant / g->G;
    if (g->mode != PKV_MODE_PATTERN || M > PKV_MAX_BANK || n < M)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "opencl: mine needs PATTERN mode and n_tokens >= M");
    uint32_t P[PP_COUNT];
    fill_geom(P, g);
    P[PP_N_TOKENS] = (uint32_t)n;
    P[PP_M] = (uint32_t)M;
    P[PP_MAX_ITERS] = op->max_iters;
    P[PP_TOL2] = f32_bits(op->tol2);
    P[PP_N_PAT] = (uint32_t)M;
    P[PP_DIST_MINMAX] = 0;
    P[PP_SRC_WINDOW] = 0;
    P[PP_NB] = nb;
    /* the sums in local memory when they fit (leaving room for the kernel's own arrays);
     * PKV_OPENCL_KMEANS_GLOBAL=1 forces global memory (tests cover both paths) */
    const size_t lsum_bytes = M * d * sizeof(float);
    const char *force_global = getenv("PKV_OPENCL_KMEANS_GLOBAL");
    const int km_local = lsum_bytes + 4096 <= o->local_mem && !(force_global && atoi(force_global) == 1);
    P[PP_KM_LOCAL] = (uint32_t)km_local;
    pkv_status s = upload(o, PKV_S_PARAMS, P, sizeof P);
    if (s == PKV_OK) s = upload(o, PKV_S_TOKENS, op->tokens, 2 * n * H * d * sizeof(uint16_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U0, op->init_index, H * 2 * M * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U1, op->rcp, (n + 1) * sizeof(float));
    if (s == PKV_OK) s = upload(o, PKV_S_U2, op->chunk_table, H * PKV_MAX_CHUNKS * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U3, op->block_slot, H * nb * sizeof(uint32_t));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_CENT], 2 * H * M * d * sizeof(float));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_SUMS], 2 * H * M * d * sizeof(float));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_COUNTS], 2 * H * M * sizeof(uint32_t));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_ASSIGN], 2 * H * n * sizeof(uint32_t));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_DONE], 2 * H * sizeof(uint32_t));
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: mine could not allocate its scratch buffers");

    cl_mem params = o->s[PKV_S_PARAMS].mem, tokens = o->s[PKV_S_TOKENS].mem, init = o->s[PKV_S_U0].mem,
           rcp = o->s[PKV_S_U1].mem, ctab = o->s[PKV_S_U2].mem, cent = o->s[PKV_S_CENT].mem,
           sums = o->s[PKV_S_SUMS].mem, counts = o->s[PKV_S_COUNTS].mem, assign = o->s[PKV_S_ASSIGN].mem,
           done = o->s[PKV_S_DONE].mem, chunks = mem_or_dummy(o, st->chunks);
    const size_t values = 2 * H * M * d;
    cl_kernel k = o->k[PKV_K_KM_INIT];
    size_t wl = o->wg[PKV_K_KM_INIT];
    cl_int err = pkv_ocl_args(o, k, 5, ARG(params), ARG(tokens), ARG(init), ARG(cent), ARG(done));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (values + wl - 1) / wl, wl);
    const size_t wa = o->wg[PKV_K_KM_ASSIGN], tiles = (n + wa - 1) / wa;
    cl_kernel ka = o->k[PKV_K_KM_ASSIGN], ku = o->k[PKV_K_KM_UPDATE];
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, ka, 5, ARG(params), ARG(tokens), ARG(cent), ARG(done), ARG(assign));
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, ku, 9, ARG(params), ARG(tokens), ARG(rcp), ARG(cent), ARG(sums), ARG(counts),
                           ARG(assign), ARG(done), km_local ? lsum_bytes : sizeof(float), NULL);
    for (uint32_t it = 0; it < op->max_iters && err == CL_SUCCESS; it++) {
        err = pkv_ocl_launch(o, ka, 2 * H * tiles, wa);
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, ku, 2 * H, o->wg[PKV_K_KM_UPDATE]);
    }
    k = o->k[PKV_K_KM_STORE];
    wl = o->wg[PKV_K_KM_STORE];
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, k, 4, ARG(params), ARG(cent), ARG(ctab), ARG(chunks));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, (values + wl - 1) / wl, wl);
    if (err == CL_SUCCESS && nb > 0) {
        cl_mem dummy = mem_or_dummy(o, NULL);
        err = launch_encode(o, st, params, tokens, dummy, ctab, o->s[PKV_S_U3].mem, nb);
    }
    return finish(o, "mine", err);
}

pkv_status pkv_ocl_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op)
{
    pkv_ocl *o = pkv_ocl_of(be);
    pkv_ocl_op_begin(o);
    const pkv_geom *g = st->g;
    const size_t H = g->H;
    const uint32_t nb = g->R / g->G;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    const uint32_t npat = op->bank_count + (op->append_pattern ? 1u : 0u);
    if (pattern && (npat == 0 || npat > PKV_MAX_BANK))
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "opencl: flush with %u patterns", npat);
    uint32_t P[PP_COUNT];
    fill_geom(P, g);
    P[PP_N_PAT] = npat;
    P[PP_DIST_MINMAX] = 1;
    P[PP_SRC_WINDOW] = 1;
    P[PP_NB] = nb;
    P[PP_BANK_COUNT] = op->bank_count;
    pkv_status s = upload(o, PKV_S_PARAMS, P, sizeof P);
    if (s == PKV_OK) s = upload(o, PKV_S_U0, op->window_slot, H * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U1, pattern ? op->chunk_table : NULL, H * PKV_MAX_CHUNKS * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U2, op->block_slot, H * nb * sizeof(uint32_t));
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: flush could not upload its inputs");

    cl_mem windows = mem_or_dummy(o, st->windows), chunks = mem_or_dummy(o, st->chunks);
    cl_int err = CL_SUCCESS;
    if (pattern && op->append_pattern) {
        cl_kernel k = o->k[PKV_K_CENTRE];
        err = pkv_ocl_args(o, k, 5, ARG(o->s[PKV_S_PARAMS].mem), ARG(windows), ARG(o->s[PKV_S_U0].mem),
                           ARG(o->s[PKV_S_U1].mem), ARG(chunks));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, 2 * H, o->wg[PKV_K_CENTRE]);
    }
    if (err == CL_SUCCESS)
        err = launch_encode(o, st, o->s[PKV_S_PARAMS].mem, windows, o->s[PKV_S_U0].mem, o->s[PKV_S_U1].mem,
                            o->s[PKV_S_U2].mem, nb);
    return finish(o, "flush", err);
}

/* Local memory the attention kernel declares for nr rows, with or without the V codes staged
 * (ocl_attention.cl's attn_local). */
static size_t attn_local_bytes(const pkv_geom *g, uint32_t nr, int stage_v)
{
    const pkv_attn_shape sh = pkv_attn_shape_for(nr, g);
    const size_t nrv = (nr + 3) / 4, ch = sh.vch, cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t ksec = sh.stage_k && g->mode != PKV_MODE_FP16 ? ((size_t)g->G * g->k_row_words + 3) / 4 * 16 : 16;
    const size_t vsec = g->mode == PKV_MODE_FP16 || !stage_v ? 4 : (size_t)g->G * g->v_row_words;
    const size_t acc = g->G * ch > nr * g->d ? g->G * ch : nr * g->d;
    return 16 * nrv * (2 * g->d + cap + g->G) + 4 * vsec + ksec + 4 * nr * cap + 4 * acc + 32 + 8 * (size_t)g->G * nr + 64;
}

/* The parameter block of ocl_attention.cl (its A_* indices). */
static void attn_params(const pkv_geom *g, const pkv_attn_op *op, const pkv_attn_plan *plan, uint32_t *A)
{
    const int fp16 = g->mode == PKV_MODE_FP16;
    const uint32_t v[] = {g->H, op->n_q_heads, op->q_len, op->n_q_heads / g->H, plan->tiles, plan->cps,
                          g->block_bytes, fp16 ? g->off_kfp16 : g->off_kcodes, g->off_kscale, g->off_kzero,
                          fp16 ? g->off_vfp16 : g->off_vcodes, g->off_vscale, g->off_vzero, g->off_kidx, g->off_vidx,
                          g->off_vmask, g->chunk_bytes, g->window_bytes, g->R, f32_bits(op->scale * 1.44269504088896341f),
                          pkv_attn_flags(), 1};
    memcpy(A, v, sizeof v);
    for (uint32_t s = 0; s < op->n_seqs; s++) /* q.C pre-pass: work-groups of 64 patterns */
        if ((op->seqs[s].bank_count + 63) / 64 > A[21]) A[21] = (op->seqs[s].bank_count + 63) / 64;
}

pkv_status pkv_ocl_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    if (!op->q || !op->out) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "opencl attention: q and out must be in host memory");
    pkv_ocl *o = pkv_ocl_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, ns = op->n_seqs;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    /* the most rows per work-group that fit in local memory, with the V codes staged if possible */
    uint32_t nr = pkv_attn_rows_per_group(op, H, 8), stage_v = 1;
    while (nr > 1 && attn_local_bytes(g, nr, stage_v) > o->local_mem) nr /= 2;
    if (attn_local_bytes(g, nr, stage_v) > o->local_mem) {
        stage_v = 0;
        nr = pkv_attn_rows_per_group(op, H, 8);
        while (nr > 1 && attn_local_bytes(g, nr, stage_v) > o->local_mem) nr /= 2;
    }
    pkv_ocl_attn_program *prog;
    const pkv_attn_shape ks = pkv_attn_shape_for(nr, g);
    const uint32_t shape[PKV_OCL_ATTN_SHAPE] = {d, g->G, g->k_bits, g->v_bits, g->mode, nr, pattern ? g->capacity : 1, stage_v,
                                                ks.vch, ks.stage_k};
    pkv_status s = pkv_ocl_attn_program_get(o, shape, &prog);
    if (s != PKV_OK) return s;
    pkv_attn_plan plan;
    /* the merge keeps two floats per item and row in the G x channels array of the slices' sums */
    s = pkv_attn_plan_make(op, g, nr, o->compute_units * 4, g->G * ks.vch / (2 * nr), &plan);
    if (s != PKV_OK) return s;
    pkv_ocl_op_begin(o);
    uint32_t A[PP_COUNT] = {0};
    attn_params(g, op, &plan, A);
    const size_t groups = (size_t)ns * H * plan.tiles, nrv = (nr + 3) / 4;
    const size_t out_floats = (size_t)ns * op->q_len * op->n_q_heads * d;
    s = upload(o, PKV_S_PARAMS, A, sizeof A);
    if (s == PKV_OK) s = upload(o, PKV_S_U0, plan.seq_desc, (size_t)ns * PKV_ATTN_SEQ_WORDS * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U1, plan.items, (size_t)plan.n_items * 2 * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U2, op->table, (size_t)op->table_len * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_TOKENS, op->q, out_floats * sizeof(float));
    if (s == PKV_OK)
        s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_PART], ((size_t)plan.n_slots * H * plan.tiles * nr * (d + 4) + 1) * 4);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_QC], (pattern ? groups * g->capacity * nrv : 1) * 16);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_COUNTERS], groups * 4);
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_OUT], out_floats * sizeof(float));
    const uint32_t n_groups = plan.n_items * plan.tiles * H, n_slots = plan.n_slots;
    pkv_attn_plan_free(&plan);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: attention could not allocate its buffers");

    cl_mem blocks = mem_or_dummy(o, st->blocks), chunks = mem_or_dummy(o, st->chunks),
           windows = mem_or_dummy(o, st->windows), params = o->s[PKV_S_PARAMS].mem, sd = o->s[PKV_S_U0].mem,
           items = o->s[PKV_S_U1].mem, table = o->s[PKV_S_U2].mem, q = o->s[PKV_S_TOKENS].mem,
           qc = o->s[PKV_S_QC].mem, part = o->s[PKV_S_PART].mem, cnt = o->s[PKV_S_COUNTERS].mem,
           out = o->s[PKV_S_OUT].mem;
    const cl_uint zero = 0;
    /* the merge counters start at zero (the last work-group of each resets its own) */
    cl_int err = o->cl->clEnqueueFillBuffer(o->q, cnt, &zero, sizeof zero, 0, groups * 4, 0, NULL, NULL);
    const uint32_t flags = A[20];
    if (err == CL_SUCCESS && pattern && !(flags & PKV_ATTN_SKIP_QC)) {
        err = pkv_ocl_args(o, prog->qc, 6, ARG(params), ARG(sd), ARG(table), ARG(q), ARG(chunks), ARG(qc));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->qc, groups * A[21], 64);
    }
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, prog->attn, 12, ARG(params), ARG(sd), ARG(items), ARG(table), ARG(q), ARG(blocks),
                           ARG(windows), ARG(chunks), ARG(qc), ARG(part), ARG(cnt), ARG(out));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->attn, n_groups, g->G);
    if (err == CL_SUCCESS && (flags & PKV_ATTN_SEPARATE_MERGE) && n_slots) {
        err = pkv_ocl_args(o, prog->merge, 4, ARG(params), ARG(sd), ARG(part), ARG(out));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, prog->merge, groups, g->G);
    }
    if (err == CL_SUCCESS)
        err = o->cl->clEnqueueReadBuffer(o->q, out, CL_TRUE, 0, out_floats * sizeof(float), op->out, 0, NULL, NULL);
    return finish(o, "attention", err);
}
