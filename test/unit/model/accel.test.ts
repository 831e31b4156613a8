import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CONSTANTS, ENUMS } from '../../../emulator/abi/abi.js';
import {
  crc32c,
  decap,
  decodeChain,
  decrypt,
  encap,
  encrypt,
} from '../../../emulator/model/accel/engines.js';
import { chainCode, SgiovSocketDriver, SgiovError } from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';

const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
const keys = { aesKey: key, vni: 0x123456 };
const msg = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 29 + seed) & 0xff);

/** Decrypts IV | ciphertext | tag with node:crypto directly, independent of the engine. */
function openSealed(k: Uint8Array, sealed: Uint8Array): Buffer {
  const d = createDecipheriv('aes-256-gcm', k, sealed.subarray(0, 12));
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
}

function seal(k: Uint8Array, plain: Uint8Array): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', k, iv);
  return Buffer.concat([iv, c.update(plain), c.final(), c.getAuthTag()]);
}

describe('engines', () => {
  it('encrypts with real AES-256-GCM: IV and tag grow the message by 28 bytes', () => {
    const e = encrypt(keys);
    const out = e.whole!(msg(1000, 1)) as Uint8Array;
    expect(out.length).toBe(1000 + CONSTANTS.CRYPTO_IV_LEN + CONSTANTS.CRYPTO_TAG_LEN);
    expect(e.outLen(1000)).toBe(1028);
    expect(openSealed(key, out)).toEqual(Buffer.from(msg(1000, 1)));
  });

  it('decrypts what node:crypto sealed, and rejects a bad tag or a short message', () => {
    const d = decrypt(keys);
    const sealed = seal(key, msg(500, 2));
    expect(Buffer.from(d.whole!(sealed) as Uint8Array)).toEqual(Buffer.from(msg(500, 2)));
    sealed[sealed.length - 1]! ^= 1;
    expect(d.whole!(sealed)).toBe('authentication failed');
    expect(d.outLen(27)).toMatch(/shorter/);
  });

  it('adds and strips the encapsulation header and refuses another VNI', () => {
    const framed = encap(keys).whole!(msg(64, 3)) as Uint8Array;
    expect(framed.length).toBe(72);
    expect(Array.from(framed.subarray(4, 7))).toEqual([0x12, 0x34, 0x56]);
    expect(decap(keys).whole!(framed)).toEqual(msg(64, 3));
    expect(decap({ ...keys, vni: 1 }).whole!(framed)).toMatch(/VNI/);
  });

  it('computes CRC32C (the standard check value)', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    const m = msg(1000, 4);
    expect(crc32c(m.subarray(300), crc32c(m.subarray(0, 300)))).toBe(crc32c(m));
  });

  it('decodes chains and refuses unknown stages or a look-aside in a chain', () => {
    expect(decodeChain(chainCode('ENCRYPT', 'DECRYPT'), keys)).toMatchObject({
      stages: [1, 2],
      lookAside: false,
    });
    expect(decodeChain(0x08, keys)).toMatch(/unknown stage/);
    expect(decodeChain(chainCode('FULL_COPY', 'FULL_COPY'), keys)).toMatch(/twice/);
    expect(decodeChain(chainCode('FULL_COPY', 'ENCRYPT'), keys)).toMatchObject({
      fullCopy: true,
      stages: [7, 1],
    });
    expect(decodeChain(chainCode('LOOKASIDE_CRC32C', 'ENCRYPT'), keys)).toMatch(/alone/);
    expect(decodeChain(0x0100, keys)).toMatch(/empty/);
  });
});

describe('executors on the data plane', () => {
  function rig() {
    const { bus, dev } = enabledDevice(32 << 20);
    const a = busAccess(bus, dev);
    for (let i = 0; i < 4; i++)
      a.writeReg(
        i === 0 ? 'CRYPTO_KEY' : `CRYPTO_KEY${i}`,
        new DataView(key.buffer).getBigUint64(i * 8, true),
      );
    a.writeReg('ENCAP_VNI', keys.vni);
    const drv = new SgiovSocketDriver(a, { d2hSlots: 4096, timeoutMs: 2000 });
    return { bus, dev, drv, a };
  }
  const loop = (drv: SgiovSocketDriver, chain: number, size = 65536) => {
    const s = drv.socket({ txSize: size, rxSize: size });
    s.connect(CONSTANTS.PORT_LOOPBACK, chain);
    return s;
  };

  it('the key registers are write-only', () => {
    const { a } = rig();
    expect(a.readReg('CRYPTO_KEY')).toBe(0n);
    expect(a.readReg('ENCAP_VNI')).toBe(BigInt(keys.vni));
    expect(a.readReg('BAD_ACCESS_COUNT')).toBe(0n);
  });

  it('L: a loopback pipe through the crypto engine returns real AES-256-GCM ciphertext', () => {
    const { drv } = rig();
    const s = loop(drv, chainCode('ENCRYPT'));
    s.send(msg(4000, 5));
    const sealed = s.recv();
    expect(sealed.length).toBe(4028);
    expect(openSealed(key, sealed)).toEqual(Buffer.from(msg(4000, 5)));
  });

  it('I: encrypt then decrypt between two sockets delivers the plaintext, including messages that wrap', () => {
    const { drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(443);
    const [c, srv] = drv.connectPair(l, {
      txSize: 16384,
      rxSize: 16384,
      chain: chainCode('ENCRYPT', 'DECRYPT'),
    });
    for (let i = 0; i < 20; i++) {
      c.send(msg(3000 + i * 100, i));
      expect(srv.recv()).toEqual(msg(3000 + i * 100, i));
    }
    srv.send(msg(10, 9));
    expect(c.recv()).toEqual(msg(10, 9)); // both directions run the chain
  });

  it('a decrypt that fails authentication is an error the receiver sees; the next message still arrives', () => {
    const { drv, dev } = rig();
    const s = loop(drv, chainCode('DECRYPT'));
    s.send(msg(100, 1)); // plaintext: no valid tag
    s.send(seal(key, msg(200, 2)));
    expect(() => s.recv()).toThrowError(SgiovError);
    drv.waitUntil(() => s.available() > 0, 'the good message');
    expect(Buffer.from(s.recv())).toEqual(Buffer.from(msg(200, 2)));
    expect(s.error).toBeNull(); // the socket itself is fine
    expect(dev.dp.counters.msgsMoved).toBe(2);
  });

  it('the failed message is reported as EBADMSG with AUTH_FAILED, in order', () => {
    const { drv } = rig();
    const s = loop(drv, chainCode('DECRYPT'));
    s.send(seal(key, msg(50, 1)));
    s.send(msg(60, 2));
    s.send(seal(key, msg(70, 3)));
    expect(Buffer.from(s.recv())).toEqual(Buffer.from(msg(50, 1)));
    let err: SgiovError | null = null;
    try {
      s.recv();
    } catch (e) {
      err = e as SgiovError;
    }
    expect(err?.errno).toBe('EBADMSG');
    expect(err?.code).toBe(ENUMS.SERR.AUTH_FAILED);
    expect(Buffer.from(s.recv())).toEqual(Buffer.from(msg(70, 3)));
  });

  it('encapsulation adds the header, decapsulation refuses a foreign one', () => {
    const { drv } = rig();
    const e = loop(drv, chainCode('ENCAP'));
    e.send(msg(100, 1));
    const framed = e.recv();
    expect(framed.length).toBe(108);
    const d = loop(drv, chainCode('DECAP'));
    d.send(framed);
    expect(d.recv()).toEqual(msg(100, 1));
    d.send(msg(100, 2));
    let err: SgiovError | null = null;
    try {
      d.recv();
    } catch (x) {
      err = x as SgiovError;
    }
    expect(err?.code).toBe(ENUMS.SERR.BAD_ENCAP);
  });

  it('M: data moves unchanged and its CRC32C arrives beside it', () => {
    const { drv } = rig();
    const s = loop(drv, chainCode('CRC32C'));
    s.send(msg(5000, 7));
    expect(s.recv()).toEqual(msg(5000, 7));
    expect(s.digests).toEqual([crc32c(msg(5000, 7))]);
  });

  it('A: the look-aside engine consumes the message and returns only its digest to the sender', () => {
    const { drv } = rig();
    const s = loop(drv, chainCode('LOOKASIDE_CRC32C'), 4096);
    for (let i = 0; i < 3; i++) s.send(msg(4000, i)); // 3 x 4000 bytes through a 4 KiB ring: each is consumed
    drv.waitUntil(() => s.digests.length === 3, 'digests');
    expect(s.digests).toEqual([0, 1, 2].map((i) => crc32c(msg(4000, i))));
    expect(s.available()).toBe(0); // nothing delivered
  });

  it('refuses a bad chain and a look-aside with a peer (EINVAL), and a chain whose output outgrows the peer ring (MSG_TOO_LARGE)', () => {
    const { drv } = rig();
    const errno = (f: () => unknown): string => {
      try {
        f();
        return 'ok';
      } catch (e) {
        return (e as SgiovError).errno;
      }
    };
    expect(errno(() => drv.socket({ txSize: 4096, rxSize: 4096 }).connect(0, 0x09))).toBe('EINVAL');
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(80);
    expect(
      errno(() => drv.socket({ txSize: 4096, rxSize: 4096 }).connect(80, chainCode('LOOKASIDE_CRC32C'))),
    ).toBe('EINVAL');
    const s = loop(drv, chainCode('ENCRYPT'), 4096);
    s.trySend(msg(4090, 1)); // 4118 bytes after encryption: never fits the 4 KiB rx ring
    drv.waitUntil(() => s.error !== null, 'SOCK_ERROR');
    expect(s.error).toBe('MSG_TOO_LARGE');
  });
});
