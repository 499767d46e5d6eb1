// Runtime 1.3.1 through the real bin/rkllm-serve: the server on the emulated 1.3.1 build (chosen by
// its release number in a config file) answers each of the 15 RKLLM functions; image and audio
// embeddings, as numbers or base64, reach the runtime byte for byte over every transport; wrong
// sizes are -32602 naming the field as the client wrote it. And how the ABI was chosen reaches the
// log and rkllm_get_constants; a library for another machine is refused by name.

import * as fs from 'fs';
import * as path from 'path';
import { blockFloats, describeMedia, toBase64, writeEmbeddingModel, type MediaBlock } from '../native/media';
import { FOREIGN_64, HOST_MACHINE, buildStandInLibrary, elfHeader } from '../native/library-fixtures';
import {
  HttpClient,
  MessageClient,
  STATE,
  ServerProcess,
  TRANSPORTS,
  connectClient,
  makeTempDir,
  runCli,
  stopAllServers,
  waitUntil,
  type RpcClient,
  type RpcMessage,
  type Transport,
} from './client';

jest.setTimeout(30_000);

const EMBEDDING_SIZE = 8;
const SLOW_MODEL = 'sim:rk3588-qwen2.5-1.5b';

function ok(message: RpcMessage): RpcMessage {
  if (message.error) throw new Error(`expected a result, got error ${JSON.stringify(message.error)}`);
  return message;
}

/** An image of 2 x 3 tokens as numbers and an audio clip of 1 x 4 tokens as base64, with tags. */
function mediaInput(seed: number): { input: Record<string, unknown>; expected: string } {
  const image: MediaBlock = { kind: 'image', counts: [2, 3], floats: blockFloats([2, 3], EMBEDDING_SIZE, seed), tags: ['<img>', '</img>', '<image>'] };
  const audio: MediaBlock = {
    kind: 'audio',
    counts: [1, 4],
    floats: blockFloats([1, 4], EMBEDDING_SIZE, seed + 1),
    tags: ['<|audio>', '<audio|>', '<|audio|>'],
  };
  const input = {
    prompt: '<image><|audio|> What is in the picture and the sound? Please describe the media.',
    image_embed: Array.from(image.floats),
    n_image: 2,
    n_image_tokens: 3,
    image_width: 448,
    image_height: 448,
    image_start: image.tags![0],
    image_end: image.tags![1],
    image_content: image.tags![2],
    audio_embed: toBase64(audio.floats),
    n_audio: 1,
    n_audio_tokens: 4,
    audio_start: audio.tags![0],
    audio_end: audio.tags![1],
    audio_content: audio.tags![2],
  };
  return { input, expected: describeMedia([image, audio], EMBEDDING_SIZE) };
}

let scratch: string;

beforeAll(() => {
  scratch = makeTempDir('abi-131');
});

afterAll(async () => {
  await stopAllServers();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('a server on the emulated 1.3.1 runtime', () => {
  let server: ServerProcess;
  let modelsDir: string;
  let cacheDir: string;
  const clients = new Map<Transport, RpcClient>();

  beforeAll(async () => {
    modelsDir = path.join(scratch, 'models');
    cacheDir = path.join(scratch, 'cache');
    fs.mkdirSync(modelsDir);
    fs.mkdirSync(cacheDir);
    const model = writeEmbeddingModel(modelsDir, 'embedding-8', EMBEDDING_SIZE);
    fs.writeFileSync(path.join(modelsDir, 'adapter.rkllm-lora'), 'not a real adapter; the emulated runtime only checks it exists\n');
    // The release number from the config file, as an operator would pin it.
    const config = path.join(scratch, 'config.json');
    fs.writeFileSync(config, JSON.stringify({ runtimeAbi: '1.3.1', modelsDirs: [modelsDir], cacheDir }));
    server = await ServerProcess.start({ model, args: ['--config', config] });
    for (const transport of TRANSPORTS) clients.set(transport, await connectClient(server, transport));
  });

  afterAll(async () => {
    for (const client of clients.values()) await client.close();
    await server?.stop();
  });

  afterEach(() => {
    for (const client of clients.values()) {
      const seen = client as MessageClient | HttpClient;
      expect(seen.unparsable).toEqual([]);
      expect(seen.foreign).toEqual([]);
    }
  });

  it('opened the 1.3.1 build, and says how it chose it in the log and in rkllm_get_constants', async () => {
    const opened = server.logs.find((record) => record.msg === 'runtime opened');
    expect(opened).toMatchObject({ abi: '1.3.1', abi_source: 'emulated-marker', emulated: true });
    const constants = ok(await clients.get('tcp')!.request('rkllm_get_constants'));
    expect(constants.result.runtime).toMatchObject({ abi: '1.3.1', abi_source: 'emulated-marker', emulated: true });
    expect(constants.result.runtime.path).toMatch(/librkllmrt-emulated-1\.3\.1\.so$/);
  });

  it('answers each of the 15 RKLLM functions', async () => {
    const client = clients.get('tcp')!;
    const defaults = ok(await client.request('rkllm_createDefaultParam')).result;
    expect(defaults).toMatchObject({ top_k: 40, ignore_eos_token: false });
    expect(defaults).not.toHaveProperty('img_start');

    const second = ok(await client.request('rkllm_init', { param: { model_path: SLOW_MODEL } }, { timeoutMs: 15_000 })).result.handle;
    const adapter = { lora_adapter_path: path.join(modelsDir, 'adapter.rkllm-lora'), lora_adapter_name: 'style', scale: 0.5 };
    expect(ok(await client.request('rkllm_load_lora', { lora_adapter: adapter, handle: 'default' })).result).toEqual({ return_code: 0 });

    const cachePath = path.join(cacheDir, 'prompt.cache');
    const saved = await client.request('rkllm_run', {
      handle: 'default',
      rkllm_input: { input_type: 0, prompt_input: 'echo: cached' },
      rkllm_infer_params: { mode: 0, keep_history: 1, lora_params: { lora_adapter_name: 'style' }, prompt_cache_params: { save_prompt_cache: 1, prompt_cache_path: cachePath } },
    });
    expect(ok(saved).result).toMatchObject({ text: 'cached', state: STATE.FINISH });
    expect(ok(await client.request('rkllm_load_prompt_cache', { handle: 'default', prompt_cache_path: cachePath })).result).toEqual({ return_code: 0 });
    expect(ok(await client.request('rkllm_release_prompt_cache', { handle: 'default' })).result).toEqual({ return_code: 0 });

    const sizes = ok(await client.request('rkllm_get_kv_cache_size', { handle: 'default' })).result.cache_sizes;
    expect(sizes[0]).toBeGreaterThan(0);
    expect(ok(await client.request('rkllm_clear_kv_cache', { handle: 'default', keep_system_prompt: 0 })).result).toEqual({ return_code: 0 });
    expect(ok(await client.request('rkllm_get_kv_cache_size', { handle: 'default' })).result).toEqual({ cache_sizes: [0] });

    expect(ok(await client.request('rkllm_set_chat_template', { handle: 'default', system_prompt: '', prompt_prefix: '<u>', prompt_postfix: '</u>' })).result).toEqual({
      return_code: 0,
    });
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    expect(ok(await client.request('rkllm_set_function_tools', { handle: 'default', system_prompt: '', tools, tool_response_str: 'tool_response' })).result).toEqual({
      return_code: 0,
    });
    const weather = ok(await client.request('rkllm_run', { handle: 'default', input_type: 0, prompt_input: 'What is get_weather in Paris?' }));
    expect(weather.result.text).toContain('"name": "get_weather"');
    const cross = { encoder_k_cache: toBase64(new Float32Array([0.5])), encoder_v_cache: [0.5], encoder_mask: [1], encoder_pos: [0], num_tokens: 1 };
    expect(ok(await client.request('rkllm_set_cross_attn_params', { handle: 'default', cross_attn_params: cross })).result).toEqual({ return_code: 0 });

    // rkllm_run_async streams; rkllm_abort stops it; rkllm_is_running says when it has.
    let abortReply: RpcMessage | undefined;
    const outcome = await client.stream(
      'rkllm_run_async',
      { handle: second, input_type: 0, prompt_input: 'count to 200' },
      {
        timeoutMs: 15_000,
        onChunk: (chunk) => {
          if (chunk.seq === 2) void client.request('rkllm_abort', { handle: second }).then((reply) => (abortReply = reply));
        },
      },
    );
    expect(outcome.response?.result.stream_id).toBeDefined();
    expect(outcome.final?.aborted).toBe(true);
    expect(outcome.chunks.length).toBeLessThan(100);
    await waitUntil('the abort reply', () => abortReply, 5000);
    expect(abortReply?.result).toEqual({ return_code: 0 });
    expect(ok(await client.request('rkllm_is_running', { handle: second })).result).toEqual({ running: false });
    expect(ok(await client.request('rkllm_destroy', { handle: second }, { timeoutMs: 10_000 })).result).toEqual({ return_code: 0 });
  });

  it.each(TRANSPORTS)('%s: image (numbers) and audio (base64) reach the runtime byte for byte, tags included', async (transport) => {
    const client = clients.get(transport)!;
    const { input, expected } = mediaInput(TRANSPORTS.indexOf(transport) * 3);
    const reply = ok(await client.request('rkllm_run', { handle: 'default', rkllm_input: { input_type: 3, multimodal_input: input } }));
    expect(reply.result).toMatchObject({ text: expected, state: STATE.FINISH });
    // Streamed, and flat at the top of params: the same answer.
    const outcome = await client.stream('rkllm_run', { handle: 'default', input_type: 3, multimodal_input: input, stream: true });
    expect(outcome.text).toBe(expected);
  });

  it('wrong sizes and bad base64 are -32602 naming the field as written, before the runtime sees them', async () => {
    const client = clients.get('http')!;
    const { input } = mediaInput(1);
    const refusal = async (params: Record<string, unknown>, field: string, reason: RegExp): Promise<void> => {
      const reply = await client.request('rkllm_run', { handle: 'default', ...params });
      expect(reply.error).toMatchObject({ code: -32602, data: { field } });
      expect((reply.error!.data as { reason: string }).reason).toMatch(reason);
    };
    const shortAudio = { ...input, audio_embed: toBase64(blockFloats([1, 3], EMBEDDING_SIZE, 0)) };
    await refusal(
      { rkllm_input: { input_type: 3, multimodal_input: shortAudio } },
      'rkllm_input.multimodal_input.audio_embed',
      /holds 24 floats, but n_audio x n_audio_tokens x the model's embedding size \(8\) is 32/,
    );
    await refusal({ input_type: 3, multimodal_input: shortAudio }, 'multimodal_input.audio_embed', /is 32/);
    const wideImage = { ...input, image_embed: Array.from(blockFloats([2, 3], 16, 0)) };
    await refusal({ rkllm_input: { input_type: 3, multimodal_input: wideImage } }, 'rkllm_input.multimodal_input.image_embed', /holds 96 floats/);
    await refusal(
      { rkllm_input: { input_type: 3, multimodal_input: { ...input, audio_embed: 'not base64!' } } },
      'rkllm_input.multimodal_input.audio_embed',
      /not valid base64/,
    );
    await refusal({ rkllm_input: { input_type: 2, embed_input: { embed: toBase64(new Float32Array(12)), n_tokens: 2 } } }, 'rkllm_input.embed_input.embed', /is 16/);
    // The model is untouched: it answers the next run.
    expect(ok(await client.request('rkllm_run', { handle: 'default', input_type: 0, prompt_input: 'echo: still here' })).result.text).toBe('still here');
  });
});

describe('choosing the ABI at start-up', () => {
  it('ABI 1.3 on a library whose release cannot be told: a warning in the log, the note in rkllm_get_constants', async () => {
    const library = buildStandInLibrary(scratch, 'librkllmrt-stand-in.so');
    const server = await ServerProcess.start({ runtime: library, model: 'none', args: ['--runtime-abi', '1.3'], disable: ['udp', 'http', 'websocket'] });
    try {
      const warning = server.logs.find((record) => typeof record.msg === 'string' && record.msg.startsWith('The release of this 1.3.x library was not told apart'));
      expect(warning).toMatchObject({ level: 40, abi: '1.3' });
      const client = await connectClient(server, 'tcp');
      const constants = ok(await client.request('rkllm_get_constants'));
      expect(constants.result.runtime).toMatchObject({ abi: '1.3', abi_source: 'explicit', emulated: false });
      expect(constants.result.runtime.note).toBe(warning!.msg);
      await client.close();
    } finally {
      await server.stop();
    }
  });

  it('a library for another machine: the server says what it is for and what this machine is', async () => {
    const foreign = path.join(scratch, 'librkllmrt-foreign.so');
    fs.writeFileSync(foreign, elfHeader({ bits: 64, machine: FOREIGN_64.machine }));
    const result = await runCli(['--runtime', foreign, '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], { timeoutMs: 10_000 });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain(`this librkllmrt is for ${FOREIGN_64.name}; this machine is ${HOST_MACHINE}`);
    expect(result.stderr).not.toMatch(/No such file or directory/);
  });

  it('--runtime-abi takes release numbers and refuses others, listing what it takes', async () => {
    const result = await runCli(['--runtime', 'sim', '--runtime-abi', '1.2.0'], { timeoutMs: 10_000 });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("--runtime-abi: unknown ABI '1.2.0'; expected one of 1.2, 1.3, 1.3.1, 1.2.1, 1.2.2, 1.2.3, 1.3.0");
    const server = await ServerProcess.start({ args: ['--runtime-abi', '1.2.3'], disable: ['udp', 'http', 'websocket'] });
    try {
      expect(server.logs.find((record) => record.msg === 'runtime opened')).toMatchObject({ abi: '1.2' });
    } finally {
      await server.stop();
    }
  });
});
