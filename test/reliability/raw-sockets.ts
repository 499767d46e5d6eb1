// Plain TCP sockets for the admission and HTTP-status suites: clients that send exactly the
// bytes asked (a partial request, nothing at all, headers a line at a time) and record what the
// server wrote back and whether it closed the connection. Every wait is bounded.

import { execSync } from 'child_process';
import * as net from 'net';
import { HOST, withTimeout } from '../integration/client';

/** A loopback address other than 127.0.0.1: "another machine" for per-address bounds (Linux routes all of 127/8 to lo). */
export const OTHER_ADDRESS = '127.0.0.2';

export class RawSocket {
  readonly socket: net.Socket;
  /** Everything the server sent. */
  received = '';
  closed = false;
  /** When the server's bytes first arrived and when the socket closed (ms since epoch). */
  firstByteAt: number | undefined;
  closedAt: number | undefined;
  readonly connected: Promise<boolean>;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(port: number, options: { localAddress?: string } = {}) {
    this.socket = net.connect({ port, host: HOST, localAddress: options.localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('data', (data: Buffer) => {
      this.firstByteAt ??= Date.now();
      this.received += data.toString('latin1');
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      this.closedAt = Date.now();
      for (const waiter of this.closeWaiters.splice(0)) waiter();
    });
    this.connected = new Promise((resolve) => {
      this.socket.once('connect', () => resolve(true));
      this.socket.once('close', () => resolve(false));
    });
  }

  /** The status code of the HTTP response received, if one has begun. */
  get status(): number | undefined {
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(this.received);
    return match ? Number(match[1]) : undefined;
  }

  /** The body of the response received, parsed as JSON (undefined until it is all there). */
  get json(): any {
    const start = this.received.indexOf('\r\n\r\n');
    if (start < 0) return undefined;
    try {
      return JSON.parse(Buffer.from(this.received.slice(start + 4), 'latin1').toString('utf8'));
    } catch {
      return undefined;
    }
  }

  write(text: string): void {
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** Resolves once the server has closed the connection; rejects after timeoutMs. */
  waitClosed(timeoutMs: number, what = 'the server to close the socket'): Promise<void> {
    if (this.closed) return Promise.resolve();
    return withTimeout(new Promise<void>((resolve) => this.closeWaiters.push(resolve)), timeoutMs, what);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The soft limit on open files of this test process. */
export function openFileLimit(): number {
  const text = execSync('ulimit -n', { shell: '/bin/bash', encoding: 'utf8' }).trim();
  return text === 'unlimited' ? Number.POSITIVE_INFINITY : Number(text);
}

/** A request head without its final blank line: the server waits for the rest of the headers. */
export function partialHead(method: string, path: string, extra = ''): string {
  return `${method} ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}`;
}
