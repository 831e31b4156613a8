/**
 * The bench's plots, drawn from its JSON by Vega-Lite (compiled to Vega and
 * rendered headless to SVG) and rasterised to PNG by resvg, beside the JSON:
 *   <stem>-latency   CDFs of the 4 KiB ping-pongs (data plane, cross-node, TCP)
 *   <stem>-isolation the small tenant's RTT beside saturating tenants, by policy
 *   <stem>-drf       DRF shares over time in the scheduler's simulator,
 *                    measured per interval against the computed allocation
 *   <stem>-rows      every row's value against its baseline (ratio and goal)
 * Each plot appears only when the JSON holds its data (a skipped part draws
 * nothing). Also alone: node dist/qemu/bench/plots.js RESULT.json
 */
import { Resvg } from '@resvg/resvg-js';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Stat } from './dataplane.js';
import type { BenchRow } from './rows.js';

/** What plots read of a bench result (all optional: a part that did not run is absent). */
export interface PlotInput {
  dataPlane?: { pingPong?: { mode: string; rttUs: Stat }[] };
  crossNode?: { pingPong?: { pipeUs: Stat; tlsUs?: Stat; tcpUs: Stat } } | { skipped: string };
  isolation?: { policy: string; vfs: number | null; rttUs: Stat; busyGbps: number }[];
  drfOverTime?: { computed: Record<string, number>; samples: { t: number; tenant: string; gbps: number }[] };
  rows?: BenchRow[];
}

const FONT = 'DejaVu Sans';

/** Writes `base`.svg and `base`.png for a Vega-Lite spec; returns the two paths. */
export async function renderPlot(spec: TopLevelSpec, base: string): Promise<string[]> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: FONT },
  })
    .render()
    .asPng();
  writeFileSync(`${base}.svg`, svg);
  writeFileSync(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}

const config = { font: FONT, background: 'white' };

/** Points of a CDF from a Stat's quantiles (older results without them give none). */
function cdf(series: string, s: Stat | undefined): { series: string; us: number; q: number }[] {
  if (!s?.quantiles) return [];
  return Object.entries(s.quantiles).map(([q, us]) => ({ series, us, q: Number(q) }));
}

function latencySpec(r: PlotInput): TopLevelSpec | null {
  const xn = r.crossNode && 'pingPong' in r.crossNode ? r.crossNode.pingPong : undefined;
  const points = [
    ...(r.dataPlane?.pingPong ?? []).flatMap((p) => cdf(`data plane, H2D ${p.mode}`, p.rttUs)),
    ...cdf('cross-node pipe', xn?.pipeUs),
    ...cdf('cross-node pipe, TLS', xn?.tlsUs),
    ...cdf('plain TCP between the namespaces', xn?.tcpUs),
  ];
  if (points.length === 0) return null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: '4 KiB ping-pong round trip: CDF',
    width: 560,
    height: 300,
    config,
    data: { values: points },
    mark: { type: 'line', interpolate: 'step-after', point: true },
    encoding: {
      x: { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: 'round trip (us, log scale)' },
      y: { field: 'q', type: 'quantitative', title: 'fraction of round trips at or below' },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        legend: { orient: 'bottom', columns: 2, labelLimit: 400 },
      },
    },
  };
}

function isolationSpec(r: PlotInput): TopLevelSpec | null {
  const iso = r.isolation ?? [];
  if (iso.length === 0) return null;
  const values = iso.flatMap((x) => {
    const name = x.vfs !== null ? `${x.policy} (${x.vfs} VFs)` : x.policy;
    return [
      { policy: name, stat: 'median', us: x.rttUs.median },
      { policy: name, stat: 'p99', us: x.rttUs.p99 },
    ];
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Isolation: a 4 KiB ping-pong beside 8 tenants saturating RDMA (device time)',
    width: 480,
    height: 260,
    config,
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'policy', type: 'nominal', title: 'scheduling policy', axis: { labelAngle: 0 } },
      xOffset: { field: 'stat' },
      y: { field: 'us', type: 'quantitative', title: 'round trip (us)' },
      color: { field: 'stat', type: 'nominal', title: null },
    },
  };
}

function drfSpec(r: PlotInput): TopLevelSpec | null {
  const d = r.drfOverTime;
  if (!d || d.samples.length === 0) return null;
  const end = Math.max(...d.samples.map((x) => x.t));
  const computed = Object.entries(d.computed).flatMap(([tenant, gbps]) => [
    { tenant, gbps, t: 0 },
    { tenant, gbps, t: end },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'DRF in the scheduler simulator: measured per interval (lines) vs computed (dashed)',
    width: 560,
    height: 280,
    config,
    layer: [
      {
        data: { values: d.samples },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'virtual time (s)' },
          y: { field: 'gbps', type: 'quantitative', title: 'rate (Gbps)' },
          color: { field: 'tenant', type: 'nominal' },
        },
      },
      {
        data: { values: computed },
        mark: { type: 'line', strokeDash: [6, 4] },
        encoding: {
          x: { field: 't', type: 'quantitative' },
          y: { field: 'gbps', type: 'quantitative' },
          color: { field: 'tenant', type: 'nominal' },
        },
      },
    ],
  };
}

function rowsSpec(r: PlotInput): TopLevelSpec | null {
  const rows = r.rows ?? [];
  if (rows.length === 0) return null;
  const values = rows.map((x) => ({
    id: x.id,
    ratio: x.ratio,
    goal: x.goal,
    met: x.met ? 'met' : 'not met',
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Each row: value / baseline measured in the same run (label: the goal)',
    width: 480,
    height: { step: 22 },
    config,
    data: { values },
    layer: [
      {
        mark: 'bar',
        encoding: {
          y: { field: 'id', type: 'nominal', sort: null, title: null, axis: { labelLimit: 400 } },
          x: { field: 'ratio', type: 'quantitative', title: 'value / baseline' },
          color: {
            field: 'met',
            type: 'nominal',
            scale: { domain: ['met', 'not met'], range: ['#4c9a2a', '#c0392b'] },
            title: null,
          },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4 },
        encoding: {
          y: { field: 'id', type: 'nominal', sort: null },
          x: { field: 'ratio', type: 'quantitative' },
          text: { field: 'goal' },
        },
      },
    ],
  };
}

/** Draws every plot `result` has data for, beside `jsonPath` (same stem); returns the files written. */
export async function plotResult(result: PlotInput, jsonPath: string): Promise<string[]> {
  const stem = join(dirname(jsonPath), basename(jsonPath, '.json'));
  const out: string[] = [];
  for (const [name, spec] of [
    ['latency', latencySpec(result)],
    ['isolation', isolationSpec(result)],
    ['drf', drfSpec(result)],
    ['rows', rowsSpec(result)],
  ] as const) {
    if (spec) out.push(...(await renderPlot(spec, `${stem}-${name}`)));
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/qemu/bench/plots.js RESULT.json\n');
    process.exitCode = 2;
  } else {
    Promise.resolve()
      .then(() => plotResult(JSON.parse(readFileSync(file, 'utf8')) as PlotInput, file))
      .then(
        (files) => process.stdout.write(files.map((f) => `plot: ${f}\n`).join('')),
        (e: unknown) => {
          process.stderr.write(`plots: ${e instanceof Error ? e.message : String(e)}\n`);
          process.exitCode = 1;
        },
      );
  }
}
