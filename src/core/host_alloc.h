/* Host allocations of the library through the application's allocator (pkv_context_params.host_malloc,
 * host_realloc, host_free, host_alloc_user), or the C library's when none is given.
 *
 * Every library source is compiled with host_alloc_redirect.h force-included (CMakeLists.txt), which
 * turns malloc, calloc, realloc, free and aligned_alloc into the functions below, so no allocation
 * can bypass the hooks. Which allocator they use is the calling thread's current one: each public
 * function that works on a context (or a cache, or params) enters its context's allocator for the
 * duration of the call (PKV_ALLOC_SCOPE), and the CPU backend's worker threads take the allocator of
 * the call they work for. Outside a scope (no context yet, internal helpers called by the CLI) the C
 * library's functions are used. Memory is always freed on the context that allocated it (within the
 * call, or, for the CPU backend's scratch kept between calls, when the context is freed), so the
 * allocator that frees is the one that allocated. */
#ifndef PKV_HOST_ALLOC_H
#define PKV_HOST_ALLOC_H

#include <stddef.h>

typedef struct pkv_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} pkv_allocator;

/* Makes `a` (NULL: the C library) the calling thread's allocator; returns the previous one. */
const pkv_allocator *pkv_alloc_enter(const pkv_allocator *a);
void pkv_alloc_leave(const pkv_allocator *const *prev);
const pkv_allocator *pkv_alloc_current(void);
/* For the rest of the enclosing block, `a`; the previous allocator is restored when it ends. */
#define PKV_ALLOC_SCOPE(a)                                                                                    \
    const pkv_allocator *pkv_alloc_prev_ __attribute__((cleanup(pkv_alloc_leave), unused)) = pkv_alloc_enter(a)

void *pkv_host_malloc(size_t size);
void *pkv_host_calloc(size_t n, size_t size);
void *pkv_host_realloc(void *ptr, size_t size);
void pkv_host_free(void *ptr);
/* 64-byte (or `align`, a power of two <= 4096) aligned memory; free it with pkv_host_aligned_free. */
void *pkv_host_aligned_alloc(size_t align, size_t size);
void pkv_host_aligned_free(void *ptr);

#endif
