// The request log on the real server: one info line per request on every front end with its
// figures as fields (--log-format json), warn and error lines for failures, cheap polls kept at
// debug; pretty lines on stderr with stdout left to the stdio protocol; and the start-up lines
// (URLs, API key, and the warnings for a server open to the network).

import * as http from 'http';
import { Writable } from 'stream';
import pino from 'pino';
import { announceUrls } from '../../lib/cli/announce';
import { defaultConfig } from '../../lib/serve/config';
import { resolveLogFormat } from '../../lib/serve/logger';
import { HttpClient, HOST, ServerProcess, TcpClient, sleep, stopAllServers, waitUntil, withTimeout } from './client';

jest.setTimeout(60_000);

const JSON_BODY = { 'content-type': 'application/json' };
const INFO = 30;
const WARN = 40;
const ERROR = 50;

type Line = Record<string, any>;

function chat(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello there' }], ...extra });
}

function sseEvents(text: string): any[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: ') && block !== 'data: [DONE]')
    .map((block) => JSON.parse(block.slice('data: '.length)));
}

describe('request lines, --log-format json', () => {
  let server: ServerProcess;
  let client: HttpClient;
  let tcp: TcpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ disable: ['stdio'], args: ['--log-format', 'json'] });
    client = new HttpClient(server.port('http'));
    tcp = await TcpClient.connect(server.port('tcp'));
  });

  afterAll(async () => {
    await tcp?.close();
    await client?.close();
    await stopAllServers();
  });

  /** The request lines (those with a front_end) whose msg is `msg`: exactly `count`, none more a moment later. */
  async function requestLines(msg: string, count = 1): Promise<Line[]> {
    const lines = () => server.logs.filter((line) => line.front_end !== undefined && line.msg === msg);
    await waitUntil(`${count} log line(s) "${msg}"`, () => lines().length >= count, 5000);
    await sleep(100);
    expect(lines()).toHaveLength(count);
    return lines();
  }

  it('says the URLs to use, and that no API key is on', () => {
    const httpPort = server.port('http');
    const messages = server.logs.map((line) => line.msg);
    expect(messages).toEqual(
      expect.arrayContaining([
        `JSON-RPC at tcp://${HOST}:${server.port('tcp')}`,
        `JSON-RPC at udp://${HOST}:${server.port('udp')}`,
        `JSON-RPC at http://${HOST}:${httpPort}/`,
        `JSON-RPC at ws://${HOST}:${server.port('websocket')}`,
        `OpenAI API at http://${HOST}:${httpPort}/v1`,
        `Ollama API at http://${HOST}:${httpPort}/api`,
        `web page at http://${HOST}:${httpPort}/`,
        `metrics at http://${HOST}:${httpPort}/metrics`,
        'API key off',
      ]),
    );
    expect(server.logs.find((line) => line.api === 'openai')?.url).toBe(`http://${HOST}:${httpPort}/v1`);
    // Loopback only: nothing to warn about.
    expect(server.logs.filter((line) => Number(line.level) >= WARN)).toEqual([]);
  });

  it('logs a streamed OpenAI chat with its tokens and timings', async () => {
    const reply = await client.raw('POST', '/v1/chat/completions', chat('default', { stream: true, stream_options: { include_usage: true } }), JSON_BODY);
    expect(reply.status).toBe(200);
    const usage = sseEvents(reply.text).find((event) => event.usage).usage;
    const [line] = await requestLines('POST /v1/chat/completions 200');
    expect(line).toMatchObject({
      level: INFO,
      front_end: 'openai',
      transport: 'http',
      route: 'POST /v1/chat/completions',
      model: 'default',
      status: '200',
      prompt_tokens: usage.prompt_tokens,
      generated_tokens: usage.completion_tokens,
    });
    expect(line.ttft_ms).toBeGreaterThanOrEqual(0);
    expect(line.tokens_per_s).toBeGreaterThan(0);
    expect(line.duration_ms).toBeGreaterThanOrEqual(line.ttft_ms);
    expect(line.error_code).toBeUndefined();
    expect(usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('logs an Ollama chat and a JSON-RPC rkllm_run on TCP', async () => {
    const ollama = await client.raw('POST', '/api/chat', JSON.stringify({ model: 'default', stream: false, messages: [{ role: 'user', content: 'Hi' }] }), JSON_BODY);
    expect(ollama.status).toBe(200);
    const [chatLine] = await requestLines('POST /api/chat 200');
    expect(chatLine).toMatchObject({ level: INFO, front_end: 'ollama', transport: 'http', model: 'default', status: '200', generated_tokens: ollama.json.eval_count });
    expect(typeof chatLine.ttft_ms).toBe('number');

    const run = await tcp.request('rkllm_run', { handle: 'default', input_type: 0, prompt_input: 'Hi', max_new_tokens: 9 });
    const [runLine] = await requestLines('rkllm_run ok');
    expect(runLine).toMatchObject({
      level: INFO,
      front_end: 'jsonrpc',
      transport: 'tcp',
      route: 'rkllm_run',
      model: 'default',
      status: 'ok',
      prompt_tokens: run.result.perf.prefill_tokens,
      generated_tokens: run.result.token_count,
    });
    expect(runLine.tokens_per_s).toBeGreaterThan(0);
  });

  it('reports the decode rate and time to first token of a paced model', async () => {
    // sim:rk3588-qwen2.5-1.5b decodes at 16.7 tokens/s and prefills 2.95 ms per token.
    const reply = await client.raw('POST', '/v1/chat/completions', chat('sim:rk3588-qwen2.5-1.5b', { stream: true, max_tokens: 12 }), JSON_BODY, 20_000);
    expect(reply.status).toBe(200);
    const [line] = (await requestLines('POST /v1/chat/completions 200', 2)).filter((found) => found.model === 'sim:rk3588-qwen2.5-1.5b');
    expect(line.generated_tokens).toBe(12);
    expect(line.tokens_per_s).toBeGreaterThan(12);
    expect(line.tokens_per_s).toBeLessThan(22);
    expect(line.ttft_ms).toBeGreaterThan(0);
    // Eleven gaps of about 60 ms come after the first token.
    expect(line.duration_ms - line.ttft_ms).toBeGreaterThan(500);
  });

  it('logs a poll-only stream once, when its run ends, and its polls at debug only', async () => {
    const started = await client.request('rkllm_run', { handle: 'default', input_type: 0, prompt_input: 'Hi', max_new_tokens: 6, stream: true });
    const streamId = started.result.stream_id;
    expect(typeof streamId).toBe('string');
    await waitUntil(
      'the polled stream to end',
      async () => (await client.request('poll', { stream_id: streamId })).result?.done === true,
      5000,
    );
    const [line] = await requestLines('rkllm_run ok', 2).then((lines) => lines.filter((found) => found.transport === 'http'));
    expect(line).toMatchObject({ level: INFO, generated_tokens: 6, model: 'default' });
    expect(server.logs.filter((found) => found.route === 'poll')).toEqual([]);
  });

  it('logs a client that leaves mid-stream as cancelled', async () => {
    const port = server.port('http');
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        const req = http.request({ host: HOST, port, method: 'POST', path: '/v1/chat/completions', headers: JSON_BODY }, (res) => {
          // The first chunk is there: leave.
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
        req.end(chat('sim:rk3588-qwen2.5-1.5b', { stream: true, max_tokens: 200 }));
      }),
      20_000,
      'the first chunk',
    );
    const [line] = await requestLines('POST /v1/chat/completions 200 cancelled');
    expect(line).toMatchObject({ level: INFO, outcome: 'cancelled', status: '200', model: 'sim:rk3588-qwen2.5-1.5b' });
  });

  it('logs what a client got wrong at warn, naming the error', async () => {
    expect((await client.raw('POST', '/v1/chat/completions', chat('no-such-model'), JSON_BODY)).status).toBe(404);
    const [missing] = await requestLines('POST /v1/chat/completions 404');
    expect(missing).toMatchObject({ level: WARN, outcome: 'error', model: 'no-such-model', error_code: 'UNKNOWN_HANDLE' });
    expect(missing.error_message).toContain('no-such-model');

    expect((await client.raw('POST', '/api/chat', '{"model": 3}', JSON_BODY)).status).toBe(400);
    const [invalid] = await requestLines('POST /api/chat 400');
    expect(invalid).toMatchObject({ level: WARN, front_end: 'ollama', error_code: 'http_400' });

    expect((await client.raw('GET', '/v1/nothing/here')).status).toBe(404);
    const [unknownRoute] = await requestLines('GET /v1/nothing/here 404');
    expect(unknownRoute).toMatchObject({ level: WARN, route: 'GET unknown route' });

    expect((await tcp.request('rkllm_nope', {})).error?.code).toBe(-32601);
    const [unknownMethod] = await requestLines('rkllm_nope METHOD_NOT_FOUND');
    expect(unknownMethod).toMatchObject({ level: WARN, route: 'unknown method', transport: 'tcp', error_code: 'METHOD_NOT_FOUND' });

    expect((await tcp.request('rkllm_run', { handle: 'default', input_type: 0 })).error?.code).toBe(-32602);
    const [badParams] = await requestLines('rkllm_run INVALID_ARGUMENT');
    expect(badParams).toMatchObject({ level: WARN, model: 'default' });
    expect(badParams.error_message).toContain('prompt_input');

    tcp.sendRaw('{ not json\n');
    const [parse] = await requestLines('invalid request PARSE_ERROR');
    expect(parse).toMatchObject({ level: WARN, transport: 'tcp' });
  });

  it('logs what the HTTP transport refuses itself, and not the readiness probe', async () => {
    const transportLines = (msg: string) => server.logs.filter((line) => line.transport === 'http' && line.msg === msg);
    expect((await client.raw('POST', '/', '{}', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await client.raw('PUT', '/health')).status).toBe(405);
    expect((await client.raw('GET', '/no/such/page')).status).toBe(404);
    await waitUntil('the refusal lines', () => ['POST / 415', 'PUT /health 405', 'GET /no/such/page 404'].every((msg) => transportLines(msg).length === 1), 5000);
    expect(transportLines('POST / 415')[0]).toMatchObject({ level: WARN, route: 'POST /', status: '415' });
    expect((await client.raw('GET', '/health')).status).toBe(200);
    await sleep(100);
    expect(server.logs.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('GET /health'))).toEqual([]);
  });

  it("logs the runtime's failure at error", async () => {
    // sim:crash-midstream's host is killed by SIGSEGV after 20 tokens.
    expect((await client.raw('POST', '/v1/chat/completions', chat('sim:crash-midstream', { max_tokens: 100 }), JSON_BODY)).status).toBe(503);
    const [line] = await requestLines('POST /v1/chat/completions 503');
    expect(line).toMatchObject({ level: ERROR, outcome: 'error', error_code: 'RUNTIME_FAILED', model: 'sim:crash-midstream' });
  });
});

describe('--log-format pretty', () => {
  it('writes readable lines on stderr and leaves stdout to the stdio protocol', async () => {
    const server = ServerProcess.spawn({ disable: ['tcp', 'udp', 'websocket'], args: ['--log-format', 'pretty'] });
    try {
      let stdout = '';
      server.child.stdout!.on('data', (data: Buffer) => (stdout += data.toString('utf8')));
      // Pretty lines are no JSON records, so ServerProcess is not told of them: polled.
      await waitUntil('the start-up lines', () => /API key off/.test(server.stderrText), 20_000);
      server.child.stdin!.write('{"jsonrpc":"2.0","id":7,"method":"rkllm_run","params":{"handle":"default","input_type":0,"prompt_input":"Hi","max_new_tokens":5}}\n');
      await waitUntil('the stdio request line', () => /rkllm_run ok/.test(server.stderrText) && stdout.includes('"id":7'), 10_000);
      const port = Number(/http listening on 127\.0\.0\.1:(\d+)/.exec(server.stderrText)?.[1]);
      const client = new HttpClient(port);
      expect((await client.raw('POST', '/v1/chat/completions', chat('default', { max_tokens: 4 }), JSON_BODY)).status).toBe(200);
      await client.close();
      await waitUntil('the OpenAI request line', () => /POST \/v1\/chat\/completions 200/.test(server.stderrText), 5000);

      // stdout: JSON-RPC messages and nothing else.
      const outLines = stdout.split('\n').filter((line) => line !== '');
      expect(outLines.length).toBeGreaterThan(0);
      for (const line of outLines) expect(JSON.parse(line).jsonrpc).toBe('2.0');
      // stderr: pino-pretty's lines (no colours off a terminal), local times, no pid or hostname.
      expect(server.logs).toEqual([]);
      const runLine = server.stderrLines.find((line) => line.includes('rkllm_run ok'))!;
      expect(runLine).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] INFO: rkllm_run ok \{.*"transport":"stdio".*"generated_tokens":5/);
      expect(server.stderrLines.find((line) => line.includes('OpenAI API at'))).toMatch(/INFO: OpenAI API at http:\/\/127\.0\.0\.1:\d+\/v1/);
      expect(server.stderrText).not.toMatch(/"pid"|hostname/);
      expect(server.stderrText).not.toContain(`${String.fromCharCode(27)}[`);
    } finally {
      await server.stop();
    }
  });

  it("'auto' is pretty on a terminal and JSON elsewhere", () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });
});

describe('the start-up lines of a server open to the network', () => {
  /** announceUrls' lines, through a real pino logger into memory (no socket is bound). */
  function announced(config: ReturnType<typeof defaultConfig>, addresses: Parameters<typeof announceUrls>[1]): Line[] {
    const lines: Line[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const text of chunk.toString('utf8').split('\n')) if (text !== '') lines.push(JSON.parse(text));
        done();
      },
    });
    announceUrls(config, addresses, pino({ base: undefined }, sink));
    return lines;
  }

  const wide = [
    { transport: 'tcp' as const, host: '0.0.0.0', port: 8080 },
    { transport: 'udp' as const, host: '0.0.0.0', port: 8081 },
    { transport: 'http' as const, host: '::', port: 8082 },
  ];

  it('warns of every transport served without a key, and of UDP without a reply cap', () => {
    const lines = announced(defaultConfig(), wide);
    expect(lines.find((line) => line.api === 'openai')?.url).toBe('http://[::]:8082/v1');
    const warnings = lines.filter((line) => line.level === WARN).map((line) => line.msg as string);
    expect(warnings).toHaveLength(4);
    expect(warnings.filter((msg) => /without an API key/.test(msg)).map((msg) => msg.split(' ')[0])).toEqual(['tcp', 'udp', 'http']);
    expect(warnings.find((msg) => /reply cap/.test(msg))).toMatch(/^udp on 0\.0\.0\.0:8081 runs without a reply cap \(--udp-replies-per-second 0\)/);
  });

  it('says the key is on and warns of nothing once key and caps are set', () => {
    const config = { ...defaultConfig(), apiKey: 'k', udpRepliesPerSecond: 50 };
    const lines = announced(config, wide);
    expect(lines.filter((line) => line.level === WARN)).toEqual([]);
    expect(lines.find((line) => line.api_key === true)?.msg).toMatch(/^API key on/);
  });
});
