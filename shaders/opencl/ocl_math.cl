/* OpenCL-only additions to the shared math of shaders/pkv_math.h (which comes first). */

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
