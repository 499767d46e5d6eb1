// Requests as C programmers write them (the seed project's JS suite sends these): null for a
// pointer left NULL, rkllm_infer_params' members beside the input at the top of params, and
// rkllm_createDefaultParam's output passed back to rkllm_init. Also: a member a method does not
// have is refused by name, on every method that takes params.

import * as fs from 'fs';
import * as path from 'path';
import { simModelDirectory } from '../../lib';
import type { RkllmServer } from '../../lib/serve';
import { ABIS, SLOW_MODEL, TestClient, countText, makeScratchDir, removeScratchDir, startSim, waitUntil, type Json } from './helpers';

/** Valid params of every method that takes params, so that one unknown member is the only fault. */
const VALID_PARAMS: Record<string, Json> = {
  rkllm_init: { param: { model_path: 'sim:instant' } },
  rkllm_destroy: { handle: 'default' },
  rkllm_abort: { handle: 'default' },
  rkllm_is_running: { handle: 'default' },
  rkllm_get_kv_cache_size: { handle: 'default' },
  rkllm_run: { input_type: 0, prompt_input: 'hi' },
  rkllm_run_async: { rkllm_input: { input_type: 0, prompt_input: 'hi' } },
  rkllm_chat: { messages: [{ role: 'user', content: 'hi' }] },
  rkllm_load_lora: { lora_adapter: { lora_adapter_path: 'adapter.lora', lora_adapter_name: 'a', scale: 1 } },
  rkllm_load_prompt_cache: { prompt_cache_path: 'x.cache' },
  rkllm_release_prompt_cache: {},
  rkllm_clear_kv_cache: { keep_system_prompt: 1 },
  rkllm_set_chat_template: { system_prompt: '', prompt_prefix: '', prompt_postfix: '' },
  rkllm_set_function_tools: { system_prompt: '', tools: '[]', tool_response_str: 'tool_response' },
  rkllm_set_cross_attn_params: { cross_attn_params: { encoder_k_cache: [0], encoder_v_cache: [0], encoder_mask: [1], encoder_pos: [0], num_tokens: 1 } },
  poll: { stream_id: 'st-00000000000000000000000000000000' },
  cancel: { request_id: 'nobody' },
};

describe.each(ABIS)('C-style requests (ABI %s)', (abi) => {
  let server: RkllmServer;
  let client: TestClient;
  let modelsDir: string;
  let cacheDir: string;

  beforeAll(async () => {
    modelsDir = makeScratchDir('c-models');
    cacheDir = makeScratchDir('c-cache');
    fs.copyFileSync(path.join(simModelDirectory(), 'instant.json'), path.join(modelsDir, 'tiny.json'));
    const paced = { format: 'rkllm-emulated-model', version: 1, name: 'paced', timing: { decode_ms_per_token: 20 } };
    fs.writeFileSync(path.join(modelsDir, 'paced.json'), JSON.stringify(paced));
    server = await startSim(abi, { model: 'sim:instant', modelsDirs: [modelsDir], cacheDir });
  });
  afterAll(async () => {
    await server.shutdown();
    removeScratchDir(modelsDir);
    removeScratchDir(cacheDir);
  });
  beforeEach(() => {
    client = new TestClient(server);
  });
  afterEach(() => client.close());

  describe('null for an optional member is the member left out', () => {
    it('in rkllm_run, at the top and inside the structs (not in handle, nor in a required member)', async () => {
      const result = await client.ok('rkllm_run', {
        stream: null,
        rkllm_input: { input_type: 0, prompt_input: 'count to 3', role: null, enable_thinking: null, token_input: null },
        rkllm_infer_params: { mode: 0, keep_history: null, lora_params: null, prompt_cache_params: null, sampling_params: null, max_new_tokens: null },
      });
      expect(result.text).toBe(countText(3));
      const flat = await client.ok('rkllm_run', { input_type: 0, prompt_input: 'count to 2', rkllm_infer_params: null, multimodal_input: null });
      expect(flat.text).toBe(countText(2));
      // handle is no such member: null there is C's NULL handle, which names no model.
      for (const method of ['rkllm_destroy', 'rkllm_abort', 'rkllm_is_running', 'rkllm_release_prompt_cache']) {
        expect(await client.fails(method, { handle: null })).toMatchObject({ code: -32602, data: { field: 'handle' } });
      }
      expect(await client.fails('rkllm_run', { handle: null, input_type: 0, prompt_input: 'hi' })).toMatchObject({ code: -32602, data: { field: 'handle' } });
      expect(server.stats().models).toBe(1);
      // A required member given null is still refused by name.
      expect(await client.fails('rkllm_set_chat_template', { system_prompt: null, prompt_prefix: '', prompt_postfix: '' })).toMatchObject({
        code: -32602,
        data: { field: 'system_prompt' },
      });
      expect(await client.fails('rkllm_run', { rkllm_input: { input_type: null, prompt_input: 'x' } })).toMatchObject({
        code: -32602,
        data: { field: 'rkllm_input.input_type' },
      });
    });

    it('in rkllm_init: the other ABI\'s members and extend_param.reserved', async () => {
      const otherAbiMember = abi === '1.3' ? 'img_start' : 'ignore_eos_token';
      const loaded = await client.ok('rkllm_init', {
        param: { model_path: 'tiny.json', [otherAbiMember]: null, extend_param: { reserved: null, n_batch: null } },
        handle: null,
      });
      expect(loaded.handle).toMatch(/^model-\d+$/);
      expect(await client.ok('rkllm_destroy', { handle: loaded.handle })).toEqual({ return_code: 0 });
    });

    it('in rkllm_clear_kv_cache (start_pos, end_pos) and poll (from_seq, max_chunks)', async () => {
      expect(await client.ok('rkllm_clear_kv_cache', { keep_system_prompt: 1, start_pos: null, end_pos: null })).toEqual({ return_code: 0 });
      const poller = new TestClient(server, { canPush: false });
      try {
        const { stream_id } = await poller.ok('rkllm_run_async', { input_type: 0, prompt_input: 'count to 2' });
        let page: any;
        for (let tries = 0; tries < 100 && page?.done !== true; tries++) {
          if (page !== undefined) await new Promise((resolve) => setTimeout(resolve, 10));
          page = await poller.ok('poll', { stream_id, from_seq: null, max_chunks: null });
        }
        expect(page.done).toBe(true);
        expect(page.result.text).toBe(countText(2));
      } finally {
        poller.close();
      }
    });

    it('except where null is a value: cancel\'s request_id names a request whose id was null', async () => {
      const paced = await client.ok('rkllm_init', { param: { model_path: 'paced.json' }, handle: 'paced' });
      try {
        // A request with id null is answered (it is no notification), so it can be cancelled by that id.
        const run = { jsonrpc: '2.0', id: null, method: 'rkllm_run', params: { handle: 'paced', input_type: 0, prompt_input: 'count to 1000' } };
        const sent = client.sendText(JSON.stringify(run));
        await waitUntil(() => server.stats().running > 0, 5000, 'the run to start');
        expect(await client.ok('cancel', { stream_id: null, request_id: null })).toEqual({ cancelled: true });
        expect((await client.replyTo(null)).error).toMatchObject({ code: -32009 });
        await sent;
      } finally {
        await client.ok('rkllm_destroy', { handle: paced.handle });
      }
    });
  });

  describe("rkllm_infer_params' members at the top of params", () => {
    it('are read as rkllm_infer_params: mode 2 gives logits', async () => {
      const result = await client.ok('rkllm_run', { input_type: 0, prompt_input: 'hi', mode: 2, keep_history: 1 });
      expect(result.logits.vocab_size).toBe(151936);
      expect(result.logits.data).toHaveLength(result.logits.vocab_size * result.logits.num_tokens);
      const hidden = await client.ok('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'hi' }, mode: 1 });
      expect(hidden.last_hidden_layer.embd_size).toBe(1536);
      expect(await client.ok('rkllm_clear_kv_cache', { keep_system_prompt: 0 })).toEqual({ return_code: 0 });
    });

    it('merge with rkllm_infer_params member by member: keep_history keeps the cache; max_new_tokens bounds the run on ABI 1.3', async () => {
      const result = await client.ok('rkllm_run', {
        input_type: 0,
        prompt_input: 'count to 50',
        keep_history: 1,
        max_new_tokens: 3,
        rkllm_infer_params: { mode: 0 },
      });
      expect(result.text).toBe(abi === '1.3' ? '1, 2' : countText(50));
      const [kept] = (await client.ok('rkllm_get_kv_cache_size')).cache_sizes;
      expect(kept).toBeGreaterThan(0);
      expect(await client.ok('rkllm_clear_kv_cache', { keep_system_prompt: 0 })).toEqual({ return_code: 0 });
    });

    it('one member given both at the top and inside its struct is refused, naming both', async () => {
      const both = await client.fails('rkllm_run', { input_type: 0, prompt_input: 'hi', mode: 2, rkllm_infer_params: { mode: 0 } });
      expect(both).toMatchObject({ code: -32602, data: { field: 'mode' } });
      expect(both.data.reason).toContain('rkllm_infer_params.mode');
      const input = await client.fails('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'a' }, prompt_input: 'b' });
      expect(input).toMatchObject({ code: -32602, data: { field: 'prompt_input' } });
      expect(input.data.reason).toContain('rkllm_input.prompt_input');
    });

    it('are checked and named as the client wrote them', async () => {
      expect(await client.fails('rkllm_run', { input_type: 0, prompt_input: 'hi', mode: 7 })).toMatchObject({ code: -32602, data: { field: 'mode' } });
      expect(await client.fails('rkllm_run', { input_type: 0, prompt_input: 'hi', lora_params: { lora_adapter_name: 5 } })).toMatchObject({
        code: -32602,
        data: { field: 'lora_params.lora_adapter_name' },
      });
      const outside = { save_prompt_cache: 1, prompt_cache_path: '/etc/rkllm-outside.cache' };
      expect(await client.fails('rkllm_run', { input_type: 0, prompt_input: 'hi', prompt_cache_params: outside })).toMatchObject({
        code: -32602,
        data: { field: 'prompt_cache_params.prompt_cache_path' },
      });
      expect(await client.fails('rkllm_run', { input_type: 0, prompt_input: 'hi', rkllm_infer_params: { prompt_cache_params: outside } })).toMatchObject({
        code: -32602,
        data: { field: 'rkllm_infer_params.prompt_cache_params.prompt_cache_path' },
      });
    });

    it('runtime errors name a member as the client wrote it, in either place', async () => {
      expect(await client.fails('rkllm_run', { rkllm_input: { input_type: 1 }, token_input: [] })).toMatchObject({
        code: -32602,
        data: { field: 'token_input' },
      });
      expect(await client.fails('rkllm_run', { rkllm_input: { input_type: 1, token_input: [] }, mode: 0 })).toMatchObject({
        code: -32602,
        data: { field: 'rkllm_input.token_input' },
      });
    });

    it('save a prompt cache given at the top', async () => {
      const result = await client.ok('rkllm_run', {
        input_type: 0,
        prompt_input: 'count to 2',
        prompt_cache_params: { save_prompt_cache: 1, prompt_cache_path: 'flat.cache' },
      });
      expect(result.text).toBe(countText(2));
      expect(fs.existsSync(path.join(cacheDir, 'flat.cache'))).toBe(true);
    });
  });

  describe('a member a method does not have', () => {
    it('is refused by name on every method that takes params, and nothing is done', async () => {
      const list: { name: string; params: { properties: Json } }[] = await client.ok('rkllm_list_functions');
      const withParams = list.filter((entry) => Object.keys(entry.params.properties).length > 0).map((entry) => entry.name);
      expect(withParams.sort()).toEqual(Object.keys(VALID_PARAMS).sort());
      for (const method of withParams) {
        const error = await client.fails(method, { ...VALID_PARAMS[method], bogus_member: 1 });
        expect({ method, error }).toMatchObject({ method, error: { code: -32602, data: { field: 'bogus_member' } } });
      }
      // rkllm_destroy and rkllm_init were refused before they did anything.
      expect(server.stats().models).toBe(1);
      expect((await client.ok('rkllm_run', { input_type: 0, prompt_input: 'count to 2' })).text).toBe(countText(2));
    });
  });

  describe("rkllm_createDefaultParam's output passed back to rkllm_init", () => {
    it('loads on a free domain; a different domain asked for explicitly is still checked', async () => {
      const defaults = await client.ok('rkllm_createDefaultParam');
      const asC = (extend: Json = {}) => ({ ...defaults, model_path: 'tiny.json', extend_param: { ...defaults.extend_param, reserved: null, ...extend } });
      const first = await client.ok('rkllm_init', { param: asC() });
      expect(first.base_domain_id).toBe(1);
      const second = await client.ok('rkllm_init', { param: asC() });
      expect(second.base_domain_id).toBe(2);
      // Different from the default: the caller's choice, refused when taken, honoured when free.
      expect(await client.fails('rkllm_init', { param: asC({ base_domain_id: 1 }) })).toMatchObject({ code: -32005, data: { base_domain_id: 1 } });
      const chosen = await client.ok('rkllm_init', { param: asC({ base_domain_id: 7, reserved: [0, 0, 0] }) });
      expect(chosen.base_domain_id).toBe(7);
      // A partial extend_param naming the default's value names it on purpose (see methods.test.ts).
      expect(await client.fails('rkllm_init', { param: { model_path: 'tiny.json', extend_param: { base_domain_id: 0 } } })).toMatchObject({
        code: -32005,
      });
      expect(await client.fails('rkllm_init', { param: asC({ reserved: [0, 1] }) })).toMatchObject({
        code: -32602,
        data: { field: 'param.extend_param.reserved[1]' },
      });
      for (const { handle } of [first, second, chosen]) expect(await client.ok('rkllm_destroy', { handle })).toEqual({ return_code: 0 });
    });

    it('a slow load holds its free domain: two at once get two domains', async () => {
      const defaults = await client.ok('rkllm_createDefaultParam');
      const param = { ...defaults, model_path: SLOW_MODEL };
      const [a, b] = await Promise.all([client.ok('rkllm_init', { param }, 20_000), client.ok('rkllm_init', { param }, 20_000)]);
      expect([a.base_domain_id, b.base_domain_id].sort()).toEqual([1, 2]);
      for (const { handle } of [a, b]) expect(await client.ok('rkllm_destroy', { handle })).toEqual({ return_code: 0 });
    });
  });
});
