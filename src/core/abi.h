/* The stable-ABI rule of patternkv.h: every public struct starts with `uint32_t struct_size`, the
 * size the application was compiled with. The library accepts every size the struct has had in a
 * released version and nothing else; from an older, smaller struct it reads only the fields that
 * size covers (the rest keep their defaults), into one it writes only those fields.
 *
 * Adding a field: append it at the end of the public struct, freeze the previous layout as a
 * private copy (e.g. `struct pkv_cache_config_v1` here) and put its sizeof before the current
 * sizeof in the struct's list below; sizes are then right on every ABI (32/64-bit, padding). */
#ifndef PKV_ABI_H
#define PKV_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "patternkv.h"

#define PKV_ABI_MAX_VERSIONS 8

typedef struct pkv_abi_struct {
    const char *name;                     /* "pkv_cache_config" */
    const char *how;                      /* how an application sets struct_size */
    uint32_t n_sizes;
    uint32_t sizes[PKV_ABI_MAX_VERSIONS]; /* every size it has had, oldest first; the last is today's sizeof */
} pkv_abi_struct;

extern const pkv_abi_struct pkv_abi_context_params, pkv_abi_cache_config, pkv_abi_attention_params,
    pkv_abi_cache_stats, pkv_abi_device_info, pkv_abi_append_params;

/* The struct_size field of any public struct. */
uint32_t pkv_abi_size_of(const void *app_struct);
/* 0 when `size` is one of s's sizes, else -1 with a sentence in why. */
int pkv_abi_size_known(const pkv_abi_struct *s, uint32_t size, char *why, size_t why_len);
/* dst (the library's whole struct) := defaults, then the fields src's struct_size covers; dst's
 * struct_size becomes today's. 0, or -1 with a sentence in why (src unknown size). */
int pkv_abi_copy_in(const pkv_abi_struct *s, const void *src, const void *defaults, void *dst, char *why,
                    size_t why_len);
/* pkv_abi_copy_in for a public entry point: PKV_ERR_INVALID_ARGUMENT with the sentence (pkv_fail). */
pkv_status pkv_abi_read(const pkv_context *ctx, const pkv_abi_struct *s, const void *src, const void *defaults,
                        void *dst);
/* The fields that dst's struct_size covers := src (the library's whole struct); dst keeps its size.
 * PKV_ERR_INVALID_ARGUMENT for an unknown size. */
pkv_status pkv_abi_write(const pkv_context *ctx, const pkv_abi_struct *s, const void *src, void *dst);
/* pkv_*_init: fills the first struct_size bytes of dst with the defaults. An unknown size still
 * zero-fills them and sets struct_size, so that the struct is refused, with a reason, where used. */
pkv_status pkv_abi_init(const pkv_abi_struct *s, const void *defaults, void *dst, size_t struct_size);

#endif
