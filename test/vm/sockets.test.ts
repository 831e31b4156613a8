/**
 * End to end: the socket data plane from a real guest. sgiov.ko drives the
 * Cross-FIFO and offers /dev/sgiov; the guest's tools (linked against
 * libsgiov) measure ping-pong latency and stream throughput, then run
 * sgiov-stress: 4096 sockets at once (2048 connections through listen /
 * connect / accept inside the device) on one epoll loop, sizes from 1 byte
 * to 1 MiB on the big connections (rings of 1 MiB) and up to 4 KiB on the
 * others (4 KiB rings, so that thousands fit in 512 MiB of guest memory),
 * every message numbered and checksummed. Before them, sgiov-sockcheck checks
 * the semantics (loopback, partial reads, mapped rings, EOF, back-pressure,
 * errnos) and sgiov-chains the executor chains through the module's ioctls
 * (key and VNI, ENCRYPT/DECRYPT, ENCAP/DECAP, a refused message as EBADMSG
 * in its place, CRC32C and look-aside digests, chains the device refuses).
 * Needs the setup and a build, like the other VM tests.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { EmulatorProcess, QemuVm, RunDir, type GuestLine } from '../../qemu/vm.js';

const SOCKETS = 4096;
const MSGS = 16;
const MAX_SIZE = 1 << 20;
const BIG_CONNS = 8;
const VM_S = 420;

let dir: RunDir;
let emu: EmulatorProcess;
let keep = false;
const sock = (): string => dir.file('sgiov.sock');

beforeAll(async () => {
  dir = new RunDir('sgiov-vmsockets-');
  emu = new EmulatorProcess({ socketPath: sock(), logPath: dir.file('emulator.log'), logLevel: 'info' });
  await emu.ready();
});

afterAll(async () => {
  await emu?.stop();
  if (emu) expect(existsSync(sock())).toBe(false);
  if (keep) process.stderr.write(`VM test files kept in ${dir.path}\n`);
  else dir?.remove();
});

const num = (l: GuestLine | undefined, k: string): number => Number(l?.fields[k]);

describe.sequential('SG-IOV sockets from a real guest', () => {
  it(
    `runs ping, perf and ${SOCKETS} concurrent sockets with 1 B..1 MiB messages without loss, duplication, reordering or corruption`,
    async () => {
      onTestFailed(() => {
        keep = true;
      });
      const args = [
        'sgiov.ping=-c,200,-s,4096',
        'sgiov.perf=-t,3,-s,131072',
        `sgiov.stress=-n,${SOCKETS},-m,${MSGS},-s,${MAX_SIZE},-b,${BIG_CONNS},-r,4096,-t,${VM_S - 60}`,
        `sgiov.tool_timeout=${VM_S - 30}`,
      ].join(' ');
      const vm = new QemuVm({
        socketPath: sock(),
        consolePath: dir.file('sockets.console.log'),
        scenario: 'sockets',
        timeoutS: VM_S,
        extraAppend: args,
      });
      try {
        await vm.waitFor((l) => l.kind === 'done', (VM_S - 10) * 1000);
        await vm.exit(15_000);
      } finally {
        if (vm.alive) await vm.stop();
      }
      const report = vm.lines
        .filter((l) =>
          ['sockcheck', 'chains', 'ping', 'perf', 'stress', 'log', 'dp', 'rmmod_busy'].includes(l.kind),
        )
        .map((l) => l.raw)
        .join('\n');
      process.stderr.write(`${report}\n`);

      expect(vm.find('insmod')[0]?.fields.rc).toBe('0');
      expect(vm.find('dp')[0]?.raw).toMatch(/^dp running dev=\/dev\/sgiov /);

      // Socket semantics and errnos, one check per line.
      const checks = vm.find('check');
      expect(checks.length).toBeGreaterThan(40);
      for (const c of checks) expect(c.fields.ok, c.raw).toBe('1');
      expect(vm.find('sockcheck')[0]?.fields).toMatchObject({ failed: '0', rc: '0' });
      for (const name of [
        'loop_recv_part1',
        'loop_recv_wrap',
        'map_wrapped',
        'refused',
        'bp_filled',
        'eof_zero',
        'eof_send_epipe',
        'serr_errno',
      ]) {
        expect(
          checks.some((c) => c.fields.name === name),
          name,
        ).toBe(true);
      }

      // Executor chains from the guest (sgiov-chains), also one check per line.
      expect(vm.find('chains')[0]?.fields).toMatchObject({ failed: '0', rc: '0' });
      expect(Number(vm.find('chains')[0]?.fields.checks)).toBeGreaterThan(50);
      for (const name of [
        'keys_aes',
        'keys_vni',
        'chain_unknown_stage',
        'chain_lookaside_peer',
        'chain_after_einval',
        'enc_len',
        'enc_not_plaintext',
        'enc_fresh_iv',
        'enc_wrap',
        'encdec_plaintext',
        'dec_plaintext',
        'dec_failed_serr',
        'dec_garbage_ebadmsg',
        'dec_plaintext_after',
        'dec_short_ebadmsg',
        'dec_plaintext_last',
        'dec_socket_ok',
        'dec_map_ebadmsg',
        'dec_map_plaintext',
        'encap_header',
        'decap_payload',
        'decap_noheader_serr',
        'decap_noheader_ebadmsg',
        'decap_other_vni_ebadmsg',
        'crc_digest',
        'crc_digest_dir',
        'crc_digests_in_order',
        'la_digests',
        'la_nothing_delivered',
        'pair4_client_to_server',
        'pair4_server_to_client',
        'pair_crc_digest',
        'pair_crc_back_digest',
      ]) {
        expect(
          checks.some((c) => c.fields.name === name && c.fields.ok === '1'),
          name,
        ).toBe(true);
      }

      const ping = vm.find('ping')[0];
      expect(ping?.fields, ping?.raw).toMatchObject({ count: '200', size: '4096', errors: '0', rc: '0' });
      expect(num(ping, 'median_us')).toBeGreaterThan(0);
      expect(num(ping, 'p99_us')).toBeGreaterThanOrEqual(num(ping, 'median_us'));

      const perf = vm.find('perf')[0];
      expect(perf?.fields, perf?.raw).toMatchObject({ msg_size: '131072', errors: '0', rc: '0' });
      expect(num(perf, 'gbps')).toBeGreaterThan(0);
      expect(num(perf, 'msgs')).toBeGreaterThan(0);

      const st = vm.find('stress')[0];
      expect(st?.fields, st?.raw).toMatchObject({
        sockets: String(SOCKETS),
        conns: String(SOCKETS / 2),
        max_size: String(MAX_SIZE),
        lost: '0',
        duplicated: '0',
        reordered: '0',
        corrupted: '0',
        errors: '0',
        rc: '0',
      });
      expect(num(st, 'sent')).toBe(SOCKETS * MSGS);
      expect(num(st, 'received')).toBe(SOCKETS * MSGS);
      // Messages wrapped both rings, and some filled a whole ring (4 KiB and 1 MiB).
      expect(num(st, 'wrapped')).toBeGreaterThan(0);
      expect(num(st, 'full_ring')).toBeGreaterThan(0);

      // Every socket was closed; the module unloads and the guest finishes cleanly.
      const after = vm.find('dp').at(-1);
      expect(after?.fields.sockets_open).toBe('0');
      expect(after?.fields.stray).toBe('0');
      expect(after?.fields.dev_errors).toBe('0');
      expect(Number(vm.find('rmmod_busy')[0]?.fields.rc)).not.toBe(0); // refused while a socket is open
      expect(vm.find('rmmod')[0]?.fields.rc).toBe('0');
      expect(vm.find('done')[0]?.fields.rc).toBe('0');
      // The one socket error: sockcheck's message larger than its peer's rx ring.
      expect(emu.log.match(/socket error/g)?.length).toBe(1);
      expect(emu.log).toMatch(/message of 6000 bytes larger than the peer's 4096-byte ring/);
      expect(emu.log).not.toMatch(/signal rejected/);
      // sgiov-chains' refused messages and chains reached the device as such.
      expect(emu.log).toMatch(/message refused by a transformation/);
      expect(emu.log).toMatch(/CONNECT with a bad chain/);
      expect(emu.alive).toBe(true);
    },
    VM_S * 1000 + 30_000,
  );
});
