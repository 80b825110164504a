// Report charts: reliability diagrams and metric-vs-step curves, specified in
// Vega-Lite, rendered to SVG by Vega (headless) and to PNG by resvg.
import { writeFileAtomic } from '../io/safetensors.ts';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import type { ReliabilityBin } from './metrics.ts';

export interface ChartFiles {
  svg: string;
  png: string;
}

/** Render any Vega-Lite spec to `<base>.svg` and `<base>.png` (written atomically). */
export async function renderChart(spec: vl.TopLevelSpec, base: string): Promise<ChartFiles> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: 2 },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  const out = { svg: `${base}.svg`, png: `${base}.png` };
  writeFileAtomic(out.svg, svg);
  writeFileAtomic(out.png, png);
  return out;
}

/** Reliability diagram: accuracy vs confidence per bin, one panel colour per method. */
export async function reliabilityDiagram(
  series: { method: string; bins: ReliabilityBin[] }[],
  title: string,
  base: string,
): Promise<ChartFiles> {
  const rows = series.flatMap((s) =>
    s.bins
      .filter((b) => b.count > 0)
      .map((b) => ({ method: s.method, confidence: b.confidence, accuracy: b.accuracy, count: b.count, mid: (b.lo + b.hi) / 2 })),
  );
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 320,
    height: 320,
    layer: [
      {
        data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
        mark: { type: 'line', strokeDash: [4, 4], color: '#888' },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
      },
      {
        data: { values: rows },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'confidence', type: 'quantitative', scale: { domain: [0, 1] }, title: 'confidence' },
          y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'accuracy' },
          color: { field: 'method', type: 'nominal' },
          tooltip: [{ field: 'count', type: 'quantitative' }],
        },
      },
    ],
  };
  return renderChart(spec, base);
}

/** One line per method of a metric against the training step. */
export async function metricVsStep(
  rows: { step: number; method: string; value: number }[],
  metric: string,
  title: string,
  base: string,
): Promise<ChartFiles> {
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 360,
    height: 240,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step' },
      y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: false } },
      color: { field: 'method', type: 'nominal' },
    },
  };
  return renderChart(spec, base);
}

/**
 * Held-out NLL and ECE against the prior precision (log axis), one y axis
 * each, with vertical rules at the marked precisions (e.g. the marginal
 * likelihood's and the one chosen on validation data).
 */
export async function priorScan(
  points: { delta: number; nll: number; ece: number }[],
  marks: { label: string; delta: number }[],
  title: string,
  base: string,
): Promise<ChartFiles> {
  const x = { field: 'delta', type: 'quantitative' as const, scale: { type: 'log' as const }, axis: { grid: false }, title: 'prior precision delta' };
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 360,
    height: 240,
    layer: [
      {
        data: { values: points },
        mark: { type: 'line', point: true, color: '#4c78a8' },
        encoding: { x, y: { field: 'nll', type: 'quantitative', title: 'NLL (blue)', scale: { zero: false } } },
      },
      {
        data: { values: points },
        mark: { type: 'line', point: true, color: '#f58518' },
        encoding: { x, y: { field: 'ece', type: 'quantitative', title: 'ECE (orange)', scale: { zero: true } } },
      },
      {
        data: { values: marks },
        layer: [
          { mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { x } },
          { mark: { type: 'text', align: 'left', dx: 4, dy: -4, color: '#333' }, encoding: { x, y: { value: 12 }, text: { field: 'label' } } },
        ],
      },
    ],
    resolve: { scale: { y: 'independent' } },
  };
  return renderChart(spec, base);
}
