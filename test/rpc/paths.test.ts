// Path confinement: model, LoRA and prompt cache paths must resolve inside the directories the
// operator allowed; escapes by "..", by symlink and by absolute path are refused with -32602
// naming the field, and nothing outside is read or written.

import * as fs from 'fs';
import * as path from 'path';
import { simModelDirectory } from '../../lib';
import type { RkllmServer } from '../../lib/serve';
import { ABIS, TestClient, makeScratchDir, prompt, removeScratchDir, startSim } from './helpers';

describe.each(ABIS)('path confinement (ABI %s)', (abi) => {
  let server: RkllmServer;
  let client: TestClient;
  let root: string;
  let modelsDir: string;
  let cacheDir: string;
  let outside: string;

  beforeAll(async () => {
    root = makeScratchDir('paths');
    modelsDir = path.join(root, 'models');
    cacheDir = path.join(root, 'cache');
    outside = path.join(root, 'outside');
    for (const dir of [modelsDir, cacheDir, outside]) fs.mkdirSync(dir);
    const modelFile = path.join(simModelDirectory(), 'instant.json');
    fs.copyFileSync(modelFile, path.join(modelsDir, 'ok.json'));
    fs.copyFileSync(modelFile, path.join(outside, 'secret.json'));
    fs.writeFileSync(path.join(outside, 'adapter.lora'), 'x');
    fs.symlinkSync(path.join(outside, 'secret.json'), path.join(modelsDir, 'link.json'));
    fs.symlinkSync(outside, path.join(cacheDir, 'escape'));
    fs.symlinkSync(path.join(outside, 'victim.cache'), path.join(cacheDir, 'dangling.cache'));
    server = await startSim(abi, { model: 'sim:instant', modelsDirs: [modelsDir], cacheDir });
  });
  afterAll(async () => {
    await server.shutdown();
    removeScratchDir(root);
  });
  beforeEach(() => {
    client = new TestClient(server);
  });

  async function refused(method: string, params: object, field: string): Promise<void> {
    const error = await client.fails(method, params);
    expect(error).toMatchObject({ code: -32602, data: { field } });
  }

  it('loads a model inside the models directory, by relative or absolute path', async () => {
    const { handle } = await client.ok('rkllm_init', { param: { model_path: 'ok.json' } });
    await client.ok('rkllm_destroy', { handle });
    const again = await client.ok('rkllm_init', { param: { model_path: path.join(modelsDir, 'ok.json') } });
    await client.ok('rkllm_destroy', { handle: again.handle });
  });

  it.each([
    ['a .. escape', '../outside/secret.json'],
    ['a symlink out of the directory', 'link.json'],
    ['an absolute path elsewhere', '/etc/passwd'],
    ['the directory itself', '.'],
  ])('refuses %s as model_path', async (_label, modelPath) => {
    await refused('rkllm_init', { param: { model_path: modelPath } }, 'param.model_path');
    expect(server.stats().models).toBe(1);
  });

  it('says when a file inside does not exist', async () => {
    const error = await client.fails('rkllm_init', { param: { model_path: 'missing.json' } });
    expect(error.data.reason).toContain('no such file');
  });

  it('refuses LoRA adapters outside the models directory', async () => {
    const adapter = { lora_adapter_name: 'x', scale: 1 };
    await refused('rkllm_load_lora', { lora_adapter: { ...adapter, lora_adapter_path: '../outside/adapter.lora' } }, 'lora_adapter.lora_adapter_path');
    await refused('rkllm_load_lora', { lora_adapter: { ...adapter, lora_adapter_path: path.join(outside, 'adapter.lora') } }, 'lora_adapter.lora_adapter_path');
  });

  it('refuses prompt caches outside the cache directory, for reading and for writing', async () => {
    await refused('rkllm_load_prompt_cache', { prompt_cache_path: '../outside/x.cache' }, 'prompt_cache_path');
    await refused('rkllm_load_prompt_cache', { prompt_cache_path: 'escape/x.cache' }, 'prompt_cache_path');
    const save = (prompt_cache_path: string) => ({
      ...prompt('count to 2'),
      rkllm_infer_params: { prompt_cache_params: { save_prompt_cache: 1, prompt_cache_path } },
    });
    const field = 'rkllm_infer_params.prompt_cache_params.prompt_cache_path';
    await refused('rkllm_run', save('../outside/new.cache'), field);
    await refused('rkllm_run', save('escape/new.cache'), field);
    await refused('rkllm_run', save('dangling.cache'), field);
    await refused('rkllm_run', save(path.join(outside, 'abs.cache')), field);
    await refused('rkllm_run', save('nodir/new.cache'), field);
    expect(fs.readdirSync(outside).sort()).toEqual(['adapter.lora', 'secret.json']);
    // Without a path the cache goes to the cache directory, never to the server's working directory.
    await client.ok('rkllm_run', { ...prompt('count to 2'), rkllm_infer_params: { prompt_cache_params: { save_prompt_cache: true } } });
    expect(fs.existsSync(path.join(cacheDir, 'prompt_cache.bin'))).toBe(true);
  });

  it('refuses client paths when no directory is configured, saying how to allow them', async () => {
    const bare = await startSim(abi);
    try {
      const other = new TestClient(bare);
      const error = await other.fails('rkllm_init', { param: { model_path: path.join(modelsDir, 'ok.json') } });
      expect(error).toMatchObject({ code: -32602, data: { field: 'param.model_path' } });
      expect(error.data.reason).toContain('--models-dir');
      // Another server in this process holds domain 0 (the emulated runtime's registry is per process).
      const loaded = await other.ok('rkllm_init', { param: { model_path: 'sim:instant', extend_param: { base_domain_id: 9 } } });
      const cacheError = await other.fails('rkllm_load_prompt_cache', { handle: loaded.handle, prompt_cache_path: 'x' });
      expect(cacheError.data.reason).toContain('--cache-dir');
    } finally {
      await bare.shutdown();
    }
  });
});
