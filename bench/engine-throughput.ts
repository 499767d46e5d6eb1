// Benchmark of the JSON-RPC engine alone: requests per second of rkllm_createDefaultParam sent
// through RkllmServer.handleMessage on an in-memory connection (no transport, one process, one
// thread). Reported twice: replies handed over as objects (the engine's share), and replies also
// serialised with JSON.stringify (what every transport then does). Usage: npm run bench:engine
// [-- --abi 1.2|1.3 --seconds N]

import type { AbiName } from '../lib/native/binding';
import type { Connection, OutgoingMessage } from '../lib/rpc/connection';
import { createLogger, createServer, defaultConfig } from '../lib/serve';
import { argument } from './arguments';

const abi = argument('abi', '1.3') as AbiName;
const seconds = Number(argument('seconds', '3'));

class CountingConnection implements Connection {
  readonly id = 'bench#1';
  readonly transport = 'memory' as const;
  readonly canPush = true;
  replies = 0;
  bytes = 0;
  constructor(private readonly serialise: boolean) {}

  send(message: OutgoingMessage): boolean {
    this.replies++;
    if (this.serialise) this.bytes += JSON.stringify(message).length;
    return true;
  }
}

async function measure(serialise: boolean): Promise<number> {
  const server = await createServer({ ...defaultConfig(), runtime: 'sim', runtimeAbi: abi, logLevel: 'silent' }, createLogger('silent'));
  const connection = new CountingConnection(serialise);
  // Distinct ids, prepared ahead, so the loop measures the engine and not string building.
  const messages = Array.from({ length: 1024 }, (_, i) => `{"jsonrpc":"2.0","id":${i},"method":"rkllm_createDefaultParam"}`);
  const warmUpUntil = Date.now() + 500;
  let sent = 0;
  while (Date.now() < warmUpUntil) {
    for (let i = 0; i < 1024; i++) void server.handleMessage(connection, messages[i]);
    sent += 1024;
  }
  connection.replies = 0;
  sent = 0;
  const started = process.hrtime.bigint();
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    for (let i = 0; i < 1024; i++) void server.handleMessage(connection, messages[i]);
    sent += 1024;
  }
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  if (connection.replies !== sent) throw new Error(`sent ${sent} requests but got ${connection.replies} replies`);
  await server.shutdown();
  return sent / elapsed;
}

async function main(): Promise<void> {
  const engineOnly = await measure(false);
  const withJson = await measure(true);
  const format = (value: number): string => Math.round(value).toLocaleString('en-US');
  console.log(`| engine (rkllm_createDefaultParam, ABI ${abi}, node ${process.version}) | requests/s |`);
  console.log('|---|---|');
  console.log(`| replies as objects | ${format(engineOnly)} |`);
  console.log(`| replies serialised with JSON.stringify | ${format(withJson)} |`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
