// Preloaded into the measured process by benchmarks/callgrind. Valgrind 3.19's rt_sigsuspend
// wrapper writes into the caller's signal mask, and libdispatch (dispatch_main, which Swift's
// async main ends in) passes a mask in read-only memory: valgrind then dies with SIGSEGV. This
// sigsuspend hands the kernel a writable copy instead; it changes nothing else.
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, _NSIG / 8);
}
