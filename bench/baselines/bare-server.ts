// The bare baseline for the server benchmark: a minimal Node server of one transport that parses
// each JSON-RPC request and answers it with a reply of the same size as rkllm-serve's reply to
// rkllm_createDefaultParam, using nothing of the project's code. What rkllm-serve does beyond
// this (envelope checks, validation, the engine, bounds, bookkeeping) is what the ratio measures.
// Usage: node bare-server.js --transport stdio|tcp|udp|http|ws --reply-bytes N
// Network transports listen on 127.0.0.1, port 0, and print {"port":P} on stdout.

import * as dgram from 'dgram';
import * as http from 'http';
import * as net from 'net';
import { WebSocketServer } from 'ws';
import { argument } from '../arguments';

const transport = argument('transport');
const replyBytes = Number(argument('reply-bytes'));
// The reply is {"jsonrpc":"2.0","id":<id>,"result":"<padding>"}; the padding is sized so that for
// id 1 the reply is exactly replyBytes long. Longer ids grow both servers' replies alike.
const padding = 'x'.repeat(replyBytes - JSON.stringify({ jsonrpc: '2.0', id: 1, result: '' }).length);

function replyTo(text: string): string {
  const request = JSON.parse(text) as { id?: unknown };
  return JSON.stringify({ jsonrpc: '2.0', id: request.id ?? null, result: padding });
}

/** Newline framing for stdio and TCP: every complete line gets one reply line. */
function serveLines(input: NodeJS.ReadableStream, write: (text: string) => void): void {
  let pending = '';
  input.setEncoding('utf8');
  input.on('data', (data: string) => {
    pending += data;
    let newline = pending.indexOf('\n');
    if (newline === -1) return;
    let out = '';
    let start = 0;
    while (newline !== -1) {
      const line = pending.slice(start, newline);
      if (line.length > 0) out += replyTo(line) + '\n';
      start = newline + 1;
      newline = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
    write(out);
  });
}

function announce(port: number): void {
  process.stdout.write(JSON.stringify({ port }) + '\n');
}

switch (transport) {
  case 'stdio':
    serveLines(process.stdin, (text) => process.stdout.write(text));
    process.stdin.on('end', () => process.exit(0));
    break;
  case 'tcp': {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => socket.destroy());
      serveLines(socket, (text) => socket.write(text));
    });
    server.listen(0, '127.0.0.1', () => announce((server.address() as net.AddressInfo).port));
    break;
  }
  case 'udp': {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (message, from) => socket.send(replyTo(message.toString('utf8')), from.port, from.address));
    socket.bind(0, '127.0.0.1', () => announce(socket.address().port));
    break;
  }
  case 'http': {
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = replyTo(Buffer.concat(chunks).toString('utf8'));
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        response.end(body);
      });
    });
    server.listen(0, '127.0.0.1', () => announce((server.address() as net.AddressInfo).port));
    break;
  }
  case 'ws': {
    const server: WebSocketServer = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false }, () =>
      announce((server.address() as net.AddressInfo).port),
    );
    server.on('connection', (socket) => {
      socket.on('message', (data) => socket.send(replyTo(data.toString())));
      socket.on('error', () => socket.terminate());
    });
    break;
  }
  default:
    throw new Error(`unknown transport ${transport}`);
}
