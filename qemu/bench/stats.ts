/** Sample statistics for the benchmarks (one quantile rule for all of them). */

export interface Stats {
  n: number;
  medianNs: number;
  p99Ns: number;
  p999Ns: number;
  meanNs: number;
  minNs: number;
  maxNs: number;
}

/** The quantiles a bench keeps of each latency distribution (with min and max: 0 and 1). */
export const QUANTILES = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1] as const;

/** The nearest-rank quantile q of sorted samples. */
const rank = (s: Float64Array, q: number): number =>
  s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;

/** QUANTILES of the samples, keyed by the quantile as written ("0.5", "0.999"). */
export function quantiles(samples: number[]): Record<string, number> {
  const s = Float64Array.from(samples).sort();
  return Object.fromEntries(QUANTILES.map((q) => [String(q), rank(s, q)]));
}

export function stats(samples: number[]): Stats {
  const s = Float64Array.from(samples).sort();
  const at = (q: number): number => rank(s, q);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    medianNs: at(0.5),
    p99Ns: at(0.99),
    p999Ns: at(0.999),
    meanNs: sum / s.length,
    minNs: s[0]!,
    maxNs: s[s.length - 1]!,
  };
}
