// Time to first token turn by turn, over the OpenAI API at the RK3588 profile
// (sim:rk3588-qwen2.5-1.5b: 2.95 ms of prefill per prompt token, 60 ms per answer token), with
// the official openai client streaming as a chat front end does: every request carries the whole
// conversation so far. Three scenarios of 10 turns, ~50-token user messages and 30-token answers
// (--max-new-tokens 30):
// - interleaved: three users taking turns (A1, B1, C1, A2, ...), so each turn finds another
//   user's conversation in the KV cache;
// - side requests: one user, and after every answer an Open WebUI-style title request (a short
//   prompt quoting the last message) that takes the KV cache;
// - alone: one user, nothing in between (the KV cache's fast path).
// Each scenario runs on two servers in one run, alternating: with prompt caches (the default
// budget) and without (--prompt-cache-bytes 0, the server before issue 16). Reported per turn:
// the median TTFT over the users (interleaved) or over --rounds rounds (the others), and the
// tokens the runtime prefilled (usage.prompt_tokens minus prompt_tokens_details.cached_tokens).
// Usage: node dist/bench/chat-turns.js [--rounds N] [--turns N] [--json FILE]

import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import OpenAI from 'openai';
import { argument } from './arguments';

const REPO = path.resolve(__dirname, '..', '..');
const MODEL = 'sim:rk3588-qwen2.5-1.5b';
const rounds = Number(argument('rounds', '3'));
const turns = Number(argument('turns', '10'));
const jsonOut = process.argv.includes('--json') ? argument('json') : undefined;
const START_TIMEOUT_MS = 30_000;

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type Scenario = 'interleaved' | 'side requests' | 'alone';
type Side = 'caches' | 'no caches';

const SYSTEM: Message = { role: 'system', content: 'You are a helpful assistant. Answer briefly.' };
const FILLER = ['please', 'explain', 'how', 'they', 'work', 'and', 'why', 'people', 'like', 'them', 'so', 'much', 'today'];
const TOPICS = ['rivers', 'bridges', 'gardens', 'engines', 'harbors', 'forests', 'markets', 'castles', 'comets', 'islands'];

/** A user message of about 50 tokens (the emulator's tokens are words and punctuation). */
function userMessage(user: string, turn: number): string {
  const topic = TOPICS[(turn + user.charCodeAt(0)) % TOPICS.length];
  const filler = Array.from({ length: 34 }, (_, index) => FILLER[(index * 7 + turn) % FILLER.length]).join(' ');
  return `${user} asks, turn ${turn}: tell me about ${topic}. ${filler}`;
}

interface TurnSample {
  ttftMs: number;
  prefilled: number;
}

class Server {
  readonly child: ChildProcess;
  readonly openai: OpenAI;
  readonly cacheDir: string;

  private constructor(child: ChildProcess, port: number, cacheDir: string) {
    this.child = child;
    this.cacheDir = cacheDir;
    this.openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
  }

  static async start(side: Side): Promise<Server> {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rkllm-bench-caches-'));
    const args = [
      path.join(REPO, 'bin', 'rkllm-serve'),
      ...['--runtime', 'sim', '--runtime-abi', '1.3', '--model', MODEL, '--max-new-tokens', '30'],
      ...['--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws', '--http-port', '0'],
      ...['--prompt-cache-dir', cacheDir, ...(side === 'no caches' ? ['--prompt-cache-bytes', '0'] : [])],
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const port = await new Promise<number>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`the server did not start within ${START_TIMEOUT_MS} ms:\n${seen}`)), START_TIMEOUT_MS);
      child.stderr!.on('data', (data: Buffer) => {
        seen = (seen + data.toString()).slice(-20_000);
        const match = /"transport":"http"[^\n]*"port":(\d+)/.exec(seen) ?? /http[^\n]*127\.0\.0\.1:(\d+)/.exec(seen);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`the server exited (${code}):\n${seen}`)));
    });
    return new Server(child, port, cacheDir);
  }

  /** One streamed turn: TTFT at the client, prefilled tokens from the usage chunk. */
  async turn(messages: Message[]): Promise<{ sample: TurnSample; answer: string }> {
    const started = performance.now();
    let first: number | undefined;
    let answer = '';
    let prefilled = 0;
    const stream = await this.openai.chat.completions.create({ model: 'default', messages, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) {
        first ??= performance.now();
        answer += delta;
      }
      if (chunk.usage) prefilled = chunk.usage.prompt_tokens - (chunk.usage.prompt_tokens_details?.cached_tokens ?? 0);
    }
    return { sample: { ttftMs: (first ?? performance.now()) - started, prefilled }, answer };
  }

  stop(): void {
    this.child.kill('SIGTERM');
    fs.rmSync(this.cacheDir, { recursive: true, force: true });
  }
}

/** Every turn's samples of one scenario on one side: samples[turn - 1]. */
async function runScenario(server: Server, scenario: Scenario, round: number): Promise<TurnSample[][]> {
  const users = scenario === 'interleaved' ? ['Ann', 'Ben', 'Cai'] : ['Dee'];
  const histories = new Map(users.map((user) => [user, [SYSTEM] as Message[]]));
  const samples: TurnSample[][] = Array.from({ length: turns }, () => []);
  for (let turn = 1; turn <= turns; turn++) {
    for (const user of users) {
      const history = histories.get(user)!;
      history.push({ role: 'user', content: userMessage(`${user}${round}`, turn) });
      const { sample, answer } = await server.turn(history);
      history.push({ role: 'assistant', content: answer });
      samples[turn - 1].push(sample);
      if (scenario === 'side requests') {
        const title = `### Task: Generate a concise, 3-5 word title for the chat. ### Chat History: USER: ${userMessage(user, turn).slice(0, 120)}`;
        await server.turn([{ role: 'user', content: title }]);
      }
    }
  }
  return samples;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function main(): Promise<void> {
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(turns) || turns < 2) throw new Error('--rounds >= 1 and --turns >= 2');
  const servers: Record<Side, Server> = { caches: await Server.start('caches'), 'no caches': await Server.start('no caches') };
  const scenarios: Scenario[] = ['interleaved', 'side requests', 'alone'];
  const collected = new Map<string, TurnSample[][]>();
  try {
    for (const scenario of scenarios) {
      // The interleaved scenario has three users per turn already: one round is three samples.
      const scenarioRounds = scenario === 'interleaved' ? 1 : rounds;
      for (let round = 0; round < scenarioRounds; round++) {
        // Alternating which side goes first, round by round.
        const order: Side[] = round % 2 === 0 ? ['caches', 'no caches'] : ['no caches', 'caches'];
        for (const side of order) {
          const samples = await runScenario(servers[side], scenario, round);
          const key = `${scenario}|${side}`;
          const kept = collected.get(key) ?? Array.from({ length: turns }, () => []);
          samples.forEach((turnSamples, index) => kept[index].push(...turnSamples));
          collected.set(key, kept);
          process.stderr.write(`${scenario}, ${side}, round ${round + 1}: done\n`);
        }
      }
    }
  } finally {
    for (const server of Object.values(servers)) server.stop();
  }
  const report: Record<string, { turn: number; ttftMs: number; prefilled: number }[]> = {};
  const lines: string[] = [];
  for (const scenario of scenarios) {
    lines.push(`\n${scenario} (median TTFT ms / prefilled tokens, per turn)`);
    lines.push(`| turn | ${(['caches', 'no caches'] as Side[]).map((side) => `${side}: TTFT ms | prefilled`).join(' | ')} |`);
    lines.push(`|---|---|---|---|---|`);
    const rows = Array.from({ length: turns }, (_, index) => index);
    for (const side of ['caches', 'no caches'] as Side[]) {
      report[`${scenario}|${side}`] = rows.map((index) => {
        const samples = collected.get(`${scenario}|${side}`)![index];
        return { turn: index + 1, ttftMs: median(samples.map((s) => s.ttftMs)), prefilled: median(samples.map((s) => s.prefilled)) };
      });
    }
    for (const index of rows) {
      const cells = (['caches', 'no caches'] as Side[]).map((side) => {
        const row = report[`${scenario}|${side}`][index];
        return `${row.ttftMs.toFixed(0)} | ${row.prefilled}`;
      });
      lines.push(`| ${index + 1} | ${cells.join(' | ')} |`);
    }
    for (const side of ['caches', 'no caches'] as Side[]) {
      const rows = report[`${scenario}|${side}`];
      lines.push(`${side}: turn ${turns} / turn 1 = ${(rows[turns - 1].ttftMs / rows[0].ttftMs).toFixed(2)}x`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2));
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:chat-turns: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
