/* Engine integration without host copies: the application's K/V or q buffers are copied on the
 * device into the scratch buffer, then stage_input.comp converts them (fp16 for K/V, fp32 for q,
 * rounded exactly as the host path rounds) and reports NaN, Inf and out-of-range values in the
 * device status word (vk_external_io.c), storing 0 in their place.
 *
 * Three ways to place the result, all from the same conversion:
 * - into vk->staged (pkv_vk_stage_record): the synchronous calls, and any op a recorded append
 *   runs before its window write (mining of a first prompt);
 * - recorded appends (pkv_vk_stage_defer): nothing is recorded at the call; the window write
 *   (pkv_vk_write_window) then copies the raw K/V in and converts them straight into their window
 *   rows (pkv_vk_stage_scatter, a row table), without the fp16 copy in vk->staged and the copy
 *   from there: one transfer phase and one dispatch per append; the raw copy is K/V-major (every
 *   sequence's K, then every sequence's V: the application's order), so that a batch's K and V are
 *   one or two copy regions, not two per sequence;
 * - recorded attention: the raw q is copied into the attention op's q section (pkv_vk_stage_copy_to)
 *   and the attention kernels convert and check it where they read it (attn_common.glsl's q_value,
 *   the same rounding and checks as stage_input.comp): no dispatch of its own. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vk_internal.h"

#define WG_STAGE 256u
#define NO_ROW 0xFFFFFFFFu
#define PUSH_ROWS 0xFFFFFFFEu /* row_tab: the table is in the push constants (stage_input.comp's tab) */
#define PUSH_TAB_MAX 20u      /* its rows: what 128 bytes of push constants hold after the 11 words */
#define PUSH_RULE 0xFFFFFFFDu /* row_tab: the table is a rule in the push constants (table_rule) */
#define RULE_WORDS 4u         /* the rule's stride, V offset, rows per source, sources per half; then bases */

static size_t raw_words(const pkv_vk_stage_in *in) { return (in->n_values * (in->dtype == PKV_F16 ? 2 : 4) + 3) / 4; }

/* Rows of the table of a scatter (every source's rows), 0 without one; its word offset in scratch. */
static size_t table_rows(const pkv_vk_stage_in *in) { return in->row_pairs ? in->n_values / 2 / in->row_pairs * in->n_src : 0; }
static size_t table_off(const pkv_vk_stage_in *in) { return (raw_words(in) * in->n_src + 1 + 15) & ~(size_t)15; }

/* Bytes of one half of vk->kv_raw (raw K/V and row table of one append), storage-offset aligned. */
static size_t half_bytes(const pkv_vk_stage_in *in) { return ((table_off(in) + table_rows(in)) * 4 + 255) & ~(size_t)255; }

pkv_status pkv_vk_stage_reserve(pkv_vk *vk, const pkv_vk_stage_in *in)
{
    pkv_status s = pkv_vk_scratch_reserve(vk, (table_off(in) + table_rows(in)) * 4);
    if (s == PKV_OK) s = pkv_vk_grow(vk, &vk->staged, in->n_values * (in->to_f32 ? 4 : 2) * in->n_src);
    if (s == PKV_OK && in->row_pairs) s = pkv_vk_grow(vk, &vk->kv_raw, 2 * half_bytes(in));
    if (s == PKV_OK) s = pkv_vk_regions_reserve(vk, in->n_src); /* pkv_vk_stage_copy_to's */
    return s;
}

/* The source placed at raw slot `slot`: in source order, or K/V-major (a scatter's: every sequence's K,
 * then every sequence's V, the application's own order, so that its copies merge). */
static uint32_t source_at(const pkv_vk_stage_in *in, uint32_t slot, int kv_major)
{
    const uint32_t half = in->n_src / 2;
    return !kv_major ? slot : slot < half ? 2 * slot : 2 * (slot - half) + 1;
}

/* The raw sources into dst from raw_off, slot after slot: one command per application buffer (K and V
 * of every sequence in one buffer, the usual case: one command), its regions merged where both sides
 * are contiguous (K/V-major: a batch's K, or K and V, in one region); more than 8 buffers: one
 * command per source. */
static void copy_sources(pkv_vk *vk, const pkv_vk_stage_in *in, pkv_buf *dst, size_t raw_off, int kv_major)
{
    const size_t rw = raw_words(in), in_bytes = in->n_values * (in->dtype == PKV_F16 ? 2 : 4);
    VkBuffer bufs[8];
    uint32_t nb = 0, i = 0;
    for (; i < in->n_src; i++) {
        uint32_t b = 0;
        while (b < nb && bufs[b] != in->src[i]) b++;
        if (b == nb && nb == 8) break;
        if (b == nb) bufs[nb++] = in->src[i];
    }
    if (i < in->n_src) nb = 0;
    for (uint32_t b = 0; b < (nb ? nb : in->n_src); b++) {
        uint32_t n = 0;
        VkBuffer from = VK_NULL_HANDLE;
        for (uint32_t slot = nb ? 0 : b; slot < (nb ? in->n_src : b + 1); slot++) {
            const uint32_t j = source_at(in, slot, kv_major);
            if (nb && in->src[j] != bufs[b]) continue;
            from = in->src[j];
            const VkBufferCopy r = {in->src_off[j], dst->off + (raw_off + rw * slot) * 4, in_bytes};
            VkBufferCopy *last = n ? &vk->regions[n - 1] : NULL;
            if (last && last->srcOffset + last->size == r.srcOffset && last->dstOffset + last->size == r.dstOffset)
                last->size += r.size;
            else
                vk->regions[n++] = r;
        }
        vk->f.vkCmdCopyBuffer(vk->cb, from, dst->page->buf, n, vk->regions);
    }
}

void pkv_vk_stage_copy_to(pkv_vk *vk, const pkv_vk_stage_in *in, pkv_buf *dst, size_t raw_off)
{
    copy_sources(vk, in, dst, raw_off, 0);
}

/* stage_input.comp's push constants */
typedef struct stage_push {
    uint32_t n_pairs, in_f16, out_f32, raw_off, out_off, status_word;
    float max_abs;
    uint32_t flag, layer, row_tab, row_pairs;
    uint32_t tab[PUSH_TAB_MAX];
} stage_push;
_Static_assert(sizeof(stage_push) <= PKV_VK_PUSH_BYTES, "stage_input's push constants");

pkv_status pkv_vk_stage_convert(pkv_vk *vk, const pkv_vk_stage_in *in, pkv_buf *src, pkv_buf *out, size_t raw_off,
                                size_t out_off, uint32_t row_tab)
{
    const size_t in_bytes = in->n_values * (in->dtype == PKV_F16 ? 2 : 4), out_bytes = in->n_values * (in->to_f32 ? 4 : 2);
    const size_t rw = raw_words(in);
    VkPipeline pipe = vk->stage_pipe; /* one specialization: looked up once per context */
    pkv_status s = PKV_OK;
    if (!pipe) {
        uint32_t spec[PKV_VK_SPEC_MAX] = {WG_STAGE};
        s = pkv_vk_pipeline(vk, PKV_K_STAGE_INPUT, spec, &pipe);
        if (s != PKV_OK) return s;
        vk->stage_pipe = pipe;
    }
    pkv_buf *bufs[4] = {src, out, vk->status, NULL};
    /* the raw sources lie back to back when their bytes are whole words (always for K/V: head_dim is
     * a multiple of 8), and so do the outputs: one dispatch converts them all */
    const uint32_t n_disp = rw * 4 == in_bytes ? 1 : in->n_src, per = in->n_src / n_disp;
    const uint32_t pairs = (uint32_t)(in->n_values / 2) * per, groups = (pairs + WG_STAGE - 1) / WG_STAGE;
    const uint32_t gx = groups < 65535u ? (groups ? groups : 1) : 65535u, gy = (groups + gx - 1) / gx;
    for (uint32_t i = 0; s == PKV_OK && i < n_disp; i++) {
        stage_push pc = {pairs, in->dtype == PKV_F16, (uint32_t)in->to_f32, (uint32_t)(raw_off + rw * i),
                         (uint32_t)(out_off + out_bytes * i / 4), in->status_word, in->max_abs, in->flag, in->layer,
                         row_tab, in->row_pairs ? in->row_pairs : 1, {0}};
        const size_t tab_words = row_tab == PUSH_ROWS ? table_rows(in) : row_tab == PUSH_RULE ? RULE_WORDS + in->n_src / 2 : 0;
        if (tab_words) memcpy(pc.tab, vk->host_tab, tab_words * 4);
        s = pkv_vk_dispatch(vk, pipe, bufs, &pc, tab_words ? sizeof pc : offsetof(stage_push, tab), gx, gy ? gy : 1, 1);
    }
    return s;
}

pkv_status pkv_vk_stage_record(pkv_vk *vk, const pkv_vk_stage_in *in)
{
    pkv_status s = pkv_vk_begin(vk);
    if (s != PKV_OK) return s;
    pkv_vk_op_start(vk);
    pkv_vk_scratch_written(vk);
    pkv_vk_stage_copy_to(vk, in, vk->scratch, 0);
    pkv_vk_barrier(vk);
    s = pkv_vk_stage_convert(vk, in, vk->scratch, vk->staged, 0, 0, NO_ROW);
    if (s == PKV_OK) pkv_vk_op_end_barrier(vk);
    return s;
}

void pkv_vk_stage_defer(pkv_vk *vk, const pkv_vk_stage_in *in) { vk->stage_pending = in; }

pkv_status pkv_vk_stage_settle(pkv_vk *vk)
{
    const pkv_vk_stage_in *in = vk->stage_pending;
    vk->stage_pending = NULL;
    return in ? pkv_vk_stage_record(vk, in) : PKV_OK;
}

/* Rows that source j's rows move by in a scatter's raw copy: its slot's start (K/V-major, copy_sources)
 * minus its own (per_src rows per source, kv_half sources of K). */
static inline int64_t slot_shift(uint32_t j, uint32_t kv_half, uint32_t per_src)
{
    return ((int64_t)(j & 1 ? kv_half + j / 2 : j / 2) - j) * per_src;
}

/* A table too large for the push constants that follows one rule rides there too (stage_input.comp's
 * 0xFFFFFFFD): row i of raw slot j (per rows each; kv_half slots of K, then as many of V, K/V-major)
 * goes to base[j % kv_half] + i * stride, plus vdelta for V. A decode step's table follows it where
 * each sequence's windows of the layer's kv heads lie at one stride (as the pool gives them to a
 * sequence's layer together) and V rows at one offset from K rows: then no upload (batch 2-16).
 * Returns 1 and writes the rule over tab[0 .. RULE_WORDS + kv_half) if tab follows it. */
static int table_rule(uint32_t *tab, uint32_t per, uint32_t kv_half)
{
    if (kv_half > PUSH_TAB_MAX - RULE_WORDS || !per) return 0;
    const uint32_t stride = per > 1 ? tab[1] - tab[0] : 0, vdelta = tab[(size_t)kv_half * per] - tab[0];
    uint32_t base[PUSH_TAB_MAX];
    for (uint32_t j = 0; j < kv_half; j++) { /* unsigned: wraps alike here and in the shader */
        const uint32_t *k = tab + (size_t)j * per, *v = k + (size_t)kv_half * per;
        base[j] = k[0];
        for (uint32_t i = 0; i < per; i++)
            if (k[i] != base[j] + i * stride || v[i] != base[j] + i * stride + vdelta) return 0;
    }
    tab[0] = stride, tab[1] = vdelta, tab[2] = per, tab[3] = kv_half;
    memcpy(tab + RULE_WORDS, base, kv_half * sizeof *base);
    return 1;
}

int pkv_vk_stage_scatters(const pkv_vk *vk, const pkv_window_op *op)
{
    const pkv_vk_stage_in *in = vk->stage_pending;
    if (!in || !in->row_pairs || in->n_src % 2 || op->rows || op->rows_buf != vk->staged || op->rows_off != 0 ||
        raw_words(in) * 4 != in->n_values * (in->dtype == PKV_F16 ? 2 : 4))
        return 0;
    return op->n_rows == table_rows(in);
}

pkv_status pkv_vk_stage_scatter(pkv_vk *vk, pkv_buf *dst, const uint32_t *runs, uint32_t n_runs)
{
    const pkv_vk_stage_in *in = vk->stage_pending;
    const size_t rows = table_rows(in);
    uint32_t *tab = pkv_vk_host_table(vk, rows);
    if (!tab) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan: out of host memory");
    /* the sources lie K/V-major in the raw copy (copy_sources): source j's rows at slot source_at^-1(j);
     * runs name rows in source order, every row (pkv_vk_stage_scatters) */
    const uint32_t per_src = (uint32_t)(rows / in->n_src), kv_half = in->n_src / 2;
    uint32_t *restrict t = tab;
    if (n_runs == rows) { /* device rows: one run per row (every row is named once); a source's rows come together */
        const uint32_t *rp = runs, *const end = runs + 3 * (size_t)n_runs;
        while (rp < end) { /* the rows of one source from rp on: one shift */
            const uint32_t j = rp[0] / per_src, lo = j * per_src;
            const int64_t sh = slot_shift(j, kv_half, per_src);
            do {
                t[rp[0] + sh] = rp[1];
                rp += 3;
            } while (rp < end && rp[0] - lo < per_src);
        }
    } else {
        for (uint32_t r = 0; r < n_runs; r++) {
            const uint32_t first = runs[3 * r], to = runs[3 * r + 1], len = runs[3 * r + 2];
            for (uint32_t i = 0; i < len; i++) t[first + i + slot_shift((first + i) / per_src, kv_half, per_src)] = to + i;
        }
    }
    vk->stage_pending = NULL;
    /* the half an open conversion (if any) does not read, bound alone: hazards are per bound range;
     * an open copy of out touches neither half */
    const int overlap = vk->open_work != PKV_VK_OPEN_NONE, half = vk->open_work == PKV_VK_OPEN_SCATTER_1 ? 2 : 1;
    const size_t hb = (size_t)(vk->kv_raw->size / 2) & ~(size_t)255;
    pkv_buf raw = {vk->kv_raw->page, vk->kv_raw->off + (half == 2 ? hb : 0), hb};
    vk->open_work = PKV_VK_OPEN_NONE;
    pkv_status s = pkv_vk_begin(vk);
    if (s != PKV_OK) return s;
    if (!overlap) pkv_vk_op_start(vk);
    copy_sources(vk, in, &raw, 0, 1);
    /* a small table (a decode step's of one sequence: 2 x heads rows, up to 20) goes in the push
     * constants, and so does a larger one that follows a rule (a decode step's of a batch): no upload */
    const uint32_t row_tab = rows <= PUSH_TAB_MAX ? PUSH_ROWS
                             : table_rule(tab, per_src, kv_half) ? PUSH_RULE : (uint32_t)table_off(in);
    vk->row_tables[row_tab == PUSH_ROWS ? 0 : row_tab == PUSH_RULE ? 1 : 2]++;
    if (row_tab == table_off(in)) s = pkv_vk_upload(vk, &raw, table_off(in) * 4, tab, rows * 4);
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        s = pkv_vk_stage_convert(vk, in, &raw, dst, 0, 0, row_tab);
    }
    if (s == PKV_OK) vk->open_work = half == 2 ? PKV_VK_OPEN_SCATTER_2 : PKV_VK_OPEN_SCATTER_1, vk->after_barrier = 0;
    return s;
}
