/* pkv devices [--verbose]: every device of every backend that loads, the one auto picks and why,
 * and with --verbose the cold and warm time to a first attention result (pipeline/program creation
 * with an empty and with a warm on-disk cache) plus the backends' log messages. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "commands.h"

#define MAX_DEVICES 64

static const char *type_name(pkv_device_type t)
{
    switch (t) {
    case PKV_DEVICE_DISCRETE_GPU: return "discrete GPU";
    case PKV_DEVICE_INTEGRATED_GPU: return "integrated GPU";
    case PKV_DEVICE_VIRTUAL_GPU: return "virtual GPU";
    case PKV_DEVICE_CPU: return "CPU";
    default: return "other";
    }
}

static void features(uint32_t f, char *buf, size_t n)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        {PKV_FEATURE_FP16_MATH, "fp16-math"},     {PKV_FEATURE_STORAGE_8BIT, "8bit-storage"},
        {PKV_FEATURE_STORAGE_16BIT, "16bit-storage"}, {PKV_FEATURE_INT_DOT, "int-dot"},
        {PKV_FEATURE_COOPERATIVE_MATRIX, "coop-matrix"}, {PKV_FEATURE_SUBGROUPS, "subgroups"},
    };
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (f & names[i].bit) {
            size_t l = strlen(buf);
            snprintf(buf + l, n - l, "%s%s", l ? " " : "", names[i].name);
        }
    if (!buf[0]) snprintf(buf, n, "none");
}

static void log_to_stdout(pkv_log_level level, const char *message, void *user)
{
    (void)user;
    static const char *names[] = {"error", "warn", "info", "debug"};
    printf("  log %s: %s\n", names[level <= PKV_LOG_DEBUG ? level : PKV_LOG_DEBUG], message);
}

int pkv_cmd_devices(int argc, char **argv)
{
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: pkv devices [--verbose]\nLists the devices of every backend that loads here.\n"
                   "--verbose adds the backends' messages and the cold/warm time to a first result.\n");
            return 0;
        } else {
            fprintf(stderr, "pkv devices: unknown argument '%s' (usage: pkv devices [--verbose])\n", argv[i]);
            return 2;
        }
    }
    pkv_context_params p = pkv_context_params_default();
    if (verbose) {
        p.log = log_to_stdout;
        p.log_level = PKV_LOG_INFO;
    }
    pkv_device_info dev[MAX_DEVICES] = {{.struct_size = sizeof(pkv_device_info)}};
    size_t count = 0;
    pkv_status s = pkv_list_devices(&p, dev, MAX_DEVICES, &count);
    if (s != PKV_OK) {
        fprintf(stderr, "pkv devices: %s: %s\n", pkv_status_string(s), pkv_last_error());
        return 1;
    }
    if (count > MAX_DEVICES) count = MAX_DEVICES;
    printf("%zu device%s\n", count, count == 1 ? "" : "s");
    for (size_t i = 0; i < count; i++) {
        char feat[160];
        features(dev[i].features, feat, sizeof feat);
        printf("%-7s #%u  %s (%s)\n", pkv_backend_name(dev[i].backend), dev[i].index, dev[i].name,
               type_name(dev[i].type));
        printf("          driver: %s; subgroup size: %u; memory: ", dev[i].driver[0] ? dev[i].driver : "n/a",
               dev[i].subgroup_size);
        if (dev[i].memory_bytes) printf("%.2f GiB", (double)dev[i].memory_bytes / (1u << 30));
        else printf("n/a");
        printf("; features: %s\n", feat);
        if (verbose) {
            pkv_context_params q = pkv_context_params_default();
            q.backend = dev[i].backend;
            q.device_index = (int)dev[i].index;
            double cold = 0, warm = 0;
            char err[256];
            if (bench_startup_times(&q, &cold, &warm, err, sizeof err) == 0)
                printf("          first result: %.1f ms cold (empty pipeline/program cache), %.1f ms warm\n", cold,
                       warm);
            else
                printf("          first result: failed: %s\n", err);
        }
    }
    pkv_context *ctx = NULL;
    pkv_context_params a = pkv_context_params_default();
    if (verbose) {
        a.log = log_to_stdout;
        a.log_level = PKV_LOG_INFO;
    }
    s = pkv_context_create(&a, &ctx);
    if (s != PKV_OK) {
        printf("auto: no usable device: %s: %s\n", pkv_status_string(s), pkv_last_error());
        return 1;
    }
    pkv_device_info info = {.struct_size = sizeof info};
    char why[512] = "";
    if (pkv_context_device(ctx, &info, why, sizeof why) == PKV_OK)
        printf("auto picks: %s #%u %s%s%s\n", pkv_backend_name(info.backend), info.index, info.name, why[0] ? ": " : "",
               why);
    pkv_context_free(ctx);
    return 0;
}
