// Embeddings on the Ollama routes from the emulated runtime's last hidden layer (deterministic:
// a hash of the prompt's tokens): /api/embed and the legacy /api/embeddings, the pooling
// (mean over the tokens, then length 1) checked against the raw layer a JSON-RPC run returns.

import { Ollama } from 'ollama';
import { meanPool } from '../../lib/core/embeddings';
import { HttpClient, ServerProcess, stopAllServers } from '../integration/client';

jest.setTimeout(30_000);

let ollama: Ollama;
let http: HttpClient;

beforeAll(async () => {
  const server = await ServerProcess.start({ disable: ['stdio'], args: ['--runtime-abi', '1.3'] });
  ollama = new Ollama({ host: `http://127.0.0.1:${server.port('http')}` });
  http = new HttpClient(server.port('http'));
});

afterAll(async () => {
  await http?.close();
  await stopAllServers();
});

const norm = (vector: number[]) => Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));

describe('embeddings on the Ollama routes', () => {
  it('embeds each input as a unit vector of the model\'s embedding size, the same text the same way', async () => {
    const reply = await ollama.embed({ model: 'default', input: ['the cat sat', 'a dog ran', 'the cat sat'] });
    expect(reply.embeddings).toHaveLength(3);
    // sim:instant's embedding_size (addon/emulator/models/instant.json).
    for (const vector of reply.embeddings) {
      expect(vector).toHaveLength(1536);
      expect(norm(vector)).toBeCloseTo(1, 6);
    }
    expect(reply.embeddings[2]).toEqual(reply.embeddings[0]);
    expect(reply.embeddings[1]).not.toEqual(reply.embeddings[0]);
    expect(reply.prompt_eval_count).toBeGreaterThan(0);
  });

  it('pools the runtime\'s hidden layer by the mean of its token rows', async () => {
    const [vector] = (await ollama.embed({ model: 'default', input: 'pool me' })).embeddings;
    // The embed left the template empty, so a JSON-RPC run in hidden-layer mode sees the same tokens.
    const reply = await http.request('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'pool me' }, rkllm_infer_params: { mode: 1 } });
    expect(reply.error).toBeUndefined();
    const hidden = (reply.result as { last_hidden_layer: { data: number[]; embd_size: number; num_tokens: number } }).last_hidden_layer;
    expect(hidden.num_tokens).toBeGreaterThan(1);
    const pooled = meanPool(hidden.data, hidden.embd_size, hidden.num_tokens);
    vector.forEach((value, index) => expect(value).toBeCloseTo(pooled[index], 5));
  });

  it('answers the legacy /api/embeddings with one embedding', async () => {
    const legacy = await ollama.embeddings({ model: 'default', prompt: 'the cat sat' });
    const current = await ollama.embed({ model: 'default', input: 'the cat sat' });
    expect(legacy.embedding).toEqual(current.embeddings[0]);
  });

  it('refuses an empty input, naming it', async () => {
    const reply = await http.raw('POST', '/api/embed', JSON.stringify({ model: 'default', input: ['x', ''] }), { 'content-type': 'application/json' });
    expect(reply.status).toBe(400);
    expect(reply.json.error).toContain("'input.1'");
  });
});

describe('mean pooling', () => {
  it('averages the rows and scales to length 1', () => {
    // Rows (3, 0) and (3, 8): mean (3, 4), length 5.
    expect(meanPool([3, 0, 3, 8], 2, 2)).toEqual([0.6, 0.8]);
    expect(meanPool([0, 0], 2, 1)).toEqual([0, 0]);
  });
});
