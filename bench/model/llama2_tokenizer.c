/* llama2.c's tokenizer.bin and its BPE encoder (the same merges as run.c's encode()), for models whose
 * vocabulary is larger than the 256 bytes. */
#include "llama2_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const llama2_tokenizer *sort_ctx; /* qsort has no user pointer in C11 */

static int by_piece(const void *a, const void *b)
{
    return strcmp(sort_ctx->pieces[*(const int *)a], sort_ctx->pieces[*(const int *)b]);
}

void llama2_tokenizer_free(llama2_tokenizer *t)
{
    if (t->pieces)
        for (int i = 0; i < t->vocab_size; i++) free(t->pieces[i]);
    free(t->pieces), free(t->scores), free(t->sorted);
    memset(t, 0, sizeof *t);
}

int llama2_tokenizer_load(const char *path, int vocab_size, llama2_tokenizer *t, char *err, size_t err_len)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open the tokenizer", path);
        return -1;
    }
    t->vocab_size = vocab_size;
    t->pieces = calloc((size_t)vocab_size, sizeof *t->pieces);
    t->scores = malloc((size_t)vocab_size * sizeof *t->scores);
    t->sorted = malloc((size_t)vocab_size * sizeof *t->sorted);
    t->byte_base = -1;
    int32_t max_len;
    if (!t->pieces || !t->scores || !t->sorted || fread(&max_len, 4, 1, f) != 1 || max_len <= 0 || max_len > 4096)
        goto bad;
    for (int i = 0; i < vocab_size; i++) {
        int32_t len;
        if (fread(&t->scores[i], 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > max_len) goto bad;
        t->pieces[i] = malloc((size_t)len + 1);
        if (!t->pieces[i] || fread(t->pieces[i], 1, (size_t)len, f) != (size_t)len) goto bad;
        t->pieces[i][len] = '\0';
        if (t->byte_base < 0 && strcmp(t->pieces[i], "<0x00>") == 0) t->byte_base = i;
        t->sorted[i] = i;
    }
    fclose(f);
    sort_ctx = t;
    qsort(t->sorted, (size_t)vocab_size, sizeof *t->sorted, by_piece);
    return 0;
bad:
    fclose(f);
    llama2_tokenizer_free(t);
    snprintf(err, err_len, "%s: truncated or not a llama2.c tokenizer for %d tokens", path, vocab_size);
    return -1;
}

static int lookup(const llama2_tokenizer *t, const char *s)
{
    int lo = 0, hi = t->vocab_size - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, cmp = strcmp(s, t->pieces[t->sorted[mid]]);
        if (cmp == 0) return t->sorted[mid];
        if (cmp < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

int llama2_encode(const llama2_tokenizer *t, const char *text, size_t len, int bos, int *tokens)
{
    size_t n = 0, longest = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        size_t l = strlen(t->pieces[i]);
        if (l > longest) longest = l;
    }
    char *buf = malloc(2 * longest + 8);
    if (!buf) return -1;
    if (bos) tokens[n++] = 1;
    if (bos && len > 0) {
        int space = lookup(t, " ");
        if (space >= 0) tokens[n++] = space;
    }
    for (size_t i = 0; i < len;) {
        size_t cp = 1; /* bytes of this UTF-8 code point */
        while (cp < 4 && i + cp < len && ((unsigned char)text[i + cp] & 0xC0) == 0x80) cp++;
        memcpy(buf, text + i, cp);
        buf[cp] = '\0';
        int id = lookup(t, buf);
        if (id >= 0) {
            tokens[n++] = id;
        } else {
            for (size_t b = 0; b < cp; b++) {
                int base = t->byte_base >= 0 ? t->byte_base : 3;
                int bid = base + (unsigned char)text[i + b];
                if (bid >= t->vocab_size) {
                    free(buf);
                    return -1;
                }
                tokens[n++] = bid;
            }
        }
        i += cp;
    }
    for (;;) { /* merge the best-scoring adjacent pair until none merges */
        float best = -1e30f;
        int best_id = -1;
        size_t best_at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            snprintf(buf, 2 * longest + 8, "%s%s", t->pieces[tokens[i]], t->pieces[tokens[i + 1]]);
            int id = lookup(t, buf);
            if (id >= 0 && t->scores[id] > best) best = t->scores[id], best_id = id, best_at = i;
        }
        if (best_id < 0) break;
        tokens[best_at] = best_id;
        memmove(tokens + best_at + 1, tokens + best_at + 2, (n - best_at - 2) * sizeof *tokens);
        n--;
    }
    free(buf);
    return (int)n;
}

size_t llama2_token_bytes(const llama2_tokenizer *t, int token)
{
    const char *p = t->pieces[token];
    unsigned byte;
    if (strlen(p) == 6 && sscanf(p, "<0x%02X>", &byte) == 1) return 1;
    return strlen(p);
}
