/* Shared test helpers: backend choice, random and structured data, fp64 references. */
#ifndef PKV_TESTUTIL_H
#define PKV_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "patternkv.h"
#include "reference_attention.h" /* the fp64 reference: ref_attention, ref_rel_err */

/* A context on the backend named by PKV_TEST_BACKEND (cpu, vulkan, opencl; default cpu). Fails the
 * test when that backend cannot start, except a GPU backend without driver or device outside CI,
 * which skips (tu_skip). */
pkv_context *tu_context(void);
pkv_backend_kind tu_backend(void);

/* CI=true (or 1) in the environment. */
int tu_in_ci(void);
/* Skips the current test for want of a driver or device (cmocka skip) and remembers it, so that
 * the executable exits with 77, which ctest shows as "Skipped" (SKIP_RETURN_CODE 77), not "Passed".
 * Under CI=true such tests fail instead (see tu_context_or_skip). */
#define tu_skip() do { tu_skipped = 1; skip(); } while (0)
extern int tu_skipped;
/* The group's result, or 77 when it passed with a test skipped. */
int tu_exit(int rc);
/* PKV_TEST_FILTER=<pattern> runs only the tests whose names match (cmocka's wildcards; development aid) */
#define tu_run_tests(tests, setup, teardown) (tu_filter(), tu_exit(cmocka_run_group_tests(tests, setup, teardown)))
void tu_filter(void);
/* A context on p->backend for the GPU backends' tests: when that backend has no device, fails the
 * test in CI and skips it, saying why, elsewhere. */
pkv_context *tu_context_or_skip(pkv_context_params *p);
/* A CPU-backend context with n_threads threads (0: one per core). */
pkv_context *tu_cpu_context(uint32_t n_threads);
/* docs/NUMERICS.md's bound for a quantized mode's attention against fp64 over the stored cache on
 * ctx's device: 1e-4, and 1e-3 on the CPU backend's avx512vnni level (its products in int16). */
double tu_attention_bound(pkv_context *ctx);

typedef struct tu_rng { uint64_t s; } tu_rng;
double tu_uniform(tu_rng *r);  /* [0, 1) */
double tu_normal(tu_rng *r);

/* Keys built like real post-RoPE keys: n_centres stable centres drifting slowly, a few large-magnitude
 * channels, adjacent pairs rotated by position (RoPE-like), Gaussian noise. out: [n][H][d]. */
void tu_structured_kv(tu_rng *r, uint32_t n, uint32_t H, uint32_t d, uint32_t n_centres, float noise, float *out);
void tu_random(tu_rng *r, size_t n, float scale, float *out);


/* Full fp64 reference for pkv_attention over host K/V [T][H][d] per sequence (as pkv_read_kv returns
 * or as appended): returns the max relative error of out over all (seq, query, head). */
double tu_check_attention(const float *const *k, const float *const *v, const uint32_t *T, uint32_t n_seqs,
                          uint32_t q_len, uint32_t n_q_heads, uint32_t H, uint32_t d, const float *q, const float *out);

/* A whole file into memory (freed by the caller); fails the test if it cannot be read. */
uint8_t *tu_slurp(const char *path, size_t *n);

/* Saves both caches and fails the test unless the two files are byte for byte the same. */
void tu_expect_same_saved(pkv_cache *a, pkv_cache *b);

pkv_cache_config tu_config(uint32_t layers, uint32_t H, uint32_t d, uint32_t bits, uint32_t G, pkv_mode mode);

#define TU_OK(expr) assert_int_equal((expr), PKV_OK)

#endif

/* Internal views for tests (any backend): a head's bank as fp32 [count][d] (K and V), a block's bytes,
 * and the geometry. */
#include "layout.h"
const pkv_geom *tu_geom(const pkv_cache *c);
uint32_t tu_read_bank(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t head, float *PK, float *PV);
void tu_read_block(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t head, uint32_t block, uint8_t *bytes);
