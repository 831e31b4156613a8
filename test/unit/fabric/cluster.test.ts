import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterArgs, parseClusterJson } from '../../../emulator/fabric/cluster.js';
import { FabricCredentials } from '../../support/fabric.js';

const dir = mkdtempSync(join(tmpdir(), 'sgiov-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fabric cluster description', () => {
  it('reads the JSON form and the flag form alike', () => {
    const json = parseClusterJson(
      '{ "self": "b", "nodes": { "b": "10.0.0.2:7000", "a": "10.0.0.1:7000", "c": "[::1]:7001" } }',
    );
    const flags = parseClusterArgs([
      '--node',
      'a=10.0.0.1:7000',
      '--node',
      'b=10.0.0.2:7000',
      '--node',
      'c=[::1]:7001',
      '--self',
      'b',
    ]);
    for (const c of [json, flags]) {
      expect(c.self).toBe('b');
      expect(c.names).toEqual(['a', 'b', 'c']);
      expect(c.nodes.get('a')).toEqual({ host: '10.0.0.1', port: 7000 });
      expect(c.nodes.get('c')).toEqual({ host: '::1', port: 7001 });
    }
    expect(json.hash).toBe(flags.hash);
    expect(parseClusterJson('{ "self": "a", "nodes": { "a": "h:1", "x": "h:2" } }').hash).not.toBe(json.hash);
  });

  it('reads a file, and --self overrides the one in it', () => {
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify({ self: 'a', nodes: { a: 'localhost:7000', b: 'localhost:7001' } }));
    expect(parseClusterArgs(['--cluster', file]).self).toBe('a');
    expect(parseClusterArgs(['--cluster', file, '--self', 'b']).self).toBe('b');
    expect(() => parseClusterArgs(['--cluster', file, '--self', 'z'])).toThrow(
      /--self: 'z' is not one of the listed nodes/,
    );
    expect(() => parseClusterArgs(['--cluster', join(dir, 'missing.json')])).toThrow(
      /--cluster: cannot read/,
    );
  });

  it.each([
    ['{ "self": "a", "nodes": { "a": "h:7000", "B": "h:7001" } }', /nodes\.B: node name 'B' must match/],
    [
      '{ "self": "a", "nodes": { "a": "h:7000", "b": "h:70000" } }',
      /nodes\.b: port '70000' is not in 1\.\.65535/,
    ],
    ['{ "self": "a", "nodes": { "a": "h:7000", "b": "h:0" } }', /nodes\.b: port '0'/],
    ['{ "self": "a", "nodes": { "a": "h:7000", "b": "h" } }', /nodes\.b: 'h' is not host:port/],
    ['{ "self": "a", "nodes": { "a": "h:7000", "b": ":7001" } }', /nodes\.b: ':7001' has no valid host/],
    ['{ "self": "a", "nodes": { "a": "h:7000", "b": 7001 } }', /nodes\.b: must be a "host:port" string/],
    [
      '{ "self": "c", "nodes": { "a": "h:7000", "b": "h:7001" } }',
      /self: 'c' is not one of the listed nodes \(a, b\)/,
    ],
    ['{ "nodes": { "a": "h:7000" } }', /self: missing/],
    ['{ "self": "a", "nodes": {} }', /nodes: no node is listed/],
    ['{ "self": "a", "nodes": ["a"] }', /nodes: must be an object/],
    [
      '{ "self": "a", "nodes": { "a": "h:1" }, "port": 3 }',
      /port: unknown field \(expected self, nodes, secret, tls\)/,
    ],
    ['{ "self": "a", ', /cluster: not JSON/],
  ])('names the bad field: %s', (text, message) => {
    expect(() => parseClusterJson(text)).toThrow(message);
  });

  it.each([
    [['--node', 'a=h:1', '--node', 'b=h:99999', '--self', 'a'], /--node b=h:99999: port '99999'/],
    [['--node', 'a=h:1', '--node', 'a=h:2', '--self', 'a'], /--node a=h:2: node 'a' is listed twice/],
    [['--node', 'ah:1', '--self', 'a'], /--node ah:1: expected name=host:port/],
    [['--node', 'a=h:1', '--self', 'b'], /--self: 'b' is not one of the listed nodes/],
    [['--node', 'a=h:1', '--self', 'A!'], /--self: node name 'A!' must match/],
    [['--node', 'a=h:1'], /--self: missing/],
    [['--self', 'a'], /--node: no node given/],
    [['--node', 'a=h:1', '--self', 'a', '--port', '3'], /--port/],
  ])('names the bad flag: %j', (argv, message) => {
    expect(() => parseClusterArgs(argv)).toThrow(message);
  });
});

describe('fabric cluster security settings: the secret file and TLS', () => {
  const sec = join(dir, 'sec');
  let creds: FabricCredentials;
  const nodes = ['--node', 'a=127.0.0.1:7000', '--node', 'b=127.0.0.1:7001', '--self', 'a'];
  beforeAll(() => {
    creds = FabricCredentials.make(sec, ['a', 'b']);
  });

  it('reads the secret from an owner-only file, from a flag or the cluster file (relative to it)', () => {
    const c = parseClusterArgs([...nodes, '--fabric-secret', creds.secretFile]);
    // openssl rand -hex 32 and its newline: the 64 hex digits are the secret.
    expect(Buffer.from(c.secret!).toString()).toBe(readFileSync(creds.secretFile, 'utf8').trim());
    expect(c.secret!.length).toBe(64);
    expect(c.tls).toBeUndefined();
    const file = join(sec, 'cluster.json');
    writeFileSync(file, JSON.stringify({ self: 'b', nodes: { a: 'h:1', b: 'h:2' }, secret: 'secret' }));
    expect(Buffer.from(parseClusterArgs(['--cluster', file]).secret!).equals(Buffer.from(c.secret!))).toBe(
      true,
    );
    expect(parseClusterArgs(nodes).secret).toBeUndefined();
  });

  it('refuses a secret file group or others may read, a short one, a missing one, and a secret given as text', () => {
    const open = join(dir, 'open.secret');
    writeFileSync(open, 'x'.repeat(64));
    chmodSync(open, 0o644);
    expect(() => parseClusterArgs([...nodes, '--fabric-secret', open])).toThrow(
      /--fabric-secret: .*open\.secret has mode 644: group or others may read or write it \(chmod 600/,
    );
    chmodSync(open, 0o604);
    expect(() => parseClusterArgs([...nodes, '--fabric-secret', open])).toThrow(/mode 604/);
    const short = join(dir, 'short.secret');
    writeFileSync(short, 'abc\n', { mode: 0o600 });
    expect(() => parseClusterArgs([...nodes, '--fabric-secret', short])).toThrow(
      /holds 3 bytes; a secret has 16\.\.4096/,
    );
    expect(() => parseClusterArgs([...nodes, '--fabric-secret', join(dir, 'nope')])).toThrow(
      /--fabric-secret: cannot read/,
    );
    // What is on a command line is not a file: "--fabric-secret hunter2..." names a file that is not there.
    expect(() => parseClusterArgs([...nodes, '--fabric-secret', 'correct horse battery staple'])).toThrow(
      /cannot read/,
    );
    const file = join(dir, 'open-cluster.json');
    writeFileSync(file, JSON.stringify({ self: 'a', nodes: { a: 'h:1' }, secret: 'open.secret' }));
    expect(() => parseClusterArgs(['--cluster', file])).toThrow(/: secret: .*has mode 604/);
  });

  it('loads the TLS files and checks them: the key fits, the CA signed it, it names this node', () => {
    const f = (n: string): string => join(sec, n);
    const tls = (self: string, cert: string, key: string, ca = f('ca.pem')): string[] => [
      '--node',
      'a=h:1',
      '--node',
      'b=h:2',
      '--self',
      self,
      '--fabric-secret',
      creds.secretFile,
      '--fabric-tls',
      '--fabric-ca',
      ca,
      '--fabric-cert',
      cert,
      '--fabric-key',
      key,
    ];
    const c = parseClusterArgs(tls('a', f('a.pem'), f('a.key')));
    expect(c.tls?.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(c.files?.tls).toEqual({ ca: f('ca.pem'), cert: f('a.pem'), key: f('a.key') });
    expect(() => parseClusterArgs(tls('b', f('a.pem'), f('a.key')))).toThrow(
      /--fabric-cert: .*a\.pem names a, not this node 'b'/,
    );
    expect(() => parseClusterArgs(tls('a', f('a.pem'), f('b.key')))).toThrow(
      /--fabric-key: .*b\.key is not the key of/,
    );
    expect(() => parseClusterArgs(tls('a', f('a.pem'), f('a.key'), f('b.pem')))).toThrow(/is not signed by/);
    chmodSync(f('a.key'), 0o640);
    expect(() => parseClusterArgs(tls('a', f('a.pem'), f('a.key')))).toThrow(/--fabric-key: .*mode 640/);
    chmodSync(f('a.key'), 0o600);
    // TLS needs the secret, and every file.
    expect(() => parseClusterArgs([...nodes, '--fabric-tls', '--fabric-ca', f('ca.pem')])).toThrow(
      /--fabric-tls: needs --fabric-cert FILE/,
    );
    expect(() => parseClusterArgs([...nodes, '--fabric-cert', f('a.pem')])).toThrow(
      /--fabric-cert: only with --fabric-tls/,
    );
    const noSecret = tls('a', f('a.pem'), f('a.key')).filter(
      (x, i, all) => x !== '--fabric-secret' && all[i - 1] !== '--fabric-secret',
    );
    expect(() => parseClusterArgs(noSecret)).toThrow(
      /--fabric-tls: needs the cluster secret too \(--fabric-secret\)/,
    );
    // The cluster file's "tls" section turns it on, its paths relative to the file.
    const file = join(sec, 'tls-cluster.json');
    writeFileSync(
      file,
      JSON.stringify({
        self: 'b',
        nodes: { a: 'h:1', b: 'h:2' },
        secret: 'secret',
        tls: { ca: 'ca.pem', cert: 'b.pem', key: 'b.key' },
      }),
    );
    expect(parseClusterArgs(['--cluster', file]).tls).toBeDefined();
    writeFileSync(
      file,
      JSON.stringify({
        self: 'b',
        nodes: { a: 'h:1', b: 'h:2' },
        tls: { ca: 'ca.pem', cert: 'b.pem', key: 'b.key' },
      }),
    );
    expect(() => parseClusterArgs(['--cluster', file])).toThrow(/: tls: needs the cluster secret too/);
    writeFileSync(
      file,
      JSON.stringify({ self: 'b', nodes: { a: 'h:1', b: 'h:2' }, tls: { ca: 'ca.pem', crt: 'b.pem' } }),
    );
    expect(() => parseClusterArgs(['--cluster', file])).toThrow(/tls\.crt: unknown field/);
  });
});
