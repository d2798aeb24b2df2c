/* OpenCL-only additions to the shared math of shaders/common/pkv_math.h (which comes first). */

/* A product that must be rounded on its own before an add. FP_CONTRACT OFF normally guarantees it;
 * with PKV_OCL_NO_CONTRACT (set when the probe kernel finds the driver fusing anyway) it goes
 * through a volatile. */
#ifdef PKV_OCL_NO_CONTRACT
static inline float ocl_mul(float a, float b) { volatile float p = a * b; return p; }
#else
#define ocl_mul(a, b) ((a) * (b))
#endif

/* Helpers are always inlined: PoCL 3.1 miscompiles calls that pass __local arrays to a function
 * containing barriers (the callee reads zeros). */
#define OCL_HELPER static inline __attribute__((always_inline))

/* fp16 load with the hardware conversion (exact, core OpenCL 1.2). Used where results need not be
 * bit-exact (attention); the matched math reads through pkv_f16_to_f32 like the other backends. */
#define ocl_ld_f16(p, i) vload_half((i), (__global const half *)(p))
