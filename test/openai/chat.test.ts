// The OpenAI chat API driven with the official SDK against the real server on the emulated 1.3
// runtime (sim:instant): answers, streaming, tool calls, KV cache reuse across turns, stop and
// max_tokens, and /v1/completions.

import type OpenAI from 'openai';
import { countTo, stopAllServers } from '../integration/client';
import { kvCacheSize, startOpenAiServer, type OpenAiServer } from './helpers';

jest.setTimeout(30_000);

const WEATHER_TOOL: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

let harness: OpenAiServer;

beforeAll(async () => {
  harness = await startOpenAiServer({ args: ['--runtime-abi', '1.3'] });
});

afterAll(async () => {
  await harness?.rpc.close();
  await stopAllServers();
});

describe('the OpenAI chat API', () => {
  it('lists the loaded models by handle', async () => {
    const models = await harness.openai.models.list();
    expect(models.data.map((model) => model.id)).toEqual(['default']);
  });

  it('answers a chat with the text and usage from the run', async () => {
    const completion = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 5' }],
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0].message).toMatchObject({ role: 'assistant', content: countTo(5) });
    expect(completion.choices[0].finish_reason).toBe('stop');
    // "1, 2, 3, 4, 5" is 9 tokens; the prompt's count is the runtime's prefill_tokens.
    expect(completion.usage).toMatchObject({ completion_tokens: 9 });
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + 9);
  });

  it('streams chat.completion.chunk deltas that join to the exact text', async () => {
    const stream = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 10' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let deltas = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta.content) {
        text += choice.delta.content;
        deltas += 1;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    expect(text).toBe(countTo(10));
    expect(deltas).toBeGreaterThan(1);
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(deltas);
  });

  it('answers a tool call as tool_calls, then the tool result on the same cache', async () => {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: 'user', content: 'What does get_weather say for Paris?' },
    ];
    const first = await harness.openai.chat.completions.create({ model: 'default', messages, tools: [WEATHER_TOOL] });
    const choice = first.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0];
    expect(call.type).toBe('function');
    if (call.type !== 'function') throw new Error('expected a function call');
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{}' });
    expect(call.id).toMatch(/^call_/);

    const cacheAfterCall = await kvCacheSize(harness.rpc);
    messages.push(choice.message, { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' });
    const second = await harness.openai.chat.completions.create({ model: 'default', messages, tools: [WEATHER_TOOL] });
    // The emulated model's answer to a role "tool" input.
    expect(second.choices[0].message.content).toBe('The tool answered "sunny, 21 C", and that settles it.');
    expect(second.choices[0].finish_reason).toBe('stop');
    // Only the tool message was read: the cache grew by exactly this run's tokens.
    expect(await kvCacheSize(harness.rpc)).toBe(cacheAfterCall + second.usage!.prompt_tokens + second.usage!.completion_tokens);
  });

  it('streams a tool call as tool_calls deltas', async () => {
    const stream = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'call get_weather please' }],
      tools: [WEATHER_TOOL],
      stream: true,
    });
    const names: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) if (call.function?.name) names.push(call.function.name);
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    }
    expect(names).toEqual(['get_weather']);
    expect(finish).toBe('tool_calls');
  });

  it('continues a conversation on the KV cache, and starts a different one clean', async () => {
    const firstMessages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'You count.' },
      { role: 'user', content: 'count to 3' },
    ];
    const first = await harness.openai.chat.completions.create({ model: 'default', messages: firstMessages });
    expect(first.choices[0].message.content).toBe(countTo(3));
    const afterFirst = await kvCacheSize(harness.rpc);
    // A fresh start: the cache holds this run only (system text, prompt, answer).
    expect(afterFirst).toBe(first.usage!.prompt_tokens + first.usage!.completion_tokens);

    const secondMessages = [...firstMessages, first.choices[0].message, { role: 'user' as const, content: 'count to 5' }];
    const second = await harness.openai.chat.completions.create({ model: 'default', messages: secondMessages });
    expect(second.choices[0].message.content).toBe(countTo(5));
    const afterSecond = await kvCacheSize(harness.rpc);
    // Grown, not reset: only the new user turn was prefilled (no system text, no history).
    expect(afterSecond).toBe(afterFirst + second.usage!.prompt_tokens + second.usage!.completion_tokens);
    expect(second.usage!.prompt_tokens).toBeLessThan(first.usage!.prompt_tokens);

    const third = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [...secondMessages, second.choices[0].message, { role: 'user', content: 'count to 2' }],
    });
    expect(third.choices[0].message.content).toBe(countTo(2));
    expect(await kvCacheSize(harness.rpc)).toBe(afterSecond + third.usage!.prompt_tokens + third.usage!.completion_tokens);

    // An edited history does not extend the cached conversation: the cache is cleared first.
    const other = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 4' }],
    });
    expect(other.choices[0].message.content).toBe(countTo(4));
    expect(await kvCacheSize(harness.rpc)).toBe(other.usage!.prompt_tokens + other.usage!.completion_tokens);
  });

  it('starts clean when a JSON-RPC client changed the cache in between', async () => {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'count to 3' }];
    const first = await harness.openai.chat.completions.create({ model: 'default', messages });
    const rpcRun = await harness.rpc.request('rkllm_run', {
      handle: 'default',
      input_type: 0,
      prompt_input: 'echo: hi',
      rkllm_infer_params: { mode: 0, keep_history: 1 },
    });
    expect(rpcRun.result?.text).toBe('hi');
    const second = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [...messages, first.choices[0].message, { role: 'user', content: 'count to 2' }],
    });
    // The earlier turns went in again as a transcript, on an emptied cache.
    expect(await kvCacheSize(harness.rpc)).toBe(second.usage!.prompt_tokens + second.usage!.completion_tokens);
  });

  it('cuts the answer at a stop sequence, streamed or not', async () => {
    const plain = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 20' }],
      stop: [', 7', 'never'],
    });
    expect(plain.choices[0].message.content).toBe(countTo(6));
    expect(plain.choices[0].finish_reason).toBe('stop');

    const stream = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 20' }],
      stop: ', 7',
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(countTo(6));
  });

  it('honours max_tokens with finish_reason length', async () => {
    const completion = await harness.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 20' }],
      max_tokens: 5,
      temperature: 0.2,
      top_p: 0.5,
      seed: 7,
    });
    // 5 tokens: "1" "," " 2" "," " 3".
    expect(completion.choices[0].message.content).toBe(countTo(3));
    expect(completion.choices[0].finish_reason).toBe('length');
    expect(completion.usage!.completion_tokens).toBe(5);
  });

  it('answers /v1/completions for a plain prompt, streamed or not', async () => {
    const completion = await harness.openai.completions.create({ model: 'default', prompt: 'echo: plain prompt' });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0].text).toBe('plain prompt');
    // A completion leaves the cache empty (keep_history 0).
    expect(await kvCacheSize(harness.rpc)).toBe(0);

    const stream = await harness.openai.completions.create({ model: 'default', prompt: 'count to 7', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(countTo(7));
  });
});

describe('the OpenAI chat API on the 1.2 ABI', () => {
  let older: OpenAiServer;

  beforeAll(async () => {
    older = await startOpenAiServer({ args: ['--runtime-abi', '1.2'], disable: ['stdio', 'tcp', 'udp', 'websocket'] });
  });

  afterAll(async () => {
    await older?.rpc.close();
  });

  it('enforces max_tokens on the server and accepts (ignores) the sampling members', async () => {
    const completion = await older.openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'count to 20' }],
      max_tokens: 5,
      temperature: 0.1,
      presence_penalty: 1,
    });
    expect(completion.choices[0].message.content).toBe(countTo(3));
    expect(completion.choices[0].finish_reason).toBe('length');
  });
});
