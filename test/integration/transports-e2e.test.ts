// Each of the five transports end to end, against the real bin/rkllm-serve spawned as a child
// process: every method of docs/wire-contract.md once, a streamed "count to 50" whose chunks join to the
// exact text, a cancel mid-stream, an abort, and bad input (garbage bytes, truncated JSON, an
// oversize message) that gets its documented error while the server goes on serving.

import * as fs from 'fs';
import * as path from 'path';
import {
  HttpClient,
  MessageClient,
  PROTOCOL_METHODS,
  STATE,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  assertContiguous,
  connectClient,
  countTo,
  isParseError,
  isServerError,
  makeTempDir,
  stopAllServers,
  waitUntil,
  withTimeout,
  type RpcClient,
  type RpcMessage,
  type Transport,
} from './client';

jest.setTimeout(30_000);

/** The message size bound the e2e servers run with (small, so that UDP can exceed it too). */
export const E2E_MAX_MESSAGE_BYTES = 16 * 1024;

const SLOW_MODEL = 'sim:rk3588-qwen2.5-1.5b';
const LORA_NAME = 'e2e-lora';

function findKey(value: unknown, key: string): unknown {
  if (value === null || typeof value !== 'object') return undefined;
  if (key in (value as Record<string, unknown>)) return (value as Record<string, unknown>)[key];
  for (const inner of Object.values(value as Record<string, unknown>)) {
    const found = findKey(inner, key);
    if (found !== undefined) return found;
  }
  return undefined;
}

function ok(message: RpcMessage): RpcMessage {
  if (message.error) throw new Error(`expected a result, got error ${JSON.stringify(message.error)}`);
  return message;
}

describe.each<Transport>(['stdio', 'tcp', 'udp', 'http', 'websocket'])('%s end to end', (transport) => {
  let server: ServerProcess;
  let client: RpcClient;
  let modelsDir: string;
  let cacheDir: string;
  let second: string;

  const prompt = (text: string) => ({ input_type: 0, prompt_input: text });

  beforeAll(async () => {
    modelsDir = makeTempDir(`models-${transport}`);
    cacheDir = makeTempDir(`cache-${transport}`);
    fs.writeFileSync(path.join(modelsDir, 'adapter.rkllm-lora'), 'not a real adapter; the emulated runtime only checks it exists\n');
    server = await ServerProcess.start({
      model: 'sim:instant',
      args: ['--models-dir', modelsDir, '--cache-dir', cacheDir, '--max-message-bytes', String(E2E_MAX_MESSAGE_BYTES)],
    });
    client = await connectClient(server, transport);
  });

  afterAll(async () => {
    await client?.close();
    await stopAllServers();
    fs.rmSync(modelsDir, { recursive: true, force: true });
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  afterEach(() => {
    // Nothing but JSON-RPC arrived, and no notification of anyone else's stream.
    const seen = client as MessageClient | HttpClient;
    expect(seen.unparsable).toEqual([]);
    expect(seen.foreign).toEqual([]);
  });

  it('rkllm_createDefaultParam, rkllm_get_constants, rkllm_list_functions', async () => {
    const defaults = ok(await client.request('rkllm_createDefaultParam'));
    expect(defaults.result.top_k).toBe(40);
    expect(defaults.result.max_context_len).toBe(512);
    expect(defaults.result.extend_param.enabled_cpus_num).toBe(4);

    const constants = ok(await client.request('rkllm_get_constants'));
    expect(findKey(constants.result, 'RKLLM_RUN_FINISH')).toBe(STATE.FINISH);
    expect(findKey(constants.result, 'RKLLM_INPUT_PROMPT')).toBe(0);
    expect(findKey(constants.result, 'emulated')).toBe(true);

    const list = ok(await client.request('rkllm_list_functions'));
    const names = (list.result as { name: string; params: unknown }[]).map((f) => f.name);
    expect([...names].sort()).toEqual(expect.arrayContaining([...PROTOCOL_METHODS].sort()));
    // Without --enable-test-hooks the hook is not answered, so it is not listed either.
    expect(names).not.toContain('test_connection_drop');
    for (const entry of list.result) expect(typeof entry.params).toBe('object');
  });

  it('rkllm_init loads a second model under its own handle', async () => {
    const reply = ok(await client.request('rkllm_init', { param: { model_path: SLOW_MODEL } }, { timeoutMs: 15_000 }));
    expect(typeof reply.result.handle).toBe('string');
    expect(reply.result.handle).not.toBe('default');
    second = reply.result.handle;
    // A second init under a handle that is in use is refused (-32004).
    const again = await client.request('rkllm_init', { param: { model_path: 'sim:instant' }, handle: second }, { timeoutMs: 15_000 });
    expect(again.error?.code).toBe(-32004);
  });

  it('rkllm_run answers with the final result', async () => {
    const reply = ok(await client.request('rkllm_run', { handle: 'default', rkllm_input: prompt(`echo: hello over ${transport}`), rkllm_infer_params: { mode: 0, keep_history: 0 } }));
    expect(reply.result.text).toBe(`hello over ${transport}`);
    expect(reply.result.state).toBe(STATE.FINISH);
    expect(reply.result.token_count).toBeGreaterThan(0);
    for (const field of ['prefill_time_ms', 'prefill_tokens', 'generate_time_ms', 'generate_tokens', 'memory_usage_mb']) {
      expect(typeof reply.result.perf[field]).toBe('number');
    }
    expect(reply.result.perf.generate_tokens).toBe(reply.result.token_count);
  });

  it('streams "count to 50": the chunks join to exactly "1, 2, ..., 50"', async () => {
    const outcome = await client.stream('rkllm_run', { handle: 'default', rkllm_input: prompt('Please count to 50'), stream: true }, { timeoutMs: 15_000 });
    expect(outcome.response?.error).toBeUndefined();
    assertContiguous(outcome.chunks, transport !== 'udp');
    expect(outcome.text).toBe(countTo(50));
    expect(outcome.final?.state).toBe(STATE.FINISH);
    expect(outcome.final?.perf).toBeDefined();
    expect(outcome.chunks.filter((c) => c.chunk.state === STATE.FINISH)).toHaveLength(1);
    for (const { chunk } of outcome.chunks) {
      expect(chunk.request_id).toEqual(outcome.id);
      expect(chunk.stream_id).toEqual(outcome.streamId);
    }
    expect(outcome.response?.result.text).toBe(countTo(50));
    if (transport !== 'udp') expect(outcome.responseAt!).toBeGreaterThanOrEqual(outcome.finalAt!);
  });

  it('rkllm_run_async answers {stream_id} at once, then the notifications follow', async () => {
    const outcome = await client.stream('rkllm_run_async', { handle: 'default', rkllm_input: prompt(`echo: async over ${transport}`) });
    expect(outcome.response?.error).toBeUndefined();
    expect(outcome.response?.result.stream_id).toBeDefined();
    expect(outcome.streamId).toEqual(outcome.response?.result.stream_id);
    assertContiguous(outcome.chunks, transport !== 'udp');
    expect(outcome.text).toBe(`async over ${transport}`);
    expect(outcome.final?.state).toBe(STATE.FINISH);
  });

  it('rkllm_is_running, poll and cancel of a running stream', async () => {
    if (client instanceof HttpClient) {
      // Plain HTTP cannot be pushed to: the stream is buffered and polled.
      const started = ok(await client.request('rkllm_run_async', { handle: second, rkllm_input: prompt('count to 50') }));
      const streamId = started.result.stream_id;
      const chunks: { seq: number; text?: string; state: number; aborted?: boolean }[] = [];
      const pollOnce = async () => {
        const reply = ok(await client.request('poll', { stream_id: streamId, from_seq: chunks.length }));
        expect(reply.result.stream_id).toEqual(streamId);
        chunks.push(...reply.result.chunks);
        return reply.result;
      };
      await waitUntil('two chunks to poll', async () => (await pollOnce(), chunks.length >= 2), 5000, 30);
      expect(ok(await client.request('rkllm_is_running', { handle: second })).result).toEqual({ running: true });
      expect(ok(await client.request('cancel', { stream_id: streamId })).error).toBeUndefined();
      const last = await waitUntil('the cancelled stream to be done', async () => {
        const result = await pollOnce();
        return result.done ? result : undefined;
      }, 5000, 30);
      expect(last.done).toBe(true);
      chunks.forEach((chunk, i) => expect(chunk.seq).toBe(i));
      expect(chunks[chunks.length - 1].aborted).toBe(true);
      expect(chunks.length).toBeLessThan(60);
      expect(countTo(50).startsWith(chunks.map((c) => c.text ?? '').join(''))).toBe(true);
      expect(ok(await client.request('rkllm_is_running', { handle: second })).result).toEqual({ running: false });
      return;
    }
    let pollDuring: RpcMessage | undefined;
    let runningDuring: RpcMessage | undefined;
    let cancelReply: RpcMessage | undefined;
    let asked = false;
    const outcome = await client.stream(
      'rkllm_run_async',
      { handle: second, rkllm_input: prompt('count to 50') },
      {
        timeoutMs: 15_000,
        onChunk: (chunk) => {
          if (asked || chunk.seq < 1) return;
          asked = true;
          const streamId = chunk.stream_id;
          void (async () => {
            runningDuring = await client.request('rkllm_is_running', { handle: second });
            pollDuring = await client.request('poll', { stream_id: streamId });
            cancelReply = await client.request('cancel', { stream_id: streamId });
          })();
        },
      },
    );
    await waitUntil('the cancel reply', () => cancelReply, 5000);
    expect(runningDuring?.result).toEqual({ running: true });
    expect(pollDuring?.error).toBeUndefined();
    expect(pollDuring?.result.stream_id).toEqual(outcome.streamId);
    expect(pollDuring?.result.done).toBe(false);
    expect(Array.isArray(pollDuring?.result.chunks)).toBe(true);
    expect(cancelReply?.error).toBeUndefined();
    // The stream ended early, marked aborted, with a prefix of the answer.
    expect(outcome.final?.aborted).toBe(true);
    expect(outcome.chunks.length).toBeLessThan(60);
    expect(countTo(50).startsWith(outcome.text)).toBe(true);
    await waitUntil(
      'rkllm_is_running false after the cancel',
      async () => (await client.request('rkllm_is_running', { handle: second })).result?.running === false,
      3000,
    );
    const pollAfter = ok(await client.request('poll', { stream_id: outcome.streamId }));
    expect(pollAfter.result.done).toBe(true);
  });

  it('rkllm_abort stops what runs on that handle', async () => {
    let abortReply: RpcMessage | undefined;
    let asked = false;
    const outcome = await client.stream(
      'rkllm_run_async',
      { handle: second, rkllm_input: prompt('count to 50') },
      {
        timeoutMs: 15_000,
        onChunk: () => {
          if (asked) return;
          asked = true;
          void client.request('rkllm_abort', { handle: second }).then((r) => (abortReply = r));
        },
      },
    );
    await waitUntil('the abort reply', () => abortReply, 5000);
    expect(abortReply?.result).toEqual({ return_code: 0 });
    expect(outcome.final?.aborted).toBe(true);
    expect(outcome.chunks.length).toBeLessThan(60);
    expect(ok(await client.request('rkllm_is_running', { handle: second })).result).toEqual({ running: false });
  });

  it('rkllm_load_lora loads an adapter from the models directory (and nothing outside it)', async () => {
    const adapter = { lora_adapter_path: path.join(modelsDir, 'adapter.rkllm-lora'), lora_adapter_name: LORA_NAME, scale: 0.5 };
    expect(ok(await client.request('rkllm_load_lora', { handle: 'default', lora_adapter: adapter })).result).toEqual({ return_code: 0 });
    const withLora = ok(
      await client.request('rkllm_run', {
        handle: 'default',
        rkllm_input: prompt('echo: with lora'),
        rkllm_infer_params: { mode: 0, keep_history: 0, lora_params: { lora_adapter_name: LORA_NAME } },
      }),
    );
    expect(withLora.result.text).toBe('with lora');
    const outside = await client.request('rkllm_load_lora', { handle: 'default', lora_adapter: { ...adapter, lora_adapter_path: '/etc/hostname' } });
    expect(outside.error?.code).toBe(-32602);
  });

  it('rkllm_load_prompt_cache / rkllm_release_prompt_cache with a cache saved by a run', async () => {
    const cachePath = path.join(cacheDir, `prompt-${transport}.cache`);
    ok(
      await client.request('rkllm_run', {
        handle: 'default',
        rkllm_input: prompt('echo: cache me'),
        rkllm_infer_params: { mode: 0, keep_history: 0, prompt_cache_params: { save_prompt_cache: 1, prompt_cache_path: cachePath } },
      }),
    );
    expect(fs.readFileSync(cachePath, 'utf8').startsWith('RKLLM-EMULATED-PROMPT-CACHE 1\n')).toBe(true);
    expect(ok(await client.request('rkllm_load_prompt_cache', { handle: 'default', prompt_cache_path: cachePath })).result).toEqual({ return_code: 0 });
    expect(ok(await client.request('rkllm_release_prompt_cache', { handle: 'default' })).result).toEqual({ return_code: 0 });
    const outside = await client.request('rkllm_load_prompt_cache', { handle: 'default', prompt_cache_path: path.join(modelsDir, '..', 'elsewhere.cache') });
    expect(outside.error?.code).toBe(-32602);
  });

  it('rkllm_get_kv_cache_size and rkllm_clear_kv_cache', async () => {
    ok(await client.request('rkllm_run', { handle: 'default', rkllm_input: prompt('echo: remember me'), rkllm_infer_params: { mode: 0, keep_history: 1 } }));
    const before = ok(await client.request('rkllm_get_kv_cache_size', { handle: 'default' }));
    expect(Array.isArray(before.result.cache_sizes)).toBe(true);
    expect(before.result.cache_sizes[0]).toBeGreaterThan(0);
    expect(ok(await client.request('rkllm_clear_kv_cache', { handle: 'default', keep_system_prompt: 0 })).result).toEqual({ return_code: 0 });
    expect(ok(await client.request('rkllm_get_kv_cache_size', { handle: 'default' })).result).toEqual({ cache_sizes: [0] });
  });

  it('rkllm_set_chat_template, rkllm_set_function_tools, rkllm_set_cross_attn_params', async () => {
    expect(
      ok(await client.request('rkllm_set_chat_template', { handle: 'default', system_prompt: 'You are terse.', prompt_prefix: '<u>', prompt_postfix: '</u>' })).result,
    ).toEqual({ return_code: 0 });
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'the weather', parameters: { type: 'object', properties: {} } } }];
    expect(
      ok(await client.request('rkllm_set_function_tools', { handle: 'default', system_prompt: '', tools, tool_response_str: 'tool_response' })).result,
    ).toEqual({ return_code: 0 });
    // The model now calls the tool it was given.
    const call = ok(await client.request('rkllm_run', { handle: 'default', rkllm_input: prompt('what does get_weather say?'), rkllm_infer_params: { mode: 0, keep_history: 0 } }));
    expect(call.result.text).toContain('"name": "get_weather"');
    const cross = {
      encoder_k_cache: [0.1, 0.2],
      encoder_v_cache: [0.3, 0.4],
      encoder_mask: [0, 0],
      encoder_pos: [0, 1],
      num_tokens: 2,
    };
    expect(ok(await client.request('rkllm_set_cross_attn_params', { handle: 'default', cross_attn_params: cross })).result).toEqual({ return_code: 0 });
  });

  it('rkllm_destroy removes the second model', async () => {
    expect(ok(await client.request('rkllm_destroy', { handle: second }, { timeoutMs: 10_000 })).result).toEqual({ return_code: 0 });
    // The handle is gone: calls on it, runs included, get -32007 (the model was destroyed); a
    // handle that never existed gets -32003.
    expect((await client.request('rkllm_is_running', { handle: second })).error?.code).toBe(-32007);
    expect((await client.request('rkllm_run', { handle: second, rkllm_input: prompt('echo: x') })).error?.code).toBe(-32007);
    expect((await client.request('rkllm_is_running', { handle: 'never-loaded' })).error?.code).toBe(-32003);
    // The default model is untouched.
    expect(ok(await client.request('rkllm_is_running', { handle: 'default' })).result).toEqual({ running: false });
  });

  it('bad input: garbage bytes and truncated JSON get -32700, an oversize message a server error; the server goes on', async () => {
    const oversize = JSON.stringify({
      jsonrpc: '2.0',
      id: 'oversize',
      method: 'rkllm_run',
      params: { handle: 'default', rkllm_input: prompt('x'.repeat(E2E_MAX_MESSAGE_BYTES + 1024)) },
    });
    if (client instanceof HttpClient) {
      const garbage = await client.post(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7b, 0x7d, 0x7b, 0x0a]));
      expect(isParseError(garbage.json)).toBe(true);
      const truncated = await client.post('{"jsonrpc":"2.0","id":"t","method":"rkllm_get_constants"');
      expect(isParseError(truncated.json)).toBe(true);
      const big = await client.post(oversize);
      expect(big.status === 413 || isServerError(big.json)).toBe(true);
      if (big.status !== 413) expect(big.status).toBeLessThan(500);
      // Still serving: readiness and the next request.
      const health = await client.health();
      expect(health.status).toBe(200);
      expect(ok(await client.request('rkllm_get_constants')).result).toBeDefined();
      return;
    }
    const messageClient = client as MessageClient;
    const parseErrors = () => messageClient.received.filter((r) => isParseError(r.message)).length;

    // A text frame must be valid UTF-8 (RFC 6455), so WebSocket garbage is printable junk.
    if (transport === 'websocket') messageClient.sendRaw('\u0001\u0013garbage}{ not json');
    else if (transport === 'udp') messageClient.sendRaw(Buffer.from([0xff, 0x13, 0x37, 0x7b, 0x7d, 0x7b]));
    else messageClient.sendRaw(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7b, 0x7d, 0x7b, 0x0a]));
    await waitUntil('-32700 for garbage bytes', () => parseErrors() === 1, 5000);

    const truncated = '{"jsonrpc":"2.0","id":"t","method":"rkllm_get_constants"';
    messageClient.sendRaw(transport === 'websocket' || transport === 'udp' ? truncated : truncated + '\n');
    await waitUntil('-32700 for truncated JSON', () => parseErrors() === 2, 5000);
    expect(ok(await client.request('rkllm_get_constants')).result).toBeDefined();

    const before = messageClient.received.length;
    messageClient.sendText(oversize);
    // A JSON-RPC server error (-32014 in the engine's table); over WebSocket, closing with 1009
    // (Message Too Big, RFC 6455) is the protocol's own answer to an oversize frame.
    await waitUntil(
      'an answer to the oversize message',
      () => messageClient.received.slice(before).some((r) => isServerError(r.message)) || (transport === 'websocket' && messageClient.closeInfo.code === 1009),
      5000,
    );
    const answer = messageClient.received.slice(before).find((r) => isServerError(r.message));
    if (answer) expect([null, 'oversize']).toContain(answer.message.id);
    // No run was started for it.
    expect(messageClient.received.slice(before).some((r) => r.message.method === 'rkllm_result')).toBe(false);

    if (transport === 'stdio' || transport === 'udp') {
      expect(messageClient.closed).toBe(false);
      expect(ok(await client.request('rkllm_get_constants')).result).toBeDefined();
    } else {
      // The same connection if the server kept it, else a new one.
      await new Promise((resolve) => setTimeout(resolve, 100));
      let next: RpcClient = client;
      if (messageClient.closed) {
        next = transport === 'tcp' ? await TcpClient.connect(server.port('tcp')) : await WsClient.connect(server.port('websocket'));
      }
      try {
        expect(ok(await next.request('rkllm_get_constants')).result).toBeDefined();
      } finally {
        if (next !== client) await next.close();
      }
    }
    // And a brand-new client of the transport too.
    if (transport !== 'stdio') {
      const fresh = transport === 'udp' ? await UdpClient.open(server.port('udp')) : await connectClient(server, transport);
      try {
        expect(ok(await withTimeout(fresh.request('rkllm_get_constants'), 5000, 'fresh client')).result).toBeDefined();
      } finally {
        await fresh.close();
      }
    }
  });
});
