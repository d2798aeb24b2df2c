/* The three ops on the OpenCL device: prefill mining, window flush, attention. Each uploads its small
 * inputs, launches its kernels on the in-order queue and waits, so a failure is reported by the op
 * that caused it; kernels write only the slots the common layer reserved. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
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

/* Blocks per split item: enough work-groups to fill the device, a few blocks at least so each
 * item's fixed costs (q.C table load, partial write) stay small. PKV_OPENCL_BLOCKS_PER_ITEM forces
 * it (tests use it to exercise the merge). */
static uint32_t blocks_per_item(const pkv_ocl *o, const pkv_attn_op *op, uint32_t hpw)
{
    const char *env = getenv("PKV_OPENCL_BLOCKS_PER_ITEM");
    if (env && atoi(env) > 0) return (uint32_t)atoi(env);
    uint32_t max_blocks = 0;
    for (uint32_t s = 0; s < op->n_seqs; s++)
        if (op->seqs[s].n_blocks > max_blocks) max_blocks = op->seqs[s].n_blocks;
    size_t groups = (size_t)op->n_seqs * op->q_len * op->n_q_heads / hpw;
    size_t target = (size_t)o->compute_units * 4;
    size_t splits = groups >= target ? 1 : (target + groups - 1) / groups;
    uint32_t bpi = (uint32_t)((max_blocks + splits - 1) / splits);
    return bpi < 4 ? 4 : bpi;
}

/* The split items of every sequence (seq, kind 0 = blocks | 1 = window, begin, end), the sequence
 * descriptors (n_blocks, n_window, bank_count, table_offset) and each sequence's first item and
 * item count. Returns the item count, 0 when out of host memory. */
static size_t build_items(const pkv_attn_op *op, uint32_t bpi, uint32_t **seqd_out, uint32_t **seq_items_out,
                          uint32_t **items_out)
{
    const uint32_t ns = op->n_seqs;
    size_t n_items = 0;
    for (uint32_t s = 0; s < ns; s++)
        n_items += (op->seqs[s].n_blocks + bpi - 1) / bpi + (op->seqs[s].n_window ? 1 : 0);
    uint32_t *seqd = malloc((size_t)ns * 4 * sizeof *seqd), *seq_items = malloc((size_t)ns * 2 * sizeof *seq_items);
    uint32_t *items = malloc((n_items ? n_items : 1) * 4 * sizeof *items);
    if (!seqd || !seq_items || !items || !n_items) {
        free(seqd);
        free(seq_items);
        free(items);
        return 0;
    }
    size_t it = 0;
    for (uint32_t s = 0; s < ns; s++) {
        const pkv_attn_seq *q = &op->seqs[s];
        const uint32_t desc[4] = {q->n_blocks, q->n_window, q->bank_count, q->table_offset};
        memcpy(seqd + s * 4, desc, sizeof desc);
        seq_items[s * 2] = (uint32_t)it;
        for (uint32_t b = 0; b < q->n_blocks; b += bpi, it++) {
            const uint32_t v[4] = {s, 0, b, b + bpi < q->n_blocks ? b + bpi : q->n_blocks};
            memcpy(items + it * 4, v, sizeof v);
        }
        if (q->n_window) {
            const uint32_t v[4] = {s, 1, 0, q->n_window};
            memcpy(items + it++ * 4, v, sizeof v);
        }
        seq_items[s * 2 + 1] = (uint32_t)it - seq_items[s * 2];
    }
    *seqd_out = seqd;
    *seq_items_out = seq_items;
    *items_out = items;
    return n_items;
}

pkv_status pkv_ocl_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    if (!op->q || !op->out) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "opencl attention: q and out must be in host memory");
    pkv_ocl *o = pkv_ocl_of(be);
    pkv_ocl_op_begin(o);
    const pkv_geom *g = st->g;
    const uint32_t ns = op->n_seqs, d = g->d;
    /* query heads per work-group: the largest count <= hpw_max dividing the GQA group */
    const uint32_t gq = op->n_q_heads / g->H;
    uint32_t hpw = o->hpw_max < gq ? o->hpw_max : gq;
    while (gq % hpw) hpw--;
    uint32_t *seqd = NULL, *seq_items = NULL, *items = NULL;
    const size_t n_items = build_items(op, blocks_per_item(o, op, hpw), &seqd, &seq_items, &items);
    if (!n_items) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "opencl: attention: out of host memory");

    uint32_t P[PP_COUNT];
    fill_geom(P, g);
    P[PP_Q_LEN] = op->q_len;
    P[PP_NQH] = op->n_q_heads;
    P[PP_SCALE] = f32_bits(op->scale);
    P[PP_N_ITEMS] = (uint32_t)n_items;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    uint32_t max_bank = 1;
    for (uint32_t i = 0; i < ns; i++)
        if (op->seqs[i].bank_count > max_bank) max_bank = op->seqs[i].bank_count;
    P[PP_BANK_STRIDE] = max_bank;
    P[PP_HPW] = hpw;
    P[PP_PSTRIDE] = d + 2 + (pattern ? max_bank : 0);
    const size_t per_q = (size_t)op->q_len * op->n_q_heads;
    const size_t out_floats = (size_t)ns * per_q * d;
    pkv_status s = upload(o, PKV_S_PARAMS, P, sizeof P);
    if (s == PKV_OK) s = upload(o, PKV_S_U0, seqd, (size_t)ns * 4 * sizeof *seqd);
    if (s == PKV_OK) s = upload(o, PKV_S_U1, items, n_items * 4 * sizeof *items);
    if (s == PKV_OK) s = upload(o, PKV_S_U2, op->table, (size_t)op->table_len * sizeof(uint32_t));
    if (s == PKV_OK) s = upload(o, PKV_S_U3, seq_items, (size_t)ns * 2 * sizeof *seq_items);
    if (s == PKV_OK) s = upload(o, PKV_S_TOKENS, op->q, out_floats * sizeof(float));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_PART], n_items * per_q * P[PP_PSTRIDE] * sizeof(float));
    if (s == PKV_OK && pattern) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_QC], (size_t)ns * per_q * max_bank * sizeof(float));
    if (s == PKV_OK) s = pkv_ocl_scratch_reserve(o, &o->s[PKV_S_OUT], out_floats * sizeof(float));
    free(seqd);
    free(seq_items);
    free(items);
    if (s != PKV_OK) return pkv_fail(NULL, s, "opencl: attention could not allocate its buffers");

    cl_mem blocks = mem_or_dummy(o, st->blocks), chunks = mem_or_dummy(o, st->chunks),
           windows = mem_or_dummy(o, st->windows), qc = pattern ? o->s[PKV_S_QC].mem : mem_or_dummy(o, NULL);
    cl_mem params = o->s[PKV_S_PARAMS].mem, sd = o->s[PKV_S_U0].mem, it_mem = o->s[PKV_S_U1].mem,
           table = o->s[PKV_S_U2].mem, seq_it = o->s[PKV_S_U3].mem, q = o->s[PKV_S_TOKENS].mem,
           part = o->s[PKV_S_PART].mem, out = o->s[PKV_S_OUT].mem;
    cl_int err = CL_SUCCESS;
    cl_kernel k = o->k[PKV_K_ATTN_QC];
    if (pattern) {
        err = pkv_ocl_args(o, k, 6, ARG(params), ARG(sd), ARG(table), ARG(q), ARG(chunks), ARG(qc));
        if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, ns * per_q, o->wg[PKV_K_ATTN_QC]);
    }
    k = o->k[PKV_K_ATTN];
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, k, 9, ARG(params), ARG(sd), ARG(it_mem), ARG(table), ARG(q), ARG(blocks), ARG(windows),
                           ARG(qc), ARG(part));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, n_items * per_q / hpw, o->wg[PKV_K_ATTN]);
    k = o->k[PKV_K_REDUCE];
    if (err == CL_SUCCESS)
        err = pkv_ocl_args(o, k, 7, ARG(params), ARG(seq_it), ARG(sd), ARG(table), ARG(chunks), ARG(part), ARG(out));
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, k, ns * per_q, o->wg[PKV_K_REDUCE]);
    if (err == CL_SUCCESS)
        err = o->cl->clEnqueueReadBuffer(o->q, o->s[PKV_S_OUT].mem, CL_TRUE, 0, out_floats * sizeof(float), op->out, 0,
                                         NULL, NULL);
    return finish(o, "attention", err);
}
