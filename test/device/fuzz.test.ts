/**
 * The bad-input battery through the real transport: an emulator process
 * and the VM-less vfio-user client send seeded random MMIO (every BAR,
 * every size: REGION_READ / REGION_WRITE), random H2D signals and random
 * command descriptors (garbage in the 64-byte slots), in bursts; after each
 * burst the stress workload runs on fresh sockets and must come through
 * intact. The emulator must not crash and its memory must not grow without
 * bound. SGIOV_FUZZ_ACCESSES sets the MMIO accesses (default 100,000; `npm
 * run fuzz` runs 2,000,000).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BARS, reg, SHM } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { rng, runStress } from '../../emulator/client/stress.js';
import { startRig, type Rig } from '../support/device.js';

const ACCESSES = Number(process.env.SGIOV_FUZZ_ACCESSES ?? 100_000);
const BURSTS = 4;

let rig: Rig;
beforeAll(async () => {
  rig = await startRig('fuzz');
});
afterAll(async () => {
  await rig?.stop();
});

const rssBytes = (pid: number): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;

describe('bad-input battery through the vfio-user client', () => {
  it(`survives ${ACCESSES} random MMIO accesses, random signals and random descriptors; stress traffic stays intact`, async () => {
    rig.keepOnFailure();
    const d = rig.driver({ memBytes: 32 << 20 });
    const c = d.client;
    const drv = new SgiovSocketDriver(clientAccess(c, 1 << 20), { d2hSlots: 4096, timeoutMs: 5_000 });
    const r = rng(0xf0220);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    // Registers whose change would end the run rather than test it (reset, the data plane's stop, its FIFOs).
    const spare = [
      'CONTROL',
      'DP_CONTROL',
      'D2H_BASE',
      'D2H_SLOTS',
      'D2H_PROD_ADDR',
      'CMD_BASE',
      'CMD_SLOTS',
      'H2D_MODE',
    ].map((n) => [reg(n).offset, reg(n).offset + reg(n).width] as const);
    let refused = 0;
    const unanswered: string[] = [];
    const rssBefore = rssBytes(rig.emu.pid);
    const perBurst = Math.ceil(ACCESSES / BURSTS);
    for (let b = 0; b < BURSTS; b++) {
      const t0 = Date.now();
      for (let i = 0; i < perBurst; i++) {
        // The calls block: give the test runner's own messages a turn now and then.
        if (i % 2000 === 0) await new Promise((res) => setImmediate(res));
        const bar = pick([0, 1, 2, 3, 4, 5]);
        const size = pick([1, 2, 4, 8]);
        let off = Math.floor(
          r() * (bar === BARS.REGS_BAR ? 0x2000 : bar === BARS.SHM_BAR ? BARS.SHM_BAR_SIZE + 0x100 : 0x1100),
        );
        if (bar === BARS.REGS_BAR && spare.some(([lo, hi]) => off >= lo && off < hi)) off = 0x800;
        // The shared-memory BAR's FIFO (indexes, flags and the H2D ring) is the
        // driver's: random words there are its signals overwritten, which the
        // random signals below already cover, and each would cost the driver a
        // command timeout. The rest of the BAR, and past its end, is fair game.
        const h2dEnd = SHM.H2D_RING + SHM.H2D_SLOTS * 8;
        if (bar === BARS.SHM_BAR && off < h2dEnd) off = h2dEnd + (off % (BARS.SHM_BAR_SIZE + 0x100 - h2dEnd));
        try {
          if (r() < 0.5) c.regionRead(bar, off, size);
          else
            c.regionWrite(
              bar,
              off,
              size,
              BigInt(Math.floor(r() * 2 ** 32)) | (BigInt(Math.floor(r() * 2 ** 32)) << 32n),
            );
        } catch {
          refused++; // an access the transport refuses (a BAR that does not exist) is an errno, not a crash
        }
        if (i % 100 === 0) {
          // A random signal that names no socket of ours (theirs would be failed, as they should be).
          drv.signal(
            pick([1, 2, 3, 4, 5, 0x3f, 0x81, 0xff]),
            0x10000 + Math.floor(r() * 0xef000),
            Math.floor(r() * 2 ** 32),
          );
        }
        if (i % 250 === 0) {
          // A random command descriptor: any op, fields of garbage, for socket ids far from ours.
          // Any op but 0, which marks a slot the device has already taken (ABI 1.1): it is never answered, by design.
          const op = 1 + Math.floor(r() * 255);
          const fields = {
            sid: 100_000 + Math.floor(r() * 1_000_000),
            port: Math.floor(r() * 65536),
            arg: Math.floor(r() * 2 ** 32),
            txAddr: BigInt(Math.floor(r() * 2 ** 40)),
            rxAddr: BigInt(Math.floor(r() * 2 ** 40)),
            txSize: Math.floor(r() * 2 ** 32),
            rxSize: Math.floor(r() * 2 ** 32),
            chain: Math.floor(r() * 2 ** 32),
            tenant: Math.floor(r() * 8),
          };
          try {
            drv.command(op, fields);
          } catch (e) {
            // An errno is what a bad descriptor should get; no answer at all would be a device bug.
            if ((e as { errno?: string }).errno === 'ETIMEDOUT')
              unanswered.push(
                `op ${op} ${JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`,
              );
          }
        }
      }
      const t1 = Date.now();
      // The device still carries traffic, whole and in order.
      const s = runStress(drv, {
        sockets: 16,
        messagesPerPair: 50,
        minSize: 1,
        maxSize: 4096,
        ringSize: 4096,
        seed: b + 1,
        port: 9700 + b,
      });
      expect(s, `after burst ${b + 1}`).toMatchObject({
        sent: 400,
        received: 400,
        lost: 0,
        duplicated: 0,
        reordered: 0,
        corrupted: 0,
      });
      if (process.env.SGIOV_FUZZ_VERBOSE)
        process.stderr.write(
          `fuzz burst ${b + 1}: ${perBurst} accesses in ${t1 - t0} ms, stress in ${Date.now() - t1} ms\n`,
        );
      await new Promise((res) => setImmediate(res));
    }
    expect(unanswered).toEqual([]);
    expect(rig.emu.alive).toBe(true);
    expect(Number(c.bar0Read(reg('BAD_ACCESS_COUNT').offset, 4))).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    // No unbounded growth: the emulator's memory after the battery, against before.
    expect(rssBytes(rig.emu.pid) - rssBefore).toBeLessThan(96 << 20);
  }, 600_000);
});
