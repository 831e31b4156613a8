/**
 * The driver side of the SG-IOV data plane, in TypeScript: what the kernel
 * module and libsgiov do in the guest, for tests and benchmarks that drive
 * the device without a VM (through the vfio-user client) or without a
 * transport at all (through the in-memory bus).
 *
 * It owns a piece of guest memory: the D2H FIFO, its producer word, the
 * command slots and the sockets' rings. Calls are synchronous: a call that
 * needs the device's answer pumps until it comes (DeviceAccess.wait).
 */
import { addrFromWords, addrToWords } from '../abi/addr.js';
import { BITS, CONSTANTS, ENUMS, reg, SHM, STRUCTS } from '../abi/abi.js';
import { atomicLoad64, atomicStore64 } from '../util/atomics.js';
import { ERRNO_NAME, SERR_NAME, SgiovError } from './errors.js';
import { SgiovSocket } from './socket.js';

export { SgiovError, SgiovSocket };

const D2H = ENUMS.SIG_D2H;
const SIG = ENUMS.SIG_H2D;
const CMD = Object.fromEntries(STRUCTS.cmd!.fields.map((f) => [f.name, f.offset])) as Record<string, number>;

/** How the driver reaches the device. */
export interface DeviceAccess {
  /** Guest memory the driver may use, and its guest address. */
  mem: Uint8Array;
  memBase: bigint;
  /** The shared-memory BAR as mapped by the host. */
  shm: Uint8Array;
  readReg(name: string): bigint;
  writeReg(name: string, value: bigint | number): void;
  /** Rings the KICK doorbell (a trapped MMIO write). */
  kick(): void;
  /** Lets the device make progress (in-memory bus: run it; remote device: yield briefly). */
  wait(): void;
  /**
   * Optional: sleeps until MSI-X `vector` fires or `timeoutMs` passes (a
   * device in another process). With it and DriverOptions.irqWait the
   * driver waits as a kernel driver does: arm the D2H interrupt, look once
   * more, sleep.
   */
  waitIrq?(vector: number, timeoutMs: number): void;
}

export interface DriverOptions {
  d2hSlots?: number;
  cmdSlots?: number;
  mode?: 'hybrid' | 'poll' | 'kick';
  /** Give up waiting for the device after this long. */
  timeoutMs?: number;
  /**
   * Recovery (ABI 1.1): after this long without the device taking the oldest
   * H2D signal, write its slot again (a lost write; idempotent); after this
   * long with a D2H slot still empty, ask again (RESYNC). Default 5 ms.
   */
  retryMs?: number;
  /** While waiting, check the device's health (ID, DP_STATUS) this often. Default 100 ms. */
  healthMs?: number;
  /**
   * Wait for D2H signals by interrupt (needs DeviceAccess.waitIrq) instead
   * of polling with wait(). Each sleep is bounded (1 ms), so a lost
   * interrupt costs at most that: the driver then looks at the FIFO anyway.
   */
  irqWait?: boolean;
  /** The MSI-X vector for D2H signals when irqWait is on. Default 0. */
  d2hVector?: number;
}

/** The longest sleep of an interrupt wait: a lost interrupt is found by looking at the FIFO after it. */
const IRQ_WAIT_MS = 1;

/** A simple first-fit allocator over the driver's guest memory, 4 KiB aligned. */
class Allocator {
  private free: { off: number; len: number }[];
  constructor(size: number) {
    this.free = [{ off: 0, len: size }];
  }
  alloc(len: number, align = 4096): number {
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i]!;
      const start = Math.ceil(f.off / align) * align;
      if (start + len > f.off + f.len) continue;
      const before = { off: f.off, len: start - f.off };
      const after = { off: start + len, len: f.off + f.len - start - len };
      this.free.splice(i, 1, ...[before, after].filter((x) => x.len > 0));
      return start;
    }
    throw new SgiovError(`no ${len} bytes of guest memory left for the driver`, 'ENOMEM');
  }
  release(off: number, len: number): void {
    this.free.push({ off, len });
    this.free.sort((a, b) => a.off - b.off);
    const merged: { off: number; len: number }[] = [];
    for (const f of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.off + last.len === f.off) last.len += f.len;
      else merged.push({ ...f });
    }
    this.free = merged;
  }
}

/** A tenant's name and own keys (struct sgiov_tenant_cfg). */
export interface TenantOptions {
  name?: string;
  /** 32 bytes. */
  aesKey?: Uint8Array;
  vni?: number;
  /** The flags word as written (to test bad ones); default: from the fields given. */
  rawFlags?: number;
}

export interface CmdFields {
  sid: number;
  port?: number;
  txAddr?: bigint;
  rxAddr?: bigint;
  txSize?: number;
  rxSize?: number;
  arg?: number;
  chain?: number;
  tenant?: number;
  capMbps?: number;
  /** SGIOV_CMD_FLAG_* bits (ABI 1.2). */
  flags?: number;
  /** BIND, CONNECT (flag ADDR): the 16-byte address, in tx_addr/rx_addr (instead of txAddr/rxAddr). */
  addr?: Uint8Array;
}

/** A chain code from stage names, first stage first (at most 4). */
export function chainCode(...stages: (keyof typeof ENUMS.STAGE)[]): number {
  if (stages.length > 4) throw new SgiovError('at most 4 stages', 'EINVAL');
  return stages.reduce((code, st, i) => (code | (ENUMS.STAGE[st] << (8 * i))) >>> 0, 0);
}

export class SgiovSocketDriver {
  private readonly d2hSlots: number;
  private readonly cmdSlots: number;
  private readonly timeoutMs: number;
  private readonly alloc: Allocator;
  private d2hOff = 0;
  private prodOff = 0;
  private cmdOff = 0;
  private d2hCons = 0;
  private h2dProd = 0;
  private readonly shm: DataView;
  private readonly mem: DataView;
  private readonly freeSlots: number[] = [];
  private readonly cmdDone = new Map<number, { status: number; result: number }>();
  readonly sockets = new Map<number, SgiovSocket>();
  private nextSid = 0;
  private readonly freeSids: number[] = [];
  /** Signals the device rejected without naming a socket (DEV_ERROR). */
  readonly devErrors: { id: number; code: string }[] = [];
  d2hSeen = 0;
  /** Recovery: what the driver did to ride out lost or repeated signals. */
  readonly recovery = { h2dRewrites: 0, d2hResyncs: 0, repeatsIgnored: 0, cmdResent: 0 };
  /** Set once the device reset itself ('DEVICE_RESET') or vanished ('DEVICE_REMOVED'): every socket has failed. */
  deviceLost: string | null = null;
  private readonly retryMs: number;
  private readonly healthMs: number;
  /** The D2H vector when waiting by interrupt, else -1. */
  private readonly irqVector: number;
  /** What was written to each H2D slot, to write it again when the device does not take it. */
  private readonly h2dShadow = new BigUint64Array(SHM.H2D_SLOTS);
  private h2dSeenCons = 0;
  private h2dStallSince = 0;
  private d2hHoleSince = 0;
  /** Command slots waiting for CMD_DONE (a repeated CMD_DONE for any other is no news). */
  private readonly cmdWaiting = new Set<number>();

  constructor(
    readonly dev: DeviceAccess,
    opts: DriverOptions = {},
  ) {
    this.d2hSlots = opts.d2hSlots ?? 65536;
    this.cmdSlots = opts.cmdSlots ?? 256;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retryMs = opts.retryMs ?? 5;
    this.healthMs = opts.healthMs ?? 100;
    this.irqVector = opts.irqWait && dev.waitIrq ? (opts.d2hVector ?? 0) : -1;
    this.alloc = new Allocator(dev.mem.length);
    this.shm = new DataView(dev.shm.buffer, dev.shm.byteOffset, dev.shm.byteLength);
    this.mem = new DataView(dev.mem.buffer, dev.mem.byteOffset, dev.mem.byteLength);
    for (let i = this.cmdSlots - 1; i >= 0; i--) this.freeSlots.push(i);
    const mode = { hybrid: ENUMS.H2D_MODE.HYBRID, poll: ENUMS.H2D_MODE.POLL, kick: ENUMS.H2D_MODE.KICK }[
      opts.mode ?? 'hybrid'
    ];
    this.kickAlways = mode === ENUMS.H2D_MODE.KICK;
    this.d2hOff = this.alloc.alloc(this.d2hSlots * 8);
    this.prodOff = this.alloc.alloc(64, 64);
    this.cmdOff = this.alloc.alloc(this.cmdSlots * CONSTANTS.CMD_SLOT_SIZE);
    dev.writeReg('H2D_MODE', mode);
    dev.writeReg('D2H_BASE', this.addr(this.d2hOff));
    dev.writeReg('D2H_SLOTS', this.d2hSlots);
    dev.writeReg('D2H_PROD_ADDR', this.addr(this.prodOff));
    dev.writeReg('CMD_BASE', this.addr(this.cmdOff));
    dev.writeReg('CMD_SLOTS', this.cmdSlots);
    if (this.irqVector >= 0) dev.writeReg('D2H_VECTOR', this.irqVector);
    this.h2dProd = this.shm.getUint32(SHM.H2D_PROD, true);
    this.h2dSeenCons = this.h2dProd;
    dev.mem.fill(0, this.d2hOff, this.d2hOff + this.d2hSlots * 8); // a slot still 0 below the producer is a lost signal
    this.d2hCons = 0;
    this.shm.setUint32(SHM.D2H_CONS, 0, true);
    dev.writeReg('DP_CONTROL', 1);
    if ((Number(dev.readReg('DP_STATUS')) & 1) === 0) {
      throw new SgiovError(
        `the device refused to start its data plane (ERROR_CODE ${dev.readReg('ERROR_CODE')}, ERROR_ADDR 0x${dev.readReg('ERROR_ADDR').toString(16)})`,
        'EIO',
      );
    }
  }

  private readonly kickAlways: boolean;

  addr(off: number): bigint {
    return this.dev.memBase + BigInt(off);
  }

  // ---- H2D -------------------------------------------------------------------

  /** Publishes one signal; kicks the device when it sleeps. */
  signal(type: number, id: number, value: number): void {
    this.signalRaw((BigInt(type) << 56n) | (BigInt(id & 0xffffff) << 32n) | BigInt(value >>> 0));
  }

  /** Publishes a raw 64-bit signal (tests use it for malformed ones). */
  signalRaw(sig: bigint): void {
    this.waitUntil(
      () => (this.h2dProd - this.shm.getUint32(SHM.H2D_CONS, true)) >>> 0 < SHM.H2D_SLOTS,
      'room in the H2D FIFO',
    );
    this.shm.setBigUint64(SHM.H2D_RING + (this.h2dProd % SHM.H2D_SLOTS) * 8, sig, true);
    this.h2dShadow[this.h2dProd % SHM.H2D_SLOTS] = sig;
    this.h2dProd = (this.h2dProd + 1) >>> 0;
    this.shm.setUint32(SHM.H2D_PROD, this.h2dProd, true);
    if (this.kickAlways || this.shm.getUint32(SHM.H2D_FLAGS, true) & 1) this.dev.kick();
  }

  // ---- D2H -------------------------------------------------------------------

  /** Reads every D2H signal the device has produced; returns how many. */
  process(): number {
    const prod = this.mem.getUint32(this.prodOff, true);
    if (this.h2dProd !== this.h2dSeenCons) this.h2dRetry();
    let n = 0;
    while (this.d2hCons !== prod) {
      const at = this.d2hOff + (this.d2hCons % this.d2hSlots) * 8;
      // A slot waited on (RESYNC sent) may be written while it is read: one 8-byte load there.
      const sig = this.d2hHoleSince !== 0 ? atomicLoad64(this.mem, at) : this.mem.getBigUint64(at, true);
      if (sig === 0n) {
        this.d2hLost();
        break;
      } // lost on its way: ask for it, keep the order
      this.mem.setBigUint64(at, 0n, true);
      this.d2hHoleSince = 0;
      this.d2hCons = (this.d2hCons + 1) >>> 0;
      n++;
      this.handle(Number(sig >> 56n), Number((sig >> 32n) & 0xffffffn), Number(sig & 0xffffffffn));
    }
    if (n > 0) this.shm.setUint32(SHM.D2H_CONS, this.d2hCons, true);
    this.d2hSeen += n;
    return n;
  }

  /** The oldest H2D signal is not taken: after retryMs write its slot again (the device waits at a lost write), and kick when it sleeps. */
  private h2dRetry(): void {
    const cons = this.shm.getUint32(SHM.H2D_CONS, true);
    const now = Date.now();
    if (cons !== this.h2dSeenCons) {
      this.h2dSeenCons = cons;
      this.h2dStallSince = now;
      return;
    }
    if (this.h2dStallSince === 0) {
      this.h2dStallSince = now;
      return;
    }
    if (now - this.h2dStallSince < this.retryMs) return;
    // The device may be reading this slot right now: one 8-byte store.
    atomicStore64(this.shm, SHM.H2D_RING + (cons % SHM.H2D_SLOTS) * 8, this.h2dShadow[cons % SHM.H2D_SLOTS]!);
    this.recovery.h2dRewrites++;
    this.h2dStallSince = now;
    // A device polling the FIFO needs no kick (a trapped access); one asleep asks for it.
    if (this.kickAlways || this.shm.getUint32(SHM.H2D_FLAGS, true) & 1) this.dev.kick();
  }

  /** D2H slot d2hCons is empty below the producer: RESYNC it (again every retryMs until it comes). */
  private d2hLost(): void {
    const now = Date.now();
    if (this.d2hHoleSince !== 0 && now - this.d2hHoleSince < this.retryMs) return;
    this.d2hHoleSince = now;
    this.recovery.d2hResyncs++;
    this.signal(ENUMS.SIG_H2D.RESYNC, 0, this.d2hCons);
  }

  /**
   * Reads ID and DP_STATUS: a device that reads all-ones is gone (surprise
   * removal), one whose data plane stopped has reset. Either fails every
   * socket (ENODEV / ECONNRESET). Returns deviceLost.
   */
  checkHealth(): string | null {
    if (this.deviceLost) return this.deviceLost;
    if (Number(this.dev.readReg('ID')) === 0xffff_ffff) this.lose('DEVICE_REMOVED');
    else if ((Number(this.dev.readReg('DP_STATUS')) & 1) === 0) this.lose('DEVICE_RESET');
    return this.deviceLost;
  }

  private lose(why: string): void {
    this.deviceLost = why;
    for (const s of this.sockets.values()) s.onError(-1, why);
  }

  private handle(type: number, id: number, value: number): void {
    switch (type) {
      case D2H.RX_TAIL:
        if (!this.sockets.get(id >>> 1)?.onRxTail(value)) this.recovery.repeatsIgnored++;
        break;
      case D2H.TX_HEAD:
        this.sockets.get(id >>> 1)?.onTxHead(value);
        break;
      case D2H.CMD_DONE: {
        if (!this.cmdWaiting.has(id)) {
          this.recovery.repeatsIgnored++;
          break;
        } // a repeat, or an answer already taken
        this.cmdWaiting.delete(id);
        const off = this.cmdOff + id * CONSTANTS.CMD_SLOT_SIZE;
        this.cmdDone.set(id, { status: value, result: this.mem.getUint32(off + CMD.result!, true) });
        break;
      }
      case D2H.EVENT:
        this.sockets.get(id)?.onEvent(value);
        break;
      case D2H.MSG_ERROR:
        this.sockets.get(id >>> 1)?.onMsgError(value);
        break;
      case D2H.DIGEST:
        this.sockets.get(id >>> 1)?.onDigest(value);
        break;
      case D2H.SOCK_ERROR:
        this.sockets.get(id)?.onError(value);
        break;
      case D2H.DEV_ERROR:
        this.devErrors.push({ id, code: SERR_NAME[value] ?? String(value) });
        if (value === ENUMS.SERR.DEVICE_RESET) this.lose('DEVICE_RESET');
        // A poisoned CMD signal was discarded: the command did not run; send it again (the device ignores a taken one).
        else if (value === ENUMS.SERR.POISONED && this.cmdWaiting.has(id)) {
          this.recovery.cmdResent++;
          this.signal(ENUMS.SIG_H2D.CMD, id, 0);
        }
        break;
      default:
        this.devErrors.push({ id, code: `unknown D2H signal 0x${type.toString(16)}` });
    }
  }

  /** Pumps until `pred` holds; throws ETIMEDOUT after the driver's timeout. */
  waitUntil(pred: () => boolean, what: string): void {
    const start = Date.now();
    const end = start + this.timeoutMs;
    let health = start + this.healthMs;
    for (;;) {
      this.process();
      if (pred()) return;
      const now = Date.now();
      if (now > health) {
        health = now + this.healthMs;
        const lost = this.checkHealth();
        if (lost)
          throw new SgiovError(
            `${lost === 'DEVICE_REMOVED' ? 'the device is gone' : 'the device reset'} while waiting for ${what}`,
            lost === 'DEVICE_REMOVED' ? 'ENODEV' : 'ECONNRESET',
          );
      }
      if (now > end) throw new SgiovError(`timed out waiting for ${what}`, 'ETIMEDOUT');
      if (this.irqVector >= 0) {
        if (this.sleepForIrq(pred)) return;
      } else this.dev.wait();
    }
  }

  /**
   * Arms the D2H interrupt, looks once more (a signal written before the
   * device saw the arm raises none), and sleeps until the interrupt or the
   * bounded timeout. The device clears the arm when it fires. True when
   * `pred` held on that last look (a predicate may take what it found, a
   * message, so it is not asked twice).
   */
  private sleepForIrq(pred: () => boolean): boolean {
    this.shm.setUint32(SHM.D2H_ARM, 1, true);
    this.process();
    if (pred()) return true;
    this.dev.waitIrq!(this.irqVector, IRQ_WAIT_MS);
    return false;
  }

  // ---- commands --------------------------------------------------------------

  /** Runs one command and waits for its answer; throws SgiovError with the errno on failure. */
  command(op: number, fields: CmdFields): number {
    return this.complete(this.submit(op, fields));
  }

  /** Sends a command without waiting; complete(slot) collects the answer. */
  submit(op: number, fields: CmdFields): number {
    // op 0 marks a slot the device has taken (ABI 1.1): it would ignore the command and never answer.
    if (!Number.isInteger(op) || op < 1 || op > 255)
      throw new SgiovError(`command op ${op} is not 1..255`, 'EINVAL');
    this.waitUntil(() => this.freeSlots.length > 0, 'a free command slot');
    const slot = this.freeSlots.pop()!;
    const off = this.cmdOff + slot * CONSTANTS.CMD_SLOT_SIZE;
    this.dev.mem.fill(0, off, off + CONSTANTS.CMD_SLOT_SIZE);
    this.mem.setUint8(off + CMD.op!, op);
    this.mem.setUint8(off + CMD.flags!, fields.flags ?? 0);
    this.mem.setUint16(off + CMD.port!, fields.port ?? 0, true);
    this.mem.setUint32(off + CMD.sid!, fields.sid, true);
    const [lo, hi] = fields.addr ? addrToWords(fields.addr) : [fields.txAddr ?? 0n, fields.rxAddr ?? 0n];
    this.mem.setBigUint64(off + CMD.tx_addr!, lo, true);
    this.mem.setBigUint64(off + CMD.rx_addr!, hi, true);
    this.mem.setUint32(off + CMD.tx_size!, fields.txSize ?? 0, true);
    this.mem.setUint32(off + CMD.rx_size!, fields.rxSize ?? 0, true);
    this.mem.setUint32(off + CMD.arg!, fields.arg ?? 0, true);
    this.mem.setUint32(off + CMD.chain!, fields.chain ?? 0, true);
    this.mem.setUint32(off + CMD.tenant!, fields.tenant ?? 0, true);
    this.mem.setUint32(off + CMD.cap_mbps!, fields.capMbps ?? 0, true);
    this.cmdWaiting.add(slot);
    this.signal(SIG.CMD, slot, 0);
    return slot;
  }

  /** Runs one command; its result and the (address, port) the device wrote back into the slot (NAME). */
  commandName(op: number, fields: CmdFields): { result: number; addr: Uint8Array; port: number } {
    const slot = this.submit(op, fields);
    const result = this.complete(slot);
    const off = this.cmdOff + slot * CONSTANTS.CMD_SLOT_SIZE;
    return {
      result,
      addr: addrFromWords(
        this.mem.getBigUint64(off + CMD.tx_addr!, true),
        this.mem.getBigUint64(off + CMD.rx_addr!, true),
      ),
      port: this.mem.getUint16(off + CMD.port!, true),
    };
  }

  /** Whether the answer to `slot` has come. */
  answered(slot: number): boolean {
    this.process();
    return this.cmdDone.has(slot);
  }

  /** Waits for the answer to `slot`; the result, or SgiovError with the errno. (On a timeout the slot stays taken: the device may still answer into it.) */
  complete(slot: number): number {
    this.waitUntil(() => this.cmdDone.has(slot), `the answer to command slot ${slot}`);
    const r = this.cmdDone.get(slot)!;
    this.cmdDone.delete(slot);
    this.freeSlots.push(slot);
    if (r.status !== 0)
      throw new SgiovError(
        `command failed: ${ERRNO_NAME[r.status] ?? r.status}`,
        ERRNO_NAME[r.status] ?? `E${r.status}`,
        r.status,
      );
    return r.result;
  }

  /** Sets a tenant's scheduler weight and demand cap (Gbps per used accelerator; omitted: none). */
  setTenant(tenant: number, weight: number, capGbps?: number): void {
    this.command(ENUMS.CMD_OP.TENANT, {
      sid: 0,
      tenant,
      arg: Math.round(weight * 1000),
      capMbps: capGbps === undefined ? 0 : Math.round(capGbps * 1000),
    });
  }

  // ---- tenants made by the driver ------------------------------------------------

  /**
   * Creates a tenant (TENANT_CREATE): its id (`opts.id`, or the lowest free
   * one), or SgiovError with the errno (EEXIST, EINVAL, ENOSPC, EFAULT).
   */
  createTenant(opts: TenantOptions & { id?: number; weight?: number; capGbps?: number } = {}): number {
    return this.withTenantCfg(opts, true, (cfg) =>
      this.command(ENUMS.CMD_OP.TENANT_CREATE, {
        sid: 0,
        tenant: opts.id ?? 0,
        arg: Math.round((opts.weight ?? 1) * 1000),
        capMbps: opts.capGbps === undefined ? 0 : Math.round(opts.capGbps * 1000),
        txAddr: cfg,
      }),
    );
  }

  /** Deletes a tenant (TENANT_DELETE): EBUSY while one of its sockets exists, ENOENT for no such tenant. */
  deleteTenant(id: number): void {
    this.command(ENUMS.CMD_OP.TENANT_DELETE, { sid: 0, tenant: id });
  }

  /** Gives a tenant its own AES key and/or VNI (TENANT_KEYS). */
  setTenantKeys(id: number, keys: Omit<TenantOptions, 'name'>): void {
    this.withTenantCfg(keys, false, (cfg) =>
      this.command(ENUMS.CMD_OP.TENANT_KEYS, { sid: 0, tenant: id, txAddr: cfg }),
    );
  }

  /** Runs `f` with a struct sgiov_tenant_cfg in guest memory (its address; 0n when there is nothing to say and `optional`). */
  private withTenantCfg<T>(o: TenantOptions, optional: boolean, f: (addr: bigint) => T): T {
    if (
      optional &&
      o.name === undefined &&
      o.aesKey === undefined &&
      o.vni === undefined &&
      o.rawFlags === undefined
    )
      return f(0n);
    const F = Object.fromEntries(STRUCTS.tenant_cfg!.fields.map((x) => [x.name, x.offset])) as Record<
      string,
      number
    >;
    const size = STRUCTS.tenant_cfg!.size;
    const off = this.alloc.alloc(size, 64);
    const mem = this.dev.mem;
    mem.fill(0, off, off + size);
    try {
      const name = new TextEncoder().encode(o.name ?? '');
      if (name.length > CONSTANTS.TENANT_NAME_LEN)
        throw new SgiovError(`tenant name longer than ${CONSTANTS.TENANT_NAME_LEN} bytes`, 'EINVAL');
      mem.set(name, off + F.name!);
      let flags = 0;
      if (o.aesKey !== undefined) {
        if (o.aesKey.length !== 32) throw new SgiovError('an AES-256 key is 32 bytes', 'EINVAL');
        mem.set(o.aesKey, off + F.aes_key!);
        flags |= 1 << BITS.TENANT_CFG.AES;
      }
      if (o.vni !== undefined) {
        this.mem.setUint32(off + F.vni!, o.vni, true);
        flags |= 1 << BITS.TENANT_CFG.VNI;
      }
      this.mem.setUint32(off + F.flags!, o.rawFlags ?? flags, true);
      return f(this.addr(off));
    } finally {
      this.alloc.release(off, size);
    }
  }

  // ---- sockets ---------------------------------------------------------------

  /** Creates a socket device with its two rings in guest memory. */
  socket(opts: { txSize?: number; rxSize?: number; tenant?: number } = {}): SgiovSocket {
    const txSize = opts.txSize ?? CONSTANTS.RING_DEFAULT;
    const rxSize = opts.rxSize ?? CONSTANTS.RING_DEFAULT;
    const sid = this.freeSids.pop() ?? this.nextSid++;
    const txOff = this.alloc.alloc(txSize);
    const rxOff = this.alloc.alloc(rxSize);
    try {
      this.command(ENUMS.CMD_OP.CREATE, {
        sid,
        txAddr: this.addr(txOff),
        rxAddr: this.addr(rxOff),
        txSize,
        rxSize,
        tenant: opts.tenant ?? 0,
      });
    } catch (e) {
      this.alloc.release(txOff, txSize);
      this.alloc.release(rxOff, rxSize);
      this.freeSids.push(sid);
      throw e;
    }
    const s = new SgiovSocket(this, sid, txOff, txSize, rxOff, rxSize);
    this.sockets.set(sid, s);
    return s;
  }

  /**
   * A connected pair through `listener`: connects `opts.client` (or a new
   * socket with the given rings and tenant) with `opts.chain`, accepts it
   * into a socket with the same rings and tenant, and returns [client, server].
   */
  connectPair(
    listener: SgiovSocket,
    opts: { txSize?: number; rxSize?: number; tenant?: number; chain?: number; client?: SgiovSocket } = {},
  ): [SgiovSocket, SgiovSocket] {
    if (listener.port === null) throw new SgiovError(`socket ${listener.sid} is not listening`, 'EINVAL');
    const rings = { txSize: opts.txSize, rxSize: opts.rxSize, tenant: opts.tenant };
    const client = opts.client ?? this.socket(rings);
    const connected = client.connectStart(listener.port, opts.chain ?? 0);
    this.waitUntil(() => listener.pendingConnections > 0, 'the connection request');
    const server = listener.accept(rings);
    connected();
    return [client, server];
  }

  /** @internal */
  released(s: SgiovSocket): void {
    this.sockets.delete(s.sid);
    this.alloc.release(s.txOff, s.txSize);
    this.alloc.release(s.rxOff, s.rxSize);
    this.freeSids.push(s.sid);
  }

  ringBytes(off: number, len: number): Uint8Array {
    return this.dev.mem.subarray(off, off + len);
  }
}

/** Register access by ABI name, for DeviceAccess implementations. */
export function regOffset(name: string): { offset: number; width: number } {
  const r = reg(name);
  return { offset: r.offset, width: r.width };
}
