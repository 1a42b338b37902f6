/** The features document (features.md, features-linux.md) for `berth-runtime features`. */
import { existsSync, readFileSync } from 'node:fs';
import { CAPABILITIES, MOUNT_FLAG_OPTIONS, PROPAGATION_OPTIONS, RECURSIVE_OPTIONS } from './linux-constants.js';
import { cgroupMounts } from './cgroups/host.js';
import { LINUX_NAMESPACE_TYPES, type Features } from './spec/types.js';
import { OCI_VERSION } from './spec/version.js';

export function features(): Features {
  const hier = cgroupMounts();
  const lsm = existsSync('/sys/kernel/security/lsm') ? readFileSync('/sys/kernel/security/lsm', 'utf8') : '';
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: [...Object.keys(MOUNT_FLAG_OPTIONS), ...Object.keys(PROPAGATION_OPTIONS), ...Object.keys(RECURSIVE_OPTIONS)].sort(),
    linux: {
      namespaces: [...LINUX_NAMESPACE_TYPES],
      capabilities: [...CAPABILITIES],
      cgroup: { v1: hier.some((h) => h.type === 'cgroup'), v2: hier.some((h) => h.type === 'cgroup2'), systemd: false, systemdUser: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP'],
        operators: ['SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE'],
        archs: ['SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
        knownFlags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
        supportedFlags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'],
      },
      apparmor: { enabled: lsm.includes('apparmor') },
      selinux: { enabled: lsm.includes('selinux') },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: false } },
    },
    annotations: { 'org.opencontainers.runtime-spec.features': 'berth-runtime' },
  };
}
