// Added time to first token over the OpenAI API, at the RK3588 profile. Starts rkllm-serve
// (--runtime sim --model sim:rk3588-qwen2.5-1.5b, HTTP only, on 127.0.0.1) and sends it
// sequential streaming chat completions on one keep-alive connection, as a chat front end does:
// conversations with a system message that grow turn by turn (each request carries the whole
// conversation so far), and single-turn requests, one of which a stop sequence cuts short.
// Per request: the client's time from writing the request to the first content token, minus the
// runtime's own time to that token, which is the prefill of usage.prompt_tokens at the model
// file's prefill_ms_per_token (the first token follows the prefill at once and always carries
// whole text: a 4-byte token holds at least one whole character). What is left is what the server
// and the wire add. A reply cut by `stop` reports no usage; its prompt is a single turn on an
// emptied cache, whose token count an uncut twin measures before the timed requests. The
// server's first request is reported on its own: it also pays for code run for the first time.
// With --compare DIR (another checkout of this project, built), both servers run and take turns
// cycle by cycle, so that the machine's noise falls on both sides alike.
// Usage: node dist/bench/openai-ttft.js [--requests N] [--compare DIR] [--json FILE] [--verbose]

import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { argument } from './arguments';

const REPO = path.resolve(__dirname, '..', '..');
const MODEL = 'sim:rk3588-qwen2.5-1.5b';
const MODEL_FILE = path.join(REPO, 'addon', 'emulator', 'models', 'rk3588-qwen2.5-1.5b.json');
const requestCount = Number(argument('requests', '100'));
const compareDir = process.argv.includes('--compare') ? path.resolve(argument('compare')) : undefined;
const jsonOut = process.argv.includes('--json') ? argument('json') : undefined;
const verbose = process.argv.includes('--verbose');
const REQUEST_TIMEOUT_MS = 60_000;

function usageError(message: string): never {
  process.stderr.write(`bench:openai-ttft: ${message}\n`);
  process.exit(2);
}
if (!Number.isInteger(requestCount) || requestCount < 1) usageError(`--requests must be a whole number of 1 or more, not ${argument('requests')}`);
if (compareDir && !fs.existsSync(path.join(compareDir, 'dist', 'lib', 'cli', 'main.js'))) {
  usageError(`--compare ${compareDir}: not a built checkout of rkllm-serve (no dist/lib/cli/main.js; run npx tsc -p tsconfig.json there)`);
}

const prefillMsPerToken = (JSON.parse(fs.readFileSync(MODEL_FILE, 'utf8')) as { timing: { prefill_ms_per_token: number } }).timing
  .prefill_ms_per_token;

type Message = { role: string; content: string };

const SYSTEM = 'You are a helpful assistant. Answer briefly.';
/** One conversation's user turns. The answers are kept short ("count to") so that 100 requests take minutes. */
const CHAT_TURNS = ['Tell me about rivers.', 'count to 3', 'count to 5, please'];
/** A single-turn request that a stop sequence cuts after its third number, then an uncut one. */
const CUT = { question: 'count to 9', stop: [', 4'] };
const AFTER_CUT = 'count to 4';
/** Requests per cycle: the chat turns, the cut request, the one after it. */
const CYCLE = CHAT_TURNS.length + 2;

type Kind = 'chat' | 'cut' | 'after-cut';

interface Sample {
  side: string;
  kind: Kind;
  /** From writing the request to the response headers, and to the first content chunk (ms). */
  headersMs: number;
  firstContentMs: number;
  promptTokens: number;
  runtimeMs: number;
  addedMs: number;
}

interface Side {
  name: string;
  checkout: string;
  child: ChildProcess;
  port: number;
  agent: http.Agent;
  conversation: Message[];
  /** Prompt tokens of the cut request, measured uncut. */
  cutPromptTokens: number;
}

function log(line: string): void {
  process.stderr.write(`[bench:openai-ttft ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function startServer(name: string, checkout: string): Promise<Side> {
  const args = [
    path.join(checkout, 'bin', 'rkllm-serve'),
    ...['--runtime', 'sim', '--model', MODEL, '--host', '127.0.0.1', '--http-port', '0'],
    ...['--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws'],
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name}: the server did not listen within 30 s`));
    }, 30_000);
    child.once('exit', (code) => reject(new Error(`${name}: the server exited (${code}) before listening`)));
    const onData = (data: Buffer): void => {
      pending += data.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        let record: { transport?: string; port?: number; msg?: string };
        try {
          record = JSON.parse(line) as typeof record;
        } catch {
          continue; // not a log line
        }
        if (record.transport === 'http' && typeof record.port === 'number' && /listening/.test(record.msg ?? '')) {
          clearTimeout(timer);
          child.stderr!.off('data', onData);
          // Keep draining stderr so the server never blocks on a full pipe.
          child.stderr!.resume();
          // One socket, kept alive between requests, as an SDK's HTTP client does.
          const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
          resolve({ name, checkout, child, port: record.port, agent, conversation: [], cutPromptTokens: 0 });
          return;
        }
      }
    };
    child.stderr!.on('data', onData);
  });
}

function stopServer(side: Side): Promise<void> {
  side.agent.destroy();
  return new Promise((resolve) => {
    if (side.child.exitCode !== null) return resolve();
    const timer = setTimeout(() => side.child.kill('SIGKILL'), 5000);
    side.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    side.child.kill('SIGTERM');
  });
}

interface StreamedReply {
  headersMs: number;
  firstContentMs: number;
  content: string;
  promptTokens: number;
}

/** One streaming chat completion; times are ms from just before the request is written. */
function chat(side: Side, messages: Message[], stop?: string[]): Promise<StreamedReply> {
  const body = JSON.stringify({ model: 'default', messages, stream: true, stream_options: { include_usage: true }, stop });
  return new Promise((resolve, reject) => {
    const reply: StreamedReply = { headersMs: NaN, firstContentMs: NaN, content: '', promptTokens: 0 };
    let sentAt = 0;
    const elapsed = (): number => performance.now() - sentAt;
    const request = http.request({
      host: '127.0.0.1',
      port: side.port,
      method: 'POST',
      path: '/v1/chat/completions',
      agent: side.agent,
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': Buffer.byteLength(body) },
    });
    const timer = setTimeout(() => request.destroy(new Error(`${side.name}: no complete answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    request.on('error', fail);
    request.on('response', (response) => {
      reply.headersMs = elapsed();
      if (response.statusCode !== 200) {
        response.resume();
        fail(new Error(`${side.name}: HTTP ${response.statusCode}`));
        return;
      }
      let pending = '';
      response.setEncoding('utf8');
      response.on('data', (data: string) => {
        pending += data;
        let boundary: number;
        while ((boundary = pending.indexOf('\n\n')) !== -1) {
          const event = pending.slice(0, boundary);
          pending = pending.slice(boundary + 2);
          if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
          const chunk = JSON.parse(event.slice(6)) as { choices: { delta: { content?: string } }[]; usage?: { prompt_tokens: number } };
          const content = chunk.choices[0]?.delta.content;
          if (content) {
            if (Number.isNaN(reply.firstContentMs)) reply.firstContentMs = elapsed();
            reply.content += content;
          }
          if (chunk.usage) reply.promptTokens = chunk.usage.prompt_tokens;
        }
      });
      response.on('error', fail);
      response.on('end', () => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
    sentAt = performance.now();
    request.end(body);
  });
}

/** The index-th request of a side's sequence. */
async function oneRequest(side: Side, index: number): Promise<Sample> {
  const step = index % CYCLE;
  let kind: Kind;
  let reply: StreamedReply;
  if (step < CHAT_TURNS.length) {
    kind = 'chat';
    if (step === 0) side.conversation = [{ role: 'system', content: SYSTEM }];
    side.conversation.push({ role: 'user', content: CHAT_TURNS[step] });
    reply = await chat(side, side.conversation);
    side.conversation.push({ role: 'assistant', content: reply.content });
  } else if (step === CHAT_TURNS.length) {
    kind = 'cut';
    reply = await chat(side, [{ role: 'user', content: CUT.question }], CUT.stop);
    reply.promptTokens = side.cutPromptTokens;
  } else {
    kind = 'after-cut';
    reply = await chat(side, [{ role: 'user', content: AFTER_CUT }]);
  }
  if (reply.promptTokens <= 0 || Number.isNaN(reply.firstContentMs)) {
    throw new Error(`${side.name}: a ${kind} request came back without ${reply.promptTokens <= 0 ? 'usage' : 'content'}`);
  }
  const runtimeMs = reply.promptTokens * prefillMsPerToken;
  return {
    side: side.name,
    kind,
    headersMs: reply.headersMs,
    firstContentMs: reply.firstContentMs,
    promptTokens: reply.promptTokens,
    runtimeMs,
    addedMs: reply.firstContentMs - runtimeMs,
  };
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
}

interface Distribution {
  count: number;
  median: number;
  p90: number;
  p99: number;
  max: number;
}

function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, median: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] };
}

function row(label: string, values: number[]): string {
  if (values.length === 0) return '';
  const d = distribution(values);
  return `| ${label} | ${d.count} | ${d.median.toFixed(2)} | ${d.p90.toFixed(2)} | ${d.p99.toFixed(2)} | ${d.max.toFixed(2)} |\n`;
}

async function main(): Promise<void> {
  const sides: Side[] = [];
  try {
    sides.push(await startServer('this', REPO));
    if (compareDir) sides.push(await startServer('compare', compareDir));
    const firstRequestMs = new Map<string, number>();
    for (const side of sides) {
      const first = await chat(side, [{ role: 'system', content: SYSTEM }, { role: 'user', content: CHAT_TURNS[0] }]);
      firstRequestMs.set(side.name, first.firstContentMs - first.promptTokens * prefillMsPerToken);
      // In the state the cut request meets in the cycle: after a chat with a system message.
      side.cutPromptTokens = (await chat(side, [{ role: 'user', content: CUT.question }])).promptTokens;
    }
    log(`servers up: ${sides.map((side) => `${side.name} (${side.checkout}) on port ${side.port}`).join(', ')}; ${requestCount} requests each`);
    const samples: Sample[] = [];
    const started = Date.now();
    // Cycle by cycle, the sides take turns going first. Within a cycle a side's requests follow
    // one another at once, as one user's would: a request can meet what the one before it left.
    for (let cycle = 0; cycle * CYCLE < requestCount; cycle++) {
      for (const side of cycle % 2 === 0 ? sides : [...sides].reverse()) {
        for (let index = cycle * CYCLE; index < Math.min(requestCount, (cycle + 1) * CYCLE); index++) {
          const sample = await oneRequest(side, index);
          samples.push(sample);
          if (verbose) {
            log(`${sample.side} ${sample.kind}: first content ${sample.firstContentMs.toFixed(2)} ms, runtime ${sample.runtimeMs.toFixed(2)} ms (${sample.promptTokens} prompt tokens), added ${sample.addedMs.toFixed(2)} ms`);
          }
        }
      }
    }
    const seconds = (Date.now() - started) / 1000;
    let out = `Added TTFT (ms) over ${requestCount} requests per side, ${seconds.toFixed(0)} s:\n\n`;
    out += '| side | requests | median | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n';
    for (const side of sides) {
      const mine = samples.filter((sample) => sample.side === side.name);
      out += row(`${side.name}: all`, mine.map((sample) => sample.addedMs));
      for (const kind of ['chat', 'cut', 'after-cut'] as const) {
        out += row(`${side.name}: ${kind}`, mine.filter((sample) => sample.kind === kind).map((sample) => sample.addedMs));
      }
      out += row(`${side.name}: send to headers`, mine.map((sample) => sample.headersMs));
    }
    out += `\nFirst request of each server (cold, not in the rows): ${sides.map((side) => `${side.name} ${firstRequestMs.get(side.name)!.toFixed(2)} ms`).join(', ')}\n`;
    process.stdout.write(out);
    if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ sides: sides.map((side) => ({ name: side.name, checkout: side.checkout })), samples }, null, 1));
  } finally {
    await Promise.all(sides.map(stopServer));
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:openai-ttft: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
