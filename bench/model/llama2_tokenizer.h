/* llama2.c's tokenizer (tokenizer.bin) and BPE encoder, for vocabularies beyond the 256 bytes. */
#ifndef PKV_MODEL_LLAMA2_TOKENIZER_H
#define PKV_MODEL_LLAMA2_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct llama2_tokenizer {
    int vocab_size;
    char **pieces;
    float *scores;
    int *sorted;     /* indices sorted by piece, for lookup */
    int byte_base;   /* id of "<0x00>" when the vocabulary has byte-fallback tokens, else -1 */
} llama2_tokenizer;

/* tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 length, bytes. */
int llama2_tokenizer_load(const char *path, int vocab_size, llama2_tokenizer *t, char *err, size_t err_len);
void llama2_tokenizer_free(llama2_tokenizer *t);
/* BPE-encodes text as run.c does (with bos: BOS = 1 first and a leading space; then greedy merges
 * by score). The merges are quadratic in len: encode long texts line by line. tokens needs len + 2
 * entries. Returns the number of tokens, or -1 on a byte with no token. */
int llama2_encode(const llama2_tokenizer *t, const char *text, size_t len, int bos, int *tokens);
/* Bytes of text that a token stands for (byte tokens: 1). */
size_t llama2_token_bytes(const llama2_tokenizer *t, int token);

#endif
