// Characters split across tokens, on every transport and the OpenAI API, for each thing the real
// runtime may put in its callbacks (docs/rkllm-abi.md, "What WAITING carries"): one emulated model
// per `callbacks.waiting` style, answering CJK, emoji and mixed text. The answer arrives exactly,
// each byte once; a WAITING notification has `text: ""` (docs/protocol.md, "Streams").

import * as fs from 'fs';
import * as path from 'path';
import OpenAI from 'openai';
import {
  HttpClient,
  STATE,
  ServerProcess,
  assertContiguous,
  connectClient,
  makeTempDir,
  stopAllServers,
  type ResultChunk,
  type RpcClient,
  type Transport,
} from './client';

jest.setTimeout(30_000);

const STYLES = ['partial-then-rest', 'partial-then-whole', 'empty-then-whole'] as const;

/** Characters of 2, 3 and 4 bytes that straddle the emulator's 4-byte tokens. */
const TEXTS: Record<string, string> = {
  CJK: '你好世界，日本語の文章です 東京',
  emoji: 'ok 😀👍🏽 🎉!',
  mixed: 'a😀b日本 naïve Grüße мир 你好 🎉x',
};
const CASES = STYLES.flatMap((style) => Object.keys(TEXTS).map((name) => [style, name] as const));
const REPLACEMENT = '\uFFFD';

let server: ServerProcess;
let modelsDir: string;
let control: HttpClient;

beforeAll(async () => {
  modelsDir = makeTempDir('utf8-waiting');
  for (const style of STYLES) {
    fs.writeFileSync(
      path.join(modelsDir, `${style}.json`),
      JSON.stringify({ format: 'rkllm-emulated-model', version: 1, name: style, callbacks: { waiting: style } }),
    );
  }
  server = await ServerProcess.start({ model: 'sim:instant', args: ['--models-dir', modelsDir] });
  control = new HttpClient(server.port('http'));
  for (const style of STYLES) {
    const reply = await control.request('rkllm_init', { handle: style, param: { model_path: `${style}.json` } }, { timeoutMs: 15_000 });
    if (reply.error) throw new Error(`loading ${style}.json failed: ${JSON.stringify(reply.error)}`);
  }
});

afterAll(async () => {
  await control?.close();
  await stopAllServers();
  fs.rmSync(modelsDir, { recursive: true, force: true });
});

/** The token chunks of a stream (in seq order): exact text, WAITING ones empty, no U+FFFD. */
function expectExactChunks(chunks: readonly ResultChunk[], text: string): void {
  const tokens = [...chunks].filter((chunk) => chunk.state === STATE.NORMAL || chunk.state === STATE.WAITING).sort((a, b) => a.seq - b.seq);
  const waiting = tokens.filter((chunk) => chunk.state === STATE.WAITING);
  expect(waiting.length).toBeGreaterThan(0);
  for (const chunk of waiting) expect({ seq: chunk.seq, text: chunk.text }).toEqual({ seq: chunk.seq, text: '' });
  for (const chunk of tokens) expect(chunk.text).not.toContain(REPLACEMENT);
  expect(tokens.filter((chunk) => chunk.state === STATE.NORMAL).map((chunk) => chunk.text).join('')).toBe(text);
}

describe.each<Transport>(['stdio', 'tcp', 'udp', 'http', 'websocket'])('%s', (transport) => {
  let client: RpcClient;

  beforeAll(async () => {
    client = await connectClient(server, transport);
  });

  afterAll(async () => {
    await client?.close();
  });

  test.each(CASES)('%s, %s text: streamed notifications', async (style, name) => {
    const text = TEXTS[name];
    const outcome = await client.stream('rkllm_run', { handle: style, rkllm_input: { input_type: 0, prompt_input: `echo: ${text}` }, stream: true });
    expect(outcome.response?.error).toBeUndefined();
    assertContiguous(outcome.chunks, transport !== 'udp');
    expect(outcome.final?.state).toBe(STATE.FINISH);
    expectExactChunks(outcome.chunks.map((timed) => timed.chunk), text);
    expect(outcome.text).toBe(text);
    expect(outcome.response?.result.text).toBe(text);
  });
});

describe('http, polled', () => {
  test.each(CASES)('%s, %s text: the polled chunks and the final result', async (style, name) => {
    const text = TEXTS[name];
    const started = await control.request('rkllm_run', { handle: style, rkllm_input: { input_type: 0, prompt_input: `echo: ${text}` }, stream: true });
    expect(started.error).toBeUndefined();
    const streamId = started.result.stream_id;
    const chunks: ResultChunk[] = [];
    let result: { text: string } | undefined;
    for (let polls = 0; polls < 50 && result === undefined; polls++) {
      const reply = await control.request('poll', { stream_id: streamId, from_seq: chunks.length });
      expect(reply.error).toBeUndefined();
      chunks.push(...reply.result.chunks);
      if (reply.result.done) result = reply.result.result;
    }
    expect(result?.text).toBe(text);
    chunks.forEach((chunk, index) => expect(chunk.seq).toBe(index));
    expectExactChunks(chunks, text);
  });
});

describe('OpenAI API, streamed', () => {
  let openai: OpenAI;

  beforeAll(() => {
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${server.port('http')}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
  });

  test.each(CASES)('%s, %s text: chat.completion.chunk deltas', async (style, name) => {
    const text = TEXTS[name];
    const stream = await openai.chat.completions.create({ model: style, messages: [{ role: 'user', content: `echo: ${text}` }], stream: true });
    const deltas: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) deltas.push(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    for (const delta of deltas) expect(delta).not.toContain(REPLACEMENT);
    expect(deltas.join('')).toBe(text);
    expect(finish).toBe('stop');
  });

  test.each(CASES)('%s, %s text: completion chunks', async (style, name) => {
    const text = TEXTS[name];
    const stream = await openai.completions.create({ model: style, prompt: `echo: ${text}`, stream: true });
    let joined = '';
    for await (const chunk of stream) joined += chunk.choices[0]?.text ?? '';
    expect(joined).toBe(text);
  });
});

test('a model file with an unknown callbacks.waiting is refused, and the emulator says which values it takes', async () => {
  fs.writeFileSync(path.join(modelsDir, 'bad-waiting.json'), JSON.stringify({ format: 'rkllm-emulated-model', version: 1, callbacks: { waiting: 'bytes' } }));
  const reply = await control.request('rkllm_init', { handle: 'bad-waiting', param: { model_path: 'bad-waiting.json' } }, { timeoutMs: 15_000 });
  expect(reply.error).toBeDefined();
  // The emulator's line reaches the server's log from the model's host, as a JSON string (its quotes escaped).
  const said = () => /callbacks\.waiting must be \\?"partial-then-rest\\?", \\?"partial-then-whole\\?" or \\?"empty-then-whole\\?"/.test(server.stderrText);
  for (let tries = 0; tries < 50 && !said(); tries++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(said()).toBe(true);
});
