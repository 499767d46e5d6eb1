// Starts every enabled transport, all or nothing, and stops them together. Each transport that
// listens gets one log line with its address (tests read these to find ephemeral ports).

import type { Logger } from 'pino';
import type { TransportName } from '../rpc/connection';
import type { RkllmServer } from '../server/types';
import { HttpTransport } from './http';
import { StdioTransport, type StdioOptions } from './stdio';
import type { CloseReason } from './stream-peer';
import { TcpTransport } from './tcp';
import { formatHostPort, type ListeningAddress, type Transport, type TransportContext, type TransportStats } from './transport';
import { UdpTransport } from './udp';
import { WebSocketTransport } from './websocket';

/** The order transports start in (and are listed in logs and /health). */
const START_ORDER: readonly TransportName[] = ['tcp', 'udp', 'http', 'websocket', 'stdio'];

export interface TransportManagerOptions {
  /** The engine: handles messages, and answers /health with its stats. */
  readonly server: Pick<RkllmServer, 'handleMessage' | 'connectionClosed' | 'stats' | 'config' | 'logger' | 'openai'>;
  /** The parent on stdio is gone (end of stdin, or stdout broke) and its replies are written. */
  readonly onStdioPeerGone?: (reason: CloseReason) => void;
  /** Overrides process.stdin/stdout (tests, embedding). */
  readonly stdio?: Pick<StdioOptions, 'input' | 'output'>;
}

export class TransportManager {
  readonly transports: readonly Transport[];
  private readonly logger: Logger;
  private shuttingDown = false;

  constructor(options: TransportManagerOptions) {
    const { server } = options;
    this.logger = server.logger;
    const context: TransportContext = { handler: server, config: server.config, logger: server.logger };
    const enabled = START_ORDER.filter((name) => server.config.transports[name].enabled);
    this.transports = enabled.map((name): Transport => {
      switch (name) {
        case 'stdio':
          return new StdioTransport(context, { ...options.stdio, onPeerGone: options.onStdioPeerGone });
        case 'tcp':
          return new TcpTransport(context);
        case 'udp':
          return new UdpTransport(context);
        case 'http':
          return new HttpTransport(
            context,
            () => ({ server: server.stats(), transports: this.stats(), shuttingDown: this.shuttingDown }),
            server.openai,
          );
        case 'websocket':
          return new WebSocketTransport(context);
      }
    });
  }

  /** Starts them in order; if one fails, the ones already started are stopped and it rethrows. */
  async startAll(): Promise<ListeningAddress[]> {
    const started: Transport[] = [];
    const addresses: ListeningAddress[] = [];
    try {
      for (const transport of this.transports) {
        addresses.push(await transport.start());
        started.push(transport);
      }
    } catch (error) {
      await Promise.all(started.map((transport) => transport.stop()));
      throw error;
    }
    // Logged once all are up, so no line announces a transport that is then torn down.
    for (const address of addresses) {
      this.logger.info({ transport: address.transport, host: address.host, port: address.port }, listeningMessage(address));
    }
    return addresses;
  }

  /** Stops admitting peers on every transport; open ones are still served. */
  stopAccepting(): void {
    this.shuttingDown = true;
    for (const transport of this.transports) transport.stopAccepting();
  }

  /** Closes every peer and listener. Bounded: each transport's stop is. */
  async stopAll(): Promise<void> {
    this.shuttingDown = true;
    await Promise.all(this.transports.map((transport) => transport.stop()));
  }

  /** Lets test_connection_drop dial each running transport. */
  registerDialers(server: Pick<RkllmServer, 'registerDialer'>): void {
    for (const transport of this.transports) server.registerDialer(transport.name, transport.dialer);
  }

  stats(): Record<string, TransportStats> {
    const result: Record<string, TransportStats> = {};
    for (const transport of this.transports) result[transport.name] = transport.stats();
    return result;
  }
}

/** The line each listening transport logs: tests parse `port` from it. */
export function listeningMessage(address: ListeningAddress): string {
  return address.transport === 'stdio' ? 'stdio ready' : `${address.transport} listening on ${formatHostPort(address.host, address.port)}`;
}
