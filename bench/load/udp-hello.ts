// The UDP handshake of rkllm-serve (docs/transports.md, UDP) for the load clients: a padded
// request earns the challenge with the address's cookie, the same request with the cookie makes
// the socket a peer. Until then the server carries out nothing for the socket.

import type * as dgram from 'dgram';

const HELLO_BYTES = 256;
const ATTEMPT_MS = 1000;
const ATTEMPTS = 5;

/** Resolves once the server has answered the socket as a peer; rejects after ATTEMPTS tries. */
export function udpHello(socket: dgram.Socket, port: number, host: string): Promise<void> {
  const id = `hello-${process.pid}-${socket.address().port}`;
  const hello = (cookie?: string): string => {
    const text = JSON.stringify({ jsonrpc: '2.0', id, method: 'rkllm_get_constants', ...(cookie === undefined ? {} : { cookie }) });
    return cookie === undefined ? text.padEnd(HELLO_BYTES, ' ') : text;
  };
  return new Promise((resolve, reject) => {
    let cookie: string | undefined;
    let attempts = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      if (error) reject(error);
      else resolve();
    };
    const attempt = (): void => {
      if (++attempts > ATTEMPTS) return finish(new Error(`udp handshake with ${host}:${port}: no answer after ${ATTEMPTS} tries`));
      socket.send(hello(cookie), port, host);
      timer = setTimeout(attempt, ATTEMPT_MS);
    };
    const onMessage = (data: Buffer): void => {
      let reply: { id?: unknown; error?: { code?: number; data?: { cookie?: unknown } } };
      try {
        reply = JSON.parse(data.toString('utf8')) as typeof reply;
      } catch {
        return;
      }
      if (reply.id !== id) return;
      const offered = reply.error?.data?.cookie;
      if (typeof offered !== 'string') return finish();
      if (cookie === undefined) {
        cookie = offered;
        socket.send(hello(cookie), port, host);
      }
    };
    socket.on('message', onMessage);
    attempt();
  });
}
