// Models the way board owners use them, through the official SDK against the real server: a long
// chat on the RK3588-paced sim model with the context the settings give it, the catalog of a
// models directory (named from the files, sidecar settings), load on demand within
// --max-loaded-models, keep-alive, and a config file with two models, aliases and settings.

import * as fs from 'fs';
import * as path from 'path';
import OpenAI from 'openai';
import { HttpClient, countTo, makeTempDir, runCli, sleep, stopAllServers, waitUntil, withTimeout } from '../integration/client';
import { kvCacheSize, startOpenAiServer, type OpenAiServer } from './helpers';

jest.setTimeout(120_000);

const SYSTEM_PROMPT =
  'You are Pip, the helpful assistant of a small hardware shop that sells single-board computers. ' +
  'Answer in two or three friendly sentences, say when you are not sure, and never invent prices or stock levels. ' +
  'When a customer asks about a board, mention its SoC, its memory options and whether it has an NPU.';

const QUESTIONS = [
  'Hello! I am looking for a board to run a small language model at home.',
  'What is the difference between the Orange Pi 5 and the Rock 5B?',
  'How much memory would I need for a 1.5B model?',
  'Does the NPU help with speech recognition too?',
  'Can I power it from a USB-C phone charger?',
  'What cooling do you recommend for long runs?',
  'Is an NVMe drive worth it, or is an SD card enough?',
  'Which operating system image should I start with?',
  'Can two models run on the NPU at the same time?',
  'Thanks! Can you sum up what I should buy?',
];

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** Ten turns, each the whole conversation so far, as a chat client sends them; returns the replies. */
async function tenTurnChat(harness: OpenAiServer, model: string): Promise<string[]> {
  const messages: Message[] = [{ role: 'system', content: SYSTEM_PROMPT }];
  const replies: string[] = [];
  let lastCache = 0;
  for (const question of QUESTIONS) {
    messages.push({ role: 'user', content: question });
    const completion = await harness.openai.chat.completions.create({ model, messages });
    const reply = completion.choices[0];
    expect(reply.finish_reason).toBe('stop');
    expect(reply.message.content?.length ?? 0).toBeGreaterThan(0);
    replies.push(reply.message.content!);
    messages.push({ role: 'assistant', content: reply.message.content! });
    // The conversation grows in the KV cache: each turn runs on top of the one before.
    const cache = await kvCacheSize(harness.rpc);
    expect(cache).toBeGreaterThan(lastCache);
    lastCache = cache;
  }
  return replies;
}

/** An emulated model file named like a converted .rkllm (the emulated runtime reads it as JSON). */
function writeModel(dir: string, file: string, timing: Record<string, number> = {}, maxContextLen = 8192): string {
  const full = path.join(dir, file);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, JSON.stringify({ format: 'rkllm-emulated-model', version: 1, name: file, timing, limits: { max_context_len: maxContextLen } }));
  return full;
}

interface Listed {
  name: string;
  aliases: string[];
  source: string;
  loaded: boolean;
  context_length?: number;
  keep_alive_ms?: number;
}

async function listModels(rpc: HttpClient): Promise<Listed[]> {
  const reply = await rpc.request('rkllm_list_models', {});
  if (reply.error) throw new Error(`rkllm_list_models failed: ${JSON.stringify(reply.error)}`);
  return (reply.result as { models: Listed[] }).models;
}

async function loadedNames(rpc: HttpClient): Promise<string[]> {
  return (await listModels(rpc)).filter((model) => model.loaded).map((model) => model.name);
}

async function ask(openai: OpenAI, model: string, content: string): Promise<OpenAI.Chat.Completions.ChatCompletion> {
  return openai.chat.completions.create({ model, messages: [{ role: 'user', content }] });
}

afterAll(async () => {
  await stopAllServers();
});

describe('a long chat on the RK3588-paced model', () => {
  // The runtime's own defaults (max_context_len 512) ended such a chat on its third turn.
  it('goes ten turns with a realistic system prompt, started with --ctx-size 4096 and with the defaults alone', async () => {
    // Both servers at once: each chat is paced like the board (about a minute of sleeping, little CPU).
    const started = await Promise.all(
      [['--ctx-size', '4096'], []].map((flags) =>
        startOpenAiServer({ model: 'sim:rk3588-qwen2.5-1.5b', args: ['--runtime-abi', '1.3', ...flags], readyTimeoutMs: 30_000 }),
      ),
    );
    try {
      const chats = await Promise.all(started.map((harness) => tenTurnChat(harness, 'default')));
      for (const replies of chats) expect(replies).toHaveLength(10);
      for (const harness of started) {
        const [listed] = await listModels(harness.rpc);
        expect(listed).toMatchObject({ name: 'default', loaded: true, context_length: 4096 });
      }
    } finally {
      for (const harness of started) {
        await harness.rpc.close();
        await harness.server.stop();
      }
    }
  });
});

describe('the model flags reach rkllm_init', () => {
  it('--ctx-size bounds the context, --max-new-tokens the answer, --alias names the model', async () => {
    const harness = await startOpenAiServer({ model: 'sim:instant', args: ['--ctx-size', '64', '--max-new-tokens', '7', '--temp', '0.2', '--alias', 'tiny', '--alias', 'small'] });
    try {
      const models = await harness.openai.models.list();
      expect(models.data).toEqual([expect.objectContaining({ id: 'tiny', context_length: 64, aliases: expect.arrayContaining(['small', 'default']) })]);
      // Seven tokens of "1, 2, 3, ...": the init's max_new_tokens, not the runtime's 256.
      const run = await harness.rpc.request('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 50' } });
      expect(run.result).toMatchObject({ text: '1, 2, 3, 4', token_count: 7 });
      // A prompt longer than 64 tokens does not fit the context it was given.
      const long = await harness.rpc.request('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'word '.repeat(80) } });
      expect(long.error?.data).toMatchObject({ detail: expect.stringContaining('context length exceeded') });
      // Every name it answers to reaches the same model.
      for (const name of ['tiny', 'small', 'default']) expect((await ask(harness.openai, name, 'count to 2')).choices[0].message.content).toBe('1, 2');
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
    }
  });

  it('refuses a bad model flag, and --alias without a start-up model, naming the flag', async () => {
    const bad = await runCli(['--runtime', 'sim', '--ctx-size', '0', '--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws', '--http-port', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--ctx-size must be an integer of at least 1');
    const alias = await runCli(['--runtime', 'sim', '--model', 'none', '--alias', 'x', '--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws']);
    expect(alias.code).toBe(2);
    expect(alias.stderr).toContain('--alias applies to the start-up model');
    const mask = await runCli(['--runtime', 'sim', '--cpu-mask', 'big', '--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws']);
    expect(mask.code).toBe(2);
    expect(mask.stderr).toContain('--cpu-mask');
  });
});

describe('a models directory', () => {
  let dir: string;
  let harness: OpenAiServer;

  beforeAll(async () => {
    dir = makeTempDir('catalog');
    writeModel(dir, 'Alpha-1B-Instruct-w8a8.rkllm', { decode_ms_per_token: 20 });
    writeModel(dir, 'family/beta-2b-w8a8.rkllm');
    fs.writeFileSync(path.join(dir, 'family', 'beta-2b-w8a8.json'), JSON.stringify({ max_context_len: 2048, aliases: ['beta'], keep_alive: '60s' }));
    // Not a model: only .rkllm files are.
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a model');
    // A sidecar with a mistake leaves its model out, rather than loading it with other settings.
    writeModel(dir, 'broken.rkllm');
    fs.writeFileSync(path.join(dir, 'broken.json'), JSON.stringify({ max_ctx: 2048 }));
    harness = await startOpenAiServer({
      model: 'none',
      args: ['--runtime-abi', '1.3', '--models-dir', dir, '--max-loaded-models', '1', '--keep-alive', '60s'],
    });
  });

  afterAll(async () => {
    await harness?.rpc.close();
    await harness?.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists every .rkllm file, named from the file, with its context length, none loaded yet', async () => {
    const models = await harness.openai.models.list();
    expect(models.data).toEqual([
      expect.objectContaining({ id: 'alpha-1b-instruct-w8a8', loaded: false, context_length: 4096 }),
      expect.objectContaining({ id: 'beta-2b-w8a8', loaded: false, context_length: 2048, aliases: ['beta'] }),
    ]);
    const listed = await listModels(harness.rpc);
    expect(listed.filter((model) => model.source === 'models-dir').map((model) => [model.name, model.keep_alive_ms])).toEqual([
      ['alpha-1b-instruct-w8a8', 60_000],
      ['beta-2b-w8a8', 60_000],
    ]);
  });

  it('leaves out a model whose sidecar has a mistake, and logs where it is', async () => {
    expect((await listModels(harness.rpc)).map((model) => model.name)).not.toContain('broken');
    const warning = harness.server.logs.find((log) => log.msg === 'a model settings file is not valid; its model is left out');
    expect(warning).toMatchObject({ sidecar: path.join(dir, 'broken.json'), err: expect.stringContaining('broken.json.max_ctx is not a model setting') });
  });

  it('answers a wrong name with 404 listing the names', async () => {
    const error = await ask(harness.openai, 'gamma', 'hi').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    const notFound = error as InstanceType<typeof OpenAI.NotFoundError>;
    expect(notFound.code).toBe('model_not_found');
    expect(notFound.message).toContain('alpha-1b-instruct-w8a8');
    expect(notFound.message).toContain('beta-2b-w8a8');
  });

  it('loads two models alternately on demand, never more than --max-loaded-models at once', async () => {
    const seen: string[][] = [];
    for (const model of ['alpha-1b-instruct-w8a8', 'beta', 'alpha-1b-instruct-w8a8', 'beta-2b-w8a8']) {
      const completion = await ask(harness.openai, model, 'count to 4');
      expect(completion.choices[0].message.content).toBe(countTo(4));
      seen.push(await loadedNames(harness.rpc));
    }
    expect(seen).toEqual([['alpha-1b-instruct-w8a8'], ['beta-2b-w8a8'], ['alpha-1b-instruct-w8a8'], ['beta-2b-w8a8']]);
  });

  it('never unloads a model under its run: the next model waits for it', async () => {
    // alpha answers 30 tokens 20 ms apart; beta is asked meanwhile and needs alpha's slot.
    const slow = ask(harness.openai, 'alpha-1b-instruct-w8a8', 'count to 15');
    await waitUntil('alpha running', async () => (await loadedNames(harness.rpc)).includes('alpha-1b-instruct-w8a8') && (await harness.rpc.request('rkllm_is_running', { handle: 'alpha-1b-instruct-w8a8' })).result?.running === true, 10_000, 10);
    const next = ask(harness.openai, 'beta', 'count to 3');
    const [first, second] = await withTimeout(Promise.all([slow, next]), 20_000, 'both answers');
    expect(first.choices[0].message.content).toBe(countTo(15));
    expect(first.choices[0].finish_reason).toBe('stop');
    expect(second.choices[0].message.content).toBe(countTo(3));
    expect(await loadedNames(harness.rpc)).toEqual(['beta-2b-w8a8']);
  });

  it('gives up a load that waits for room when its client goes away', async () => {
    const slow = ask(harness.openai, 'alpha-1b-instruct-w8a8', 'count to 15');
    await waitUntil('alpha running', async () => (await harness.rpc.request('rkllm_is_running', { handle: 'alpha-1b-instruct-w8a8' })).result?.running === true, 10_000, 10);
    const controller = new AbortController();
    const gone = harness.openai.chat.completions.create({ model: 'beta', messages: [{ role: 'user', content: 'hi' }] }, { signal: controller.signal }).catch((caught: unknown) => caught);
    await sleep(100);
    controller.abort();
    expect(await gone).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect((await slow).choices[0].message.content).toBe(countTo(15));
    // Had the load gone on, beta would have taken alpha's slot once alpha was idle.
    await sleep(300);
    expect(await loadedNames(harness.rpc)).toEqual(['alpha-1b-instruct-w8a8']);
  });

  it('finds a file copied in while the server runs', async () => {
    writeModel(dir, 'late-0.5b.rkllm');
    const completion = await ask(harness.openai, 'late-0.5b', 'count to 2');
    expect(completion.choices[0].message.content).toBe('1, 2');
  });

  it('lets rkllm_init take the slot of an idle model loaded on demand', async () => {
    expect((await loadedNames(harness.rpc)).length).toBe(1);
    const init = await harness.rpc.request('rkllm_init', { handle: 'mine', param: { model_path: 'family/beta-2b-w8a8.rkllm' } });
    expect(init.error).toBeUndefined();
    expect(await loadedNames(harness.rpc)).toEqual(['mine']);
    // Now the only slot is a client's: a model loaded on demand cannot take it.
    const refused = await ask(harness.openai, 'alpha-1b-instruct-w8a8', 'hi').catch((caught: unknown) => caught);
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((refused as InstanceType<typeof OpenAI.APIError>).message).toContain('--max-loaded-models');
    expect((await harness.rpc.request('rkllm_destroy', { handle: 'mine' })).error).toBeUndefined();
  });
});

describe('keep-alive', () => {
  it('unloads a model once its keep-alive has passed, and at once with keep_alive 0', async () => {
    const dir = makeTempDir('keep-alive');
    writeModel(dir, 'short.rkllm');
    writeModel(dir, 'instant.rkllm');
    fs.writeFileSync(path.join(dir, 'instant.json'), JSON.stringify({ keep_alive: 0 }));
    const harness = await startOpenAiServer({ model: 'none', args: ['--models-dir', dir, '--keep-alive', '400ms'] });
    try {
      await ask(harness.openai, 'short', 'count to 2');
      expect(await loadedNames(harness.rpc)).toEqual(['short']);
      // Used again within its keep-alive: it stays, and the keep-alive starts again.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await ask(harness.openai, 'short', 'count to 2');
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await loadedNames(harness.rpc)).toEqual(['short']);
      await waitUntil('short unloaded', async () => (await loadedNames(harness.rpc)).length === 0, 5000, 25);

      await ask(harness.openai, 'instant', 'count to 2');
      await waitUntil('instant unloaded', async () => (await loadedNames(harness.rpc)).length === 0, 2000, 10);
      expect(harness.server.logs.filter((log) => log.msg === 'model unloaded').map((log) => [log.handle, log.reason])).toEqual([
        ['short', 'keep-alive ended'],
        ['instant', 'keep-alive ended'],
      ]);
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a config file with two models', () => {
  it('serves both by name and alias, with their own settings, loaded on demand', async () => {
    const dir = makeTempDir('config-models');
    const alphaFile = writeModel(dir, 'alpha.rkllm');
    const config = path.join(dir, 'server.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        runtime: 'sim',
        maxLoadedModels: 2,
        model: [
          { path: alphaFile, name: 'alpha', aliases: ['a', 'first'], max_context_len: 1024, max_new_tokens: 3, keep_alive: '10m' },
          { path: 'sim:instant', name: 'quick', aliases: ['q'], max_context_len: 2048, temperature: 0.5, keep_alive: -1 },
        ],
      }),
    );
    const harness = await startOpenAiServer({ runtime: null, args: ['--config', config] });
    try {
      const models = await harness.openai.models.list();
      expect(models.data).toEqual([
        expect.objectContaining({ id: 'alpha', aliases: ['a', 'first'], context_length: 1024, loaded: false }),
        expect.objectContaining({ id: 'quick', aliases: ['q', 'sim:instant'], context_length: 2048, loaded: false }),
      ]);
      // max_new_tokens 3 from alpha's settings: "1, 2" is three tokens.
      const first = await ask(harness.openai, 'first', 'count to 9');
      expect(first.model).toBe('alpha');
      expect(first.choices[0].message.content).toBe('1, 2');
      const quick = await ask(harness.openai, 'q', 'count to 9');
      expect(quick.model).toBe('quick');
      expect(quick.choices[0].message.content).toBe(countTo(9));
      expect((await listModels(harness.rpc)).map((model) => [model.name, model.loaded, model.keep_alive_ms])).toEqual(
        expect.arrayContaining([
          ['alpha', true, 600_000],
          ['quick', true, -1],
        ]),
      );
      expect(await kvCacheSize(harness.rpc, 'quick')).toBeGreaterThan(0);
      // The bundled sim:instant is the file 'quick' serves: the same model, not a second copy.
      expect((await ask(harness.openai, 'sim:instant', 'count to 2')).model).toBe('quick');
      expect((await loadedNames(harness.rpc)).sort()).toEqual(['alpha', 'quick']);
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('thinking: true asks that model, and only that one, to think first', async () => {
    const dir = makeTempDir('config-thinking');
    const config = path.join(dir, 'server.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        runtime: 'sim',
        model: [
          { path: writeModel(dir, 'thinker.rkllm'), thinking: true },
          { path: writeModel(dir, 'plain.rkllm') },
        ],
      }),
    );
    const harness = await startOpenAiServer({ runtime: null, args: ['--config', config] });
    try {
      // The emulated runtime opens its answer with a <think> block when enable_thinking is set.
      const thought = await ask(harness.openai, 'thinker', 'what is a board?');
      expect(thought.choices[0].message.content).toMatch(/^<think>\n[\s\S]*<\/think>/);
      const plain = await ask(harness.openai, 'plain', 'what is a board?');
      expect(plain.choices[0].message.content).not.toContain('<think>');
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a tool-call format the server cannot read, naming the setting', async () => {
    const dir = makeTempDir('config-tool-format');
    const config = path.join(dir, 'server.json');
    fs.writeFileSync(config, JSON.stringify({ runtime: 'sim', model: { path: 'sim:instant', tool_call_format: 'llama3-json' } }));
    const result = await runCli(['--config', config, '--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('tool_call_format');
  });

  it('names a mistake inside a model of the file', async () => {
    const dir = makeTempDir('config-bad');
    const config = path.join(dir, 'server.json');
    fs.writeFileSync(config, JSON.stringify({ runtime: 'sim', model: [{ path: 'sim:instant' }, { path: 'sim:instant', max_ctx: 4096 }] }));
    const result = await runCli(['--config', config, '--disable-stdio', '--disable-tcp', '--disable-udp', '--disable-ws']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('model[1].max_ctx is not a model setting');
    expect(result.stderr).toContain('max_context_len');
  });
});
