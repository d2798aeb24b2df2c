/* The host allocator of the calling thread (host_alloc.h). */
/* this file calls the C library itself: no redirection (host_alloc_redirect.h) from here on */
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef aligned_alloc

#include "host_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local const pkv_allocator *current;

const pkv_allocator *pkv_alloc_enter(const pkv_allocator *a)
{
    const pkv_allocator *prev = current;
    current = a && a->malloc_fn ? a : NULL;
    return prev;
}

void pkv_alloc_leave(const pkv_allocator *const *prev) { current = *prev; }

const pkv_allocator *pkv_alloc_current(void) { return current; }

void *pkv_host_malloc(size_t size)
{
    const pkv_allocator *a = current;
    return a ? a->malloc_fn(size ? size : 1, a->user) : malloc(size);
}

void *pkv_host_calloc(size_t n, size_t size)
{
    const pkv_allocator *a = current;
    if (!a) return calloc(n, size);
    if (size && n > SIZE_MAX / size) return NULL;
    const size_t bytes = n * size;
    void *p = a->malloc_fn(bytes ? bytes : 1, a->user);
    if (p) memset(p, 0, bytes);
    return p;
}

void *pkv_host_realloc(void *ptr, size_t size)
{
    const pkv_allocator *a = current;
    return a ? a->realloc_fn(ptr, size ? size : 1, a->user) : realloc(ptr, size);
}

void pkv_host_free(void *ptr)
{
    const pkv_allocator *a = current;
    if (!ptr) return;
    if (a) a->free_fn(ptr, a->user);
    else free(ptr);
}

/* Over-allocates and keeps the start of the block just before the aligned pointer. */
void *pkv_host_aligned_alloc(size_t align, size_t size)
{
    if (align < sizeof(void *)) align = sizeof(void *);
    if (size > SIZE_MAX - align - sizeof(void *)) return NULL;
    uint8_t *raw = pkv_host_malloc(size + align + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t at = ((uintptr_t)(raw + sizeof(void *)) + align - 1) & ~(uintptr_t)(align - 1);
    memcpy((uint8_t *)at - sizeof(void *), &raw, sizeof raw);
    return (void *)at;
}

void pkv_host_aligned_free(void *ptr)
{
    if (!ptr) return;
    void *raw;
    memcpy(&raw, (uint8_t *)ptr - sizeof(void *), sizeof raw);
    pkv_host_free(raw);
}
