#define _POSIX_C_SOURCE 200809L
/* Building the OpenCL program once per context, with program binaries cached on disk per device
 * and driver: <cache_dir>/opencl-<key hash>.bin = header (magic, key, sizes, CRC-32) + binary,
 * written to a temp file then renamed. A file that fails any check is ignored with a warning. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "internal.h"
#include "ocl_internal.h"
#include "parallel.h"
#include "profile.h"

extern const char pkv_ocl_source[], pkv_ocl_attn_source[];
extern const unsigned long pkv_ocl_source_len, pkv_ocl_attn_source_len;

static const char *const kernel_names[PKV_K_COUNT] = {
    "ocl_km_init", "ocl_km_assign", "ocl_km_partial", "ocl_km_reduce", "ocl_km_finish", "ocl_km_store",
    "ocl_centre", "ocl_assign", "ocl_encode", "ocl_quant_search", "ocl_window_write", "ocl_stream_read", "ocl_fma_probe",
    "ocl_stage",
};

/* Which program (ocl_common.cl's PKV_OCL_GROUP) holds each kernel: 1 mining, 2 flush and encoding and
 * window writes, 3 the rest. */
static const int kernel_group[PKV_K_COUNT] = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3};

#define CACHE_MAGIC "PKVOCLB1"
#define MAX_KEY 4096

typedef struct cache_header {
    char magic[8];
    uint32_t key_len;
    uint32_t crc;      /* CRC-32 of key then binary */
    uint64_t bin_len;
} cache_header;

static uint64_t fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Everything a binary depends on: device, driver, build options and the kernel source. */
static void cache_key(const pkv_ocl *o, const char *src, size_t src_len, const char *options, char *key, size_t cap)
{
    char dev_name[256] = "";
    o->cl->clGetDeviceInfo(o->dev, CL_DEVICE_NAME, sizeof dev_name, dev_name, NULL);
    dev_name[sizeof dev_name - 1] = 0;
    int n = snprintf(key, cap, "patternkv-opencl-1|%s|%s|%s|%s|%s|src=%016llx", o->platform_version, dev_name,
                     o->device_version, o->driver_version, options, (unsigned long long)fnv1a(src, src_len));
    if (n < 0 || (size_t)n >= cap) key[0] = 0; /* cannot happen (versions < 128, options < 768): no cache then */
}

static void cache_path(const pkv_ocl *o, const char *key, char *path, size_t cap)
{
    snprintf(path, cap, "%s/opencl-%016llx.bin", o->cache_dir, (unsigned long long)fnv1a(key, strlen(key)));
}

/* Reads a cached binary; NULL when absent (silently) or invalid (with a warning). */
static unsigned char *cache_read(const pkv_ocl *o, const char *path, const char *key, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cache_header hd;
    unsigned char *bin = NULL;
    char *stored_key = NULL;
    const char *problem = NULL;
    size_t klen = strlen(key);
    if (fread(&hd, sizeof hd, 1, f) != 1 || memcmp(hd.magic, CACHE_MAGIC, 8) != 0) problem = "bad header";
    else if (hd.key_len != klen || hd.bin_len == 0 || hd.bin_len > ((uint64_t)1 << 30)) problem = "foreign key or size";
    if (!problem) {
        stored_key = malloc(klen + 1);
        bin = malloc((size_t)hd.bin_len);
        if (!stored_key || !bin) problem = "out of memory";
        else if (fread(stored_key, 1, klen, f) != klen || fread(bin, 1, (size_t)hd.bin_len, f) != hd.bin_len)
            problem = "truncated";
        else if (memcmp(stored_key, key, klen) != 0) problem = "built for another device, driver or source";
        else if (pkv_crc32(pkv_crc32(0, stored_key, klen), bin, (size_t)hd.bin_len) != hd.crc)
            problem = "checksum mismatch";
        else if (fgetc(f) != EOF) problem = "trailing bytes";
    }
    fclose(f);
    free(stored_key);
    if (problem) {
        pkv_ocl_log(o, PKV_LOG_WARN, "opencl: ignoring program cache %s (%s); rebuilding", path, problem);
        free(bin);
        return NULL;
    }
    *len = (size_t)hd.bin_len;
    return bin;
}

static int mkdirs(const char *dir)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Writes the cache file atomically: temp file in the same directory, then rename. */
static void cache_write(const pkv_ocl *o, const char *path, const char *key, const unsigned char *bin, size_t len)
{
    if (mkdirs(o->cache_dir) != 0) {
        pkv_ocl_log(o, PKV_LOG_WARN, "opencl: cannot create program cache dir %s: %s", o->cache_dir, strerror(errno));
        return;
    }
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%p", path, (long)getpid(), (const void *)o);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        pkv_ocl_log(o, PKV_LOG_WARN, "opencl: cannot write program cache %s: %s", tmp, strerror(errno));
        return;
    }
    cache_header hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, CACHE_MAGIC, 8);
    hd.key_len = (uint32_t)strlen(key);
    hd.bin_len = len;
    hd.crc = pkv_crc32(pkv_crc32(0, key, hd.key_len), bin, len);
    int ok = fwrite(&hd, sizeof hd, 1, f) == 1 && fwrite(key, 1, hd.key_len, f) == hd.key_len &&
             fwrite(bin, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        pkv_ocl_log(o, PKV_LOG_WARN, "opencl: cannot write program cache %s: %s", path, strerror(errno));
        remove(tmp);
    }
}

static void log_build_failure(const pkv_ocl *o, cl_program prog, char *why, size_t why_len, cl_int err)
{
    size_t n = 0;
    o->cl->clGetProgramBuildInfo(prog, o->dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *buildlog = calloc(n + 1, 1);
    if (buildlog) o->cl->clGetProgramBuildInfo(prog, o->dev, CL_PROGRAM_BUILD_LOG, n, buildlog, NULL);
    pkv_ocl_log(o, PKV_LOG_ERROR, "opencl: kernel build failed (%s):\n%s", pkv_ocl_error_name(err),
                buildlog ? buildlog : "");
    snprintf(why, why_len, "kernel build failed on this device (%s); see the log",
             pkv_ocl_error_name(err));
    free(buildlog);
}

/* One program to build: its source and options, then what the build gave. */
typedef struct ocl_build {
    const char *name; /* for the profile line */
    const char *src;
    size_t src_len;
    char options[768];
    char key[MAX_KEY], path[1200];
    unsigned char *bin; /* a cached binary read before the build, or NULL */
    size_t bin_len;
    cl_program prog;
    cl_int err, create_err, bin_err; /* the build's; clCreateProgramWithSource's; the cached binary's */
    int cached; /* built from the cached binary */
    size_t out_len; /* a program built from source: its binary's size, asked for on the build's thread */
    double ms;
} ocl_build;

typedef struct build_ctx {
    pkv_ocl *o;
    ocl_build *jobs;
} build_ctx;

/* The driver's part of one build (on its own thread: only driver calls, no host allocation of the
 * library's, so that the library's allocations keep their order): from the cached binary when the
 * driver takes it, else from source. */
static void build_task(void *arg, uint32_t i)
{
    const build_ctx *bc = arg;
    const pkv_ocl_api *cl = bc->o->cl;
    ocl_build *j = &bc->jobs[i];
    const double t0 = pkv_clock_s();
    cl_int err = CL_SUCCESS;
    if (j->bin) {
        const unsigned char *bins[1] = {j->bin};
        cl_int bin_status = CL_SUCCESS;
        cl_program prog = cl->clCreateProgramWithBinary(bc->o->ctx, 1, &bc->o->dev, &j->bin_len, bins, &bin_status, &err);
        if (err == CL_SUCCESS && bin_status == CL_SUCCESS) {
            err = cl->clBuildProgram(prog, 1, &bc->o->dev, j->options, NULL, NULL);
            if (err == CL_SUCCESS) j->prog = prog, j->cached = 1;
        }
        if (!j->cached) {
            if (prog) cl->clReleaseProgram(prog);
            j->bin_err = err != CL_SUCCESS ? err : bin_status;
        }
    }
    if (!j->prog) {
        j->prog = cl->clCreateProgramWithSource(bc->o->ctx, 1, &j->src, &j->src_len, &j->create_err);
        if (j->create_err != CL_SUCCESS) j->prog = NULL;
        else j->err = cl->clBuildProgram(j->prog, 1, &bc->o->dev, j->options, NULL, NULL);
        /* a binary to cache: its size now (PoCL compiles every kernel of the program for it, seconds
         * each on a CPU: on this thread, alongside the other builds; the copy is the caller's) */
        if (j->prog && j->err == CL_SUCCESS && bc->o->cache_dir[0] && j->key[0] &&
            cl->clGetProgramInfo(j->prog, CL_PROGRAM_BINARY_SIZES, sizeof j->out_len, &j->out_len, NULL) != CL_SUCCESS)
            j->out_len = 0;
    }
    j->ms = (pkv_clock_s() - t0) * 1e3;
}

/* Builds n programs, each from the cache when a valid binary is there, else from source (then
 * cached), the driver's builds in parallel (one thread each, up to one per core; a driver compiles
 * on the calling thread: NVIDIA's compiler takes hundreds of milliseconds for the attention kernel
 * alone). PKV_OPENCL_PARALLEL_BUILD=0 builds them one after another. Cache files are read before and
 * written after the builds, on the calling thread. On failure every program is released and `why`
 * says why. */
static pkv_status build_programs(pkv_ocl *o, ocl_build *jobs, uint32_t n, const char *what, char *why, size_t why_len)
{
    const pkv_ocl_api *cl = o->cl;
    const double t0 = pkv_clock_s();
    for (uint32_t i = 0; i < n; i++) {
        ocl_build *j = &jobs[i];
        j->prog = NULL, j->bin = NULL, j->err = j->create_err = j->bin_err = CL_SUCCESS, j->cached = 0, j->out_len = 0;
        cache_key(o, j->src, j->src_len, j->options, j->key, sizeof j->key);
        cache_path(o, j->key, j->path, sizeof j->path);
        if (o->cache_dir[0] && j->key[0]) j->bin = cache_read(o, j->path, j->key, &j->bin_len);
    }
    build_ctx bc = {o, jobs};
    const char *par = getenv("PKV_OPENCL_PARALLEL_BUILD");
    if (n > 1 && !(par && *par == '0')) pkv_parallel_tasks(n, build_task, &bc);
    else
        for (uint32_t i = 0; i < n; i++) build_task(&bc, i);
    pkv_status st = PKV_OK;
    for (uint32_t i = 0; i < n; i++) {
        ocl_build *j = &jobs[i];
        if (j->bin) {
            free(j->bin);
            j->bin = NULL;
            if (!j->cached)
                pkv_ocl_log(o, PKV_LOG_WARN, "opencl: driver rejected cached program %s (%s); rebuilding", j->path,
                            pkv_ocl_error_name(j->bin_err));
        }
        if (st != PKV_OK) continue;
        if (j->create_err != CL_SUCCESS) {
            snprintf(why, why_len, "clCreateProgramWithSource failed (%s)", pkv_ocl_error_name(j->create_err));
            st = PKV_ERR_BACKEND_UNAVAILABLE;
        } else if (j->err != CL_SUCCESS) {
            log_build_failure(o, j->prog, why, why_len, j->err);
            st = PKV_ERR_BACKEND_UNAVAILABLE;
        }
    }
    if (st != PKV_OK) {
        for (uint32_t i = 0; i < n; i++)
            if (jobs[i].prog) cl->clReleaseProgram(jobs[i].prog), jobs[i].prog = NULL;
        return st;
    }
    for (uint32_t i = 0; i < n && o->cache_dir[0]; i++) { /* built from source: into the cache */
        ocl_build *j = &jobs[i];
        const size_t bin_len = j->out_len;
        if (j->cached || bin_len == 0) continue;
        unsigned char *bin = malloc(bin_len);
        unsigned char *bins[1] = {bin};
        if (bin && cl->clGetProgramInfo(j->prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS)
            cache_write(o, j->path, j->key, bin, bin_len);
        free(bin);
    }
    if (pkv_prof_enabled()) { /* what start-up spends on which program (PKV_PROFILE) */
        char each[512];
        size_t len = 0;
        each[0] = 0;
        for (uint32_t i = 0; i < n && len < sizeof each; i++)
            len += (size_t)snprintf(each + len, sizeof each - len, "%s%s %.3f ms (%s)", i ? ", " : "", jobs[i].name,
                                    jobs[i].ms, jobs[i].cached ? "cached binary" : "source");
        fprintf(stderr, "pkv profile: opencl %s: %u program%s built in %.3f ms (%s; each: %s)\n", what, n, n > 1 ? "s" : "",
                (pkv_clock_s() - t0) * 1e3, n > 1 && !(par && *par == '0') ? "in parallel" : "one after another", each);
    }
    return PKV_OK;
}

static void release_attn(pkv_ocl *o, pkv_ocl_attn_program *a)
{
    cl_kernel *k[PKV_OCL_ATTN_PROGS] = {&a->qc, &a->attn, &a->merge, &a->logits, &a->values};
    for (int i = 0; i < PKV_OCL_ATTN_PROGS; i++) {
        if (*k[i]) o->cl->clReleaseKernel(*k[i]);
        if (a->prog[i]) o->cl->clReleaseProgram(a->prog[i]);
        *k[i] = NULL, a->prog[i] = NULL;
    }
}

static void release_kernels(pkv_ocl *o)
{
    for (int i = 0; i < PKV_K_COUNT; i++)
        if (o->k[i]) {
            o->cl->clReleaseKernel(o->k[i]);
            o->k[i] = NULL;
        }
}

void pkv_ocl_release_program(pkv_ocl *o)
{
    release_kernels(o);
    for (int i = 0; i < PKV_OCL_GROUPS; i++) {
        if (o->prog[i]) o->cl->clReleaseProgram(o->prog[i]);
        o->prog[i] = NULL;
    }
    for (uint32_t i = 0; i < o->n_attn; i++) release_attn(o, &o->attn[i]);
    o->n_attn = 0;
}

/* The attention programs of a shape that `a` lacks, of those asked for (bits 1 << PKV_OCL_ATTN_QC, ..),
 * built together and their kernels made. */
static pkv_status attn_build(pkv_ocl *o, pkv_ocl_attn_program *a, unsigned want)
{
    static const char *const names[PKV_OCL_ATTN_PROGS] = {"ocl_attn_qc", "ocl_attn", "ocl_attn_merge", "ocl_attn_logits",
                                                          "ocl_attn_values"};
    cl_kernel *kern[PKV_OCL_ATTN_PROGS] = {&a->qc, &a->attn, &a->merge, &a->logits, &a->values};
    const uint32_t *shape = a->shape;
    const char *extra = getenv("PKV_OPENCL_BUILD_OPTIONS");
    ocl_build jobs[PKV_OCL_ATTN_PROGS];
    int which[PKV_OCL_ATTN_PROGS];
    uint32_t n = 0;
    for (int i = 0; i < PKV_OCL_ATTN_PROGS; i++) {
        if (!(want & (1u << i)) || a->prog[i]) continue;
        ocl_build *j = &jobs[n];
        j->name = names[i], j->src = pkv_ocl_attn_source, j->src_len = (size_t)pkv_ocl_attn_source_len;
        snprintf(j->options, sizeof j->options,
                 "-cl-std=CL1.2 -DPKV_ATTN_KERNEL=%d -DD=%u -DG=%u -DKBITS=%u -DVBITS=%u -DMODE=%u -DNR=%u -DCAP=%u -DSTAGE_V=%u "
                 "-DVCH=%u -DSTAGE_K=%u -DBPS=%u -DPREFETCH=%u -DHIST_FIXED=%u -DVB=%u -DSPLIT=%u %s",
                 i + 1, shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], shape[6], shape[7], shape[8], shape[9],
                 shape[10], shape[11], shape[12], shape[13], shape[14], extra ? extra : "");
        which[n++] = i;
    }
    if (!n) return PKV_OK;
    char why[256] = "";
    if (build_programs(o, jobs, n, "attention", why, sizeof why) != PKV_OK)
        return pkv_fail(NULL, PKV_ERR_DEVICE, "opencl attention: %s", why);
    cl_int err = CL_SUCCESS;
    for (uint32_t i = 0; i < n; i++) {
        a->prog[which[i]] = jobs[i].prog;
        cl_int e = CL_SUCCESS;
        *kern[which[i]] = o->cl->clCreateKernel(jobs[i].prog, names[which[i]], &e);
        if (e != CL_SUCCESS) *kern[which[i]] = NULL;
        if (err == CL_SUCCESS) err = e;
    }
    /* the work-group size the device allows the main kernel (split: the smaller of its two passes') */
    size_t kwg = SIZE_MAX, kw = 0;
    cl_kernel mains[3] = {a->attn, a->logits, a->values};
    for (int i = 0; i < 3 && err == CL_SUCCESS; i++)
        if (mains[i] && o->cl->clGetKernelWorkGroupInfo(mains[i], o->dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof kw, &kw, NULL) == CL_SUCCESS)
            kwg = kw < kwg ? kw : kwg;
    const char *show = getenv("PKV_OPENCL_BUILD_LOG"); /* a tuning aid: e.g. with -cl-nv-verbose */
    for (uint32_t i = 0; i < n && show && *show && *show != '0'; i++) {
        char log[8192] = "";
        o->cl->clGetProgramBuildInfo(jobs[i].prog, o->dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        pkv_ocl_log(o, PKV_LOG_WARN, "opencl: attention program (%s):\n%s", jobs[i].options, log);
    }
    if (err != CL_SUCCESS || (kwg != SIZE_MAX && kwg < shape[1] * shape[10]))
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "opencl attention: the device cannot run work-groups of %u items for this shape (%s)",
                        shape[1] * shape[10], pkv_ocl_error_name(err));
    return PKV_OK;
}

pkv_status pkv_ocl_attn_program_get(pkv_ocl *o, const uint32_t shape[PKV_OCL_ATTN_SHAPE], int separate_merge,
                                    pkv_ocl_attn_program **out)
{
    /* the q.C pre-pass only in PATTERN mode, the merge kernel only where it runs as a launch of its
     * own (PKV_ATTN_SEPARATE_MERGE): the first attention builds only what it runs */
    const unsigned runs = shape[14] ? 1u << PKV_OCL_ATTN_LOGITS | 1u << PKV_OCL_ATTN_VALUES : 1u << PKV_OCL_ATTN_MAIN;
    const unsigned want = runs | (shape[4] == PKV_MODE_PATTERN ? 1u << PKV_OCL_ATTN_QC : 0u) |
                          (separate_merge ? 1u << PKV_OCL_ATTN_MERGE : 0u);
    for (uint32_t i = 0; i < o->n_attn; i++)
        if (memcmp(o->attn[i].shape, shape, sizeof o->attn[i].shape) == 0) {
            pkv_status s = attn_build(o, &o->attn[i], want); /* a kernel not built before */
            if (s == PKV_OK) *out = &o->attn[i];
            return s;
        }
    if (o->n_attn == PKV_OCL_MAX_ATTN_PROGRAMS) { /* keep the newest half */
        for (uint32_t i = 0; i < PKV_OCL_MAX_ATTN_PROGRAMS / 2; i++) release_attn(o, &o->attn[i]);
        memmove(o->attn, o->attn + PKV_OCL_MAX_ATTN_PROGRAMS / 2, sizeof o->attn / 2);
        o->n_attn = PKV_OCL_MAX_ATTN_PROGRAMS / 2;
    }
    pkv_ocl_attn_program a;
    memset(&a, 0, sizeof a);
    memcpy(a.shape, shape, sizeof a.shape);
    pkv_status s = attn_build(o, &a, want);
    if (s != PKV_OK) {
        release_attn(o, &a);
        return s;
    }
    o->attn[o->n_attn] = a;
    *out = &o->attn[o->n_attn++];
    return PKV_OK;
}

static pkv_status make_kernels(pkv_ocl *o, char *why, size_t why_len)
{
    for (int i = 0; i < PKV_K_COUNT; i++) {
        cl_int err = CL_SUCCESS;
        o->k[i] = o->cl->clCreateKernel(o->prog[kernel_group[i] - 1], kernel_names[i], &err);
        if (err != CL_SUCCESS) {
            snprintf(why, why_len, "kernel %s missing (%s)", kernel_names[i], pkv_ocl_error_name(err));
            return PKV_ERR_BACKEND_UNAVAILABLE;
        }
        size_t kwg = 0;
        o->cl->clGetKernelWorkGroupInfo(o->k[i], o->dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL);
        size_t wg = 128; /* a power of two (the reductions need it), <= 128 (MAX_WG of the kernels) */
        while (wg > 1 && (wg > o->max_wg || (kwg && wg > kwg))) wg /= 2;
        o->wg[i] = wg;
        if (i == PKV_K_QSEARCH) /* a multiple of PKV_MSE_COARSE, picked per op (ocl_ops.c qsearch_runs) */
            o->wg[i] = kwg && kwg < o->max_wg ? kwg : o->max_wg;
    }
    return PKV_OK;
}

/* 1 when the compiled probe fused a * b + c into an fma despite FP_CONTRACT OFF. */
static int probe_fuses(pkv_ocl *o)
{
    const float in[3] = {1.0f + 0x1p-12f, 1.0f + 0x1p-12f, -(1.0f + 0x1p-11f)};
    float res[2] = {0, 0};
    cl_int err = CL_SUCCESS;
    cl_mem bin = o->cl->clCreateBuffer(o->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof in, (void *)in, &err);
    cl_mem bout = err == CL_SUCCESS ? o->cl->clCreateBuffer(o->ctx, CL_MEM_WRITE_ONLY, sizeof res, NULL, &err) : NULL;
    if (err == CL_SUCCESS) err = pkv_ocl_args(o, o->k[PKV_K_FMA_PROBE], 2, sizeof bin, &bin, sizeof bout, &bout);
    if (err == CL_SUCCESS) err = pkv_ocl_launch(o, o->k[PKV_K_FMA_PROBE], 1, 1);
    if (err == CL_SUCCESS)
        err = o->cl->clEnqueueReadBuffer(o->q, bout, CL_TRUE, 0, sizeof res, res, 0, NULL, NULL);
    if (bin) o->cl->clReleaseMemObject(bin);
    if (bout) o->cl->clReleaseMemObject(bout);
    return err == CL_SUCCESS && res[0] != 0.0f; /* rounded separately: exactly 0 */
}

pkv_status pkv_ocl_build(pkv_ocl *o, char *why, size_t why_len)
{
    /* PKV_OPENCL_BUILD_OPTIONS adds compiler options (a debugging aid, e.g. -cl-mad-enable to check
     * the contraction fallback). */
    const char *extra = getenv("PKV_OPENCL_BUILD_OPTIONS");
    char options[2][512];
    snprintf(options[0], sizeof options[0], "-cl-std=CL1.2 %s", extra ? extra : "");
    snprintf(options[1], sizeof options[1], "-cl-std=CL1.2 -DPKV_OCL_NO_CONTRACT %s", extra ? extra : "");
    for (int attempt = 0; attempt < 2; attempt++) {
        static const char *const names[PKV_OCL_GROUPS] = {"mining", "encoding", "misc"};
        ocl_build j[PKV_OCL_GROUPS];
        for (int g = 0; g < PKV_OCL_GROUPS; g++) {
            j[g] = (ocl_build){.name = names[g], .src = pkv_ocl_source, .src_len = (size_t)pkv_ocl_source_len};
            snprintf(j[g].options, sizeof j[g].options, "-DPKV_OCL_GROUP=%d %s", g + 1, options[attempt]);
        }
        pkv_status bs = build_programs(o, j, PKV_OCL_GROUPS, "write path", why, why_len);
        if (bs != PKV_OK) return bs;
        for (int g = 0; g < PKV_OCL_GROUPS; g++) o->prog[g] = j[g].prog;
        pkv_status st = make_kernels(o, why, why_len);
        if (st != PKV_OK) return st;
        if (attempt == 1 || !probe_fuses(o)) {
            if (attempt == 1 && probe_fuses(o))
                pkv_ocl_log(o, PKV_LOG_WARN, "opencl: the compiler fuses multiply-add even through volatile; "
                                             "codes may differ from the CPU backend in the last bit");
            return PKV_OK;
        }
        pkv_ocl_log(o, PKV_LOG_INFO, "opencl: the compiler fuses a*b+c despite FP_CONTRACT OFF; rebuilding with "
                                     "explicitly rounded products");
        pkv_ocl_release_program(o);
    }
    return PKV_OK;
}
