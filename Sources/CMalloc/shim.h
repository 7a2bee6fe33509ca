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

static inline int reprise_mallctl_write_bool(reprise_mallctl_fn mallctl, const char *name, bool value) {
    return mallctl(name, NULL, NULL, &value, sizeof value);
}

static inline int reprise_mallctl_write_ssize(reprise_mallctl_fn mallctl, const char *name, ssize_t value) {
    return mallctl(name, NULL, NULL, &value, sizeof value);
}

static inline int reprise_mallctl_read_bool(reprise_mallctl_fn mallctl, const char *name, bool *value) {
    size_t length = sizeof *value;
    return mallctl(name, value, &length, NULL, 0);
}

static inline int reprise_mallctl_read_ssize(reprise_mallctl_fn mallctl, const char *name, ssize_t *value) {
    size_t length = sizeof *value;
    return mallctl(name, value, &length, NULL, 0);
}

static inline int reprise_mallctl_read_unsigned(reprise_mallctl_fn mallctl, const char *name, unsigned *value) {
    size_t length = sizeof *value;
    return mallctl(name, value, &length, NULL, 0);
}
