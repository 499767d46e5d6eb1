// connect(url): the transport a URL names, opened, under an RpcClient. The API key goes where
// each transport carries it (docs/transports.md): a Bearer header for HTTP and WebSocket, the
// "auth" member of every request for TCP and UDP.

import { invalidArgument } from '../errors';
import { HttpTransport } from './http';
import { RpcClient } from './rpc-client';
import { TcpTransport } from './tcp';
import { UdpTransport } from './udp';
import { WebSocketTransport } from './websocket';

/** The server's default ports (PROTOCOL.md), used when a tcp:// or udp:// URL names none. */
export const DEFAULT_PORTS = { tcp: 8080, udp: 8081, http: 8082, websocket: 8083 } as const;

export interface ConnectOptions {
  apiKey?: string;
  /** Default bound on each call of the client (default 30 s). */
  timeoutMs?: number;
  /** Bound on opening the transport (default 5 s). */
  connectTimeoutMs?: number;
  /** close(): how long the server gets to end its side (default 2 s). */
  closeTimeoutMs?: number;
  /** http(s):// only: ask for an event stream for every message, so streams are pushed, not polled. */
  eventStream?: boolean;
  idPrefix?: string;
}

/**
 * `tcp://host:port`, `udp://host:port`, `http(s)://host:port/path`, `ws(s)://host:port/path`.
 * Resolves once the transport is open (for HTTP at once: each message is its own request).
 */
export async function connect(url: string | URL, options: ConnectOptions = {}): Promise<RpcClient> {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw invalidArgument('url', `is not a URL: ${String(url)} (try tcp://127.0.0.1:8080)`);
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const clientOptions = { timeoutMs: options.timeoutMs, idPrefix: options.idPrefix };
  const timeouts = { connectTimeoutMs: options.connectTimeoutMs, closeTimeoutMs: options.closeTimeoutMs };
  switch (parsed.protocol) {
    case 'tcp:':
    case 'udp:': {
      const kind = parsed.protocol === 'tcp:' ? 'tcp' : 'udp';
      if (parsed.pathname !== '' && parsed.pathname !== '/') throw invalidArgument('url', `a ${kind}:// URL has no path (${parsed.href})`);
      const port = parsed.port === '' ? DEFAULT_PORTS[kind] : Number(parsed.port);
      const target = { host: host || '127.0.0.1', port, ...timeouts };
      const transport = kind === 'tcp' ? await TcpTransport.connect(target) : await UdpTransport.open({ ...target, apiKey: options.apiKey });
      return new RpcClient(transport, { ...clientOptions, auth: options.apiKey });
    }
    case 'http:':
    case 'https:':
      return new RpcClient(
        new HttpTransport({ url: parsed, eventStream: options.eventStream, apiKey: options.apiKey, closeTimeoutMs: options.closeTimeoutMs }),
        clientOptions,
      );
    case 'ws:':
    case 'wss:':
      return new RpcClient(await WebSocketTransport.connect({ url: parsed, apiKey: options.apiKey, ...timeouts }), clientOptions);
    default:
      throw invalidArgument('url', `must start with tcp://, udp://, http://, https://, ws:// or wss:// (got ${parsed.protocol}//)`);
  }
}
