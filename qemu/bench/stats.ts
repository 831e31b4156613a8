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

export function stats(samples: number[]): Stats {
  const s = Float64Array.from(samples).sort();
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
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
