// The SVG writer and the bench chart drawn with it: escaping, refusals of bad numbers, and bars
// whose heights and labels follow the figures.

import { cheapRequestsChart, groupedBarChart, type BarChartSpec } from '../../bench/server/chart';
import { escapeXml, SvgDocument } from '../../bench/svg';
import { sampleResults } from './fixtures';

interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
  fill: string;
}

function rects(svg: string): Rect[] {
  return [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="(#[0-9a-f]{6})"\/>/g)].map((match) => ({
    x: Number(match[1]),
    y: Number(match[2]),
    width: Number(match[3]),
    height: Number(match[4]),
    fill: match[5],
  }));
}

const texts = (svg: string): string[] => [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((match) => match[1]);

describe('SvgDocument', () => {
  it('escapes markup in text, attributes and the title', () => {
    const svg = new SvgDocument(100, 50, 'a <b> & "c"').text(1, 2, '1 < 2 & 3 > 2', { colour: '"red"' }).toString();
    expect(svg).toContain('<title>a &lt;b&gt; &amp; &quot;c&quot;</title>');
    expect(svg).toContain('fill="&quot;red&quot;">1 &lt; 2 &amp; 3 &gt; 2</text>');
    expect(escapeXml("it's")).toBe('it&apos;s');
  });

  it('rounds coordinates to a tenth and writes a complete document', () => {
    const svg = new SvgDocument(200, 100, 't').rect(1.234, 5.678, 10, 20.05, '#123456').toString();
    expect(svg).toContain('<rect x="1.2" y="5.7" width="10" height="20.1" fill="#123456"/>');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" viewBox="0 0 200 100"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('refuses coordinates that are not finite numbers and rectangles of negative size', () => {
    const svg = new SvgDocument(10, 10, 't');
    expect(() => svg.line(0, NaN, 1, 1, { colour: '#000000' })).toThrow('svg: y1 is NaN, not a finite number');
    expect(() => svg.text(Infinity, 0, 'x')).toThrow('svg: x is Infinity');
    expect(() => svg.rect(0, 0, -1, 1, '#000000')).toThrow('negative size');
  });
});

describe('groupedBarChart', () => {
  const spec: BarChartSpec = {
    description: 'd',
    title: 'T',
    subtitle: 'S',
    yLabel: 'Y',
    xLabel: 'X',
    groups: [
      { label: 'one', values: [0.5, 1] },
      { label: 'two', values: [NaN, 1.5] },
    ],
    series: [
      { label: 'first', colour: '#aa0000' },
      { label: 'second', colour: '#00aa00' },
    ],
    reference: { value: 0.7, label: 'target 0.7' },
    tickStep: 0.5,
    minimumTop: 1,
    valueDigits: 2,
  };

  it('draws each bar with a height proportional to its value, and marks a missing one', () => {
    const svg = groupedBarChart(spec);
    const bars = rects(svg).filter((rect) => rect.width > 10);
    expect(bars.map((bar) => bar.fill)).toEqual(['#aa0000', '#00aa00', '#00aa00']);
    const [half, one, oneAndHalf] = bars.map((bar) => bar.height);
    expect(one / half).toBeCloseTo(2, 1);
    expect(oneAndHalf / half).toBeCloseTo(3, 1);
    // All bars stand on the same axis.
    expect(new Set(bars.map((bar) => Math.round(bar.y + bar.height))).size).toBe(1);
    expect(texts(svg)).toEqual(expect.arrayContaining(['0.50', '1.00', '1.50', 'n/a', 'one', 'two', 'first', 'second', 'target 0.7', 'T', 'S', 'Y', 'X']));
  });

  it('labels the y axis up to the tick over the tallest bar', () => {
    const labels = texts(groupedBarChart(spec)).filter((text) => /^\d\.\d$/.test(text));
    expect(labels).toEqual(['0.0', '0.5', '1.0', '1.5']);
  });

  it('draws the reference line at its value', () => {
    const svg = groupedBarChart(spec);
    const bars = rects(svg).filter((rect) => rect.width > 10);
    const axis = bars[0].y + bars[0].height;
    const perUnit = bars[0].height / 0.5;
    const dashed = /<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="\1" stroke="#c81e1e" stroke-width="2" stroke-dasharray="6 4"\/>/g;
    const ys = [...svg.matchAll(dashed)].map((match) => Number(match[1]));
    // The legend's sample and the line across the plot.
    expect(ys).toHaveLength(2);
    expect(axis - ys[1]).toBeCloseTo(0.7 * perUnit, 0);
  });
});

describe('cheapRequestsChart', () => {
  it('has a bar per transport and client count, and says when the run was quick', () => {
    const results = sampleResults();
    const full = cheapRequestsChart(results);
    expect(rects(full).filter((rect) => rect.width > 10)).toHaveLength(10);
    expect(texts(full)).toEqual(expect.arrayContaining(['stdio', 'TCP', 'UDP', 'HTTP', 'WebSocket', '1 client', '16 clients', '0.90', '1.50']));
    expect(full).not.toContain('Quick mode');
    const quick = cheapRequestsChart({ ...results, settings: { ...results.settings, quick: true } });
    expect(texts(quick)).toContain('Quick mode (--quick): rough figures, not for comparison');
  });
});
