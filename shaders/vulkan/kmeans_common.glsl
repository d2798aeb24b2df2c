/* Shared declarations of the k-means shaders (prefill mining of one or more layers at once).
 * A list q is one (layer of the op, kv head, K|V): q = (layer * H + head) * 2 + kv, unit = q / 2.
 * Tokens are the op's upload: fp16 K [n_src_layers][n_tok][H][D] then V likewise; k-means runs over
 * the n of them that pkv_sample_token picks (n = n_tok: all), the final assignment over n_assign. */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;

layout(push_constant) uniform Push {
    uint n;            /* k-means tokens per list (the sample) */
    uint H, M;
    uint n_src_layers; /* layers in the uploaded tokens */
    uint tok_off;      /* words */
    uint init_off;     /* [lists][M] token indices */
    uint rcp_off;      /* [n + 1] floats */
    uint cent_off;     /* [lists][M][D] floats: the centroids */
    uint part_off;     /* [lists][n_chunks][M][D] floats: chunk sums */
    uint cnt_off;      /* [lists][n_chunks][M] token counts */
    uint assign_off;   /* [lists][n] (k-means) or [lists][n_assign] (final: index | gate << 8) */
    uint flags_off;    /* [lists][2]: stop flag, largest shift of the iteration (float bits) */
    uint udesc_off;    /* [units][16]: unit descriptors (chunk slots at 4..11) */
    uint chunk_words;
    uint n_chunks;     /* ceil(n / PKV_KMEANS_CHUNK) */
    uint n_assign;     /* final assignment: tokens per list (n_quant) */
    uint lists;
    uint n_tok;        /* tokens per list in the upload */
    float tol2, gate_k2;
} pc;

/* Index (in halves of scratch) of token t's value 0 in list q. */
uint token_base(uint q, uint t)
{
    uint unit = q >> 1, kv = q & 1u, layer = unit / pc.H, h = unit % pc.H;
    return pc.tok_off * 2u + (((kv * pc.n_src_layers + layer) * pc.n_tok + t) * pc.H + h) * D;
}

/* The same for sample j (the k-means token j). */
uint sample_base(uint q, uint j) { return token_base(q, pkv_sample_token(j, pc.n_tok, pc.n)); }

float sample_x(uint q, uint j, uint i) { return scr_h(sample_base(q, j) + i); }

bool list_done(uint q) { return scr[pc.flags_off + 2u * q] != 0u; }
