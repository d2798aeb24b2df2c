/* Force-included into every library source (CMakeLists.txt: -include): the C library's allocation
 * functions become the library's (host_alloc.h), so that every host allocation goes through the
 * application's allocator hooks. Declares nothing from the C library itself, so that each source's
 * own feature macros (_POSIX_C_SOURCE, ...) still come first. */
#ifndef PKV_HOST_ALLOC_REDIRECT_H
#define PKV_HOST_ALLOC_REDIRECT_H
#include "host_alloc.h"
#define malloc(n) pkv_host_malloc(n)
#define calloc(n, s) pkv_host_calloc(n, s)
#define realloc(p, n) pkv_host_realloc(p, n)
#define free(p) pkv_host_free(p)
#define aligned_alloc(a, n) pkv_host_aligned_alloc(a, n)
#endif
