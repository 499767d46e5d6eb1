// stdio: newline-delimited JSON on the process's stdin and stdout, one Connection for the parent
// process (editors and agent tools start servers this way). Stdout carries protocol only; logs go
// to stderr. End of stdin closes this transport alone: the replies to what was already sent are
// written first, and the command decides whether the process ends (only if stdio was all it
// served).
//
// A process has one stdin, so test_connection_drop cannot open a second real stdio client: it
// attaches an in-process pipe pair instead (attachPeer), served by the same peer code (line
// splitting, bounds, close), which is what the probe needs to exercise.

import type { Readable, Writable } from 'stream';
import { StreamPeer, type CloseReason } from './stream-peer';
import { settleWithin, type ListeningAddress, type Transport, type TransportContext, type TransportStats } from './transport';

const FLUSH_BOUND_MS = 300;

export interface StdioOptions {
  /** Defaults to process.stdin / process.stdout. */
  readonly input?: Readable;
  readonly output?: Writable;
  /** The parent's end of the conversation: stdin ended (or stdout broke) and the replies are out. */
  readonly onPeerGone?: (reason: CloseReason) => void;
}

export class StdioTransport implements Transport {
  readonly name = 'stdio' as const;

  private readonly context: TransportContext;
  private readonly options: StdioOptions;
  private readonly input: Readable;
  private readonly output: Writable;
  private parentPeer: StreamPeer | undefined;
  private readonly dialedPeers = new Set<StreamPeer>();
  private nextDialNumber = 1;
  private accepting = true;
  private counters = { accepted: 0, refused: 0, cutOff: 0 };

  constructor(context: TransportContext, options: StdioOptions = {}) {
    this.context = context;
    this.options = options;
    this.input = options.input ?? process.stdin;
    this.output = options.output ?? process.stdout;
  }

  start(): Promise<ListeningAddress> {
    this.counters.accepted += 1;
    this.parentPeer = new StreamPeer({
      id: 'stdio#0 parent',
      transport: 'stdio',
      input: this.input,
      output: this.output,
      context: this.context,
      // Stdout stays open: the process may still log its way out, and Node never closes fd 1.
      endOutput: () => undefined,
      destroy: () => this.input.destroy(),
      onClosed: (_peer, reason) => {
        if (reason === 'cut-off') this.counters.cutOff += 1;
        this.context.logger.debug({ transport: this.name, reason }, 'stdio peer closed');
        if (reason !== 'stopped') this.options.onPeerGone?.(reason);
      },
    });
    return Promise.resolve({ transport: this.name, host: '', port: 0 });
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  async stop(): Promise<void> {
    this.stopAccepting();
    this.parentPeer?.close('stopped');
    for (const peer of [...this.dialedPeers]) peer.close('stopped');
    // Replies already written must reach the parent before the process exits.
    if (this.output.writableLength > 0 && !this.output.destroyed) {
      await settleWithin(new Promise((resolve) => this.output.once('drain', resolve)), FLUSH_BOUND_MS);
    }
  }

  stats(): TransportStats {
    let connections = this.dialedPeers.size;
    let bufferedBytes = 0;
    for (const peer of this.dialedPeers) bufferedBytes += peer.bufferedBytes;
    if (this.parentPeer !== undefined && !this.parentPeer.isClosed) {
      connections += 1;
      bufferedBytes += this.parentPeer.bufferedBytes;
    }
    return { connections, ...this.counters, bufferedBytes };
  }

  /**
   * Serves one more stdio peer on an in-process pipe pair: `input` is what the peer writes,
   * `output` what it reads. Closing either side closes the peer.
   */
  attachPeer(input: Readable, output: Writable): void {
    if (!this.accepting) throw new Error('stdio transport is stopping');
    const destroyBoth = (): void => {
      input.destroy();
      output.destroy();
    };
    const peer = new StreamPeer({
      id: `stdio#${this.nextDialNumber++} attached`,
      transport: 'stdio',
      input,
      output,
      context: this.context,
      endOutput: () => output.end(),
      destroy: destroyBoth,
      onClosed: (closed, reason) => {
        this.dialedPeers.delete(closed);
        if (reason === 'cut-off') this.counters.cutOff += 1;
      },
    });
    this.dialedPeers.add(peer);
    this.counters.accepted += 1;
  }
}
