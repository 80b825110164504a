// Log-log chart of the scaling bench: seconds against one size axis, one line
// per measured operation (fit, predict), rendered by the report charts'
// renderer (Vega-Lite -> SVG by headless Vega -> PNG by resvg).
import type * as vl from 'vega-lite';
import { renderChart } from '../ts/eval/charts.ts';

export async function logLogChart(
  rows: { x: number; series: string; seconds: number }[],
  xTitle: string,
  title: string,
  base: string,
): Promise<{ svg: string; png: string }> {
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 320,
    height: 220,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle, scale: { type: 'log' } },
      y: { field: 'seconds', type: 'quantitative', title: 'seconds', scale: { type: 'log' } },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 400 } },
    },
  };
  return renderChart(spec, base);
}
