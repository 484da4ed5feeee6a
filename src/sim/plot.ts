/**
 * Line charts as plain SVG text, for the simulator's scale sweep (`npm run sim -- --svg FILE`)
 * and docs/benchmarks.md. No dependency: a chart is a few dozen elements.
 */

export interface Series {
  name: string;
  ys: number[];
  color: string;
  dashed?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  /** x values; plotted on a log10 axis. */
  xs: number[];
  series: Series[];
  yMax: number;
  yStep: number;
}

const PANEL_W = 420;
const PANEL_H = 300;
const M = { left: 52, right: 16, top: 32, bottom: 64 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(chart: Chart, offsetX: number): string {
  const w = PANEL_W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const lx = chart.xs.map((x) => Math.log10(x));
  const x0 = Math.min(...lx);
  const x1 = Math.max(...lx);
  const px = (x: number): number => M.left + ((Math.log10(x) - x0) / (x1 - x0 || 1)) * w;
  const py = (y: number): number => M.top + h - (Math.min(y, chart.yMax) / chart.yMax) * h;
  const out: string[] = [`<g transform="translate(${offsetX},0)">`];
  out.push(`<text x="${M.left + w / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(chart.title)}</text>`);
  for (let y = 0; y <= chart.yMax + 1e-9; y += chart.yStep) {
    out.push(`<line x1="${M.left}" x2="${M.left + w}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${Number(y.toFixed(2))}</text>`);
  }
  for (const x of chart.xs) {
    out.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${M.top}" y2="${M.top + h}" stroke="#eee"/>`);
    out.push(`<text x="${px(x)}" y="${M.top + h + 16}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${M.left + w / 2}" y="${M.top + h + 34}" text-anchor="middle">${esc(chart.xLabel)}</text>`);
  out.push(`<text transform="translate(14,${M.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel)}</text>`);
  chart.series.forEach((s, i) => {
    const points = chart.xs.map((x, k) => `${px(x).toFixed(1)},${py(s.ys[k]!).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`);
    if (!s.dashed) for (const p of points.split(' ')) out.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${s.color}"/>`);
    const lx0 = M.left + (i % 2) * (w / 2);
    const ly0 = M.top + h + 50 + Math.floor(i / 2) * 14;
    out.push(`<line x1="${lx0}" x2="${lx0 + 18}" y1="${ly0 - 4}" y2="${ly0 - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`);
    out.push(`<text x="${lx0 + 22}" y="${ly0}">${esc(s.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** Charts side by side in one SVG document. */
export function renderCharts(charts: Chart[]): string {
  const width = PANEL_W * charts.length;
  const height = PANEL_H + Math.max(0, ...charts.map((c) => Math.ceil(c.series.length / 2) - 1)) * 14;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...charts.map((c, i) => panel(c, i * PANEL_W)),
    '</svg>',
    '',
  ].join('\n');
}
