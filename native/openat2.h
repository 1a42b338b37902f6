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
#endif
