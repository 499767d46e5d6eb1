// A grouped bar chart written straight to PNG: an RGB raster, a 3x5 pixel font for the few
// characters the labels need, and a PNG encoder (zlib deflate and a CRC-32). No image library is
// installed, and this is all the bench needs.

import * as zlib from 'zlib';

type Rgb = [number, number, number];

export interface BarGroup {
  label: string;
  values: number[];
}

export interface BarChart {
  groups: BarGroup[];
  /** One colour per value of a group, in order; also shown as the legend. */
  series: Array<{ label: string; colour: Rgb }>;
  /** A horizontal reference line (the target). */
  reference: number;
  /** Y ticks to label. */
  ticks: number[];
}

// 3x5 glyphs, rows top to bottom, '#' = ink.
const GLYPHS: Record<string, string[]> = {
  '0': ['###', '#.#', '#.#', '#.#', '###'],
  '1': ['.#.', '##.', '.#.', '.#.', '###'],
  '2': ['##.', '..#', '.#.', '#..', '###'],
  '3': ['##.', '..#', '.#.', '..#', '##.'],
  '4': ['#.#', '#.#', '###', '..#', '..#'],
  '5': ['###', '#..', '##.', '..#', '##.'],
  '6': ['.##', '#..', '###', '#.#', '###'],
  '7': ['###', '..#', '.#.', '.#.', '.#.'],
  '8': ['###', '#.#', '###', '#.#', '###'],
  '9': ['###', '#.#', '###', '..#', '##.'],
  '.': ['...', '...', '...', '...', '.#.'],
  ' ': ['...', '...', '...', '...', '...'],
  a: ['...', '##.', '.##', '#.#', '###'],
  b: ['#..', '#..', '###', '#.#', '###'],
  c: ['...', '###', '#..', '#..', '###'],
  d: ['..#', '..#', '###', '#.#', '###'],
  e: ['...', '###', '###', '#..', '###'],
  g: ['...', '###', '#.#', '.##', '##.'],
  h: ['#..', '#..', '###', '#.#', '#.#'],
  i: ['.#.', '...', '.#.', '.#.', '.#.'],
  l: ['#..', '#..', '#..', '#..', '.##'],
  n: ['...', '##.', '#.#', '#.#', '#.#'],
  o: ['...', '###', '#.#', '#.#', '###'],
  p: ['...', '###', '#.#', '###', '#..'],
  r: ['...', '#.#', '##.', '#..', '#..'],
  s: ['...', '.##', '#..', '..#', '##.'],
  t: ['.#.', '###', '.#.', '.#.', '.##'],
  u: ['...', '#.#', '#.#', '#.#', '###'],
  w: ['...', '#.#', '#.#', '###', '###'],
  x: ['...', '#.#', '.#.', '#.#', '#.#'],
};

class Raster {
  readonly pixels: Buffer;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.pixels = Buffer.alloc(width * height * 3, 255);
  }

  fill(x: number, y: number, w: number, h: number, colour: Rgb): void {
    for (let row = Math.max(0, y); row < Math.min(this.height, y + h); row++) {
      for (let col = Math.max(0, x); col < Math.min(this.width, x + w); col++) {
        const at = (row * this.width + col) * 3;
        this.pixels[at] = colour[0];
        this.pixels[at + 1] = colour[1];
        this.pixels[at + 2] = colour[2];
      }
    }
  }

  /** Text in the 3x5 font, each font pixel `scale` pixels wide; unknown characters are blank. */
  text(x: number, y: number, text: string, scale: number, colour: Rgb): void {
    for (const [index, character] of [...text.toLowerCase()].entries()) {
      const glyph = GLYPHS[character] ?? GLYPHS[' '];
      glyph.forEach((row, gy) =>
        [...row].forEach((ink, gx) => {
          if (ink === '#') this.fill(x + (index * 4 + gx) * scale, y + gy * scale, scale, scale, colour);
        }),
      );
    }
  }
}

export function textWidth(text: string, scale: number): number {
  return (text.length * 4 - 1) * scale;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

export function encodePng(raster: Raster): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(raster.width, 0);
  header.writeUInt32BE(raster.height, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // colour type: RGB
  // Each scanline starts with its filter type, 0 (none).
  const rowBytes = raster.width * 3;
  const scanlines = Buffer.alloc((rowBytes + 1) * raster.height);
  for (let row = 0; row < raster.height; row++) raster.pixels.copy(scanlines, row * (rowBytes + 1) + 1, row * rowBytes, (row + 1) * rowBytes);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(scanlines)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const TARGET: Rgb = [200, 30, 30];

/** Draws the chart and returns the PNG bytes. */
export function renderBarChart(chart: BarChart, title: string): Buffer {
  const scale = 2;
  const left = 60;
  const top = 50;
  const barWidth = 22;
  const groupGap = 30;
  const plotHeight = 300;
  const groupWidth = chart.series.length * barWidth;
  const width = left + chart.groups.length * (groupWidth + groupGap) + 20;
  const height = top + plotHeight + 50;
  const raster = new Raster(width, height);
  const maximum = Math.max(...chart.ticks, chart.reference, ...chart.groups.flatMap((group) => group.values));
  const yOf = (value: number): number => top + plotHeight - Math.round((value / maximum) * plotHeight);

  raster.text(left, 10, title, scale, INK);
  // Legend: one swatch and label per series, after the title.
  let legendX = left;
  for (const series of chart.series) {
    raster.fill(legendX, 28, 10, 10, series.colour);
    raster.text(legendX + 14, 28, series.label, scale, INK);
    legendX += 14 + textWidth(series.label, scale) + 16;
  }
  for (const tick of chart.ticks) {
    raster.fill(left, yOf(tick), width - left - 10, 1, GRID);
    const label = tick.toFixed(1);
    raster.text(left - 8 - textWidth(label, scale), yOf(tick) - 5, label, scale, INK);
  }
  chart.groups.forEach((group, groupIndex) => {
    const x0 = left + 10 + groupIndex * (groupWidth + groupGap);
    group.values.forEach((value, seriesIndex) => {
      const y = yOf(Math.max(0, value));
      raster.fill(x0 + seriesIndex * barWidth, y, barWidth - 4, top + plotHeight - y, chart.series[seriesIndex].colour);
    });
    raster.text(x0 + (groupWidth - textWidth(group.label, scale)) / 2, top + plotHeight + 10, group.label, scale, INK);
  });
  // The target: a dashed line across the plot.
  for (let x = left; x < width - 10; x += 8) raster.fill(x, yOf(chart.reference), 5, 2, TARGET);
  raster.fill(left, top, 1, plotHeight + 1, INK);
  raster.fill(left, top + plotHeight, width - left - 10, 1, INK);
  return encodePng(raster);
}
