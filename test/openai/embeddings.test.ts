// OpenAI's POST /v1/embeddings with the official client: the same vectors as the Ollama routes
// (one pooling, lib/core/embeddings.ts: the mean of the last hidden layer's token rows, length 1),
// as floats or as base64 float32 (the client's default, which it decodes), and clear refusals.

import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { startOpenAiServer, type OpenAiServer } from './helpers';
import { stopAllServers } from '../integration/client';

jest.setTimeout(30_000);

let harness: OpenAiServer;
let ollama: Ollama;

beforeAll(async () => {
  harness = await startOpenAiServer({ args: ['--runtime-abi', '1.3'] });
  ollama = new Ollama({ host: `http://127.0.0.1:${harness.server.port('http')}` });
});

afterAll(async () => {
  await harness?.rpc.close();
  await stopAllServers();
});

const norm = (vector: number[]) => Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));

it('embeds each input as the Ollama routes do, in order, with the usage counted', async () => {
  const inputs = ['the cat sat', 'a dog ran'];
  const reply = await harness.openai.embeddings.create({ model: 'default', input: inputs });
  expect(reply.object).toBe('list');
  expect(reply.data.map((item) => item.index)).toEqual([0, 1]);
  const expected = (await ollama.embed({ model: 'default', input: inputs })).embeddings;
  reply.data.forEach((item, index) => {
    // sim:instant's embedding size (addon/emulator/models/instant.json).
    expect(item.embedding).toHaveLength(1536);
    expect(norm(item.embedding)).toBeCloseTo(1, 5);
    // The client asked for base64 float32 and decoded it: equal to float32 precision.
    item.embedding.forEach((value, column) => expect(value).toBeCloseTo(expected[index][column], 6));
  });
  expect(reply.usage.prompt_tokens).toBeGreaterThan(0);
  expect(reply.usage.total_tokens).toBe(reply.usage.prompt_tokens);
});

it('answers encoding_format "float" with plain numbers', async () => {
  const reply = await harness.rpc.raw('POST', '/v1/embeddings', JSON.stringify({ model: 'default', input: 'pool me', encoding_format: 'float' }), {
    'content-type': 'application/json',
  });
  expect(reply.status).toBe(200);
  const body = JSON.parse(reply.text) as { data: { embedding: unknown }[] };
  expect(Array.isArray(body.data[0].embedding)).toBe(true);
  expect((body.data[0].embedding as unknown[]).every((value) => typeof value === 'number')).toBe(true);
});

it('refuses token arrays, dimensions and an unknown model, as OpenAI errors', async () => {
  const tokens = await harness.openai.embeddings.create({ model: 'default', input: [[1, 2, 3]] }).catch((caught: unknown) => caught);
  expect(tokens).toBeInstanceOf(OpenAI.BadRequestError);
  const dimensions = await harness.openai.embeddings.create({ model: 'default', input: 'x', dimensions: 8 }).catch((caught: unknown) => caught);
  expect(dimensions).toBeInstanceOf(OpenAI.BadRequestError);
  expect((dimensions as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('dimensions');
  const unknown = await harness.openai.embeddings.create({ model: 'no-such-model', input: 'x' }).catch((caught: unknown) => caught);
  expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
});
