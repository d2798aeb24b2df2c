/* libFuzzer target: the llama2.c checkpoint reader (bench/model/llama2_checkpoint.c, llama2_load). */
#include "fuzz_file.h"
#include "llama2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llama2_model m;
    char err[512];
    if (llama2_load(fuzz_write_file(".bin", data, size), &m, err, sizeof err) == 0) llama2_free(&m);
    return 0;
}
