/** Linux constants the planner translates config.json names into (values from the kernel's uapi headers). */

export const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

export const CLONE_FLAGS: Record<string, number> = {
  mount: 0x00020000, uts: 0x04000000, ipc: 0x08000000, user: 0x10000000, pid: 0x20000000,
  network: 0x40000000, cgroup: 0x02000000, time: 0x00000080,
};

/** config-linux.md namespace type → /proc/PID/ns/ entry. */
export const NS_PROC_NAME: Record<string, string> = {
  mount: 'mnt', uts: 'uts', ipc: 'ipc', user: 'user', pid: 'pid', network: 'net', cgroup: 'cgroup', time: 'time',
};

export const MS = {
  RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, SYNCHRONOUS: 16, REMOUNT: 32, MANDLOCK: 64, DIRSYNC: 128,
  NOSYMFOLLOW: 256, NOATIME: 1024, NODIRATIME: 2048, BIND: 4096, REC: 16384, SILENT: 32768,
  UNBINDABLE: 1 << 17, PRIVATE: 1 << 18, SLAVE: 1 << 19, SHARED: 1 << 20, RELATIME: 1 << 21,
  I_VERSION: 1 << 23, STRICTATIME: 1 << 24, LAZYTIME: 1 << 25,
} as const;

/** Mount options that set (or, with clear, reset) a mount(2) flag: config.md "Linux mount options". */
export const MOUNT_FLAG_OPTIONS: Record<string, { set?: number; clear?: number }> = {
  defaults: {}, ro: { set: MS.RDONLY }, rw: { clear: MS.RDONLY }, nosuid: { set: MS.NOSUID }, suid: { clear: MS.NOSUID },
  nodev: { set: MS.NODEV }, dev: { clear: MS.NODEV }, noexec: { set: MS.NOEXEC }, exec: { clear: MS.NOEXEC },
  sync: { set: MS.SYNCHRONOUS }, async: { clear: MS.SYNCHRONOUS }, remount: { set: MS.REMOUNT },
  mand: { set: MS.MANDLOCK }, nomand: { clear: MS.MANDLOCK }, dirsync: { set: MS.DIRSYNC },
  nosymfollow: { set: MS.NOSYMFOLLOW }, symfollow: { clear: MS.NOSYMFOLLOW },
  noatime: { set: MS.NOATIME }, atime: { clear: MS.NOATIME }, nodiratime: { set: MS.NODIRATIME },
  diratime: { clear: MS.NODIRATIME }, bind: { set: MS.BIND }, rbind: { set: MS.BIND | MS.REC },
  silent: { set: MS.SILENT }, loud: { clear: MS.SILENT }, relatime: { set: MS.RELATIME },
  norelatime: { clear: MS.RELATIME }, iversion: { set: MS.I_VERSION }, noiversion: { clear: MS.I_VERSION },
  strictatime: { set: MS.STRICTATIME }, nostrictatime: { clear: MS.STRICTATIME },
  lazytime: { set: MS.LAZYTIME }, nolazytime: { clear: MS.LAZYTIME },
};

export const PROPAGATION_OPTIONS: Record<string, number> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC, slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC,
  shared: MS.SHARED, rshared: MS.SHARED | MS.REC, unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE | MS.REC,
};

const ATTR = { RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, ATIME_MASK: 0x70, NOATIME: 0x10, STRICTATIME: 0x20, NODIRATIME: 0x80, NOSYMFOLLOW: 0x200000 };

/** Recursive options, applied with mount_setattr(AT_RECURSIVE): config.md footnote 3. */
export const RECURSIVE_OPTIONS: Record<string, { set: number; clear: number }> = {
  rro: { set: ATTR.RDONLY, clear: 0 }, rrw: { set: 0, clear: ATTR.RDONLY },
  rnosuid: { set: ATTR.NOSUID, clear: 0 }, rsuid: { set: 0, clear: ATTR.NOSUID },
  rnodev: { set: ATTR.NODEV, clear: 0 }, rdev: { set: 0, clear: ATTR.NODEV },
  rnoexec: { set: ATTR.NOEXEC, clear: 0 }, rexec: { set: 0, clear: ATTR.NOEXEC },
  rnodiratime: { set: ATTR.NODIRATIME, clear: 0 }, rdiratime: { set: 0, clear: ATTR.NODIRATIME },
  rnosymfollow: { set: ATTR.NOSYMFOLLOW, clear: 0 }, rsymfollow: { set: 0, clear: ATTR.NOSYMFOLLOW },
  rnoatime: { set: ATTR.NOATIME, clear: ATTR.ATIME_MASK }, rstrictatime: { set: ATTR.STRICTATIME, clear: ATTR.ATIME_MASK },
  rrelatime: { set: 0, clear: ATTR.ATIME_MASK }, ratime: { set: 0, clear: ATTR.ATIME_MASK },
  rnorelatime: { set: ATTR.STRICTATIME, clear: ATTR.ATIME_MASK }, rnostrictatime: { set: 0, clear: ATTR.ATIME_MASK },
};

export const SCHED_POLICIES: Record<string, number> = {
  SCHED_OTHER: 0, SCHED_FIFO: 1, SCHED_RR: 2, SCHED_BATCH: 3, SCHED_ISO: 4, SCHED_IDLE: 5, SCHED_DEADLINE: 6,
};
export const SCHED_FLAGS: Record<string, number> = {
  SCHED_FLAG_RESET_ON_FORK: 1, SCHED_FLAG_RECLAIM: 2, SCHED_FLAG_DL_OVERRUN: 4, SCHED_FLAG_KEEP_POLICY: 8,
  SCHED_FLAG_KEEP_PARAMS: 16, SCHED_FLAG_UTIL_CLAMP_MIN: 32, SCHED_FLAG_UTIL_CLAMP_MAX: 64,
};
export const IOPRIO_CLASSES: Record<string, number> = { IOPRIO_CLASS_RT: 1, IOPRIO_CLASS_BE: 2, IOPRIO_CLASS_IDLE: 3 };

export const PERSONALITY_DOMAINS: Record<string, number> = { LINUX: 0, LINUX32: 0x0008 };
export const PERSONALITY_FLAGS: Record<string, number> = {
  UNAME26: 0x0020000, ADDR_NO_RANDOMIZE: 0x0040000, FDPIC_FUNCPTRS: 0x0080000, MMAP_PAGE_ZERO: 0x0100000,
  ADDR_COMPAT_LAYOUT: 0x0200000, READ_IMPLIES_EXEC: 0x0400000, ADDR_LIMIT_32BIT: 0x0800000,
  SHORT_INODE: 0x1000000, WHOLE_SECONDS: 0x2000000, STICKY_TIMEOUTS: 0x4000000, ADDR_LIMIT_3GB: 0x8000000,
};
