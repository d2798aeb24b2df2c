/* The stable-ABI rule of patternkv.h: public structs carry their size; the library refuses a size
 * it does not know with PKV_ERR_INVALID_ARGUMENT and a message, reads only the fields an older
 * (smaller) struct has and writes only those. */
#include <stddef.h>
#include <string.h>

#include "abi.h"
#include "testutil.h"

static void expect_refused(pkv_status st, const char *what)
{
    assert_int_equal(st, PKV_ERR_INVALID_ARGUMENT);
    if (!strstr(pkv_last_error(), what)) fail_msg("message '%s' does not name %s", pkv_last_error(), what);
    assert_non_null(strstr(pkv_last_error(), "struct_size"));
}

static void defaults_carry_the_applications_size(void **state)
{
    (void)state;
    pkv_context_params cp = pkv_context_params_default();
    pkv_cache_config cc = pkv_cache_config_default();
    pkv_attention_params ap = pkv_attention_params_default();
    pkv_append_params pp = pkv_append_params_default();
    assert_int_equal(cp.struct_size, sizeof cp);
    assert_int_equal(cc.struct_size, sizeof cc);
    assert_int_equal(ap.struct_size, sizeof ap);
    assert_int_equal(pp.struct_size, sizeof pp);
    assert_int_equal(pp.dtype, PKV_F32);
    assert_int_equal(pp.n_layers, 0);
    assert_null(ap.k_new);
    assert_int_equal(ap.kv_new_dtype, PKV_F32);
    assert_int_equal(cp.device_index, -1);
    assert_int_equal(cc.head_dim, 128);
    assert_int_equal(cc.quantizer, PKV_QUANTIZER_AUTO); /* MSE for PATTERN, MINMAX for DIRECT */
    /* the mode's defaults (issue 14): PATTERN G 64 with banks frozen at the 24 mined patterns */
    assert_int_equal(cc.group_size, 0);
    assert_int_equal(cc.bank_capacity, 0);
    assert_int_equal(cc.n_patterns, 24);
    pkv_cache_config r = cc;
    assert_int_equal(pkv_cache_config_resolve(&r), PKV_OK);
    assert_int_equal(r.group_size, 64);
    assert_int_equal(r.window, 128); /* with the mode's group, the window stays 128 tokens */
    assert_int_equal(r.bank_capacity, 24);
    assert_int_equal(r.quantizer, PKV_QUANTIZER_MSE);
    r = cc, r.mode = PKV_MODE_DIRECT, r.n_patterns = 40;
    assert_int_equal(pkv_cache_config_resolve(&r), PKV_OK);
    assert_int_equal(r.group_size, 128);
    assert_int_equal(r.bank_capacity, 40);
    assert_int_equal(r.quantizer, PKV_QUANTIZER_MINMAX);
    r = cc, r.group_size = 32, r.bank_capacity = 100, r.quantizer = PKV_QUANTIZER_MSE_V; /* given: kept */
    assert_int_equal(pkv_cache_config_resolve(&r), PKV_OK);
    assert_int_equal(r.group_size, 32);
    assert_int_equal(r.window, 0); /* = G, as before */
    assert_int_equal(r.bank_capacity, 100);
    assert_int_equal(r.quantizer, PKV_QUANTIZER_MSE_V);
    assert_int_equal(pkv_cache_config_resolve(NULL), PKV_ERR_INVALID_ARGUMENT);
    /* the paper's method, one call away */
    pkv_cache_config paper = pkv_cache_config_paper();
    assert_int_equal(paper.struct_size, sizeof paper);
    assert_int_equal(paper.group_size, 128);
    assert_int_equal(paper.n_patterns, 32);
    assert_int_equal(paper.bank_capacity, 256);
    assert_int_equal(paper.quantizer, PKV_QUANTIZER_MINMAX);
    assert_int_equal(paper.k_assign, PKV_K_ASSIGN_MINMAX);
    assert_int_equal(paper.head_dim, cc.head_dim);
    assert_int_equal(paper.memory_budget, cc.memory_budget);
    assert_int_equal(ap.q_len, 1);
    /* an unknown size: zero-filled, the size kept, refused with a reason */
    unsigned char big[sizeof(pkv_cache_config) + 16];
    memset(big, 0xAB, sizeof big);
    expect_refused(pkv_cache_config_init((pkv_cache_config *)big, sizeof big), "pkv_cache_config");
    assert_int_equal(pkv_abi_size_of(big), sizeof big);
    for (size_t i = 4; i < sizeof big; i++) assert_int_equal(big[i], 0);
}

static void unknown_sizes_are_refused_with_a_reason(void **state)
{
    (void)state;
    pkv_context *ctx = NULL;
    pkv_context_params cp = pkv_context_params_default();
    cp.struct_size = 0;
    expect_refused(pkv_context_create(&cp, &ctx), "pkv_context_params");
    assert_null(ctx);
    cp.struct_size = sizeof cp + 8; /* an application built against a newer header */
    expect_refused(pkv_context_create(&cp, &ctx), "pkv_context_params");
    assert_non_null(strstr(pkv_last_error(), "does not know"));
    expect_refused(pkv_list_devices(&cp, NULL, 0, &(size_t){0}), "pkv_context_params");

    ctx = tu_context();
    pkv_cache *c = NULL;
    pkv_cache_config cc = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    cc.struct_size = 3;
    expect_refused(pkv_cache_create(ctx, &cc, &c), "pkv_cache_config");
    assert_null(c);
    cc.struct_size = sizeof cc;
    TU_OK(pkv_cache_create(ctx, &cc, &c));

    pkv_seq s;
    TU_OK(pkv_seq_create(c, &s));
    float k[40 * 32] = {0}, v[40 * 32] = {0}, q[32] = {0}, o[32];
    TU_OK(pkv_append(c, s, 0, 40, k, v, PKV_F32));
    pkv_attention_params ap = pkv_attention_params_default();
    ap.seqs = &s, ap.n_seqs = 1, ap.n_q_heads = 1;
    TU_OK(pkv_attention(c, &ap, q, o));
    /* an application built against 0.1.0, before k_new, v_new and kv_new_dtype: its struct is
     * accepted and the fields it lacks keep their defaults (garbage after it is never read) */
    unsigned char old_ap[sizeof ap];
    memset(old_ap, 0xCD, sizeof old_ap);
    memcpy(old_ap, &ap, offsetof(pkv_attention_params, k_new));
    ((pkv_attention_params *)old_ap)->struct_size = (uint32_t)offsetof(pkv_attention_params, k_new);
    TU_OK(pkv_attention(c, (const pkv_attention_params *)old_ap, q, o));
    ap.struct_size = 0;
    expect_refused(pkv_attention(c, &ap, q, o), "pkv_attention_params");
    pkv_append_params pp = pkv_append_params_default();
    pp.seq = s, pp.n_tokens = 1;
    const void *kp[1] = {k}, *vp[1] = {v};
    TU_OK(pkv_append_layers(c, &pp, kp, vp));
    pp.struct_size = sizeof pp + 4;
    expect_refused(pkv_append_layers(c, &pp, kp, vp), "pkv_append_params");

    /* pkv_context_params of 0.1.0, before device_page_bytes and staging_bytes: accepted, defaults */
    pkv_context_params old_cp = pkv_context_params_default();
    old_cp.backend = PKV_BACKEND_CPU;
    unsigned char old_cpb[sizeof old_cp];
    memset(old_cpb, 0xCD, sizeof old_cpb);
    memcpy(old_cpb, &old_cp, offsetof(pkv_context_params, device_page_bytes));
    ((pkv_context_params *)old_cpb)->struct_size = (uint32_t)offsetof(pkv_context_params, device_page_bytes);
    pkv_context *old_ctx = NULL;
    TU_OK(pkv_context_create((const pkv_context_params *)old_cpb, &old_ctx));
    TU_OK(pkv_context_free(old_ctx));
    /* ... and with device_page_bytes and staging_bytes, before the host allocator hooks (0xCD past
     * them would be taken for hook pointers if the size were not honoured) */
    memset(old_cpb, 0xCD, sizeof old_cpb);
    memcpy(old_cpb, &old_cp, offsetof(pkv_context_params, host_malloc));
    ((pkv_context_params *)old_cpb)->struct_size = (uint32_t)offsetof(pkv_context_params, host_malloc);
    TU_OK(pkv_context_create((const pkv_context_params *)old_cpb, &old_ctx));
    TU_OK(pkv_context_free(old_ctx));

    pkv_cache_stats st = {.struct_size = 0};
    expect_refused(pkv_cache_stats_get(c, &st), "pkv_cache_stats");
    pkv_cache_config back = {.struct_size = sizeof back - 1};
    expect_refused(pkv_cache_get_config(c, &back), "pkv_cache_config");
    back.struct_size = sizeof back;
    TU_OK(pkv_cache_get_config(c, &back));
    assert_int_equal(back.head_dim, 32);
    assert_int_equal(back.struct_size, sizeof back);

    pkv_device_info info = {.struct_size = 0};
    expect_refused(pkv_context_device(ctx, &info, NULL, 0), "pkv_device_info");
    pkv_device_info devs[4] = {{.struct_size = 0}};
    size_t n;
    expect_refused(pkv_list_devices(NULL, devs, 4, &n), "pkv_device_info");
    devs[0].struct_size = sizeof devs[0];
    TU_OK(pkv_list_devices(NULL, devs, 4, &n));
    for (size_t i = 0; i < n && i < 4; i++) assert_int_equal(devs[i].struct_size, sizeof devs[i]);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
}

/* Engine handles name their backend by their type: one at a time, and not against another backend. */
static void external_handles_are_typed(void **state)
{
    (void)state;
    pkv_context *ctx = NULL;
    pkv_context_params cp = pkv_context_params_default();
    cp.vulkan_external = (const struct pkv_vulkan_external *)&cp; /* never read: refused before */
    cp.opencl_external = (const struct pkv_opencl_external *)&cp;
    assert_int_equal(pkv_context_create(&cp, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "both"));
    cp.opencl_external = NULL;
    cp.backend = PKV_BACKEND_CPU;
    assert_int_equal(pkv_context_create(&cp, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "vulkan_external given with backend cpu"));
    assert_null(ctx);
}

/* The mechanism across versions, on a struct that has had two sizes. */
typedef struct v1 { uint32_t struct_size; int32_t a; } v1;
typedef struct v2 { uint32_t struct_size; int32_t a; double b; } v2;
static const pkv_abi_struct two_versions = {"test_struct", "sizeof", 2, {sizeof(v1), sizeof(v2)}};

static void older_sizes_read_and_write_only_their_fields(void **state)
{
    (void)state;
    const v2 defaults = {sizeof(v2), 7, 2.5};
    v1 old = {sizeof old, 42};
    v2 full;
    char why[256];
    assert_int_equal(pkv_abi_copy_in(&two_versions, &old, &defaults, &full, why, sizeof why), 0);
    assert_int_equal(full.struct_size, sizeof full);
    assert_int_equal(full.a, 42);      /* read from the application */
    assert_true(full.b == 2.5);        /* beyond its size: the default */

    struct { v1 s; uint32_t guard; } out = {{sizeof(v1), 0}, 0xC0FFEEu};
    const v2 lib = {sizeof(v2), 9, 1.0};
    TU_OK(pkv_abi_write(NULL, &two_versions, &lib, &out.s));
    assert_int_equal(out.s.a, 9);
    assert_int_equal(out.s.struct_size, sizeof(v1)); /* its own size kept */
    assert_int_equal(out.guard, 0xC0FFEEu);          /* nothing written past it */

    old.struct_size = sizeof(v1) + 1;
    assert_int_equal(pkv_abi_copy_in(&two_versions, &old, &defaults, &full, why, sizeof why), -1);
    assert_non_null(strstr(why, "test_struct.struct_size"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_carry_the_applications_size),
        cmocka_unit_test(unknown_sizes_are_refused_with_a_reason),
        cmocka_unit_test(external_handles_are_typed),
        cmocka_unit_test(older_sizes_read_and_write_only_their_fields),
    };
    return tu_run_tests(tests, NULL, NULL);
}
