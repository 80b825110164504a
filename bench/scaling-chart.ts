// Log-log chart of the scaling bench: seconds against one size axis, one line
// per measured operation (fit, predict), rendered like ts/eval/charts.ts does
// (Vega-Lite -> SVG by headless Vega -> PNG by resvg). Its own small render
// because the helper's render() is not exported and its line chart's x axis
// is the training step.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import { writeFileAtomic } from '../ts/io/safetensors.ts';

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
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } })
    .render()
    .asPng();
  const out = { svg: `${base}.svg`, png: `${base}.png` };
  writeFileAtomic(out.svg, svg);
  writeFileAtomic(out.png, png);
  return out;
}
