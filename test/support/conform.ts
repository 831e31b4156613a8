/**
 * Reading sgiov-conform's output (guest-driver/tools/sgiov-conform.c): one
 * `SCOPE.NAME: OUTCOME` line per check. Two runs are compared check by
 * check, so that a missing line or a changed one is named with both
 * outcomes rather than shown as a shifted diff.
 */

/** The checks of one run, by name (`lo.half-close`), in output order. */
export function parseConform(lines: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of lines) {
    const r = /^([a-z0-9]+\.[a-z0-9-]+): (.*?)\r?$/.exec(l);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

export interface ConformDiff {
  /** Checks with the same outcome in both runs. */
  identical: number;
  /** Checks that differ or are missing from one run (known differences left out). */
  differing: number;
  /** One entry per differing check with both outcomes; '' when none. */
  report: string;
  /** Known differences whose outcomes now agree. */
  agreeing: string[];
}

/**
 * Compares a run (`got`) with the reference (`want`), check by check;
 * checks named in `known` (name -> why) may differ and are not reported.
 */
export function conformDiff(
  want: Map<string, string>,
  got: Map<string, string>,
  known: ReadonlyMap<string, string> = new Map(),
): ConformDiff {
  const names = [...want.keys(), ...[...got.keys()].filter((k) => !want.has(k))];
  const lines: string[] = [];
  const agreeing: string[] = [];
  let identical = 0;
  for (const k of names) {
    const a = want.get(k);
    const b = got.get(k);
    if (a === b) {
      identical++;
      if (known.has(k)) agreeing.push(k);
      continue;
    }
    if (known.has(k) && a !== undefined && b !== undefined) continue;
    lines.push(`${k}\n    kernel: ${a ?? '(no line)'}\n    sgiov:  ${b ?? '(no line)'}`);
  }
  return { identical, differing: lines.length, report: lines.join('\n'), agreeing };
}
