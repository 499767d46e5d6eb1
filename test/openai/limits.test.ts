// Honest limits on the OpenAI routes, with the official SDK against the real server: an answer cut
// by the model's max_new_tokens or by a full context says finish_reason "length" and keeps its
// text; a conversation too long for the context is refused with OpenAI's 400
// context_length_exceeded (the numbers and the settings to change), or, with truncation
// 'drop_oldest', has its oldest turns dropped so a long chat goes on.

import * as fs from 'fs';
import OpenAI, { APIError } from 'openai';
import { countTo, makeTempDir, stopAllServers } from '../integration/client';
import { kvCacheSize, startOpenAiServer, type OpenAiServer } from './helpers';

jest.setTimeout(30_000);

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** Loads sim:instant under `handle` with the given RKLLMParam members, through JSON-RPC rkllm_init. */
async function load(harness: OpenAiServer, handle: string, param: Record<string, unknown>): Promise<void> {
  const reply = await harness.rpc.request('rkllm_init', { param: { model_path: 'sim:instant', ...param }, handle });
  if (reply.error) throw new Error(`rkllm_init ${handle}: ${JSON.stringify(reply.error)}`);
}

async function refusal(promise: Promise<unknown>): Promise<APIError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof APIError)) throw new Error(`expected an API error, got ${String(error)}`);
  return error;
}

const SYSTEM = 'You are a helpful assistant on a small board. Answer in one short sentence, and count when asked.';

describe.each(['1.2', '1.3'] as const)('honest limits on ABI %s', (abi) => {
  let harness: OpenAiServer;

  beforeAll(async () => {
    harness = await startOpenAiServer({ args: ['--runtime-abi', abi] });
    await load(harness, 'short', { max_new_tokens: 5 });
    await load(harness, 'small', { max_context_len: 96, max_new_tokens: 0 });
  });

  afterAll(async () => {
    await harness?.rpc.close();
    await stopAllServers();
  });

  it('says "length" when the model\'s max_new_tokens cut the answer, "stop" when it ended', async () => {
    const cut = await harness.openai.chat.completions.create({ model: 'short', messages: [{ role: 'user', content: 'count to 20' }] });
    // "1" "," " 2" "," " 3": five tokens.
    expect(cut.choices[0].message.content).toBe('1, 2, 3');
    expect(cut.choices[0].finish_reason).toBe('length');
    const ended = await harness.openai.chat.completions.create({ model: 'short', messages: [{ role: 'user', content: 'count to 2' }] });
    expect(ended.choices[0].message.content).toBe('1, 2');
    expect(ended.choices[0].finish_reason).toBe('stop');
    const completion = await harness.openai.completions.create({ model: 'short', prompt: 'count to 20' });
    expect(completion.choices[0]).toMatchObject({ text: '1, 2, 3', finish_reason: 'length' });
  });

  it('keeps the text of an answer that fills the context, with "length", streamed or not', async () => {
    const whole = await harness.openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'count to 500' }] });
    const text = whole.choices[0].message.content ?? '';
    expect(whole.choices[0].finish_reason).toBe('length');
    expect(text.length).toBeGreaterThan(20);
    expect(countTo(500).startsWith(text)).toBe(true);

    const stream = await harness.openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'count to 500' }], stream: true });
    let streamed = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length');
    expect(streamed).toBe(text);

    // Text held back as the possible start of a stop sequence (here the answer's last three
    // characters, which the stop sequence begins with) is part of the answer too.
    const stop = `${text.slice(-3)}#`;
    const held = await harness.openai.chat.completions.create({ model: 'small', stop: [stop], messages: [{ role: 'user', content: 'count to 500' }] });
    expect(held.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: text } });
  });

  it('refuses a conversation the context cannot hold with 400 context_length_exceeded, naming the numbers and the settings', async () => {
    const error = await refusal(
      harness.openai.chat.completions.create({ model: 'small', messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'tell me a story '.repeat(40) }] }),
    );
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.param).toBe('messages');
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toMatch(/maximum context length is 96 tokens/);
    expect(error.message).toMatch(/about \d+ tokens/);
    expect(error.message).toMatch(/--ctx-size/);
    expect(error.message).toMatch(/drop_oldest/);
  });

  it('refuses, as OpenAI does, a prompt that leaves less room than max_tokens asks for', async () => {
    const error = await refusal(harness.openai.chat.completions.create({ model: 'small', max_tokens: 90, messages: [{ role: 'user', content: 'count to 5 for me, please, slowly' }] }));
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.message).toMatch(/90 are asked for the completion/);
  });

  it('answers a prompt the runtime itself finds too long (the estimate missed) with the same 400, not a 500', async () => {
    // Punctuation is a token per byte in the emulated tokenizer: far more tokens than its bytes suggest.
    const error = await refusal(harness.openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: '!'.repeat(110) }] }));
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.message).toMatch(/maximum context length is 96 tokens/);
    // Not broken: the next request on the model is answered.
    const next = await harness.openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'count to 3' }] });
    expect(next.choices[0].message.content).toBe('1, 2, 3');
  });

  it('a chat refused for its length goes on once the client drops old turns: the model is not stuck', async () => {
    const messages: Message[] = [{ role: 'system', content: 'Count.' }];
    let refused: APIError | undefined;
    for (let turn = 1; turn <= 12 && !refused; turn += 1) {
      messages.push({ role: 'user', content: `count to ${turn + 3}` });
      try {
        const reply = await harness.openai.chat.completions.create({ model: 'small', messages });
        messages.push({ role: 'assistant', content: reply.choices[0].message.content ?? '' });
      } catch (error) {
        refused = error as APIError;
      }
    }
    expect(refused?.code).toBe('context_length_exceeded');
    const shortened: Message[] = [messages[0], messages[messages.length - 1]];
    const reply = await harness.openai.chat.completions.create({ model: 'small', messages: shortened });
    expect(reply.choices[0].finish_reason).toBe('stop');
  });
});

describe("truncation 'drop_oldest'", () => {
  let harness: OpenAiServer;
  let dir: string;

  beforeAll(async () => {
    dir = makeTempDir('truncation');
    // --truncation is a default of every model, rkllm_init's among them.
    harness = await startOpenAiServer({ args: ['--runtime-abi', '1.3', '--truncation', 'drop_oldest'] });
    await load(harness, 'small', { max_context_len: 160, max_new_tokens: 40 });
  });

  afterAll(async () => {
    await harness?.rpc.close();
    await stopAllServers();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('carries a long chat with a system prompt far past the context, turn after turn', async () => {
    const messages: Message[] = [{ role: 'system', content: SYSTEM }];
    for (let turn = 1; turn <= 14; turn += 1) {
      messages.push({ role: 'user', content: `count to ${(turn % 6) + 3}` });
      const reply = await harness.openai.chat.completions.create({ model: 'small', messages });
      const content = reply.choices[0].message.content ?? '';
      expect(reply.choices[0].finish_reason).toBe('stop');
      // A count (the emulated model answers the first "count to N" of its prompt, which holds
      // the kept turns too), and never a run past the context.
      expect(content).toMatch(/^1(, \d+)+$/);
      messages.push({ role: 'assistant', content });
      expect(await kvCacheSize(harness.rpc, 'small')).toBeLessThanOrEqual(160);
    }
  });

  it('still refuses a last message that cannot fit alone, saying so', async () => {
    const error = await refusal(harness.openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'tell me a story '.repeat(60) }] }));
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.message).toMatch(/last message alone/);
  });
});
