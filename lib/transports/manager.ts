// Starts every enabled transport, all or nothing, and stops them together. Each transport that
// listens gets one log line with its address (tests read these to find ephemeral ports).

import type { Logger } from 'pino';
import type { ApiKey } from '../auth';
import type { TransportName } from '../rpc/connection';
import { HttpTransport, type HttpRoutes, type ServerCounts } from './http';
import { StdioTransport, type StdioOptions } from './stdio';
import type { CloseReason } from './stream-peer';
import { TcpTransport } from './tcp';
import {
  formatHostPort,
  type ListeningAddress,
  type Transport,
  type TransportHandler,
  type TransportLimits,
  type TransportStats,
} from './transport';
import { UdpTransport, type UdpSettings } from './udp';
import type { WebSettings } from './web-guard';
import { WebSocketTransport } from './websocket';

/** The order transports start in (and are listed in logs and /health). */
const START_ORDER: readonly TransportName[] = ['tcp', 'udp', 'http', 'websocket', 'stdio'];

/** One transport's own settings. */
export interface TransportConfig {
  enabled: boolean;
  host: string;
  /** 0 picks a free port (the listening log line tells which). */
  port: number;
}

export interface TransportManagerOptions {
  readonly transports: Readonly<Record<TransportName, TransportConfig>>;
  readonly limits: TransportLimits;
  /** UDP: its caps on what is sent to one address and to one peer. */
  readonly udp: UdpSettings;
  /** HTTP and WebSocket: browser protections and request timeouts. */
  readonly web: WebSettings;
  readonly apiKey: ApiKey;
  readonly logger: Logger;
  /** The JSON-RPC front end every transport hands its messages to. */
  readonly handler: TransportHandler;
  /** What the HTTP transport serves beside JSON-RPC (the OpenAI API). */
  readonly routes?: HttpRoutes;
  /** The server's counts for GET /health. */
  readonly counts: () => ServerCounts;
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
    this.logger = options.logger;
    const contextOf = (name: TransportName) => ({
      handler: options.handler,
      logger: options.logger,
      endpoint: { host: options.transports[name].host, port: options.transports[name].port },
      limits: options.limits,
      apiKey: options.apiKey,
    });
    const enabled = START_ORDER.filter((name) => options.transports[name].enabled);
    this.transports = enabled.map((name): Transport => {
      switch (name) {
        case 'stdio':
          return new StdioTransport(contextOf(name), { ...options.stdio, onPeerGone: options.onStdioPeerGone });
        case 'tcp':
          return new TcpTransport(contextOf(name));
        case 'udp':
          return new UdpTransport(contextOf(name), options.udp);
        case 'http':
          return new HttpTransport(
            contextOf(name),
            options.web,
            () => ({ server: options.counts(), transports: this.stats(), shuttingDown: this.shuttingDown }),
            options.routes,
          );
        case 'websocket':
          return new WebSocketTransport(contextOf(name), options.web);
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

  /** The stdio transport, when it runs (test_connection_drop attaches a peer to it). */
  get stdio(): StdioTransport | undefined {
    return this.transports.find((transport): transport is StdioTransport => transport instanceof StdioTransport);
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
