// One peer that speaks newline-delimited JSON over a byte stream: a TCP socket, the process's
// stdin/stdout, or an in-process pipe pair attached to the stdio transport. Lines go to the
// handler as they complete; replies are written as lines through a PeerOutput (peer-output.ts):
// every write is checked against the output bound, a batch reply leaves member by member, and
// input is paused while output waits. A peer that stops reading is cut off; one that half-closes
// (end of stdin, a TCP FIN) gets the replies to what it already sent, then is closed.
//
// A FIN says only that the peer has finished sending: a crashed client's kernel sends one too.
// A socket that is fully closed answers any byte it is sent with a reset, so while a half-closed
// TCP peer is owed replies, a single space (whitespace between JSON texts, which no reader
// parses differently) is written every halfCloseProbeMs when no reply is part-way out; once the
// peer has gone, the next write fails and the peer is closed, which cancels its requests.

import type { Readable, Writable } from 'stream';
import type { Connection, OutgoingMessage } from '../rpc/connection';
import { LineSplitter, type LineSink } from '../framing/line-splitter';
import { PeerOutput, onceDrainedOrClosed, type OutputSink } from './peer-output';
import { messageTooLarge, replyTooLarge } from './replies';
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
  private readonly output: PeerOutput;
  /** The output waits on the socket: input stays paused until it has gone out. */
  private outputWaiting = false;
  private inFlight = 0;
  private inputEnded = false;
  private closed = false;
  /** Whether onClosed has been called (after a half-close, only once the output is out). */
  private transportTold = false;
  private paused = false;
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(options: StreamPeerOptions) {
    this.options = options;
    this.id = options.id;
    this.transport = options.transport;
    this.splitter = new LineSplitter(options.context.limits.maxMessageBytes);
    const { handler, limits } = options.context;
    this.output = new PeerOutput({
      sink: lineOutput(options.output),
      limitBytes: limits.maxBufferedBytesPerConnection,
      tooLarge: (id, bytes, limit) => replyTooLarge(handler, id, bytes, limit),
      cutOff: (why) => this.cutOff(why),
      backpressure: (waiting) => {
        this.outputWaiting = waiting;
        this.updateFlow();
      },
    });

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

  /** Bytes written to the peer and not yet taken by it, and those waiting to be written. */
  get bufferedBytes(): number {
    return this.closed ? 0 : this.output.pendingBytes;
  }

  send(message: OutgoingMessage): boolean {
    return this.sendAll([message]);
  }

  /** A batch of messages (a runtime batch of tokens) as one write of several lines. */
  sendAll(messages: readonly OutgoingMessage[]): boolean {
    if (this.closed || this.options.output.destroyed) return false;
    return this.output.send(messages);
  }

  /** The peer stopped reading its replies: closed at once, its requests cancelled. */
  private cutOff(why: string): void {
    const { logger } = this.options.context;
    logger.warn({ transport: this.transport, connection: this.id, bufferedBytes: this.options.output.writableLength }, `${this.id}: cut off, ${why}`);
    // The engine hears of it on the next tick, not from inside its own send(). A peer that
    // half-closed is already closed for the engine; its socket still goes.
    this.markClosed('cut-off', true);
    this.options.destroy();
  }

  /** Closes the peer abruptly (transport stop, cut-off); its requests are then cancelled. */
  close(reason: CloseReason = 'stopped'): void {
    // Also for a peer that half-closed and whose last replies are still going out.
    if (this.closed && this.transportTold) return;
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
    this.updateFlow();
    this.options.context.handler
      .handleMessage(this, text)
      .catch((error: unknown) => {
        this.options.context.logger.error({ err: error, connection: this.id }, 'handleMessage rejected');
      })
      .finally(() => this.settled());
  }

  private settled(): void {
    this.inFlight -= 1;
    this.updateFlow();
    if (this.inputEnded && this.inFlight === 0) this.finishAfterHalfClose();
  }

  /** Input is paused while too many of its messages are in flight, or while its output waits. */
  private updateFlow(): void {
    if (this.closed) return;
    const flooded = this.inFlight >= (this.paused ? MAX_IN_FLIGHT_PER_PEER / 2 : MAX_IN_FLIGHT_PER_PEER);
    const hold = flooded || this.outputWaiting;
    if (hold && !this.paused) {
      this.paused = true;
      this.options.input.pause();
    } else if (!hold && this.paused) {
      this.paused = false;
      this.options.input.resume();
    }
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
      // Written between whole lines only: never while a reply is part-way out.
      if (!this.closed && !this.options.output.destroyed && this.output.idle) this.options.output.write(' ');
    }, interval);
    this.probeTimer.unref();
  }

  /** The peer sent all it will send and every direct reply is written: close our side too. */
  private finishAfterHalfClose(): void {
    if (this.closed) return;
    this.markClosed('ended');
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
    if (this.closed) {
      // Half-closed and still writing its last replies: now the socket is gone too.
      this.output.close();
      this.tellTransport(reason);
      return;
    }
    this.closed = true;
    if (this.probeTimer !== undefined) clearInterval(this.probeTimer);
    if (reason === 'ended') {
      // The engine hears now (nothing more is sent); the transport once the last reply is out,
      // so stdio's parent is not left without the end of a batch reply.
      reportClosed(this.options.context, this, deferNotice);
      this.output.end(() => {
        this.options.endOutput();
        this.tellTransport('ended');
      });
      return;
    }
    this.output.close();
    reportClosed(this.options.context, this, deferNotice, () => this.tellTransport(reason));
  }

  private tellTransport(reason: CloseReason): void {
    if (this.transportTold) return;
    this.transportTold = true;
    this.options.onClosed(this, reason);
  }
}

/** Newline-delimited JSON on a writable: a message is a line, a batch reply one line in pieces. */
function lineOutput(output: Writable): OutputSink {
  return {
    buffered: () => output.writableLength,
    writeMessages: (texts) => {
      output.write(texts.length === 1 ? texts[0] + '\n' : texts.join('\n') + '\n');
    },
    writePiece: (text, _first, last) => output.write(last ? text + '\n' : text),
    onceDrained: (callback) => onceDrainedOrClosed(output, callback),
  };
}
