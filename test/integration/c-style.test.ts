// Requests written in the C style of the RKLLM API, as the seed project's JS suite sends them, on
// each of the five transports against the real bin/rkllm-serve: inference settings beside the
// input at the top of params, null for the pointers a C caller leaves NULL, and
// rkllm_createDefaultParam's output passed back to rkllm_init for a second model.

import * as fs from 'fs';
import * as path from 'path';
import {
  HttpClient,
  MessageClient,
  STATE,
  ServerProcess,
  connectClient,
  makeTempDir,
  stopAllServers,
  type RpcClient,
  type RpcMessage,
  type Transport,
  TRANSPORTS,
} from './client';

jest.setTimeout(30_000);

/** A small vocabulary and embedding, so that logits and hidden states fit a UDP datagram. */
const VOCAB_SIZE = 32;
const EMBEDDING_SIZE = 8;

function ok(message: RpcMessage): any {
  if (message.error) throw new Error(`expected a result, got error ${JSON.stringify(message.error)}`);
  return message.result;
}

describe('C-style requests', () => {
  let server: ServerProcess;
  let modelsDir: string;
  let cacheDir: string;

  beforeAll(async () => {
    modelsDir = makeTempDir('c-style-models');
    cacheDir = makeTempDir('c-style-cache');
    const model = { format: 'rkllm-emulated-model', version: 1, name: 'small', limits: { vocab_size: VOCAB_SIZE, embedding_size: EMBEDDING_SIZE } };
    fs.writeFileSync(path.join(modelsDir, 'small.json'), JSON.stringify(model));
    server = await ServerProcess.start({ model: path.join(modelsDir, 'small.json'), args: ['--models-dir', modelsDir, '--cache-dir', cacheDir] });
  });

  afterAll(async () => {
    await stopAllServers();
    fs.rmSync(modelsDir, { recursive: true, force: true });
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  describe.each<Transport>(TRANSPORTS)('over %s', (transport) => {
    let client: RpcClient;

    beforeAll(async () => {
      client = await connectClient(server, transport);
    });
    afterAll(async () => {
      await client?.close();
    });
    afterEach(() => {
      const seen = client as MessageClient | HttpClient;
      expect(seen.unparsable).toEqual([]);
      expect(seen.foreign).toEqual([]);
    });

    it('reads mode and keep_history beside the input: mode 2 gives logits', async () => {
      const result = ok(await client.request('rkllm_run', { input_type: 0, prompt_input: 'hi', mode: 2, keep_history: 1 }));
      expect(result.logits).toMatchObject({ vocab_size: VOCAB_SIZE, num_tokens: 1 });
      expect(result.logits.data).toHaveLength(VOCAB_SIZE);
      // keep_history 1 kept the run in the cache.
      expect(ok(await client.request('rkllm_get_kv_cache_size')).cache_sizes[0]).toBeGreaterThan(0);
      expect(ok(await client.request('rkllm_clear_kv_cache', { keep_system_prompt: 0, start_pos: null, end_pos: null }))).toEqual({ return_code: 0 });
      const hidden = ok(await client.request('rkllm_run', { input_type: 0, prompt_input: 'hi', mode: 1, lora_params: null, prompt_cache_params: null }));
      expect(hidden.last_hidden_layer).toMatchObject({ embd_size: EMBEDDING_SIZE, num_tokens: 1 });
      expect(hidden.last_hidden_layer.data).toHaveLength(EMBEDDING_SIZE);
    });

    it('streams a run whose settings are beside the input, with NULL pointers as null', async () => {
      const outcome = await client.stream('rkllm_run', {
        input_type: 0,
        prompt_input: 'count to 50',
        role: null,
        max_new_tokens: 3,
        keep_history: 0,
        lora_params: null,
        prompt_cache_params: null,
        sampling_params: null,
        stream: true,
      });
      expect(outcome.response?.error).toBeUndefined();
      // ABI 1.3 (the emulated runtime's default) honours a run's max_new_tokens.
      expect(outcome.text).toBe('1, 2');
      expect(outcome.final?.state).toBe(STATE.FINISH);
    });

    it('refuses a setting given twice (naming both places), a member no method has, and a NULL handle', async () => {
      const twice = await client.request('rkllm_run', { input_type: 0, prompt_input: 'hi', mode: 2, rkllm_infer_params: { mode: 0 } });
      expect(twice.error).toMatchObject({ code: -32602, data: { field: 'mode' } });
      expect((twice.error?.data as { reason: string }).reason).toContain('rkllm_infer_params.mode');
      const unknown = await client.request('rkllm_run', { input_type: 0, prompt_input: 'hi', mdoe: 2 });
      expect(unknown.error).toMatchObject({ code: -32602, data: { field: 'mdoe' } });
      const elsewhere = await client.request('rkllm_clear_kv_cache', { keep_system_prompt: 0, keep_history: 1 });
      expect(elsewhere.error).toMatchObject({ code: -32602, data: { field: 'keep_history' } });
      // A NULL handle names no model: refused, the model left alone.
      const nullHandle = await client.request('rkllm_destroy', { handle: null });
      expect(nullHandle.error).toMatchObject({ code: -32602, data: { field: 'handle' } });
      expect(ok(await client.request('rkllm_is_running', { handle: 'default' }))).toEqual({ running: false });
    });

    it("loads rkllm_createDefaultParam's output with another model_path on a free domain", async () => {
      const defaults = ok(await client.request('rkllm_createDefaultParam'));
      const param = { ...defaults, model_path: 'small.json', img_start: null, extend_param: { ...defaults.extend_param, reserved: null } };
      const loaded = ok(await client.request('rkllm_init', { param }, { timeoutMs: 15_000 }));
      // "default" holds domain 0.
      expect(loaded.base_domain_id).toBe(1);
      try {
        // A domain other than the default's, asked for explicitly, is the client's: taken, it is refused.
        const taken = { ...param, extend_param: { ...param.extend_param, base_domain_id: loaded.base_domain_id } };
        const refused = await client.request('rkllm_init', { param: taken }, { timeoutMs: 15_000 });
        expect(refused.error).toMatchObject({ code: -32005, data: { base_domain_id: 1 } });
        const run = ok(await client.request('rkllm_run', { handle: loaded.handle, input_type: 0, prompt_input: 'count to 3' }));
        expect(run.text).toBe('1, 2, 3');
      } finally {
        expect(ok(await client.request('rkllm_destroy', { handle: loaded.handle }))).toEqual({ return_code: 0 });
      }
    });
  });
});
