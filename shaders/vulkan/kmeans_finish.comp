#version 450
/* k-means, after each iteration, one invocation per list: stop when the largest shift of the
 * iteration is below tol2 (docs/NUMERICS.md); the shift starts again from 0. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

void main()
{
    uint q = gl_GlobalInvocationID.x;
    if (q >= pc.lists) return;
    uint f = pc.flags_off + 2u * q;
    if (scr[f] == 0u && uintBitsToFloat(scr[f + 1u]) < pc.tol2) scr[f] = 1u;
    scr[f + 1u] = 0u;
}
