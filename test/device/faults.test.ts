/**
 * Fault injection in a real emulator process, through the vfio-user client:
 * the control interface's `faults` command, a socket workload under dropped
 * signals and interrupts, and surprise removal (MMIO all-ones, the emulator
 * keeps running, a control reset brings the device back).
 */
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSTANTS, reg } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { runFaultStress } from '../../emulator/client/fault-workload.js';
import { EmulatorProcess, RunDir, until } from '../../qemu/vm.js';

let dir: RunDir;
let emu: EmulatorProcess;
const ctlPath = (): string => dir.file('ctl.sock');

beforeAll(async () => {
  dir = new RunDir('sgiov-faults-');
  emu = new EmulatorProcess({
    socketPath: dir.file('s.sock'),
    logPath: dir.file('e.log'),
    logLevel: 'info',
    extraArgs: ['--control', ctlPath()],
  });
  await emu.ready();
  expect(await until(() => existsSync(ctlPath()), 5000)).toBe(true);
});

afterAll(async () => {
  await emu?.stop();
  dir?.remove();
});

/** One control request. */
function ctl(
  cmd: string,
  args: Record<string, unknown> = {},
): Promise<{ ok: boolean; result?: any; error?: string }> {
  return new Promise((resolve, reject) => {
    const c = connect(ctlPath());
    let buf = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify({ id: 1, cmd, args }) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        c.destroy();
        resolve(JSON.parse(buf.slice(0, nl)));
      }
    });
    c.on('error', reject);
  });
}

describe('faults through a real emulator', () => {
  it('control faults: add, list, clear; a bad rule names its field; status counts injections', async () => {
    expect(
      await ctl('faults', { op: 'add', rule: { name: 'lose-irq', point: 'irq', do: { action: 'drop' } } }),
    ).toMatchObject({ ok: true, result: { id: 'lose-irq' } });
    const bad = await ctl('faults', {
      op: 'add',
      rule: { point: 'dma.read', trigger: { every: 0 }, do: { action: 'drop' } },
    });
    expect(bad).toMatchObject({ ok: false });
    expect(bad.error).toMatch(/rule\.trigger\.every: must be a whole number >= 1/);
    const list = await ctl('faults', { op: 'list' });
    expect(list.result.rules.map((r: { id: string }) => r.id)).toEqual(['lose-irq']);
    expect((await ctl('faults', { op: 'clear' })).result).toEqual({ cleared: 1 });
    expect((await ctl('faults')).result.rules).toEqual([]);
    expect((await ctl('status')).result.device.faults).toMatchObject({ removed: false, rules: 0 });
  });

  it('sockets through the vfio-user client ride out dropped and duplicated signals and lost interrupts', async () => {
    for (const rule of [
      { name: 'd2h', point: 'signal.d2h', trigger: { every: 9 }, do: { action: 'drop' } },
      { name: 'h2d', point: 'signal.h2d', trigger: { every: 11 }, do: { action: 'drop' } },
      { name: 'dup', point: 'signal.h2d', trigger: { every: 5 }, do: { action: 'duplicate' } },
      { name: 'irq', point: 'irq', do: { action: 'drop' } },
      {
        name: 'crc',
        point: 'dma.write',
        trigger: { every: 13 },
        do: { action: 'corrupt', offset: 2, xor: 4 },
      },
    ])
      expect((await ctl('faults', { op: 'add', rule })).ok).toBe(true);
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 16 << 20 });
    try {
      new SgiovDriver(client).bringUp();
      const drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 1024, timeoutMs: 10_000 });
      new DataView(drv.dev.shm.buffer, drv.dev.shm.byteOffset).setUint32(0x100, 1, true); // armed: an interrupt would fire, and is dropped
      const rep = runFaultStress(drv, {
        sockets: 8,
        messagesPerPair: 100,
        minSize: 16,
        maxSize: 2000,
        ringSize: 4096,
        deadlineMs: 30_000,
      });
      expect(rep).toMatchObject({ lost: 0, duplicated: 0, corrupted: 0, reordered: 0, deviceLost: null });
      expect(rep.delivered + rep.failed).toBe(rep.sent);
      expect(rep.sent).toBe(400);
      expect(rep.failed).toBeGreaterThan(0); // the corrupted ones, reported
      expect(drv.recovery.h2dRewrites).toBeGreaterThan(0);
      expect(drv.recovery.d2hResyncs).toBeGreaterThan(0);
      const st = (await ctl('status')).result.device;
      expect(st.faults.injections['signal.d2h'].drop).toBeGreaterThan(0);
      expect(st.faults.injections['dma.write'].corrupt).toBe(rep.failed);
      expect(st.dataPlane.counters.resyncs).toBeGreaterThan(0);
    } finally {
      client.close();
      await ctl('faults', { op: 'clear' });
    }
  });

  it('surprise removal: MMIO reads all-ones, the emulator keeps running, a control reset brings the device back', async () => {
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 16 << 20 });
    try {
      new SgiovDriver(client).bringUp();
      const drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), {
        d2hSlots: 1024,
        timeoutMs: 5000,
        healthMs: 20,
      });
      const s = drv.socket({ txSize: 4096, rxSize: 4096 });
      s.connect(CONSTANTS.PORT_LOOPBACK);
      expect(
        (
          await ctl('faults', {
            op: 'add',
            rule: {
              name: 'yank',
              point: 'mmio.read',
              match: { reg: 'SCRATCH' },
              trigger: { once: true },
              do: { action: 'surprise_removal' },
            },
          })
        ).ok,
      ).toBe(true);
      expect(client.bar0Read(reg('SCRATCH').offset)).toBe(0xffff_ffffn);
      expect(client.bar0Read(reg('ID').offset)).toBe(0xffff_ffffn);
      client.bar0Write(reg('SCRATCH').offset, 5n);
      s.trySend(Uint8Array.of(1));
      expect(() => s.recv()).toThrow(/gone/);
      expect(drv.deviceLost).toBe('DEVICE_REMOVED');
      expect(emu.alive).toBe(true);
      expect((await ctl('status')).result.device.faults.removed).toBe(true);
      expect(await ctl('reset')).toMatchObject({ ok: true });
      expect(client.bar0Read(reg('ID').offset)).toBe(BigInt(CONSTANTS.ID_MAGIC));
      expect(client.bar0Read(reg('SCRATCH').offset)).toBe(0n);
      // Usable again: a fresh driver.
      new SgiovDriver(client).bringUp();
      const drv2 = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 1024, timeoutMs: 5000 });
      const s2 = drv2.socket({ txSize: 4096, rxSize: 4096 });
      s2.connect(CONSTANTS.PORT_LOOPBACK);
      s2.send(Uint8Array.of(9, 8));
      expect(s2.recv()).toEqual(Uint8Array.of(9, 8));
    } finally {
      client.close();
      await ctl('faults', { op: 'clear' });
    }
  });
});
