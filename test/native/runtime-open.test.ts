// Opening runtimes: the emulated builds of both ABIs, and every way a library can be refused,
// each with its own error code.

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  CPUMask,
  emulatedRuntimePath,
  LLMCallState,
  listSimModels,
  openRuntime,
  RKLLMInferMode,
  RKLLMInputType,
  type AbiName,
  type PartialParam,
} from '../../lib';
import { ABIS, destroyModel, makeScratchDir, openSim, rejectionOf, removeScratchDir } from './helpers';

describe.each(ABIS)('emulated runtime, ABI %s', (abi) => {
  test('opens through path "sim" and reports itself as the emulated build of that ABI', async () => {
    const runtime = await openSim(abi);
    expect(runtime.info.abi).toBe(abi);
    expect(runtime.info.emulated).toBe(true);
    expect(runtime.info.abiSource).toBe('emulated-marker');
    expect(path.basename(runtime.info.path)).toBe(`librkllmrt-emulated-${abi}.so`);
  });

  test('createDefaultParam gives the documented defaults and the fields of its ABI only', async () => {
    const runtime = await openSim(abi);
    const param = runtime.createDefaultParam();
    expect(param.top_k).toBe(40);
    expect(param.top_p).toBeCloseTo(0.9, 5);
    expect(param.temperature).toBeCloseTo(0.8, 5);
    expect(param.repeat_penalty).toBeCloseTo(1.1, 5);
    expect(param.mirostat_tau).toBeCloseTo(5.0, 5);
    expect(param.mirostat_eta).toBeCloseTo(0.1, 5);
    expect(param.extend_param.n_batch).toBe(1);
    expect(param.extend_param.base_domain_id).toBe(0);
    expect(param.extend_param.enabled_cpus_num).toBe(4);
    if (abi === '1.3') {
      expect(typeof param.ignore_eos_token).toBe('boolean');
      expect(param).not.toHaveProperty('img_start');
    } else {
      expect(param).toHaveProperty('img_start');
      expect(param).not.toHaveProperty('ignore_eos_token');
    }
    // Each call hands out a fresh object: a caller's edits never leak into the next.
    param.top_k = 1;
    param.extend_param.n_batch = 7;
    const again = runtime.createDefaultParam();
    expect(again.top_k).toBe(40);
    expect(again.extend_param.n_batch).toBe(1);
  });

  test('exposes the RKLLM enums by their C names', async () => {
    const runtime = await openSim(abi);
    expect(runtime.constants.LLMCallState).toEqual({
      RKLLM_RUN_NORMAL: 0,
      RKLLM_RUN_WAITING: 1,
      RKLLM_RUN_FINISH: 2,
      RKLLM_RUN_ERROR: 3,
    });
    expect(runtime.constants.RKLLMInputType).toEqual({
      RKLLM_INPUT_PROMPT: 0,
      RKLLM_INPUT_TOKEN: 1,
      RKLLM_INPUT_EMBED: 2,
      RKLLM_INPUT_MULTIMODAL: 3,
    });
    expect(runtime.constants.RKLLMInferMode).toEqual({
      RKLLM_INFER_GENERATE: 0,
      RKLLM_INFER_GET_LAST_HIDDEN_LAYER: 1,
      RKLLM_INFER_GET_LOGITS: 2,
    });
    expect(runtime.constants.CPUMask).toEqual({
      CPU0: 1, CPU1: 2, CPU2: 4, CPU3: 8, CPU4: 16, CPU5: 32, CPU6: 64, CPU7: 128,
    });
    // The same objects are exported for code that has no runtime at hand.
    expect(runtime.constants.LLMCallState).toBe(LLMCallState);
    expect(runtime.constants.RKLLMInputType).toBe(RKLLMInputType);
    expect(runtime.constants.RKLLMInferMode).toBe(RKLLMInferMode);
    expect(runtime.constants.CPUMask).toBe(CPUMask);
    expect(Object.isFrozen(runtime.constants.LLMCallState)).toBe(true);
  });
});

describe('choosing the runtime', () => {
  const savedRuntimeEnv = process.env.RKLLM_RUNTIME;
  afterEach(() => {
    if (savedRuntimeEnv === undefined) delete process.env.RKLLM_RUNTIME;
    else process.env.RKLLM_RUNTIME = savedRuntimeEnv;
  });

  test('"sim" without an ABI opens the 1.3 build', async () => {
    const runtime = await openRuntime({ path: 'sim' });
    expect(runtime.info.abi).toBe('1.3');
    expect(runtime.info.emulated).toBe(true);
  });

  test('RKLLM_RUNTIME is used when no path is given', async () => {
    process.env.RKLLM_RUNTIME = emulatedRuntimePath('1.2');
    const runtime = await openRuntime();
    expect(runtime.info.abi).toBe('1.2');
    expect(runtime.info.path).toBe(fs.realpathSync(emulatedRuntimePath('1.2')));
  });

  test('an explicit path to an emulated build opens it by its marker', async () => {
    const runtime = await openRuntime({ path: emulatedRuntimePath('1.2') });
    expect(runtime.info).toMatchObject({ abi: '1.2', abiSource: 'emulated-marker', emulated: true });
  });

  test('the bundled sim models are listed', () => {
    const names = listSimModels();
    expect(names).toEqual(expect.arrayContaining(['instant', 'rk3588-qwen2.5-1.5b', 'faulty-init']));
    expect([...names].sort()).toEqual(names);
  });
});

// A library with the RKLLM function names but none of the emulated runtime's marker, built here.
const FAKE_LIBRARY_SOURCE = `
#include <string.h>
typedef struct { unsigned char bytes[184]; } param13_t; /* RKLLMParam of ABI 1.3 */
param13_t rkllm_createDefaultParam(void) { param13_t p; memset(&p, 0, sizeof p); return p; }
int rkllm_init(void **handle, void *param, void *callback) { return -1; }
int rkllm_load_lora(void *handle, void *adapter) { return -1; }
int rkllm_load_prompt_cache(void *handle, const char *path) { return -1; }
int rkllm_release_prompt_cache(void *handle) { return -1; }
int rkllm_destroy(void *handle) { return -1; }
int rkllm_run(void *handle, void *input, void *infer, void *userdata) { return -1; }
int rkllm_run_async(void *handle, void *input, void *infer, void *userdata) { return -1; }
int rkllm_abort(void *handle) { return -1; }
int rkllm_is_running(void *handle) { return 0; }
int rkllm_clear_kv_cache(void *handle, int keep, int *start, int *end) { return -1; }
int rkllm_get_kv_cache_size(void *handle, int *sizes) { return -1; }
int rkllm_set_chat_template(void *handle, const char *a, const char *b, const char *c) { return -1; }
int rkllm_set_function_tools(void *handle, const char *a, const char *b, const char *c) { return -1; }
#ifndef LEAVE_OUT_CROSS_ATTN
int rkllm_set_cross_attn_params(void *handle, void *params) { return -1; }
#endif
`;

describe('refusing libraries', () => {
  let scratch: string;
  let completeLibrary: string;
  let incompleteLibrary: string;
  let notALibrary: string;

  beforeAll(() => {
    scratch = makeScratchDir('runtime-open');
    const source = path.join(scratch, 'fake_rkllmrt.c');
    fs.writeFileSync(source, FAKE_LIBRARY_SOURCE);
    completeLibrary = path.join(scratch, 'libfake-complete.so');
    incompleteLibrary = path.join(scratch, 'libfake-incomplete.so');
    const compile = (output: string, extra: string[]): void => {
      execFileSync('cc', ['-shared', '-fPIC', '-O0', ...extra, '-o', output, source], { stdio: 'pipe', timeout: 60_000 });
    };
    compile(completeLibrary, []);
    compile(incompleteLibrary, ['-DLEAVE_OUT_CROSS_ATTN']);
    notALibrary = path.join(scratch, 'not-a-library.so');
    fs.writeFileSync(notALibrary, 'This is a text file pretending to be a shared library.\n'.repeat(20));
  }, 90_000);

  afterAll(() => removeScratchDir(scratch));

  test('a path with no file: RUNTIME_NOT_FOUND', async () => {
    const missing = path.join(scratch, 'no-such-dir', 'librkllmrt.so');
    const error = await rejectionOf(openRuntime({ path: missing }));
    expect(error.code).toBe('RUNTIME_NOT_FOUND');
    expect(error.message).toContain(missing);
  });

  test('a bare name the dynamic loader cannot find: RUNTIME_NOT_FOUND', async () => {
    const error = await rejectionOf(openRuntime({ path: 'librkllmrt-does-not-exist.so' }));
    expect(error.code).toBe('RUNTIME_NOT_FOUND');
    expect(error.message).toContain('librkllmrt-does-not-exist.so');
  });

  test('a file that is not a library: RUNTIME_LOAD_FAILED with dlopen\'s own words', async () => {
    const error = await rejectionOf(openRuntime({ path: notALibrary }));
    expect(error.code).toBe('RUNTIME_LOAD_FAILED');
    expect(error.message).toContain(notALibrary);
    expect(error.message).toMatch(/invalid ELF header|file too short/);
  });

  test('a library without one of the 15 functions: RUNTIME_SYMBOL_MISSING naming it', async () => {
    const error = await rejectionOf(openRuntime({ path: incompleteLibrary }));
    expect(error.code).toBe('RUNTIME_SYMBOL_MISSING');
    expect(error.message).toContain('rkllm_set_cross_attn_params');
    expect(error.message).not.toContain('rkllm_set_function_tools');
  });

  test('all 15 functions, no marker, unknown contents: RUNTIME_ABI_UNKNOWN saying how to choose', async () => {
    const error = await rejectionOf(openRuntime({ path: completeLibrary }));
    expect(error.code).toBe('RUNTIME_ABI_UNKNOWN');
    expect(error.message).toContain(fs.realpathSync(completeLibrary));
    expect(error.message).toMatch(/ABI/);
    expect(error.message).toContain("'1.2'");
    expect(error.message).toContain("'1.3'");
  });

  test('the same library with an explicit ABI opens', async () => {
    const runtime = await openRuntime({ path: completeLibrary, abi: '1.3' });
    expect(runtime.info).toMatchObject({
      path: fs.realpathSync(completeLibrary),
      abi: '1.3',
      abiSource: 'explicit',
      emulated: false,
    });
  });

  test('an explicit ABI contradicting the emulated build: RUNTIME_ABI_MISMATCH', async () => {
    const error = await rejectionOf(openRuntime({ path: emulatedRuntimePath('1.3'), abi: '1.2' }));
    expect(error.code).toBe('RUNTIME_ABI_MISMATCH');
    expect(error.message).toContain('1.3');
    expect(error.message).toContain('1.2');
  });

  test('an explicit ABI agreeing with the emulated build opens, as explicit', async () => {
    const runtime = await openRuntime({ path: emulatedRuntimePath('1.3'), abi: '1.3' });
    expect(runtime.info).toMatchObject({ abi: '1.3', abiSource: 'explicit', emulated: true });
  });

  test.each([['1.4'], ['1'], [13], [null]])('abi %p: INVALID_ARGUMENT naming the option', async (badAbi) => {
    const error = await rejectionOf(openRuntime({ path: completeLibrary, abi: badAbi as unknown as AbiName }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toContain('abi');
  });

  test('a bad path value or an unknown option: INVALID_ARGUMENT', async () => {
    expect((await rejectionOf(openRuntime({ path: 42 as unknown as string }))).code).toBe('INVALID_ARGUMENT');
    expect((await rejectionOf(openRuntime({ path: '' }))).code).toBe('INVALID_ARGUMENT');
    const unknownOption = await rejectionOf(openRuntime({ path: 'sim', api: '1.3' } as unknown as { path: string }));
    expect(unknownOption.code).toBe('INVALID_ARGUMENT');
    expect(unknownOption.message).toContain('api');
  });
});

describe('loadModel checks its param', () => {
  test.each(ABIS)('ABI %s: unknown fields, wrong types and unknown sim models are refused by name', async (abi) => {
    const runtime = await openSim(abi);
    const refusal = async (param: unknown, field: string): Promise<void> => {
      const error = await rejectionOf(runtime.loadModel(param as PartialParam));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toContain(field);
    };
    await refusal({ model_path: 'sim:instant', top_kk: 3 }, 'top_kk');
    await refusal({ model_path: 'sim:instant', top_k: '40' }, 'top_k');
    await refusal({ model_path: 'sim:instant', top_k: 1.5 }, 'top_k');
    await refusal({ model_path: 'sim:instant', temperature: Number.NaN }, 'temperature');
    await refusal({ model_path: 'sim:instant', skip_special_token: 1 }, 'skip_special_token');
    await refusal({ model_path: 'sim:instant', extend_param: { n_batch: 256 } }, 'n_batch');
    await refusal({ model_path: 'sim:instant', extend_param: { base_domain: 1 } }, 'base_domain');
    await refusal({ model_path: 'sim:instant', extend_param: 3 }, 'extend_param');
    await refusal({ top_k: 3 }, 'model_path');
    await refusal({ model_path: 7 }, 'model_path');
    await refusal(null, 'param');
    // The field of the other ABI is named as such.
    await refusal(
      abi === '1.3' ? { model_path: 'sim:instant', img_start: '<img>' } : { model_path: 'sim:instant', ignore_eos_token: true },
      abi === '1.3' ? 'img_start' : 'ignore_eos_token',
    );
    const unknownModel = await rejectionOf(runtime.loadModel({ model_path: 'sim:no-such-model' }));
    expect(unknownModel.code).toBe('INVALID_ARGUMENT');
    expect(unknownModel.message).toContain('no-such-model');
    expect(unknownModel.message).toContain('instant');
    const escape = await rejectionOf(runtime.loadModel({ model_path: 'sim:../models/instant' }));
    expect(escape.code).toBe('INVALID_ARGUMENT');
  });

  test.each(ABIS)('ABI %s: a partial param is merged over the defaults and loads', async (abi) => {
    const runtime = await openSim(abi);
    const model = await runtime.loadModel({
      model_path: 'sim:instant',
      max_context_len: 1024,
      top_k: undefined, // Left unset: the default applies.
      extend_param: { base_domain_id: 5 },
    });
    try {
      expect(await model.run('count to 3')).toMatchObject({ text: '1, 2, 3', state: 2 });
    } finally {
      await destroyModel(model);
    }
  });
});
