/* Public entry points for measuring: read bandwidth and op timing, delegated to the backend. */
#include "internal.h"

pkv_status pkv_measure_read_bandwidth(pkv_context *ctx, uint64_t bytes, double *gbps)
{
    PKV_ALLOC_SCOPE(PKV_CTX_ALLOC(ctx));
    if (!ctx || !gbps) return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_measure_read_bandwidth: null argument");
    if (!ctx->be->iface->measure_read)
        return pkv_fail(ctx, PKV_ERR_UNSUPPORTED, "backend %s cannot measure read bandwidth", pkv_backend_name(ctx->be->info.backend));
    if (bytes == 0) bytes = ctx->be->info.backend == PKV_BACKEND_CPU ? 256ull << 20 : 1ull << 30;
    return ctx->be->iface->measure_read(ctx->be, bytes, gbps);
}

pkv_status pkv_last_op_time(const pkv_context *ctx, double *ms)
{
    if (!ctx || !ms) return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_last_op_time: null argument");
    double t = ctx->last_op_ms;
    if (t < 0) return pkv_fail(ctx, PKV_ERR_UNSUPPORTED, "no op timing available on this backend");
    *ms = t;
    return PKV_OK;
}
