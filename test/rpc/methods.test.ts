// Every method of the table once, with its success and its documented errors.

import * as fs from 'fs';
import * as path from 'path';
import { simModelDirectory } from '../../lib';
import type { RkllmServer } from '../../lib/serve';
import { ABIS, TestClient, countText, makeScratchDir, prompt, removeScratchDir, startSim } from './helpers';

describe.each(ABIS)('methods (ABI %s)', (abi) => {
  let server: RkllmServer;
  let client: TestClient;
  let modelsDir: string;
  let cacheDir: string;

  beforeAll(async () => {
    modelsDir = makeScratchDir('models');
    cacheDir = makeScratchDir('cache');
    fs.copyFileSync(path.join(simModelDirectory(), 'instant.json'), path.join(modelsDir, 'tiny.json'));
    fs.writeFileSync(path.join(modelsDir, 'adapter.lora'), 'weights');
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

  it('rkllm_createDefaultParam reports the runtime defaults for this ABI', async () => {
    const defaults = await client.ok('rkllm_createDefaultParam');
    expect(defaults).toMatchObject({ top_k: 40, max_context_len: 512, max_new_tokens: 256, extend_param: { n_batch: 1, base_domain_id: 0 } });
    expect(defaults.top_p).toBeCloseTo(0.9);
    if (abi === '1.3') expect(defaults).toHaveProperty('ignore_eos_token', false);
    else expect(defaults).toHaveProperty('img_start', '');
  });

  it('rkllm_get_constants reports the enums and the runtime', async () => {
    const constants = await client.ok('rkllm_get_constants');
    expect(constants.LLMCallState).toEqual({ RKLLM_RUN_NORMAL: 0, RKLLM_RUN_WAITING: 1, RKLLM_RUN_FINISH: 2, RKLLM_RUN_ERROR: 3 });
    expect(constants.RKLLMInputType.RKLLM_INPUT_MULTIMODAL).toBe(3);
    expect(constants.RKLLMInferMode.RKLLM_INFER_GET_LOGITS).toBe(2);
    expect(constants.CPUMask.CPU7).toBe(128);
    expect(constants.runtime).toMatchObject({ abi, emulated: true, abi_source: 'emulated-marker' });
    expect(constants.runtime.path).toContain(`librkllmrt-emulated-${abi}.so`);
  });

  it('rkllm_list_functions lists every method with a JSON Schema, and no test hook', async () => {
    const list: { name: string; description: string; params: { type: string } }[] = await client.ok('rkllm_list_functions');
    const names = list.map((entry) => entry.name).sort();
    expect(names).toEqual(
      [
        'cancel',
        'poll',
        'rkllm_abort',
        'rkllm_chat',
        'rkllm_clear_kv_cache',
        'rkllm_createDefaultParam',
        'rkllm_destroy',
        'rkllm_get_constants',
        'rkllm_get_kv_cache_size',
        'rkllm_init',
        'rkllm_is_running',
        'rkllm_list_functions',
        'rkllm_list_models',
        'rkllm_load_lora',
        'rkllm_load_prompt_cache',
        'rkllm_release_prompt_cache',
        'rkllm_run',
        'rkllm_run_async',
        'rkllm_set_chat_template',
        'rkllm_set_cross_attn_params',
        'rkllm_set_function_tools',
      ].sort(),
    );
    for (const entry of list) {
      expect(entry.description.length).toBeGreaterThan(10);
      expect(entry.params.type).toBe('object');
    }
    expect(await client.fails('test_connection_drop', { transport: 'tcp', action: 'simulate_drop' })).toMatchObject({ code: -32601 });
  });

  it('rkllm_run answers with the final result; the flat shorthand means the same', async () => {
    const nested = await client.ok('rkllm_run', prompt('count to 5'));
    expect(nested).toMatchObject({ text: countText(5), state: 2, token_count: 9 });
    expect(Object.keys(nested.perf).sort()).toEqual(['generate_time_ms', 'generate_tokens', 'memory_usage_mb', 'prefill_time_ms', 'prefill_tokens']);
    const flat = await client.ok('rkllm_run', { input_type: 0, prompt_input: 'count to 5', handle: 'default' });
    expect(flat.text).toBe(countText(5));
  });

  it('rkllm_run checks that the member named by input_type is present', async () => {
    expect(await client.fails('rkllm_run', { rkllm_input: { input_type: 1, prompt_input: 'x' } })).toMatchObject({
      code: -32602,
      data: { field: 'rkllm_input.token_input' },
    });
    expect(await client.fails('rkllm_run', {})).toMatchObject({ code: -32602, data: { field: 'rkllm_input' } });
  });

  it('rkllm_run takes token input and reports logits and hidden layers as arrays', async () => {
    const tokens = await client.ok('rkllm_run', { rkllm_input: { input_type: 1, token_input: [1, 2, 3] } });
    expect(tokens.text.length).toBeGreaterThan(0);
    const logits = await client.ok('rkllm_run', { ...prompt('hello'), rkllm_infer_params: { mode: 2 } });
    expect(logits.logits.vocab_size).toBe(151936);
    expect(logits.logits.data).toHaveLength(logits.logits.vocab_size * logits.logits.num_tokens);
    const hidden = await client.ok('rkllm_run', { ...prompt('hello'), rkllm_infer_params: { mode: 1 } });
    expect(hidden.last_hidden_layer.embd_size).toBe(1536);
    expect(hidden.last_hidden_layer.data).toHaveLength(1536 * hidden.last_hidden_layer.num_tokens);
  });

  it('rkllm_init loads under a generated handle on a free domain; rkllm_destroy unloads it', async () => {
    const first = await client.ok('rkllm_init', { param: { model_path: 'tiny.json' } });
    expect(first.handle).toMatch(/^model-\d+$/);
    expect(first.base_domain_id).toBe(1);
    const second = await client.ok('rkllm_init', { param: { model_path: path.join(modelsDir, 'tiny.json') }, handle: 'mine' });
    expect(second).toEqual({ handle: 'mine', base_domain_id: 2 });
    // Several models: handle is now required.
    expect(await client.fails('rkllm_run', prompt('x'))).toMatchObject({ code: -32602, data: { field: 'handle' } });
    expect((await client.ok('rkllm_run', { ...prompt('count to 2'), handle: 'mine' })).text).toBe('1, 2');
    expect(await client.ok('rkllm_destroy', { handle: 'mine' })).toEqual({ return_code: 0 });
    expect(await client.fails('rkllm_run', { ...prompt('x'), handle: 'mine' })).toMatchObject({ code: -32007 });
    expect(await client.fails('rkllm_is_running', { handle: 'nobody' })).toMatchObject({ code: -32003, data: { handle: 'nobody' } });
    expect(await client.ok('rkllm_destroy', { handle: first.handle })).toEqual({ return_code: 0 });
  });

  it('rkllm_init refuses a loaded handle, a used domain, a failing model, and wrong-ABI fields', async () => {
    expect(await client.fails('rkllm_init', { param: { model_path: 'sim:instant' }, handle: 'default' })).toMatchObject({ code: -32004 });
    expect(await client.fails('rkllm_init', { param: { model_path: 'sim:instant', extend_param: { base_domain_id: 0 } } })).toMatchObject({
      code: -32005,
    });
    const failed = await client.fails('rkllm_init', { param: { model_path: 'sim:faulty-init' } });
    expect(failed.code).toBe(-32006);
    expect(failed.data.detail).toContain('rkllm_init failed');
    const wrongField = abi === '1.2' ? 'ignore_eos_token' : 'img_start';
    const value = abi === '1.2' ? true : '<img>';
    expect(await client.fails('rkllm_init', { param: { model_path: 'sim:instant', [wrongField]: value } })).toMatchObject({
      code: -32602,
      data: { field: `param.${wrongField}` },
    });
    expect(await client.fails('rkllm_init', { param: { model_path: 'sim:nope' } })).toMatchObject({ code: -32602, data: { field: 'param.model_path' } });
    // Nothing was left behind by the failures.
    expect(server.stats().models).toBe(1);
  });

  it('rkllm_is_running and rkllm_get_kv_cache_size', async () => {
    expect(await client.ok('rkllm_is_running')).toEqual({ running: false });
    await client.ok('rkllm_run', { ...prompt('count to 3'), rkllm_infer_params: { keep_history: 1 } });
    const { cache_sizes } = await client.ok('rkllm_get_kv_cache_size', { handle: 'default' });
    expect(cache_sizes).toHaveLength(1);
    expect(cache_sizes[0]).toBeGreaterThan(0);
    expect(await client.ok('rkllm_clear_kv_cache', { keep_system_prompt: false })).toEqual({ return_code: 0 });
    expect((await client.ok('rkllm_get_kv_cache_size')).cache_sizes).toEqual([0]);
  });

  it('rkllm_clear_kv_cache reports a failing call as CALL_FAILED with the code', async () => {
    const error = await client.fails('rkllm_clear_kv_cache', { keep_system_prompt: 0, start_pos: [5], end_pos: [1] });
    expect(error).toMatchObject({ code: -32012, data: { function: 'rkllm_clear_kv_cache', return_code: -1 } });
  });

  it('rkllm_set_chat_template, rkllm_set_function_tools and rkllm_set_cross_attn_params', async () => {
    expect(await client.ok('rkllm_set_chat_template', { system_prompt: 'Be brief.', prompt_prefix: '<u>', prompt_postfix: '</u>' })).toEqual({
      return_code: 0,
    });
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    expect(await client.ok('rkllm_set_function_tools', { system_prompt: '', tools, tool_response_str: 'tool_response' })).toEqual({
      return_code: 0,
    });
    const answer = await client.ok('rkllm_run', prompt('what does get_weather say?'));
    expect(answer.text).toContain('"name": "get_weather"');
    expect(await client.ok('rkllm_set_function_tools', { system_prompt: '', tools: JSON.stringify(tools), tool_response_str: '' })).toEqual({
      return_code: 0,
    });
    expect(await client.fails('rkllm_set_function_tools', { system_prompt: '', tools: '{not json', tool_response_str: '' })).toMatchObject({
      code: -32012,
    });
    const cross = { encoder_k_cache: [0.5], encoder_v_cache: [0.5], encoder_mask: [1], encoder_pos: [0], num_tokens: 1 };
    expect(await client.ok('rkllm_set_cross_attn_params', { cross_attn_params: cross })).toEqual({ return_code: 0 });
    expect(await client.fails('rkllm_set_cross_attn_params', { cross_attn_params: { ...cross, extra: 1 } })).toMatchObject({
      code: -32602,
      data: { field: 'cross_attn_params.extra' },
    });
    await client.ok('rkllm_set_chat_template', { system_prompt: '', prompt_prefix: '', prompt_postfix: '' });
    await client.ok('rkllm_set_function_tools', { system_prompt: '', tools: '[]', tool_response_str: '' });
  });

  it('rkllm_load_lora loads an adapter from the models directory and runs use it', async () => {
    const adapter = { lora_adapter_path: 'adapter.lora', lora_adapter_name: 'style', scale: 0.5 };
    expect(await client.ok('rkllm_load_lora', { lora_adapter: adapter })).toEqual({ return_code: 0 });
    const withLora = await client.ok('rkllm_run', { ...prompt('tell me something'), rkllm_infer_params: { lora_params: { lora_adapter_name: 'style' } } });
    expect(withLora.text.length).toBeGreaterThan(0);
    const missing = await client.fails('rkllm_run', { ...prompt('x'), rkllm_infer_params: { lora_params: { lora_adapter_name: 'other' } } });
    expect(missing.code).toBe(-32011);
    expect(missing.data.detail).toContain("LoRA adapter 'other' is not loaded");
  });

  it('saves, loads and releases a prompt cache inside the cache directory', async () => {
    await client.ok('rkllm_run', {
      ...prompt('count to 2'),
      rkllm_infer_params: { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: 'greeting.cache' } },
    });
    expect(fs.readFileSync(path.join(cacheDir, 'greeting.cache'), 'utf8')).toMatch(/^RKLLM-EMULATED-PROMPT-CACHE 1/);
    expect(await client.ok('rkllm_load_prompt_cache', { prompt_cache_path: 'greeting.cache' })).toEqual({ return_code: 0 });
    expect(await client.ok('rkllm_release_prompt_cache')).toEqual({ return_code: 0 });
    fs.writeFileSync(path.join(cacheDir, 'bad.cache'), 'not a cache');
    expect(await client.fails('rkllm_load_prompt_cache', { prompt_cache_path: 'bad.cache' })).toMatchObject({
      code: -32012,
      data: { function: 'rkllm_load_prompt_cache' },
    });
  });

  it('rkllm_abort with nothing running returns 0', async () => {
    expect(await client.ok('rkllm_abort')).toEqual({ return_code: 0 });
  });
});

describe('start-up', () => {
  it('names --runtime sim when no librkllmrt is found', async () => {
    const saved = process.env.RKLLM_RUNTIME;
    delete process.env.RKLLM_RUNTIME;
    try {
      const { createServer, defaultConfig } = await import('../../lib/serve');
      const { silentLogger } = await import('./helpers');
      await expect(createServer({ ...defaultConfig(), logLevel: 'silent' }, silentLogger)).rejects.toMatchObject({
        name: 'RkllmError',
        code: 'RUNTIME_NOT_FOUND',
        message: expect.stringContaining('--runtime sim'),
      });
    } finally {
      if (saved !== undefined) process.env.RKLLM_RUNTIME = saved;
    }
  });

  it('fails clearly when the start-up model cannot load, or a directory is missing', async () => {
    await expect(startSim('1.3', { model: 'sim:faulty-init' })).rejects.toMatchObject({
      code: 'MODEL_INIT_FAILED',
      message: expect.stringContaining('sim:faulty-init'),
    });
    await expect(startSim('1.3', { modelsDirs: ['/nonexistent/models'] })).rejects.toMatchObject({
      message: expect.stringContaining('/nonexistent/models'),
    });
  });

  it('answers NO_MODEL when no model is loaded', async () => {
    const server = await startSim('1.3');
    try {
      const client = new TestClient(server);
      expect(await client.fails('rkllm_run', prompt('x'))).toMatchObject({ code: -32002 });
      expect(await client.fails('rkllm_is_running')).toMatchObject({ code: -32002 });
    } finally {
      await server.shutdown();
    }
  });
});
