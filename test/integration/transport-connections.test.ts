// The original plan's transport-connection tests (phase 2, test_transport_connections.js),
// against the real bin/rkllm-serve: requests over TCP, UDP and WebSocket, five concurrent TCP
// requests, and test_connection_drop (a real client of each transport dropped abruptly) reported
// as handled gracefully.

import {
  HttpClient,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  connectClient,
  sleep,
  stopAllServers,
  waitUntil,
  type NetworkTransport,
  type RpcMessage,
} from './client';

jest.setTimeout(30_000);

describe('Transport layer connections', () => {
  let server: ServerProcess;

  beforeEach(async () => {
    server = await ServerProcess.start({ args: ['--enable-test-hooks'] });
  });

  afterEach(async () => {
    await stopAllServers();
  });

  it('handles TCP connections and requests: rkllm_list_functions is a non-empty array', async () => {
    const client = await TcpClient.connect(server.port('tcp'));
    try {
      const response = await client.request('rkllm_list_functions', {});
      expect(response.error).toBeUndefined();
      expect(Array.isArray(response.result)).toBe(true);
      expect(response.result.length).toBeGreaterThan(0);
      for (const entry of response.result) {
        expect(typeof entry.name).toBe('string');
        expect(typeof entry.description).toBe('string');
        expect(typeof entry.params).toBe('object');
      }
    } finally {
      await client.close();
    }
  });

  it('handles UDP requests: rkllm_createDefaultParam is an object', async () => {
    const client = await UdpClient.open(server.port('udp'));
    try {
      const response = await client.request('rkllm_createDefaultParam', {});
      expect(response.error).toBeUndefined();
      expect(typeof response.result).toBe('object');
      expect(Array.isArray(response.result)).toBe(false);
      // The emulated runtime's own defaults (docs/emulated-runtime.md), extend_param nested.
      expect(response.result.top_k).toBe(40);
      expect(response.result.max_new_tokens).toBe(256);
      expect(typeof response.result.extend_param).toBe('object');
      expect(response.result.extend_param.n_batch).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('handles WebSocket connections: rkllm_get_constants is an object', async () => {
    const client = await WsClient.connect(server.port('websocket'));
    try {
      const response = await client.request('rkllm_get_constants', {});
      expect(response.error).toBeUndefined();
      expect(typeof response.result).toBe('object');
      expect(Array.isArray(response.result)).toBe(false);
      expect(JSON.stringify(response.result)).toContain('RKLLM_RUN_FINISH');
    } finally {
      await client.close();
    }
  });

  it('handles 5 concurrent TCP connections, one request each', async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, () => TcpClient.connect(server.port('tcp'))));
    try {
      const results = await Promise.all(clients.map((client, i) => client.request('rkllm_list_functions', { test_id: i }, { id: `concurrent-${i}` })));
      results.forEach((result: RpcMessage, i) => {
        expect(result.id).toBe(`concurrent-${i}`);
        expect(result.error).toBeUndefined();
        expect(Array.isArray(result.result)).toBe(true);
        expect(result.result.length).toBeGreaterThan(0);
      });
      // Each reply went to the connection that asked, and to no other.
      clients.forEach((client, i) => {
        expect(client.received.map((r) => r.message.id)).toEqual([`concurrent-${i}`]);
      });
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('UDP: no reply to an address before it sent a valid request; a reply too big for a datagram is an error, not truncated', async () => {
    const client = await UdpClient.open(server.port('udp'));
    try {
      // Garbage from an address that never sent a valid request: silence (no reflection).
      client.sendRaw('garbage that is not JSON');
      await sleep(500);
      expect(client.received).toEqual([]);
      // After a valid request, the same garbage earns its -32700.
      expect((await client.request('rkllm_get_constants')).error).toBeUndefined();
      client.sendRaw('garbage that is not JSON');
      await client.waitFor('-32700', (m) => m.error?.code === -32700 && m.id === null, 5000);
      // GET_LOGITS returns vocab_size (151,936) floats: far more than one datagram can carry.
      const big = await client.request('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'hello' }, rkllm_infer_params: { mode: 2, keep_history: 0 } });
      expect(big.error).toBeDefined();
      expect(big.error!.code).toBeLessThanOrEqual(-32000);
      expect(big.error!.code).toBeGreaterThanOrEqual(-32099);
      expect(client.unparsable).toEqual([]);
      // The same request over TCP gets the whole result.
      const tcp = await TcpClient.connect(server.port('tcp'));
      try {
        const whole = await tcp.request('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'hello' }, rkllm_infer_params: { mode: 2, keep_history: 0 } });
        expect(whole.error).toBeUndefined();
        expect(JSON.stringify(whole.result).length).toBeGreaterThan(65_536);
      } finally {
        await tcp.close();
      }
    } finally {
      await client.close();
    }
  });

  it('HTTP: a batch gets an array of replies, an all-notification batch no body; GET /health reports readiness', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const batch = await http.post(
        JSON.stringify([
          { jsonrpc: '2.0', id: 1, method: 'rkllm_is_running', params: { handle: 'default' } },
          { jsonrpc: '2.0', method: 'rkllm_get_constants' },
          { jsonrpc: '2.0', id: 'two', method: 'rkllm_get_kv_cache_size', params: { handle: 'default' } },
        ]),
      );
      expect(batch.status).toBe(200);
      expect(Array.isArray(batch.json)).toBe(true);
      expect(batch.json.map((r: RpcMessage) => r.id).sort()).toEqual([1, 'two'].sort());
      const notifications = await http.post(JSON.stringify([{ jsonrpc: '2.0', method: 'rkllm_get_constants' }]));
      expect(notifications.status).toBe(204);
      expect(notifications.text).toBe('');
      const health = await http.health();
      expect(health.status).toBe(200);
      expect(health.json).toEqual(expect.objectContaining({ model_loaded: true, queued: 0 }));
    } finally {
      await http.close();
    }
  });

  describe('test_connection_drop (asked over HTTP, with --enable-test-hooks)', () => {
    it.each(['tcp', 'udp', 'websocket', 'http'])('handles a dropped %s connection gracefully', async (transport) => {
      const http = new HttpClient(server.port('http'));
      try {
        const started = Date.now();
        const response = await http.request('test_connection_drop', { transport, action: 'simulate_drop' }, { timeoutMs: 15_000 });
        expect(response.error).toBeUndefined();
        // The whole report, so that a failure shows which part was not released.
        expect(response.result).toEqual(expect.objectContaining({ handled_gracefully: true, transport, action: 'simulate_drop' }));
        expect(Date.now() - started).toBeLessThan(10_000);
        // The probe's run was cancelled: the model is free again soon after, and the server serves on.
        await waitUntil(
          'rkllm_is_running false after the drop',
          async () => (await http.request('rkllm_is_running', { handle: 'default' })).result?.running === false,
          2000,
        );
        // And a new client of the same transport is served.
        const fresh = await connectClient(server, transport as NetworkTransport);
        try {
          const reply = await fresh.request('rkllm_get_constants');
          expect(reply.error).toBeUndefined();
        } finally {
          await fresh.close();
        }
      } finally {
        await http.close();
      }
    });

    it('answers for stdio too: handled gracefully, or a clear server error if stdio cannot be dialled', async () => {
      const http = new HttpClient(server.port('http'));
      try {
        const response = await http.request('test_connection_drop', { transport: 'stdio', action: 'simulate_drop' }, { timeoutMs: 15_000 });
        if (response.error) {
          expect(response.error.code).toBeLessThanOrEqual(-32000);
          expect(response.error.code).toBeGreaterThanOrEqual(-32099);
          expect(response.error.message.length).toBeGreaterThan(0);
        } else {
          expect(response.result.handled_gracefully).toBe(true);
        }
        // Whatever it answered, stdio itself still works.
        const stdio = server.stdio();
        const reply = await stdio.request('rkllm_get_constants');
        expect(reply.error).toBeUndefined();
      } finally {
        await http.close();
      }
    });

    // The same, seen from outside: a real client of ours drops mid-stream, and the server cancels
    // its run (count to 1,000,000 would take far longer than the bound) and frees its state.
    it.each(['tcp', 'udp', 'websocket', 'http'] as const)('a real %s client dropped mid-stream: its run is cancelled within a second', async (transport) => {
      const http = new HttpClient(server.port('http'));
      try {
        const params = { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 1000000' } };
        let droppedAt = 0;
        if (transport === 'http') {
          await http.sse(JSON.stringify({ jsonrpc: '2.0', id: 'drop', method: 'rkllm_run', params: { ...params, stream: true } }), {
            onEvent: (_event, req) => {
              if (!droppedAt) {
                droppedAt = Date.now();
                req.destroy();
              }
            },
          }).catch(() => undefined);
        } else {
          const client = (await connectClient(server, transport)) as TcpClient | UdpClient | WsClient;
          client.send({ jsonrpc: '2.0', id: 'drop', method: 'rkllm_run_async', params });
          await client.waitFor('a chunk', (m) => m.method === 'rkllm_result', 5000);
          droppedAt = Date.now();
          if (client instanceof UdpClient) await client.close();
          else client.drop();
        }
        expect(droppedAt).toBeGreaterThan(0);
        await waitUntil(
          'the run to be cancelled and the connection freed',
          async () => {
            const health = (await http.health()).json;
            return health.running === 0 && health.streams === 0 && health.connections === 0;
          },
          1000,
          20,
        );
        expect((await http.request('rkllm_is_running', { handle: 'default' })).result).toEqual({ running: false });
      } finally {
        await http.close();
      }
    });

    it('does not exist without --enable-test-hooks (-32601)', async () => {
      const plain = await ServerProcess.start({ disable: ['stdio', 'udp', 'websocket', 'tcp'] });
      const http = new HttpClient(plain.port('http'));
      try {
        const response = await http.request('test_connection_drop', { transport: 'tcp', action: 'simulate_drop' });
        expect(response.error?.code).toBe(-32601);
      } finally {
        await http.close();
      }
    });
  });

  it('turns a TCP connection beyond --max-connections away with -32017, and serves the others', async () => {
    const bounded = await ServerProcess.start({ args: ['--max-connections', '2'], disable: ['stdio', 'udp', 'websocket'] });
    const first = await TcpClient.connect(bounded.port('tcp'));
    const second = await TcpClient.connect(bounded.port('tcp'));
    const third = await TcpClient.connect(bounded.port('tcp'));
    try {
      await waitUntil('the refusal to reach the third client', async () => third.received.length > 0 || third.closed, 5000, 20);
      expect(third.received[0]?.message.error?.code).toBe(-32017);
      await waitUntil('the third connection to be closed', async () => third.closed, 5000, 20);
      for (const client of [first, second]) {
        const response = await client.request('rkllm_is_running', {});
        expect(response.result).toEqual({ running: false });
      }
    } finally {
      await Promise.all([first.close(), second.close(), third.close()]);
    }
  });
});
