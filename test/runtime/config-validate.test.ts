import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { isBerthError } from '../../src/base/errors.js';
import { hostBoundingSet, validateRuntimeConfig, CAPABILITIES } from '../../src/runtime/spec/validate.js';
import type { Spec } from '../../src/runtime/spec/types.js';
import { capturePodmanConfig, type PodmanCapture } from './fixtures/podman-capture.js';
import { peer, root, skipOrFail, skipUnless, specDir } from '../helpers/requirements.js';

// The runtime-spec's schemas and their test documents, found through BERTH_SPEC_DIR.
const schemas = specDir('runtime-spec/schema');
const schemaDir = schemas.dir ?? '';
const require = createRequire(import.meta.url);

type ValidateFn = ((doc: unknown) => boolean) & { errors?: unknown };

/** ajv over the runtime-spec schemas (draft-04 documents; the keywords used mean the same in ajv's draft-07). */
function schemaValidator(): ValidateFn {
  const AjvModule = require('ajv') as { default: new (o: object) => { addSchema(s: object, key: string): void; getSchema(key: string): ValidateFn | undefined } };
  const ajv = new AjvModule.default({ strict: false, allErrors: true });
  for (const f of readdirSync(schemaDir).filter((n) => n.endsWith('.json'))) {
    const schema = JSON.parse(readFileSync(join(schemaDir, f), 'utf8')) as Record<string, unknown>;
    delete schema.$schema;
    ajv.addSchema(schema, f);
  }
  const v = ajv.getSchema('config-schema.json');
  assert.ok(v !== undefined);
  return v;
}

function berthAccepts(doc: unknown): { ok: boolean; error?: string } {
  try {
    validateRuntimeConfig(doc, { requireProcess: false, onWarning: () => {} });
    return { ok: true };
  } catch (err) {
    if (isBerthError(err, 'RUNTIME_CONFIG_INVALID')) return { ok: false, error: err.message };
    throw err;
  }
}

function expectInvalid(doc: unknown, re: RegExp, opts: Parameters<typeof validateRuntimeConfig>[1] = {}): void {
  assert.throws(
    () => validateRuntimeConfig(doc, { onWarning: () => {}, ...opts }),
    (e: unknown) => isBerthError(e, 'RUNTIME_CONFIG_INVALID') && re.test(e.message),
    `expected an error matching ${re}`,
  );
}

/** A valid Linux config, close to what `runc spec` writes, with a uts namespace. */
function base(): Spec & Record<string, unknown> {
  return {
    ociVersion: '1.2.0',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/bin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'berth',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
    },
  };
}

describe('config-validate: the runtime-spec schema test documents', { skip: skipUnless(schemas.need) }, () => {
  const validate = schemaValidator();
  // Documents where berth is deliberately stricter than the schema, with the reason.
  const stricter: Record<string, RegExp> = {
    // runtime-spec 0.5.0-dev predates 1.0: different major version (config.md "Specification version").
    'good/spec-example.json': /ociVersion/,
    'good/zos-example.json': /ociVersion/,
    // config.md "POSIX-platform User": uid and gid are REQUIRED; the schema leaves user optional.
    'good/freebsd-example.json': /process\.user: is required/,
    // Without a network namespace the "container namespace" is the host's: nothing to move.
    'good/linux-netdevice.json': /network namespace/,
  };
  // Documents where berth is deliberately more lenient: a Linux runtime ignores other
  // platforms' sections (config.md "Platform-specific configuration").
  const lenient = new Set(['bad/freebsd-vnet-disable.json']);
  for (const kind of ['good', 'bad']) {
    const dir = join(schemaDir, 'test/config', kind);
    for (const name of readdirSync(dir)) {
      const key = `${kind}/${name}`;
      it(`${key}: berth agrees with the schema${stricter[key] ? ' (berth stricter: see reason)' : lenient.has(key) ? ' (berth lenient: see reason)' : ''}`, () => {
        const text = readFileSync(join(dir, name), 'utf8');
        let doc: unknown;
        try {
          doc = JSON.parse(text);
        } catch {
          assert.equal(kind, 'bad', 'only bad documents may fail to parse');
          return;
        }
        const schemaOk = validate(doc);
        assert.equal(schemaOk, kind === 'good', `the schema's own verdict on ${key}`);
        const berth = berthAccepts(doc);
        if (lenient.has(key)) {
          assert.equal(berth.ok, true, berth.error);
        } else if (stricter[key]) {
          assert.equal(berth.ok, false);
          assert.match(berth.error!, stricter[key]);
        } else {
          assert.equal(berth.ok, schemaOk, `${key}: berth says ${berth.ok ? 'valid' : berth.error}`);
        }
      });
    }
  }

  it('spec-example.json with a 1.x ociVersion is valid for berth too', () => {
    const doc = JSON.parse(readFileSync(join(schemaDir, 'test/config/good/spec-example.json'), 'utf8')) as Spec;
    doc.ociVersion = '1.0.0';
    assert.equal(validate(doc), true);
    const berth = berthAccepts(doc);
    assert.equal(berth.ok, true, berth.error);
  });
});

describe('config-validate: mutations, judged by the schema and by berth', { skip: skipUnless(schemas.need) }, () => {
  const validate = schemaValidator();
  type Mutation = [name: string, mutate: (d: any) => void, berthStricter?: RegExp];
  const mutations: Mutation[] = [
    ['unchanged', () => {}],
    ['ociVersion missing', (d) => delete d.ociVersion],
    ['ociVersion a number', (d) => (d.ociVersion = 1)],
    ['ociVersion 1.3.0', (d) => (d.ociVersion = '1.3.0')],
    ['ociVersion 1.0.2-dev', (d) => (d.ociVersion = '1.0.2-dev')],
    ['ociVersion not SemVer (schema: any string)', (d) => (d.ociVersion = '1.0'), /SemVer/],
    ['ociVersion 2.0.0 (schema: any string)', (d) => (d.ociVersion = '2.0.0'), /major version 2/],
    ['root.path missing', (d) => delete d.root.path],
    ['root.path a number', (d) => (d.root.path = 5)],
    ['root.readonly a string', (d) => (d.root.readonly = 'yes')],
    ['root missing (schema: optional; config.md: REQUIRED on Linux)', (d) => delete d.root, /root: is required/],
    ['process.cwd missing', (d) => delete d.process.cwd],
    ['process.cwd relative (schema: any string)', (d) => (d.process.cwd = 'tmp'), /absolute/],
    ['process.args not an array', (d) => (d.process.args = 'sh')],
    ['process.args empty (schema: any array)', (d) => (d.process.args = [])],
    ['process.env with a number', (d) => (d.process.env = [1])],
    ['process.env entry without = (schema: any string)', (d) => (d.process.env = ['PATH']), /NAME=value/],
    ['process.user.uid negative', (d) => (d.process.user.uid = -1)],
    ['process.user.uid too large', (d) => (d.process.user.uid = 4294967296)],
    ['process.user missing (schema: optional)', (d) => delete d.process.user, /process.user: is required/],
    ['process.user.additionalGids not numbers', (d) => (d.process.user.additionalGids = ['5'])],
    ['process.consoleSize without width', (d) => (d.process.consoleSize = { height: 10 })],
    ['process.terminal a string', (d) => (d.process.terminal = 'true')],
    ['rlimit missing soft', (d) => delete d.process.rlimits[0].soft],
    ['rlimit type lower case', (d) => (d.process.rlimits[0].type = 'rlimit_nofile')],
    ['rlimit type unknown RLIMIT_* (schema: any RLIMIT_[A-Z]+)', (d) => (d.process.rlimits[0].type = 'RLIMIT_BOGUS'), /not a Linux resource limit/],
    ['rlimit listed twice (schema: allowed)', (d) => d.process.rlimits.push({ type: 'RLIMIT_NOFILE', hard: 1, soft: 1 }), /listed twice/],
    ['rlimit soft above hard (schema: allowed)', (d) => (d.process.rlimits[0].soft = 2048), /above the hard limit/],
    ['capabilities not an array', (d) => (d.process.capabilities.bounding = 'CAP_KILL')],
    ['unknown capability name (a warning, config.md)', (d) => d.process.capabilities.bounding.push('CAP_BOGUS')],
    ['oomScoreAdj a float', (d) => (d.process.oomScoreAdj = 1.5)],
    ['oomScoreAdj out of -1000..1000 (schema: any integer)', (d) => (d.process.oomScoreAdj = 1001), /out of range/],
    ['scheduler without policy', (d) => (d.process.scheduler = { nice: 1 })],
    ['scheduler unknown policy', (d) => (d.process.scheduler = { policy: 'SCHED_FAST' })],
    ['scheduler SCHED_FIFO priority 10', (d) => (d.process.scheduler = { policy: 'SCHED_FIFO', priority: 10 })],
    ['scheduler SCHED_FIFO without priority (sched(7): 1-99)', (d) => (d.process.scheduler = { policy: 'SCHED_FIFO' }), /1 to 99/],
    ['ioPriority without class', (d) => (d.process.ioPriority = { priority: 1 })],
    ['ioPriority priority 9 (config.md: 0-7)', (d) => (d.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 9 }), /out of range/],
    ['execCPUAffinity bad list', (d) => (d.process.execCPUAffinity = { initial: 'a' })],
    ['mount without destination', (d) => delete d.mounts[0].destination],
    ['mount options not strings', (d) => (d.mounts[1].options = [1])],
    ['mount relative destination (allowed, deprecated)', (d) => (d.mounts[0].destination = 'proc')],
    ['bind mount without source (schema: optional)', (d) => d.mounts.push({ destination: '/x', type: 'none', options: ['rbind'] }), /needs a source/],
    ['mount with uidMappings but no gidMappings (schema: allowed)', (d) => (d.mounts[0].uidMappings = [{ containerID: 0, hostID: 0, size: 1 }]), /together/],
    ['mount id mapping without size', (d) => (d.mounts[0].uidMappings = [{ containerID: 0, hostID: 0 }])],
    ['hooks path missing', (d) => (d.hooks = { poststop: [{ args: [] }] })],
    ['hooks timeout 0', (d) => (d.hooks = { poststop: [{ path: '/bin/true', timeout: 0 }] })],
    ['hooks relative path (schema: any string)', (d) => (d.hooks = { poststop: [{ path: 'true' }] }), /absolute/],
    ['hooks createRuntime valid', (d) => (d.hooks = { createRuntime: [{ path: '/bin/true', args: ['true'], env: ['A=b'], timeout: 3 }] })],
    ['annotations with a number value', (d) => (d.annotations = { a: 1 })],
    ['annotations with an empty key (config.md: MUST NOT; the schema\'s pattern does not forbid it)', (d) => (d.annotations = { '': 'x' }), /keys must not be empty/],
    ['annotations valid', (d) => (d.annotations = { 'com.example.x': '' })],
    ['unknown top-level property (extensibility)', (d) => (d.futureThing = { x: 1 })],
    ['hostname a number', (d) => (d.hostname = 5)],
    ['hostname without a uts namespace (schema: allowed)', (d) => d.linux.namespaces.splice(3, 1), /uts namespace/],
    ['namespace unknown type', (d) => d.linux.namespaces.push({ type: 'bogus' })],
    ['namespace without type', (d) => d.linux.namespaces.push({ path: '/proc/1/ns/net' })],
    ['namespace listed twice (schema: allowed)', (d) => d.linux.namespaces.push({ type: 'pid' }), /listed twice/],
    ['namespace path relative (schema: any string)', (d) => (d.linux.namespaces[1].path = 'proc/1/ns/net'), /absolute/],
    ['cgroup and time namespaces', (d) => d.linux.namespaces.push({ type: 'cgroup' }, { type: 'time' })],
    ['user namespace with mappings', (d) => {
      d.linux.namespaces.push({ type: 'user' });
      d.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      d.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    }],
    ['user namespace without mappings (schema: allowed; runc refuses)', (d) => d.linux.namespaces.push({ type: 'user' }), /uidMappings and gidMappings/],
    ['mappings without a user namespace (schema: allowed)', (d) => (d.linux.uidMappings = [{ containerID: 0, hostID: 1, size: 1 }]), /user namespace/],
    ['mappings with a joined user namespace', (d) => {
      d.linux.namespaces.push({ type: 'user', path: '/proc/1/ns/user' });
      d.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      d.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    }],
    ['device type x', (d) => (d.linux.devices = [{ type: 'x', path: '/dev/x', major: 1, minor: 1 }])],
    ['device without path', (d) => (d.linux.devices = [{ type: 'c', major: 1, minor: 3 }])],
    ['device char without major (schema: optional; config-linux.md: REQUIRED unless p)', (d) => (d.linux.devices = [{ type: 'c', path: '/dev/x' }]), /major and minor/],
    ['device fifo without numbers', (d) => (d.linux.devices = [{ type: 'p', path: '/dev/fifo' }])],
    ['device fileMode above 511', (d) => (d.linux.devices = [{ type: 'p', path: '/dev/fifo', fileMode: 512 }]), undefined],
    ['device path relative (schema: any string)', (d) => (d.linux.devices = [{ type: 'p', path: 'dev/fifo' }]), /absolute/],
    ['resources.memory.limit a string', (d) => (d.linux.resources = { memory: { limit: '1G' } })],
    ['resources.memory valid', (d) => (d.linux.resources = { memory: { limit: 1 << 30, reservation: 1 << 29, swap: -1, swappiness: 10, disableOOMKiller: false } })],
    ['resources.pids without limit', (d) => (d.linux.resources = { pids: {} })],
    ['resources.cpu valid', (d) => (d.linux.resources = { cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1', mems: '0' } })],
    ['resources.cpu.period negative', (d) => (d.linux.resources = { cpu: { period: -1 } })],
    ['resources.blockIO.weight above uint16', (d) => (d.linux.resources = { blockIO: { weight: 70000 } })],
    ['resources.blockIO throttle without major', (d) => (d.linux.resources = { blockIO: { throttleReadBpsDevice: [{ minor: 0, rate: 1 }] } })],
    ['resources.hugepageLimits 64kB', (d) => (d.linux.resources = { hugepageLimits: [{ pageSize: '64kB', limit: 1 }] })],
    ['resources.hugepageLimits 2MB', (d) => (d.linux.resources = { hugepageLimits: [{ pageSize: '2MB', limit: 1 }] })],
    ['resources.devices without allow', (d) => (d.linux.resources = { devices: [{ type: 'c', access: 'rwm' }] })],
    ['resources.devices type z (schema: any string)', (d) => (d.linux.resources = { devices: [{ allow: true, type: 'z' }] }), /one of a, c, b/],
    ['resources.devices access q (schema: any string)', (d) => (d.linux.resources = { devices: [{ allow: true, access: 'q' }] }), /only r, w and m/],
    ['resources.unified with a number', (d) => (d.linux.resources = { unified: { 'memory.max': 5 } })],
    ['resources.rdma hcaHandles a string', (d) => (d.linux.resources = { rdma: { mlx5_1: { hcaHandles: 'x' } } })],
    ['resources.network priority without name', (d) => (d.linux.resources = { network: { priorities: [{ priority: 1 }] } })],
    ['cgroupsPath a number', (d) => (d.linux.cgroupsPath = 5)],
    ['cgroupsPath with .. (runtime MAY consider invalid)', (d) => (d.linux.cgroupsPath = '/a/../b'), /cgroupsPath/],
    ['sysctl net.* with a network namespace', (d) => (d.linux.sysctl = { 'net.ipv4.ip_forward': '1' })],
    ['sysctl with a number value', (d) => (d.linux.sysctl = { 'net.ipv4.ip_forward': 1 })],
    ['sysctl not namespaced (schema: allowed)', (d) => (d.linux.sysctl = { 'vm.swappiness': '1' }), /not namespaced/],
    ['sysctl net.* without a network namespace', (d) => { d.linux.sysctl = { 'net.core.somaxconn': '1' }; d.linux.namespaces.splice(1, 1); }, /network namespace/],
    ['maskedPaths with a number', (d) => (d.linux.maskedPaths = [1])],
    ['readonlyPaths relative (schema: any string)', (d) => (d.linux.readonlyPaths = ['proc/sys']), /absolute/],
    ['rootfsPropagation bogus', (d) => (d.linux.rootfsPropagation = 'everywhere')],
    ['rootfsPropagation rslave (not in the enum)', (d) => (d.linux.rootfsPropagation = 'rslave')],
    ['seccomp without defaultAction', (d) => (d.linux.seccomp = { syscalls: [] })],
    ['seccomp unknown action', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_MAYBE' })],
    ['seccomp unknown arch', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] })],
    ['seccomp unknown flag', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_X'] })],
    ['seccomp syscall with empty names', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_ERRNO' }] })],
    ['seccomp arg unknown op', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_XX' }] }] })],
    ['seccomp arg without value', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ' }] }] })],
    ['seccomp valid', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, architectures: ['SCMP_ARCH_X86_64'], flags: ['SECCOMP_FILTER_FLAG_LOG'], syscalls: [{ names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] }] })],
    ['seccomp errnoRet on ALLOW (config-linux.md MUST fail)', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }] }), /does not return an errno/],
    ['seccomp arg index 6 (seccomp_data has 6 args)', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }), /out of range/],
    ['seccomp listenerMetadata without listenerPath (config-linux.md MUST NOT)', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerMetadata: 'x' }), /listenerPath/],
    ['seccomp NOTIFY without listenerPath', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_NOTIFY' }] }), /listenerPath/],
    ['personality bogus domain', (d) => (d.linux.personality = { domain: 'WINDOWS' })],
    ['personality LINUX32', (d) => (d.linux.personality = { domain: 'LINUX32', flags: [] })],
    ['timeOffsets with a time namespace', (d) => { d.linux.namespaces.push({ type: 'time' }); d.linux.timeOffsets = { monotonic: { secs: 10, nanosecs: 5 } }; }],
    ['timeOffsets secs a string', (d) => { d.linux.namespaces.push({ type: 'time' }); d.linux.timeOffsets = { boottime: { secs: '1' } }; }],
    ['timeOffsets without a time namespace (schema: allowed)', (d) => (d.linux.timeOffsets = { monotonic: { secs: 10 } }), /time namespace/],
    ['intelRdt memBwSchema without MB:', (d) => (d.linux.intelRdt = { memBwSchema: 'L3:0=1' })],
    ['memoryPolicy bogus mode', (d) => (d.linux.memoryPolicy = { mode: 'MPOL_ANY' })],
    ['memoryPolicy bind with nodes', (d) => (d.linux.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0', flags: ['MPOL_F_STATIC_NODES'] })],
    ['netDevices name a number', (d) => (d.linux.netDevices = { eth0: { name: 23 } })],
    ['netDevices valid', (d) => (d.linux.netDevices = { eth0: { name: 'eth1' } })],
  ];

  for (const [name, mutate, stricter] of mutations) {
    it(name, () => {
      const doc = base();
      mutate(doc);
      const schemaOk = validate(doc);
      const berth = berthAccepts(doc);
      if (stricter !== undefined) {
        assert.equal(schemaOk, true, 'a "berth stricter" case must be valid for the schema');
        assert.equal(berth.ok, false, 'berth must refuse it');
        assert.match(berth.error!, stricter);
      } else {
        assert.equal(berth.ok, schemaOk, `schema says ${schemaOk ? 'valid' : JSON.stringify(validate.errors)}, berth says ${berth.ok ? 'valid' : berth.error}`);
      }
    });
  }
});

describe('config-validate: targeted rules', () => {
  let bundle = '';
  before(() => {
    bundle = mkdtempSync(join(tmpdir(), 'berth-validate-bundle-'));
    mkdirSync(join(bundle, 'rootfs'));
    writeFileSync(join(bundle, 'notadir'), '');
  });
  after(() => rmSync(bundle, { recursive: true, force: true }));

  it('resolves root.path against the bundle and requires a directory there', () => {
    validateRuntimeConfig(base(), { bundleDir: bundle, onWarning: () => {} });
    const missing = base();
    missing.root = { path: 'nope' };
    expectInvalid(missing, /root\.path: .*nope does not exist/, { bundleDir: bundle });
    const file = base();
    file.root = { path: join(bundle, 'notadir') };
    expectInvalid(file, /not a directory/, { bundleDir: bundle });
  });

  it('requires process with args at create, unless told otherwise', () => {
    const noProcess = base();
    delete noProcess.process;
    expectInvalid(noProcess, /process: is required/);
    validateRuntimeConfig(noProcess, { requireProcess: false });
    const noArgs = base();
    noArgs.process!.args = [];
    expectInvalid(noArgs, /process\.args: needs at least one entry/);
  });

  it('makes relative mount destinations absolute and leaves the input untouched', () => {
    const doc = base();
    doc.mounts![0]!.destination = 'proc';
    const out = validateRuntimeConfig(doc, { onWarning: () => {} });
    assert.equal(out.mounts![0]!.destination, '/proc');
    assert.equal(doc.mounts![0]!.destination, 'proc');
  });

  it('names the field path in errors', () => {
    const doc = base();
    (doc.process!.rlimits![0] as unknown as Record<string, unknown>).hard = 'x';
    expectInvalid(doc, /^config\.json process\.rlimits\[0\]\.hard: must be an integer/);
  });

  it('warns (does not fail) about capabilities it cannot grant', () => {
    const warnings: string[] = [];
    const doc = base();
    doc.process!.capabilities!.bounding!.push('CAP_BOGUS');
    validateRuntimeConfig(doc, { onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /CAP_BOGUS/);
  });

  it('with checkHost: warns about capabilities outside the host bounding set', (t) => {
    const missing = Object.entries(CAPABILITIES).find(([, n]) => !hostBoundingSet().has(n));
    if (missing === undefined) return skipOrFail(t, 'every capability berth knows is in this host\'s bounding set: none to test the warning with', false);
    const warnings: string[] = [];
    const doc = base();
    doc.process!.capabilities!.bounding!.push(missing[0]);
    validateRuntimeConfig(doc, { checkHost: true, onWarning: (m) => warnings.push(m) });
    assert.ok(warnings.some((w) => w.includes(missing[0]) && w.includes('bounding set')), warnings.join('\n'));
  });

  it('with checkHost: refuses AppArmor, SELinux and mount labels on a host without them', () => {
    for (const [set, re] of [
      [(d: Spec) => (d.process!.apparmorProfile = 'p'), /AppArmor/],
      [(d: Spec) => (d.process!.selinuxLabel = 'l'), /SELinux/],
      [(d: Spec) => (d.linux!.mountLabel = 'l'), /SELinux/],
    ] as const) {
      const doc = base();
      set(doc);
      validateRuntimeConfig(doc, { onWarning: () => {} }); // fine without host checks
      let threw: unknown;
      try {
        validateRuntimeConfig(doc, { checkHost: true, onWarning: () => {} });
      } catch (e) {
        threw = e;
      }
      const lsmPresent = re.source === 'AppArmor' ? existsLsm('apparmor') : existsLsm('selinux');
      if (lsmPresent) assert.equal(threw, undefined);
      else assert.ok(isBerthError(threw, 'UNSUPPORTED') && re.test(threw.message), String(threw));
    }
  });

  it('with checkHost: refuses cgroup settings this host cannot apply', (t) => {
    const doc = base();
    doc.linux!.resources = { unified: { 'memory.max': '1' } };
    const memoryOnV2 = readFileSync('/proc/self/mountinfo', 'utf8').includes(' - cgroup cgroup ') === false;
    if (memoryOnV2) return skipOrFail(t, 'the memory controller is on cgroup v2 here: unified settings are valid, none to refuse', false);
    assert.throws(() => validateRuntimeConfig(doc, { checkHost: true, onWarning: () => {} }), (e: unknown) => isBerthError(e, 'UNSUPPORTED'));
  });

  it('with checkHost: namespace paths must exist', () => {
    const doc = base();
    doc.linux!.namespaces![1] = { type: 'network', path: '/proc/self/ns/net' };
    validateRuntimeConfig(doc, { checkHost: true, onWarning: () => {} });
    doc.linux!.namespaces![1] = { type: 'network', path: '/run/netns/does-not-exist' };
    expectInvalid(doc, /does not exist/, { checkHost: true });
  });

  it('refuses a document that is not an object', () => {
    for (const bad of [null, [], 'x', 5]) expectInvalid(bad, /must be an object/);
  });
});

function existsLsm(name: 'apparmor' | 'selinux'): boolean {
  try {
    if (name === 'apparmor') return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
    readFileSync('/sys/fs/selinux/enforce');
    return true;
  } catch {
    return false;
  }
}

describe('config-validate: what a real engine writes', { skip: skipUnless(root('podman'), peer('podman', 'podman'), peer('/bin/busybox', 'busybox-static')) }, () => {
  let capture: PodmanCapture | undefined;
  let unavailable = 'podman unavailable';
  before(() => {
    const c = capturePodmanConfig();
    if ('skip' in c) unavailable = c.skip;
    else capture = c;
  });
  after(() => capture?.cleanup());

  it('podman\'s config.json is valid for berth (with host checks) and for the schema', (t) => {
    if (capture === undefined) return skipOrFail(t, unavailable);
    const doc = capture.config;
    doc.root.path = capture.rootfs; // podman's overlay mount is gone once the capture runtime refused
    const warnings: string[] = [];
    const spec = validateRuntimeConfig(doc, { checkHost: true, onWarning: (m) => warnings.push(m) });
    assert.deepEqual(warnings, []);
    assert.equal(spec.process?.args?.[0], '/bin/true');
    if (schemas.dir) assert.equal(schemaValidator()(doc), true);
    else console.log('# podman config: BERTH_SPEC_DIR is not set: checked by berth only, not against config-schema.json');
  });
});
