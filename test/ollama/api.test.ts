// The Ollama API driven with the official client (ollama-js) against the real server on the
// emulated 1.3 runtime (sim:instant as the start-up model 'default'): list, show, ps, chat
// streamed and not, generate, a tool call round trip, think, keep_alive 0; and plain HTTP for
// the NDJSON framing and the errors.

import { Ollama } from 'ollama';
import { HttpClient, ServerProcess, countTo, stopAllServers } from '../integration/client';

jest.setTimeout(30_000);

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

let server: ServerProcess;
let ollama: Ollama;
let http: HttpClient;

beforeAll(async () => {
  server = await ServerProcess.start({ disable: ['stdio'], args: ['--runtime-abi', '1.3'] });
  const port = server.port('http');
  ollama = new Ollama({ host: `http://127.0.0.1:${port}` });
  http = new HttpClient(port);
});

afterAll(async () => {
  await http?.close();
  await stopAllServers();
});

/** Polls `check` every 50 ms, at most `ms`. */
async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

function ndjson(text: string): any[] {
  expect(text.endsWith('\n')).toBe(true);
  return text.trimEnd().split('\n').map((line) => JSON.parse(line));
}

describe('the Ollama API with ollama-js', () => {
  it('reports a version', async () => {
    expect((await ollama.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('lists the models with their details', async () => {
    const { models } = await ollama.list();
    expect(models.map((model) => model.name)).toEqual(['default']);
    expect(models[0].details.format).toBe('rkllm');
    expect(models[0].digest).toMatch(/^[0-9a-f]{64}$/);
    expect(Number.isNaN(Date.parse(String(models[0].modified_at)))).toBe(false);
  });

  it('shows a model: capabilities, context length, parameters', async () => {
    const shown = await ollama.show({ model: 'default' });
    expect(shown.capabilities).toEqual(expect.arrayContaining(['completion', 'tools']));
    expect(Object.entries(shown.model_info).find(([key]) => key.endsWith('.context_length'))?.[1]).toBeGreaterThan(0);
    expect(shown.parameters).toMatch(/^temperature /m);
  });

  it("takes a name with Ollama's default tag ':latest' as the bare name", async () => {
    expect((await ollama.show({ model: 'default:latest' })).capabilities).toContain('completion');
    const reply = await ollama.chat({ model: 'default:latest', messages: [{ role: 'user', content: 'count to 2' }], stream: false });
    expect(reply.message.content).toBe(countTo(2));
    expect(reply.model).toBe('default:latest');
  });

  it('answers show for an unknown model with 404 and the names', async () => {
    await expect(ollama.show({ model: 'nope' })).rejects.toMatchObject({ status_code: 404, error: expect.stringContaining('default') });
  });

  it('chats without streaming: the text, counts and durations', async () => {
    const reply = await ollama.chat({ model: 'default', messages: [{ role: 'user', content: 'count to 5' }], stream: false });
    expect(reply.message).toMatchObject({ role: 'assistant', content: countTo(5) });
    expect(reply.done).toBe(true);
    expect(reply.done_reason).toBe('stop');
    expect(reply.eval_count).toBe(9);
    expect(reply.prompt_eval_count).toBeGreaterThan(0);
    expect(reply.total_duration).toBeGreaterThan(0);
    expect(reply.eval_duration).toBeGreaterThanOrEqual(0);
  });

  it('streams a chat as chunks that join to the text, the last with the counts', async () => {
    const stream = await ollama.chat({ model: 'default', messages: [{ role: 'user', content: 'count to 10' }], stream: true });
    let text = '';
    let chunks = 0;
    let last: any;
    for await (const chunk of stream) {
      text += chunk.message.content;
      chunks += 1;
      last = chunk;
    }
    expect(text).toBe(countTo(10));
    expect(chunks).toBeGreaterThan(2);
    expect(last).toMatchObject({ done: true, done_reason: 'stop' });
    expect(last.eval_count).toBeGreaterThan(1);
  });

  it('generates from a prompt, streamed and not, and stops at options.stop', async () => {
    const whole = await ollama.generate({ model: 'default', prompt: 'count to 5', stream: false });
    expect(whole.response).toBe(countTo(5));
    const stream = await ollama.generate({ model: 'default', prompt: 'count to 5', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.response;
    expect(text).toBe(countTo(5));
    const stopped = await ollama.generate({ model: 'default', prompt: 'count to 5', stream: false, options: { stop: [', 3'] } });
    expect(stopped.response).toBe('1, 2');
    const short = await ollama.generate({ model: 'default', prompt: 'count to 10', stream: false, options: { num_predict: 3 } });
    expect(short.eval_count).toBe(3);
    expect(short.done_reason).toBe('length');
  });

  it('round-trips a tool call: arguments as objects, then the tool result', async () => {
    const messages: any[] = [{ role: 'user', content: 'What is the weather in Paris? Use get_weather.' }];
    const first = await ollama.chat({ model: 'default', messages, tools: [WEATHER_TOOL], stream: false });
    expect(first.message.tool_calls).toHaveLength(1);
    expect(first.message.tool_calls![0].function.name).toBe('get_weather');
    expect(typeof first.message.tool_calls![0].function.arguments).toBe('object');
    messages.push(first.message, { role: 'tool', content: 'sunny, 21 C', tool_name: 'get_weather' });
    const second = await ollama.chat({ model: 'default', messages, tools: [WEATHER_TOOL], stream: false });
    expect(second.message.content).toContain('sunny, 21 C');
    expect(second.message.tool_calls ?? []).toHaveLength(0);
  });

  it('splits thinking from the content with think, whole and streamed', async () => {
    const whole = await ollama.chat({ model: 'default', messages: [{ role: 'user', content: 'hello there' }], think: true, stream: false });
    expect(whole.message.thinking).toMatch(/^The question touches on/);
    expect(whole.message.content).not.toContain('<think>');
    expect(whole.message.content).not.toContain('</think>');
    expect(whole.message.content.length).toBeGreaterThan(0);
    const stream = await ollama.chat({ model: 'default', messages: [{ role: 'user', content: 'hello there' }], think: true, stream: true });
    let thinking = '';
    let content = '';
    for await (const chunk of stream) {
      thinking += chunk.message.thinking ?? '';
      content += chunk.message.content;
    }
    expect(thinking).toBe(whole.message.thinking);
    expect(content).toBe(whole.message.content);
  });

  it('lists the loaded model in ps, and keep_alive 0 unloads it after the request', async () => {
    await ollama.generate({ model: 'default', prompt: 'count to 2', stream: false, keep_alive: '5m' });
    const before = await ollama.ps();
    expect(before.models.map((model) => model.name)).toEqual(['default']);
    const expires = Date.parse(String(before.models[0].expires_at)) - Date.now();
    expect(expires).toBeGreaterThan(4 * 60_000);
    expect(expires).toBeLessThanOrEqual(5 * 60_000);
    await ollama.chat({ model: 'default', messages: [{ role: 'user', content: 'count to 2' }], stream: false, keep_alive: 0 });
    expect(await eventually(async () => (await ollama.ps()).models.length === 0)).toBe(true);
    // Named again, it is loaded again.
    expect((await ollama.generate({ model: 'default', prompt: 'count to 3', stream: false, keep_alive: -1 })).response).toBe(countTo(3));
    expect((await ollama.ps()).models[0].expires_at).toBeDefined();
  });
});

describe('the Ollama API over plain HTTP', () => {
  const post = (path: string, body: unknown) => http.raw('POST', path, JSON.stringify(body), { 'content-type': 'application/json' });

  it('streams NDJSON: one object per line, done only on the last', async () => {
    const reply = await post('/api/chat', { model: 'default', messages: [{ role: 'user', content: 'count to 3' }] });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/x-ndjson');
    const lines = ndjson(reply.text);
    expect(lines.slice(0, -1).every((line) => line.done === false)).toBe(true);
    expect(lines[lines.length - 1]).toMatchObject({ done: true, model: 'default' });
    expect(lines.map((line) => line.message.content).join('')).toBe(countTo(3));
  });

  it('ends a stream that fails midway with an error line', async () => {
    const reply = await post('/api/chat', { model: 'sim:faulty-midstream', messages: [{ role: 'user', content: 'tell me a story' }] });
    expect(reply.status).toBe(200);
    const lines = ndjson(reply.text);
    expect(lines[lines.length - 1]).toEqual({ error: expect.any(String) });
    expect(lines.slice(0, -1).every((line) => line.done === false)).toBe(true);
    const whole = await post('/api/chat', { model: 'sim:faulty-midstream', messages: [{ role: 'user', content: 'tell me a story' }], stream: false });
    expect(whole.status).toBeGreaterThanOrEqual(500);
    expect(typeof whole.json.error).toBe('string');
  });

  it.each([
    ['format', { format: 'json' }, "'format'"],
    ['images', { images: ['aGVsbG8='] }, "'images'"],
    ['suffix', { suffix: 'end' }, "'suffix'"],
    ['template', { template: '{{ .Prompt }}' }, "'template'"],
  ])('refuses %s with a 400 naming it', async (_name, extra, named) => {
    const reply = await post('/api/generate', { model: 'default', prompt: 'hi', ...extra });
    expect(reply.status).toBe(400);
    expect(reply.json.error).toContain(named);
  });

  it('refuses images in a chat message, naming the message', async () => {
    const reply = await post('/api/chat', { model: 'default', messages: [{ role: 'user', content: 'hi', images: ['aGVsbG8='] }] });
    expect(reply.status).toBe(400);
    expect(reply.json.error).toContain("'messages.0.images'");
  });

  it('names a bad member and a bad keep_alive', async () => {
    const bad = await post('/api/chat', { model: 'default', messages: [{ role: 'robot', content: 'hi' }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toContain("'messages.0.role'");
    const keep = await post('/api/generate', { model: 'default', prompt: 'hi', keep_alive: 'soon' });
    expect(keep.status).toBe(400);
    expect(keep.json.error).toContain("'keep_alive'");
  });

  it('answers an unknown model with 404 in Ollama shape', async () => {
    const reply = await post('/api/chat', { model: 'missing', messages: [{ role: 'user', content: 'hi' }] });
    expect(reply.status).toBe(404);
    expect(reply.json).toEqual({ error: expect.stringContaining("model 'missing' not found") });
  });

  it.each(['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete'])('answers %s with a clear 501, not 404', async (path) => {
    const reply = await post(path, { model: 'default' });
    expect(reply.status).toBe(501);
    expect(reply.json.error).toContain('--models-dir');
  });

  it("applies the transport's JSON and Host checks, answering in Ollama's shape", async () => {
    const plain = await http.raw('POST', '/api/chat', '{}', { 'content-type': 'text/plain' });
    expect(plain.status).toBe(415);
    expect(typeof plain.json.error).toBe('string');
    const foreign = await http.raw('GET', '/api/tags', undefined, { host: 'evil.example' });
    expect(foreign.status).toBe(403);
    expect(typeof foreign.json.error).toBe('string');
  });

  it('refuses a wrong method with 405', async () => {
    const reply = await http.raw('POST', '/api/tags', '{}', { 'content-type': 'application/json' });
    expect(reply.status).toBe(405);
    expect(reply.json.error).toContain('GET');
  });
});
