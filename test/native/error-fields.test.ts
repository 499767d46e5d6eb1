// The structured fields of RkllmError on representative failures: INVALID_ARGUMENT names its
// field (rooted at the C API's name for the argument) and reason apart from the message, and a
// failed RKLLM function gives its name and return code.

import * as path from 'path';
import { emulatedRuntimePath, openRuntime, RkllmError, type Model, type PartialParam, type RKLLMInput, type Runtime } from '../../lib';
import { loadNative } from '../../lib/native/load';
import { PACKAGE_ROOT, runChild } from './child';
import { ALL_ABIS, destroyModel, loadSim, makeScratchDir, openSim, rejectionOf, removeScratchDir } from './helpers';

/** The native layer words its messages "field reason". */
function expectNativeArgument(error: RkllmError, field: string, reason: string | RegExp): void {
  expect(error.code).toBe('INVALID_ARGUMENT');
  expect(error.field).toBe(field);
  if (typeof reason === 'string') expect(error.reason).toBe(reason);
  else expect(error.reason).toMatch(reason);
  expect(error.message).toBe(`${field} ${error.reason}`);
}

/** The library layer words its messages "field: reason". */
function expectLibraryArgument(error: RkllmError, field: string, reason: string | RegExp): void {
  expect(error.code).toBe('INVALID_ARGUMENT');
  expect(error.field).toBe(field);
  if (typeof reason === 'string') expect(error.reason).toBe(reason);
  else expect(error.reason).toMatch(reason);
  expect(error.message).toBe(`${field}: ${error.reason}`);
}

/** What a synchronous throw of the addon carries. */
function thrownBy(call: () => unknown): RkllmError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(RkllmError);
    return error as RkllmError;
  }
  throw new Error('expected a throw');
}

describe.each(ALL_ABIS)('ABI %s', (abi) => {
  let runtime: Runtime;
  let model: Model;
  let scratch: string;

  beforeAll(async () => {
    scratch = makeScratchDir(`error-fields-${abi}`);
    runtime = await openSim(abi);
    model = await loadSim(runtime, 'instant');
  }, 60_000);

  afterAll(async () => {
    await destroyModel(model);
    removeScratchDir(scratch);
  });

  const runFails = (input: RKLLMInput, infer?: object): Promise<RkllmError> =>
    rejectionOf(model.run(input, infer as Parameters<Model['run']>[1]));

  test('an empty token_input: field rkllm_input.token_input', async () => {
    expectNativeArgument(await runFails({ input_type: 1, token_input: [] }), 'rkllm_input.token_input', 'must not be empty');
    expectNativeArgument(
      await runFails({ input_type: 1, token_input: new Int32Array(0) }),
      'rkllm_input.token_input',
      'must not be empty',
    );
  });

  test('members of the input, nested and indexed, are named by their path', async () => {
    expectNativeArgument(
      await runFails({ input_type: 1, token_input: [1, 2.5] }),
      'rkllm_input.token_input[1]',
      'must be a 32-bit integer',
    );
    expectNativeArgument(
      await runFails({ input_type: 2, embed_input: { embed: [0.5], n_tokens: 0 } }),
      'rkllm_input.embed_input.n_tokens',
      'must be positive',
    );
    expectNativeArgument(
      await runFails({ input_type: 2, embed_input: { embed: [], n_tokens: 1 } }),
      'rkllm_input.embed_input.embed',
      'length must be a positive multiple of n_tokens',
    );
    expectNativeArgument(
      await runFails({ input_type: 3, multimodal_input: { prompt: 'x', image_embed: [0.5, 0.5], n_image_tokens: 1 } }),
      'rkllm_input.multimodal_input.n_image',
      'must be positive when image_embed is given',
    );
    expectNativeArgument(
      await runFails({
        input_type: 3,
        multimodal_input: { prompt: 'x', video_embed: [0.5, 0.5, 0.5], n_video: 1, n_frame_per_video: 2, n_frame_tokens: 1 },
      }),
      'rkllm_input.multimodal_input.video_embed',
      'length must be a multiple of n_video x n_frame_per_video x n_frame_tokens',
    );
    // Counts whose product overflows 64 bits are too many for any array (not a wrapped-around match).
    expectNativeArgument(
      await runFails({ input_type: 3, multimodal_input: { prompt: 'x', image_embed: [0.5], n_image: 2 ** 32, n_image_tokens: 2 ** 32 } }),
      'rkllm_input.multimodal_input.image_embed',
      'length must be a multiple of n_image x n_image_tokens',
    );
  });

  test('infer params are named under rkllm_infer_params', async () => {
    expectNativeArgument(await runFails({ input_type: 0, prompt_input: 'x' }, { mode: 5 }), 'rkllm_infer_params.mode', 'must be between 0 and 2');
    expectNativeArgument(
      await runFails({ input_type: 0, prompt_input: 'x' }, { sampling_params: { top_p: 0.9 } }),
      'rkllm_infer_params.sampling_params.top_k',
      'must be a number',
    );
    expectNativeArgument(
      await runFails({ input_type: 0, prompt_input: 'x' }, { lora_params: {} }),
      'rkllm_infer_params.lora_params.lora_adapter_name',
      'must be a string',
    );
  });

  test('the model functions name their C argument', async () => {
    expectNativeArgument(
      await rejectionOf(model.loadLora({ lora_adapter_path: 'a', lora_adapter_name: 'b', scale: 'high' as unknown as number })),
      'lora_adapter.scale',
      'must be a number',
    );
    expectNativeArgument(
      await rejectionOf(
        model.setCrossAttnParams({ encoder_k_cache: [0], encoder_v_cache: [0], encoder_mask: [1], encoder_pos: [0], num_tokens: 5 }),
      ),
      'cross_attn_params.num_tokens',
      'exceeds the length of encoder_pos or encoder_mask',
    );
    expectNativeArgument(await rejectionOf(model.clearKvCache(true, [0])), 'end_pos', 'must be given with start_pos');
    expectNativeArgument(
      await rejectionOf(model.clearKvCache(true, [0], [1, 2])),
      'end_pos',
      'must have as many entries as start_pos (one per batch entry)',
    );
    expectNativeArgument(await rejectionOf(model.loadPromptCache('a\0b')), 'prompt_cache_path', 'must not contain NUL characters');
  });

  test('param: the library names the field it refuses; the addon names what gets past it', async () => {
    const refused = await rejectionOf(runtime.loadModel({ model_path: 'sim:instant', extend_param: { n_batch: 256 } }));
    expectLibraryArgument(refused, 'param.extend_param.n_batch', 'expected an integer in 0..255 (uint8), got number 256');
    expectLibraryArgument(
      await rejectionOf(runtime.loadModel({ model_path: 'sim:instant', top_kk: 3 } as PartialParam)),
      'param.top_kk',
      'not a field of RKLLMParam',
    );
    expectLibraryArgument(await rejectionOf(runtime.loadModel({ model_path: 'sim:nope' })), 'param.model_path', /^unknown sim model 'nope'/);

    // The addon's own bounds are narrower than the C type's (embed_flash is 0 or 1).
    const native = await loadNative().openRuntime({ path: emulatedRuntimePath(abi) });
    const defaults = native.createDefaultParam();
    const error = thrownBy(() => native.init({ ...defaults, model_path: 'x', extend_param: { ...defaults.extend_param, embed_flash: 2 } }));
    expectNativeArgument(error, 'param.extend_param.embed_flash', 'must be between 0 and 1');
    expectNativeArgument(thrownBy(() => native.init({ ...defaults, model_path: '' })), 'param.model_path', 'must not be empty');
  });

  test('the library layer names run and open arguments', async () => {
    expectLibraryArgument(await runFails(42 as unknown as RKLLMInput), 'rkllm_input', 'expected a string or an RKLLMInput object');
    expectLibraryArgument(await rejectionOf(model.run('x', 'fast' as unknown as object)), 'rkllm_infer_params', 'expected an object');
    expectLibraryArgument(await rejectionOf(model.run('x', undefined, { signal: {} as AbortSignal })), 'options.signal', 'expected an AbortSignal');
    expectLibraryArgument(
      await rejectionOf(openRuntime({ path: 'sim', abi: '1.4' as '1.3' })),
      'options.abi',
      `expected '1.2' or '1.3', got "1.4"`,
    );
  });

  test('a failed RKLLM function: CALL_FAILED with fn and returnCode', async () => {
    const lora = await rejectionOf(
      model.loadLora({ lora_adapter_path: path.join(scratch, 'no-such-adapter'), lora_adapter_name: 'x', scale: 1 }),
    );
    expect(lora).toMatchObject({ code: 'CALL_FAILED', fn: 'rkllm_load_lora', returnCode: -1, field: undefined });
    expect(lora.message).toBe('rkllm_load_lora returned -1');
    const cache = await rejectionOf(model.loadPromptCache(path.join(scratch, 'no-such-cache.bin')));
    expect(cache).toMatchObject({ code: 'CALL_FAILED', fn: 'rkllm_load_prompt_cache', returnCode: -1 });
  });

  test('a run that rkllm_run fails: RUN_FAILED with fn and returnCode', async () => {
    const failed = await rejectionOf(model.run('x', { lora_params: { lora_adapter_name: 'never-loaded' } }));
    expect(failed).toMatchObject({ code: 'RUN_FAILED', fn: 'rkllm_run', returnCode: -1 });
    expect(failed.message).toContain("'never-loaded'");
    expect(failed.message).toContain('(returned -1)');
  });

  test('a failed rkllm_init: MODEL_INIT_FAILED with fn and returnCode; a missing file has no call to name', async () => {
    const failed = await rejectionOf(runtime.loadModel({ model_path: 'sim:faulty-init' }));
    expect(failed.code).toBe('MODEL_INIT_FAILED');
    expect(failed.fn).toBe('rkllm_init');
    expect(failed.returnCode).toEqual(expect.any(Number));
    expect(failed.returnCode).not.toBe(0);
    expect(failed.message).toContain(`(returned ${failed.returnCode})`);

    const missing = await rejectionOf(runtime.loadModel({ model_path: path.join(scratch, 'no-such-model.rkllm') }));
    expect(missing).toMatchObject({ code: 'MODEL_INIT_FAILED', fn: undefined, returnCode: undefined });
  });
});

test('before setErrorClass, the addon throws plain Errors carrying the same fields', async () => {
  const addon = path.join(PACKAGE_ROOT, 'build', 'Release', 'rkllm_serve.node');
  const outcome = await runChild(
    `
      const addon = require(${JSON.stringify(addon)});
      try {
        addon.openRuntime({ path: '' });
      } catch (error) {
        console.log(JSON.stringify({ name: error.name, code: error.code, field: error.field, reason: error.reason, message: error.message }));
      }
    `,
    20_000,
  );
  expect(outcome).toMatchObject({ timedOut: false, code: 0 });
  expect(JSON.parse(outcome.stdout)).toEqual({
    name: 'Error',
    code: 'INVALID_ARGUMENT',
    field: 'options.path',
    reason: 'must not be empty',
    message: 'options.path must not be empty',
  });
}, 30_000);
