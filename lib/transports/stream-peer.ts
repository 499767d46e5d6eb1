// One peer that speaks newline-delimited JSON over a byte stream: a TCP socket, the process's
// stdin/stdout, or an in-process pipe pair attached to the stdio transport. Lines go to the handler as they
// complete; replies are written as lines. A peer that stops reading while its output piles up is
// cut off; one that half-closes (end of stdin, a TCP FIN) gets the replies to what it already
// sent, then is closed.
//
// A FIN says only that the peer has finished sending: a crashed client's kernel sends one too.
// A socket that is fully closed answers any byte it is sent with a reset, so while a half-closed
// TCP peer is owed replies, a single space (whitespace between JSON texts, which no reader
// parses differently) is written every halfCloseProbeMs; once the peer has gone, the next write
// fails and the peer is closed, which cancels its requests.

import type { Readable, Writable } from 'stream';
import type { Connection, OutgoingMessage } from '../rpc/connection';
import { LineSplitter, type LineSink } from '../framing/line-splitter';
import { messageTooLarge, serialize } from './replies';
import { reportClosed, type TransportContext } from './transport';

/** Messages of one peer being handled at once before its input is paused (a flood guard). */
const MAX_IN_FLIGHT_PER_PEER = 256;

export type CloseReason = 'closed' | 'ended' | 'cut-off' | 'error' | 'stopped';

export interface StreamPeerOptions {
  readonly id: string;
  readonly transport: 'stdio' | 'tcp';
  readonly input: Readable;
  readonly output: Writable;
  readonly context: TransportContext;
  /** After a half-close, once every reply is written: TCP sends its FIN; stdout stays open. */
  readonly endOutput: () => void;
  /** Tears the peer's streams down at once (an abrupt close). */
  readonly destroy: () => void;
  /** How often a half-closed peer that is owed replies is probed (undefined: never, as for stdio). */
  readonly halfCloseProbeMs?: number;
  /** Told once, when the peer is gone for whatever reason. */
  readonly onClosed: (peer: StreamPeer, reason: CloseReason) => void;
}

export class StreamPeer implements Connection {
  readonly id: string;
  readonly transport: 'stdio' | 'tcp';
  readonly canPush = true;

  private readonly options: StreamPeerOptions;
  private readonly splitter: LineSplitter;
  private inFlight = 0;
  private inputEnded = false;
  private closed = false;
  private paused = false;
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(options: StreamPeerOptions) {
    this.options = options;
    this.id = options.id;
    this.transport = options.transport;
    this.splitter = new LineSplitter(options.context.limits.maxMessageBytes);

    const { input, output } = options;
    // A socket is both: then one 'close' and one 'error' cover both directions.
    const oneStream = (input as unknown) === output;
    input.on('data', (chunk: Buffer | string) => this.receive(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    input.on('end', () => this.onInputEnd());
    input.on('error', (error: Error) => this.fail('input', error));
    input.on('close', () => {
      // A socket's 'close' means both directions are gone; for stdin 'end' has come first.
      if (oneStream || !this.inputEnded) this.markClosed('closed');
    });
    if (!oneStream) {
      output.on('error', (error: Error) => this.fail('output', error));
      output.on('close', () => this.markClosed('closed'));
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Bytes written to the peer and not yet taken by it. */
  get bufferedBytes(): number {
    return this.closed ? 0 : this.options.output.writableLength;
  }

  send(message: OutgoingMessage): boolean {
    if (!this.admitOutput()) return false;
    this.options.output.write(serialize(message) + '\n');
    return true;
  }

  /** A batch of messages (a runtime batch of tokens) as one write of several lines. */
  sendAll(messages: readonly OutgoingMessage[]): boolean {
    if (!this.admitOutput()) return false;
    let text = '';
    for (const message of messages) text += serialize(message) + '\n';
    this.options.output.write(text);
    return true;
  }

  /** Whether output may be written now; cuts the peer off when it has stopped reading. */
  private admitOutput(): boolean {
    if (this.closed || this.options.output.destroyed) return false;
    const { limits, logger } = this.options.context;
    // What is still waiting from earlier sends is what the peer has not read: past the bound it
    // is cut off, so memory stays bounded by the limit plus one message.
    if (this.options.output.writableLength > limits.maxBufferedBytesPerConnection) {
      logger.warn(
        { transport: this.transport, connection: this.id, bufferedBytes: this.options.output.writableLength },
        `${this.id}: cut off, it is not reading its replies`,
      );
      // The engine hears of it on the next tick, not from inside its own send().
      this.markClosed('cut-off', true);
      this.options.destroy();
      return false;
    }
    return true;
  }

  /** Closes the peer abruptly (transport stop, cut-off); its requests are then cancelled. */
  close(reason: CloseReason = 'stopped'): void {
    if (this.closed) return;
    this.markClosed(reason);
    this.options.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.closed || this.inputEnded) return;
    this.splitter.push(chunk, this.lineSink);
  }

  private readonly lineSink: LineSink = {
    line: (text) => this.dispatch(text),
    overflow: () => this.send(messageTooLarge(this.options.context.handler, this.options.context.limits.maxMessageBytes, 'a line')),
  };

  private dispatch(text: string): void {
    // Blank lines (keep-alives, a stray '\r\n') are not messages.
    if (text.trim() === '') return;
    this.inFlight += 1;
    if (this.inFlight >= MAX_IN_FLIGHT_PER_PEER && !this.paused) {
      this.paused = true;
      this.options.input.pause();
    }
    this.options.context.handler
      .handleMessage(this, text)
      .catch((error: unknown) => {
        this.options.context.logger.error({ err: error, connection: this.id }, 'handleMessage rejected');
      })
      .finally(() => this.settled());
  }

  private settled(): void {
    this.inFlight -= 1;
    if (this.paused && this.inFlight < MAX_IN_FLIGHT_PER_PEER / 2 && !this.closed) {
      this.paused = false;
      this.options.input.resume();
    }
    if (this.inputEnded && this.inFlight === 0) this.finishAfterHalfClose();
  }

  private onInputEnd(): void {
    if (this.closed || this.inputEnded) return;
    this.splitter.flush(this.lineSink);
    this.inputEnded = true;
    if (this.inFlight === 0) this.finishAfterHalfClose();
    else this.startHalfCloseProbe();
  }

  private startHalfCloseProbe(): void {
    const interval = this.options.halfCloseProbeMs;
    if (interval === undefined || this.probeTimer !== undefined) return;
    this.probeTimer = setInterval(() => {
      // Written between whole lines only: every send writes its lines at once.
      if (!this.closed && !this.options.output.destroyed) this.options.output.write(' ');
    }, interval);
    this.probeTimer.unref();
  }

  /** The peer sent all it will send and every direct reply is written: close our side too. */
  private finishAfterHalfClose(): void {
    if (this.closed) return;
    this.markClosed('ended');
    this.options.endOutput();
  }

  private fail(side: 'input' | 'output', error: Error): void {
    if (this.closed) return;
    const code = (error as NodeJS.ErrnoException).code;
    // A peer that vanished (reset, broken pipe) is ordinary; anything else is worth a line.
    const ordinary = code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
    this.options.context.logger[ordinary ? 'debug' : 'warn']({ err: error, connection: this.id, side }, `${this.id}: ${side} error`);
    this.close('error');
  }

  private markClosed(reason: CloseReason, deferNotice = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.probeTimer !== undefined) clearInterval(this.probeTimer);
    reportClosed(this.options.context, this, deferNotice, () => this.options.onClosed(this, reason));
  }
}
