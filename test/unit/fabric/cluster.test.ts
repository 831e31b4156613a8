import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseClusterArgs, parseClusterJson } from '../../../emulator/fabric/cluster.js';

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
    ['{ "self": "a", "nodes": { "a": "h:1" }, "port": 3 }', /port: unknown field/],
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
