/**
 * The device's register file as data: the state a reset puts back
 * (DeviceState) and, for each register of the ABI table (emulator/abi/abi.ts),
 * how it reads and writes. registerTable() joins the two by name and
 * refuses to build when they disagree; the MMIO dispatch (device.ts) finds
 * the register an access hits and calls its behaviour. Offsets, widths and
 * access rights come from the ABI.
 */
import { ABI_VERSION, BITS, CONSTANTS, ENUMS, REGISTERS, type RegisterDef } from '../abi/abi.js';
import type { DataPlane } from './dataplane/dataplane.js';

export const bit = (n: number): number => (1 << n) >>> 0;
export const U32 = 0xffff_ffffn;
export const U64 = 0xffff_ffff_ffff_ffffn;
const ERR = ENUMS.ERR;
export type ErrorCode = (typeof ERR)[keyof typeof ERR];

/** Everything a reset puts back. */
export interface DeviceState {
  control: number;
  errorCode: number;
  errorAddr: bigint;
  irqStatus: number;
  irqMask: number;
  errVector: number;
  scratch: number;
  irqCount: number;
  badAccessCount: number;
  dmaCompleted: number;
  dmaSrc: bigint;
  dmaDst: bigint;
  dmaLen: number;
  dmaOp: number;
  dmaVector: number;
  dmaStatus: number;
  dmaTag: number;
}

export function powerOnState(): DeviceState {
  return {
    control: 0,
    errorCode: ERR.NONE,
    errorAddr: 0n,
    irqStatus: 0,
    irqMask: 0,
    errVector: 0,
    scratch: 0,
    irqCount: 0,
    badAccessCount: 0,
    dmaCompleted: 0,
    dmaSrc: 0n,
    dmaDst: 0n,
    dmaLen: 0,
    dmaOp: 0,
    dmaVector: 0,
    dmaStatus: ENUMS.DMA_STATE.IDLE,
    dmaTag: 0,
  };
}

/** How a register behaves: read gives its full-width value, write takes it. */
export interface RegBehaviour {
  read: (s: DeviceState) => bigint;
  write?: (s: DeviceState, v: bigint) => void;
}

/** What the registers act on besides the state: the device around them. */
export interface RegisterHost {
  readonly dp: DataPlane;
  readonly msixVectors: number;
  /** The Bus Master Enable bit (STATUS.BUS_MASTER). */
  busMasterEnabled(): boolean;
  /** CONTROL.RESET written by the guest. */
  guestReset(reason: string): void;
  /** A guest error: latched in ERROR_CODE and signalled. */
  latchError(code: ErrorCode, addr: bigint, why: string): void;
  /** A 4-byte BAR0 write at `offset` refused (counted and logged as a bad access). */
  refuseWrite(offset: number, why: string): void;
}

/** A register and its behaviour. */
export interface Register {
  readonly def: RegisterDef;
  readonly b: RegBehaviour;
}

/** offset -> register, for the dispatch: every register of the ABI with its behaviour; throws when the two disagree. */
export function registerTable(dev: RegisterHost): Map<number, Register> {
  const byOffset = new Map<number, Register>();
  const all = behaviours(dev);
  for (const def of REGISTERS) {
    const b = all[def.name];
    if (!b) throw new Error(`register ${def.name} has no behaviour in the model`);
    byOffset.set(def.offset, { def, b });
  }
  for (const name of Object.keys(all)) {
    if (!REGISTERS.some((r) => r.name === name)) throw new Error(`model register ${name} is not in the ABI`);
  }
  return byOffset;
}

/** The register file as data: name -> behaviour. Access rights come from the ABI. */
function behaviours(dev: RegisterHost): Record<string, RegBehaviour> {
  const num = (v: number): bigint => BigInt(v >>> 0);
  return {
    ID: { read: () => num(CONSTANTS.ID_MAGIC) },
    VERSION: { read: () => num((ABI_VERSION.major << 16) | ABI_VERSION.minor) },
    CAPS: {
      read: () =>
        num(bit(BITS.CAP.DMA_ENGINE) | bit(BITS.CAP.MSIX) | bit(BITS.CAP.SOCKETS) | bit(BITS.CAP.SHM_FIFO)),
    },
    STATUS: { read: (s) => num(statusBits(s, dev)) },
    CONTROL: {
      read: (s) => num(s.control),
      write: (s, v) => {
        if (Number(v) & bit(BITS.CONTROL.RESET)) {
          dev.guestReset('CONTROL.RESET written by the guest');
          return;
        }
        s.control = Number(v) & bit(BITS.CONTROL.ENABLE);
      },
    },
    ERROR_CODE: {
      read: (s) => num(s.errorCode),
      write: (s) => {
        s.errorCode = ERR.NONE;
        s.errorAddr = 0n;
      },
    },
    ERROR_ADDR: { read: (s) => s.errorAddr },
    IRQ_STATUS: {
      read: (s) => num(s.irqStatus),
      write: (s, v) => {
        s.irqStatus = (s.irqStatus & ~Number(v)) >>> 0;
      },
    },
    IRQ_MASK: {
      read: (s) => num(s.irqMask),
      write: (s, v) => {
        s.irqMask = Number(v) & (bit(BITS.IRQ.DMA_DONE) | bit(BITS.IRQ.ERROR));
      },
    },
    ERR_VECTOR: {
      read: (s) => num(s.errVector),
      write: (s, v) => {
        s.errVector = Number(v & U32);
      },
    },
    NUM_VECTORS: { read: () => num(dev.msixVectors) },
    SCRATCH: {
      read: (s) => num(s.scratch),
      write: (s, v) => {
        s.scratch = Number(v & U32);
      },
    },
    IRQ_COUNT: { read: (s) => num(s.irqCount) },
    BAD_ACCESS_COUNT: { read: (s) => num(s.badAccessCount) },
    DMA_COMPLETED: { read: (s) => num(s.dmaCompleted) },
    DMA_SRC: {
      read: (s) => s.dmaSrc,
      write: (s, v) => {
        s.dmaSrc = v;
      },
    },
    DMA_DST: {
      read: (s) => s.dmaDst,
      write: (s, v) => {
        s.dmaDst = v;
      },
    },
    DMA_LEN: {
      read: (s) => num(s.dmaLen),
      write: (s, v) => {
        s.dmaLen = Number(v & U32);
      },
    },
    DMA_OP: {
      read: (s) => num(s.dmaOp),
      write: (s, v) => {
        s.dmaOp = Number(v & U32);
      },
    },
    DMA_VECTOR: {
      read: (s) => num(s.dmaVector),
      write: (s, v) => {
        s.dmaVector = Number(v & U32);
      },
    },
    DMA_STATUS: { read: (s) => num(s.dmaStatus) },
    DMA_TAG: { read: (s) => num(s.dmaTag) },
    ...dataPlaneRegisters(dev, num),
  };
}

/** The data plane's registers: configuration (fixed while it runs), control, counters. */
function dataPlaneRegisters(dev: RegisterHost, num: (v: number) => bigint): Record<string, RegBehaviour> {
  const dp = dev.dp;
  const c = dp.cfg;
  const conf = <K extends keyof typeof c>(key: K, name: string): RegBehaviour => ({
    read: () => (typeof c[key] === 'bigint' ? (c[key] as bigint) : num(c[key] as number)),
    write: (_s, v) => {
      if (dp.running) {
        dev.refuseWrite(
          REGISTERS.find((r) => r.name === name)!.offset,
          'data plane configuration is fixed while it runs',
        );
        return;
      }
      (c as unknown as Record<string, number | bigint>)[key] =
        typeof c[key] === 'bigint' ? v : Number(v & U32);
    },
  });
  const ctr = (get: () => number): RegBehaviour => ({ read: () => num(get() >>> 0) });
  return {
    MAX_SOCKETS: { read: () => num(dp.socks.max) },
    H2D_MODE: conf('h2dMode', 'H2D_MODE'),
    D2H_BASE: conf('d2hBase', 'D2H_BASE'),
    D2H_SLOTS: conf('d2hSlots', 'D2H_SLOTS'),
    D2H_VECTOR: conf('d2hVector', 'D2H_VECTOR'),
    D2H_PROD_ADDR: conf('d2hProdAddr', 'D2H_PROD_ADDR'),
    CMD_BASE: conf('cmdBase', 'CMD_BASE'),
    CMD_SLOTS: conf('cmdSlots', 'CMD_SLOTS'),
    IRQ_MOD_COUNT: conf('modCount', 'IRQ_MOD_COUNT'),
    IRQ_MOD_USECS: conf('modUsecs', 'IRQ_MOD_USECS'),
    DP_CONTROL: {
      read: () => num(dp.running ? bit(BITS.DP_CONTROL.START) : 0),
      write: (s, v) => {
        const start = (Number(v) & bit(BITS.DP_CONTROL.START)) !== 0;
        if (start && !dp.running) {
          if (!(s.control & bit(BITS.CONTROL.ENABLE))) {
            dev.latchError(ERR.NOT_ENABLED, 0n, 'data plane start while the device is not enabled');
            return;
          }
          const bad = dp.start();
          if (bad)
            dev.latchError(
              ERR.DP_BAD_CONFIG,
              BigInt(REGISTERS.find((r) => r.name === bad)?.offset ?? 0),
              `data plane start refused: ${bad} is not valid`,
            );
        } else if (!start && dp.running) {
          dp.stop('DP_CONTROL cleared by the guest');
        }
      },
    },
    DP_STATUS: {
      read: () =>
        num(
          (dp.running ? bit(BITS.DP_STATUS.RUNNING) : 0) |
            (dp.running && !dp.sleeping ? bit(BITS.DP_STATUS.POLLING) : 0),
        ),
    },
    SOCKETS_OPEN: ctr(() => dp.socks.open),
    H2D_SIGNALS: ctr(() => dp.counters.h2dSignals),
    D2H_SIGNALS: ctr(() => dp.counters.d2hSignals),
    KICKS: ctr(() => dp.counters.kicks),
    SIGNAL_ERRORS: ctr(() => dp.counters.signalErrors),
    MSGS_MOVED: ctr(() => dp.counters.msgsMoved),
    BYTES_MOVED: { read: () => BigInt(dp.counters.bytesMoved) },
    ...Object.fromEntries(
      [0, 1, 2, 3].map((i): [string, RegBehaviour] => [
        i === 0 ? 'CRYPTO_KEY' : `CRYPTO_KEY${i}`,
        {
          read: () => 0n, // keys are write-only
          write: (_s, v) => {
            new DataView(dp.keys.aesKey.buffer).setBigUint64(i * 8, v & U64, true);
          },
        },
      ]),
    ),
    ENCAP_VNI: {
      read: () => num(dp.keys.vni),
      write: (_s, v) => {
        dp.keys.vni = Number(v) & 0xffffff;
      },
    },
  };
}

/** The STATUS register. */
function statusBits(s: DeviceState, dev: RegisterHost): number {
  let v = bit(BITS.STATUS.READY);
  if (s.control & bit(BITS.CONTROL.ENABLE)) v |= bit(BITS.STATUS.ENABLED);
  if (s.errorCode !== ERR.NONE) v |= bit(BITS.STATUS.ERROR);
  if (dev.busMasterEnabled()) v |= bit(BITS.STATUS.BUS_MASTER);
  return v >>> 0;
}
