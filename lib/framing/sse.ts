// Server-sent events (the HTML standard's text/event-stream): the framing of HTTP with
// `Accept: text/event-stream`. The server writes one event per JSON-RPC message; the client reads
// them back with SseParser, which follows the standard's parsing rules (any of CRLF, LF or CR ends
// a line, comments, multi-line data, `event`/`id`/`retry` fields) so it also reads other servers'
// streams. Bytes may arrive split anywhere, UTF-8 characters included.

import { StringDecoder } from 'string_decoder';
import { invalidArgument } from '../errors';

export interface SseEvent {
  /** The `event` field; "message" when the event named none. */
  type: string;
  /** The `data` lines joined with "\n". */
  data: string;
  /** The last `id` field seen so far in the stream ("" when none). */
  lastEventId: string;
}

export interface SseSink {
  event(event: SseEvent): void;
  /** One event larger than the bound was dropped; `seenChars` is how much of it had arrived. */
  overflow(seenChars: number): void;
  /** A `retry` field: the reconnection delay the server asks for. */
  retry?(ms: number): void;
}

const LF = 10;
const CR = 13;

/** One event: `data: <text>\n\n`. A text holding line breaks becomes several data lines. */
export function formatSseEvent(data: string, fields: { type?: string; id?: string } = {}): string {
  let text = '';
  if (fields.type !== undefined) text += `event: ${singleLine('type', fields.type)}\n`;
  if (fields.id !== undefined) text += `id: ${singleLine('id', fields.id)}\n`;
  for (const line of data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return text + '\n';
}

function singleLine(field: string, value: string): string {
  if (/[\r\n]/.test(value)) throw invalidArgument(field, 'must not hold a line break');
  return value;
}

export class SseParser {
  private readonly maxEventChars: number;
  private readonly decoder = new StringDecoder('utf8');
  /** The unfinished line. */
  private line = '';
  /** The last chunk ended in CR: an LF that starts the next one belongs to it. */
  private afterCarriageReturn = false;
  private atStreamStart = true;
  private data: string[] = [];
  private dataChars = 0;
  private type = '';
  private lastEventId = '';
  /** Inside an event over the bound: lines are dropped until the blank line that ends it. */
  private discarding = false;

  constructor(maxEventChars: number) {
    if (!Number.isInteger(maxEventChars) || maxEventChars <= 0) throw invalidArgument('maxEventChars', 'must be a positive integer');
    this.maxEventChars = maxEventChars;
  }

  push(chunk: Buffer | string, sink: SseSink): void {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    // Nothing whole yet (a split UTF-8 character): a pending CR must wait for the next chunk.
    if (text.length === 0) return;
    if (this.atStreamStart) {
      this.atStreamStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    if (this.afterCarriageReturn && text.charCodeAt(0) === LF) start = 1;
    this.afterCarriageReturn = false;
    for (let index = start; index < text.length; index++) {
      const code = text.charCodeAt(index);
      if (code !== LF && code !== CR) continue;
      this.takeLine(this.line + text.slice(start, index), sink);
      this.line = '';
      if (code === CR) {
        if (index + 1 === text.length) this.afterCarriageReturn = true;
        else if (text.charCodeAt(index + 1) === LF) index += 1;
      }
      start = index + 1;
    }
    if (start < text.length) {
      this.line += text.slice(start);
      if (this.line.length + this.dataChars > this.maxEventChars) this.overflowed(this.line.length + this.dataChars, sink);
    }
  }

  /** End of the stream: an event not ended by a blank line is dropped, as the standard says. */
  end(): void {
    this.decoder.end();
    this.line = '';
    this.resetEvent();
    this.discarding = false;
  }

  private takeLine(line: string, sink: SseSink): void {
    if (line === '') {
      const discarded = this.discarding;
      this.discarding = false;
      if (!discarded && this.data.length > 0) {
        const event: SseEvent = { type: this.type || 'message', data: this.data.join('\n'), lastEventId: this.lastEventId };
        this.resetEvent();
        sink.event(event);
      } else this.resetEvent();
      return;
    }
    if (this.discarding || line.charCodeAt(0) === 0x3a /* ':' comment */) return;
    if (line.length + this.dataChars > this.maxEventChars) {
      this.overflowed(line.length + this.dataChars, sink);
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        this.dataChars += value.length + 1;
        break;
      case 'event':
        this.type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) sink.retry?.(Number(value));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  private overflowed(seenChars: number, sink: SseSink): void {
    this.line = '';
    this.resetEvent();
    if (this.discarding) return;
    this.discarding = true;
    sink.overflow(seenChars);
  }

  private resetEvent(): void {
    this.data = [];
    this.dataChars = 0;
    this.type = '';
  }
}
