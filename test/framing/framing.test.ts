// lib/framing: the SSE parser against the standard's parsing rules, fed whole and byte by byte,
// and the line framer. (The line splitter is exercised through every stdio and TCP suite.)

import { frameLine } from '../../lib/framing/line';
import { SseParser, formatSseEvent, type SseEvent } from '../../lib/framing/sse';

interface Parsed {
  events: SseEvent[];
  overflows: number[];
  retries: number[];
}

/** Feeds the chunks to one parser and collects what it reports. */
function parse(chunks: (string | Buffer)[], maxEventChars = 1 << 20): Parsed {
  const parsed: Parsed = { events: [], overflows: [], retries: [] };
  const parser = new SseParser(maxEventChars);
  const sink = {
    event: (event: SseEvent) => parsed.events.push(event),
    overflow: (seen: number) => parsed.overflows.push(seen),
    retry: (ms: number) => parsed.retries.push(ms),
  };
  for (const chunk of chunks) parser.push(chunk, sink);
  parser.end();
  return parsed;
}

/** The same bytes, one per chunk: every split a network could make. */
function byteByByte(text: string): Buffer[] {
  return [...Buffer.from(text, 'utf8')].map((byte) => Buffer.from([byte]));
}

describe('SseParser', () => {
  const stream =
    '\ufeff: a comment line\r\n' +
    'data: {"a":1}\r\n\r\n' +
    'event: update\rid: 7\rdata: first line\rdata:second line\r\r' +
    'retry: 2500\n' +
    'data\n\n' +
    'id: 8\nunknown: ignored\ndata:  two spaces, one kept\n\n' +
    'data: héllo wörld ✓ 𝄞\n\n' +
    'data: never ended';

  const expected: SseEvent[] = [
    { type: 'message', data: '{"a":1}', lastEventId: '' },
    { type: 'update', data: 'first line\nsecond line', lastEventId: '7' },
    { type: 'message', data: '', lastEventId: '7' },
    { type: 'message', data: ' two spaces, one kept', lastEventId: '8' },
    { type: 'message', data: 'héllo wörld ✓ 𝄞', lastEventId: '8' },
  ];

  it('reads every line ending, comments, fields, multi-line data and a BOM; drops an unended event', () => {
    const parsed = parse([stream]);
    expect(parsed.events).toEqual(expected);
    expect(parsed.retries).toEqual([2500]);
    expect(parsed.overflows).toEqual([]);
  });

  it('gives the same events however the bytes are split (CR LF and UTF-8 characters across chunks)', () => {
    expect(parse(byteByByte(stream)).events).toEqual(expected);
    const bytes = Buffer.from(stream, 'utf8');
    for (const at of [1, 5, 17, 18, 19, 40, bytes.length - 3]) {
      expect(parse([bytes.subarray(0, at), bytes.subarray(at)]).events).toEqual(expected);
    }
  });

  it('skips an event over the bound, reports it once, and reads the next one', () => {
    const big = 'x'.repeat(300);
    const text = `data: small\n\ndata: ${big}\ndata: ${big}\n\ndata: after\n\n`;
    for (const chunks of [[text], byteByByte(text)]) {
      const parsed = parse(chunks, 100);
      expect(parsed.events.map((event) => event.data)).toEqual(['small', 'after']);
      expect(parsed.overflows).toHaveLength(1);
      expect(parsed.overflows[0]).toBeGreaterThan(100);
    }
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new SseParser(0)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'maxEventChars' }));
  });

  it('formatSseEvent writes what the parser reads back', () => {
    const text = formatSseEvent('line one\nline two\r\nline three', { type: 'note', id: '42' });
    expect(text).toBe('event: note\nid: 42\ndata: line one\ndata: line two\ndata: line three\n\n');
    expect(parse([text]).events).toEqual([{ type: 'note', data: 'line one\nline two\nline three', lastEventId: '42' }]);
    expect(formatSseEvent('{"jsonrpc":"2.0"}')).toBe('data: {"jsonrpc":"2.0"}\n\n');
    expect(() => formatSseEvent('x', { id: 'a\nb' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'id' }));
  });
});

describe('frameLine', () => {
  it('ends a text with a newline, and refuses one that holds a newline', () => {
    expect(frameLine('{"jsonrpc":"2.0"}')).toBe('{"jsonrpc":"2.0"}\n');
    expect(frameLine(JSON.stringify({ text: 'a\nb' }))).toBe('{"text":"a\\nb"}\n');
    expect(() => frameLine('{"a":\n1}')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'text' }));
  });
});
