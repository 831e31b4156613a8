/**
 * Nothing a client, a plan or another local user does crashes, freezes or
 * steers the emulator (issue 10; docs/reliability.md): each case of the
 * issue, through the vfio-user socket (the VM-less client or a raw socket),
 * the control socket or the command line. After each, the process is alive,
 * the control socket answers, and a fresh client works. No VM.
 */
import { spawnSync } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENUMS } from '../../emulator/abi/abi.js';
import { DEFAULT_IDENTITY } from '../../emulator/pci/config.js';
import { VEC_DMA, type SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { CMD, VfioUserError } from '../../emulator/client/vfio-user-protocol.js';
import {
  F_ADD_SEALS,
  F_SEAL_GROW,
  F_SEAL_SHRINK,
  Libc,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  PROT_READ,
  PROT_WRITE,
} from '../../emulator/native/libc.js';
import { controlCall, until } from '../../qemu/vm.js';
import { repoRoot } from '../../emulator/util/paths.js';
import { startRig, type Rig } from '../support/device.js';
import { RawConn } from '../support/raw-vfio-user.js';

const libc = Libc.get();
const GIB = 2 ** 30;
const DEADLINE_MS = 1500;
let rig: Rig;
let ctl: string;

beforeAll(async () => {
  rig = await startRig('hostile', ['--control', '{dir}/ctl.sock', '--client-deadline', String(DEADLINE_MS)]);
  ctl = rig.dir.file('ctl.sock');
});
afterEach(() => rig.closeAll());
afterAll(async () => {
  await rig?.stop();
});

const rssMiB = (pid: number): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** A memfd of `size` bytes (sparse), sealed against shrinking when asked. */
function memfd(size: number, sealed = false): number {
  const fd = libc.memfd_create('sgiov-hostile', MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));
  expect(fd).toBeGreaterThanOrEqual(0);
  expect(libc.ftruncate(fd, size)).toBe(0);
  if (sealed) expect(libc.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)).toBe(0);
  return fd;
}

/** A 4 KiB invert job that must pass: the device works. */
function goodJob(drv: SgiovDriver): void {
  const c = drv.client;
  c.mem.fill(0x5a, 0, 4096);
  c.mem.fill(0, 0x10000, 0x10000 + 4096);
  const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(0x10000), len: 4096, op: 'invert' });
  expect(r.status, 'good job').toBe(ENUMS.DMA_STATE.DONE);
  expect(c.mem.subarray(0x10000, 0x10000 + 4096).every((b) => b === 0xa5)).toBe(true);
}

/** The emulator is alive, answers on its control socket, and a fresh client runs a job. */
async function healthy(): Promise<void> {
  expect(rig.emu.alive, 'the emulator is alive').toBe(true);
  const st = (await controlCall(ctl, 'status', {}, 3000)) as { transport: { clients: number } };
  expect(st.transport.clients).toBeGreaterThan(0);
  const drv = rig.driver();
  goodJob(drv);
  rig.closeAll();
}

/** The emulator logged a line matching `re` (its log comes through a pipe: waits up to 5 s). */
const logged = (re: RegExp): Promise<boolean> => until(() => re.test(rig.emu.log), 5000);

describe('hostile clients, plans and users', () => {
  it('1. a DMA_MAP past the end of its file is refused; a file truncated after DMA_MAP is a DMA error, not SIGBUS', async () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    const far = memfd(1 << 20);
    expect(() => c.mapFd(far, 1n << 40n, 0x2_0000_0000n, 1n << 20n)).toThrow(VfioUserError);
    expect(await logged(/request refused: DMA_MAP region runs past the end of its file/)).toBe(true);
    let r = drv.dmaJob({ src: 0x2_0000_0000n, dst: c.addr(0), len: 4096, op: 'copy' });
    expect(r.errorCode).toBe(ENUMS.ERR.DMA_UNMAPPED);
    drv.clearError();
    libc.close(far);

    // Unsealed: accepted, checked before each DMA; truncated, it is DMA_UNMAPPED.
    const shrink = memfd(1 << 20);
    c.mapFd(shrink, 0n, 0x3_0000_0000n, 1n << 20n);
    expect(await logged(/not sealed against shrinking/)).toBe(true);
    r = drv.dmaJob({ src: c.addr(0), dst: 0x3_0000_0000n, len: 4096, op: 'copy' });
    expect(r.status, 'DMA into the whole file works').toBe(ENUMS.DMA_STATE.DONE);
    expect(libc.ftruncate(shrink, 0)).toBe(0);
    r = drv.dmaJob({ src: 0x3_0000_0000n + 8192n, dst: c.addr(0), len: 4096, op: 'copy' });
    expect(r.errorCode, 'DMA from the truncated file').toBe(ENUMS.ERR.DMA_UNMAPPED);
    expect(await logged(/file shrank below its mapping/)).toBe(true);
    drv.clearError();
    libc.close(shrink);

    // Sealed (as QEMU's memfd backend): it cannot shrink, and is not checked again.
    const sealed = memfd(1 << 20, true);
    c.mapFd(sealed, 0n, 0x4_0000_0000n, 1n << 20n);
    expect(libc.ftruncate(sealed, 0), 'a sealed file cannot shrink').toBe(-1);
    r = drv.dmaJob({ src: c.addr(0), dst: 0x4_0000_0000n, len: 4096, op: 'copy' });
    expect(r.status).toBe(ENUMS.DMA_STATE.DONE);
    libc.close(sealed);
    goodJob(drv);
    rig.closeAll();
    await healthy();
  });

  it('2. a DMA_MAP of 6 GiB (a sparse memfd) is served: DMA lands beyond 4 GiB and across the views it is cut into', async () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    const size = 6 * GIB + 4096;
    const fd = memfd(size, true);
    const iova = 0x10_0000_0000n;
    c.mapFd(fd, 0n, iova, BigInt(size));
    for (const off of [5 * GIB, 3 * GIB - 2048, size - 4096]) {
      c.mem.fill(0x5a, 0, 4096);
      const r = drv.dmaJob({ src: c.addr(0), dst: iova + BigInt(off), len: 4096, op: 'invert' });
      expect(r.status, `DMA at ${off}`).toBe(ENUMS.DMA_STATE.DONE);
      // Read it back through a mapping of our own at that file offset.
      const page = Math.floor(off / 4096) * 4096;
      const p = libc.mmap(null, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, page);
      const v = new Uint8Array(libc.view(p, Math.min(8192, size - page)));
      expect(
        v.subarray(off - page, off - page + 4096).every((b) => b === 0xa5),
        `data at ${off}`,
      ).toBe(true);
      libc.munmap(p, 8192);
    }
    libc.close(fd);
    rig.closeAll();
    await healthy();
  });

  it('3. a fault rule of 1e303 ms is refused naming the field, through control and as a plan file; --faults /dev/zero too', async () => {
    rig.keepOnFailure();
    const rule = { point: 'job.start', do: { action: 'delay', ms: 1e303 } };
    await expect(controlCall(ctl, 'faults', { op: 'add', rule }, 3000)).rejects.toThrow(
      /do\.ms: must be a number >= 0 and at most 3600000/,
    );
    const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
    const plan = rig.dir.file('huge-delay.json');
    writeFileSync(plan, JSON.stringify({ rules: [rule] }));
    for (const [file, msg] of [
      [plan, /rules\[0\]\.do\.ms: must be a number/],
      ['/dev/zero', /larger than 1048576 bytes; not a plan/],
    ] as const) {
      const r = spawnSync(
        process.execPath,
        [cli, 'serve', '--socket', rig.dir.file('x.sock'), '--faults', file],
        {
          encoding: 'utf8',
          timeout: 20_000,
        },
      );
      expect(r.status, `${file}: usage error`).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    await healthy();
  });

  it('4a. a client that connects and says nothing: control answers meanwhile; it is dropped at the deadline; the next attaches', async () => {
    rig.keepOnFailure();
    const silent = new RawConn(rig.sock, 10_000);
    await controlCall(ctl, 'status', {}, 3000);
    // A client connecting now waits behind the silent one until its deadline, then attaches.
    const drv = rig.driver();
    expect(await logged(/client failed the vfio-user handshake; dropped: silent past the deadline/)).toBe(
      true,
    );
    expect(silent.recv(), 'the silent client was hung up on').toBeNull();
    silent.release();
    goodJob(drv);
    rig.closeAll();
    await healthy();
  });

  it('4b. a REGION_WRITE header whose body never comes: control answers; the client is dropped at the deadline', async () => {
    rig.keepOnFailure();
    const raw = new RawConn(rig.sock, 10_000);
    expect(raw.version()).not.toBeNull();
    const hdr = raw.message(CMD.REGION_WRITE, Buffer.alloc(0), { size: 16 + 16 + 4096 });
    expect(raw.sendBytes(hdr)).toBe(16);
    await controlCall(ctl, 'status', {}, 3000);
    expect(raw.recv(), 'hung up at the deadline').toBeNull();
    expect(await logged(/client dropped: a message started but not finished within the deadline/)).toBe(true);
    raw.release();
    await healthy();
  });

  it('4c. a client that sends requests and never reads the replies is dropped; memory stays bounded', async () => {
    rig.keepOnFailure();
    const rss0 = rssMiB(rig.emu.pid);
    const raw = new RawConn(rig.sock, 3000);
    expect(raw.version()).not.toBeNull();
    const p = Buffer.alloc(16);
    p.writeUInt32LE(7, 8); // the config region
    p.writeUInt32LE(4, 12);
    let sent = 0;
    while (sent < 200_000 && raw.send(CMD.REGION_READ, p) > 0) sent++;
    expect(sent, 'the emulator stopped taking requests (it hung up)').toBeLessThan(200_000);
    expect(await logged(/client dropped: the client does not read its replies/)).toBe(true);
    raw.release();
    await controlCall(ctl, 'status', {}, 3000);
    expect(rssMiB(rig.emu.pid) - rss0, 'RSS growth (MiB)').toBeLessThan(64);
    await healthy();
  });

  it('fds go with the message that carried them when messages come back to back (as QEMU sends DMA_MAPs)', async () => {
    rig.keepOnFailure();
    const raw = new RawConn(rig.sock, 5000);
    expect(raw.version()).not.toBeNull();
    const map = (iova: bigint, size: bigint): Buffer => {
      const p = Buffer.alloc(32);
      p.writeUInt32LE(32, 0);
      p.writeUInt32LE(3, 4);
      p.writeBigUInt64LE(iova, 16);
      p.writeBigUInt64LE(size, 24);
      return p;
    };
    const small = memfd(4096);
    // A: a region without an fd (fine); B: 1 MiB backed by a 4 KiB file (refused). Both sent before any reply.
    expect(raw.sendBytes(raw.message(CMD.DMA_MAP, map(0x5_0000_0000n, 1n << 20n), { id: 90 }))).toBe(48);
    expect(raw.sendBytes(raw.message(CMD.DMA_MAP, map(0x6_0000_0000n, 1n << 20n), { id: 91 }), [small])).toBe(
      48,
    );
    const replies = [raw.recv(), raw.recv()];
    libc.close(small);
    raw.release();
    const byId = new Map(replies.map((r) => [r?.msgId, r]));
    expect(byId.get(90)?.flags, 'A: accepted').toBe(1);
    expect(byId.get(91)?.flags, 'B: refused (its own fd is too small)').toBe(0x21);
    await healthy();
  });

  it('4d. many clients connecting at once are queued, not refused (listen backlog)', async () => {
    rig.keepOnFailure();
    const socks: Socket[] = [];
    const results = await Promise.all(
      Array.from(
        { length: 32 },
        () =>
          new Promise<string>((resolve) => {
            const s = createConnection(rig.sock);
            socks.push(s);
            s.once('connect', () => resolve('connected'));
            s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
          }),
      ),
    );
    for (const s of socks) s.destroy();
    expect(results.filter((r) => r !== 'connected')).toEqual([]);
    await healthy();
  });

  it('5. an MSI-X vector backed by a pipe is refused (only eventfds), so no interrupt can block the device thread', async () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const fds = Buffer.alloc(8);
    expect(libc.pipe2(fds, 0x80000 /* O_CLOEXEC */)).toBe(0);
    const [rd, wr] = [fds.readInt32LE(0), fds.readInt32LE(4)];
    expect(() => drv.client.setMsixFds(3, [wr])).toThrow(/EINVAL/);
    expect(await logged(/request refused: SET_IRQS fd is not an eventfd/)).toBe(true);
    libc.close(rd);
    libc.close(wr);
    // The vector's eventfd is still the client's: interrupts on it arrive.
    const r = drv.dmaJob({ src: drv.client.addr(0), dst: drv.client.addr(0x8000), len: 16, op: 'copy' });
    expect(r.irqVector).toBe(VEC_DMA);
    rig.closeAll();
    await healthy();
  });

  it('6. one REGION_WRITE of 1 MiB (the negotiated maximum) gets one reply, and the stream stays in step', async () => {
    rig.keepOnFailure();
    const before = (rig.emu.log.match(/\n/g) ?? []).length;
    const raw = new RawConn(rig.sock, 5000);
    expect(raw.version()).not.toBeNull();
    const p = Buffer.alloc(16 + (1 << 20));
    p.writeUInt32LE(0, 8); // BAR0
    p.writeUInt32LE(1 << 20, 12);
    expect(raw.sendBytes(raw.message(CMD.REGION_WRITE, p, { id: 77 }))).toBe(16 + p.length);
    const reply = raw.recv();
    expect(reply?.msgId, 'one reply, to the write').toBe(77);
    // The next request is answered as itself: nothing of the write's data was taken for headers.
    const q = Buffer.alloc(16);
    q.writeUInt32LE(7, 8);
    q.writeUInt32LE(2, 12);
    expect(raw.sendBytes(raw.message(CMD.REGION_READ, q, { id: 78 }))).toBe(32);
    const next = raw.recv();
    expect(next?.msgId).toBe(78);
    expect(next?.payload.readUInt16LE(16), 'the vendor id').toBe(DEFAULT_IDENTITY.vendorId);
    // A header libvfio-user rejects without reading its body (not a command; a command without
    // payload): refused whole by the front door, so the body is not read as headers either.
    const junk = Buffer.alloc(64, 0x10); // would parse as headers of 0x10101010 bytes
    expect(raw.sendBytes(raw.message(CMD.REGION_READ, junk, { id: 79, flags: 1 }))).toBe(80);
    expect(raw.recv()?.msgId).toBe(79);
    expect(raw.sendBytes(raw.message(CMD.DEVICE_GET_INFO, Buffer.alloc(0), { id: 80 }))).toBe(16);
    expect(raw.recv()?.msgId).toBe(80);
    expect(raw.sendBytes(raw.message(CMD.REGION_READ, q, { id: 81 }))).toBe(32);
    expect(raw.recv()?.payload.readUInt16LE(16), 'still in step').toBe(DEFAULT_IDENTITY.vendorId);
    raw.release();
    const lines = (rig.emu.log.match(/\n/g) ?? []).length - before;
    expect(lines, 'log lines for one request (not one per 16 bytes of data)').toBeLessThan(20);
    await healthy();
  });

  it('7. 200,000 control requests whose replies are never read: the client is cut off, memory stays bounded; a long line is refused', async () => {
    rig.keepOnFailure();
    const rss0 = rssMiB(rig.emu.pid);
    const s = createConnection(ctl);
    s.on('error', () => {});
    s.pause();
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const line = JSON.stringify({ id: 1, cmd: 'status' }) + '\n';
    s.write(line.repeat(200_000));
    const cut = await Promise.race([
      closed.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 30_000)),
    ]);
    expect(cut, 'the emulator disconnected the client that does not read').toBe(true);
    expect(await logged(/control client does not read its replies; disconnected/)).toBe(true);
    expect(rssMiB(rig.emu.pid) - rss0, 'RSS growth (MiB)').toBeLessThan(64);

    const long = createConnection(ctl);
    let reply = '';
    long.on('data', (d) => (reply += d.toString()));
    const ended = new Promise<void>((r) => long.once('close', () => r()));
    long.write('{"cmd":"status","pad":"' + 'x'.repeat(300 << 10));
    await ended;
    expect(reply).toMatch(/request line longer than 262144 bytes/);
    await healthy();
  });

  it('8. both sockets are owner-only under umask 000; --socket-group and --control-group give a group rw', async () => {
    rig.keepOnFailure();
    const old = process.umask(0);
    let loose: Rig;
    try {
      loose = await startRig('umask', ['--control', '{dir}/ctl.sock']);
    } finally {
      process.umask(old);
    }
    try {
      expect((statSync(loose.sock).mode & 0o777).toString(8)).toBe('600');
      expect((statSync(loose.dir.file('ctl.sock')).mode & 0o777).toString(8)).toBe('600');
    } finally {
      await loose.stop();
    }
    const gid = process.getgid!();
    const grp = await startRig('group', [
      '--control',
      '{dir}/ctl.sock',
      '--socket-group',
      String(gid),
      '--control-group',
      String(gid),
    ]);
    try {
      for (const p of [grp.sock, grp.dir.file('ctl.sock')]) {
        expect((statSync(p).mode & 0o777).toString(8), p).toBe('660');
        expect(statSync(p).gid).toBe(gid);
      }
    } finally {
      await grp.stop();
    }
  });

  it('SIGTERM is honoured while a client holds the socket silent', async () => {
    rig.keepOnFailure();
    const held = await startRig('sigterm', ['--client-deadline', '600000']);
    const raw = new RawConn(held.sock, 10_000);
    held.emu.proc.kill('SIGTERM');
    expect(await until(() => !held.emu.alive, 5000), 'exited after SIGTERM').toBe(true);
    raw.release();
    await held.stop();
  });
});
