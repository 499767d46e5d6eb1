// Load client for the streaming benchmark, over TCP, WebSocket or HTTP (an SSE event stream).
// --mode throughput: --clients connections each start one streaming rkllm_run of --prompt at once;
//   prints the tokens delivered to all of them per second (first send to last final reply).
//   Notifications are recognised by their first bytes, not parsed, so the client costs little.
// --mode latency: one connection runs --prompt --runs times in a row against a server started with
//   --enable-test-hooks, whose token notifications carry callback_us (the runtime's callback,
//   CLOCK_MONOTONIC). Per token: receipt minus callback_us. Per run: the time-to-first-token the
//   client saw minus the runtime's own prefill time (perf.prefill_time_ms of the last notification).
// Usage: node stream-client.js --transport tcp|ws|http --port P --mode throughput|latency
//          --prompt TEXT [--clients N] [--runs R] [--handle H [--context N]]

import { argument } from '../arguments';
import { openMedium } from './media';

const transport = argument('transport');
const port = Number(argument('port'));
const mode = argument('mode');
const prompt = argument('prompt');
const clientCount = Number(argument('clients', '1'));
const runs = Number(argument('runs', '1'));
const NOTIFICATION_PREFIX = '{"jsonrpc":"2.0","method":';

function nowUs(): number {
  // process.hrtime is CLOCK_MONOTONIC, the clock of callback_us (same machine).
  return Number(process.hrtime.bigint()) / 1000;
}

interface MessagePipe {
  send(text: string): void;
  onMessage(handler: (text: string) => void): void;
  close(): void;
}

async function openPipe(): Promise<MessagePipe> {
  // Texts are matched by prefix, not parsed.
  const medium = await openMedium(transport, '127.0.0.1', port);
  // One listener whose handler is swapped: each run installs its own handler.
  let handler: (text: string) => void = () => undefined;
  medium.onText((text) => handler(text));
  return {
    send: (text) => void medium.send(text).catch((error: unknown) => console.error(error)),
    onMessage: (next) => (handler = next),
    close: () => medium.drop(),
  };
}

const handle = process.argv.includes('--handle') ? argument('handle') : undefined;

function runRequest(id: number): string {
  const params = { handle, rkllm_input: { input_type: 0, prompt_input: prompt }, stream: true };
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'rkllm_run', params });
}

/**
 * The start-up model generates at most the default max_new_tokens, too few for a throughput run:
 * load sim:instant under --handle with a context of --context tokens (once per server: a taken
 * handle means an earlier client loaded it).
 */
async function loadThroughputModel(pipe: MessagePipe): Promise<void> {
  if (handle === undefined) return;
  const context = Number(argument('context', '262144'));
  const param = { model_path: 'sim:instant', max_context_len: context, max_new_tokens: context };
  await new Promise<void>((resolve, reject) => {
    pipe.onMessage((text) => {
      const reply = JSON.parse(text) as { error?: { code: number } };
      if (reply.error && reply.error.code !== -32004) reject(new Error(`rkllm_init failed: ${text.slice(0, 300)}`));
      else resolve();
    });
    pipe.send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'rkllm_init', params: { handle, param } }));
  });
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
}

async function throughput(): Promise<void> {
  const pipes = await Promise.all(Array.from({ length: clientCount }, () => openPipe()));
  await loadThroughputModel(pipes[0]);
  let tokens = 0;
  const started = nowUs();
  await Promise.all(
    pipes.map(
      (pipe, index) =>
        new Promise<void>((resolve, reject) => {
          pipe.onMessage((text) => {
            if (text.startsWith(NOTIFICATION_PREFIX)) {
              tokens++;
              return;
            }
            if (text.includes('"error"')) reject(new Error(`run failed: ${text.slice(0, 300)}`));
            else resolve();
          });
          pipe.send(runRequest(index + 1));
        }),
    ),
  );
  const seconds = (nowUs() - started) / 1e6;
  pipes.forEach((pipe) => pipe.close());
  // Each stream's last notification is its end marker, not a token.
  const delivered = tokens - clientCount;
  console.log(JSON.stringify({ transport, clients: clientCount, tokens: delivered, seconds, tokensPerSecond: delivered / seconds }));
}

async function latency(): Promise<void> {
  const pipe = await openPipe();
  const addedUs: number[] = [];
  const addedTtftUs: number[] = [];
  for (let run = 1; run <= runs; run++) {
    const sentUs = nowUs();
    let firstTokenUs: number | undefined;
    await new Promise<void>((resolve, reject) => {
      pipe.onMessage((text) => {
        const receivedUs = nowUs();
        const message = JSON.parse(text) as {
          method?: string;
          error?: unknown;
          params?: { state: number; callback_us?: number; perf?: { prefill_time_ms: number } };
        };
        if (message.method !== 'rkllm_result') {
          if (message.error !== undefined) reject(new Error(`run failed: ${text.slice(0, 300)}`));
          else resolve();
          return;
        }
        const params = message.params!;
        if (params.callback_us !== undefined) {
          addedUs.push(receivedUs - params.callback_us);
          firstTokenUs ??= receivedUs;
        } else if (params.state !== 0 && params.state !== 1 && params.perf) {
          if (firstTokenUs === undefined) throw new Error('no callback_us: start the server with --enable-test-hooks');
          addedTtftUs.push(firstTokenUs - sentUs - params.perf.prefill_time_ms * 1000);
        }
      });
      pipe.send(runRequest(run));
    });
  }
  pipe.close();
  addedUs.sort((a, b) => a - b);
  addedTtftUs.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      transport,
      tokens: addedUs.length,
      medianMs: percentile(addedUs, 0.5) / 1000,
      p99Ms: percentile(addedUs, 0.99) / 1000,
      maxMs: addedUs[addedUs.length - 1] / 1000,
      runs,
      ttftAddedMedianMs: percentile(addedTtftUs, 0.5) / 1000,
      ttftAddedMaxMs: addedTtftUs[addedTtftUs.length - 1] / 1000,
    }),
  );
}

setTimeout(() => {
  console.error('stream-client: hard time limit reached');
  process.exit(2);
}, 120_000).unref();

(mode === 'latency' ? latency() : throughput())
  // stdout may be a pipe (the bench reads it): exit once the result line is written.
  .then(() => process.stdout.write('', () => process.exit(0)))
  .catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
