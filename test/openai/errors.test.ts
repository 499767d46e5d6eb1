// The OpenAI API's failure paths with the official SDK: each error status (400, 401, 404, 429),
// a client that disconnects mid-stream cancelling its run, and the API key on every network
// transport (HTTP and WebSocket by Bearer header, TCP and UDP by an "auth" member).

import OpenAI from 'openai';
import { TcpClient, UdpClient, WsClient, countTo, stopAllServers, waitUntil } from '../integration/client';
import { health, startOpenAiServer, type OpenAiServer } from './helpers';

jest.setTimeout(40_000);

/** Paced like an RK3588 (16.7 tokens/s): "count to 200" takes over 20 s, long enough to interrupt. */
const SLOW_MODEL = 'sim:rk3588-qwen2.5-1.5b';
const LONG_PROMPT = 'count to 200';
const API_KEY = 'test-key-7f3a';

afterAll(async () => {
  await stopAllServers();
});

/** Reads a stream until its first content delta, then aborts the request as a client closing would. */
async function startThenAbort(openai: OpenAI, controller: AbortController): Promise<string> {
  const stream = await openai.chat.completions.create(
    { model: 'default', messages: [{ role: 'user', content: LONG_PROMPT }], stream: true },
    { signal: controller.signal },
  );
  let text = '';
  try {
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (text !== '') controller.abort();
    }
  } catch (error) {
    if (!(error instanceof OpenAI.APIUserAbortError)) throw error;
  }
  return text;
}

describe('OpenAI API errors and cancellation (slow model, queue of 0)', () => {
  let harness: OpenAiServer;

  beforeAll(async () => {
    harness = await startOpenAiServer({ model: SLOW_MODEL, args: ['--runtime-abi', '1.3', '--max-queue', '0'] });
  });

  afterAll(async () => {
    await harness?.rpc.close();
  });

  it('answers a malformed request with 400 and the member at fault', async () => {
    const error = await harness.openai.chat.completions
      .create({ model: 'default', messages: [{ role: 'user', content: 'hi' }], temperature: 9 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).status).toBe(400);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('temperature');

    const notJson = await harness.rpc.raw('POST', '/v1/chat/completions', '{not json', { 'content-type': 'application/json' });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });

    const lastIsAssistant = await harness.openai.chat.completions
      .create({ model: 'default', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] })
      .catch((caught: unknown) => caught);
    expect(lastIsAssistant).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('answers an unknown model with 404', async () => {
    const error = await harness.openai.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    const route = await harness.rpc.raw('GET', '/v1/audio/speech');
    expect(route.status).toBe(404);
  });

  it('cancels the run when the client disconnects mid-stream', async () => {
    const text = await startThenAbort(harness.openai, new AbortController());
    expect(countTo(200).startsWith(text)).toBe(true);
    // The native run is stopped, not left to finish its 20 s: the model is free within a bound.
    await waitUntil('the cancelled run to end', async () => (await health(harness.rpc)).running === 0, 5000);
    const after = await harness.openai.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'count to 2' }] });
    expect(after.choices[0].message.content).toBe(countTo(2));
  });

  it('answers 429 while the queue is full, and serves again once it is not', async () => {
    const controller = new AbortController();
    const running = harness.openai.chat.completions
      .create({ model: 'default', messages: [{ role: 'user', content: LONG_PROMPT }] }, { signal: controller.signal })
      .catch((caught: unknown) => caught);
    try {
      await waitUntil('the long run to start', async () => (await health(harness.rpc)).running === 1, 5000);
      const error = await harness.openai.chat.completions
        .create({ model: 'default', messages: [{ role: 'user', content: 'count to 2' }] })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect((error as InstanceType<typeof OpenAI.RateLimitError>).status).toBe(429);
      expect((error as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('queue_full');
    } finally {
      controller.abort();
    }
    expect(await running).toBeInstanceOf(OpenAI.APIUserAbortError);
    await waitUntil('the aborted run to end', async () => (await health(harness.rpc)).running === 0, 5000);
    const after = await harness.openai.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'count to 2' }] });
    expect(after.choices[0].message.content).toBe(countTo(2));
  });
});

describe('the API key', () => {
  let harness: OpenAiServer;

  beforeAll(async () => {
    harness = await startOpenAiServer({ apiKey: API_KEY, args: ['--api-key', API_KEY] });
  });

  afterAll(async () => {
    await harness?.rpc.close();
  });

  it('is required on /v1 (401 without it or with a wrong one)', async () => {
    const port = harness.server.port('http');
    const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'wrong', maxRetries: 0 });
    const error = await wrong.models.list().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((error as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
    const missing = await harness.rpc.raw('GET', '/v1/models');
    expect(missing.status).toBe(401);
    expect(missing.json.error.code).toBe('invalid_api_key');

    const completion = await harness.openai.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'count to 3' }] });
    expect(completion.choices[0].message.content).toBe(countTo(3));
  });

  it('can come from RKLLM_SERVE_API_KEY instead of the flag', async () => {
    const fromEnv = await startOpenAiServer({ apiKey: 'from-env', disable: ['stdio', 'tcp', 'udp', 'websocket'], env: { RKLLM_SERVE_API_KEY: 'from-env' } });
    try {
      expect((await fromEnv.rpc.raw('GET', '/v1/models')).status).toBe(401);
      expect((await fromEnv.openai.models.list()).data.map((model) => model.id)).toEqual(['default']);
    } finally {
      await fromEnv.rpc.close();
      await fromEnv.server.stop();
    }
  });

  it('is required on JSON-RPC over HTTP, but not on /health', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'rkllm_get_constants' });
    const missing = await harness.rpc.raw('POST', '/', body, { 'content-type': 'application/json' });
    expect(missing.status).toBe(401);
    expect(missing.json.error.code).toBe(-32018);
    const given = await harness.rpc.raw('POST', '/', body, { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` });
    expect(given.status).toBe(200);
    expect(given.json.result.runtime).toBeDefined();
    expect((await harness.rpc.raw('GET', '/health')).status).toBe(200);
  });

  it('is required on the WebSocket upgrade', async () => {
    const port = harness.server.port('websocket');
    await expect(WsClient.connect(port)).rejects.toThrow(/401/);
    const client = await WsClient.connect(port, 5000, 'ws', { headers: { authorization: `Bearer ${API_KEY}` } });
    try {
      const reply = await client.request('rkllm_get_kv_cache_size', { handle: 'default' });
      expect(reply.result).toEqual({ cache_sizes: [expect.any(Number)] });
    } finally {
      await client.close();
    }
  });

  it('is required as "auth" in each TCP and UDP request', async () => {
    const tcp = await TcpClient.connect(harness.server.port('tcp'));
    // A UDP client that has the key proves its address with it (a stranger without it gets nothing).
    const udp = await UdpClient.open(harness.server.port('udp'), 'udp', { apiKey: API_KEY });
    try {
      for (const client of [tcp, udp]) {
        client.sendText(JSON.stringify({ jsonrpc: '2.0', id: `${client.transport}-none`, method: 'rkllm_get_constants' }));
        const refused = await client.waitForReply(`${client.transport}-none`);
        expect(refused.error?.code).toBe(-32018);
        client.sendText(JSON.stringify({ jsonrpc: '2.0', id: `${client.transport}-key`, method: 'rkllm_get_constants', auth: API_KEY }));
        const served = await client.waitForReply(`${client.transport}-key`);
        expect(served.error).toBeUndefined();
        expect(served.result.runtime).toBeDefined();
      }
    } finally {
      await tcp.close();
      await udp.close();
    }
  });
});
