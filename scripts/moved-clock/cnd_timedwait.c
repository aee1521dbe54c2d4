// Preloaded before libfaketime by scripts/moved-clock/run.sh. glibc's C11 cnd_timedwait, which librdkafka
// waits with, calls glibc's internal pthread_cond_timedwait, where libfaketime cannot reach: the deadline,
// computed from the moved CLOCK_REALTIME, would be waited for on the kernel's clock, days or years ahead, and
// every Kafka client would hang at its first timed wait. This moves the deadline back onto the kernel's clock.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/syscall.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mtx, const struct timespec *restrict deadline) {
    static int (*next)(cnd_t *, mtx_t *, const struct timespec *);
    if (!next) {
        next = (int (*)(cnd_t *, mtx_t *, const struct timespec *))dlsym(RTLD_NEXT, "cnd_timedwait");
    }
    struct timespec moved, kernel;
    clock_gettime(CLOCK_REALTIME, &moved); // libfaketime's
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &kernel);
    long long offset_ns = (long long)(moved.tv_sec - kernel.tv_sec) * 1000000000LL + (moved.tv_nsec - kernel.tv_nsec);
    long long at_ns = (long long)deadline->tv_sec * 1000000000LL + deadline->tv_nsec - offset_ns;
    struct timespec real_deadline = {.tv_sec = at_ns / 1000000000LL, .tv_nsec = at_ns % 1000000000LL};
    return next(cond, mtx, &real_deadline);
}
