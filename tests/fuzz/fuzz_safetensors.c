/* libFuzzer target: the safetensors reader (bench/pkv/safetensors.c, cli_safetensors_load), asked for
 * the tensor names the seeds use. */
#include "fuzz_file.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"k", "v", "layer0.k", "x"};
    const char *path = fuzz_write_file(".safetensors", data, size);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cli_tensor t;
        char err[256];
        if (cli_safetensors_load(path, names[i], &t, err, sizeof err) == 0) {
            volatile float sink = 0;
            const uint64_t n = cli_tensor_numel(&t);
            for (uint64_t j = 0; j < n; j++) sink += t.data[j];
            (void)sink;
            cli_tensor_free(&t);
        }
    }
    return 0;
}
