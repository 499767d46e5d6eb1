// UDP: one JSON text per datagram, both ways. The socket is connected to the server's address, so
// it only hears the server, and the kernel reports a closed port (ICMP) as an error event. UDP has
// no close: the server notices a local client is gone when its port is no longer bound, so close()
// and drop() both close the socket. Datagrams can be lost; streams can be re-read with `poll`.

import * as dgram from 'dgram';
import * as net from 'net';
import { invalidArgument } from '../errors';
import { ClientError } from './errors';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './tcp';
import { TransportBase, type ClientTransport } from './transport';

/** The most an IPv4 datagram can carry. */
export const MAX_DATAGRAM_BYTES = 65_507;

export interface UdpTransportOptions {
  host?: string;
  port: number;
  /** The local address to bind (default: any address of the server's family). */
  bindAddress?: string;
  /** Bound on binding and connecting the socket (default 5 s). */
  connectTimeoutMs?: number;
}

export class UdpTransport extends TransportBase implements ClientTransport {
  readonly kind = 'udp' as const;
  readonly pushes = true;
  readonly exchanges = false;
  readonly socket: dgram.Socket;

  private constructor(socket: dgram.Socket) {
    super();
    this.socket = socket;
    socket.on('message', (datagram: Buffer) => this.deliver(datagram.toString('utf8')));
    // ICMP port unreachable and the like: the server may come back, so the socket stays.
    socket.on('error', (error: Error) => this.report(error));
    socket.on('close', () => this.markClosed({ reason: 'closed' }));
  }

  static open(options: UdpTransportOptions): Promise<UdpTransport> {
    const host = options.host ?? '127.0.0.1';
    const { port } = options;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return Promise.reject(invalidArgument('port', 'must be an integer from 1 to 65535'));
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const where = `udp ${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`not connected within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on('error', () => undefined);
        try {
          socket.close();
        } catch {
          // already closed
        }
        reject(new ClientError('CONNECT_FAILED', `${where}: ${error.message}`, { cause: error }));
      };
      socket.once('error', fail);
      const connect = (): void =>
        socket.connect(port, host, () => {
          clearTimeout(timer);
          socket.removeListener('error', fail);
          resolve(new UdpTransport(socket));
        });
      if (options.bindAddress === undefined) connect();
      else socket.bind(0, options.bindAddress, connect);
    });
  }

  send(text: string): Promise<void> {
    return this.sendBytes(text);
  }

  sendBytes(data: string | Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'udp: the transport is closed'));
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (size > MAX_DATAGRAM_BYTES) {
      return Promise.reject(invalidArgument('text', `is ${size} bytes; one datagram carries at most ${MAX_DATAGRAM_BYTES} (use TCP, HTTP or WebSocket)`));
    }
    return new Promise((resolve, reject) => {
      this.socket.send(data, (error) => {
        if (error) reject(new ClientError('SEND_FAILED', `udp: send failed: ${error.message}`, { cause: error }));
        else resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.shut('closed');
  }

  drop(): void {
    this.shut('dropped');
  }

  private shut(reason: 'closed' | 'dropped'): void {
    if (this.closed) return;
    this.markClosed({ reason });
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
