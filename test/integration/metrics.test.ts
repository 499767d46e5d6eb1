// GET /metrics on the real server (emulated runtime): OpenAI, Ollama and JSON-RPC requests, one
// of each kind failing and one crashing its model's host, then a scrape parsed as Prometheus' text
// format and checked for names, labels, counts and histogram counts; the API key guards it.

import { HttpClient, ServerProcess, TcpClient, stopAllServers, waitUntil } from './client';

jest.setTimeout(60_000);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  types: Map<string, string>;
  samples: Sample[];
}

/** The text exposition format: `# TYPE name kind` lines and `name{label="value",...} number` samples. */
function parseExposition(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const match of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[match[1]] = match[2].replace(/\\"/g, '"').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    }
    samples.push({ name: sample[1], labels, value: Number(sample[3]) });
  }
  return { types, samples };
}

/** The one sample of `name` whose labels include `labels`; undefined when there is none. */
function valueOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = scrape.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

function sseEvents(text: string): any[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: ') && block !== 'data: [DONE]')
    .map((block) => JSON.parse(block.slice('data: '.length)));
}

const chat = (model: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12, ...extra });

describe('GET /metrics', () => {
  let server: ServerProcess;
  let http: HttpClient;
  let tcp: TcpClient;
  /** Tokens the answers reported, per front end, to compare with the counters. */
  let generated = 0;
  let prompted = 0;

  beforeAll(async () => {
    server = await ServerProcess.start({ disable: ['stdio'], args: ['--log-format', 'json'] });
    http = new HttpClient(server.port('http'));
    tcp = await TcpClient.connect(server.port('tcp'));
    const json = { 'content-type': 'application/json' };

    // OpenAI: one streamed (with its usage), one plain, one naming a model that does not exist.
    const streamed = await http.raw('POST', '/v1/chat/completions', chat('default', { stream: true, stream_options: { include_usage: true } }), json);
    expect(streamed.status).toBe(200);
    const usage = sseEvents(streamed.text).find((event) => event.usage)?.usage;
    const plain = await http.raw('POST', '/v1/chat/completions', chat('default'), json);
    expect(plain.status).toBe(200);
    const missing = await http.raw('POST', '/v1/chat/completions', chat('no-such-model'), json);
    expect(missing.status).toBe(404);
    // Ollama: a chat, not streamed.
    const ollama = await http.raw('POST', '/api/chat', JSON.stringify({ model: 'default', stream: false, messages: [{ role: 'user', content: 'Hi' }], options: { num_predict: 9 } }), json);
    expect(ollama.status).toBe(200);
    // JSON-RPC on TCP: a run, and one on a handle nobody loaded.
    const run = await tcp.request('rkllm_run', { handle: 'default', input_type: 0, prompt_input: 'Hi', max_new_tokens: 7 });
    expect(run.result.token_count).toBeGreaterThan(0);
    const unknown = await tcp.request('rkllm_run', { handle: 'nobody', input_type: 0, prompt_input: 'Hi' });
    expect(unknown.error?.code).toBe(-32003);
    // A model whose runtime crashes mid-answer (after 20 tokens): a 503, and its host restarts.
    const crashed = await http.raw('POST', '/v1/chat/completions', chat('sim:crash-midstream', { max_tokens: 100 }), json);
    expect(crashed.status).toBe(503);

    generated = usage.completion_tokens + plain.json.usage.completion_tokens + ollama.json.eval_count + run.result.token_count;
    prompted = usage.prompt_tokens + plain.json.usage.prompt_tokens + ollama.json.prompt_eval_count + run.result.perf.prefill_tokens;
  });

  afterAll(async () => {
    await tcp?.close();
    await http?.close();
    await stopAllServers();
  });

  it('answers in the text format with every metric, counting what was asked', async () => {
    // The restart happens after the 503 was answered: wait for it (bounded).
    const scrape: Scrape = await waitUntil<Scrape | undefined>(
      'the host restart to be counted',
      async () => {
        const reply = await http.raw('GET', '/metrics');
        expect(reply.status).toBe(200);
        expect(reply.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
        const parsed = parseExposition(reply.text);
        return (valueOf(parsed, 'rkllm_host_restarts_total', { model: 'sim:crash-midstream' }) ?? 0) >= 1 ? parsed : undefined;
      },
      10_000,
      100,
    ).then((found) => found!);

    expect(scrape.types.get('rkllm_requests_total')).toBe('counter');
    const requests = (labels: Record<string, string>) => valueOf(scrape, 'rkllm_requests_total', labels);
    expect(requests({ front_end: 'openai', route: 'POST /v1/chat/completions', status: '200' })).toBe(2);
    expect(requests({ front_end: 'openai', route: 'POST /v1/chat/completions', status: '404' })).toBe(1);
    expect(requests({ front_end: 'openai', route: 'POST /v1/chat/completions', status: '503' })).toBe(1);
    expect(requests({ front_end: 'ollama', route: 'POST /api/chat', status: '200' })).toBe(1);
    expect(requests({ front_end: 'jsonrpc', route: 'rkllm_run', status: 'ok' })).toBe(1);
    expect(requests({ front_end: 'jsonrpc', route: 'rkllm_run', status: 'UNKNOWN_HANDLE' })).toBe(1);

    // Tokens: the counters add up what the answers reported for the model that answered.
    expect(valueOf(scrape, 'rkllm_generated_tokens_total', { model: 'default' })).toBe(generated);
    expect(valueOf(scrape, 'rkllm_prompt_tokens_total', { model: 'default' })).toBe(prompted);

    // Histograms: one TTFT per answered run; buckets cumulative up to +Inf, which is the count.
    expect(scrape.types.get('rkllm_time_to_first_token_seconds')).toBe('histogram');
    expect(valueOf(scrape, 'rkllm_time_to_first_token_seconds_count', { model: 'default' })).toBe(4);
    const buckets = scrape.samples.filter((sample) => sample.name === 'rkllm_time_to_first_token_seconds_bucket' && sample.labels.model === 'default');
    expect(buckets.map((bucket) => bucket.labels.le)).toEqual(['0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    for (let index = 1; index < buckets.length; index++) expect(buckets[index].value).toBeGreaterThanOrEqual(buckets[index - 1].value);
    expect(buckets[buckets.length - 1].value).toBe(4);
    expect(valueOf(scrape, 'rkllm_time_to_first_token_seconds_sum', { model: 'default' })).toBeGreaterThan(0);
    expect(scrape.types.get('rkllm_time_per_output_token_seconds')).toBe('histogram');
    expect(valueOf(scrape, 'rkllm_time_per_output_token_seconds_count', { model: 'default' })).toBe(4);
    const perToken = scrape.samples.filter((sample) => sample.name === 'rkllm_time_per_output_token_seconds_bucket' && sample.labels.model === 'default');
    expect(perToken[0].labels.le).toBe('0.001');
    expect(perToken[perToken.length - 2].labels.le).toBe('1');

    // Queue and models: idle now; default and sim:crash-midstream loaded, each load timed.
    expect(valueOf(scrape, 'rkllm_requests_queued')).toBe(0);
    expect(valueOf(scrape, 'rkllm_requests_running')).toBe(0);
    expect(valueOf(scrape, 'rkllm_models_loaded')).toBe(2);
    expect(valueOf(scrape, 'rkllm_models_loading')).toBe(0);
    expect(valueOf(scrape, 'rkllm_model_load_seconds_count', { outcome: 'loaded' })).toBe(2);
    expect(scrape.types.get('rkllm_host_restarts_total')).toBe('counter');
    expect(valueOf(scrape, 'rkllm_host_restarts_total', { model: 'sim:crash-midstream' })).toBe(1);

    // prom-client's process and Node.js metrics, on the server's own registry.
    expect(valueOf(scrape, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(valueOf(scrape, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(scrape.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
  });

  it('serves GET only', async () => {
    const reply = await http.raw('POST', '/metrics', '{}', { 'content-type': 'application/json' });
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe('GET');
  });
});

describe('GET /metrics with an API key', () => {
  it('answers 401 without the key and the metrics with it', async () => {
    const server = await ServerProcess.start({ disable: ['stdio'], args: ['--api-key', 'metrics-secret'] });
    const http = new HttpClient(server.port('http'));
    try {
      expect(server.logs.find((line) => line.api_key === true)?.msg).toMatch(/^API key on/);
      expect((await http.raw('GET', '/metrics')).status).toBe(401);
      expect((await http.raw('GET', '/metrics', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
      const reply = await http.raw('GET', '/metrics', undefined, { authorization: 'Bearer metrics-secret' });
      expect(reply.status).toBe(200);
      expect(valueOf(parseExposition(reply.text), 'rkllm_models_loaded')).toBe(1);
    } finally {
      await http.close();
      await stopAllServers();
    }
  });
});
