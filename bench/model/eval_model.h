/* pkv eval-model: runs a llama2.c checkpoint teacher-forced over a text with its attention through
 * the PatternKV cache (FP16, PATTERN, DIRECT at several bit widths) and reports bits per byte,
 * perplexity, and how often the greedy next token agrees with the FP16 run. The parts:
 * eval_options.c (command line), eval_text.c (text and tokens), eval_run.c (one cache mode through
 * the model), eval_report.c (table and JSON), eval_plot.c (the SVG frontier), cmd_eval_model.c (the
 * command). */
#ifndef PKV_EVAL_MODEL_H
#define PKV_EVAL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "llama2.h"
#include "patternkv.h"
#include "progress.h"

#define EVAL_DEFAULT_MODEL "data/tinyllm/model.bin"
#define EVAL_DEFAULT_TEXT "data/tinyllm/heldout.txt"
#define EVAL_DEFAULT_TOKENS 4096u
#define EVAL_MAX_MODES 32

typedef struct eval_mode {
    pkv_mode mode;
    uint32_t k_bits, v_bits;
    uint32_t group_size; /* 0: the run's --group-size; else this mode's own (item suffix :gN) */
    int k_assign;        /* -1: the run's --k-assign; else this mode's own pkv_k_assign (suffix :kNAME) */
    uint32_t bank_capacity; /* 0: the run's --bank-capacity; else this mode's own (suffix :cN) */
    uint32_t quantizer;  /* pkv_quantizer (suffix :qNAME; default AUTO, replaced by the cache's resolved one
                            when the mode runs: MSE_V for pattern, MINMAX for direct) */
} eval_mode;

typedef struct eval_options {
    const char *model, *text, *tokenizer, *json;
    pkv_backend_kind backend;
    int device;
    const char *plot; /* --plot FILE.svg */
    uint32_t tokens, group_size, window, n_patterns, prefill, threads;
    uint32_t offset; /* --offset: bytes of the text skipped before the first token */
    uint32_t k_assign; /* --k-assign: pkv_k_assign of PATTERN modes without their own */
    uint32_t bank_capacity; /* --bank-capacity (default 0: = --patterns, no pattern added at flushes) */
    int paper;              /* --paper: modes without their own quantizer take min-max (the paper's) */
    int tokens_given, progress;
    int prefill_in_cache; /* prefill attention through pkv_attention (q_len P) instead of exact */
    uint32_t prefill_chunk; /* --prefill-chunk: the prompt appended (and, with the cache's attention, attended) in
                               chunks of this many tokens; 0: one append */
    uint32_t mining;      /* --mining: pkv_mining of the caches */
    uint32_t kmeans_sample; /* --kmeans-sample: pkv_cache_config.kmeans_sample */
    eval_mode modes[EVAL_MAX_MODES]; /* modes[0] is FP16: the others' greedy agreement is against it */
    int n_modes;
} eval_options;

typedef struct eval_result {
    eval_mode m;
    double nll_nats, bytes, bits_per_byte, perplexity, agreement, bits_per_element, seconds;
} eval_result;

/* eval_options.c: 0 to run, 1 after --help, -1 on a usage error (explained on stderr). */
int eval_parse_args(int argc, char **argv, eval_options *o);

/* eval_text.c: the tokens of a text (need + 1 of them at most) and the bytes each stands for (0, or
 * -1 with a sentence in err). */
int eval_tokenize(const eval_options *o, const llama2_config *cfg, const char *text, size_t len, uint32_t need,
                  int **tokens_out, double **bytes_out, uint32_t *count, char *err, size_t err_len);

/* eval_run.c: scores n_score positions with r->m's cache. greedy[] receives the FP16 run's argmax
 * tokens (modes[0]) and is compared against by the others. 0, or -1 with a sentence in err. */
int eval_run_mode(const eval_options *o, pkv_context *ctx, const llama2_model *m, llama2_state *st, const int *tokens,
                  const double *bytes, uint32_t n_score, int *greedy, eval_result *r, progress_bar *bar, char *err,
                  size_t err_len);

/* eval_options.c: the group size and fp16 window a mode runs with (the window: --window, else its group). */
uint32_t eval_mode_group(const eval_options *o, const eval_mode *m);
uint32_t eval_mode_window(const eval_options *o, const eval_mode *m);
/* The options' group and window in words ("64 / 128": the library's per mode), for headers */
void eval_describe_group_window(const eval_options *o, char *group, size_t group_len, char *window, size_t window_len);
uint32_t eval_mode_k_assign(const eval_options *o, const eval_mode *m);
uint32_t eval_mode_bank_capacity(const eval_options *o, const eval_mode *m);
/* The name of the curve a mode belongs to in tables and plots: "pattern", "direct g64", "fp16",
 * "pattern range" (a key assignment other than the paper's). */
void eval_mode_curve(const eval_options *o, const eval_mode *m, char *buf, size_t len);

/* eval_report.c */
void eval_print_table(const eval_options *o, const eval_result *res, int n_res);
int eval_write_json(const eval_options *o, const llama2_model *m, const pkv_device_info *dev, uint32_t n_score,
                    const eval_result *res, int n_res);

/* eval_plot.c: --plot: bits per byte against cache bits per element, one curve per eval_mode_curve
 * (through its bit widths), FP16 as a dashed line. 0, or -1 with a sentence in err. */
int eval_write_plot(const eval_options *o, const llama2_model *m, const eval_result *res, int n_res, char *err,
                    size_t err_len);

#endif
