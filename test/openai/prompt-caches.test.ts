// Prompt caches across conversations (lib/core/prompt-caches.ts), through the official openai and ollama
// client against the real server on the emulated 1.3 runtime: interleaved users and side
// requests load their conversation's cache, a regenerate or an edit starts from the cached
// prefix, the byte budget holds, a corrupt or vanished file means a full prefill, another
// model's cache is refused, and in every case the answers are those of a server without caches.

import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Ollama, type Message as OllamaMessage } from 'ollama';
import type OpenAI from 'openai';
import { stopAllServers } from '../integration/client';
import { startOpenAiServer, type OpenAiServer } from './helpers';

jest.setTimeout(60_000);

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

interface Turn {
  content: string;
  promptTokens: number;
  cachedTokens: number;
}

const SYSTEM: Message = { role: 'system', content: 'You are a helpful assistant.' };

function words(count: number, stem: string): string {
  return Array.from({ length: count }, (_, index) => `${stem}${index}`).join(' ');
}

async function chat(harness: OpenAiServer, messages: Message[]): Promise<Turn> {
  const completion = await harness.openai.chat.completions.create({ model: 'default', messages });
  const usage = completion.usage!;
  return {
    content: completion.choices[0].message.content ?? '',
    promptTokens: usage.prompt_tokens,
    cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? -1,
  };
}

/** One user's conversation: each turn sends the history so far plus a new message, and keeps the answer. */
class Conversation {
  readonly history: Message[] = [SYSTEM];
  readonly turns: Turn[] = [];

  constructor(readonly name: string) {}

  async say(harness: OpenAiServer, text: string): Promise<Turn> {
    this.history.push({ role: 'user', content: text });
    const turn = await chat(harness, this.history);
    this.history.push({ role: 'assistant', content: turn.content });
    this.turns.push(turn);
    return turn;
  }
}

async function cacheFiles(dir: string): Promise<{ file: string; size: number }[]> {
  const found: { file: string; size: number }[] = [];
  const walk = async (at: string): Promise<void> => {
    for (const entry of await fsp.readdir(at, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.name.endsWith('.cache')) found.push({ file: full, size: (await fsp.stat(full)).size });
    }
  };
  await walk(dir);
  return found;
}

/** The newest cache file (files are numbered in the order they were saved). */
async function newestCacheFile(dir: string): Promise<string> {
  const files = await cacheFiles(dir);
  files.sort((a, b) => Number(path.basename(b.file, '.cache')) - Number(path.basename(a.file, '.cache')));
  if (files.length === 0) throw new Error(`no prompt cache file under ${dir}`);
  return files[0].file;
}

async function until(what: string, check: () => Promise<boolean>, boundMs = 5000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ARGS = ['--runtime-abi', '1.3', '--max-new-tokens', '16'];
let root: string;
let cached: OpenAiServer;
let reference: OpenAiServer;
let cacheDir: string;

beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'rkllm-prompt-caches-'));
  cacheDir = path.join(root, 'cached');
  cached = await startOpenAiServer({ args: [...ARGS, '--prompt-cache-dir', cacheDir] });
  // The same requests on a server without prompt caches: what every answer must be.
  reference = await startOpenAiServer({ args: [...ARGS, '--prompt-cache-bytes', '0', '--prompt-cache-dir', path.join(root, 'reference')] });
});

afterAll(async () => {
  await cached?.rpc.close();
  await reference?.rpc.close();
  await stopAllServers();
  await fsp.rm(root, { recursive: true, force: true });
});

describe('prompt caches', () => {
  it('let interleaved users reload their own conversation instead of prefilling it again, with the same answers', async () => {
    const users = ['a', 'b', 'c'].map((name) => new Conversation(name));
    const mirrors = ['a', 'b', 'c'].map((name) => new Conversation(name));
    for (let turn = 1; turn <= 3; turn++) {
      for (let index = 0; index < users.length; index++) {
        const text = `${users[index].name} turn ${turn}: ${words(20, users[index].name)}`;
        const got = await users[index].say(cached, text);
        const expected = await mirrors[index].say(reference, text);
        expect(got.content).toBe(expected.content);
        expect(expected.cachedTokens).toBe(0);
      }
    }
    for (const user of users) {
      expect(user.turns[0].cachedTokens).toBe(0);
      // Each later turn loads the cache the turn before saved: its whole prompt.
      expect(user.turns[1].cachedTokens).toBe(user.turns[0].promptTokens);
      expect(user.turns[2].cachedTokens).toBe(user.turns[1].promptTokens);
    }
  });

  it('serve the Ollama API alike: its prompt_eval_count leaves out what a cache held', async () => {
    const clients = [cached, reference].map((harness) => new Ollama({ host: `http://127.0.0.1:${harness.server.port('http')}` }));
    const histories = clients.map(() => new Map<string, OllamaMessage[]>());
    const counts = clients.map(() => new Map<string, number[]>());
    for (let turn = 1; turn <= 2; turn++) {
      for (const user of ['o', 'p']) {
        const text = `${user} ollama turn ${turn}: ${words(20, user)}`;
        const answers: string[] = [];
        for (let side = 0; side < 2; side++) {
          const history = histories[side].get(user) ?? [{ role: 'system', content: 'You are a helpful assistant.' }];
          history.push({ role: 'user', content: text });
          const reply = await clients[side].chat({ model: 'default', messages: history, stream: false });
          history.push({ role: 'assistant', content: reply.message.content });
          histories[side].set(user, history);
          counts[side].set(user, [...(counts[side].get(user) ?? []), reply.prompt_eval_count]);
          answers.push(reply.message.content);
        }
        expect(answers[0]).toBe(answers[1]);
      }
    }
    for (const user of ['o', 'p']) {
      const [withCaches, without] = [counts[0].get(user)!, counts[1].get(user)!];
      expect(withCaches[0]).toBe(without[0]);
      // Turn 2 evaluated only what follows turn 1's whole prompt.
      expect(withCaches[1]).toBe(without[1] - without[0]);
    }
  });

  it('keep a conversation through side requests between its turns (Open WebUI titles and tags)', async () => {
    const user = new Conversation('d');
    const mirror = new Conversation('d');
    for (let turn = 1; turn <= 3; turn++) {
      const text = `d turn ${turn}: ${words(20, 'd')}`;
      expect((await user.say(cached, text)).content).toBe((await mirror.say(reference, text)).content);
      const side: Message[] = [{ role: 'user', content: `### Task: a title for this chat. ${user.history[1].content as string}` }];
      expect((await chat(cached, side)).content).toBe((await chat(reference, side)).content);
    }
    expect(user.turns[1].cachedTokens).toBe(user.turns[0].promptTokens);
    expect(user.turns[2].cachedTokens).toBe(user.turns[1].promptTokens);
  });

  it('start a regenerate or an edited last message from the cached prefix', async () => {
    const user = new Conversation('e');
    const mirror = new Conversation('e');
    await user.say(cached, `e turn 1: ${words(15, 'e')}`);
    await mirror.say(reference, `e turn 1: ${words(15, 'e')}`);
    await user.say(cached, `e turn 2: ${words(15, 'e')}`);
    await mirror.say(reference, `e turn 2: ${words(15, 'e')}`);
    // Regenerate: the same history again, after the answer is already in the KV cache. Turn 2
    // ran on the KV cache (the fast path saves nothing), so turn 1's cache is the longest prefix.
    const again = await chat(cached, user.history.slice(0, -1));
    expect(again.content).toBe(user.turns[1].content);
    expect(again.cachedTokens).toBe(user.turns[0].promptTokens);
    // That clean start saved its whole prompt: a second regenerate prefills nothing new.
    const twice = await chat(cached, user.history.slice(0, -1));
    expect(twice.content).toBe(user.turns[1].content);
    expect(twice.cachedTokens).toBe(twice.promptTokens);
    // Edit the last message: the cache of the turn before covers everything up to it.
    const edited: Message[] = [...user.history.slice(0, 3), { role: 'user', content: `e turn 2, edited: ${words(10, 'x')}` }];
    const got = await chat(cached, edited);
    expect(got.cachedTokens).toBe(user.turns[0].promptTokens);
    expect(got.content).toBe((await chat(reference, edited)).content);
  });

  it('prefill in full, with the same answer, when a cache file was corrupted or removed', async () => {
    for (const damage of ['overwrite', 'truncate', 'remove'] as const) {
      const user = new Conversation(`f-${damage}`);
      const mirror = new Conversation(`f-${damage}`);
      const first = `f turn 1 ${damage}: ${words(15, 'f')}`;
      await user.say(cached, first);
      await mirror.say(reference, first);
      const file = await newestCacheFile(cacheDir);
      const size = (await fsp.stat(file)).size;
      if (damage === 'overwrite') await fsp.writeFile(file, 'x'.repeat(size));
      else if (damage === 'truncate') await fsp.truncate(file, Math.floor(size / 2));
      else await fsp.rm(file);
      // Another conversation takes the KV cache, so the next turn needs the damaged file.
      await chat(cached, [{ role: 'user', content: `someone else ${damage}` }]);
      const second = `f turn 2 ${damage}: ${words(15, 'f')}`;
      const got = await user.say(cached, second);
      expect(got.cachedTokens).toBe(0);
      expect(got.content).toBe((await mirror.say(reference, second)).content);
    }
    await until('the warnings', async () => cached.server.stderrText.includes('prompt cache dropped: the runtime refused it'));
    expect(cached.server.stderrText).toContain('prompt cache dropped: its file changed size');
    expect(cached.server.stderrText).toContain('prompt cache dropped: its file is gone');
  });
});

describe('the prompt cache byte budget', () => {
  it('is never exceeded; the least recently used cache goes first', async () => {
    const dir = path.join(root, 'budget');
    // Measured first: one short and one long conversation's first-turn caches.
    const probe = await startOpenAiServer({ args: [...ARGS, '--prompt-cache-dir', path.join(dir, 'probe')] });
    const short = `g short: ${words(5, 'g')}`;
    const long = `h long: ${words(60, 'h')}`;
    await chat(probe, [SYSTEM, { role: 'user', content: short }]);
    await until('the short cache', async () => (await cacheFiles(path.join(dir, 'probe'))).length === 1);
    const shortSize = (await cacheFiles(path.join(dir, 'probe')))[0].size;
    await chat(probe, [SYSTEM, { role: 'user', content: long }]);
    await until('the long cache', async () => (await cacheFiles(path.join(dir, 'probe'))).length === 2);
    const longSize = Math.max(...(await cacheFiles(path.join(dir, 'probe'))).map((file) => file.size));
    await probe.rpc.close();
    await probe.server.stop();

    // Room for either, not both.
    const budget = shortSize + longSize - 1;
    const harness = await startOpenAiServer({ args: [...ARGS, '--prompt-cache-dir', path.join(dir, 'small'), '--prompt-cache-bytes', String(budget)] });
    const onDisk = async () => (await cacheFiles(path.join(dir, 'small'))).reduce((sum, file) => sum + file.size, 0);
    const g = new Conversation('g');
    const h = new Conversation('h');
    await g.say(harness, short);
    await until('g saved', async () => (await onDisk()) === shortSize);
    await h.say(harness, long);
    await until('g evicted', async () => (await onDisk()) === longSize);
    expect(await onDisk()).toBeLessThanOrEqual(budget);
    const gTurn = await g.say(harness, `g turn 2: ${words(5, 'g')}`);
    expect(gTurn.cachedTokens).toBe(0);
    await until('the budget kept', async () => (await onDisk()) <= budget);
    const hTurn = await h.say(harness, `h turn 2: ${words(5, 'h')}`);
    expect(await onDisk()).toBeLessThanOrEqual(budget);
    // h's first cache went to make room for g's second one.
    expect(hTurn.cachedTokens).toBe(0);
    await harness.rpc.close();
  });
});

describe('prompt cache files', () => {
  it('of one model are refused by another (JSON-RPC), and go when their model or the server goes', async () => {
    const dir = path.join(root, 'owners');
    const clientCaches = path.join(root, 'client-caches');
    await fsp.mkdir(clientCaches);
    const harness = await startOpenAiServer({ args: [...ARGS, '--prompt-cache-dir', dir, '--cache-dir', clientCaches] });
    const init = await harness.rpc.request('rkllm_init', { handle: 'other', param: { model_path: 'sim:echo-prompt' } });
    expect(init.error).toBeUndefined();
    const run = await harness.rpc.request('rkllm_run', {
      handle: 'default',
      rkllm_input: { input_type: 0, prompt_input: 'remember this' },
      rkllm_infer_params: { mode: 0, keep_history: 0, prompt_cache_params: { save_prompt_cache: 1, prompt_cache_path: 'saved.cache' } },
    });
    expect(run.error).toBeUndefined();
    const refused = await harness.rpc.request('rkllm_load_prompt_cache', { handle: 'other', prompt_cache_path: 'saved.cache' });
    expect(JSON.stringify(refused.error)).toContain('was saved by another model');
    const accepted = await harness.rpc.request('rkllm_load_prompt_cache', { handle: 'default', prompt_cache_path: 'saved.cache' });
    expect(accepted.result).toEqual({ return_code: 0 });

    // The chat API's own caches: one folder per model, removed with it.
    const other = await harness.openai.chat.completions.create({ model: 'other', messages: [{ role: 'user', content: 'hello other' }] });
    expect(other.choices[0].message.content).toBeTruthy();
    await chat(harness, [{ role: 'user', content: 'hello default' }]);
    await until('both saved', async () => (await cacheFiles(dir)).length === 2);
    const destroyed = await harness.rpc.request('rkllm_destroy', { handle: 'other' });
    expect(destroyed.error).toBeUndefined();
    await until('the caches of the other model to go', async () => (await cacheFiles(dir)).length === 1);
    await harness.rpc.close();
    await harness.server.stop();
    expect(await cacheFiles(dir)).toEqual([]);
    expect(await fsp.readdir(dir)).toEqual([]);
  });
});

describe('a runtime that dies in a run that saved a prompt cache', () => {
  it('leaves its model without prompt caches, and the next chats answer', async () => {
    const dir = path.join(root, 'crash');
    // Answers longer than 20 tokens kill the runtime; shorter ones finish.
    const harness = await startOpenAiServer({ model: 'sim:crash-midstream', args: ['--runtime-abi', '1.3', '--prompt-cache-dir', dir] });
    await expect(harness.openai.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'count to 30' }] })).rejects.toThrow();
    await until('the warning', async () => harness.server.stderrText.includes('prompt caches are off for this model'));
    const short = await harness.openai.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'count to 3' }] });
    expect(short.choices[0].message.content).toBe('1, 2, 3');
    expect(await cacheFiles(dir)).toEqual([]);
    await harness.rpc.close();
  });
});
