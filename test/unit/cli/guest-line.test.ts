import { describe, expect, it } from 'vitest';
import { parseGuestLine } from '../../../qemu/vm.js';

describe('guest report lines', () => {
  it('parses kind and key=value fields, with free text after reason= or msg=', () => {
    const l = parseGuestLine(
      '[    4.1] SGIOV: selftest iter=2 result=fail runs=3 reason=timeout after 5000 ms (irq_count=0)\r',
    );
    expect(l?.kind).toBe('selftest');
    expect(l?.fields).toEqual({
      iter: '2',
      result: 'fail',
      runs: '3',
      reason: 'timeout after 5000 ms (irq_count=0)',
    });
    expect(parseGuestLine('SGIOV: done rc=0')?.fields.rc).toBe('0');
    expect(parseGuestLine('random kernel noise')).toBeNull();
  });
});
