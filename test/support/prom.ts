/**
 * Scraping /metrics and reading it with a Prometheus text-format parser
 * (parse-prometheus-text-format), for the metrics tests.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

export interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}

export async function scrape(url: string): Promise<{ text: string; families: Map<string, Family> }> {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${await r.text()}`);
  const text = await r.text();
  const families = new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
  return { text, families };
}

/** The value of one sample (labels must all match); NaN when there is none. */
export function sample(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const f = fams.get(name);
  const m = f?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m ? Number(m.value) : NaN;
}
