// A small SVG writer for the bench charts: rectangles, lines and text placed in user units (one
// unit is one CSS pixel at natural size), written out as one self-contained document. Coordinates
// are rounded to a tenth so that the same figures always give the same file.

export interface Stroke {
  colour: string;
  width?: number;
  /** An SVG stroke-dasharray, e.g. "6 4". */
  dash?: string;
}

export interface TextStyle {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  bold?: boolean;
  colour?: string;
  /** Degrees clockwise about the text's anchor point. */
  rotate?: number;
  /** An outline of this colour behind the glyphs, to keep text legible over lines and bars. */
  halo?: string;
}

type AttributeValue = string | number | undefined;

const DEFAULT_FONT_SIZE = 12;

function number(value: number, what: string): string {
  // A NaN or Infinity would make an element silently vanish in a viewer: fail where it is made.
  if (!Number.isFinite(value)) throw new Error(`svg: ${what} is ${value}, not a finite number`);
  return String(Math.round(value * 10) / 10);
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function attributes(values: Record<string, AttributeValue>): string {
  return Object.entries(values)
    .filter((entry): entry is [string, string | number] => entry[1] !== undefined)
    .map(([key, value]) => `${key}="${typeof value === 'number' ? number(value, key) : escapeXml(value)}"`)
    .join(' ');
}

function element(name: string, values: Record<string, AttributeValue>, content?: string): string {
  return content === undefined ? `<${name} ${attributes(values)}/>` : `<${name} ${attributes(values)}>${content}</${name}>`;
}

export class SvgDocument {
  private readonly elements: string[] = [];

  /** `title` is the accessible name of the image (shown as a tooltip by most viewers). */
  constructor(
    readonly width: number,
    readonly height: number,
    private readonly title: string,
  ) {
    number(width, 'width');
    number(height, 'height');
  }

  rect(x: number, y: number, width: number, height: number, fill: string, stroke?: Stroke): this {
    if (width < 0 || height < 0) throw new Error(`svg: rectangle of negative size ${width} x ${height}`);
    this.elements.push(
      element('rect', { x, y, width, height, fill, stroke: stroke?.colour, 'stroke-width': stroke?.width, 'stroke-dasharray': stroke?.dash }),
    );
    return this;
  }

  line(x1: number, y1: number, x2: number, y2: number, stroke: Stroke): this {
    this.elements.push(element('line', { x1, y1, x2, y2, stroke: stroke.colour, 'stroke-width': stroke.width ?? 1, 'stroke-dasharray': stroke.dash }));
    return this;
  }

  /** Text whose baseline starts, centres or ends (`anchor`) at (x, y). */
  text(x: number, y: number, content: string, style: TextStyle = {}): this {
    const size = style.size ?? DEFAULT_FONT_SIZE;
    this.elements.push(
      element(
        'text',
        {
          x,
          y,
          'font-size': size,
          'text-anchor': style.anchor === undefined || style.anchor === 'start' ? undefined : style.anchor,
          'font-weight': style.bold ? 'bold' : undefined,
          fill: style.colour,
          transform: style.rotate ? `rotate(${number(style.rotate, 'rotate')} ${number(x, 'x')} ${number(y, 'y')})` : undefined,
          stroke: style.halo,
          'stroke-width': style.halo ? 3 : undefined,
          'stroke-linejoin': style.halo ? 'round' : undefined,
          'paint-order': style.halo ? 'stroke' : undefined,
        },
        escapeXml(content),
      ),
    );
    return this;
  }

  /** A rough width of `content` at `size`, for laying out legends (no font metrics here). */
  static textWidth(content: string, size = DEFAULT_FONT_SIZE): number {
    return content.length * size * 0.6;
  }

  toString(): string {
    const root = {
      xmlns: 'http://www.w3.org/2000/svg',
      width: this.width,
      height: this.height,
      viewBox: `0 0 ${number(this.width, 'width')} ${number(this.height, 'height')}`,
      role: 'img',
      'font-family': 'DejaVu Sans, Helvetica, Arial, sans-serif',
      fill: '#282828',
    };
    // An opaque background, so the chart stays legible on viewers with a dark theme.
    const background = element('rect', { width: '100%', height: '100%', fill: '#ffffff' });
    return [`<svg ${attributes(root)}>`, `<title>${escapeXml(this.title)}</title>`, background, ...this.elements, '</svg>', ''].join('\n');
  }
}
