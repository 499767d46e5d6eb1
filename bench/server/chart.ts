// The chart of the cheap-request ratios, per transport and client count, drawn as SVG for
// docs/benchmarks-chart.svg: a grouped bar chart with a dashed target line.

import * as fs from 'fs';
import { SvgDocument } from '../svg';
import { TRANSPORT_LABEL, TRANSPORTS } from './harness';
import { RATIO_TARGET } from './report';
import type { Results } from './results';

export interface BarChartSpec {
  /** The accessible name of the image. */
  description: string;
  title: string;
  subtitle: string;
  /** A line in red under the subtitle, when the figures need a caution. */
  warning?: string;
  yLabel: string;
  xLabel: string;
  groups: Array<{ label: string; values: number[] }>;
  /** One per value of a group, in order; also the legend. */
  series: Array<{ label: string; colour: string }>;
  reference: { value: number; label: string };
  tickStep: number;
  /** The y axis reaches at least this high, whatever the values. */
  minimumTop: number;
  valueDigits: number;
}

const INK = '#282828';
const MUTED = '#5a5a5a';
const GRID = '#e1e1e1';
const TARGET = '#c81e1e';
const BAR_WIDTH = 24;
const BAR_GAP = 4;
const GROUP_GAP = 36;
const PLOT_HEIGHT = 280;
const LINE_HEIGHT = 18;
const MARGIN = { left: 64, right: 24, bottom: 48 };

export function groupedBarChart(spec: BarChartSpec): string {
  const groupWidth = spec.series.length * BAR_WIDTH + (spec.series.length - 1) * BAR_GAP;
  const plotWidth = spec.groups.length * (groupWidth + GROUP_GAP);
  // Title, subtitle, the warning if any, the legend, then room for the tallest bar's label.
  const legendY = 22 + LINE_HEIGHT * (spec.warning === undefined ? 2 : 3) + 4;
  const plotTop = legendY + 22;
  const svg = new SvgDocument(MARGIN.left + plotWidth + MARGIN.right, plotTop + PLOT_HEIGHT + MARGIN.bottom, spec.description);
  const finite = spec.groups.flatMap((group) => group.values).filter(Number.isFinite);
  const top = Math.ceil(Math.max(spec.minimumTop, spec.reference.value, ...finite) / spec.tickStep) * spec.tickStep;
  const plotLeft = MARGIN.left;
  const plotRight = MARGIN.left + plotWidth;
  const plotBottom = plotTop + PLOT_HEIGHT;
  const yOf = (value: number): number => plotBottom - (Math.max(0, value) / top) * PLOT_HEIGHT;

  svg.text(plotLeft, 22, spec.title, { size: 15, bold: true });
  svg.text(plotLeft, 22 + LINE_HEIGHT, spec.subtitle, { size: 11, colour: MUTED });
  if (spec.warning !== undefined) svg.text(plotLeft, 22 + 2 * LINE_HEIGHT, spec.warning, { size: 11, bold: true, colour: TARGET });
  let legendX = plotLeft;
  for (const series of spec.series) {
    svg.rect(legendX, legendY - 9, 10, 10, series.colour);
    svg.text(legendX + 14, legendY, series.label, { size: 11 });
    legendX += 14 + SvgDocument.textWidth(series.label, 11) + 18;
  }
  svg.line(legendX, legendY - 4, legendX + 22, legendY - 4, { colour: TARGET, width: 2, dash: '6 4' });
  svg.text(legendX + 28, legendY, spec.reference.label, { size: 11 });

  // Ticks from 0 to the top, counted in steps so that rounding never drops the last one.
  const tickCount = Math.round(top / spec.tickStep);
  for (let index = 0; index <= tickCount; index++) {
    const value = index * spec.tickStep;
    const y = yOf(value);
    if (index > 0) svg.line(plotLeft, y, plotRight, y, { colour: GRID });
    svg.text(plotLeft - 8, y + 4, value.toFixed(1), { size: 11, anchor: 'end' });
  }
  svg.text(18, plotTop + PLOT_HEIGHT / 2, spec.yLabel, { size: 12, anchor: 'middle', rotate: -90 });

  // The value labels go on last, over the target line.
  const valueLabels: Array<() => void> = [];
  spec.groups.forEach((group, groupIndex) => {
    const groupLeft = plotLeft + GROUP_GAP / 2 + groupIndex * (groupWidth + GROUP_GAP);
    group.values.forEach((value, seriesIndex) => {
      const x = groupLeft + seriesIndex * (BAR_WIDTH + BAR_GAP);
      const centre = x + BAR_WIDTH / 2;
      if (!Number.isFinite(value)) {
        // A cell with no figure (the baseline measured nothing) is marked, not drawn as zero.
        svg.text(centre, plotBottom - 4, 'n/a', { size: 9, anchor: 'middle', colour: MUTED });
        return;
      }
      const y = yOf(value);
      svg.rect(x, y, BAR_WIDTH, plotBottom - y, spec.series[seriesIndex].colour);
      valueLabels.push(() => svg.text(centre, y - 4, value.toFixed(spec.valueDigits), { size: 9, anchor: 'middle', halo: '#ffffff' }));
    });
    svg.text(groupLeft + groupWidth / 2, plotBottom + 18, group.label, { size: 12, anchor: 'middle' });
  });

  const referenceY = yOf(spec.reference.value);
  svg.line(plotLeft, referenceY, plotRight, referenceY, { colour: TARGET, width: 2, dash: '6 4' });
  svg.line(plotLeft, plotTop, plotLeft, plotBottom, { colour: INK });
  svg.line(plotLeft, plotBottom, plotRight, plotBottom, { colour: INK });
  svg.text(plotLeft + plotWidth / 2, plotBottom + 38, spec.xLabel, { size: 12, anchor: 'middle', colour: MUTED });
  for (const draw of valueLabels) draw();
  return svg.toString();
}

const SERIES_COLOURS = ['#78aadc', '#286eb4', '#14326e', '#0a1a3a'];

export function cheapRequestsChart(results: Results): string {
  const { rows } = results.cheap;
  const { settings } = results;
  const clientCounts = settings.clientCounts;
  if (clientCounts.length > SERIES_COLOURS.length) throw new Error(`the chart has colours for ${SERIES_COLOURS.length} client counts, not ${clientCounts.length}`);
  const rounds = settings.rounds === 1 ? `one round of ${settings.secondsPerCell} s per cell` : `best of ${settings.rounds} rounds of ${settings.secondsPerCell} s per cell`;
  return groupedBarChart({
    description: 'Requests/s of rkllm-serve as a fraction of the bare baseline, per transport and client count',
    title: 'rkllm-serve against a bare Node server of the same transport',
    subtitle: `rkllm_createDefaultParam, closed loop; ${rounds}; ${results.date}`,
    warning: settings.quick ? 'Quick mode (--quick): rough figures, not for comparison' : undefined,
    yLabel: 'requests/s, ours ÷ baseline',
    xLabel: 'transport',
    groups: TRANSPORTS.map((transport) => ({
      label: TRANSPORT_LABEL[transport],
      values: clientCounts.map((clients) => rows.find((row) => row.transport === transport && row.clients === clients)?.ratio ?? NaN),
    })),
    series: clientCounts.map((clients, index) => ({ label: `${clients} client${clients === 1 ? '' : 's'}`, colour: SERIES_COLOURS[index] })),
    reference: { value: RATIO_TARGET, label: `target ${RATIO_TARGET}` },
    tickStep: 0.5,
    minimumTop: 1.2,
    valueDigits: 2,
  });
}

export function writeChart(chartPath: string, results: Results): void {
  fs.writeFileSync(chartPath, cheapRequestsChart(results));
}
