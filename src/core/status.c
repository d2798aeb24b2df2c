#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[1024];

static const char *const status_names[PKV_STATUS_COUNT] = {
    [PKV_OK] = "PKV_OK: success",
    [PKV_ERR_INVALID_ARGUMENT] = "PKV_ERR_INVALID_ARGUMENT: a null pointer or a value out of range",
    [PKV_ERR_INVALID_CONFIG] = "PKV_ERR_INVALID_CONFIG: the cache configuration is not valid",
    [PKV_ERR_NONFINITE] = "PKV_ERR_NONFINITE: NaN, Inf or a value beyond fp16 range in the input",
    [PKV_ERR_SHAPE] = "PKV_ERR_SHAPE: shapes do not fit the cache",
    [PKV_ERR_UNKNOWN_SEQUENCE] = "PKV_ERR_UNKNOWN_SEQUENCE: no such sequence (never created or freed)",
    [PKV_ERR_LAYER_RANGE] = "PKV_ERR_LAYER_RANGE: layer index out of range",
    [PKV_ERR_OUT_OF_BUDGET] = "PKV_ERR_OUT_OF_BUDGET: the cache's memory budget is full",
    [PKV_ERR_OUT_OF_DEVICE_MEMORY] = "PKV_ERR_OUT_OF_DEVICE_MEMORY: the device could not allocate memory",
    [PKV_ERR_OUT_OF_HOST_MEMORY] = "PKV_ERR_OUT_OF_HOST_MEMORY: host memory allocation failed",
    [PKV_ERR_BACKEND_UNAVAILABLE] = "PKV_ERR_BACKEND_UNAVAILABLE: backend not built, driver missing or no device",
    [PKV_ERR_DEVICE] = "PKV_ERR_DEVICE: the driver reported a failure",
    [PKV_ERR_IO] = "PKV_ERR_IO: a file could not be opened, read or written",
    [PKV_ERR_CORRUPT_FILE] = "PKV_ERR_CORRUPT_FILE: the file is truncated, damaged or not a PatternKV file",
    [PKV_ERR_UNSUPPORTED] = "PKV_ERR_UNSUPPORTED: not supported by this backend or build",
};

const char *pkv_status_string(pkv_status s)
{
    if ((int)s < 0 || s >= PKV_STATUS_COUNT) return "PKV_ERR_UNKNOWN: not a pkv_status value";
    return status_names[s];
}

const char *pkv_last_error(void) { return last_error; }
void pkv_clear_error(void) { last_error[0] = 0; }
unsigned pkv_version_number(void) { return PKV_VERSION_NUMBER; }
const char *pkv_version_string(void) { return PKV_VERSION_STRING; }

static void emit(const pkv_context *ctx, pkv_log_level level, const char *msg)
{
    pkv_log_level max = ctx ? ctx->params.log_level : PKV_LOG_WARN;
    if (level > max) return;
    if (ctx && ctx->params.log) {
        ctx->params.log(level, msg, ctx->params.log_user);
        return;
    }
    static const char *const names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "patternkv %s: %s\n", names[level], msg);
}

void pkv_log(const pkv_context *ctx, pkv_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(ctx, level, msg);
}

pkv_status pkv_fail(const pkv_context *ctx, pkv_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    /* Errors returned to the caller are logged at debug level only: the status is the report. */
    emit(ctx, PKV_LOG_DEBUG, last_error);
    return s;
}
