// Load client for the cheap-request benchmark over TCP, UDP, WebSocket or stdio (HTTP uses
// autocannon). A closed loop: each of --clients clients keeps one rkllm_createDefaultParam request
// in flight and sends the next when the reply arrives. After a 0.5 s warm-up it counts the
// replies of --seconds seconds and the latency of each (send to receipt), then prints one JSON
// line. TCP, UDP and WebSocket clients each have their own socket; stdio has one pipe pair (the
// load client spawns the server given by --command), so its clients are requests in flight on it.
// Usage: node rpc-load.js --transport tcp|udp|ws|stdio (--port P | --command JSON-array)
//          --clients N --seconds S

import { spawn } from 'child_process';
import * as dgram from 'dgram';
import * as net from 'net';
import WebSocket from 'ws';
import { argument } from '../arguments';
import { udpHello } from './udp-hello';

const transport = argument('transport');
const clientCount = Number(argument('clients'));
const seconds = Number(argument('seconds', '3'));
const WARM_UP_MS = 500;
/** A UDP datagram not answered in this time counts as lost and the client sends a fresh one. */
const UDP_TIMEOUT_MS = 200;

const sentAt = new Float64Array(clientCount);
let measuring = false;
let stopping = false;
let replies = 0;
let lost = 0;
const latenciesMs: number[] = [];
let nextSequence = 0;

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Ids encode the client (id % clients) so replies on the shared stdio pipe find their client. */
function request(client: number): string {
  const id = (nextSequence++ % 1_000_000) * clientCount + client;
  sentAt[client] = nowMs();
  return `{"jsonrpc":"2.0","id":${id},"method":"rkllm_createDefaultParam"}`;
}

/** Records one reply of a client; returns whether the client should send again. */
function received(client: number): boolean {
  if (measuring) {
    replies++;
    latenciesMs.push(nowMs() - sentAt[client]);
  }
  return !stopping;
}

function clientOf(reply: string): number {
  const parsed = JSON.parse(reply) as { id: number; error?: unknown };
  if (parsed.error !== undefined) throw new Error(`error reply: ${reply.slice(0, 200)}`);
  return parsed.id % clientCount;
}

/** Calls onLine for each complete line of a byte stream. */
function onLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (data: string) => {
    pending += data;
    let start = 0;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      if (newline > start) onLine(pending.slice(start, newline));
      start = newline + 1;
      newline = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
  });
}

/** Starts the clients; resolves when all are connected. Returns a function that closes them. */
async function startClients(): Promise<() => void> {
  const host = '127.0.0.1';
  if (transport === 'stdio') {
    const command = JSON.parse(argument('command')) as string[];
    const child = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'ignore'] });
    const ready = new Promise<void>((resolve) => {
      let first = true;
      onLines(child.stdout, (line) => {
        if (first) {
          first = false;
          resolve();
          return;
        }
        const client = clientOf(line);
        if (received(client)) child.stdin.write(request(client) + '\n');
      });
    });
    // One request before the load starts: the server answers once it is up.
    child.stdin.write('{"jsonrpc":"2.0","id":0,"method":"rkllm_createDefaultParam"}\n');
    await ready;
    let batch = '';
    for (let client = 0; client < clientCount; client++) batch += request(client) + '\n';
    child.stdin.write(batch);
    return () => {
      child.stdin.end();
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    };
  }
  const port = Number(argument('port'));
  if (transport === 'tcp') {
    const sockets = await Promise.all(
      Array.from(
        { length: clientCount },
        (_, client) =>
          new Promise<net.Socket>((resolve, reject) => {
            const socket = net.connect({ host, port, noDelay: true }, () => resolve(socket));
            socket.on('error', reject);
            onLines(socket, (line) => {
              if (received(clientOf(line))) socket.write(request(client) + '\n');
            });
          }),
      ),
    );
    sockets.forEach((socket, client) => socket.write(request(client) + '\n'));
    return () => sockets.forEach((socket) => socket.destroy());
  }
  if (transport === 'ws') {
    const sockets = await Promise.all(
      Array.from(
        { length: clientCount },
        (_, client) =>
          new Promise<WebSocket>((resolve, reject) => {
            const socket = new WebSocket(`ws://${host}:${port}/`, { perMessageDeflate: false });
            socket.on('open', () => resolve(socket));
            socket.on('error', reject);
            socket.on('message', (data) => {
              if (received(clientOf(data.toString()))) socket.send(request(client));
            });
          }),
      ),
    );
    sockets.forEach((socket, client) => socket.send(request(client)));
    return () => sockets.forEach((socket) => socket.terminate());
  }
  if (transport === 'udp') {
    const timers: NodeJS.Timeout[] = [];
    const sockets = await Promise.all(
      Array.from(
        { length: clientCount },
        () =>
          new Promise<dgram.Socket>((resolve) => {
            const socket = dgram.createSocket('udp4');
            socket.bind(0, host, () => resolve(udpHello(socket, port, host).then(() => socket)));
          }),
      ),
    );
    const send = (client: number): void => {
      clearTimeout(timers[client]);
      timers[client] = setTimeout(() => {
        if (stopping) return;
        if (measuring) lost++;
        send(client);
      }, UDP_TIMEOUT_MS);
      sockets[client].send(request(client), port, host);
    };
    sockets.forEach((socket, client) => {
      socket.on('message', (message) => {
        // A late reply to a datagram already given up on is ignored: its client has moved on.
        const text = message.toString('utf8');
        if (clientOf(text) !== client) return;
        if (received(client)) send(client);
        else clearTimeout(timers[client]);
      });
    });
    sockets.forEach((_, client) => send(client));
    return () => {
      timers.forEach((timer) => clearTimeout(timer));
      sockets.forEach((socket) => socket.close());
    };
  }
  throw new Error(`unknown transport ${transport}`);
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
}

async function main(): Promise<void> {
  // A hard bound on the whole run, whatever happens to the server.
  setTimeout(() => {
    console.error('rpc-load: hard time limit reached');
    process.exit(2);
  }, (seconds + 20) * 1000).unref();
  const close = await startClients();
  await new Promise((resolve) => setTimeout(resolve, WARM_UP_MS));
  measuring = true;
  const started = nowMs();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  stopping = true;
  const elapsed = (nowMs() - started) / 1000;
  close();
  latenciesMs.sort((a, b) => a - b);
  const result = {
    transport,
    clients: clientCount,
    requests: replies,
    seconds: elapsed,
    requestsPerSecond: replies / elapsed,
    medianMs: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    lost,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  setTimeout(() => process.exit(0), 100);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
