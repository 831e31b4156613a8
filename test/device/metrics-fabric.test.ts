/**
 * The link families of /metrics with a cluster: two emulators on this
 * machine's loopback (no network namespace), a cross-node pair of sockets
 * between their VM-less clients; the link to the peer is up, its frames and
 * bytes rose by what was sent, its RTT was measured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { openCrossPairs } from '../../emulator/client/stress.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import type { EmulatorProcess, RunDir } from '../../qemu/vm.js';
import { startControlled } from '../support/device.js';
import { freePorts } from '../support/fabric.js';
import { sample, scrape } from '../support/prom.js';

const NODE_B = 2; // 1 + the index of 'b' in the sorted names
let a: { dir: RunDir; emu: EmulatorProcess };
let b: { dir: RunDir; emu: EmulatorProcess };
let url = '';

beforeAll(async () => {
  const [pa, pb] = await freePorts(2);
  const nodes = ['--node', `a=127.0.0.1:${pa}`, '--node', `b=127.0.0.1:${pb}`];
  a = await startControlled('mfab-a', [...nodes, '--self', 'a', '--metrics', '127.0.0.1:0']);
  b = await startControlled('mfab-b', [...nodes, '--self', 'b']);
  url = String(a.emu.records().find((r) => r.msg === 'metrics endpoint listening')?.metrics);
});

afterAll(async () => {
  for (const n of [a, b]) {
    await n?.emu.stop();
    n?.dir.remove();
  }
});

function driver(sock: string): { client: VfioUserClient; drv: SgiovSocketDriver } {
  const client = VfioUserClient.connect(sock, { memBytes: 16 << 20 });
  new SgiovDriver(client).bringUp();
  return {
    client,
    drv: new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 4096, timeoutMs: 20_000 }),
  };
}

describe('link metrics', () => {
  it('the link is up; frames, bytes and RTT move with cross-node messages', async () => {
    // The link comes up after its handshake (bounded wait).
    let up = NaN;
    for (const end = Date.now() + 15_000; up !== 1 && Date.now() < end; ) {
      up = sample((await scrape(url)).families, 'sgiov_link_state', { node: 'b', state: 'up' });
      if (up !== 1) await new Promise((r) => setTimeout(r, 100));
    }
    expect(up).toBe(1);
    const before = (await scrape(url)).families;
    const na = driver(a.dir.file('s.sock'));
    const nb = driver(b.dir.file('s.sock'));
    try {
      const { pairs } = openCrossPairs(na.drv, nb.drv, NODE_B, 2, 65536, 9500);
      const [c, s] = pairs[0]!;
      const N = 30;
      const SIZE = 4000;
      for (let i = 0; i < N; i++) {
        c.send(new Uint8Array(SIZE).fill(i));
        expect(s.recv()).toHaveLength(SIZE);
      }
      const after = (await scrape(url)).families;
      const d = (name: string): number =>
        sample(after, name, { node: 'b' }) - (sample(before, name, { node: 'b' }) || 0);
      expect(sample(after, 'sgiov_link_state', { node: 'b', state: 'up' })).toBe(1);
      expect(sample(after, 'sgiov_link_state', { node: 'b', state: 'down' })).toBe(0);
      expect(d('sgiov_link_frames_sent_total')).toBeGreaterThanOrEqual(N);
      expect(d('sgiov_link_sent_bytes_total')).toBeGreaterThanOrEqual(N * SIZE);
      expect(d('sgiov_link_frames_received_total')).toBeGreaterThan(0);
      expect(sample(after, 'sgiov_link_retransmitted_frames_total', { node: 'b' })).toBe(0);
      expect(sample(after, 'sgiov_link_rtt_seconds', { node: 'b' })).toBeGreaterThan(0);
      expect(sample(after, 'sgiov_link_rtt_seconds', { node: 'b' })).toBeLessThan(10);
    } finally {
      na.client.close();
      nb.client.close();
    }
  });
});
