/**
 * Cross-node warp pipes between two emulator processes, each in its own
 * network namespace (a veth pair the test makes), each with its own
 * VM-less client (this process): the stress workload across the link, the
 * link cut and restored (nothing lost with a long deadline; sockets failed
 * cleanly with a short one), and one emulator killed. Needs root for the
 * namespaces; every process is stopped by its PID and the namespaces are
 * deleted. The fabric is authenticated (a secret made for the run); the
 * stress and the cut-and-resume run again with TLS on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CONSTANTS } from '../../emulator/abi/abi.js';
import { openCrossPairs, stressPairs } from '../../emulator/client/stress.js';
import { NetnsPair } from '../../qemu/netns.js';
import { until } from '../../qemu/vm.js';
import {
  NODE_A,
  NODE_B,
  PORT,
  both,
  control,
  sleepSync,
  startCluster,
  stopCluster,
} from '../support/cross-node.js';

afterEach(stopCluster);

describe.skipIf(!NetnsPair.available())(
  'cross-node pipes between two emulators in two network namespaces',
  () => {
    it.each([
      ['authenticated', false],
      ['authenticated and encrypted (TLS)', true],
    ])(
      'carries the stress workload both ways across the link (%s): nothing lost, duplicated, reordered or corrupted',
      async (_what, tls) => {
        const c = await startCluster(20_000, undefined, { tls });
        const ab = openCrossPairs(c.a.drv, c.b.drv, NODE_B, 64, 65536, 9000);
        const ba = openCrossPairs(c.b.drv, c.a.drv, NODE_A, 64, 65536, 9100);
        const w = both(c);
        const r1 = stressPairs(
          ab.pairs,
          { messagesPerPair: 60, minSize: 1, maxSize: 65536, ringSize: 65536, seed: 11 },
          w.wait,
          w.tick,
        );
        const r2 = stressPairs(
          ba.pairs,
          { messagesPerPair: 60, minSize: 1, maxSize: 65536, ringSize: 65536, seed: 12 },
          w.wait,
          w.tick,
        );
        for (const r of [r1, r2])
          expect(r).toMatchObject({
            pairs: 32,
            sent: 1920,
            received: 1920,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            corrupted: 0,
            failedPairs: 0,
          });
        // The messages went over the fabric, not around it.
        type Status = {
          pipes: { msgsOut: number; msgsIn: number; msgsPlaced: number; unknownSocket: number };
          fabric: { authenticated: boolean; encrypted: boolean; refused: Record<string, number> };
        };
        const st = (await control(c.a, 'status')) as Status;
        expect(st.fabric).toMatchObject({ authenticated: true, encrypted: tls });
        expect(Object.values(st.fabric.refused).every((n) => n === 0)).toBe(true);
        expect(st.pipes.msgsOut).toBe(1920);
        expect(st.pipes.msgsIn).toBe(1920);
        expect(st.pipes.unknownSocket).toBe(0);
        // Large messages landed straight in the receivers' rings (verified intact above), the rest through a copy.
        const stB = (await control(c.b, 'status')) as Status;
        process.stderr.write(
          `cross-node${tls ? ' (TLS)' : ''}: messages placed straight in the ring: a ${st.pipes.msgsPlaced}, b ${stB.pipes.msgsPlaced} of 1920 each\n`,
        );
        // Over TLS node reads the sockets (the kernel holds ciphertext): nothing can be placed from the wire.
        if (tls) expect(st.pipes.msgsPlaced + stB.pipes.msgsPlaced).toBe(0);
        else expect(st.pipes.msgsPlaced + stB.pipes.msgsPlaced).toBeGreaterThan(0);
      },
      120_000,
    );

    it.each([
      ['authenticated', false],
      ['authenticated and encrypted (TLS)', true],
    ])(
      'the link cut and restored within the deadline (%s): the sessions resume, nothing is lost or duplicated',
      async (_what, tls) => {
        const c = await startCluster(30_000, undefined, { tls });
        const { pairs } = openCrossPairs(c.a.drv, c.b.drv, NODE_B, 32, 16384, 9200);
        const w = both(c);
        let cut = false;
        const r = stressPairs(
          pairs,
          {
            messagesPerPair: 150,
            minSize: 1,
            maxSize: 16384,
            ringSize: 16384,
            seed: 5,
            progressEvery: 800,
            progress: () => {
              if (cut) return;
              cut = true;
              c.net.down();
              sleepSync(2500); // longer than the fabric's dead-peer time (600 ms): the connections drop
              c.net.up();
            },
          },
          w.wait,
          w.tick,
        );
        expect(cut).toBe(true);
        expect(r).toMatchObject({
          sent: 2400,
          received: 2400,
          lost: 0,
          duplicated: 0,
          reordered: 0,
          corrupted: 0,
          failedPairs: 0,
        });
        expect(c.a.emu.log + c.b.emu.log).toMatch(/resumed/);
      },
      120_000,
    );

    it('the link down past a short deadline: the paired sockets fail with LINK_FAILED on both sides, reported, none lost silently; local pipes go on', async () => {
      const c = await startCluster(1_000);
      const { pairs } = openCrossPairs(c.a.drv, c.b.drv, NODE_B, 16, 16384, 9300);
      const w = both(c);
      let cut = false;
      const r = stressPairs(
        pairs,
        {
          messagesPerPair: 200,
          minSize: 1,
          maxSize: 16384,
          ringSize: 16384,
          seed: 9,
          progressEvery: 300,
          progress: () => {
            if (cut) return;
            cut = true;
            c.net.down();
            // Wait (driving the devices) until the sockets have failed: dead peer 600 ms + deadline 1 s.
            c.a.drv.waitUntil(() => {
              c.b.drv.process();
              return pairs.every(([x, y]) => x.error !== null && y.error !== null);
            }, 'the link failure');
            c.net.up();
          },
        },
        w.wait,
        w.tick,
      );
      expect(r.lost).toBe(0);
      expect(r.duplicated).toBe(0);
      expect(r.corrupted).toBe(0);
      expect(r.failedPairs).toBe(8);
      expect(r.received + r.failedReported).toBe(r.sent);
      for (const [x, y] of pairs) {
        expect(x.error).toMatch(/20|LINK/);
        expect(y.error).toMatch(/20|LINK/);
      }
      // Each node goes on: a local pipe works, and after the link is back a new cross connection works.
      const s = c.a.drv.socket({ txSize: 4096, rxSize: 4096 });
      s.connect(CONSTANTS.PORT_LOOPBACK);
      s.send(new Uint8Array([1, 2, 3]));
      expect([...s.recv()]).toEqual([1, 2, 3]);
      const again = openCrossPairs(c.a.drv, c.b.drv, NODE_B, 2, 16384, 9400).pairs[0]!;
      again[0].send(new Uint8Array([4, 5]));
      c.a.drv.waitUntil(() => {
        c.b.drv.process();
        return again[1].available() > 0;
      }, 'a message after the failure');
      expect([...again[1].recv()]).toEqual([4, 5]);
    }, 120_000);

    it('one emulator killed: the other fails its paired sockets with a clear error and keeps serving its client', async () => {
      const c = await startCluster(1_500);
      const { pairs } = openCrossPairs(c.a.drv, c.b.drv, NODE_B, 8, 16384, 9500);
      pairs[0]![0].send(new Uint8Array(100).fill(1));
      c.a.drv.waitUntil(() => {
        c.b.drv.process();
        return pairs[0]![1].available() > 0;
      }, 'the first message');
      // Killed first: closing b's client first would reset b's device, which closes
      // its sockets properly (the peers see PEER_CLOSED, not a failure) if it wins the race.
      c.b.emu.proc.kill('SIGKILL');
      await until(() => !c.b.emu.alive, 5000);
      c.b.client.close();
      c.a.drv.waitUntil(() => pairs.every(([x]) => x.error !== null), 'the failure of every paired socket');
      for (const [x] of pairs) expect(x.error).toMatch(/20|LINK/);
      expect(c.a.emu.alive).toBe(true);
      expect(await until(() => /link to node b failed/.test(c.a.emu.log), 5000)).toBe(true);
      const s = c.a.drv.socket({ txSize: 4096, rxSize: 4096 });
      s.connect(CONSTANTS.PORT_LOOPBACK);
      s.send(new Uint8Array([9]));
      expect([...s.recv()]).toEqual([9]);
      // A connect to the dead node: refused with an errno, not a hang.
      expect(() => c.a.drv.socket({ txSize: 4096, rxSize: 4096 }).connect(PORT, 0, NODE_B)).toThrow(
        /ENETUNREACH|ECONNREFUSED|ETIMEDOUT/,
      );
      const st = (await control(c.a, 'status')) as { pipes: { linkFailures: number } };
      expect(st.pipes.linkFailures).toBeGreaterThanOrEqual(1);
    }, 120_000);
  },
);
