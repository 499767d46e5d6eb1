// Token notifications are written from a per-stream template (lib/methods/front-end.ts) rather
// than stringified object by object: the text a transport sends must be exactly the JSON of the
// notification object, whatever the text, the request id or the test-hook stamp.

import type { Connection, OutgoingMessage } from '../../lib/rpc/connection';
import type { RkllmServer } from '../../lib/serve';
import { serialize } from '../../lib/transports/replies';
import { ABIS, startSim, waitUntil } from './helpers';

/** A connection that keeps each message as the text a transport would write. */
class TextConnection implements Connection {
  readonly id = 'text#1';
  readonly transport = 'tcp' as const;
  readonly canPush = true;
  readonly lines: string[] = [];

  send(message: OutgoingMessage): boolean {
    this.lines.push(serialize(message));
    return true;
  }

  sendAll(messages: readonly OutgoingMessage[]): boolean {
    for (const message of messages) this.lines.push(serialize(message));
    return true;
  }
}

const TRICKY = 'he said "hi"\\ \t\u0001 日本語 🎉 </script>';

describe.each(ABIS)('token notification text (ABI %s)', (abi) => {
  let server: RkllmServer;

  beforeAll(async () => {
    server = await startSim(abi, { model: 'sim:instant', enableTestHooks: true });
  });
  afterAll(() => server.shutdown());

  it.each([['a string id with "quotes"'], [42], [null]])('is the JSON of the notification object (request id %p)', async (id) => {
    const connection = new TextConnection();
    const request = { jsonrpc: '2.0', id, method: 'rkllm_run', params: { rkllm_input: { input_type: 0, prompt_input: `echo: ${TRICKY}` }, stream: true } };
    await server.handleMessage(connection, JSON.stringify(request));
    await waitUntil(() => connection.lines.some((line) => line.includes('"perf"')), 5000, 'the end of the stream');
    server.connectionClosed(connection);

    const notifications = connection.lines.map((line) => JSON.parse(line) as { method?: string; params?: Record<string, unknown> }).filter((m) => m.method === 'rkllm_result');
    expect(notifications.length).toBeGreaterThan(2);
    const text = notifications.map((m) => m.params?.text ?? '').join('');
    expect(text).toBe(TRICKY);
    for (const [index, line] of connection.lines.entries()) {
      const parsed = JSON.parse(line) as { method?: string; params?: Record<string, unknown> };
      if (parsed.method !== 'rkllm_result') continue;
      const { stream_id, request_id, seq, state, text: chunkText, token_id, callback_us, ...rest } = parsed.params!;
      // Rebuilt in the protocol's member order, the object stringifies to the very same text.
      const rebuilt = { jsonrpc: '2.0', method: 'rkllm_result', params: { stream_id, request_id, seq, state, text: chunkText, token_id, callback_us, ...rest } };
      expect(JSON.stringify(rebuilt)).toBe(line);
      expect(request_id).toBe(id);
      // Test hooks stamp every token with the runtime's callback time; the end carries perf instead.
      expect(typeof (rest.perf === undefined ? callback_us : 0)).toBe('number');
      expect(seq).toBe(index);
    }
  });
});
