// The original plan's streaming tests (phase 2, test_transport_streaming.js): real-time streaming
// over TCP and WebSocket (and UDP, SSE), and HTTP polling that completes after more than one poll.
// "Real time" is measured with the RK3588 profile (16.7 tokens/s): chunks must arrive spread over
// the run, the first one long before the final response, not all at once at the end.

import {
  HttpClient,
  STATE,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  assertContiguous,
  countTo,
  sleep,
  stopAllServers,
  type RpcClient,
  type StreamOutcome,
} from './client';

jest.setTimeout(60_000);

// "Count to 10" is 19 tokens ("1" "," " 2" "," ...): at 59.88 ms per token the run lasts ~1.1 s.
const PROMPT = { input_type: 0, prompt_input: 'Count to 10', stream: true };
const EXPECTED = countTo(10);
const DECODE_MS = 59.88;

function expectRealTime(outcome: StreamOutcome): void {
  expect(outcome.response?.error).toBeUndefined();
  assertContiguous(outcome.chunks);
  expect(outcome.text).toBe(EXPECTED);
  expect(outcome.final?.state).toBe(STATE.FINISH);
  const tokenChunks = outcome.chunks.filter((c) => c.chunk.state === STATE.NORMAL || c.chunk.state === STATE.WAITING);
  expect(tokenChunks.length).toBeGreaterThanOrEqual(10);
  const end = outcome.responseAt ?? outcome.finalAt!;
  const first = outcome.chunks[0].at;
  const last = tokenChunks[tokenChunks.length - 1].at;
  // The first chunk arrives well before the run ends: at least ~half the 1.1 s of decoding.
  expect(end - first).toBeGreaterThanOrEqual(Math.round(DECODE_MS * 9));
  // Several chunks arrive before the end, and they are spread over the run, not delivered in bursts.
  const beforeEnd = outcome.chunks.filter((c) => c.at <= end - 2 * DECODE_MS);
  expect(beforeEnd.length).toBeGreaterThanOrEqual(5);
  expect(last - first).toBeGreaterThanOrEqual(Math.round(DECODE_MS * 9));
  const gaps = tokenChunks.slice(1).map((c, i) => c.at - tokenChunks[i].at);
  const distinctArrivals = gaps.filter((g) => g >= DECODE_MS / 3).length;
  expect(distinctArrivals).toBeGreaterThanOrEqual(tokenChunks.length / 2);
}

describe('Transport streaming (RK3588 profile)', () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await ServerProcess.start({ model: 'sim:rk3588-qwen2.5-1.5b', disable: ['stdio'], readyTimeoutMs: 30_000 });
  });

  afterAll(async () => {
    await stopAllServers();
  });

  async function realTime(client: RpcClient): Promise<void> {
    try {
      const outcome = await client.stream('rkllm_run', PROMPT, { timeoutMs: 20_000 });
      expectRealTime(outcome);
      // rkllm_run's response comes after the final notification and carries the final result.
      expect(outcome.responseAt!).toBeGreaterThanOrEqual(outcome.finalAt!);
      expect(outcome.response?.result.text).toBe(EXPECTED);
      expect(outcome.response?.result.state).toBe(STATE.FINISH);
      expect(outcome.response?.result.token_count).toBe(outcome.chunks.filter((c) => c.chunk.state !== STATE.FINISH).length);
      expect(typeof outcome.response?.result.perf.generate_time_ms).toBe('number');
      expect(outcome.final?.perf).toBeDefined();
    } finally {
      await client.close();
    }
  }

  it('streams via TCP in real time', async () => {
    await realTime(await TcpClient.connect(server.port('tcp')));
  });

  it('streams via WebSocket in real time', async () => {
    await realTime(await WsClient.connect(server.port('websocket')));
  });

  it('streams via UDP in real time', async () => {
    await realTime(await UdpClient.open(server.port('udp')));
  });

  it('streams via HTTP server-sent events in real time', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const outcome = await http.stream('rkllm_run', PROMPT, { timeoutMs: 20_000 });
      expectRealTime(outcome);
      // The final response is the last event.
      expect(outcome.responseAt!).toBeGreaterThanOrEqual(outcome.finalAt!);
      expect(outcome.response?.result.text).toBe(EXPECTED);
    } finally {
      await http.close();
    }
  });

  it('handles HTTP polling streaming: completes after more than one poll', async () => {
    const http = new HttpClient(server.port('http'));
    try {
      const started = await http.request('rkllm_run', PROMPT);
      expect(started.error).toBeUndefined();
      const streamId = started.result.stream_id;
      expect(streamId).toBeDefined();
      // It answered at once, long before the 1.1 s run could have ended.
      let polls = 0;
      let fromSeq = 0;
      const texts: string[] = [];
      let status = 'running';
      let result: { text?: string } | undefined;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const reply = await http.request('poll', { stream_id: streamId, from_seq: fromSeq });
        polls++;
        expect(reply.error).toBeUndefined();
        expect(reply.result.stream_id).toBe(streamId);
        expect(Array.isArray(reply.result.chunks)).toBe(true);
        for (const chunk of reply.result.chunks) {
          expect(chunk.seq).toBe(fromSeq);
          fromSeq++;
          if (typeof chunk.text === 'string') texts.push(chunk.text);
        }
        if (reply.result.done) {
          status = 'completed';
          result = reply.result.result;
          expect(reply.result.error).toBeUndefined();
          break;
        }
        await sleep(150);
      }
      expect(status).toBe('completed');
      expect(polls).toBeGreaterThan(1);
      expect(texts.join('')).toBe(EXPECTED);
      expect(result?.text).toBe(EXPECTED);
    } finally {
      await http.close();
    }
  });
});
