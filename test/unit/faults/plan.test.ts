import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reg } from '../../../emulator/abi/abi.js';
import {
  ACTION_NAMES,
  ACTION_POINTS,
  POINT,
  POINT_NAMES,
  PlanError,
  loadPlan,
  toNs,
  validatePlan,
} from '../../../emulator/faults/plan.js';
import { repoRoot } from '../../../emulator/util/paths.js';

/** A plan of one rule: `rule` overrides the fields of a valid one. */
const one = (rule: Record<string, unknown>, plan: Record<string, unknown> = {}) => ({
  seed: 1,
  rules: [{ point: 'signal.h2d', do: { action: 'drop' }, ...rule }],
  ...plan,
});

const errorOf = (json: unknown): string => {
  try {
    validatePlan(json);
  } catch (e) {
    expect(e).toBeInstanceOf(PlanError);
    return (e as Error).message;
  }
  throw new Error('the plan validated');
};

describe('fault plan validation', () => {
  it('numbers the points as POINT_NAMES lists them', () => {
    for (const [k, v] of Object.entries(POINT))
      expect(POINT_NAMES[v]).toBe(k.toLowerCase().replace('_', '.'));
    expect(Object.keys(POINT)).toHaveLength(POINT_NAMES.length);
  });

  it('parses a full rule into its normalised form', () => {
    const plan = validatePlan({
      description: 'd',
      seed: 9,
      state: 'cold',
      rules: [
        { name: 'a', point: 'mmio.write', match: { reg: 'DP_CONTROL' }, do: { action: 'none' }, then: 'hot' },
        {
          name: 'b',
          point: 'dma.read',
          match: { addr: { lo: '0x1000', hi: 8192 }, sid: 2, tenant: 1 },
          when: ['hot', 'cold'],
          trigger: { after: 3, every: 2, probability: 0.5, once: true },
          do: { action: 'error', status: 'DMA_UNMAPPED' },
          enabled: false,
        },
        { point: 'job.start', match: { accel: 'crypto', executor: 'I' }, do: { action: 'stall', us: 2.5 } },
        { point: 'fabric.recv', match: { node: 4 }, do: { action: 'corrupt', offset: 3, xor: [0, 255] } },
      ],
    });
    expect(plan).toMatchObject({ seed: 9, state: 'cold', description: 'd' });
    const [a, b, c, d] = plan.rules;
    expect(a).toMatchObject({
      id: 'a',
      match: { reg: reg('DP_CONTROL').offset },
      then: 'hot',
      when: null,
      enabled: true,
    });
    expect(b).toMatchObject({
      id: 'b',
      when: ['hot', 'cold'],
      enabled: false,
      match: { addr: { lo: 0x1000n, hi: 0x2000n }, sid: 2, tenant: 1 },
      trigger: { after: 3, nth: 0, every: 2, probability: 0.5, count: 1 },
      action: { action: 'error', status: 'DMA_UNMAPPED', code: 1, space: 'device' },
    });
    expect(c).toMatchObject({ id: '#3', action: { action: 'stall', ns: 2500, accel: null } });
    expect(d).toMatchObject({
      id: '#4',
      match: { node: '4' },
      action: { action: 'corrupt', offset: 3, xor: Uint8Array.from([0, 255]) },
    });
    expect(validatePlan({ rules: [] })).toMatchObject({ seed: 0, state: 'initial', rules: [] });
  });

  it('resolves statuses in the errno, device and socket spaces', () => {
    const status = (s: string) => validatePlan(one({ do: { action: 'error', status: s } })).rules[0]!.action;
    expect(status('EIO')).toMatchObject({ code: 5, space: 'errno' });
    expect(status('ECONNREFUSED')).toMatchObject({ code: 111, space: 'errno' });
    expect(status('BAD_DOORBELL')).toMatchObject({ code: 6, space: 'device' });
    expect(status('AUTH_FAILED')).toMatchObject({ code: 9, space: 'socket' });
  });

  it.each([
    ['not an object', [], /^plan: must be a JSON object/],
    ['no rules', { seed: 1 }, /^rules: required/],
    ['unknown plan field', { sed: 1, rules: [] }, /^sed: unknown field/],
    ['seed not whole', { seed: 1.5, rules: [] }, /^seed: must be a whole number >= 0/],
    ['negative seed', { seed: -1, rules: [] }, /^seed: must be a whole number >= 0/],
    ['rule not an object', { rules: [1] }, /^rules\[0\]: must be an object/],
    ['unknown rule field', one({ matches: {} }), /^rules\[0\]\.matches: unknown field \(known: name, /],
    ['missing point', one({ point: undefined }), /^rules\[0\]\.point: required/],
    [
      'unknown point',
      one({ point: 'mmio.reed' }),
      /^rules\[0\]\.point: unknown point "mmio\.reed" \(known: mmio\.read, /,
    ],
    ['missing action', one({ do: undefined }), /^rules\[0\]\.do: required/],
    ['action not an object', one({ do: 'drop' }), /^rules\[0\]\.do: must be an object/],
    [
      'unknown action',
      one({ do: { action: 'explode' } }),
      /^rules\[0\]\.do\.action: unknown action "explode"/,
    ],
    [
      'duplicate at dma.read',
      one({ point: 'dma.read', do: { action: 'duplicate' } }),
      /^rules\[0\]\.do\.action: 'duplicate' is not allowed at dma\.read \(allowed at: signal\.h2d, /,
    ],
    [
      'stall at a signal, named',
      one({ name: 'slow', do: { action: 'stall', ms: 1 } }),
      /^rules\[0\]\.do\.action: 'stall' is not allowed at signal\.h2d .*\(rule 'slow'\)$/,
    ],
    [
      'all_ones at mmio.write',
      one({ point: 'mmio.write', do: { action: 'all_ones' } }),
      /^rules\[0\]\.do\.action: 'all_ones' is not allowed at mmio\.write/,
    ],
    [
      'delay at mmio.read',
      one({ point: 'mmio.read', do: { action: 'delay', ns: 1 } }),
      /^rules\[0\]\.do\.action: 'delay' is not allowed at mmio\.read/,
    ],
    [
      'error at irq',
      one({ point: 'irq', do: { action: 'error', status: 'EIO' } }),
      /^rules\[0\]\.do\.action: 'error' is not allowed at irq/,
    ],
    [
      'reset at device.reset',
      one({ point: 'device.reset', do: { action: 'reset' } }),
      /^rules\[0\]\.do\.action: 'reset' is not allowed at device\.reset/,
    ],
    [
      'link_down at dma.write',
      one({ point: 'dma.write', do: { action: 'link_down', ms: 1 } }),
      /^rules\[0\]\.do\.action: 'link_down' is not allowed at dma\.write/,
    ],
    [
      'field of another action',
      one({ do: { action: 'drop', xor: 1 } }),
      /^rules\[0\]\.do\.xor: unknown field \(known: action\)/,
    ],
    [
      'action field typo',
      one({ point: 'dma.read', do: { action: 'corrupt', xro: 1 } }),
      /^rules\[0\]\.do\.xro: unknown field/,
    ],
    [
      'unknown status',
      one({ do: { action: 'error', status: 'EIOO' } }),
      /^rules\[0\]\.do\.status: unknown status "EIOO"/,
    ],
    ['missing status', one({ do: { action: 'error' } }), /^rules\[0\]\.do\.status: required/],
    [
      'negative delay',
      one({ do: { action: 'delay', ms: -1 } }),
      /^rules\[0\]\.do\.ms: must be a number >= 0/,
    ],
    ['delay without a duration', one({ do: { action: 'delay' } }), /^rules\[0\]\.do: needs a duration/],
    [
      'delay in two units',
      one({ do: { action: 'delay', ns: 1, us: 1 } }),
      /^rules\[0\]\.do: give one of ns, us, ms, not ns and us/,
    ],
    [
      'zero stall',
      one({ point: 'job.start', do: { action: 'stall', ns: 0 } }),
      /^rules\[0\]\.do\.ns: must be a number > 0/,
    ],
    [
      'negative link_down',
      one({ point: 'fabric.send', do: { action: 'link_down', us: -5 } }),
      /^rules\[0\]\.do\.us: must be a number > 0/,
    ],
    [
      'stall of an unknown accelerator',
      one({ point: 'job.start', do: { action: 'stall', accel: 'gpu', ms: 1 } }),
      /^rules\[0\]\.do\.accel: unknown accelerator "gpu"/,
    ],
    [
      'xor of zero',
      one({ do: { action: 'corrupt', xor: [0, 0] } }),
      /^rules\[0\]\.do\.xor: XOR with zero changes nothing/,
    ],
    [
      'xor not a byte',
      one({ do: { action: 'corrupt', xor: [1, 256] } }),
      /^rules\[0\]\.do\.xor\[1\]: must be a whole number in \[0, 255\]/,
    ],
    ['xor missing', one({ do: { action: 'corrupt' } }), /^rules\[0\]\.do\.xor: required/],
    [
      'negative offset',
      one({ do: { action: 'corrupt', offset: -1, xor: 1 } }),
      /^rules\[0\]\.do\.offset: must be a whole number in \[0, 1048576\]/,
    ],
    [
      'an offset no data reaches',
      one({ do: { action: 'corrupt', offset: 2 ** 40, xor: 1 } }),
      /^rules\[0\]\.do\.offset: must be a whole number in \[0, 1048576\]/,
    ],
    [
      'a delay no clock can hold (1e303 ms: Infinity in ns)',
      one({ point: 'dma.read', do: { action: 'delay', ms: 1e303 } }),
      /^rules\[0\]\.do\.ms: must be a number >= 0 and at most 3600000 \(one hour\)/,
    ],
    [
      'a stall over an hour',
      one({ point: 'job.start', do: { action: 'stall', us: 3600e6 + 1 } }),
      /^rules\[0\]\.do\.us: must be a number > 0 and at most 3600000000 \(one hour\)/,
    ],
    [
      'trigger typo',
      one({ trigger: { probabilty: 0.5 } }),
      /^rules\[0\]\.trigger\.probabilty: unknown field \(known: after, nth, /,
    ],
    [
      'probability above 1',
      one({ trigger: { probability: 1.5 } }),
      /^rules\[0\]\.trigger\.probability: must be a number in \[0, 1\]$/,
    ],
    [
      'probability negative',
      one({ trigger: { probability: -0.1 } }),
      /^rules\[0\]\.trigger\.probability: must be a number in \[0, 1\]/,
    ],
    [
      'probability a string',
      one({ trigger: { probability: '0.5' } }),
      /^rules\[0\]\.trigger\.probability: must be a number in \[0, 1\]/,
    ],
    ['nth 0', one({ trigger: { nth: 0 } }), /^rules\[0\]\.trigger\.nth: must be a whole number >= 1/],
    ['every 0', one({ trigger: { every: 0 } }), /^rules\[0\]\.trigger\.every: must be a whole number >= 1/],
    ['count 0', one({ trigger: { count: 0 } }), /^rules\[0\]\.trigger\.count: must be a whole number >= 1/],
    [
      'after fractional',
      one({ trigger: { after: 2.5 } }),
      /^rules\[0\]\.trigger\.after: must be a whole number >= 0/,
    ],
    [
      'nth with every',
      one({ trigger: { nth: 3, every: 2 } }),
      /^rules\[0\]\.trigger\.nth: fires on one match only/,
    ],
    [
      'nth with after',
      one({ trigger: { nth: 3, after: 2 } }),
      /^rules\[0\]\.trigger\.nth: does not combine with after/,
    ],
    [
      'once with count',
      one({ trigger: { once: true, count: 2 } }),
      /^rules\[0\]\.trigger\.once: give once or count, not both/,
    ],
    ['once not boolean', one({ trigger: { once: 1 } }), /^rules\[0\]\.trigger\.once: must be true or false/],
    ['match typo', one({ match: { sidd: 1 } }), /^rules\[0\]\.match\.sidd: unknown field/],
    [
      'node at dma.read',
      one({ point: 'dma.read', match: { node: 1 } }),
      /^rules\[0\]\.match\.node: not matchable at dma\.read \(there: addr, sid, tenant\)/,
    ],
    [
      'anything at device.reset',
      one({ point: 'device.reset', match: { sid: 1 } }),
      /^rules\[0\]\.match\.sid: not matchable at device\.reset \(there: nothing\)/,
    ],
    ['negative sid', one({ match: { sid: -1 } }), /^rules\[0\]\.match\.sid: must be a whole number >= 0/],
    [
      'unknown accelerator',
      one({ point: 'job.complete', match: { accel: 'aes' } }),
      /^rules\[0\]\.match\.accel: unknown accelerator "aes"/,
    ],
    [
      'unknown executor',
      one({ point: 'job.start', match: { executor: 'Q' } }),
      /^rules\[0\]\.match\.executor: unknown executor "Q"/,
    ],
    [
      'unknown register',
      one({ point: 'mmio.read', match: { reg: 'DMA_SCR' } }),
      /^rules\[0\]\.match\.reg: unknown register "DMA_SCR"/,
    ],
    [
      'vector out of range',
      one({ point: 'irq', match: { vector: 4096 } }),
      /^rules\[0\]\.match\.vector: must be a whole number in \[0, 2047\]/,
    ],
    [
      'empty range',
      one({ point: 'dma.write', match: { addr: { lo: '0x2000', hi: '0x1000' } } }),
      /^rules\[0\]\.match\.addr\.hi: must be greater than lo .*lo 0x2000, hi 0x1000/,
    ],
    [
      'range of one point',
      one({ point: 'dma.write', match: { addr: { lo: 5, hi: 5 } } }),
      /^rules\[0\]\.match\.addr\.hi: must be greater than lo/,
    ],
    [
      'bad address',
      one({ point: 'dma.write', match: { addr: { lo: '12k', hi: 1 } } }),
      /^rules\[0\]\.match\.addr\.lo: must be an address/,
    ],
    [
      'negative address',
      one({ point: 'dma.write', match: { addr: { lo: -1, hi: 1 } } }),
      /^rules\[0\]\.match\.addr\.lo: must be an address/,
    ],
    [
      'range typo',
      one({ point: 'dma.write', match: { addr: { lo: 0, high: 1 } } }),
      /^rules\[0\]\.match\.addr\.high: unknown field \(known: lo, hi\)/,
    ],
    ['bad name', one({ name: '1st' }), /^rules\[0\]\.name: must be a name/],
    ['enabled not boolean', one({ enabled: 'yes' }), /^rules\[0\]\.enabled: must be true or false/],
    ['empty when', one({ when: [] }), /^rules\[0\]\.when: an empty list never matches/],
    [
      'when never entered',
      one({ when: 'armd' }),
      /^rules\[0\]\.when: state 'armd' is never entered \(known: initial;[^(]*\)$/,
    ],
  ])('rejects %s, naming the field', (_what, json, msg) => {
    expect(errorOf(json)).toMatch(msg);
  });

  it('names the bad rule by position in a longer plan, and duplicate names', () => {
    const ok = { point: 'irq', do: { action: 'drop' } };
    expect(errorOf({ rules: [ok, ok, { ...ok, trigger: { probability: 2 } }] })).toMatch(
      /^rules\[2\]\.trigger\.probability: must be a number in \[0, 1\]/,
    );
    expect(errorOf({ rules: [{ ...ok, name: 'x' }, ok, { ...ok, name: 'x' }] })).toMatch(
      /^rules\[2\]\.name: 'x' is already the name of rules\[0\]/,
    );
  });

  it('accepts a when that a later rule enters, or the plan starts in', () => {
    expect(() =>
      validatePlan({
        rules: [
          { point: 'irq', when: 'b', do: { action: 'drop' } },
          { point: 'irq', then: 'b', do: { action: 'none' } },
        ],
      }),
    ).not.toThrow();
    expect(() =>
      validatePlan({ state: 'b', rules: [{ point: 'irq', when: 'b', do: { action: 'drop' } }] }),
    ).not.toThrow();
  });

  it('allows surprise_removal and none at every point, and every action somewhere', () => {
    for (const p of POINT_NAMES) {
      expect(() => validatePlan(one({ point: p, do: { action: 'surprise_removal' } }))).not.toThrow();
      expect(() => validatePlan(one({ point: p, do: { action: 'none' } }))).not.toThrow();
    }
    for (const a of ACTION_NAMES) expect(ACTION_POINTS[a].length).toBeGreaterThan(0);
  });

  it('converts durations to nanoseconds', () => {
    expect(toNs({ ns: 7 })).toBe(7);
    expect(toNs({ us: 1.5 })).toBe(1500);
    expect(toNs({ ms: 50 })).toBe(50_000_000);
    expect(validatePlan(one({ do: { action: 'delay', ms: 0.25 } })).rules[0]!.action).toEqual({
      action: 'delay',
      ns: 250_000,
    });
  });
});

describe('loadPlan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sgiov-faults-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names a missing file', () => {
    expect(() => loadPlan(join(dir, 'nope.json'))).toThrow(/^faults plan '.*nope\.json': no such file$/);
  });

  it('names a file that is not JSON', () => {
    const f = join(dir, 'bad.json');
    writeFileSync(f, '{ "seed": 1, ');
    expect(() => loadPlan(f)).toThrow(/^faults plan '.*bad\.json': not JSON: /);
  });

  it('refuses a file larger than a plan (1 MiB), /dev/zero included, without reading it all', () => {
    expect(() => loadPlan('/dev/zero')).toThrow(
      /^faults plan '\/dev\/zero': larger than 1048576 bytes; not a plan$/,
    );
    const f = join(dir, 'huge.json');
    writeFileSync(f, JSON.stringify({ description: 'x'.repeat(1 << 20), rules: [] }));
    expect(() => loadPlan(f)).toThrow(/larger than 1048576 bytes/);
  });

  it('names the file and the field of an invalid plan', () => {
    const f = join(dir, 'invalid.json');
    writeFileSync(f, JSON.stringify(one({ trigger: { nth: 0 } })));
    expect(() => loadPlan(f)).toThrow(
      /^faults plan '.*invalid\.json': rules\[0\]\.trigger\.nth: must be a whole number >= 1$/,
    );
  });

  it('validates every example plan in faults/, each with a description', () => {
    const root = join(repoRoot(), 'faults');
    const files = readdirSync(root).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(9);
    for (const f of files) {
      const plan = loadPlan(join(root, f));
      expect(plan.description, f).toBeTruthy();
      expect(plan.rules.length, f).toBeGreaterThan(0);
      expect((JSON.parse(readFileSync(join(root, f), 'utf8')) as { seed?: unknown }).seed, f).toBeTypeOf(
        'number',
      );
    }
  });
});
