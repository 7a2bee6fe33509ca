// glibc's malloc extensions (malloc_trim), which the Glibc module does not export, and the
// lookup of jemalloc's control interface when jemalloc serves malloc (linked into the `reprise`
// executables, or preloaded): the process's allocator is found at run time, so the libraries
// build and test the same with either.
#include <malloc.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/// jemalloc's `mallctl`.
typedef int (*reprise_mallctl_fn)(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/// jemalloc's `mallctl` when jemalloc is the process's allocator, else NULL. The handle is
/// glibc's RTLD_DEFAULT, `((void *) 0)`, which needs _GNU_SOURCE to be named.
static inline reprise_mallctl_fn reprise_jemalloc_mallctl(void) {
    return (reprise_mallctl_fn)dlsym((void *)0, "mallctl");
}

/// Writes `length` bytes at `value` to the setting `name` (the setting's own C type).
static inline int reprise_mallctl_write(reprise_mallctl_fn mallctl, const char *name, void *value, size_t length) {
    return mallctl(name, NULL, NULL, value, length);
}

/// Reads the setting `name` into `length` bytes at `value` (the setting's own C type).
static inline int reprise_mallctl_read(reprise_mallctl_fn mallctl, const char *name, void *value, size_t length) {
    return mallctl(name, value, &length, NULL, 0);
}
