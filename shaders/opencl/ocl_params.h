/* Indices of the op parameter block (a uint array in __constant memory), shared by the host C
 * code and the OpenCL kernels: geometry of the cache, then per-op values. Floats travel as bits. */
#ifndef PKV_OCL_PARAMS_H
#define PKV_OCL_PARAMS_H

#define PP_D 0
#define PP_G 1
#define PP_R 2
#define PP_H 3
#define PP_KBITS 4
#define PP_VBITS 5
#define PP_MODE 6          /* pkv_mode: 0 pattern, 1 direct, 2 fp16 */
#define PP_BLOCK_BYTES 7
#define PP_CHUNK_BYTES 8
#define PP_WINDOW_BYTES 9
#define PP_KROW 10         /* 32-bit words per K code row */
#define PP_VROW 11
#define PP_OFF_KCODES 12
#define PP_OFF_KSCALE 13
#define PP_OFF_KZERO 14
#define PP_OFF_VCODES 15
#define PP_OFF_VSCALE 16
#define PP_OFF_VZERO 17
#define PP_OFF_KIDX 18
#define PP_OFF_VIDX 19
#define PP_OFF_VMASK 20
#define PP_OFF_KFP16 21
#define PP_OFF_VFP16 22
#define PP_GATE_K2 23      /* float bits */
#define PP_INV_K 24        /* float bits: (float)(1.0 / (2^k_bits - 1)) */
#define PP_INV_V 25
/* per op */
#define PP_N_TOKENS 26     /* mine: prefill tokens in the staging buffer */
#define PP_N_PAT 27        /* encode: patterns to choose from */
#define PP_DIST_MINMAX 28  /* encode: 0 = L2 (prefill), 1 = min-max (flush) */
#define PP_SRC_WINDOW 29   /* encode: 0 = staging buffer, 1 = window slots */
#define PP_NB 30           /* encode: blocks per head */
#define PP_BANK_COUNT 31   /* flush: index of the new pattern */
#define PP_MAX_ITERS 32    /* mine */
#define PP_TOL2 33         /* mine: float bits */
#define PP_M 34            /* mine: initial patterns */
#define PP_Q_LEN 35        /* attention */
#define PP_NQH 36
#define PP_SCALE 37        /* float bits */
#define PP_N_ITEMS 38
#define PP_PSTRIDE 39      /* attention: floats per partial: m, l, o[d], then S[bank stride] in PATTERN mode */
#define PP_KM_LOCAL 40     /* mine: 1 when the k-means sums fit in local memory */
#define PP_BANK_STRIDE 41  /* attention: the largest bank of the call (qc and S entries per query) */
#define PP_HPW 42          /* attention: query heads per work-group (divides n_q_heads / H) */
/* the write path (mine, flush): units are (layer of the op, kv head), lists (unit, K|V) */
#define PP_N_SRC_LAYERS 44 /* layers in the token upload: K [layers][n][H][d] then V likewise */
#define PP_UNITS 45
#define PP_NC 46           /* mine: k-means chunks, ceil(n_sample / PKV_KMEANS_CHUNK) */
#define PP_N_ASSIGN 47     /* tokens assigned (and encoded) per unit */
#define PP_MB 48           /* mine: centroids per block in local memory */
#define PP_T_UDESC 49      /* offsets (words) into the table upload: unit descriptors [units][16] */
#define PP_T_BSLOT 50      /* block slots [units][NB] */
#define PP_T_INIT 51       /* mine: initial indices [lists][M] */
#define PP_T_RCP 52        /* mine: reciprocals [n_sample + 1] */
#define PP_W_CENT 53       /* offsets (words) into the work buffer: centroids [lists][M][d] */
#define PP_W_PART 54       /* chunk sums [lists][NC][M][d] */
#define PP_W_CNT 55        /* chunk counts [lists][NC][M] */
#define PP_W_KASSIGN 56    /* k-means assignments [lists][n_sample] */
#define PP_W_FLAGS 57      /* stop flag and shift per list */
#define PP_W_ASSIGN 58     /* final / flush assignments [lists][N_ASSIGN]: index | gate << 8 */
#define PP_N_SAMPLE 59     /* mine: k-means tokens (pkv_sample_token of the N_TOKENS; N_TOKENS: all) */
#define PP_QMSE 60         /* encode: the MSE quantizer for K (bit 0), V (bit 1) (pkv_quantizer) */
#define PP_W_QSEARCH 61    /* encode: ocl_quant_search's answers [units][NB][d + G] (fp16 scale | zero << 16) */
#define PP_COUNT 62

#define UDESC_WORDS 16u    /* unit descriptor: window slot, patterns, new pattern index, append flag, chunk slots [8] */

#define PKV_OCL_MAX_CHUNKS 8  /* PKV_MAX_CHUNKS */
#define PKV_OCL_CHUNK_PATTERNS 32

#endif
