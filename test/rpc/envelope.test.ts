// The JSON-RPC 2.0 rules themselves: parse errors, invalid requests, ids, notifications,
// batches, unknown methods, invalid params, oversize messages.

import type { RkllmServer } from '../../lib/serve';
import { ABIS, TestClient, startSim, type Json, type RpcReply } from './helpers';

describe.each(ABIS)('JSON-RPC envelope (ABI %s)', (abi) => {
  let server: RkllmServer;
  let client: TestClient;

  beforeAll(async () => {
    server = await startSim(abi, { model: 'sim:instant', maxMessageBytes: 4096 });
  });
  afterAll(() => server.shutdown());
  beforeEach(() => {
    client = new TestClient(server);
  });

  async function exchange(text: string): Promise<unknown[]> {
    const before = client.connection.received.length;
    await client.sendText(text);
    return client.connection.received.slice(before);
  }

  it('answers malformed JSON with -32700 and id null, and goes on serving', async () => {
    const [reply] = (await exchange('{"jsonrpc":"2.0","id":1,"method":')) as RpcReply[];
    expect(reply).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    expect(await client.ok('rkllm_get_constants')).toHaveProperty('runtime');
  });

  it.each([
    ['a number', '1', null],
    ['a string', '"x"', null],
    ['no jsonrpc', '{"id":1,"method":"rkllm_get_constants"}', 1],
    ['jsonrpc 1.0', '{"jsonrpc":"1.0","id":2,"method":"rkllm_get_constants"}', 2],
    ['a numeric method', '{"jsonrpc":"2.0","id":3,"method":1}', 3],
    ['an object id', '{"jsonrpc":"2.0","id":{},"method":"rkllm_get_constants"}', null],
    ['string params', '{"jsonrpc":"2.0","id":"p","method":"rkllm_get_constants","params":"x"}', 'p'],
    ['an invalid notification', '{"jsonrpc":"2.0","method":5}', null],
  ])('answers %s with -32600', async (_label, text, id) => {
    const replies = (await exchange(text)) as RpcReply[];
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ id, error: { code: -32600, message: 'Invalid Request' } });
  });

  it.each([['a string id', 'abc'], ['an integer id', 42], ['a fractional id', 1.5], ['a null id', null], ['a negative id', -7]])(
    'echoes %s exactly',
    async (_label, id) => {
      const [reply] = (await exchange(JSON.stringify({ jsonrpc: '2.0', id, method: 'rkllm_createDefaultParam' }))) as RpcReply[];
      expect(reply.id).toStrictEqual(id);
      expect(reply.result).toHaveProperty('top_k', 40);
    },
  );

  it('never answers a notification, not even an erroneous one', async () => {
    expect(await exchange(JSON.stringify({ jsonrpc: '2.0', method: 'rkllm_get_constants' }))).toEqual([]);
    expect(await exchange(JSON.stringify({ jsonrpc: '2.0', method: 'no_such_method' }))).toEqual([]);
    expect(await exchange(JSON.stringify({ jsonrpc: '2.0', method: 'rkllm_init', params: { param: 3 } }))).toEqual([]);
  });

  it('answers an unknown method with -32601', async () => {
    const error = await client.fails('rkllm_fly');
    expect(error).toMatchObject({ code: -32601, message: 'Method not found', data: { method: 'rkllm_fly' } });
  });

  it('answers bad params with -32602 naming the field', async () => {
    expect(await client.fails('rkllm_init', {})).toMatchObject({ code: -32602, data: { field: 'param' } });
    expect(await client.fails('rkllm_init', { param: { model_path: 5 } })).toMatchObject({
      code: -32602,
      data: { field: 'param.model_path' },
    });
    expect(await client.fails('rkllm_init', { param: { model_path: 'sim:instant', top_kk: 1 } })).toMatchObject({
      code: -32602,
      data: { field: 'param.top_kk', reason: 'Unexpected property' },
    });
    expect(
      await client.fails('rkllm_run', { ...{ rkllm_input: { input_type: 0, prompt_input: 'x' } }, rkllm_infer_params: { keep_histroy: 1 } }),
    ).toMatchObject({ code: -32602, data: { field: 'rkllm_infer_params.keep_histroy' } });
    expect(await client.fails('rkllm_run', { rkllm_input: { input_type: 1, token_input: [1, 'a'] } })).toMatchObject({
      code: -32602,
      data: { field: 'rkllm_input.token_input[1]' },
    });
    expect(await client.fails('poll', [1, 2])).toMatchObject({ code: -32602, data: { field: 'params' } });
  });

  it('tolerates harmless extra fields at the top of params, and empty positional params', async () => {
    const list = await client.ok('rkllm_list_functions', { test_id: 7 });
    expect(Array.isArray(list)).toBe(true);
    expect(await client.ok('rkllm_createDefaultParam', [])).toHaveProperty('top_k');
  });

  it('answers an oversize message with MESSAGE_TOO_LARGE (id null) and goes on', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'rkllm_get_constants', params: { pad: 'é'.repeat(3000) } });
    const [reply] = (await exchange(big)) as RpcReply[];
    expect(reply).toMatchObject({ id: null, error: { code: -32014, data: { limit: 4096 } } });
    expect(await client.ok('rkllm_get_constants')).toHaveProperty('runtime');
  });

  describe('batches', () => {
    it('answers an empty batch with one -32600', async () => {
      const replies = await exchange('[]');
      expect(replies).toEqual([{ jsonrpc: '2.0', id: null, error: expect.objectContaining({ code: -32600 }) }]);
    });

    it('answers a mixed batch with one array, in any order, without the notifications', async () => {
      const batch = [
        { jsonrpc: '2.0', id: 1, method: 'rkllm_createDefaultParam' },
        { jsonrpc: '2.0', method: 'rkllm_get_constants' },
        { jsonrpc: '2.0', id: 'run', method: 'rkllm_run', params: { rkllm_input: { input_type: 0, prompt_input: 'count to 3' } } },
        { jsonrpc: '2.0', id: 3, method: 'nope' },
        1,
        { jsonrpc: '2.0', id: 4, method: 'rkllm_init', params: {} },
      ];
      const messages = await exchange(JSON.stringify(batch));
      expect(messages).toHaveLength(1);
      const replies = messages[0] as RpcReply[];
      expect(Array.isArray(replies)).toBe(true);
      expect(replies).toHaveLength(5);
      const byId = new Map(replies.filter((r) => r.id !== null).map((r) => [r.id, r]));
      expect(byId.get(1)?.result).toHaveProperty('top_k', 40);
      expect(byId.get('run')?.result).toMatchObject({ text: '1, 2, 3', state: 2 });
      expect(byId.get(3)?.error?.code).toBe(-32601);
      expect(byId.get(4)?.error?.code).toBe(-32602);
      expect(replies.filter((r) => r.id === null)).toEqual([expect.objectContaining({ error: expect.objectContaining({ code: -32600 }) })]);
    });

    it('sends nothing for a batch of notifications only', async () => {
      const batch: Json[] = [
        { jsonrpc: '2.0', method: 'rkllm_get_constants' },
        { jsonrpc: '2.0', method: 'rkllm_run', params: { rkllm_input: { input_type: 0, prompt_input: 'count to 2' } } },
      ];
      expect(await exchange(JSON.stringify(batch))).toEqual([]);
    });

    it('answers a batch of invalid members one by one', async () => {
      const [replies] = (await exchange('[1, 2, {"foo": 1}]')) as RpcReply[][];
      expect(replies).toHaveLength(3);
      for (const reply of replies) expect(reply).toMatchObject({ id: null, error: { code: -32600 } });
    });
  });
});
