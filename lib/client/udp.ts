// UDP: one JSON text per datagram, both ways. The socket is connected to the server's address, so
// it only hears the server, and the kernel reports a closed port (ICMP) as an error event. UDP has
// no close: the server notices a local client is gone when its port is no longer bound, so close()
// and drop() both close the socket. Datagrams can be lost; streams can be re-read with `poll`.
//
// Before the server answers an address it must prove it can receive (docs/transports.md, UDP):
// the first send() starts the handshake (a request padded to HELLO_BYTES earns the -32019
// challenge with the address's cookie; the same request with the cookie makes the address a
// peer), and messages wait in order until it is done. A server without the handshake (an older
// one) simply answers the first request. Raw bytes sent before any message go out as a
// stranger's, which is what a test of the server's silence needs.

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
  /** Sent as "auth" on the handshake's requests (a server with --api-key answers nothing without it). */
  apiKey?: string;
  /** False: no handshake (to test what a stranger gets). */
  handshake?: boolean;
}

/** What a stranger's first request is padded to: room for the challenge, whatever the id. */
const HELLO_BYTES = 256;
/** The challenge's error code (docs/protocol.md). */
const ECHO_THE_COOKIE = -32019;
/** The handshake's datagrams can be lost: it tries again this often, this many times. */
const HELLO_RETRY_MS = 500;
const HELLO_ATTEMPTS = 10;

export class UdpTransport extends TransportBase implements ClientTransport {
  readonly kind = 'udp' as const;
  readonly pushes = true;
  readonly exchanges = false;
  readonly socket: dgram.Socket;
  readonly #apiKey: string | undefined;
  /** 'none': not started; 'running': under way, sends wait; 'done': a peer (or given up, or off). */
  #hello: 'none' | 'running' | 'done';
  #helloId: string | undefined;
  readonly #waiting: Array<{ data: string | Uint8Array; settle: (error?: Error) => void }> = [];

  private constructor(socket: dgram.Socket, options: UdpTransportOptions) {
    super();
    this.socket = socket;
    this.#apiKey = options.apiKey;
    this.#hello = options.handshake === false ? 'done' : 'none';
    socket.on('message', (datagram: Buffer) => {
      const text = datagram.toString('utf8');
      // The handshake's own replies (and a late answer to a retried one) are not the caller's.
      if (this.#helloId === undefined || !text.includes(this.#helloId)) this.deliver(text);
    });
    // ICMP port unreachable and the like: the server may come back, so the socket stays.
    socket.on('error', (error: Error) => this.report(error));
    socket.on('close', () => {
      this.markClosed({ reason: 'closed' });
      this.#flush(new ClientError('CLOSED', 'udp: the transport is closed'));
    });
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
          resolve(new UdpTransport(socket, options));
        });
      if (options.bindAddress === undefined) connect();
      else socket.bind(0, options.bindAddress, connect);
    });
  }

  /** One message; the first one starts the handshake, and every message waits for its end. */
  send(text: string): Promise<void> {
    if (this.#hello === 'none') this.#startHello();
    return this.sendBytes(text);
  }

  /** Bytes as they are: before any message, as a stranger's; during the handshake, in order after it. */
  sendBytes(data: string | Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'udp: the transport is closed'));
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (size > MAX_DATAGRAM_BYTES) {
      return Promise.reject(invalidArgument('text', `is ${size} bytes; one datagram carries at most ${MAX_DATAGRAM_BYTES} (use TCP, HTTP or WebSocket)`));
    }
    if (this.#hello === 'running') {
      return new Promise((resolve, reject) => this.#waiting.push({ data, settle: (error) => (error ? reject(error) : resolve()) }));
    }
    return this.#transmit(data);
  }

  async close(): Promise<void> {
    this.shut('closed');
  }

  drop(): void {
    this.shut('dropped');
  }

  #transmit(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.send(data, (error) => {
        if (error) reject(new ClientError('SEND_FAILED', `udp: send failed: ${error.message}`, { cause: error }));
        else resolve();
      });
    });
  }

  #startHello(): void {
    this.#hello = 'running';
    const id = `udp-hello-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    this.#helloId = id;
    handshake(this.socket, id, this.#apiKey, () => {
      // A peer now, or given up after its attempts (then the caller's own waits tell).
      this.#hello = 'done';
      this.#flush();
    });
  }

  /** Sends what waited for the handshake, in order (or fails it all when the socket closed). */
  #flush(error?: Error): void {
    for (const { data, settle } of this.#waiting.splice(0)) {
      if (error) settle(error);
      else this.#transmit(data).then(() => settle(), settle);
    }
  }

  private shut(reason: 'closed' | 'dropped'): void {
    if (this.closed) return;
    this.markClosed({ reason });
    this.#flush(new ClientError('CLOSED', 'udp: the transport is closed'));
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Proves to the server that this socket receives: a padded request, then the same request with
 * the cookie of the challenge. Calls `done` once the server answers the socket as a peer, or
 * after HELLO_ATTEMPTS tries without an answer.
 */
function handshake(socket: dgram.Socket, id: string, apiKey: string | undefined, done: () => void): void {
  let cookie: string | undefined;
  let attempts = 0;
  const request = (): string => {
    const text = JSON.stringify({ jsonrpc: '2.0', id, method: 'rkllm_get_constants', ...(apiKey === undefined ? {} : { auth: apiKey }), ...(cookie === undefined ? {} : { cookie }) });
    return text.padEnd(HELLO_BYTES, ' ');
  };
  const finish = (): void => {
    clearInterval(retry);
    socket.removeListener('message', onMessage);
    socket.removeListener('close', finish);
    done();
  };
  const send = (): void => {
    if (++attempts > HELLO_ATTEMPTS) return finish();
    socket.send(request(), () => undefined);
  };
  const onMessage = (datagram: Buffer): void => {
    let reply: { id?: unknown; error?: { code?: unknown; data?: { cookie?: unknown } } };
    try {
      reply = JSON.parse(datagram.toString('utf8')) as typeof reply;
    } catch {
      return;
    }
    if (reply.id !== id) return;
    const offered = reply.error?.data?.cookie;
    if (reply.error?.code === ECHO_THE_COOKIE && typeof offered === 'string') {
      if (cookie === undefined) {
        cookie = offered;
        send();
      }
      return;
    }
    finish();
  };
  const retry = setInterval(send, HELLO_RETRY_MS);
  socket.on('message', onMessage);
  socket.once('close', finish);
  send();
}
