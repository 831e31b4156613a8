/**
 * `sgiov bench compare A.json B.json`: two bench results (`npm run bench`
 * or `npm run bench:apps`) side by side, row by row by id: both values, the
 * change, both ratios to their baselines and whether each met its goal. A
 * row only one result has is listed as added or gone. Exit status 0; 1 when
 * a row that met its goal in A does not in B (a regression a script can
 * catch); 2 for a file that is not a bench result.
 */
import { readFileSync } from 'node:fs';
import { table } from './report.js';
import type { BenchRow } from './rows.js';

export class CompareError extends Error {}

interface Result {
  when?: string;
  commit?: string | null;
  rows: BenchRow[];
}

function load(file: string): Result {
  let r: unknown;
  try {
    r = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CompareError(`${file}: ${(e as Error).message}`);
  }
  const rows = (r as { rows?: unknown }).rows;
  if (!Array.isArray(rows))
    throw new CompareError(`${file}: no "rows" list (a result of npm run bench from before the row schema?)`);
  for (const x of rows as Record<string, unknown>[])
    if (typeof x?.id !== 'string' || typeof (x.value ?? x.sgiov) !== 'number' || typeof x.ratio !== 'number')
      throw new CompareError(
        `${file}: a row without id, value and ratio: ${JSON.stringify(x).slice(0, 120)}`,
      );
  // bench:apps rows call the value "sgiov".
  return {
    ...(r as Result),
    rows: (rows as BenchRow[]).map((x) => ({
      ...x,
      value: x.value ?? (x as unknown as { sgiov: number }).sgiov,
    })),
  };
}

const num = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4));
const met = (r: BenchRow | undefined): string => (r ? (r.met ? 'met' : 'NOT') : '');

/** The comparison table and whether a goal met in A is missed in B. */
export function compareResults(fileA: string, fileB: string): { text: string; regressed: string[] } {
  const a = load(fileA);
  const b = load(fileB);
  const byA = new Map(a.rows.map((r) => [r.id, r]));
  const byB = new Map(b.rows.map((r) => [r.id, r]));
  const ids = [...new Set([...byA.keys(), ...byB.keys()])];
  const cells = [['id', 'unit', 'A', 'B', 'change', 'ratio A', 'ratio B', 'goal', 'A', 'B']];
  const regressed: string[] = [];
  for (const id of ids) {
    const x = byA.get(id);
    const y = byB.get(id);
    const change = x && y ? `${(((y.value - x.value) / x.value) * 100).toFixed(1)}%` : x ? 'gone' : 'added';
    if (x?.met && y && !y.met) regressed.push(id);
    cells.push([
      id,
      (y ?? x)!.unit,
      x ? num(x.value) : '',
      y ? num(y.value) : '',
      change,
      x ? x.ratio.toFixed(3) : '',
      y ? y.ratio.toFixed(3) : '',
      (y ?? x)!.goal,
      met(x),
      met(y),
    ]);
  }
  const head = `A: ${fileA} (${a.when ?? '?'}, commit ${a.commit ?? '?'})\nB: ${fileB} (${b.when ?? '?'}, commit ${b.commit ?? '?'})\n`;
  const tail = regressed.length ? `goals met in A and missed in B: ${regressed.join(', ')}\n` : '';
  return {
    text: head + table(cells) + tail,
    regressed,
  };
}
