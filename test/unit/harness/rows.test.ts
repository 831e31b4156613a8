import { describe, expect, it } from 'vitest';
import { benchRow, goalMet, rowsTable } from '../../../qemu/bench/rows.js';

describe('bench rows', () => {
  it('judges a ratio against ">=" and "<=" goals, and never meets with a non-finite ratio', () => {
    expect(goalMet(0.8, '>= 0.8')).toBe(true);
    expect(goalMet(0.79, '>= 0.8')).toBe(false);
    expect(goalMet(1.5, '<= 1.5')).toBe(true);
    expect(goalMet(1.51, '<= 1.5')).toBe(false);
    expect(goalMet(Number.NaN, '<= 1.5')).toBe(false);
    expect(goalMet(Number.POSITIVE_INFINITY, '>= 1')).toBe(false);
  });

  it('refuses a goal of another shape', () => {
    expect(() => goalMet(1, '> 1')).toThrow(/not '>= X' or '<= X'/);
    expect(() => goalMet(1, '>= fast')).toThrow();
  });

  it('computes ratio = value / baseline and met from the goal', () => {
    const r = benchRow({ id: 'x.y', what: 'w', unit: 'us', value: 30, baseline: 20, goal: '<= 1.5' });
    expect(r).toMatchObject({ ratio: 1.5, met: true });
    const t = rowsTable([r, { ...r, id: 'x.z', ratio: 2, met: false }]);
    const lines = t.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^id\s+value\s+baseline\s+unit\s+ratio\s+goal\s+met$/);
    expect(lines[2]).toMatch(/^x\.y\s+30\.00\s+20\.00\s+us\s+1\.500\s+<= 1\.5\s+yes$/);
    expect(lines[3]).toMatch(/NO$/);
  });
});
