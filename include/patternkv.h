/* PatternKV: pattern-aligned residual quantization of an LLM's KV cache, with attention computed
 * directly on the compressed cache, on the CPU, Vulkan and OpenCL.
 *
 * The API follows zstd's shape: opaque handles, a parameters struct with defaults, one status type.
 * Every function returns a pkv_status; on error nothing that was stored before is lost, and
 * pkv_last_error() gives a sentence saying what was wrong. docs/FORMAT.md describes the data layout.
 *
 * Stable ABI. Every public struct starts with `uint32_t struct_size`: the struct's size as the
 * application was compiled (sizeof). Fields are only ever added at the end, so the size says which
 * fields the application knows. The library accepts the size of every released version of a struct:
 * from an older, smaller struct it reads only the fields that size covers (later fields take their
 * defaults) and into one it writes only those fields; any other size (0, a newer or a foreign one)
 * is refused with PKV_ERR_INVALID_ARGUMENT and a message naming the struct. Set the size with the
 * struct's *_default() (pkv_context_params, pkv_cache_config, pkv_attention_params: inline functions
 * that call pkv_*_init with the size seen by the application), or by hand for the structs the
 * library fills (`pkv_cache_stats s = {.struct_size = sizeof s};`, likewise pkv_device_info) and for
 * the engine-integration handles (pkv_vulkan_external, pkv_opencl_external). Bindings from other
 * languages (ctypes, ...) call pkv_*_init with their own struct's size. */
#ifndef PATTERNKV_H
#define PATTERNKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The project's version, in this one place: CMakeLists.txt reads these three lines. */
#define PKV_VERSION_MAJOR 0
#define PKV_VERSION_MINOR 1
#define PKV_VERSION_PATCH 0
#define PKV_VERSION_NUMBER (PKV_VERSION_MAJOR * 10000 + PKV_VERSION_MINOR * 100 + PKV_VERSION_PATCH)
#define PKV_STRINGIFY_(x) #x
#define PKV_STRINGIFY(x) PKV_STRINGIFY_(x)
#define PKV_VERSION_STRING                                                                                    \
    PKV_STRINGIFY(PKV_VERSION_MAJOR) "." PKV_STRINGIFY(PKV_VERSION_MINOR) "." PKV_STRINGIFY(PKV_VERSION_PATCH)

#if defined(_WIN32) && defined(PKV_SHARED_BUILD)
#define PKV_API __declspec(dllexport)
#elif defined(__GNUC__)
#define PKV_API __attribute__((visibility("default")))
#else
#define PKV_API
#endif

typedef enum pkv_status {
    PKV_OK = 0,
    PKV_ERR_INVALID_ARGUMENT,     /* a null pointer or a value out of its documented range */
    PKV_ERR_INVALID_CONFIG,       /* a cache configuration that cannot be built */
    PKV_ERR_NONFINITE,            /* NaN, Inf, or a value beyond fp16's range in K, V or q */
    PKV_ERR_SHAPE,                /* shapes that do not fit the cache (heads, q_len, lengths) */
    PKV_ERR_UNKNOWN_SEQUENCE,     /* a sequence id that does not exist or was freed */
    PKV_ERR_LAYER_RANGE,          /* layer index >= n_layers */
    PKV_ERR_OUT_OF_BUDGET,        /* the cache's memory budget is full */
    PKV_ERR_OUT_OF_DEVICE_MEMORY, /* the device could not allocate */
    PKV_ERR_OUT_OF_HOST_MEMORY,
    PKV_ERR_BACKEND_UNAVAILABLE,  /* backend not built, its driver missing, or no device */
    PKV_ERR_DEVICE,               /* the driver reported a failure */
    PKV_ERR_IO,                   /* a file could not be opened, read or written */
    PKV_ERR_CORRUPT_FILE,         /* a truncated, damaged or foreign file */
    PKV_ERR_UNSUPPORTED,          /* valid request this backend or build does not support */
    PKV_STATUS_COUNT
} pkv_status;

/* A fixed string naming the status ("PKV_ERR_SHAPE: ..."). Never NULL. */
PKV_API const char *pkv_status_string(pkv_status s);
/* The detailed message of the last error on this thread (empty if none). Never NULL. */
PKV_API const char *pkv_last_error(void);
PKV_API unsigned pkv_version_number(void);
PKV_API const char *pkv_version_string(void);

typedef enum pkv_log_level { PKV_LOG_ERROR = 0, PKV_LOG_WARN, PKV_LOG_INFO, PKV_LOG_DEBUG } pkv_log_level;
typedef void (*pkv_log_fn)(pkv_log_level level, const char *message, void *user);

/* ---- backends and devices ------------------------------------------------------------------ */

typedef enum pkv_backend_kind {
    PKV_BACKEND_AUTO = 0, /* Vulkan, then OpenCL, on a GPU; else the CPU backend (docs/BACKENDS.md) */
    PKV_BACKEND_CPU,
    PKV_BACKEND_VULKAN,
    PKV_BACKEND_OPENCL,
    PKV_BACKEND_COUNT
} pkv_backend_kind;

PKV_API const char *pkv_backend_name(pkv_backend_kind kind); /* "auto", "cpu", "vulkan", "opencl" */
PKV_API pkv_status pkv_backend_from_name(const char *name, pkv_backend_kind *out);

typedef enum pkv_device_type {
    PKV_DEVICE_OTHER = 0, PKV_DEVICE_DISCRETE_GPU, PKV_DEVICE_INTEGRATED_GPU, PKV_DEVICE_VIRTUAL_GPU,
    PKV_DEVICE_CPU
} pkv_device_type;

enum { /* bits of pkv_device_info.features */
    PKV_FEATURE_FP16_MATH = 1u << 0,
    PKV_FEATURE_STORAGE_8BIT = 1u << 1,
    PKV_FEATURE_STORAGE_16BIT = 1u << 2,
    PKV_FEATURE_INT_DOT = 1u << 3,
    PKV_FEATURE_COOPERATIVE_MATRIX = 1u << 4,
    PKV_FEATURE_SUBGROUPS = 1u << 5,
};

typedef struct pkv_device_info {
    uint32_t struct_size;    /* sizeof(pkv_device_info), set by the caller (stable ABI, above) */
    pkv_backend_kind backend;
    uint32_t index;          /* index within its backend */
    pkv_device_type type;
    char name[128];
    char driver[128];
    uint32_t subgroup_size;  /* 0 when not applicable */
    uint32_t features;       /* PKV_FEATURE_* bits */
    uint64_t memory_bytes;   /* device-local memory, 0 when unknown */
} pkv_device_info;

/* Lists the devices of every backend that loads on this machine. Writes up to `capacity` entries
 * and sets *count to the number found. Backends that do not load are skipped; their reason goes
 * to the log callback of `params` when given (may be NULL). With capacity > 0, out[0].struct_size
 * gives the size of each entry of the array (set it to sizeof(pkv_device_info)). */
typedef struct pkv_context_params pkv_context_params;
PKV_API pkv_status pkv_list_devices(const pkv_context_params *params, pkv_device_info *out,
                                    size_t capacity, size_t *count);

/* ---- context --------------------------------------------------------------------------------- */

struct pkv_vulkan_external; /* patternkv_vulkan.h */
struct pkv_opencl_external; /* patternkv_opencl.h */

struct pkv_context_params {
    uint32_t struct_size;     /* sizeof(pkv_context_params), set by pkv_context_params_default() */
    pkv_backend_kind backend; /* AUTO; overridden by env PKV_BACKEND when AUTO */
    int device_index;         /* -1: best device (discrete > integrated > virtual > cpu); env PKV_DEVICE */
    const char *device_name;  /* substring of the device name, or NULL */
    const char *cache_dir;    /* pipeline/program cache dir; NULL: $PKV_CACHE_DIR or ~/.cache/patternkv */
    pkv_log_fn log;           /* NULL: warnings and errors to stderr */
    void *log_user;
    pkv_log_level log_level;  /* messages above this level are dropped; default WARN */
    uint32_t n_threads;       /* CPU backend threads; 0 = one per core */
    /* Engine integration: the application's own device and queue, or NULL (docs/BACKENDS.md: Engine
     * integration). At most one of the two; it names its backend (AUTO follows it, another explicit
     * backend is an error). */
    const struct pkv_vulkan_external *vulkan_external; /* patternkv_vulkan.h */
    const struct pkv_opencl_external *opencl_external; /* patternkv_opencl.h */
    /* Device memory of the Vulkan backend (0: the default). Caches, banks and windows are carved
     * out of device-local allocations of device_page_bytes (default 64 MiB; a larger buffer gets
     * an allocation of its own); staging_bytes is the host-visible staging ring of uploads and
     * read-backs (default 64 MiB, at least 64 KiB: larger transfers go in several submissions; it
     * starts at 4 MiB, or this when smaller, and grows to this when an operation first needs more).
     * An engine with a small cache sets both small (e.g. 4 MiB and 1 MiB). The OpenCL backend
     * allocates each arena as one buffer and has no ring: it ignores them. Added in 0.2.0. */
    uint64_t device_page_bytes;
    uint64_t staging_bytes;
    /* Host allocator (engines keep their own heaps): every host allocation of the library for this
     * context, its caches and its backend goes through these (NULL: malloc, realloc, free). Give all
     * three or none. host_malloc and host_realloc return memory aligned for any type (as malloc does)
     * or NULL when out of memory, which the library reports as PKV_ERR_OUT_OF_HOST_MEMORY with
     * nothing changed (a failed call changes nothing); sizes are never 0. They may be called from the
     * CPU backend's worker threads during a call (never two calls on one context at once unless the
     * application calls from several threads). The drivers' own allocations (Vulkan, OpenCL) do not
     * go through them. Added in 0.2.0. */
    void *(*host_malloc)(size_t size, void *user);
    void *(*host_realloc)(void *ptr, size_t size, void *user);
    void (*host_free)(void *ptr, void *user);
    void *host_alloc_user;
};

typedef struct pkv_context pkv_context;

/* Fills the first struct_size bytes of *p with the defaults and sets p->struct_size (stable ABI). */
PKV_API pkv_status pkv_context_params_init(pkv_context_params *p, size_t struct_size);
static inline pkv_context_params pkv_context_params_default(void)
{
    pkv_context_params p;
    pkv_context_params_init(&p, sizeof p);
    return p;
}
PKV_API pkv_status pkv_context_create(const pkv_context_params *params, pkv_context **out);
PKV_API pkv_status pkv_context_free(pkv_context *ctx);
/* The device the context runs on, and why it was chosen (e.g. "vulkan: libvulkan.so.1 not found").
 * Set info->struct_size first. */
PKV_API pkv_status pkv_context_device(const pkv_context *ctx, pkv_device_info *info,
                                      char *why, size_t why_capacity);

/* ---- cache ----------------------------------------------------------------------------------- */

typedef enum pkv_mode {
    PKV_MODE_PATTERN = 0, /* pattern-aligned residual quantization (PatternKV) */
    PKV_MODE_DIRECT,      /* KIVI-style min/max quantization, no patterns */
    PKV_MODE_FP16         /* no quantization */
} pkv_mode;

PKV_API const char *pkv_mode_name(pkv_mode mode); /* "pattern", "direct", "fp16" */

/* How a PATTERN cache chooses each key's pattern (encoder variants; issue 14, docs/NUMERICS.md). V
 * always follows SPEC.md: L2 at prefill, min-max distance at flushes. */
typedef enum pkv_k_assign {
    PKV_K_ASSIGN_MINMAX = 0, /* SPEC.md (the paper): L2 at prefill; at a flush min-max distance, the range
                                of the residual across channels (which suits V's per-token quantization) */
    PKV_K_ASSIGN_L2,         /* L2 distance at prefill and at flushes */
    PKV_K_ASSIGN_RANGE,      /* per group of G tokens, the assignment that minimises the sum over channels
                                of the squared range of the residuals across the group (K is quantized per
                                channel over the group: its error grows with that range), by coordinate
                                descent from two starts (every token on one pattern, which equals DIRECT,
                                and L2); never a larger cost than DIRECT's. CPU backend only */
    PKV_K_ASSIGN_NONE        /* V-only patterns: keys take no pattern and are quantized as DIRECT's are
                                (per channel over the group); the K half of each bank holds zeros, no
                                k-means runs on K, and a block stores one index per token (V's; the K
                                index section is gone: G bytes less per block). CPU backend only */
} pkv_k_assign;

PKV_API const char *pkv_k_assign_name(pkv_k_assign a); /* "minmax", "l2", "range", "none" */

/* When a PATTERN sequence mines its banks (k-means over its first tokens; README "Mining and chunked
 * prefill"). Both give the same cache when the first append of a layer holds >= n_patterns tokens. */
typedef enum pkv_mining {
    PKV_MINING_AT_M = 0,      /* when the layer first holds >= n_patterns tokens, over all of them: an
                                 append that brings the window's tokens (fewer than n_patterns, all still
                                 fp16) to n_patterns or more mines over the window's tokens then the
                                 call's, and the cache is bit for bit the one a single append of those
                                 tokens gives. A prefill in chunks shorter than n_patterns, or decode from
                                 an empty sequence, still mines. No extra memory: the fp16 window is the
                                 staging area (so with n_patterns > window, tokens that reach a flush
                                 before the layer holds n_patterns are flushed and it never mines) */
    PKV_MINING_FIRST_APPEND   /* the paper's reference code: only an append of >= n_patterns tokens to an
                                 empty layer mines; a layer whose first append is shorter never does
                                 (its banks hold only the flushes' patterns). pkv_cache_save refuses it */
} pkv_mining;

PKV_API const char *pkv_mining_name(pkv_mining m); /* "at-m", "first-append" */

/* How the quantizer chooses each K channel's and V token's (scale, zero) (issue 14, docs/NUMERICS.md
 * "Quantizer range search"). The stored format and the attention are the same for both. */
typedef enum pkv_quantizer {
    PKV_QUANTIZER_MINMAX = 0, /* SPEC.md (KIVI, the paper): zero = min, scale = (max - min) / (2^b - 1) */
    PKV_QUANTIZER_MSE,        /* of the clipped ranges [min + i w/16, max - j w/16] (w = max - min, i, j
                                 in 0..7), the one whose fp16 (scale, zero) give the least squared error
                                 over the values, as stored and decoded, among 17 visited in two stages
                                 (9 coarse, then the 8 neighbours of the coarse best; min-max unless one
                                 is strictly better; values outside clamp to the end codes). PATTERN and
                                 DIRECT; every backend, bit for bit alike */
    PKV_QUANTIZER_MSE_K,      /* MSE for K (per channel), min-max for V */
    PKV_QUANTIZER_MSE_V,      /* MSE for V (per token), min-max for K */
    PKV_QUANTIZER_AUTO        /* the default (added in 0.3): MSE for PATTERN (closest to FP16 at 2, 3 and 4
                                 bits on both evaluated models, docs/NUMERICS.md), MINMAX for DIRECT (the
                                 KIVI baseline as published) and FP16; resolved by pkv_cache_create
                                 (pkv_cache_get_config and saved files give the resolved one). The paper's
                                 PATTERN is MINMAX */
} pkv_quantizer;

PKV_API const char *pkv_quantizer_name(pkv_quantizer q); /* "minmax", "mse", "mse-k", "mse-v", "auto" */

typedef struct pkv_cache_config {
    uint32_t struct_size;     /* sizeof(pkv_cache_config), set by pkv_cache_config_default() */
    uint32_t n_layers;        /* >= 1 */
    uint32_t n_kv_heads;      /* >= 1 */
    uint32_t head_dim;        /* multiple of 8 in [32, 256]; default 128 */
    uint32_t k_bits, v_bits;  /* 2, 3, 4 or 8; default 2 */
    uint32_t group_size;      /* G: 32, 64 or 128 tokens per block; default 0: the mode's (64 for PATTERN,
                                 128 for DIRECT and FP16; pkv_cache_config_resolve) */
    uint32_t window;          /* R: fp16 tokens before a flush; multiple of G; default 0: 128 tokens
                                 when group_size is 0 too, else G */
    uint32_t n_patterns;      /* M: patterns mined at prefill; default 24 (the paper: 32) */
    uint32_t bank_capacity;   /* patterns a bank can hold, <= 256, then frozen; default 0: n_patterns, so
                                 the mined banks are frozen from the start (the paper: 256, one Chebyshev
                                 centre per flush until full). Issue 14: with G 64 this stores no more
                                 than DIRECT with G 32 and is closer to FP16 (bench/RESULTS.md) */
    pkv_mode mode;            /* default PATTERN */
    uint64_t memory_budget;   /* bytes for blocks, banks and windows; default 256 MiB */
    uint32_t kmeans_iters;    /* default 30 */
    float kmeans_tol;         /* default 1e-4: stop when no centroid moved more than this (L2) */
    uint64_t seed;            /* k-means initialisation; default 0x5EED */
    /* added in 0.2 (an application built against 0.1 gets the default) */
    uint32_t k_assign;        /* pkv_k_assign; default MINMAX. A backend without a variant refuses the
                                 cache with PKV_ERR_UNSUPPORTED; pkv_cache_save refuses non-default ones */
    uint32_t mining;          /* pkv_mining; default AT_M. (It fills what was padding after k_assign, so
                                 the struct's size did not change: a struct from pkv_cache_config_default()
                                 of the release before holds the default there) */
    uint32_t quantizer;       /* pkv_quantizer; default AUTO (MSE for PATTERN, MINMAX for DIRECT; the
                                 paper's PATTERN: MINMAX). Added in 0.3; a backend without it
                                 refuses the cache with PKV_ERR_UNSUPPORTED (CPU, Vulkan and OpenCL
                                 have them all); saved files record it (format version 3) */
    uint32_t kmeans_sample;   /* added in 0.3 (it fills what was padding after quantizer): k-means of prefill
                                 mining over at most this many of the tokens, evenly strided
                                 (docs/NUMERICS.md "k-means"), then every token assigned to the final
                                 patterns; default 2048; 0 = all tokens (0.2's behaviour); at most 65535.
                                 Saved in the file (format version 2) */
} pkv_cache_config;

typedef struct pkv_cache pkv_cache;
typedef uint32_t pkv_seq;

PKV_API pkv_status pkv_cache_config_init(pkv_cache_config *c, size_t struct_size);
static inline pkv_cache_config pkv_cache_config_default(void)
{
    pkv_cache_config c;
    pkv_cache_config_init(&c, sizeof c);
    return c;
}
/* The paper's method (SPEC.md), one call away from the defaults: G 128, M 32, bank capacity 256 with a
 * Chebyshev centre per flush, min-max quantizer, K assigned by min-max distance; the rest as
 * pkv_cache_config_init. Set mode = DIRECT for the KIVI baseline as published. */
PKV_API pkv_status pkv_cache_config_init_paper(pkv_cache_config *c, size_t struct_size);
static inline pkv_cache_config pkv_cache_config_paper(void)
{
    pkv_cache_config c;
    pkv_cache_config_init_paper(&c, sizeof c);
    return c;
}
/* What pkv_cache_create makes of the "the mode's default" values, in place: group_size 0 (and with it
 * window 0), bank_capacity 0 and quantizer AUTO (the rest as given, unchecked). For sizing memory before a cache exists;
 * pkv_cache_get_config reports the same values. */
PKV_API pkv_status pkv_cache_config_resolve(pkv_cache_config *c);
PKV_API pkv_status pkv_cache_create(pkv_context *ctx, const pkv_cache_config *config, pkv_cache **out);
PKV_API pkv_status pkv_cache_free(pkv_cache *cache);
/* Set out->struct_size first (the fields it covers are written). */
PKV_API pkv_status pkv_cache_get_config(const pkv_cache *cache, pkv_cache_config *out);

/* ---- sequences ------------------------------------------------------------------------------- */

/* Ids are below 2^31 and never reused while their sequence exists (after the largest id, the smallest
 * free one is handed out). */
PKV_API pkv_status pkv_seq_create(pkv_cache *cache, pkv_seq *out);
PKV_API pkv_status pkv_seq_free(pkv_cache *cache, pkv_seq seq);
/* The child shares the parent's compressed blocks and banks copy-on-write; its window is copied. */
PKV_API pkv_status pkv_seq_fork(pkv_cache *cache, pkv_seq parent, pkv_seq *child);
/* Tokens stored for `layer` (compressed + window). */
PKV_API pkv_status pkv_seq_length(const pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t *n_tokens);

/* ---- append and attention -------------------------------------------------------------------- */

typedef enum pkv_dtype { PKV_F32 = 0, PKV_F16 } pkv_dtype;

/* fp32 <-> IEEE binary16 exactly as the library converts (round to nearest even, saturating to
 * +-65504), for callers that keep K/V or q in fp16. */
PKV_API pkv_status pkv_f32_to_f16_array(const float *src, uint16_t *dst, size_t n);
PKV_API pkv_status pkv_f16_to_f32_array(const uint16_t *src, float *dst, size_t n);

/* Appends n_tokens post-RoPE keys and values of one layer. k and v: [n_tokens][n_kv_heads][head_dim]
 * of `dtype` (fp16 as IEEE binary16 bits in uint16_t). Values must be finite and within fp16 range.
 * In PATTERN mode, the append that brings a layer to >= n_patterns tokens mines its banks, over all
 * of its tokens (pkv_cache_config.mining; the paper's reference: only a first append that long). */
PKV_API pkv_status pkv_append(pkv_cache *cache, pkv_seq seq, uint32_t layer, uint32_t n_tokens,
                              const void *k, const void *v, pkv_dtype dtype);

/* What pkv_append_layers appends: n_tokens tokens of one sequence to layers first_layer ..
 * first_layer + n_layers - 1. */
typedef struct pkv_append_params {
    uint32_t struct_size;  /* sizeof(pkv_append_params), set by pkv_append_params_default() */
    pkv_seq seq;
    uint32_t first_layer;  /* default 0 */
    uint32_t n_layers;     /* default 0: every layer from first_layer on */
    uint32_t n_tokens;
    pkv_dtype dtype;       /* of k and v; default PKV_F32 */
} pkv_append_params;

PKV_API pkv_status pkv_append_params_init(pkv_append_params *p, size_t struct_size);
static inline pkv_append_params pkv_append_params_default(void)
{
    pkv_append_params p;
    pkv_append_params_init(&p, sizeof p);
    return p;
}

/* Appends the same n_tokens positions to several layers of one sequence in one call: k[i] and v[i]
 * are layer first_layer + i, each [n_tokens][n_kv_heads][head_dim] of `dtype`. The cache ends up
 * exactly (bit for bit) as after pkv_append of each layer in turn, but the values of every layer are
 * checked and the memory budget reserved before anything is stored, and the device work is batched
 * across the layers: one mining run for a prompt of all layers (k-means of every layer and head
 * together), one window write and one flush of every full window per step. A decode step is one
 * call with n_tokens = 1 (README: "Decode with one append per step"). */
PKV_API pkv_status pkv_append_layers(pkv_cache *cache, const pkv_append_params *params, const void *const *k,
                                     const void *const *v);

typedef struct pkv_attention_params {
    uint32_t struct_size; /* sizeof(pkv_attention_params), set by pkv_attention_params_default() */
    const pkv_seq *seqs; /* n_seqs sequence ids */
    uint32_t n_seqs;
    uint32_t layer;
    uint32_t q_len;      /* 1: decode. > 1: the last q_len cached tokens are the queries' own (causal) */
    uint32_t n_q_heads;  /* multiple of n_kv_heads (GQA) */
    float scale;         /* softmax scale; 0 means 1/sqrt(head_dim) */
    pkv_dtype q_dtype;   /* dtype of q; out is always fp32 */
    /* The queries' own keys and values when they are not in the cache yet (NULL: they are, as the
     * last q_len tokens): [n_seqs][q_len][n_kv_heads][head_dim] of kv_new_dtype. Attention then runs
     * over the cache followed by these q_len tokens (query i sees the cache and own tokens 0..i),
     * in fp16 as the window would hold them; the cache itself does not change. They must fit in
     * the fp16 window: (tokens in the window) + q_len <= window, which always holds for q_len 1.
     * Decode: attend with the new token's K/V here, then append it to every layer at once
     * (pkv_append_layers). */
    const void *k_new, *v_new;
    pkv_dtype kv_new_dtype; /* default PKV_F32 */
} pkv_attention_params;

/* Defaults: no sequences, layer 0, q_len 1, n_q_heads 0 (to be set), scale 0, q fp32, no own K/V. */
PKV_API pkv_status pkv_attention_params_init(pkv_attention_params *p, size_t struct_size);
static inline pkv_attention_params pkv_attention_params_default(void)
{
    pkv_attention_params p;
    pkv_attention_params_init(&p, sizeof p);
    return p;
}

/* q and out: [n_seqs][q_len][n_q_heads][head_dim]. q must be finite with |q| <= 2^64 and |q| * scale
 * <= 2^64 (beyond, fp32 logits could overflow: PKV_ERR_NONFINITE); scale <= 2^64. */
PKV_API pkv_status pkv_attention(pkv_cache *cache, const pkv_attention_params *params, const void *q,
                                 float *out);

/* Builds now everything the cache's configuration will use on its backend, so that no later call
 * pays for it (the first prefill or decode step of a GPU backend otherwise builds pipelines or
 * programs, tens of milliseconds to seconds): the write path's pipelines (also made when the cache
 * is created; on Vulkan GPUs attention's are then started in the background too, and this waits for
 * those it needs), attention's for n_q_heads query heads and every q_len from 1 to max_q_len, and the
 * engine integration's staging; on OpenCL the attention program of each shape. Pipelines and
 * programs are kept per context (and in the on-disk cache). Call it
 * once after pkv_cache_create, before recording (patternkv_vulkan.h). No-op on the CPU backend. */
PKV_API pkv_status pkv_prewarm(pkv_cache *cache, uint32_t n_q_heads, uint32_t max_q_len);

/* Dequantized K and V of one layer, [n_tokens][n_kv_heads][head_dim] fp32, n_tokens from
 * pkv_seq_length. For tests, evaluation and debugging: attention never does this. */
PKV_API pkv_status pkv_read_kv(pkv_cache *cache, pkv_seq seq, uint32_t layer, float *k, float *v);

/* ---- measuring --------------------------------------------------------------------------------- */

#define PKV_HAVE_MEASURE_BW 1
/* The device's streaming-read bandwidth in GB/s (1e9 bytes/s), measured by a plain read kernel of the
 * context's backend over `bytes` bytes (0: 1 GiB on GPUs, 256 MiB on the CPU). The yardstick for
 * attention speed. PKV_ERR_UNSUPPORTED if the backend cannot measure. */
PKV_API pkv_status pkv_measure_read_bandwidth(pkv_context *ctx, uint64_t bytes, double *gbps);
/* Device time in ms of the context's last call that ran device work: an attention, or an append
 * that mined or flushed (the sum of its ops over all its layers; an append that only writes the
 * window leaves it unchanged). Device timestamps on GPUs, the host clock on the CPU backend.
 * PKV_ERR_UNSUPPORTED if unknown. */
PKV_API pkv_status pkv_last_op_time(const pkv_context *ctx, double *ms);

/* ---- stats, save, load ----------------------------------------------------------------------- */

typedef struct pkv_cache_stats {
    uint32_t struct_size;        /* sizeof(pkv_cache_stats), set by the caller (stable ABI, above) */
    uint64_t bytes_codes;        /* bit-packed K and V codes (fp16 payload in FP16 mode) */
    uint64_t bytes_scales;       /* fp16 scales and zeros */
    uint64_t bytes_indices;      /* u8 pattern indices */
    uint64_t bytes_masks;        /* V gate bits */
    uint64_t bytes_padding;      /* alignment inside blocks */
    uint64_t bytes_patterns;     /* pattern banks in use */
    uint64_t bytes_window;       /* fp16 window tokens in use */
    uint64_t bytes_reserved;     /* pool storage held (blocks + banks + windows slots) */
    uint64_t bytes_budget;
    uint64_t bytes_free;         /* budget - reserved */
    uint64_t blocks_used, blocks_shared; /* shared: referenced by more than one sequence */
    uint64_t tokens_stored;      /* sum over sequences and layers of stored tokens */
    uint64_t tokens_compressed;  /* of which in blocks */
    double bits_per_element;     /* bytes of all parts (shared counted once) * 8 / (tokens * 2 * heads * dim) */
    uint32_t n_seqs;
} pkv_cache_stats;

/* Set out->struct_size first: `pkv_cache_stats s = {.struct_size = sizeof s};`. */
PKV_API pkv_status pkv_cache_stats_get(const pkv_cache *cache, pkv_cache_stats *out);

/* Saves all sequences; the file is versioned and checksummed, written to a temp file then renamed. */
PKV_API pkv_status pkv_cache_save(const pkv_cache *cache, const char *path);
/* Loads a saved cache into a new cache on ctx's backend. A damaged file gives PKV_ERR_CORRUPT_FILE. */
PKV_API pkv_status pkv_cache_load(pkv_context *ctx, const char *path, pkv_cache **out);

#ifdef __cplusplus
}
#endif
#endif /* PATTERNKV_H */
