/* PATTERN's V histogram S[r][m], the sum of p over a pattern's gated tokens, in shared memory: runs of
 * tokens share a pattern, so many invocations add to one word at once. HIST_FIXED: a 64-bit
 * fixed-point number in units of 2^-32 (low word in S_s, high in Sh_s) added with two integer
 * atomics, which the hardware serialises without retries (p <= 2^LAZY, so the high word holds any
 * item below 2^24 tokens). Otherwise float bits added by compare-and-swap, which retries while a run
 * contends. The includer declares uint S_s[] and Sh_s[] (the latter used only with HIST_FIXED), or
 * defines S_AT(i) and SH_AT(i) as the shared uint words they stand for. */
#ifndef S_AT
#define S_AT(i) S_s[i]
#define SH_AT(i) Sh_s[i]
#endif
const float HIST_ONE = 4294967296.0; /* 2^32 */
void hist_add(uint idx, float v)
{
    if (HIST_FIXED != 0u) {
        uint hi = uint(v), lo = uint((v - float(hi)) * HIST_ONE); /* exact: v - hi < 1 */
        uint old = atomicAdd(S_AT(idx), lo);
        hi += old + lo < old ? 1u : 0u; /* the carry out of the low word */
        if (hi != 0u) atomicAdd(SH_AT(idx), hi);
        return;
    }
    uint old = S_AT(idx);
    for (;;) {
        uint prev = atomicCompSwap(S_AT(idx), old, floatBitsToUint(uintBitsToFloat(old) + v));
        if (prev == old) break;
        old = prev;
    }
}
float hist_get(uint idx)
{
    return HIST_FIXED != 0u ? float(SH_AT(idx)) + float(S_AT(idx)) * (1.0 / HIST_ONE) : uintBitsToFloat(S_AT(idx));
}
void hist_set(uint idx, float v)
{
    if (HIST_FIXED != 0u) {
        uint hi = uint(v);
        SH_AT(idx) = hi;
        S_AT(idx) = uint((v - float(hi)) * HIST_ONE);
    } else {
        S_AT(idx) = floatBitsToUint(v);
    }
}
