// The RKLLM structs are written once, as schemas (lib/native/structs.ts), and read and reported by
// name in C++ (addon/params.cc). These tests hold the two together for each ABI: what
// createDefaultParam reports, and every member the addon asks for in what it is given, are
// exactly the schema's members.

import { TypeGuard, type TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { emulatedRuntimePath, resolveModelPath } from '../../lib';
import type { NativeModel, NativeRunEvent, NativeRuntime, RKLLMInferParam, RKLLMInput, RKLLMParam } from '../../lib/native/binding';
import { loadNative } from '../../lib/native/load';
import * as Structs from '../../lib/native/structs';
import { ALL_ABIS, rejectionOf } from './helpers';

const EMBEDDING_SIZE = 1536; // of sim:instant
const RUN_BOUND_MS = 10_000;

/** Every member of a struct by its path, nested structs' members included ("extend_param.n_batch"). */
function memberPaths(struct: TObject, prefix = ''): string[] {
  const paths: string[] = [];
  for (const [name, member] of Object.entries(struct.properties)) {
    paths.push(prefix + name);
    if (TypeGuard.IsObject(member)) paths.push(...memberPaths(member, `${prefix}${name}.`));
  }
  return paths.sort();
}

function isPlainObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** `value` behind proxies that note, by path, every member the addon asks about or reads. */
function recorded<T extends object>(value: T, asked: Set<string>, prefix = ''): T {
  return new Proxy(value, {
    has(target, key) {
      if (typeof key === 'string') asked.add(prefix + key);
      return Reflect.has(target, key);
    },
    get(target, key) {
      const member: unknown = Reflect.get(target, key);
      if (typeof key !== 'string') return member;
      asked.add(prefix + key);
      return isPlainObject(member) ? recorded(member, asked, `${prefix}${key}.`) : member;
    },
  });
}

function sorted(asked: Set<string>): string[] {
  return [...asked].sort();
}

/** Runs to the 'end' event (whatever its status), within a bound. */
function runToEnd(model: NativeModel, input: RKLLMInput, infer: RKLLMInferParam): Promise<NativeRunEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no end event within ${RUN_BOUND_MS} ms`)), RUN_BOUND_MS);
    try {
      model.run(input, infer, (events) => {
        const end = events.find((event) => event.kind === 'end');
        if (!end) return;
        clearTimeout(timer);
        resolve(end);
      });
    } catch (error) {
      clearTimeout(timer);
      reject(error);
    }
  });
}

const floats = (count: number): number[] => Array.from({ length: count }, (_, i) => (i % 7) / 7);

/** One input per input_type, each with every member its type may carry. */
const INPUTS: RKLLMInput[] = [
  { input_type: 0, role: 'user', enable_thinking: false, prompt_input: 'count to 2' },
  { input_type: 1, role: 'user', enable_thinking: false, token_input: [1, 2, 3] },
  { input_type: 2, role: 'user', enable_thinking: false, embed_input: { embed: floats(EMBEDDING_SIZE), n_tokens: 1 } },
  {
    input_type: 3,
    role: 'user',
    enable_thinking: false,
    multimodal_input: {
      prompt: '<image>What is this?',
      image_embed: floats(EMBEDDING_SIZE),
      n_image_tokens: 1,
      n_image: 1,
      image_width: 8,
      image_height: 8,
      image_start: '<img>',
      image_end: '</img>',
      image_content: '<image>',
      video_embed: floats(EMBEDDING_SIZE),
      n_frame_tokens: 1,
      n_frame_per_video: 1,
      n_video: 1,
      video_start: '<vid>',
      video_end: '</vid>',
      video_content: '<video>',
      frame_width: 8,
      frame_height: 8,
      // Empty: ABIs without the audio block refuse audio embeddings (abi-131.test.ts sends some).
      audio_embed: [],
      n_audio_tokens: 0,
      n_audio: 0,
      audio_start: '<|audio>',
      audio_end: '<audio|>',
      audio_content: '<|audio|>',
    },
  },
];

/** Every member of RKLLMInferParam, nested structs complete. */
const FULL_INFER: RKLLMInferParam = {
  mode: 0,
  lora_params: { lora_adapter_name: 'never-loaded' },
  prompt_cache_params: { save_prompt_cache: 0, prompt_cache_path: '/nonexistent/prompt.cache' },
  sampling_params: {
    top_k: 1,
    top_p: 0.9,
    temperature: 0.8,
    repeat_penalty: 1.1,
    frequency_penalty: 0,
    presence_penalty: 0,
    mirostat: 0,
    mirostat_tau: 5,
    mirostat_eta: 0.1,
  },
  keep_history: 0,
  max_new_tokens: 4,
};

test('the test inputs are valid by the schemas, and leave no member out', () => {
  for (const input of INPUTS) expect(Value.Check(Structs.RKLLMInput, input)).toBe(true);
  expect(Value.Check(Structs.RKLLMInferParam, FULL_INFER)).toBe(true);
  const given = new Set<string>();
  const walk = (value: object, prefix: string): void => {
    for (const [key, member] of Object.entries(value)) {
      given.add(prefix + key);
      if (isPlainObject(member)) walk(member, `${prefix}${key}.`);
    }
  };
  INPUTS.forEach((input) => walk(input, ''));
  expect(sorted(given)).toEqual(memberPaths(Structs.RKLLMInput));
  given.clear();
  walk(FULL_INFER, '');
  expect(sorted(given)).toEqual(memberPaths(Structs.RKLLMInferParam));
});

describe.each(ALL_ABIS)('ABI %s', (abi) => {
  let runtime: NativeRuntime;
  let model: NativeModel;
  let defaults: RKLLMParam;

  beforeAll(async () => {
    runtime = await loadNative().openRuntime({ path: emulatedRuntimePath(abi) });
    defaults = runtime.createDefaultParam();
    model = await runtime.init({ ...defaults, model_path: resolveModelPath('sim:instant') });
  }, 60_000);

  afterAll(async () => {
    if (model && !model.destroyed) await model.destroy();
  });

  test('createDefaultParam reports exactly the members of this ABI, typed as the schema says', () => {
    expect(Object.keys(defaults).sort()).toEqual(Structs.membersIn(Structs.RKLLMParam, abi).sort());
    expect(Object.keys(defaults.extend_param).sort()).toEqual(Structs.membersIn(Structs.ExtendParam, abi).sort());
    expect(Value.Check(Structs.RKLLMParam, defaults)).toBe(true);
    // The members of the other ABI are really left out, not reported as undefined.
    const other = abi === '1.2' ? ['ignore_eos_token'] : ['img_start', 'img_end', 'img_content'];
    for (const name of other) expect(Object.prototype.hasOwnProperty.call(defaults, name)).toBe(false);
  });

  test('init asks for every member of RKLLMParam (both ABIs\' members) and nothing else', async () => {
    const asked = new Set<string>();
    // A model file that does not exist: everything is read, then init fails without loading anything.
    const param = recorded({ ...defaults, model_path: '/nonexistent/model.rkllm', extend_param: { ...defaults.extend_param } }, asked);
    expect((await rejectionOf(runtime.init(param))).code).toBe('MODEL_INIT_FAILED');
    expect(sorted(asked)).toEqual(memberPaths(Structs.RKLLMParam));
  });

  test('run asks for every member of RKLLMInput (over the four input types) and of RKLLMInferParam', async () => {
    const askedInput = new Set<string>();
    const askedInfer = new Set<string>();
    for (const input of INPUTS) {
      const end = await runToEnd(model, recorded(input, askedInput), recorded(FULL_INFER, askedInfer));
      expect(end.kind).toBe('end');
    }
    expect(sorted(askedInput)).toEqual(memberPaths(Structs.RKLLMInput));
    expect(sorted(askedInfer)).toEqual(memberPaths(Structs.RKLLMInferParam));
  });

  test('loadLora and setCrossAttnParams ask for every member of their struct and nothing else', async () => {
    const askedLora = new Set<string>();
    const lora = { lora_adapter_path: '/nonexistent/adapter.rkllm', lora_adapter_name: 'x', scale: 0.5 };
    expect(typeof (await model.loadLora(recorded(lora, askedLora)))).toBe('number');
    expect(sorted(askedLora)).toEqual(memberPaths(Structs.RKLLMLoraAdapter));

    const askedCross = new Set<string>();
    const cross = { encoder_k_cache: [0.5], encoder_v_cache: [0.5], encoder_mask: [1], encoder_pos: [0], num_tokens: 1 };
    expect(Value.Check(Structs.RKLLMCrossAttnParam, cross)).toBe(true);
    expect(typeof (await model.setCrossAttnParams(recorded(cross, askedCross)))).toBe('number');
    expect(sorted(askedCross)).toEqual(memberPaths(Structs.RKLLMCrossAttnParam));
  });
});
