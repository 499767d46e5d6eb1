// TCP: newline-delimited JSON over one socket. drop() is a reset (RST), as a crashed client's
// kernel would send; close() is a FIN, after which the server answers what it has and closes.

import * as net from 'net';
import { invalidArgument } from '../errors';
import { ClientError } from './errors';
import { LineStreamTransport, type LineStreamOptions } from './line-stream';

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export interface TcpTransportOptions extends LineStreamOptions {
  host?: string;
  port: number;
  /** Bound on the connection's setup (default 5 s). */
  connectTimeoutMs?: number;
}

export class TcpTransport extends LineStreamTransport {
  readonly kind = 'tcp' as const;
  readonly socket: net.Socket;

  private constructor(socket: net.Socket, options: LineStreamOptions) {
    super(socket, socket, options);
    this.socket = socket;
  }

  static connect(options: TcpTransportOptions): Promise<TcpTransport> {
    const host = options.host ?? '127.0.0.1';
    const { port } = options;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return Promise.reject(invalidArgument('port', 'must be an integer from 1 to 65535'));
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const where = `tcp ${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    return new Promise((resolve, reject) => {
      // Stream latency: every token is one small line.
      const socket = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ClientError('CONNECT_FAILED', `${where}: not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        reject(new ClientError('CONNECT_FAILED', `${where}: ${error.message}`, { cause: error }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new TcpTransport(socket, options));
      });
    });
  }

  protected override destroyAbruptly(): void {
    this.socket.resetAndDestroy();
  }
}
