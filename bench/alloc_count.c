/*
 * alloc_count.c - LD_PRELOAD shim that counts heap allocation calls.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -shared -fPIC -o build/alloc_count.so \
 *      bench/alloc_count.c
 *   ALLOC_COUNT_OUT=counts.txt LD_PRELOAD=build/alloc_count.so CMD...
 *
 * Writes "malloc N calloc N realloc N memalign N free N bytes N" to
 * $ALLOC_COUNT_OUT when the process exits. glibc calls malloc through
 * its PLT, so allocations made inside libc (getline, fopen) and inside
 * other libraries (LMDB's dirty pages) are counted too. bench/replay.sh
 * uses it to check that a replay allocates nothing per event.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static unsigned long long n_malloc, n_calloc, n_realloc, n_memalign, n_free,
    n_bytes;

#define COUNT(var, n) __atomic_add_fetch(&(var), (n), __ATOMIC_RELAXED)

void *malloc(size_t n)
{
    COUNT(n_malloc, 1);
    COUNT(n_bytes, n);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    COUNT(n_calloc, 1);
    COUNT(n_bytes, a * b);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    COUNT(n_realloc, 1);
    COUNT(n_bytes, n);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (p)
        COUNT(n_free, 1);
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    COUNT(n_memalign, 1);
    COUNT(n_bytes, n);
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p;

    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    p = memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("ALLOC_COUNT_OUT");
    unsigned long long m = n_malloc, c = n_calloc, r = n_realloc,
                       a = n_memalign, f = n_free, b = n_bytes;
    FILE *out;

    if (!path || !(out = fopen(path, "w")))
        return;
    fprintf(out, "malloc %llu calloc %llu realloc %llu memalign %llu "
                 "free %llu bytes %llu\n", m, c, r, a, f, b);
    fclose(out);
}
