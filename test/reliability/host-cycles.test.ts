// 100 crash-and-restart cycles of one model host (issue 13): afterwards the server holds the
// same file descriptors and about the same memory as before them, no child is left a zombie,
// and the only children alive are the hosts of the loaded models and the spare. Bounded: each cycle waits at
// most 15 s for its restart, the whole test 240 s.

import { ServerProcess, TcpClient, countTo, openFdCount, residentKiB, stopAllServers, waitUntil } from '../integration/client';
import { RUNTIME_FAILED, childrenOf, waitRestarted, zombieChildren } from './host-helpers';

jest.setTimeout(240_000);

const CYCLES = 100;
const WARM_UP = 5;
/** The server's resident memory may grow by this much over the cycles (heap growth, not a leak per cycle). */
const RSS_SLACK_KIB = 24 * 1024;

afterAll(async () => {
  await stopAllServers();
});

it(`${CYCLES} crash-and-restart cycles leave the server's fds, memory and children as they were`, async () => {
  // A failure window of 1 ms: every crash is the first in its window, so none is failed and each
  // restart waits the shortest backoff.
  const server = await ServerProcess.start({ model: 'sim:instant', args: ['--host-failure-window', '1', '--host-max-failures', '1000'] });
  const client = await TcpClient.connect(server.port('tcp'));
  try {
    expect((await client.request('rkllm_init', { handle: 'cycler', param: { model_path: 'sim:crash-midstream' } })).error).toBeUndefined();
    const crashOnce = async (restarts: number): Promise<void> => {
      const reply = await client.request('rkllm_run', { handle: 'cycler', rkllm_input: { input_type: 0, prompt_input: 'count to 1000' } }, { timeoutMs: 15_000 });
      expect(reply.error?.code).toBe(RUNTIME_FAILED);
      await waitRestarted(client, 'cycler', restarts);
    };
    for (let i = 1; i <= WARM_UP; i++) await crashOnce(i);
    const baseline = { fds: openFdCount(server.pid), rssKiB: residentKiB(server.pid) };
    const started = Date.now();
    for (let i = 1; i <= CYCLES; i++) await crashOnce(WARM_UP + i);
    const elapsedMs = Date.now() - started;

    // The restarted model still answers, and so does the other one.
    expect((await client.request('rkllm_run', { handle: 'cycler', rkllm_input: { input_type: 0, prompt_input: 'count to 3' } })).result?.text).toBe(countTo(3));
    expect((await client.request('rkllm_run', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 3' } })).result?.text).toBe(countTo(3));
    // The last dead host's pipes close as its exit is handled: give that a moment.
    await waitUntil('the fds back to their baseline', () => openFdCount(server.pid) <= baseline.fds, 5000, 50);
    const after = { fds: openFdCount(server.pid), rssKiB: residentKiB(server.pid) };
    console.log(`${CYCLES} cycles in ${elapsedMs} ms (${Math.round(elapsedMs / CYCLES)} ms each); fds ${baseline.fds} -> ${after.fds}; RSS ${baseline.rssKiB} -> ${after.rssKiB} KiB`);
    expect(after.fds).toBeLessThanOrEqual(baseline.fds);
    expect(after.rssKiB).toBeLessThan(baseline.rssKiB + RSS_SLACK_KIB);
    expect(zombieChildren(server.pid)).toEqual([]);
    // Two models loaded: their two hosts and the spare, nothing else.
    expect(childrenOf(server.pid)).toHaveLength(3);
    expect(server.exitInfo).toBeUndefined();
  } finally {
    await client.close();
  }
});
