/* libFuzzer target: the .npy reader (bench/pkv/npy.c, cli_npy_load). */
#include "fuzz_file.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cli_tensor t;
    char err[256];
    if (cli_npy_load(fuzz_write_file(".npy", data, size), &t, err, sizeof err) == 0) {
        volatile float sink = 0;
        const uint64_t n = cli_tensor_numel(&t);
        for (uint64_t i = 0; i < n; i++) sink += t.data[i]; /* every element was written */
        (void)sink;
        cli_tensor_free(&t);
    }
    return 0;
}
