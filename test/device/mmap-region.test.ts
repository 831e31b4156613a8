/**
 * The client's mmap-able region path, against libvfio-user itself: a
 * fixture server (test/support/mmap-server.ts, run from dist/)
 * offers BAR2 whole and BAR3 as two sparse areas of one memfd. The
 * emulator has no such region yet; the data plane's doorbell area will be
 * one, and this is what the client will do with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURE_BAR2, FIXTURE_BAR3, FIXTURE_BAR_SIZE } from '../support/mmap-server.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { repoRoot } from '../../emulator/util/paths.js';
import { RunDir, until } from '../../qemu/vm.js';

let dir: RunDir | null = null;
let server: ChildProcess | null = null;
let client: VfioUserClient | null = null;
let out = '';

async function startFixture(): Promise<string> {
  const js = join(repoRoot(), 'dist', 'test', 'support', 'mmap-server.js');
  if (!existsSync(js)) throw new Error(`${js} not found: run npm run build`);
  dir = new RunDir('sgiov-mmaptest-');
  const sock = dir.file('fixture.sock');
  out = '';
  server = spawn(process.execPath, [js, sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  server.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const up = await until(() => out.includes('listening') || server!.exitCode !== null, 10_000);
  if (!up || !out.includes('listening')) throw new Error(`fixture server did not start:\n${out}`);
  return sock;
}

afterEach(async () => {
  client?.close();
  client = null;
  const p = server;
  server = null;
  if (p && p.exitCode === null && p.signalCode === null && p.pid !== undefined) {
    // it exits by itself once its client is gone; otherwise stop it by its PID
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    if (!(await until(() => p.exitCode !== null, 3000))) process.kill(p.pid, 'SIGKILL');
    await gone;
  }
  dir?.remove();
  dir = null;
});

describe('vfio-user client: mmap-able regions', () => {
  it('maps a region offered whole and one offered as sparse areas, sharing memory with the server', async () => {
    const sock = await startFixture();
    client = VfioUserClient.connect(sock, { memBytes: 1 << 20, map: false });
    const c = client;
    expect(await until(() => out.includes('client attached'), 5000)).toBe(true);

    const bar2 = c.regionInfo(FIXTURE_BAR2.index);
    expect(bar2.mmappable).toBe(true);
    expect(bar2.size).toBe(FIXTURE_BAR_SIZE);
    const m2 = c.mappedRegion(FIXTURE_BAR2.index);
    expect(m2?.length).toBe(FIXTURE_BAR_SIZE);
    // written through the mapping, read by the server (REGION_READ goes to its callback)
    m2!.set([1, 2, 3, 4], 0x100);
    expect(c.regionRead(FIXTURE_BAR2.index, 0x100, 4)).toBe(0x04030201n);
    // written by the server (REGION_WRITE), seen in the mapping
    c.regionWrite(FIXTURE_BAR2.index, 0xff8, 8, 0x1122334455667788n);
    expect(Buffer.from(m2!.subarray(0xff8, 0x1000)).readBigUInt64LE(0)).toBe(0x1122334455667788n);

    const bar3 = c.regionInfo(FIXTURE_BAR3.index);
    expect(bar3.mmappable).toBe(true);
    expect(bar3.offset).toBe(BigInt(FIXTURE_BAR3.fileOffset));
    expect(bar3.sparseAreas).toEqual(FIXTURE_BAR3.areas);
    const areas = c.mappedAreas(FIXTURE_BAR3.index);
    expect(areas.map(({ offset, size }) => ({ offset, size }))).toEqual(FIXTURE_BAR3.areas);
    expect(c.mappedRegion(FIXTURE_BAR3.index)).toBe(areas[0]!.view);
    // each area maps the right part of the file: the server sees it at the same region offset
    for (const a of areas) {
      a.view.fill(0);
      a.view.set([0xa0, 0xb0], 0x10);
      expect(c.regionRead(FIXTURE_BAR3.index, a.offset + 0x10, 2)).toBe(0xb0a0n);
    }
    // BAR2 and BAR3 do not alias: BAR3 starts 64 KiB into the file
    expect(m2![0x1010]).not.toBe(0xa0);
    // regions without an fd are not mapped
    expect(c.mappedRegion(0)).toBeNull();
    expect(c.regionInfo(0).mmappable).toBe(false);
  });

  it('keeps the mappings usable after the server is gone, and drops them on close', async () => {
    const sock = await startFixture();
    client = VfioUserClient.connect(sock, { memBytes: 1 << 20, map: false });
    const m2 = client.mappedRegion(FIXTURE_BAR2.index)!;
    client.regionWrite(FIXTURE_BAR2.index, 0, 4, 0xcafef00dn);
    client.disconnectAbruptly();
    expect(await until(() => out.includes('client gone'), 5000)).toBe(true);
    expect(Buffer.from(m2.subarray(0, 4)).readUInt32LE(0)).toBe(0xcafef00d);
    client.close();
    expect(client.mappedRegion(FIXTURE_BAR2.index)).toBeNull();
  });
});
