// An argument the runtime refuses is named as the client wrote it, on every front end and every
// transport: nested (rkllm_input.token_input), flat (token_input), in a direct reply, in a
// stream's last notification, in a poll; and on the OpenAI API as the request member.

import { ServerProcess, TRANSPORTS, connectClient, stopAllServers, type RpcClient } from '../integration/client';
import { startOpenAiServer, type OpenAiServer } from '../openai/helpers';
import { ABIS, TestClient, startSim } from '../rpc/helpers';
import type { RkllmServer } from '../../lib/serve';

const EMPTY_TOKENS_NESTED = { rkllm_input: { input_type: 1, token_input: [] } };
const EMPTY_TOKENS_FLAT = { input_type: 1, token_input: [] };

describe.each(ABIS)('argument errors name the field as written (JSON-RPC engine, ABI %s)', (abi) => {
  let server: RkllmServer;
  let client: TestClient;

  beforeAll(async () => {
    server = await startSim(abi, { model: 'sim:instant' });
    client = new TestClient(server);
  });
  afterAll(() => server.shutdown());

  it('rkllm_run with an empty token_input, nested and flat', async () => {
    expect(await client.fails('rkllm_run', EMPTY_TOKENS_NESTED)).toMatchObject({ code: -32602, data: { field: 'rkllm_input.token_input' } });
    expect(await client.fails('rkllm_run', EMPTY_TOKENS_FLAT)).toMatchObject({ code: -32602, data: { field: 'token_input' } });
  });

  it('in the last notification of a stream, and in a poll', async () => {
    const { stream_id: streamId } = await client.ok('rkllm_run_async', EMPTY_TOKENS_NESTED);
    const last = (await client.streamEnd(streamId)).pop();
    expect(last).toMatchObject({ state: 3, error: { code: -32602, data: { field: 'rkllm_input.token_input' } } });
    const poll = await client.ok('poll', { stream_id: streamId, from_seq: 0 });
    expect(poll).toMatchObject({ done: true, error: { code: -32602, data: { field: 'rkllm_input.token_input' } } });

    const flat = await client.ok('rkllm_run_async', EMPTY_TOKENS_FLAT);
    expect((await client.streamEnd(flat.stream_id)).pop()).toMatchObject({ state: 3, error: { data: { field: 'token_input' } } });
  });

  it('a member of a nested struct the runtime checks', async () => {
    const error = await client.fails('rkllm_run', {
      rkllm_input: { input_type: 2, embed_input: { embed: [1, 2, 3], n_tokens: 2 } },
    });
    expect(error).toMatchObject({ code: -32602, data: { field: 'rkllm_input.embed_input.embed' } });
  });
});

describe('argument errors name the field as written (every transport, and the OpenAI API)', () => {
  let server: ServerProcess;
  let openai: OpenAiServer;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant' });
    openai = await startOpenAiServer({ model: 'sim:instant' });
  }, 30_000);
  afterAll(() => stopAllServers());

  it.each(TRANSPORTS)('%s: rkllm_run with an empty token_input', async (transport) => {
    const client: RpcClient = await connectClient(server, transport);
    try {
      const nested = await client.request('rkllm_run', EMPTY_TOKENS_NESTED);
      expect(nested.error).toMatchObject({ code: -32602, data: { field: 'rkllm_input.token_input' } });
      const flat = await client.request('rkllm_run', EMPTY_TOKENS_FLAT);
      expect(flat.error).toMatchObject({ code: -32602, data: { field: 'token_input' } });
    } finally {
      if (transport !== 'stdio') await client.close();
    }
  });

  it('OpenAI: a value the runtime cannot take is refused naming the request member', async () => {
    const error = await openai.openai.chat.completions
      .create({ model: 'default', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3_000_000_000 })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ status: 400, param: 'max_tokens' });
  });
});
