/** The comparison of two sgiov-conform runs (test/support/conform.ts) that the VM test reports with. */
import { describe, expect, it } from 'vitest';
import { conformDiff, parseConform } from '../support/conform.js';

const run = (...l: string[]): Map<string, string> => parseConform(l);

describe('conformDiff', () => {
  it('counts identical checks and names each differing or missing one with both outcomes', () => {
    const kernel = run('sock.a: x=1', 'lo.b-c: EPIPE SIGPIPE=1', 'lo.d: 0', 'not a check line');
    const sgiov = run('sock.a: x=1', 'lo.b-c: EPIPE SIGPIPE=0\r', 'addr.e: 3');
    expect(kernel.size).toBe(3);
    const d = conformDiff(kernel, sgiov);
    expect(d.identical).toBe(1);
    expect(d.differing).toBe(3);
    expect(d.report).toBe(
      [
        'lo.b-c\n    kernel: EPIPE SIGPIPE=1\n    sgiov:  EPIPE SIGPIPE=0',
        'lo.d\n    kernel: 0\n    sgiov:  (no line)',
        'addr.e\n    kernel: (no line)\n    sgiov:  3',
      ].join('\n'),
    );
    expect(conformDiff(kernel, kernel)).toEqual({ identical: 3, differing: 0, report: '', agreeing: [] });
  });

  it('leaves out a known difference, names a known one that now agrees, and still reports a missing known line', () => {
    const kernel = run('lo.reset: RST', 'lo.ok: 1', 'lo.gone: 2');
    const sgiov = run('lo.reset: EOF', 'lo.ok: 1');
    const known = new Map([
      ['lo.reset', 'no abortive close'],
      ['lo.ok', 'was different once'],
      ['lo.gone', 'differs'],
    ]);
    const d = conformDiff(kernel, sgiov, known);
    expect(d.differing).toBe(1);
    expect(d.report).toBe('lo.gone\n    kernel: 2\n    sgiov:  (no line)');
    expect(d.agreeing).toEqual(['lo.ok']);
  });
});
