/* openat2(2) for the helpers that resolve paths inside a root they must not leave: the
 * syscall number and struct open_how as the kernel has them (glibc 2.36 has no wrapper). */
#ifndef BERTH_OPENAT2_H
#define BERTH_OPENAT2_H
#include <stdint.h>
#include <sys/syscall.h>
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct berth_open_how { uint64_t flags, mode, resolve; };
#define BERTH_RESOLVE_NO_MAGICLINKS 0x02
#define BERTH_RESOLVE_IN_ROOT 0x10

/* openat2(2): with RESOLVE_IN_ROOT it fails with EAGAIN when a rename or mount anywhere on the
 * system raced the lookup ("the caller may choose to retry"): retried, a bounded number of times. */
#include <errno.h>
#include <unistd.h>
static inline int berth_openat2(int dirfd, const char *path, struct berth_open_how *how) {
  int fd = -1;
  for (int i = 0; i < 128; i++) {
    fd = (int)syscall(SYS_openat2, dirfd, path, how, sizeof *how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return fd;
}
#endif
