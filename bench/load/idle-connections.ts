// Load client for the scale benchmark: opens idle connections to one transport in steps. After
// each step it prints {"open":N} and waits for a line on stdin (the bench reads the server's
// memory meanwhile); at end of stdin it closes everything and exits. A refused or dropped
// connection ends the ramp with {"open":N,"failed":"why"}.
// - tcp, ws: a connected socket (ws: the upgrade done), nothing sent.
// - http: a connected socket with no request sent yet (an idle keep-alive connection would be
//   closed after Node's 5 s keepAliveTimeout, before the ramp ends).
// - udp: a socket that sent one rkllm_createDefaultParam and got the reply, so the server knows it.
// Usage: node idle-connections.js --transport tcp|udp|http|ws --port P --steps 1000,2000,...

import * as dgram from 'dgram';
import * as net from 'net';
import * as readline from 'readline';
import WebSocket from 'ws';
import { argument } from '../arguments';
import { udpHello } from './udp-hello';

const transport = argument('transport');
const port = Number(argument('port'));
const steps = argument('steps').split(',').map(Number);
const host = '127.0.0.1';
/** Connections opened at once: enough to be quick, few enough not to overflow the accept backlog. */
const PARALLEL = 200;
const closers: Array<() => void> = [];
let failure: string | undefined;

function openOne(): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    if (transport === 'tcp' || transport === 'http') {
      const socket = net.connect({ host, port }, done);
      socket.on('error', (error) => reject(error));
      socket.on('close', () => (failure ??= 'the server closed a connection'));
      closers.push(() => socket.destroy());
    } else if (transport === 'ws') {
      const socket = new WebSocket(`ws://${host}:${port}/`, { perMessageDeflate: false });
      socket.on('open', done);
      socket.on('error', (error) => reject(error));
      socket.on('close', () => (failure ??= 'the server closed a connection'));
      closers.push(() => socket.terminate());
    } else if (transport === 'udp') {
      const socket = dgram.createSocket('udp4');
      socket.bind(0, host, () => {
        udpHello(socket, port, host).then(() => {
          socket.on('message', (message) => {
            if (message.toString().includes('"error"')) reject(new Error(message.toString().slice(0, 200)));
            else done();
          });
          socket.send('{"jsonrpc":"2.0","id":1,"method":"rkllm_createDefaultParam"}', port, host);
        }, reject);
      });
      closers.push(() => socket.close());
    } else {
      reject(new Error(`unknown transport ${transport}`));
    }
  });
}

async function openUpTo(target: number): Promise<void> {
  while (closers.length < target && failure === undefined) {
    const batch = Math.min(PARALLEL, target - closers.length);
    await Promise.all(Array.from({ length: batch }, () => openOne()));
  }
}

async function main(): Promise<void> {
  setTimeout(() => {
    console.error('idle-connections: hard time limit reached');
    process.exit(2);
  }, 120_000).unref();
  const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  for (const step of steps) {
    try {
      await openUpTo(step);
    } catch (error) {
      failure ??= (error as Error).message;
    }
    // A moment for connections the server drops at once (a limit) to show as failures.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const open = closers.length;
    console.log(JSON.stringify(failure === undefined ? { open } : { open, failed: failure }));
    if (failure !== undefined) break;
    if ((await lines.next()).done) break;
  }
  // Hold the connections until the bench says it is done (end of stdin).
  while (!(await lines.next()).done);
  closers.forEach((close) => close());
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
