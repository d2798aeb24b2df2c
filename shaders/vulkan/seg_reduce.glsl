/* Segmented reductions for attention: the workgroup's invocations form NQ segments of SEG
 * consecutive invocations (one per query row); each returns its segment's sum or max to every
 * invocation of the segment. Subgroup arithmetic where the device has it (and a subgroup fits in
 * a segment), shared memory otherwise. Call from uniform control flow. */
#ifdef PKV_SUBGROUPS
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

shared float red_s[gl_WorkGroupSize.x];

float seg_reduce(float v, uint lid, bool take_max)
{
#ifdef PKV_SUBGROUPS
    if (gl_SubgroupSize <= SEG) {
        float s = take_max ? subgroupMax(v) : subgroupAdd(v);
        if (subgroupElect()) red_s[gl_SubgroupID] = s;
        barrier();
        uint per = SEG / gl_SubgroupSize, first = (lid / SEG) * per;
        float t = red_s[first];
        for (uint k = 1u; k < per; k++) t = take_max ? max(t, red_s[first + k]) : t + red_s[first + k];
        barrier();
        return t;
    }
#endif
    red_s[lid] = v;
    barrier();
    for (uint s = SEG / 2u; s > 0u; s >>= 1) {
        if ((lid % SEG) < s) red_s[lid] = take_max ? max(red_s[lid], red_s[lid + s]) : red_s[lid] + red_s[lid + s];
        barrier();
    }
    float t = red_s[lid - lid % SEG];
    barrier();
    return t;
}

float seg_sum(float v, uint lid) { return seg_reduce(v, lid, false); }
float seg_max(float v, uint lid) { return seg_reduce(v, lid, true); }
