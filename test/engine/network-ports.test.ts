/** -p/--publish parsing (docker's forms), -P from EXPOSE, host port choice and conflicts; /etc/hosts and /etc/resolv.conf content. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHostFiles } from '../../src/engine/containers/hostfiles.js';
import { bindPorts, expandPublish, hostSockets, parsePublish, parsePublishAll, publishExposed } from '../../src/engine/network/ports.js';
import { addHostLine, hostsContent, resolvConfContent } from '../../src/engine/network/hosts.js';

describe('published ports', () => {
  it('parses docker forms', () => {
    assert.deepEqual(parsePublish('80'), { hostIp: '0.0.0.0', containerPorts: [80, 80], proto: 'tcp' });
    assert.deepEqual(parsePublish('8080:80'), { hostIp: '0.0.0.0', hostPorts: [8080, 8080], containerPorts: [80, 80], proto: 'tcp' });
    assert.deepEqual(parsePublish('127.0.0.1:8080:80/udp'), { hostIp: '127.0.0.1', hostPorts: [8080, 8080], containerPorts: [80, 80], proto: 'udp' });
    assert.deepEqual(parsePublish('127.0.0.1::80'), { hostIp: '127.0.0.1', containerPorts: [80, 80], proto: 'tcp' });
    assert.deepEqual(parsePublish('8000-8002:80-82/TCP'), { hostIp: '0.0.0.0', hostPorts: [8000, 8002], containerPorts: [80, 82], proto: 'tcp' });
    assert.deepEqual(
      expandPublish(parsePublish('8000-8001:80-81')).map((m) => `${m.hostPort}:${m.containerPort}`),
      ['8000:80', '8001:81'],
    );
    assert.deepEqual(parsePublishAll(['9000-9005:80']), [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, proto: 'tcp', hostRange: [9000, 9005] }]);
  });

  it('refuses what docker refuses, saying why', () => {
    assert.throws(() => parsePublish('8080:80/sctp'), /protocol "sctp" is not supported/);
    assert.throws(() => parsePublish('0:80'), /host port "0" is not a port/);
    assert.throws(() => parsePublish('70000:80'), /not a port/);
    assert.throws(() => parsePublish('8000-8002:80-81'), /give ranges of one length/);
    assert.throws(() => parsePublish('300.1.1.1:80:80'), /not an IPv4 address/);
    assert.throws(() => parsePublish('[::1]:80:80'), /IPv6/);
    assert.throws(() => parsePublish('a:b:c:d'), /expected \[IP:\]/);
  });

  it('-P publishes every exposed port', () => {
    assert.deepEqual(publishExposed(['80/tcp', '53/udp', '8080', '9000-9001/tcp', '1/sctp']).map((m) => `${m.containerPort}/${m.proto}`), [
      '80/tcp', '53/udp', '8080/tcp', '9000/tcp', '9001/tcp',
    ]);
    assert.throws(() => publishExposed(['http']), /not PORT/);
  });

  it('picks free host ports and refuses taken ones', () => {
    const taken = [{ hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp' as const, container: 'c0ffee1234567890' }];
    const sockets = [{ ip: '127.0.0.1', port: 9090, proto: 'tcp' as const }];
    assert.throws(() => bindPorts(parsePublishAll(['127.0.0.1:8080:80']), taken, sockets), /host port 127.0.0.1:8080\/tcp is already in use \(container c0ffee123456 publishes it\)/);
    assert.throws(() => bindPorts(parsePublishAll(['9090:80']), taken, sockets), /a process on this host listens on it/);
    assert.throws(() => bindPorts(parsePublishAll(['7000:80', '7000:81']), taken, sockets), /given twice/);
    assert.equal(bindPorts(parsePublishAll(['8080:80/udp', '127.0.0.2:9090:80']), taken, sockets).length, 2, 'other protocol, other address');
    assert.deepEqual(bindPorts(parsePublishAll(['8079-8085:80']), taken, sockets, [1, 2]).map((b) => b.hostPort), [8079]);
    assert.deepEqual(bindPorts(parsePublishAll(['8080-8085:80']), taken, sockets, [1, 2]).map((b) => b.hostPort), [8081]);
    assert.deepEqual(bindPorts(parsePublishAll(['80', '81']), taken, sockets, [8080, 8090]).map((b) => b.hostPort), [8081, 8082]);
    assert.throws(() => bindPorts(parsePublishAll(['80']), taken, sockets, [8080, 8080]), /no free host port/);
  });

  it('sees the host\'s listening sockets', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      assert.ok(hostSockets().some((s) => s.port === port && s.proto === 'tcp' && s.ip === '127.0.0.1'));
      assert.throws(() => bindPorts(parsePublishAll([`127.0.0.1:${port}:80`]), []), /a process on this host listens on it/);
    } finally {
      server.close();
    }
  });
});

describe('/etc/hosts and /etc/resolv.conf', () => {
  it('writes docker\'s shape of /etc/hosts', () => {
    const text = hostsContent([{ ip: '10.91.0.2', names: ['abc123', 'web', 'web'] }], [addHostLine('db:10.1.2.3')], [{ ip: '10.91.0.3', names: ['api', 'api-alias'] }]);
    assert.equal(
      text,
      '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' +
        '10.1.2.3\tdb\n10.91.0.2\tabc123 web\n10.91.0.3\tapi api-alias\n',
    );
    assert.equal(addHostLine('gw=host-gateway', '10.90.0.1'), '10.90.0.1\tgw');
    assert.throws(() => addHostLine('nocolon'), /expected NAME:IP/);
    assert.throws(() => addHostLine('x:notanip'), /not an IP address/);
  });

  it('keeps the host\'s name servers but loopback ones, and takes --dns, --dns-search, --dns-option', () => {
    const host = 'nameserver 127.0.0.53\nnameserver 192.0.2.53 # office\nsearch example.com\noptions edns0\n';
    assert.equal(resolvConfContent({ hostResolvConf: host }), 'search example.com\nnameserver 192.0.2.53\noptions edns0\n');
    assert.equal(resolvConfContent({ hostResolvConf: 'nameserver 127.0.0.53\n' }), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    assert.equal(
      resolvConfContent({ hostResolvConf: host, dns: ['10.0.0.53'], dnsSearch: ['a.test'], dnsOptions: ['ndots:2'] }),
      'search a.test\nnameserver 10.0.0.53\noptions ndots:2\n',
    );
    assert.throws(() => resolvConfContent({ hostResolvConf: '', dns: ['dns.example'] }), /--dns "dns.example" is not an IP address/);
  });

  it('--network host with only --dns-search keeps the host\'s name servers, loopback ones included (as docker)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-hostfiles-'));
    try {
      const host = 'nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.com\n';
      assert.equal(resolvConfContent({ hostResolvConf: host, dnsSearch: ['a.test'], keepLoopback: true }), 'search a.test\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n');
      assert.equal(resolvConfContent({ hostResolvConf: 'nameserver 127.0.0.53\n', dnsSearch: ['a.test'], keepLoopback: true }), 'search a.test\nnameserver 127.0.0.53\n', 'no public fallback in the host\'s namespace');
      // Through the engine's writer, with this host's own /etc/resolv.conf.
      const files = writeHostFiles(dir, 'h', 'host', { dnsSearch: ['a.test'] });
      const hostServers = readFileSync('/etc/resolv.conf', 'utf8').split('\n').filter((l) => /^\s*nameserver\s/.test(l)).map((l) => l.trim().split(/\s+/)[1]);
      const written = readFileSync(files.resolvConf, 'utf8');
      for (const s of hostServers) assert.match(written, new RegExp(`^nameserver ${s!.replaceAll('.', '\\.')}$`, 'm'), `${s} kept`);
      assert.match(written, /^search a\.test$/m);
      // With its own namespace, loopback servers still go.
      const bridged = readFileSync(writeHostFiles(dir, 'h', 'bridge', { dnsSearch: ['a.test'] }).resolvConf, 'utf8');
      assert.doesNotMatch(bridged, /^nameserver (127\.|::1$)/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
