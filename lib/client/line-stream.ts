// Newline-delimited JSON over a byte stream, the client side of stdio and TCP: one text per line
// out, every complete line in reported as it arrives (\r\n accepted, blank lines skipped).
// A received line longer than the bound is skipped and reported, never held in full.

import type { Readable, Writable } from 'stream';
import { LineSplitter, type LineSink } from '../framing/line-splitter';
import { frameLine } from '../framing/line';
import { ClientError } from './errors';
import { TransportBase, describeClose, type ClientTransport, type TransportKind } from './transport';

/** Replies can be large (logits, hidden states, rkllm_list_functions). */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;

export interface LineStreamOptions {
  /** Longest line accepted from the server (default 64 MiB). */
  maxLineBytes?: number;
  /** close(): how long the server gets to end its side after ours has ended (default 2 s). */
  closeTimeoutMs?: number;
}

export abstract class LineStreamTransport extends TransportBase implements ClientTransport {
  abstract readonly kind: TransportKind;
  readonly pushes = true;
  readonly exchanges = false;

  protected readonly readable: Readable;
  protected readonly writable: Writable;
  private readonly closeTimeoutMs: number;
  private readonly splitter: LineSplitter;
  private readonly sink: LineSink;
  private lastError: Error | undefined;

  protected constructor(readable: Readable, writable: Writable, options: LineStreamOptions) {
    super();
    this.readable = readable;
    this.writable = writable;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.splitter = new LineSplitter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.sink = {
      line: (text) => {
        if (/\S/.test(text)) this.deliver(text);
      },
      overflow: (seenBytes) =>
        this.report(new ClientError('MESSAGE_TOO_LARGE', `${this.kind}: a received line of more than ${seenBytes} bytes was skipped`)),
    };
    // A socket is both ends: its one 'close' covers both directions.
    const oneStream = (readable as unknown) === writable;
    readable.on('data', (chunk: Buffer | string) => this.splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, this.sink));
    readable.on('end', () => {
      this.splitter.flush(this.sink);
      if (!oneStream) this.markClosed({ reason: 'closed' });
    });
    readable.on('error', (error: Error) => {
      this.lastError = error;
      this.report(error);
      if (!oneStream) this.markClosed({ reason: 'error', error });
    });
    readable.on('close', () => this.markClosed(this.lastError ? { reason: 'error', error: this.lastError } : { reason: 'closed' }));
    if (!oneStream) writable.on('error', (error: Error) => this.report(error));
  }

  send(text: string): Promise<void> {
    let line: string;
    try {
      line = frameLine(text);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.write(line);
  }

  sendBytes(data: string | Uint8Array): Promise<void> {
    return this.write(data);
  }

  /** Half-close: the server reads end of input, answers what it already has, and ends its side. */
  end(): void {
    if (!this.writable.writableEnded && !this.writable.destroyed) this.writable.end();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const ended = new Promise<void>((resolve) => this.onClose(() => resolve()));
    this.end();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeTimeoutMs)));
    await Promise.race([ended, bound]);
    clearTimeout(timer);
    if (!this.closed) {
      this.destroyStreams();
      this.markClosed({ reason: 'closed', detail: `the server did not end its side within ${this.closeTimeoutMs} ms` });
    }
  }

  drop(): void {
    if (this.closed) return;
    this.markClosed({ reason: 'dropped' });
    this.destroyAbruptly();
  }

  /** drop(): the medium's most abrupt end (TCP: a reset). */
  protected destroyAbruptly(): void {
    this.destroyStreams();
  }

  private destroyStreams(): void {
    this.readable.destroy();
    if ((this.writable as unknown) !== this.readable) this.writable.destroy();
  }

  private write(data: string | Uint8Array): Promise<void> {
    if (this.closed || this.writable.writableEnded || this.writable.destroyed) {
      return Promise.reject(new ClientError('CLOSED', `${this.kind}: the transport is closed${describeClose(this.closeInfo)}`));
    }
    return new Promise((resolve, reject) => {
      this.writable.write(data, (error) => {
        if (error) reject(new ClientError('SEND_FAILED', `${this.kind}: write failed: ${error.message}`, { cause: error }));
        else resolve();
      });
    });
  }
}
