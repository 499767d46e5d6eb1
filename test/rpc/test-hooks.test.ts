// test_connection_drop through a dialer backed by in-memory connections: the probe opens a
// client, starts a long stream on it, drops it, and reports how the engine cleaned up.

import type { OutgoingMessage } from '../../lib/rpc/connection';
import type { ClientDialer, DialedClient, RkllmServer } from '../../lib/serve';
import { ABIS, MemoryConnection, SLOW_MODEL, TestClient, startSim, waitUntil } from './helpers';

/** A dialer whose clients are in-memory connections to the same server. */
function memoryDialer(server: RkllmServer, reportClose = true): ClientDialer {
  return {
    dial: async (): Promise<DialedClient> => {
      const listeners: ((text: string) => void)[] = [];
      const connection = new (class extends MemoryConnection {
        override send(message: OutgoingMessage): boolean {
          const text = JSON.stringify(message);
          for (const listener of listeners) listener(text);
          return super.send(message);
        }
      })();
      return {
        send: (text) => void server.handleMessage(connection, text),
        onMessage: (listener) => listeners.push(listener),
        drop: () => {
          if (reportClose) server.connectionClosed(connection);
        },
      };
    },
  };
}

describe.each(ABIS)('test_connection_drop (ABI %s)', (abi) => {
  let server: RkllmServer;
  let client: TestClient;

  beforeAll(async () => {
    server = await startSim(abi, { model: SLOW_MODEL, enableTestHooks: true });
    client = new TestClient(server);
  }, 20_000);
  afterAll(() => server.shutdown());

  it('is listed when test hooks are enabled', async () => {
    const list: { name: string }[] = await client.ok('rkllm_list_functions');
    expect(list.map((entry) => entry.name)).toContain('test_connection_drop');
  });

  it('says when the transport is not running', async () => {
    expect(await client.fails('test_connection_drop', { transport: 'udp', action: 'simulate_drop' })).toMatchObject({ code: -32016 });
    expect(await client.fails('test_connection_drop', { transport: 'carrier-pigeon', action: 'simulate_drop' })).toMatchObject({
      code: -32602,
      data: { field: 'transport' },
    });
    expect(await client.fails('test_connection_drop', { transport: 'tcp', action: 'explode' })).toMatchObject({
      code: -32602,
      data: { field: 'action' },
    });
  });

  it('reports a drop that the engine handled', async () => {
    server.registerDialer('tcp', memoryDialer(server));
    const report = await client.ok('test_connection_drop', { transport: 'tcp', action: 'simulate_drop' }, 15_000);
    expect(report).toMatchObject({ handled_gracefully: true, transport: 'tcp', action: 'simulate_drop', cancelled: true, connection_closed: true, released: true });
    expect(report.released_ms).toBeLessThan(1000);
    // On the emulated runtime the probe runs on a paced model of its own, gone afterwards.
    expect(report.handle).toMatch(/^drop-probe-/);
    expect(report.finished_before_drop).toBe(false);
    expect(server.stats().models).toBe(1);
    expect(server.stats()).toMatchObject({ streams: 0, queued: 0 });
    await waitUntil(() => server.stats().running === 0, 3000, 'the native run to stop');
  }, 20_000);

  it('runs on the model a client names', async () => {
    const report = await client.ok('test_connection_drop', { transport: 'tcp', action: 'simulate_drop', handle: 'default' }, 15_000);
    expect(report).toMatchObject({ handled_gracefully: true, handle: 'default' });
    await waitUntil(() => server.stats().running === 0, 3000, 'the native run to stop');
  }, 20_000);

  it('reports handled_gracefully: false when the close never reaches the engine', async () => {
    server.registerDialer('websocket', memoryDialer(server, false));
    const report = await client.ok('test_connection_drop', { transport: 'websocket', action: 'simulate_drop' }, 15_000);
    expect(report).toMatchObject({ handled_gracefully: false, connection_closed: false, released_ms: null });
  }, 20_000);
});
