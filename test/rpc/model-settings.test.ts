// The model settings schema (lib/core/model-settings.ts): what RKLLMParam a model's settings give,
// keep-alive durations, the precedence of layers, and a mistake named as it was written.

import {
  DEFAULT_CONTEXT_LENGTH,
  DEFAULT_KEEP_ALIVE_MS,
  KEEP_FOREVER,
  ModelEntrySchema,
  ModelSettingsSchema,
  checkSettings,
  keepAliveMs,
  modelNameFromFile,
  paramOf,
  resolveSettings,
} from '../../lib/core/model-settings';

describe('model settings', () => {
  it('give a chat-sized context and answer by default, and nothing else the runtime has its own default for', () => {
    const settings = resolveSettings({ path: '/m/q.rkllm' }, [], { name: 'q', keepAliveMs: DEFAULT_KEEP_ALIVE_MS });
    expect(paramOf(settings, '/m/q.rkllm')).toEqual({ model_path: '/m/q.rkllm', max_context_len: DEFAULT_CONTEXT_LENGTH, max_new_tokens: 1024 });
    expect(settings).toMatchObject({ name: 'q', aliases: [], keep_alive_ms: 5 * 60_000 });
  });

  it('map onto RKLLMParam and its extend_param, the CPU mask in hex or not, its core count derived', () => {
    const settings = resolveSettings(
      { path: 'm.rkllm', top_k: 20, top_p: 0.8, temperature: 0.6, repeat_penalty: 1.05, n_keep: 32, enabled_cpus_mask: '0xF0', embed_flash: true, ignore_eos_token: false },
      [],
      { name: 'm', keepAliveMs: 0 },
    );
    expect(paramOf(settings, 'm.rkllm')).toEqual({
      model_path: 'm.rkllm',
      max_context_len: 4096,
      max_new_tokens: 1024,
      top_k: 20,
      top_p: 0.8,
      temperature: 0.6,
      repeat_penalty: 1.05,
      n_keep: 32,
      ignore_eos_token: false,
      extend_param: { enabled_cpus_mask: 0xf0, enabled_cpus_num: 4, embed_flash: 1 },
    });
    const two = resolveSettings({ path: 'm.rkllm', enabled_cpus_mask: 0x30, enabled_cpus_num: 1 }, [], { name: 'm', keepAliveMs: 0 });
    expect(paramOf(two, 'm.rkllm').extend_param).toEqual({ enabled_cpus_mask: 0x30, enabled_cpus_num: 1 });
  });

  it('take later layers over earlier ones, member by member', () => {
    const settings = resolveSettings({ path: 'm.rkllm', max_context_len: 2048, temperature: 0.7 }, [{ temperature: 0.2 }, { top_k: 5, temperature: undefined }], {
      name: 'm',
      keepAliveMs: KEEP_FOREVER,
    });
    expect(settings).toMatchObject({ max_context_len: 2048, temperature: 0.2, top_k: 5, keep_alive_ms: KEEP_FOREVER });
  });

  it('read keep_alive as seconds or a duration; any negative value is forever', () => {
    expect(keepAliveMs(undefined, 123)).toBe(123);
    expect(keepAliveMs(0, 123)).toBe(0);
    expect(keepAliveMs(30, 0)).toBe(30_000);
    expect(keepAliveMs('250ms', 0)).toBe(250);
    expect(keepAliveMs('1.5s', 0)).toBe(1500);
    expect(keepAliveMs('5m', 0)).toBe(300_000);
    expect(keepAliveMs('2h', 0)).toBe(7_200_000);
    expect(keepAliveMs(-1, 0)).toBe(KEEP_FOREVER);
    expect(keepAliveMs('-1', 0)).toBe(KEEP_FOREVER);
    expect(() => keepAliveMs('soon', 0)).toThrow(/keep_alive/);
  });

  it('name a model from its file', () => {
    expect(modelNameFromFile('/models/Qwen2.5-1.5B-Instruct-w8a8.rkllm')).toBe('qwen2.5-1.5b-instruct-w8a8');
    expect(modelNameFromFile('phi-3-mini.RKLLM')).toBe('phi-3-mini');
  });

  it('carry the chat template and truncation policy the front ends read', () => {
    expect(checkSettings(ModelSettingsSchema, { chat_template: 'llama3', truncation: 'drop_oldest' }, 'x.json')).toEqual({ chat_template: 'llama3', truncation: 'drop_oldest' });
    const custom = { system_prompt: '<s>', prompt_prefix: '[U]', prompt_postfix: '[A]' };
    expect(checkSettings(ModelSettingsSchema, { chat_template: custom }, 'x.json').chat_template).toEqual(custom);
  });

  it('name a mistake as it was written: an unknown key with the known ones, or the member at fault', () => {
    expect(() => checkSettings(ModelSettingsSchema, { ctx_size: 4096 }, 'qwen.json')).toThrow(/^qwen\.json\.ctx_size is not a model setting; the settings are: name, aliases, max_context_len/);
    expect(() => checkSettings(ModelEntrySchema, { path: 'a', lora: [{ path: 'l.rkllm', scale: 'big' }] }, 'model[2]')).toThrow(/^model\[2\]\.lora\[0\]\.scale /);
    expect(() => checkSettings(ModelSettingsSchema, { truncation: 'middle' }, 'm')).toThrow(/^m\.truncation /);
    expect(() => checkSettings(ModelSettingsSchema, { enabled_cpus_mask: '0xF00' }, 'm')).toThrow(/^m\.enabled_cpus_mask /);
    expect(() => checkSettings(ModelEntrySchema, { max_context_len: 4096 }, 'model')).toThrow(/^model\.path is required$/);
  });
});
