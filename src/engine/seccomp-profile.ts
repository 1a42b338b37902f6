/**
 * The default seccomp profile of docker and podman (moby's profiles/seccomp/default.json, as
 * containers/common ships it; Apache-2.0): rules as data, turned into a runtime-spec
 * linux.seccomp for a container's capabilities and architecture by defaultSeccomp().
 * Generated once from the profile; edit as data.
 */
import { BerthError } from '../base/errors.js';
import type { LinuxSeccomp, LinuxSyscall } from '../runtime/spec/types.js';

interface Rule {
  names: string[];
  action: LinuxSyscall['action'];
  errnoRet?: number;
  args?: NonNullable<LinuxSyscall['args']>;
  /** Only for these (docker's GOARCH names). */
  arches?: string[];
  /** Only when the container has all of these capabilities. */
  caps?: string[];
  /** Not when the container has any of these capabilities. */
  notCaps?: string[];
}

const DEFAULT_ACTION = 'SCMP_ACT_ERRNO';
const DEFAULT_ERRNO = 38;

const RULES: Rule[] = [
  {names: ['bdflush', 'io_pgetevents', 'kexec_file_load', 'kexec_load', 'migrate_pages', 'move_pages', 'nfsservctl', 'nice', 'oldfstat', 'oldlstat', 'oldolduname', 'oldstat', 'olduname', 'pciconfig_iobase', 'pciconfig_read', 'pciconfig_write', 'sgetmask', 'ssetmask', 'swapcontext', 'swapoff', 'swapon', 'sysfs', 'uselib', 'userfaultfd', 'ustat', 'vm86', 'vm86old', 'vmsplice'], action: 'SCMP_ACT_ERRNO', errnoRet: 1},
  {names: ['_llseek', '_newselect', 'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'capget', 'capset', 'chdir', 'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64', 'clone', 'clone3', 'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate', 'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat', 'fchown', 'fchown32', 'fchownat', 'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsconfig', 'fsetxattr', 'fsmount', 'fsopen', 'fspick', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate', 'ftruncate64', 'futex', 'futex_time64', 'futimesat', 'get_mempolicy', 'get_robust_list', 'get_thread_area', 'getcpu', 'getcwd', 'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getgroups', 'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getrlimit', 'getrusage', 'getsid', 'getsockname', 'getsockopt', 'gettid', 'gettimeofday', 'getuid', 'getuid32', 'getxattr', 'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'io_destroy', 'io_getevents', 'io_setup', 'io_submit', 'ioctl', 'ioprio_get', 'ioprio_set', 'ipc', 'keyctl', 'kill', 'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat', 'listen', 'listxattr', 'llistxattr', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'lstat64', 'madvise', 'mbind', 'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2', 'mount', 'mount_setattr', 'move_mount', 'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink', 'mremap', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap', 'name_to_handle_at', 'nanosleep', 'newfstatat', 'open', 'open_tree', 'openat', 'openat2', 'pause', 'pidfd_getfd', 'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pivot_root', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll', 'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease', 'process_vm_readv', 'process_vm_writev', 'pselect6', 'pselect6_time64', 'ptrace', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readdir', 'readlink', 'readlinkat', 'readv', 'reboot', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg', 'remap_file_pages', 'removexattr', 'rename', 'renameat', 'renameat2', 'restart_syscall', 'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_getaffinity', 'sched_getattr', 'sched_getparam', 'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity', 'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget', 'semop', 'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto', 'set_mempolicy', 'set_robust_list', 'set_thread_area', 'set_tid_address', 'setfsgid', 'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setitimer', 'setns', 'setpgid', 'setpriority', 'setregid', 'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32', 'setrlimit', 'setsid', 'setsockopt', 'setuid', 'setuid32', 'setxattr', 'shmat', 'shmctl', 'shmdt', 'shmget', 'shutdown', 'sigaction', 'sigaltstack', 'signal', 'signalfd', 'signalfd4', 'sigpending', 'sigprocmask', 'sigreturn', 'sigsuspend', 'socketcall', 'socketpair', 'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'syscall', 'sysinfo', 'syslog', 'tee', 'tgkill', 'time', 'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64', 'timerfd', 'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64', 'times', 'tkill', 'truncate', 'truncate64', 'ugetrlimit', 'umask', 'umount', 'umount2', 'uname', 'unlink', 'unlinkat', 'unshare', 'utime', 'utimensat', 'utimensat_time64', 'utimes', 'vfork', 'wait4', 'waitid', 'waitpid', 'write', 'writev'], action: 'SCMP_ACT_ALLOW'},
  {names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{index: 0, value: 0, op: 'SCMP_CMP_EQ'}]},
  {names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{index: 0, value: 8, op: 'SCMP_CMP_EQ'}]},
  {names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{index: 0, value: 131072, op: 'SCMP_CMP_EQ'}]},
  {names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{index: 0, value: 131080, op: 'SCMP_CMP_EQ'}]},
  {names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{index: 0, value: 4294967295, op: 'SCMP_CMP_EQ'}]},
  {names: ['sync_file_range2'], action: 'SCMP_ACT_ALLOW', arches: ['ppc64le']},
  {names: ['arm_fadvise64_64', 'arm_sync_file_range', 'breakpoint', 'cacheflush', 'set_tls', 'sync_file_range2'], action: 'SCMP_ACT_ALLOW', arches: ['arm', 'arm64']},
  {names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', arches: ['amd64', 'x32']},
  {names: ['modify_ldt'], action: 'SCMP_ACT_ALLOW', arches: ['amd64', 'x32', 'x86']},
  {names: ['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr'], action: 'SCMP_ACT_ALLOW', arches: ['s390', 's390x']},
  {names: ['open_by_handle_at'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_DAC_READ_SEARCH']},
  {names: ['open_by_handle_at'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_DAC_READ_SEARCH']},
  {names: ['bpf', 'fanotify_init', 'lookup_dcookie', 'perf_event_open', 'quotactl', 'setdomainname', 'sethostname', 'setns'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_ADMIN']},
  {names: ['bpf', 'fanotify_init', 'lookup_dcookie', 'perf_event_open', 'quotactl', 'setdomainname', 'sethostname', 'setns'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_ADMIN']},
  {names: ['chroot'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_CHROOT']},
  {names: ['chroot'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_CHROOT']},
  {names: ['delete_module', 'finit_module', 'init_module', 'query_module'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_MODULE']},
  {names: ['delete_module', 'finit_module', 'init_module', 'query_module'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_MODULE']},
  {names: ['acct'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_PACCT']},
  {names: ['acct'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_PACCT']},
  {names: ['kcmp', 'process_madvise'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_PTRACE']},
  {names: ['kcmp', 'process_madvise'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_PTRACE']},
  {names: ['ioperm', 'iopl'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_RAWIO']},
  {names: ['ioperm', 'iopl'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_RAWIO']},
  {names: ['clock_settime', 'clock_settime64', 'settimeofday', 'stime'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_TIME']},
  {names: ['clock_settime', 'clock_settime64', 'settimeofday', 'stime'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_TIME']},
  {names: ['vhangup'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_SYS_TTY_CONFIG']},
  {names: ['vhangup'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, notCaps: ['CAP_SYS_TTY_CONFIG']},
  {names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [{index: 0, value: 16, op: 'SCMP_CMP_EQ'}, {index: 2, value: 9, op: 'SCMP_CMP_EQ'}], notCaps: ['CAP_AUDIT_WRITE']},
  {names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{index: 2, value: 9, op: 'SCMP_CMP_NE'}], notCaps: ['CAP_AUDIT_WRITE']},
  {names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{index: 0, value: 16, op: 'SCMP_CMP_NE'}], notCaps: ['CAP_AUDIT_WRITE']},
  {names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{index: 2, value: 9, op: 'SCMP_CMP_NE'}], notCaps: ['CAP_AUDIT_WRITE']},
  {names: ['socket'], action: 'SCMP_ACT_ALLOW', caps: ['CAP_AUDIT_WRITE']},
];

/** Node's process.arch → the seccomp architectures a container of that arch may use. */
const ARCHES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  mips64: ['SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64N32'],
  mips64el: ['SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64N32'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
};

/** Node's process.arch → docker's GOARCH names used by the rules. */
const GOARCH: Record<string, string[]> = { x64: ['amd64', 'x32', 'x86'], arm64: ['arm64', 'arm'], ppc64: ['ppc64le'], s390x: ['s390x', 's390'], riscv64: ['riscv64'] };

/**
 * The profile for a container with capabilities `caps` (CAP_ names) on `arch`: the rules whose
 * conditions hold, in order (docker's profile loader does the same with includes/excludes).
 */
export function defaultSeccomp(caps: readonly string[], arch: string = process.arch): LinuxSeccomp {
  return rulesToSeccomp(RULES, DEFAULT_ACTION, DEFAULT_ERRNO, caps, arch);
}

function rulesToSeccomp(rules: Rule[], defaultAction: LinuxSeccomp['defaultAction'], defaultErrnoRet: number | undefined, caps: readonly string[], arch: string, arches?: LinuxSeccomp['architectures']): LinuxSeccomp {
  const have = new Set(caps);
  const goarch = GOARCH[arch] ?? [];
  const syscalls: LinuxSyscall[] = [];
  for (const r of rules) {
    if (r.arches && !r.arches.some((a) => goarch.includes(a))) continue;
    if (r.caps && !r.caps.every((c) => have.has(c))) continue;
    if (r.notCaps && r.notCaps.some((c) => have.has(c))) continue;
    syscalls.push({ names: r.names, action: r.action, ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}), ...(r.args ? { args: r.args } : {}) });
  }
  return {
    defaultAction,
    ...(defaultErrnoRet !== undefined ? { defaultErrnoRet } : {}),
    ...(arches ?? ARCHES[arch] ? { architectures: (arches ?? ARCHES[arch]) as LinuxSeccomp['architectures'] } : {}),
    syscalls,
  };
}

interface DockerProfile {
  defaultAction?: LinuxSeccomp['defaultAction'];
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls?: {
    name?: string; names?: string[]; action: LinuxSyscall['action']; errnoRet?: number; args?: LinuxSyscall['args'] | null;
    includes?: { arches?: string[]; caps?: string[] }; excludes?: { arches?: string[]; caps?: string[] };
  }[];
}

/** A profile in docker's format (--security-opt seccomp=FILE) for these capabilities. */
export function dockerProfileToSeccomp(text: string, caps: readonly string[], arch: string = process.arch): LinuxSeccomp {
  let doc: DockerProfile;
  try {
    doc = JSON.parse(text) as DockerProfile;
  } catch (err) {
    throw new BerthError('USAGE', `the seccomp profile is not JSON: ${(err as Error).message}`);
  }
  if (!doc.defaultAction) throw new BerthError('USAGE', 'the seccomp profile has no defaultAction: give a profile in docker\'s format');
  const rules: Rule[] = (doc.syscalls ?? []).map((s) => ({
    names: s.names ?? (s.name ? [s.name] : []), action: s.action,
    ...(s.errnoRet !== undefined ? { errnoRet: s.errnoRet } : {}),
    ...(s.args?.length ? { args: s.args } : {}),
    ...(s.includes?.arches?.length ? { arches: s.includes.arches } : {}),
    ...(s.includes?.caps?.length ? { caps: s.includes.caps } : {}),
    ...(s.excludes?.caps?.length ? { notCaps: s.excludes.caps } : {}),
  }));
  let arches: LinuxSeccomp['architectures'] | undefined;
  const native = ARCHES[arch]?.[0];
  const entry = doc.archMap?.find((a) => a.architecture === native);
  if (entry) arches = [entry.architecture, ...(entry.subArchitectures ?? [])] as LinuxSeccomp['architectures'];
  else if (doc.architectures?.length) arches = doc.architectures as LinuxSeccomp['architectures'];
  return rulesToSeccomp(rules, doc.defaultAction, doc.defaultErrnoRet, caps, arch, arches ?? []);
}
