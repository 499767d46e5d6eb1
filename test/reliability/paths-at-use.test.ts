// Issue 11, from finding 9: paths are held to the directories the operator allows at the time
// they are used, not only when the request came in. A prompt cache swapped for a symlink after
// its check is not followed, for loading (the load waits behind a run) and for saving (the run
// waits in the queue); a LoRA path starting with 'sim:' gets the models-directory check like
// any other. In-memory engine: a socket adds nothing to what is checked here.

import * as fs from 'fs';
import * as path from 'path';
import type { RkllmServer } from '../../lib/serve';
import { SLOW_MODEL, TestClient, makeScratchDir, prompt, removeScratchDir, startSim, waitUntil } from '../rpc/helpers';

jest.setTimeout(30_000);

const SAVE_FIELD = 'rkllm_infer_params.prompt_cache_params.prompt_cache_path';

describe('paths at the time of use', () => {
  let server: RkllmServer;
  let client: TestClient;
  let root: string;
  let modelsDir: string;
  let cacheDir: string;
  let outside: string;

  beforeAll(async () => {
    root = makeScratchDir('at-use');
    modelsDir = path.join(root, 'models');
    cacheDir = path.join(root, 'cache');
    outside = path.join(root, 'outside');
    for (const dir of [modelsDir, cacheDir, outside]) fs.mkdirSync(dir);
    fs.writeFileSync(path.join(outside, 'adapter.lora'), 'x');
    // Not a prompt cache: loading it fails, so a load that reads it shows.
    fs.writeFileSync(path.join(outside, 'secret.cache'), 'not a prompt cache');
    server = await startSim('1.3', { model: SLOW_MODEL, modelsDirs: [modelsDir], cacheDir });
    client = new TestClient(server);
  });
  afterAll(async () => {
    client.close();
    await server.shutdown();
    removeScratchDir(root);
  });

  /** Starts a long run so that what comes next waits behind it; resolves once it is running. */
  async function occupyModel(): Promise<string> {
    const { stream_id } = await client.ok('rkllm_run_async', prompt('count to 2000'));
    await waitUntil(() => client.connection.notifications(stream_id).length > 0, 10_000, 'the first token of the long run');
    return stream_id as string;
  }

  it('a prompt cache to load, swapped for a symlink after the check: the file checked is the file read', async () => {
    await client.ok('rkllm_run', { ...prompt('count to 3'), rkllm_infer_params: { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: 'good.cache' } } });
    const good = path.join(cacheDir, 'good.cache');
    expect(fs.statSync(good).size).toBeGreaterThan(0);
    const running = await occupyModel();
    // Checked now, carried out by the model's worker after the run.
    const load = client.call('rkllm_load_prompt_cache', { prompt_cache_path: 'good.cache' });
    fs.renameSync(good, path.join(cacheDir, 'moved.cache'));
    fs.symlinkSync(path.join(outside, 'secret.cache'), good);
    await client.ok('cancel', { stream_id: running });
    const reply = await load;
    // Reading through the symlink would have failed (the file outside is no prompt cache).
    expect(reply.error).toBeUndefined();
    expect(reply.result).toEqual({ return_code: 0 });
    await client.ok('rkllm_release_prompt_cache');
  });

  it('a prompt cache to save, replaced by a symlink while its run waits: nothing is written outside', async () => {
    const running = await occupyModel();
    const target = path.join(cacheDir, 'saved.cache');
    const victim = path.join(outside, 'victim.cache');
    // Checked now (a new file in the cache directory), written when the run reaches the model.
    const save = client.call('rkllm_run', { ...prompt('count to 3'), rkllm_infer_params: { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: 'saved.cache' } } });
    fs.symlinkSync(victim, target);
    await client.ok('cancel', { stream_id: running });
    const reply = await save;
    expect(reply.error).toMatchObject({ code: -32602, data: { field: SAVE_FIELD } });
    expect(reply.error?.data.reason).toContain('symbolic link');
    expect(fs.existsSync(victim)).toBe(false);
    expect(fs.readdirSync(outside).sort()).toEqual(['adapter.lora', 'secret.cache']);
    // The model is free and saving still works.
    fs.unlinkSync(target);
    await client.ok('rkllm_run', { ...prompt('count to 2'), rkllm_infer_params: { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: 'saved.cache' } } });
    expect(fs.lstatSync(target).isFile()).toBe(true);
  });

  it.each([
    ['sim: and a path out of the models directory', 'sim:../outside/adapter.lora'],
    ['sim: and an absolute path elsewhere', 'sim:/etc/hostname'],
    ['a sim model name', 'sim:instant'],
  ])('a LoRA path starting with %s is refused by the models-directory check', async (_label, loraPath) => {
    const error = await client.fails('rkllm_load_lora', { lora_adapter: { lora_adapter_path: loraPath, lora_adapter_name: 'x', scale: 1 } });
    expect(error).toMatchObject({ code: -32602, data: { field: 'lora_adapter.lora_adapter_path' } });
  });
});
