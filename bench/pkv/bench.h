/* pkv bench: options, results, and the parts that compute and report them. */
#ifndef PKV_CLI_BENCH_H
#define PKV_CLI_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "patternkv.h"

#define BENCH_MAX_CONFIGS 32
#define BENCH_MAX_CONTEXTS 16
#define BENCH_MAX_DS_BATCH 8

typedef struct bench_config { /* one (mode, k_bits, v_bits) to measure */
    pkv_mode mode;
    uint32_t k_bits, v_bits;  /* 16 for FP16 mode */
} bench_config;

typedef struct bench_options {
    pkv_backend_kind backend;
    int device_index;             /* -1: best */
    const char *device_name;
    uint32_t n_threads;
    const char *kv_path;          /* NULL: fixture if present, else synthetic */
    int force_synthetic;
    uint32_t n_layers;            /* synthetic layers, or the first N layers of a file (0: all of a file) */
    uint32_t context;             /* fidelity tokens (0: 2048 synthetic / all of a file) */
    uint32_t prefill;             /* tokens in the first append (0: half the context) */
    uint32_t n_q_heads;           /* 0: 4 x kv heads (synthetic), kv heads (file without q) */
    uint32_t n_kv_heads, head_dim;  /* synthetic shape */
    uint32_t group_size, window, n_patterns, bank_capacity;
    uint32_t quantizer;           /* pkv_quantizer of every cache (default AUTO, the library's) */
    bench_config configs[BENCH_MAX_CONFIGS];
    uint32_t n_configs;
    uint32_t speed_contexts[BENCH_MAX_CONTEXTS];
    uint32_t n_speed_contexts;    /* 0 with speed_set: skip the speed part */
    int speed_set;
    uint32_t batch;               /* 0: 1 on CPU devices, 4 on GPUs */
    uint32_t steps, warmup;       /* timed decode steps (at least), warm-up steps */
    uint32_t n_queries;           /* fidelity queries per head */
    uint32_t model_layers, model_kv_heads, model_head_dim; /* memory report shape */
    double memory_gib;
    uint64_t seed;
    const char *json_path, *plot_path;
    int progress;                 /* -1 auto (stderr is a terminal), 0 off, 1 on */
    int skip_fidelity, skip_throughput;
    int write_path;               /* --write-path: the multi-layer prompt / flush / decode-append section */
    uint32_t wp_layers, wp_prompt; /* its layers and prompt tokens (0: 32 and 32768 on GPUs, 4 and 2048 on CPU devices) */
    int decode_step;              /* --decode-step: a model's decode step, recorded against synchronous (engine mode) */
    uint32_t ds_layers, ds_context; /* 0: 32 layers; 32768 tokens on GPUs, 256 on CPU devices */
    uint32_t ds_batch[BENCH_MAX_DS_BATCH], n_ds_batch; /* none: 1,8 on GPUs, 1 on CPU devices */
} bench_options;

typedef struct fidelity_result {
    bench_config cfg;
    double k_mse, v_mse;
    double attn_rel_median, attn_rel_max;
    double bits_per_element, compression_ratio;
    double seconds;
} fidelity_result;

typedef struct speed_result {
    bench_config cfg;
    uint32_t context, batch;
    double ms_per_step;           /* median of device times on GPUs, else of host times */
    double host_ms_per_step;      /* median of the host wall time of each pkv_attention call */
    double bytes_per_step;        /* compressed cache bytes read by one step */
    uint32_t rotation;            /* batches of distinct sequences the timed steps cycle through */
    int device_timed;             /* 1: device timestamps (pkv_last_op_time), 0: host clock */
    double gbps;
    double bw_fraction;           /* NAN when unknown */
    double speedup_vs_fp16;       /* NAN when FP16 was not measured */
    uint32_t steps;
} speed_result;

/* The prefill figure: the median of this many prompts into fresh sequences after the cache's first
 * (which also pays the process's first-use costs: threads, scratch, page faults; reported apart). */
#define PREFILL_REPEATS 5u

typedef struct throughput_result {
    bench_config cfg;
    double prefill_tokens_per_s;  /* a prompt into a fresh sequence (mining in PATTERN mode), median after the first */
    double prefill_first_tokens_per_s; /* the cache's first prompt (the process's first-use costs too) */
    double append_tokens_per_s;   /* one-token appends that do not flush */
    double flush_tokens_per_s;    /* window tokens / time of the append that flushes */
} throughput_result;

/* Where a start-up's wall time goes (ms): the driver creating its instance/device or platform/context
 * (pkv_backend.driver_ms: a library cannot change it), the rest of pkv_context_create (the library's:
 * staging memory, pipeline cache file; OpenCL: the program build), pkv_cache_create (Vulkan: the
 * write path's pipelines), and the first prompt and attention (pipelines created at first use). */
typedef struct startup_split {
    double total_ms, driver_ms, context_ms, cache_ms, first_ms;
} startup_split;

typedef struct write_path_result {
    bench_config cfg;
    double prefill_ms;            /* device time of the prompt's pkv_append_layers (all its ops), warm scratch */
    double prefill_host_ms;       /* wall time of that call */
    double prefill_first_ms;      /* wall time of the first prompt of the cache (scratch buffers grow) */
    double flush_ms_per_window;   /* median device time of a decode step that flushes every layer's window */
    double flush_host_ms_per_window; /* its wall time (Vulkan: the queue drained before the step) */
    double flush_queued_ms;       /* Vulkan: host time of draining earlier steps' queued work before it */
    double round_trip_ms;         /* Vulkan: an empty submission and wait (latency of one synchronous op) */
    double append_all_layers_us;  /* median wall time of a decode step (one token, every layer) without a flush */
    double cache_create_ms;       /* pkv_cache_create (the write path's pipelines on Vulkan) */
    double startup_cold_ms, startup_warm_ms; /* to a first result at this shape, empty / filled pipeline cache */
    startup_split startup_cold, startup_warm; /* their split */
    uint32_t flushes;
    int device_timed;             /* prefill_ms and flush_ms_per_window from device timestamps */
} write_path_result;

typedef struct decode_step_result {
    bench_config cfg;
    uint32_t layers, batch, context;
    double recorded_ms;           /* device time of the recorded step's command buffer (median) */
    double recorded_host_ms;      /* host: recording, submit and wait */
    double record_us_per_layer;   /* host time recording, per layer */
    double synchronous_ms;        /* host wall time of the step through the synchronous calls */
    double attention_kernels_ms;  /* sum of the attention kernels' device times of a step */
    /* commands the recorded calls put into a step's command buffer, per layer (vk_bench.h) */
    double dispatches_per_layer, barriers_per_layer, transfers_per_layer, commands_per_layer;
} decode_step_result;

typedef struct memory_result {
    bench_config cfg;
    double bytes_per_token_per_layer; /* model shape, all KV heads, K and V, steady state */
    double fixed_bytes_per_layer;     /* banks at capacity + window, per layer */
    uint64_t tokens_fit;
} memory_result;

typedef struct bench_report {
    pkv_device_info device;
    char why[256];
    char data_source[320];
    int q_from_keys;
    uint32_t n_layers, n_tokens, n_kv_heads, n_q_heads, head_dim, n_queries, prefill;
    uint32_t batch;
    char speed_source[320];       /* the speed part's data: the --kv file, or synthetic at the option shape */
    uint32_t speed_kv_heads, speed_q_heads, speed_head_dim;
    double read_bw_gbps;          /* the median of the probes below; NAN when unknown */
    char read_bw_method[96];
    /* the read-bandwidth probes of the run (bench_read_bw_sample): one before the speed rows and one
     * after each mode's rows, so that they straddle the decode timings; GB/s, in the order taken */
    double read_bw_samples[BENCH_MAX_CONFIGS + 1];
    uint32_t n_read_bw;
    double read_bw_min, read_bw_max; /* NAN when none */
    double startup_cold_ms, startup_warm_ms;
    fidelity_result fidelity[BENCH_MAX_CONFIGS];
    uint32_t n_fidelity;
    speed_result speed[BENCH_MAX_CONFIGS * BENCH_MAX_CONTEXTS];
    uint32_t n_speed;
    throughput_result throughput[BENCH_MAX_CONFIGS];
    uint32_t n_throughput;
    memory_result memory[BENCH_MAX_CONFIGS];
    uint32_t n_memory;
    write_path_result write_path[BENCH_MAX_CONFIGS];
    uint32_t n_write_path;
    uint32_t wp_layers, wp_prompt, wp_kv_heads, wp_head_dim;
    double write_path_seconds;
    decode_step_result decode_step[BENCH_MAX_CONFIGS * BENCH_MAX_DS_BATCH];
    uint32_t n_decode_step, ds_kv_heads, ds_q_heads, ds_head_dim;
    double decode_step_seconds;
    double total_seconds, fidelity_seconds, speed_seconds;
} bench_report;

/* Parses argv (argv[0] is "bench"). Returns 0, or 2 after printing a usage error to stderr;
 * 1 when --help was printed. */
int bench_parse_options(int argc, char **argv, bench_options *o);
void bench_print_usage(FILE *f);

/* Measurement parts (bench_fidelity.c, bench_speed.c, bench_memory.c). Each returns 0 or -1 with a
 * sentence in err. `progress` is called with a fraction of the part done. */
typedef void (*bench_progress_fn)(void *user, double fraction, const char *label);
struct kv_data;
int bench_fidelity(pkv_context *ctx, const bench_options *o, const struct kv_data *data, bench_report *r,
                   bench_progress_fn progress, void *user, char *err, size_t err_len);
int bench_speed(pkv_context *ctx, const bench_options *o, const struct kv_data *data, bench_report *r,
                bench_progress_fn progress, void *user, char *err, size_t err_len);
int bench_memory(pkv_context *ctx, const bench_options *o, const struct kv_data *data, bench_report *r,
                 char *err, size_t err_len);
/* bench_write_path.c: the --write-path section on the speed data's shape; cp makes the contexts of
 * the startup timing. */
int bench_write_path(pkv_context *ctx, const pkv_context_params *cp, const bench_options *o,
                     const struct kv_data *data, bench_report *r, bench_progress_fn progress, void *user, char *err,
                     size_t err_len);
/* bench_decode_step.c: the --decode-step section (Vulkan; elsewhere empty, with a note on stderr). */
int bench_decode_step(pkv_context *ctx, const bench_options *o, const struct kv_data *data, bench_report *r,
                      bench_progress_fn progress, void *user, char *err, size_t err_len);
/* Streaming-read bandwidth of the context's device, GB/s; NAN with the reason in method when unknown. */
double bench_read_bandwidth(pkv_context *ctx, const pkv_device_info *dev, char *method, size_t method_len);
/* One more probe of the run (bench_read_bandwidth, the context's threads): appended to
 * r->read_bw_samples; r->read_bw_gbps becomes the median of the finite samples (the mean of the two
 * middle ones for an even count), read_bw_min/max their range. The method is the first probe's. */
void bench_read_bw_sample(pkv_context *ctx, bench_report *r);
/* Time to the first attention result with an empty and with a warm pipeline/program cache, ms. */
int bench_startup_times(const pkv_context_params *base, double *cold_ms, double *warm_ms, char *err, size_t err_len);
/* The same for a cache of configuration cc (its first append: 2 groups of tokens). */
int bench_startup_times_for(const pkv_context_params *base, const pkv_cache_config *cc, double *cold_ms,
                            double *warm_ms, char *err, size_t err_len);
/* The same with each start-up's split. */
int bench_startup_split_for(const pkv_context_params *base, const pkv_cache_config *cc, startup_split *cold,
                            startup_split *warm, char *err, size_t err_len);

/* Reports (report_table.c, report_json.c, report_svg.c). */
void report_table(FILE *f, const bench_options *o, const bench_report *r);
int report_json(const char *path, const bench_options *o, const bench_report *r, char *err, size_t err_len);
int report_svg(const char *path, const bench_report *r, char *err, size_t err_len);

/* The cache configuration the bench uses for a config (budget set by the caller). */
pkv_cache_config bench_cache_config(const bench_options *o, const bench_config *c, uint32_t n_layers,
                                    uint32_t n_kv_heads, uint32_t head_dim);
/* The options' resolved configuration for a mode (its group, window, bank capacity, quantizer), for the
 * reports; window filled in (0 = G). */
pkv_cache_config bench_mode_config(const bench_options *o, pkv_mode mode);


#endif
