/* Shared declarations of the k-means shaders. hk = head * 2 + (0 for K, 1 for V). */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;

layout(push_constant) uniform Push {
    uint n, H, M;
    uint tok_off;      /* words: fp16 K [n][H][D] then V [n][H][D] */
    uint init_off;     /* [H*2][M] token indices */
    uint rcp_off;      /* [n + 1] floats */
    uint cent_off;     /* [H*2][M][D] floats: current centroids */
    uint new_off;      /* [H*2][M][D] floats: next centroids */
    uint assign_off;   /* [H*2][n] */
    uint done_off;     /* [H*2] stop flags */
    uint chunk_off;    /* [H][8] bank chunk slots */
    uint chunk_words;  /* words per bank chunk */
    float tol2;
} pc;

float token_x(uint hk, uint t, uint i)
{
    uint h = hk >> 1, kv = hk & 1u;
    uint idx = pc.tok_off * 2u + kv * pc.n * pc.H * D + (t * pc.H + h) * D + i;
    return scr_h(idx);
}
