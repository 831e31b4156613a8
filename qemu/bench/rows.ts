/**
 * One schema for every benchmark's results: a row is a measured value beside
 * the baseline a user would pick instead, measured in the same run, their
 * ratio, the project's goal for that ratio and whether this run met it.
 * `npm run bench` and `npm run bench:apps` write a top-level "rows" list of
 * these and print the same as a table.
 */
import { table } from './report.js';

export interface BenchRow {
  /** Stable id for scripts, e.g. "crossNode.stream.128k". */
  id: string;
  /** What was measured and against what, for people. */
  what: string;
  /** The unit of value and baseline, e.g. "GB/s", "us". */
  unit: string;
  value: number;
  baseline: number;
  /** value / baseline. */
  ratio: number;
  /** A bound on the ratio: ">= 0.8" or "<= 1.5". */
  goal: string;
  met: boolean;
}

const GOAL = /^(>=|<=) (\d+(?:\.\d+)?)$/;

/** Whether `ratio` meets `goal` (">= X" or "<= X"); a goal of another shape is a programming error. */
export function goalMet(ratio: number, goal: string): boolean {
  const m = GOAL.exec(goal);
  if (!m) throw new Error(`bench goal '${goal}' is not '>= X' or '<= X'`);
  const bound = Number(m[2]);
  return Number.isFinite(ratio) && (m[1] === '>=' ? ratio >= bound : ratio <= bound);
}

export function benchRow(r: Omit<BenchRow, 'ratio' | 'met'>): BenchRow {
  const ratio = r.value / r.baseline;
  return { ...r, ratio, met: goalMet(ratio, r.goal) };
}

const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4));

/** The rows as an aligned text table (one header line, a rule, a line per row). */
export function rowsTable(rows: readonly BenchRow[]): string {
  return table([
    ['id', 'value', 'baseline', 'unit', 'ratio', 'goal', 'met'],
    ...rows.map((r) => [
      r.id,
      fmt(r.value),
      fmt(r.baseline),
      r.unit,
      r.ratio.toFixed(3),
      r.goal,
      r.met ? 'yes' : 'NO',
    ]),
  ]);
}
