/* A small strict JSON parser (RFC 8259 subset: no \u surrogate pairs beyond the BMP), enough for
 * safetensors headers. Builds a tree; jr_free releases it. */
#ifndef PKV_CLI_JSON_READ_H
#define PKV_CLI_JSON_READ_H

#include <stddef.h>
#include <stdint.h>

typedef enum jr_type { JR_NULL, JR_BOOL, JR_NUMBER, JR_STRING, JR_ARRAY, JR_OBJECT } jr_type;

typedef struct jr_value {
    jr_type type;
    int boolean;
    double number;
    int is_uint;          /* the number was written as a non-negative integer that fits uint64 */
    uint64_t uint;
    char *string;         /* JR_STRING, NUL-terminated */
    size_t count;         /* items of an array or object */
    struct jr_value *items;
    char **keys;          /* JR_OBJECT: keys[i] names items[i] */
} jr_value;

/* Parses text[0..len). Returns 0 on success, else -1 with a message in err. */
int jr_parse(const char *text, size_t len, jr_value *out, char *err, size_t err_len);
void jr_free(jr_value *v);
/* The member `key` of an object, or NULL. */
const jr_value *jr_get(const jr_value *obj, const char *key);

#endif
