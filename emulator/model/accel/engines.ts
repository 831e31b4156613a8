/**
 * The accelerator engines' real work, as transformations a warp pipe runs
 * (see jobgen.ts). Crypto is real AES-256-GCM from node:crypto; the
 * encapsulation engine adds and strips a VxLAN-style header; CRC32C is the
 * look-aside engine's digest.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { CONSTANTS, ENUMS } from '../../abi/abi.js';
import { COPY, type Transform } from './jobgen.js';
import { joinBytes } from '../../util/bytes.js';
import { crc32c } from '../../util/crc.js';

export { crc32c };

const IV = CONSTANTS.CRYPTO_IV_LEN;
const TAG = CONSTANTS.CRYPTO_TAG_LEN;
const HDR = CONSTANTS.ENCAP_HDR_LEN;

export interface EngineKeys {
  /** 32 bytes. */
  aesKey: Uint8Array;
  vni: number;
}

/** AES-256-GCM encrypt: out = IV (12) | ciphertext | tag (16). */
export function encrypt(keys: EngineKeys): Transform {
  return {
    name: 'encrypt',
    bytewise: false,
    outLen: (len) => len + IV + TAG,
    whole: (input) => joinBytes(sealParts(keys, input)),
    // Straight into the sink: node:crypto allocates the ciphertext anyway.
    wholeParts: (input) => sealParts(keys, input),
  };
}

function sealParts(keys: EngineKeys, input: Uint8Array): Uint8Array[] {
  const iv = randomFillSync(new Uint8Array(IV));
  const c = createCipheriv('aes-256-gcm', keys.aesKey, iv);
  const a = c.update(input);
  const b = c.final();
  return b.length > 0 ? [iv, a, b, c.getAuthTag()] : [iv, a, c.getAuthTag()];
}

/** AES-256-GCM decrypt: rejects a message whose tag does not verify. */
export function decrypt(keys: EngineKeys): Transform {
  return {
    name: 'decrypt',
    bytewise: false,
    outLen: (len) => (len < IV + TAG ? `a ${len}-byte message is shorter than IV and tag` : len - IV - TAG),
    whole: (input) => {
      const d = createDecipheriv('aes-256-gcm', keys.aesKey, input.subarray(0, IV));
      d.setAuthTag(input.subarray(input.length - TAG));
      const body = input.subarray(IV, input.length - TAG);
      try {
        const a = d.update(body);
        const b = d.final();
        if (b.length === 0) return new Uint8Array(a.buffer, a.byteOffset, a.length);
        const out = new Uint8Array(a.length + b.length);
        out.set(a);
        out.set(b, a.length);
        return out;
      } catch {
        return 'authentication failed';
      }
    },
  };
}

/** Encapsulation: an 8-byte header (flags 0x08, 24-bit VNI) before the message. */
export function encap(keys: EngineKeys): Transform {
  return {
    name: 'encap',
    bytewise: false,
    outLen: (len) => len + HDR,
    whole: (input) => {
      const out = new Uint8Array(input.length + HDR);
      out[0] = 0x08;
      out[4] = (keys.vni >>> 16) & 0xff;
      out[5] = (keys.vni >>> 8) & 0xff;
      out[6] = keys.vni & 0xff;
      out.set(input, HDR);
      return out;
    },
  };
}

/** Decapsulation: strips the header; refuses a missing one or another VNI. */
export function decap(keys: EngineKeys): Transform {
  return {
    name: 'decap',
    bytewise: false,
    outLen: (len) => (len < HDR ? `a ${len}-byte message has no encapsulation header` : len - HDR),
    whole: (input) => {
      const vni = (input[4]! << 16) | (input[5]! << 8) | input[6]!;
      if (input[0] !== 0x08 || vni !== keys.vni)
        return `bad encapsulation header (flags 0x${input[0]!.toString(16)}, VNI ${vni}, expected ${keys.vni})`;
      return input.subarray(HDR);
    },
  };
}

/** A pipe's chain: the stage codes of a CONNECT, decoded. */
export interface Chain {
  code: number;
  stages: number[];
  /** The in-line transformation (identity when there is none). */
  transform: Transform;
  /** Executor M: a digest of each delivered message goes to the receiver. */
  digestToReceiver: boolean;
  /** Executor A: the message is consumed and only its digest returns to the sender. */
  lookAside: boolean;
  /** Executor F: staged in device memory (the sender's space freed at once) rather than moved zero-copy (Z). */
  fullCopy: boolean;
  /** The SERR code for a message the transformation refuses. */
  errorCode: number;
}

/**
 * Decodes a chain code; returns an error text for an unknown stage or a bad
 * combination. ENCRYPT and ENCAP use `keys` (the sender's), DECRYPT and
 * DECAP `rxKeys` (the receiver's; the same by default).
 */
export function decodeChain(code: number, keys: EngineKeys, rxKeys: EngineKeys = keys): Chain | string {
  const S = ENUMS.STAGE;
  const stages: number[] = [];
  for (let i = 0; i < 4; i++) {
    const st = (code >>> (8 * i)) & 0xff;
    if (st === S.NONE) {
      if (code >>> (8 * i) !== 0) return `stage ${i + 1} is empty but later stages are set`;
      break;
    }
    stages.push(st);
  }
  const inline: Transform[] = [];
  let digestToReceiver = false;
  let lookAside = false;
  let fullCopy = false;
  let errorCode: number = ENUMS.SERR.AUTH_FAILED;
  for (const st of stages) {
    switch (st) {
      case S.ENCRYPT:
        inline.push(encrypt(keys));
        break;
      case S.DECRYPT:
        inline.push(decrypt(rxKeys));
        break;
      case S.ENCAP:
        inline.push(encap(keys));
        break;
      case S.DECAP:
        inline.push(decap(rxKeys));
        errorCode = ENUMS.SERR.BAD_ENCAP;
        break;
      case S.CRC32C:
        digestToReceiver = true;
        break;
      case S.LOOKASIDE_CRC32C:
        lookAside = true;
        break;
      case S.FULL_COPY:
        if (fullCopy) return 'FULL_COPY given twice';
        fullCopy = true;
        break;
      default:
        return `unknown stage ${st}`;
    }
  }
  if (lookAside && stages.length !== 1) return 'a look-aside stage stands alone';
  return { code, stages, transform: compose(inline), digestToReceiver, lookAside, fullCopy, errorCode };
}

/** Stages run in order; the first refusal stops the message. */
export function compose(ts: Transform[]): Transform {
  if (ts.length === 0) return COPY;
  if (ts.length === 1) return ts[0]!;
  return {
    name: ts.map((t) => t.name).join('+'),
    bytewise: false,
    outLen: (len) => {
      let n: number | string = len;
      for (const t of ts) {
        n = t.outLen(n);
        if (typeof n === 'string') return n;
      }
      return n;
    },
    whole: (input) => {
      let cur: Uint8Array = input;
      for (const t of ts) {
        const n = t.outLen(cur.length);
        if (typeof n === 'string') return n;
        if (t.bytewise) {
          const o = new Uint8Array(cur.length);
          t.map!(cur, o);
          cur = o;
          continue;
        }
        const o = t.whole!(cur);
        if (typeof o === 'string') return o;
        cur = o;
      }
      return cur;
    },
  };
}
