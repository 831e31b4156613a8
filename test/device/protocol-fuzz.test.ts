/**
 * The protocol-level fuzzer: seeded random vfio-user messages through a raw
 * UNIX socket, below the well-formed client: random commands, sizes and
 * flags, headers cut short, bodies that never come, handshakes skipped or
 * garbled, and random fds passed with SCM_RIGHTS (eventfds, memfds of odd
 * sizes, pipes, /dev/null, sockets). The emulator must stay alive and
 * answer its control socket throughout, keep no fd it was passed once the
 * connection is gone, and a well-formed client must attach and run a DMA
 * job afterwards. SGIOV_FUZZ_CONNECTIONS sets the connections (default 300;
 * `npm run fuzz` runs 3000), SGIOV_FUZZ_SEED the seed.
 */
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENUMS } from '../../emulator/abi/abi.js';
import { rng } from '../../emulator/client/stress.js';
import { CMD } from '../../emulator/client/vfio-user-protocol.js';
import { EFD_CLOEXEC, Libc, MFD_CLOEXEC } from '../../emulator/native/libc.js';
import { controlCall } from '../../qemu/vm.js';
import { startRig, type Rig } from '../support/device.js';
import { RawConn } from '../support/raw-vfio-user.js';

const CONNECTIONS = Number(process.env.SGIOV_FUZZ_CONNECTIONS ?? 300);
const SEED = Number(process.env.SGIOV_FUZZ_SEED ?? 0x5eed10);
const libc = Libc.get();
let rig: Rig;
let ctl: string;

beforeAll(async () => {
  // A short deadline: connections left mid-message are dropped quickly.
  rig = await startRig('protofuzz', ['--control', '{dir}/ctl.sock', '--client-deadline', '200']);
  ctl = rig.dir.file('ctl.sock');
});
afterAll(async () => {
  await rig?.stop();
});

const rssMiB = (pid: number): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Fds to pass: every kind a client could send. */
function fdPool(): number[] {
  const fds: number[] = [];
  fds.push(libc.eventfd(0, EFD_CLOEXEC));
  for (const size of [0, 4096, 1 << 20, 3 * 4096 + 17]) {
    const m = libc.memfd_create('sgiov-fuzz', MFD_CLOEXEC);
    libc.ftruncate(m, size);
    fds.push(m);
  }
  const p = Buffer.alloc(8);
  libc.pipe2(p, 0x80000);
  fds.push(p.readInt32LE(0), p.readInt32LE(4));
  fds.push(openSync('/dev/null', 'r'));
  return fds;
}

describe('protocol fuzzer: random vfio-user messages and fds through a raw socket', () => {
  it(`survives ${CONNECTIONS} connections of random messages; a well-formed client works afterwards`, async () => {
    rig.keepOnFailure();
    const r = rng(SEED);
    const int = (n: number): number => Math.floor(r() * n);
    const pool = fdPool();
    const cmds = Object.values(CMD);
    const fds0 = openFds(rig.emu.pid);
    const rss0 = rssMiB(rig.emu.pid);
    let sent = 0;
    let replies = 0;
    for (let i = 0; i < CONNECTIONS; i++) {
      const raw = new RawConn(rig.sock, 2000);
      try {
        // Most connections shake hands first (the emulator may still be letting the last one go),
        // so that the messages reach libvfio-user.
        if (r() < 0.85 && !raw.version()) continue;
        raw.timeout(50);
        const n = 1 + int(12);
        for (let m = 0; m < n; m++) {
          const cmd = r() < 0.8 ? cmds[int(cmds.length)]! : int(0x10000);
          const len = r() < 0.7 ? int(64) : r() < 0.9 ? int(4096) : int(70_000);
          const payload = Buffer.alloc(len);
          for (let b = 0; b + 4 <= len; b += 4) payload.writeUInt32LE(int(0x1_0000_0000) >>> 0, b);
          // Plausible fields now and then: a region index, a count, an argsz.
          if (len >= 16 && r() < 0.5) {
            payload.writeUInt32LE(int(10), 8);
            payload.writeUInt32LE(int(16), 12);
          }
          if (len >= 4 && r() < 0.5) payload.writeUInt32LE(len, 0);
          const msg = raw.message(cmd, payload, {
            ...(r() < 0.1 ? { size: int(0x1_0000_0000) >>> 0 } : {}),
            ...(r() < 0.1 ? { flags: int(256) } : {}),
          });
          const fds = r() < 0.3 ? Array.from({ length: 1 + int(3) }, () => pool[int(pool.length)]!) : [];
          // Sometimes only part of the message: a cut header or a body that never comes.
          const cut = r() < 0.1 ? int(msg.length) : msg.length;
          if (raw.sendBytes(msg.subarray(0, cut), fds) < 0) break;
          sent++;
          if (cut < msg.length) break;
          if (r() < 0.5 && raw.recv()) replies++;
        }
      } finally {
        raw.release();
      }
      if (i % 50 === 49) {
        expect(rig.emu.alive, `alive after ${i + 1} connections`).toBe(true);
        await controlCall(ctl, 'status', {}, 5000);
      }
    }
    for (const f of pool) libc.close(f);
    expect(rig.emu.alive).toBe(true);
    expect(sent).toBeGreaterThan(CONNECTIONS);
    expect(replies, 'some messages were answered (they reached the device)').toBeGreaterThan(0);

    // A well-formed client, once the last connection has been let go.
    const drv = rig.driver();
    const c = drv.client;
    c.mem.fill(0x3c, 0, 4096);
    const job = drv.dmaJob({ src: c.addr(0), dst: c.addr(0x10000), len: 4096, op: 'invert' });
    expect(job.status).toBe(ENUMS.DMA_STATE.DONE);
    expect(c.mem.subarray(0x10000, 0x10000 + 4096).every((b) => b === 0xc3)).toBe(true);
    rig.closeAll();
    await rig.disconnects(1);
    const st = (await controlCall(ctl, 'status', {}, 5000)) as { transport: { clientsDropped: number } };
    expect(st.transport.clientsDropped, 'connections dropped by the front door').toBeGreaterThan(0);
    expect(openFds(rig.emu.pid) - fds0, 'fds the emulator kept').toBeLessThan(8);
    expect(rssMiB(rig.emu.pid) - rss0, 'RSS growth (MiB)').toBeLessThan(128);
  });
});
