import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { reg } from '../../../emulator/abi/abi.js';
import {
  FaultInjector,
  applyCorrupt,
  corruptValue,
  faultsControl,
  type FaultContext,
} from '../../../emulator/faults/injector.js';
import { POINT, POINT_NAMES, validatePlan, type Point } from '../../../emulator/faults/plan.js';
import { silentLogger } from '../../../emulator/util/log.js';

const injector = (plan: Record<string, unknown>) => new FaultInjector(silentLogger(), validatePlan(plan));
const rule = (extra: Record<string, unknown>) => ({ point: 'signal.h2d', do: { action: 'drop' }, ...extra });

/** Runs n checks; the 1-based numbers of those that returned a fault (of rule `id`, if given). */
function hits(inj: FaultInjector, point: Point, n: number, ctx: FaultContext = {}, id?: string): number[] {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) {
    const f = inj.check(point, ctx);
    if (f && (id === undefined || f.rule === id)) out.push(i);
  }
  return out;
}

const H2D = POINT.SIGNAL_H2D;

describe('FaultInjector: the fast path', () => {
  it('arms nothing without a plan, and check() returns null everywhere', () => {
    const inj = new FaultInjector(silentLogger());
    expect([...inj.armed]).toEqual(POINT_NAMES.map(() => 0));
    for (let p = 0; p < POINT_NAMES.length; p++) expect(inj.check(p as Point, { sid: 1 })).toBeNull();
  });

  it('arms only the points live rules are at', () => {
    const inj = injector({
      rules: [
        rule({ point: 'irq' }),
        rule({ point: 'dma.read', do: { action: 'error', status: 'EIO' }, enabled: false }),
      ],
    });
    expect(POINT_NAMES.filter((_p, i) => inj.armed[i])).toEqual(['irq']);
    expect(inj.check(POINT.DMA_READ)).toBeNull();
    expect(inj.check(POINT.IRQ)).toEqual({ action: 'drop', rule: '#1' });
  });

  it('disarms a point once its rules are spent', () => {
    const inj = injector({
      rules: [rule({ trigger: { count: 2 } }), rule({ point: 'irq', trigger: { nth: 3 } })],
    });
    expect(hits(inj, H2D, 5)).toEqual([1, 2]);
    expect(inj.armed[H2D]).toBe(0);
    expect(hits(inj, POINT.IRQ, 2)).toEqual([]);
    expect(inj.armed[POINT.IRQ]).toBe(1);
    expect(hits(inj, POINT.IRQ, 1)).toEqual([1]);
    expect(inj.armed[POINT.IRQ]).toBe(0);
  });
});

describe('FaultInjector: triggers', () => {
  it.each([
    ['no trigger: every match', {}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]],
    ['nth', { nth: 5 }, [5]],
    ['every', { every: 3 }, [3, 6, 9, 12]],
    ['every, at most count times', { every: 2, count: 3 }, [2, 4, 6]],
    ['count', { count: 2 }, [1, 2]],
    ['once', { once: true }, [1]],
    ['once: false is no limit', { once: false, every: 6 }, [6, 12]],
    ['after', { after: 9 }, [10, 11, 12]],
    ['every counted after after', { after: 2, every: 3 }, [5, 8, 11]],
    ['probability 0', { probability: 0 }, []],
    ['probability 1', { probability: 1, count: 4 }, [1, 2, 3, 4]],
  ])('%s', (_what, trigger, expected) => {
    expect(hits(injector({ rules: [rule({ trigger })] }), H2D, 12)).toEqual(expected);
  });

  it('probability after the 100th match: nothing before, the rate after', () => {
    const inj = injector({ seed: 5, rules: [rule({ trigger: { after: 100, probability: 0.5 } })] });
    const h = hits(inj, H2D, 10_100);
    expect(h[0]).toBeGreaterThan(100);
    expect(Math.abs(h.length - 5000)).toBeLessThan(5 * Math.sqrt(10_000 * 0.25));
  });

  it('probability: the same seed gives the same injections, another seed others', () => {
    const plan = (seed: number) => ({ seed, rules: [rule({ name: 'p', trigger: { probability: 0.2 } })] });
    const a = hits(injector(plan(42)), H2D, 2000);
    expect(hits(injector(plan(42)), H2D, 2000)).toEqual(a);
    expect(hits(injector(plan(43)), H2D, 2000)).not.toEqual(a);
    expect(a.length).toBeGreaterThan(0);
  });

  it('probability: the rate over 100,000 matches is within a binomial bound', () => {
    for (const p of [0.01, 0.1, 0.5]) {
      const n = 100_000;
      const k = hits(injector({ seed: 7, rules: [rule({ trigger: { probability: p } })] }), H2D, n).length;
      // 5 standard deviations: a correct generator fails this about once in 3.5 million runs.
      expect(Math.abs(k - n * p)).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
    }
  });

  it("adding rules (at another point, or after it at the same point) leaves a rule's draws alone", () => {
    const r1 = rule({ name: 'r1', trigger: { probability: 0.3 } });
    const run = (rules: unknown[]) => {
      const inj = injector({ seed: 42, rules });
      const mine: number[] = [];
      for (let i = 1; i <= 3000; i++) {
        if (inj.check(H2D)?.rule === 'r1') mine.push(i);
        inj.check(POINT.SIGNAL_D2H);
      }
      return mine;
    };
    const alone = run([r1]);
    const crowded = run([
      rule({ name: 'r0', point: 'signal.d2h', trigger: { probability: 0.5 } }),
      r1,
      rule({ name: 'r2', trigger: { probability: 0.5 }, do: { action: 'duplicate' } }),
    ]);
    expect(crowded).toEqual(alone);
    // Two rules with the same trigger draw from different streams.
    const twins = injector({
      seed: 42,
      rules: [
        rule({ name: 'a', trigger: { probability: 0.5 } }),
        rule({ name: 'b', point: 'irq', trigger: { probability: 0.5 } }),
      ],
    });
    expect(hits(twins, H2D, 200)).not.toEqual(hits(twins, POINT.IRQ, 200));
  });

  it('resetCounters replays the same sequence', () => {
    const inj = injector({ seed: 3, rules: [rule({ trigger: { probability: 0.3, count: 40 } })] });
    const first = hits(inj, H2D, 500);
    expect(first).toHaveLength(40);
    inj.resetCounters();
    expect(hits(inj, H2D, 500)).toEqual(first);
  });
});

describe('FaultInjector: matching', () => {
  it.each<[string, string, Record<string, unknown>, FaultContext, FaultContext[]]>([
    ['sid', 'signal.d2h', { sid: 3 }, { sid: 3 }, [{ sid: 4 }, {}]],
    ['tenant', 'dma.write', { tenant: 2 }, { tenant: 2, sid: 9 }, [{ tenant: 0 }, { sid: 9 }]],
    [
      'accel',
      'job.complete',
      { accel: 'crypto' },
      { accel: 'crypto', executor: 'I' },
      [{ accel: 'rdma' }, {}],
    ],
    ['executor', 'job.start', { executor: 'L' }, { executor: 'L' }, [{ executor: 'I' }, {}]],
    [
      'register by name',
      'mmio.read',
      { reg: 'DMA_LEN' },
      { reg: reg('DMA_LEN').offset },
      [{ reg: reg('DMA_OP').offset }, {}],
    ],
    ['register by offset', 'mmio.write', { reg: 0x1000 }, { reg: 0x1000 }, [{ reg: 0x1004 }]],
    ['doorbell by name', 'mmio.write', { reg: 'DOORBELL_KICK' }, { reg: 0x1004 }, [{ reg: 0x1000 }]],
    ['node by number', 'fabric.send', { node: 1 }, { node: '1' }, [{ node: 2 }, {}]],
    ['node by name', 'fabric.recv', { node: 'b' }, { node: 'b' }, [{ node: 'a' }]],
    ['vector', 'irq', { vector: 2 }, { vector: 2 }, [{ vector: 0 }, {}]],
    [
      'several fields: all must match',
      'job.start',
      { accel: 'encap', tenant: 1, sid: 5 },
      { accel: 'encap', tenant: 1, sid: 5 },
      [
        { accel: 'encap', tenant: 1, sid: 6 },
        { accel: 'encap', sid: 5 },
      ],
    ],
  ])('by %s', (_what, point, match, yes, nos) => {
    const inj = injector({ rules: [{ point, match, do: { action: 'surprise_removal' } }] });
    const p = POINT_NAMES.indexOf(point as (typeof POINT_NAMES)[number]) as Point;
    for (const no of nos) expect(inj.check(p, no), JSON.stringify(no)).toBeNull();
    expect(inj.check(p, yes)).toMatchObject({ action: 'surprise_removal' });
  });

  it('by address range: any byte of the access in [lo, hi), number or bigint', () => {
    const inj = injector({
      rules: [
        {
          point: 'dma.read',
          match: { addr: { lo: '0x1000', hi: '0x2000' } },
          do: { action: 'error', status: 'EIO' },
        },
      ],
    });
    const at = (addr: number | bigint, len?: number) =>
      inj.check(POINT.DMA_READ, len === undefined ? { addr } : { addr, len }) !== null;
    expect(at(0xff8, 8)).toBe(false);
    expect(at(0xff8, 9)).toBe(true);
    expect(at(0x1000)).toBe(true);
    expect(at(0x1fffn)).toBe(true);
    expect(at(0x2000n, 64)).toBe(false);
    expect(at(0x800, 0x2000)).toBe(true);
    expect(inj.check(POINT.DMA_READ, {})).toBeNull();
    expect(inj.check(POINT.DMA_READ, { addr: 0x1800 })).toEqual({
      action: 'error',
      status: 'EIO',
      code: 5,
      space: 'errno',
      rule: '#1',
    });
  });
});

describe('FaultInjector: states', () => {
  const armPlan = {
    rules: [
      { name: 'B', point: 'signal.h2d', when: 'armed', do: { action: 'drop' } },
      {
        name: 'A',
        point: 'mmio.write',
        match: { reg: 'DP_CONTROL' },
        trigger: { once: true },
        do: { action: 'none' },
        then: 'armed',
      },
    ],
  };

  it('rule A arms the plan; rule B fires only after', () => {
    const inj = injector(armPlan);
    expect(inj.state).toBe('initial');
    expect(inj.armed[H2D]).toBe(0);
    expect(hits(inj, H2D, 5)).toEqual([]);
    expect(inj.check(POINT.MMIO_WRITE, { reg: reg('SCRATCH').offset })).toBeNull();
    expect(inj.state).toBe('initial');
    // `none` injects nothing: check() returns null, but the rule fired and moved the state.
    expect(inj.check(POINT.MMIO_WRITE, { reg: reg('DP_CONTROL').offset })).toBeNull();
    expect(inj.state).toBe('armed');
    expect(inj.armed[H2D]).toBe(1);
    expect(inj.check(H2D)).toEqual({ action: 'drop', rule: 'B' });
    const l = inj.list();
    expect(l.rules.map((r) => [r.id, r.matches, r.injections, r.live])).toEqual([
      ['B', 1, 1, true],
      ['A', 1, 1, false],
    ]);
    // Matches in a state where the rule is not live are not even seen.
    inj.resetCounters();
    expect(inj.state).toBe('initial');
    expect(inj.list().rules[0]!.matches).toBe(0);
  });

  it('a winner moves the state, and a rule can disarm itself', () => {
    const inj = injector({
      state: 'idle',
      rules: [
        {
          name: 'go',
          point: 'irq',
          when: 'idle',
          trigger: { every: 3 },
          do: { action: 'duplicate' },
          then: 'burst',
        },
        {
          name: 'burst',
          point: 'irq',
          when: ['burst'],
          trigger: { every: 2 },
          do: { action: 'drop' },
          then: 'idle',
        },
      ],
    });
    const seq = Array.from({ length: 12 }, () => inj.check(POINT.IRQ)?.action ?? '-');
    // idle: 3rd match duplicates -> burst: its 2nd match drops -> idle: 3 more (counted on from 3) ...
    expect(seq).toEqual(['-', '-', 'duplicate', '-', 'drop', '-', '-', 'duplicate', '-', 'drop', '-', '-']);
  });

  it('setState by hand, refusing states the plan does not have', () => {
    const inj = injector(armPlan);
    inj.setState('armed');
    expect(inj.check(H2D)).not.toBeNull();
    expect(() => inj.setState('armd')).toThrow(
      /state: 'armd' is not a state of this plan \(known: initial, armed\)/,
    );
  });
});

describe('FaultInjector: several rules at one point', () => {
  it('the first that fires wins; the others count it as shadowed and keep their count', () => {
    const inj = injector({
      rules: [
        rule({ name: 'first', trigger: { every: 2 } }),
        rule({ name: 'second', do: { action: 'duplicate' }, trigger: { count: 3 } }),
      ],
    });
    const seq = Array.from({ length: 6 }, () => inj.check(H2D)?.rule ?? '-');
    expect(seq).toEqual(['second', 'first', 'second', 'first', 'second', 'first']);
    const [first, second] = inj.list().rules;
    expect(first).toMatchObject({ matches: 6, injections: 3, shadowed: 0 });
    // Spent after its 5th match: a rule that can no longer fire is not looked at.
    expect(second).toMatchObject({ matches: 5, injections: 3, shadowed: 2, live: false });
  });

  it('a `none` rule neither wins nor shadows', () => {
    const inj = injector({
      rules: [rule({ name: 'count', do: { action: 'none' } }), rule({ name: 'drop' })],
    });
    expect(inj.check(H2D)).toEqual({ action: 'drop', rule: 'drop' });
    expect(inj.list().rules.map((r) => [r.id, r.injections, r.shadowed])).toEqual([
      ['count', 1, 0],
      ['drop', 1, 0],
    ]);
  });
});

describe('FaultInjector: run-time control', () => {
  it('enable and disable', () => {
    const inj = injector({ rules: [rule({ name: 'r', enabled: false })] });
    expect(inj.check(H2D)).toBeNull();
    inj.setEnabled('r', true);
    expect(inj.check(H2D)).not.toBeNull();
    inj.setEnabled('r', false);
    expect(inj.armed[H2D]).toBe(0);
    expect(() => inj.setEnabled('nope', true)).toThrow(/no rule 'nope' \(ids: r\)/);
  });

  it('add, list and clear, each validated as in a plan', () => {
    const inj = injector({ seed: 9, rules: [rule({})] });
    expect(inj.add(rule({ point: 'irq' }))).toBe('#2');
    expect(inj.add({ name: 'slow', point: 'dma.write', do: { action: 'delay', us: 3 } })).toBe('slow');
    expect(() => inj.add(rule({ trigger: { probability: 7 } }))).toThrow(
      /^rule\.trigger\.probability: must be a number in \[0, 1\]$/,
    );
    expect(() => inj.add(rule({ point: 'dma.read', do: { action: 'duplicate' } }))).toThrow(
      /^rule\.do\.action: 'duplicate' is not allowed at dma\.read/,
    );
    expect(() => inj.add(rule({ name: 'slow' }))).toThrow(/^rule\.name: a rule named 'slow' exists/);
    expect(() => inj.add(rule({ when: 'later' }))).toThrow(/^rule\.when: state 'later' is never entered/);
    expect(inj.add(rule({ when: 'later', then: 'later' }))).toBe('#4'); // 'slow' took 3; refused adds took none
    expect(inj.check(POINT.DMA_WRITE)).toEqual({ action: 'delay', ns: 3000, rule: 'slow' });
    const l = inj.list();
    expect(l.seed).toBe(9);
    expect(l.rules.map((r) => r.id)).toEqual(['#1', '#2', 'slow', '#4']);
    expect(l.rules[2]).toEqual({
      id: 'slow',
      live: true,
      enabled: true,
      matches: 1,
      injections: 1,
      shadowed: 0,
      rule: { name: 'slow', point: 'dma.write', do: { action: 'delay', us: 3 } },
    });
    expect(inj.clear('#2')).toBe(1);
    expect(inj.armed[POINT.IRQ]).toBe(0);
    expect(() => inj.clear('#2')).toThrow(/no rule '#2'/);
    expect(inj.clear()).toBe(3);
    expect([...inj.armed].every((a) => a === 0)).toBe(true);
    expect(inj.add(rule({}))).toBe('#5'); // ids are never reused
  });

  it('counts injections per point and action', () => {
    const inj = injector({
      rules: [
        rule({ trigger: { every: 2 } }),
        rule({ do: { action: 'corrupt', xor: 1 } }),
        { point: 'dma.read', do: { action: 'error', status: 'EIO' }, trigger: { count: 3 } },
      ],
    });
    hits(inj, H2D, 10);
    hits(inj, POINT.DMA_READ, 10);
    expect(inj.injected(H2D, 'drop')).toBe(5);
    expect(inj.injected(H2D, 'corrupt')).toBe(5);
    expect(inj.injected(H2D)).toBe(10);
    expect(inj.injected(POINT.DMA_READ)).toBe(3);
    expect(inj.list().injections).toEqual({
      'dma.read': { error: 3 },
      'signal.h2d': { corrupt: 5, drop: 5 },
    });
    inj.resetCounters();
    expect(inj.list().injections).toEqual({});
  });

  it("faultsControl: the control interface's ops", () => {
    const inj = new FaultInjector(silentLogger());
    expect(faultsControl(inj, { op: 'add', rule: rule({ name: 'x', then: 's' }) })).toEqual({ id: 'x' });
    expect(faultsControl(inj, { op: 'disable', id: 'x' })).toEqual({ id: 'x', enabled: false });
    expect(inj.check(H2D)).toBeNull();
    faultsControl(inj, { op: 'enable', id: 'x' });
    expect(inj.check(H2D)).not.toBeNull();
    expect(faultsControl(inj, {})).toMatchObject({ state: 's', rules: [{ id: 'x', injections: 1 }] });
    expect(faultsControl(inj, { op: 'reset' })).toEqual({ reset: true, state: 'initial' });
    expect(faultsControl(inj, { op: 'state', state: 's' })).toEqual({ state: 's' });
    expect(() => faultsControl(inj, { op: 'enable' })).toThrow(/"id" must be a rule id/);
    expect(() => faultsControl(inj, { op: 'add', rule: rule({ point: 'nowhere' }) })).toThrow(
      /^rule\.point: unknown point/,
    );
    expect(() => faultsControl(inj, { op: 'zap' })).toThrow(/unknown op "zap"/);
    expect(faultsControl(inj, { op: 'clear' })).toEqual({ cleared: 1 });
  });
});

describe('FaultInjector: logging', () => {
  it('logs each injection on one line with rule, point, action and context, rate-limited in floods', () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: 'info' },
      {
        write: (l: string) => {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        },
      },
    );
    const inj = new FaultInjector(
      log,
      validatePlan({ rules: [{ name: 'eio', point: 'dma.read', do: { action: 'error', status: 'EIO' } }] }),
    );
    for (let i = 0; i < 1000; i++) inj.check(POINT.DMA_READ, { addr: 0x1234n, len: 64, sid: 3 });
    const injected = lines.filter((l) => l.msg === 'fault injected');
    expect(injected[0]).toMatchObject({
      sub: 'faults',
      rule: 'eio',
      point: 'dma.read',
      action: 'error',
      status: 'EIO',
      n: 1,
      ctx: { addr: '0x1234', len: 64, sid: 3 },
    });
    // The flood is cut to the first few per second, but every one is counted.
    expect(injected.length).toBeLessThanOrEqual(10);
    expect(inj.injected(POINT.DMA_READ, 'error')).toBe(1000);
  });
});

describe('corrupt helpers', () => {
  const c = (offset: number, xor: number[]) => ({ offset, xor: Uint8Array.from(xor) });

  it('XOR bytes into a buffer at the offset, clipped to the buffer', () => {
    const b = Uint8Array.from([0, 1, 2, 3]);
    expect(applyCorrupt(b, c(1, [0xff, 0x0f]))).toBe(2);
    expect([...b]).toEqual([0, 0xfe, 0x0d, 3]);
    expect(applyCorrupt(b, c(3, [1, 1, 1]))).toBe(1);
    expect([...b]).toEqual([0, 0xfe, 0x0d, 2]);
    expect(applyCorrupt(b, c(9, [1]))).toBe(0);
    expect(applyCorrupt(new Uint8Array(0), c(0, [1]))).toBe(0);
  });

  it('XOR bytes into a little-endian value of the access size', () => {
    expect(corruptValue(0n, 8, c(0, [1]))).toBe(1n);
    expect(corruptValue(0x1122_3344n, 4, c(2, [0xff, 0xff, 0xff]))).toBe(0xeedd_3344n);
    expect(corruptValue(0xabn, 4, c(4, [0xff]))).toBe(0xabn);
    expect(corruptValue(0n, 8, c(7, [0x80]))).toBe(0x8000_0000_0000_0000n);
  });
});
