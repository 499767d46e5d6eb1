// rkllm_chat, the chat API over JSON-RPC (lib/methods/chat.ts), against the real server on the
// emulated 1.3 runtime through the project's own clients (lib/client) over TCP and WebSocket:
// two users taking turns each get their conversation back from a prompt cache, the answers are
// those /v1/chat/completions gives for the same messages on the same server, a stream's
// notifications come before the result, bad params are refused naming the field, and a closed
// connection or a cancel by request id stops the run.

import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startOpenAiServer, type OpenAiServer } from '../openai/helpers';
import { HttpClient, STATE, ServerProcess, TcpClient, WsClient, stopAllServers, waitUntil, type MessageClient, type RpcMessage } from './client';

jest.setTimeout(60_000);

type Message = { role: 'system' | 'user' | 'assistant' | 'tool'; content: string | null; tool_calls?: unknown[] };

interface ChatResult {
  model: string;
  message: { role: 'assistant'; content: string | null; tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[] };
  finish_reason: string;
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens: number };
}

const SYSTEM: Message = { role: 'system', content: 'You are a helpful assistant.' };

function words(count: number, stem: string): string {
  return Array.from({ length: count }, (_, index) => `${stem}${index}`).join(' ');
}

async function chat(client: MessageClient | HttpClient, params: Record<string, unknown>): Promise<ChatResult> {
  const reply = await client.request('rkllm_chat', params, { timeoutMs: 20_000 });
  if (reply.error) throw new Error(`rkllm_chat failed: ${JSON.stringify(reply.error)}`);
  return reply.result as ChatResult;
}

async function refusal(client: MessageClient, params: unknown): Promise<NonNullable<RpcMessage['error']>> {
  const reply = await client.request('rkllm_chat', params);
  if (!reply.error) throw new Error(`rkllm_chat was not refused: ${JSON.stringify(reply.result)}`);
  return reply.error;
}

/** One user's conversation over one client: each turn sends the history so far plus a new message. */
class Conversation {
  readonly history: Message[] = [SYSTEM];
  readonly turns: { sent: Message[]; result: ChatResult }[] = [];

  constructor(
    readonly name: string,
    readonly client: MessageClient,
  ) {}

  async say(text: string): Promise<ChatResult> {
    this.history.push({ role: 'user', content: text });
    const sent = [...this.history];
    const result = await chat(this.client, { model: 'default', messages: sent });
    this.history.push({ role: 'assistant', content: result.message.content });
    this.turns.push({ sent, result });
    return result;
  }
}

let root: string;
let harness: OpenAiServer;
let tcp: TcpClient;
let ws: WsClient;

beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'rkllm-chat-'));
  harness = await startOpenAiServer({ args: ['--runtime-abi', '1.3', '--max-new-tokens', '16', '--prompt-cache-dir', path.join(root, 'caches')] });
  tcp = await TcpClient.connect(harness.server.port('tcp'));
  ws = await WsClient.connect(harness.server.port('websocket'));
});

afterAll(async () => {
  await tcp?.close();
  await ws?.close();
  await harness?.rpc.close();
  await stopAllServers();
  await fsp.rm(root, { recursive: true, force: true });
});

describe('rkllm_chat', () => {
  it('gives two interleaved users their conversation back from a prompt cache, with the answers of /v1', async () => {
    const users = [new Conversation('a', tcp), new Conversation('b', ws)];
    for (let turn = 1; turn <= 3; turn++) {
      for (const user of users) await user.say(`${user.name} turn ${turn}: ${words(20, user.name)}`);
    }
    for (const user of users) {
      const [first, second, third] = user.turns.map((turn) => turn.result);
      expect(first.usage.cached_tokens).toBe(0);
      // Each later turn loads the cache the turn before saved: that turn's whole prompt.
      expect(second.usage.cached_tokens).toBe(first.usage.prompt_tokens);
      expect(third.usage.cached_tokens).toBe(second.usage.prompt_tokens);
      for (const { result } of user.turns) {
        expect(result.model).toBe('default');
        expect(result.message.role).toBe('assistant');
        expect(result.message.content).not.toBe('');
        expect(result.usage.completion_tokens).toBeGreaterThan(0);
      }
    }
    // The same requests in the same order through the OpenAI route of the same server: the same
    // answers. (The order matters: the emulated runtime seeds an answer with the text it is given,
    // which is the whole conversation here, but only the new message on the KV fast path.)
    for (let turn = 0; turn < 3; turn++) {
      for (const user of users) {
        const { sent, result } = user.turns[turn];
        const completion = await harness.openai.chat.completions.create({ model: 'default', messages: sent as never });
        expect(completion.choices[0].message.content).toBe(result.message.content);
        expect(completion.choices[0].finish_reason).toBe(result.finish_reason);
        expect(completion.usage?.completion_tokens).toBe(result.usage.completion_tokens);
      }
    }
  });

  it('streams the tokens as rkllm_result notifications, the last one before the result', async () => {
    const messages = [SYSTEM, { role: 'user', content: 'count to 12' }];
    const plain = await chat(tcp, { messages, max_tokens: 40 });
    expect(plain.message.content).toBe('1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12');
    for (const client of [tcp, ws]) {
      const outcome = await client.stream('rkllm_chat', { messages, max_tokens: 40, stream: true });
      expect(outcome.chunks.length).toBeGreaterThan(2);
      outcome.chunks.forEach(({ chunk }, index) => expect(chunk.seq).toBe(index));
      expect(outcome.final).toMatchObject({ state: STATE.FINISH, token_id: -1 });
      expect(outcome.final?.perf).toBeDefined();
      expect(outcome.final).toBe(outcome.chunks[outcome.chunks.length - 1].chunk);
      expect(outcome.response?.result).toMatchObject({ message: { role: 'assistant', content: plain.message.content }, finish_reason: plain.finish_reason });
      expect(outcome.text).toBe(plain.message.content);
      // On the wire: every notification of the stream, then the reply.
      const order = client.received.map(({ message }) => message);
      const replyAt = order.findIndex((message) => message.method === undefined && message.id === outcome.id);
      const lastChunkAt = order.map((message) => message.method === 'rkllm_result' && message.params?.request_id === outcome.id).lastIndexOf(true);
      expect(lastChunkAt).toBeGreaterThanOrEqual(0);
      expect(replyAt).toBeGreaterThan(lastChunkAt);
    }
    // Plain HTTP cannot be pushed to: the answer alone, as if stream were false.
    const http = await chat(harness.rpc, { messages, max_tokens: 40, stream: true });
    expect(http.message.content).toBe(plain.message.content);
    // HTTP with an event stream is pushed to: the notifications, then the reply as the last event.
    const sse = await harness.rpc.sse(JSON.stringify({ jsonrpc: '2.0', id: 'sse-1', method: 'rkllm_chat', params: { messages, max_tokens: 40, stream: true } }));
    const events = sse.events.map((event) => event.json as RpcMessage);
    const tokens = events.filter((event) => event.method === 'rkllm_result');
    expect(tokens.map((event) => event.params.text).join('')).toBe(plain.message.content);
    expect(tokens[tokens.length - 1].params).toMatchObject({ state: STATE.FINISH });
    expect(events[events.length - 1]).toMatchObject({ id: 'sse-1', result: { message: { content: plain.message.content } } });
  });

  it('ends the stream where max_tokens ends the answer, whether the runtime or the server cuts it', async () => {
    // ABI 1.2 has no per-run max_new_tokens: the server ends the answer itself, inside a batch of tokens.
    const old = await ServerProcess.start({ disable: ['stdio', 'udp', 'http'], args: ['--runtime-abi', '1.2', '--max-new-tokens', '16'] });
    const oldClient = await TcpClient.connect(old.port('tcp'));
    try {
      for (const client of [tcp, oldClient]) {
        const outcome = await client.stream('rkllm_chat', { messages: [{ role: 'user', content: 'count to 100' }], max_tokens: 5, stream: true });
        const result = outcome.response?.result as ChatResult;
        expect(result).toMatchObject({ message: { content: '1, 2, 3' }, finish_reason: 'length', usage: { completion_tokens: 5 } });
        // Five tokens, then the last chunk: nothing of what the runtime wrote past the answer.
        expect(outcome.chunks.length).toBe(6);
        expect(outcome.text).toBe(result.message.content);
      }
    } finally {
      await oldClient.close();
      await old.stop();
    }
  });

  it("ends an answer that meets the model's context with length, in the stream as in the result", async () => {
    const small = await ServerProcess.start({ disable: ['stdio', 'udp', 'http', 'websocket'], args: ['--runtime-abi', '1.3', '--ctx-size', '64', '--max-new-tokens', '1000'] });
    const client = await TcpClient.connect(small.port('tcp'));
    try {
      // No max_tokens: nothing is kept free for the answer, which runs until the context is full.
      const outcome = await client.stream('rkllm_chat', { messages: [{ role: 'user', content: 'count to 100' }], stream: true });
      const result = outcome.response?.result as ChatResult;
      expect(result.finish_reason).toBe('length');
      expect(result.message.content).toMatch(/^1, 2, 3, /);
      expect(outcome.text).toBe(result.message.content);
      // Not the runtime's error: the answer ended there.
      expect(outcome.final).toMatchObject({ state: STATE.FINISH, token_id: -1 });
      expect(outcome.final?.error).toBeUndefined();
    } finally {
      await client.close();
      await small.stop();
    }
  });

  it('answers tool calls as OpenAI messages and goes on from the tool result, as /v1 does', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const messages: Message[] = [{ role: 'user', content: 'What is the weather in Paris? get_weather' }];
    // Room for the whole call (the server's --max-new-tokens is 16).
    const first = await chat(tcp, { messages, tools, max_tokens: 100 });
    expect(first.finish_reason).toBe('tool_calls');
    expect(first.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '{}' } }]);
    // The tool's answer sent back: the model goes on from it (on the KV cache the call left).
    const next: Message[] = [...messages, { role: 'assistant', content: first.message.content, tool_calls: first.message.tool_calls }, { role: 'tool', content: 'sunny, 21 degrees' }];
    const second = await chat(tcp, { messages: next, tools, max_tokens: 100 });
    expect(second).toMatchObject({ finish_reason: 'stop', message: { content: 'The tool answered "sunny, 21 degrees", and that settles it.' } });
    // The same two requests through /v1, in the same order: the same answers.
    const completions = [];
    for (const sent of [messages, next]) {
      completions.push(await harness.openai.chat.completions.create({ model: 'default', messages: sent as never, tools: tools as never, max_tokens: 100 }));
    }
    expect(completions.map((completion) => completion.choices[0].finish_reason)).toEqual([first.finish_reason, second.finish_reason]);
    expect(completions.map((completion) => completion.choices[0].message.content)).toEqual([first.message.content, second.message.content]);
    expect(completions[0].choices[0].message.tool_calls?.map((call) => (call as { function: unknown }).function)).toEqual(first.message.tool_calls?.map((call) => call.function));
  });

  it('refuses bad params naming the field as the client wrote it', async () => {
    const user = { role: 'user', content: 'hi' };
    expect(await refusal(tcp, {})).toMatchObject({ code: -32602, data: { field: 'messages' } });
    expect(await refusal(tcp, { messages: [] })).toMatchObject({ code: -32602, data: { field: 'messages' } });
    expect(await refusal(tcp, { messages: [user], bogus: 1 })).toMatchObject({ code: -32602, data: { field: 'bogus' } });
    expect(await refusal(tcp, { messages: [user, { role: 'robot', content: 'x' }] })).toMatchObject({ code: -32602, data: { field: 'messages[1].role' } });
    expect(await refusal(tcp, { messages: [{ role: 'user', content: 7 }] })).toMatchObject({ code: -32602, data: { field: 'messages[0].content' } });
    expect(await refusal(tcp, { messages: [{ ...user, colour: 'red' }] })).toMatchObject({ code: -32602, data: { field: 'messages[0].colour' } });
    expect(await refusal(tcp, { messages: [user], temperature: 3 })).toMatchObject({ code: -32602, data: { field: 'temperature' } });
    expect(await refusal(tcp, { messages: [user], max_tokens: 0 })).toMatchObject({ code: -32602, data: { field: 'max_tokens' } });
    expect(await refusal(tcp, { messages: [user], tools: [{ type: 'function', function: { name: '' } }] })).toMatchObject({
      code: -32602,
      data: { field: 'tools[0].function.name' },
    });
    expect(await refusal(tcp, { messages: [user, { role: 'assistant', content: 'hello' }] })).toMatchObject({ code: -32602, data: { field: 'messages' } });
    expect(await refusal(tcp, { messages: [SYSTEM] })).toMatchObject({ code: -32602, data: { field: 'messages' } });
    expect(await refusal(tcp, { model: 'no-such-model', messages: [user] })).toMatchObject({ code: -32003, data: { handle: 'no-such-model' } });
    const tooLong = await refusal(tcp, { messages: [{ role: 'user', content: words(3000, 'long') }], max_tokens: 16 });
    expect(tooLong).toMatchObject({ code: -32025, data: { truncation: 'refuse' } });
    // Nothing refused disturbed the model.
    expect((await chat(tcp, { messages: [{ role: 'user', content: 'count to 3' }] })).message.content).toBe('1, 2, 3');
  });

  it('stops the run when its connection closes, and on cancel by request id', async () => {
    // A model paced like a board's (16.7 tokens/s), loaded on demand by name: this answer would take minutes.
    const model = 'sim:rk3588-qwen2.5-1.5b';
    const long = { model, messages: [{ role: 'user', content: 'count to 1000' }], max_tokens: 4000, stream: true };
    const isRunning = async () => (await tcp.request('rkllm_is_running', { handle: model })).result.running as boolean;

    const closing = await TcpClient.connect(harness.server.port('tcp'));
    closing.send({ jsonrpc: '2.0', id: 'long-1', method: 'rkllm_chat', params: long });
    await closing.waitFor('the first token', (message) => message.method === 'rkllm_result' && message.params?.request_id === 'long-1', 20_000);
    expect(await isRunning()).toBe(true);
    closing.drop();
    await waitUntil('the run to stop after the close', async () => !(await isRunning()), 2000);

    const id = 'long-2';
    ws.send({ jsonrpc: '2.0', id, method: 'rkllm_chat', params: long });
    await ws.waitFor('the first token', (message) => message.method === 'rkllm_result' && message.params?.request_id === id);
    expect((await ws.request('cancel', { request_id: id })).result).toEqual({ cancelled: true });
    const last = await ws.waitFor('the last chunk', (message) => message.method === 'rkllm_result' && message.params?.request_id === id && message.params?.aborted === true);
    expect(last.params).toMatchObject({ state: STATE.FINISH, aborted: true, reason: 'cancel' });
    expect((await ws.waitForReply(id)).error).toMatchObject({ code: -32009 });
    await waitUntil('the run to stop after the cancel', async () => !(await isRunning()), 2000);
    // The model answers the next request.
    expect((await chat(ws, { model, messages: [{ role: 'user', content: 'count to 2' }] })).message.content).toBe('1, 2');
    // Two models loaded now: a chat that names none is refused, naming the member.
    expect(await refusal(ws, { messages: [{ role: 'user', content: 'count to 2' }] })).toMatchObject({ code: -32602, data: { field: 'model' } });
  });
});
