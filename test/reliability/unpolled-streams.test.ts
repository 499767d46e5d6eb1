// Issue 11, finding 6: streams that nobody reads must not grow the server without bound. On the
// real server: 1,045 poll-only rkllm_run_async streams over HTTP that nobody polls (each 2,001
// chunks), and 1,045 pushed streams over TCP that the client reads but never polls. The first
// must be refused beyond the model's queue (unread streams count against it) with the server's
// RSS bounded; the second must keep no more streams than the per-client bound (the oldest
// finished ones make room). A control client measures the p99 latency of a cheap request
// during the attack; the figures go to stderr (docs/security/c.md quotes them).

import { HttpClient, ServerProcess, TcpClient, mapLimit, residentKiB, sleep, stopAllServers, waitUntil, type RpcMessage } from '../integration/client';

jest.setTimeout(120_000);

const ATTACK_STREAMS = 1045;
/** 2,000 token chunks and the final one: 2,001 chunks per stream. */
const ATTACK_CHUNKS = 2001;
const ATTACK_PROMPT = 'count to 1000';
const QUEUE_FULL = -32001;
/** Defaults: --max-queue 64, so 65 unread streams at most (64 waiting + 1 running). */
const MAX_QUEUE = 64;
const PER_CLIENT = 64;
/** What the attack may add to the server's RSS with the bounds in place. */
const RSS_BOUND_KIB = 150 * 1024;

interface Health {
  streams: number;
  queued: number;
  running: number;
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Sends a cheap request every 10 ms until stopped; returns each round trip's latency. */
function controlLatencies(client: TcpClient): { stop: () => Promise<number[]> } {
  const latencies: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const reply = await client.request('rkllm_is_running', { handle: 'big' }, { timeoutMs: 15_000 });
      if (reply.error) throw new Error(`control request failed: ${JSON.stringify(reply.error)}`);
      latencies.push(performance.now() - started);
      await sleep(10);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return latencies;
    },
  };
}

/** Samples the server's RSS every 100 ms until stopped; returns the peak in KiB. */
function rssPeak(pid: number): { stop: () => number } {
  let peak = residentKiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, residentKiB(pid));
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, residentKiB(pid));
    },
  };
}

describe('streams nobody reads are bounded (issue 11, finding 6)', () => {
  let server: ServerProcess;
  let control: TcpClient;
  let http: HttpClient;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:instant', disable: ['udp', 'websocket'] });
    http = new HttpClient(server.port('http'));
    control = await TcpClient.connect(server.port('tcp'));
    // A model with no token limit: each attack stream is 2,001 chunks long.
    const init = await http.request('rkllm_init', { handle: 'big', param: { model_path: 'sim:instant', max_context_len: 262144, max_new_tokens: 0 } });
    expect(init.error).toBeUndefined();
    // Warm up, so that the RSS baseline includes what any first run allocates.
    for (let i = 0; i < 5; i++) expect((await http.request('rkllm_run', { handle: 'big', rkllm_input: { input_type: 0, prompt_input: ATTACK_PROMPT } })).error).toBeUndefined();
  });

  afterAll(async () => {
    await control?.close();
    await http?.close();
    await stopAllServers();
  });

  async function health(): Promise<Health> {
    return (await http.health()).json as Health;
  }

  it(`HTTP: ${ATTACK_STREAMS} run_async streams nobody polls are refused beyond the queue and RSS stays bounded`, async () => {
    await sleep(500);
    const rssBefore = residentKiB(server.pid);
    const peak = rssPeak(server.pid);
    const latencies = controlLatencies(control);
    const attacker = new HttpClient(server.port('http'));
    const accepted: string[] = [];
    const refused: RpcMessage[] = [];
    const started = Date.now();
    try {
      await mapLimit(
        Array.from({ length: ATTACK_STREAMS }, (_, i) => i),
        2,
        async () => {
          const reply = await attacker.request('rkllm_run_async', { handle: 'big', rkllm_input: { input_type: 0, prompt_input: ATTACK_PROMPT } }, { timeoutMs: 30_000 });
          if (reply.result?.stream_id !== undefined) accepted.push(String(reply.result.stream_id));
          else {
            refused.push(reply);
            // A persistent attacker: pause briefly and go on.
            await sleep(2);
          }
        },
      );
      // Let the accepted runs finish and their chunks land.
      await waitUntil('the attack runs to finish', async () => {
        const h = await health();
        return h.running === 0 && h.queued === 0;
      }, 60_000, 100);
    } finally {
      await attacker.close();
    }
    const attackMs = Date.now() - started;
    const controlMs = await latencies.stop();
    const rssPeakKiB = peak.stop();
    const streams = (await health()).streams;
    const byCode = new Map<number, number>();
    for (const reply of refused) byCode.set(reply.error?.code ?? 0, (byCode.get(reply.error?.code ?? 0) ?? 0) + 1);
    process.stderr.write(
      `unpolled-streams http: ${ATTACK_STREAMS} attempts in ${attackMs} ms: ${accepted.length} accepted, refused ${JSON.stringify(Object.fromEntries(byCode))}; ` +
        `streams kept ${streams}; RSS ${Math.round(rssBefore / 1024)} MiB -> peak ${Math.round(rssPeakKiB / 1024)} MiB (+${Math.round((rssPeakKiB - rssBefore) / 1024)} MiB); ` +
        `control rkllm_is_running p50 ${percentile(controlMs, 50).toFixed(1)} ms, p99 ${percentile(controlMs, 99).toFixed(1)} ms over ${controlMs.length} requests\n`,
    );

    expect(server.exitInfo).toBeUndefined();
    // Unread streams hold their model's queue: beyond it, every attempt is refused at once.
    expect(accepted.length).toBeLessThanOrEqual(MAX_QUEUE + 1);
    expect(accepted.length + refused.length).toBe(ATTACK_STREAMS);
    for (const reply of refused) expect(reply.error?.code).toBe(QUEUE_FULL);
    // Early refusals may come from runs still queued; once they have finished, it is the unread streams.
    expect(refused[refused.length - 1].error?.data).toMatchObject({ unread_streams: expect.any(Number) });
    expect((refused[refused.length - 1].error?.data as { unread_streams: number }).unread_streams).toBeGreaterThan(0);
    expect(streams).toBeLessThanOrEqual(MAX_QUEUE + 1);
    expect(rssPeakKiB - rssBefore).toBeLessThan(RSS_BOUND_KIB);

    // Reading a stream to its end frees its place: the owner of the id pages through it, and the
    // model takes a new run again.
    const first = accepted[0];
    let fromSeq = 0;
    let done = false;
    while (!done) {
      const page = await http.request('poll', { stream_id: first, from_seq: fromSeq, max_chunks: 500 });
      expect(page.error).toBeUndefined();
      for (const chunk of page.result.chunks) expect(chunk.seq).toBe(fromSeq++);
      done = page.result.done;
    }
    expect(fromSeq).toBe(ATTACK_CHUNKS);
    const again = await http.request('rkllm_run_async', { handle: 'big', rkllm_input: { input_type: 0, prompt_input: 'count to 3' } });
    expect(again.result?.stream_id).toEqual(expect.any(String));
  });

  it(`TCP: ${ATTACK_STREAMS} pushed streams read but never polled keep at most the per-client bound`, async () => {
    const client = await TcpClient.connect(server.port('tcp'));
    const before = (await health()).streams;
    try {
      const ids = await mapLimit(
        Array.from({ length: ATTACK_STREAMS }, (_, i) => i),
        8,
        async () => {
          const outcome = await client.stream('rkllm_run_async', { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'count to 20' } }, { timeoutMs: 30_000 });
          expect(outcome.response?.error).toBeUndefined();
          expect(outcome.final?.state).toBe(2);
          return String(outcome.streamId);
        },
      );
      const kept = (await health()).streams;
      process.stderr.write(`unpolled-streams tcp: ${ATTACK_STREAMS} pushed streams, ${kept - before} of them kept afterwards\n`);
      expect(kept - before).toBeLessThanOrEqual(PER_CLIENT);
      // The oldest finished streams made room; the newest are still there for their owner.
      expect((await client.request('poll', { stream_id: ids[0] })).error?.code).toBe(-32013);
      const last = await client.request('poll', { stream_id: ids[ids.length - 1], from_seq: 0 });
      expect(last.result?.done).toBe(true);
    } finally {
      await client.close();
    }
  });
});
