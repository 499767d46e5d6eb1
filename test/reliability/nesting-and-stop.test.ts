// Issue 11, from finding 9: nested data the server serialises again (tools) is bounded in depth
// and refused as the client's mistake (-32602 naming the field; OpenAI: 400) instead of failing
// as a server fault (-32603 / 500), on every transport; the OpenAI `stop` matcher is linear in
// the output, and a stop sequence over its length bound is refused at once with a 400.

import { StopMatcher } from '../../lib/core/stop';
import {
  HttpClient,
  ServerProcess,
  countTo,
  stopAllServers,
  type MessageClient,
  type RpcMessage,
  openMessageClients,
  closeMessageClients,
} from '../integration/client';

jest.setTimeout(30_000);

/** Deeper than JSON.stringify can go on the main thread's stack (it fails near 5,000 objects). */
const DEPTH = 8000;

/** {"a":{"a":...{}}}, `depth` objects deep, built without recursion. */
function nestedObjects(depth: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let node = root;
  for (let level = 1; level < depth; level++) {
    const child: Record<string, unknown> = {};
    node.a = child;
    node = child;
  }
  return root;
}

/** JSON.stringify of `value` inside `wrap`, with the deep part written by hand (stringify would overflow). */
function withDeepPart(depth: number, wrap: (placeholder: string) => string): string {
  return wrap('{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1));
}

afterAll(() => stopAllServers());

describe('deeply nested tools', () => {
  let server: ServerProcess;
  const clients: Record<string, MessageClient> = {};

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant' });
    await openMessageClients(server, clients);
  });
  afterAll(async () => {
    await closeMessageClients(clients);
    await server.stop();
  });

  function setToolsMessage(id: string, depth: number): string {
    return withDeepPart(
      depth,
      (deep) =>
        `{"jsonrpc":"2.0","id":"${id}","method":"rkllm_set_function_tools","params":{"system_prompt":"","tool_response_str":"tool_response",` +
        `"tools":[{"type":"function","function":{"name":"f","parameters":${deep}}}]}}`,
    );
  }

  function expectDepthRefusal(reply: RpcMessage | undefined): void {
    expect(reply?.error?.code).toBe(-32602);
    const data = reply?.error?.data as { field: string; reason: string };
    expect(data.field.startsWith('tools[0].function.parameters.a.a')).toBe(true);
    expect(data.reason).toContain('nested deeper than 64 levels');
  }

  it.each(['stdio', 'tcp', 'udp', 'websocket'])('%s: rkllm_set_function_tools answers -32602 naming the field; the connection goes on', async (transport) => {
    const client = clients[transport];
    const id = `deep-${transport}`;
    client.sendText(setToolsMessage(id, DEPTH));
    expectDepthRefusal(await client.waitForReply(id));
    // Nesting within the bound is not refused for its depth.
    const shallowId = `shallow-${transport}`;
    client.sendText(setToolsMessage(shallowId, 60));
    expect((await client.waitForReply(shallowId)).error?.code).not.toBe(-32602);
    expect((await client.request('rkllm_is_running')).result).toEqual({ running: false });
  });

  it('http: POST / answers -32602; /v1/chat/completions answers 400 naming the parameter', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const rpc = await http.post(setToolsMessage('deep-http', DEPTH));
      expect(rpc.status).toBe(200);
      expectDepthRefusal(rpc.json as RpcMessage);
      const body = withDeepPart(
        DEPTH,
        (deep) =>
          `{"model":"default","messages":[{"role":"user","content":"count to 3"}],` +
          `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":${deep}}}}]}`,
      );
      const chat = await http.raw('POST', '/v1/chat/completions', body, { 'content-type': 'application/json' });
      expect(chat.status).toBe(400);
      expect(chat.json.error.type).toBe('invalid_request_error');
      expect(String(chat.json.error.param).startsWith('tools.0.function.parameters.properties.a.a')).toBe(true);
      expect(chat.json.error.message).toContain('nested deeper than 64 levels');
      // The same request with shallow tools is served.
      const shallow = JSON.stringify({
        model: 'default',
        messages: [{ role: 'user', content: 'count to 3' }],
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: nestedObjects(10) } } }],
      });
      expect((await http.raw('POST', '/v1/chat/completions', shallow, { 'content-type': 'application/json' })).status).toBe(200);
    } finally {
      await http.close();
    }
  });
});

describe('OpenAI stop sequences', () => {
  let server: ServerProcess;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['udp', 'websocket', 'tcp'] });
    http = new HttpClient(server.port('http'));
  });
  afterAll(async () => {
    await http.close();
    await server.stop();
  });

  it('a 58 KiB stop string is refused at once with a 400 naming it; 1,024 characters are served', async () => {
    // A long prefix of the answer, so a matcher that rescans its held-back text works hard.
    const answer = countTo(20_000);
    const long = answer.slice(0, 58 * 1024) + 'X';
    const started = Date.now();
    const refused = await http.raw('POST', '/v1/completions', JSON.stringify({ model: 'default', prompt: 'count to 20000', stop: long, max_tokens: 40_000 }), {
      'content-type': 'application/json',
    });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ type: 'invalid_request_error', param: 'stop' });
    expect(refused.json.error.message).toContain('at most 1024 characters');
    const inArray = await http.raw('POST', '/v1/completions', JSON.stringify({ model: 'default', prompt: 'count to 3', stop: ['x', long] }), {
      'content-type': 'application/json',
    });
    expect(inArray.status).toBe(400);
    expect(inArray.json.error.param).toBe('stop.1');
    const atBound = answer.slice(0, 1023) + 'X';
    const served = await http.raw('POST', '/v1/completions', JSON.stringify({ model: 'default', prompt: 'count to 120', stop: [atBound, ', 100'] }), {
      'content-type': 'application/json',
    });
    expect(served.status).toBe(200);
    expect(served.json.choices[0].text).toBe(countTo(99));
    expect(served.json.choices[0].finish_reason).toBe('stop');
  });

  it('the matcher is linear: a 58 KiB stop over 58 KiB of matching output, token by token, takes well under a second', () => {
    const answer = countTo(20_000);
    const stop = answer.slice(0, 58 * 1024) + 'X';
    // The emulated model's tokens for "count to N" are about this size: "1", ",", " 2", ...
    const tokens = answer.slice(0, 60 * 1024).match(/\d+|,| \d+/g)!;
    const matcher = new StopMatcher([stop]);
    const started = performance.now();
    let out = '';
    for (const token of tokens) out += matcher.push(token);
    out += matcher.flush();
    const elapsedMs = performance.now() - started;
    process.stderr.write(`stop matcher: a ${stop.length}-character stop over ${tokens.length} tokens in ${elapsedMs.toFixed(1)} ms\n`);
    expect(out).toBe(tokens.join(''));
    expect(elapsedMs).toBeLessThan(500);
  });

  it.each([
    ['across pieces', ['bc'], ['ab', 'cd'], 'a', true],
    ['a held tail that is not a stop after all', ['abc'], ['xab', 'd'], 'xabd', false],
    ['an overlapping prefix', ['aab'], ['aaab'], 'a', true],
    ['the sequence completed first, wherever the pieces fall', ['abcd', 'bc'], ['abcd'], 'a', true],
    ['no stop at all', [], ['abc', 'def'], 'abcdef', false],
    ['an empty stop, ignored', [''], ['abc'], 'abc', false],
    ['a tail held to the end, then flushed', ['abc'], ['zzab'], 'zzab', false],
    ['a stop at the very start', ['ab'], ['a', 'b', 'c'], '', true],
  ])('the matcher cuts right: %s', (_label, stops, pieces, expected, stopped) => {
    const matcher = new StopMatcher(stops);
    let out = '';
    for (const piece of pieces) out += matcher.push(piece);
    out += matcher.flush();
    expect(out).toBe(expected);
    expect(matcher.stopped).toBe(stopped);
  });
});
