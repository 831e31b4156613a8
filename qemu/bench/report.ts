/**
 * What every benchmark's result file and table share: the commit and the
 * machine the figures were taken on, a text table, and the JSON file under
 * bench/results/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../emulator/util/paths.js';

/** The checkout's short commit, or null outside git. */
export function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

/** The host: CPU model and count, Node's version, the load average. */
export function machine(): { cpu: string; cpus: number; node: string; loadavg: number[] } {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    node: process.version,
    loadavg: loadavg(),
  };
}

/** Rows as aligned text: the first row is the header, the first column left-aligned, the others right. */
export function table(rows: string[][]): string {
  const cols = Math.max(...rows.map((r) => r.length));
  const w = Array.from({ length: cols }, (_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    w.map((n, i) => (i === 0 ? (r[i] ?? '').padEnd(n) : (r[i] ?? '').padStart(n))).join('  ');
  return (
    [line(rows[0]!), w.map((n) => '-'.repeat(n)).join('  '), ...rows.slice(1).map(line)].join('\n') + '\n'
  );
}

/** Writes `result` to bench/results/<prefix><when>.json; the file's path. */
export function writeResult(result: { when: string }, prefix = ''): string {
  const out = join(repoRoot(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `${prefix}${result.when.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  return file;
}
