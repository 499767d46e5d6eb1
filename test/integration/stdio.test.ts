// stdio as editors and agent tools use it: a parent process starts bin/rkllm-serve with pipes,
// writes requests to its stdin and reads replies from its stdout line by line. stdout carries
// nothing but protocol; end of stdin closes the stdio transport only (the process exits then only
// when stdio was its only transport); a server started with stdin on /dev/null keeps serving.

import { spawn } from 'child_process';
import {
  BIN,
  REPO_ROOT,
  STATE,
  ServerProcess,
  TcpClient,
  assertContiguous,
  countTo,
  sleep,
  stopAllServers,
  waitUntil,
  withTimeout,
} from './client';

jest.setTimeout(30_000);

const NETWORK_OFF = ['tcp', 'udp', 'http', 'websocket'] as const;

describe('stdio transport through pipes', () => {
  afterEach(async () => {
    await stopAllServers();
  });

  it('answers requests written to stdin on stdout, line by line, and stdout carries only protocol', async () => {
    const server = await ServerProcess.start({ disable: [...NETWORK_OFF] });
    const stdio = server.stdio();

    const constants = await stdio.request('rkllm_get_constants', undefined, { id: 1 });
    expect(constants.id).toBe(1);
    expect(constants.error).toBeUndefined();

    // Several requests in one write, and one request split over several writes.
    stdio.sendRaw(
      JSON.stringify({ jsonrpc: '2.0', id: 'a', method: 'rkllm_is_running', params: { handle: 'default' } }) +
        '\n' +
        JSON.stringify({ jsonrpc: '2.0', id: 'b', method: 'rkllm_createDefaultParam' }) +
        '\r\n',
    );
    const split = JSON.stringify({ jsonrpc: '2.0', id: 'c', method: 'rkllm_get_kv_cache_size', params: { handle: 'default' } }) + '\n';
    for (let i = 0; i < split.length; i += 7) {
      stdio.sendRaw(split.slice(i, i + 7));
      await sleep(2);
    }
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((id) => stdio.waitForReply(id, 5000)));
    expect(a.result).toEqual({ running: false });
    expect(b.result.top_k).toBe(40);
    expect(Array.isArray(c.result.cache_sizes)).toBe(true);

    // A notification gets no reply; a batch gets one array of replies.
    stdio.sendText(JSON.stringify({ jsonrpc: '2.0', method: 'rkllm_get_constants' }));
    stdio.sendText(
      JSON.stringify([
        { jsonrpc: '2.0', id: 'batch-1', method: 'rkllm_is_running', params: { handle: 'default' } },
        { jsonrpc: '2.0', id: 'batch-2', method: 'no_such_method' },
      ]),
    );
    const [b1, b2] = await Promise.all(['batch-1', 'batch-2'].map((id) => stdio.waitForReply(id, 5000)));
    expect(b1.result).toEqual({ running: false });
    expect(b2.error?.code).toBe(-32601);

    // A stream over the pipes.
    const outcome = await stdio.stream('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'count to 20' }, stream: true });
    assertContiguous(outcome.chunks);
    expect(outcome.text).toBe(countTo(20));
    expect(outcome.final?.state).toBe(STATE.FINISH);
    expect(outcome.response?.result.text).toBe(countTo(20));

    // Everything on stdout was JSON-RPC 2.0: nothing that did not parse, every message 2.0,
    // and nothing answered the notification.
    await sleep(200);
    expect(stdio.unparsable).toEqual([]);
    for (const { message } of stdio.received) expect(message.jsonrpc).toBe('2.0');
    const ids = stdio.received.filter((r) => r.message.method === undefined).map((r) => r.message.id);
    expect(ids.filter((id) => id === undefined || id === null)).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    // Logs went to stderr.
    expect(server.stdioReady).toBe(true);
    expect(server.logs.length).toBeGreaterThan(0);
  });

  it('a request piped in and then end of stdin: the reply comes, then the process exits 0 (stdio only)', async () => {
    const child = spawn(process.execPath, [BIN, '--runtime', 'sim', ...NETWORK_OFF.map((t) => (t === 'websocket' ? '--disable-ws' : `--disable-${t}`))], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    child.stdin.end(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'rkllm_createDefaultParam' }) + '\n');
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      exit = await withTimeout(exited, 10_000, 'the stdio-only server to exit after end of stdin');
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    expect(exit).toEqual({ code: 0, signal: null });
    const lines = Buffer.concat(out).toString('utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const reply = JSON.parse(lines[0]);
    expect(reply.id).toBe(7);
    expect(reply.result.top_k).toBe(40);
  });

  it('end of stdin closes stdio only: with other transports running, the server keeps serving TCP', async () => {
    const server = await ServerProcess.start({});
    const stdio = server.stdio();
    expect((await stdio.request('rkllm_get_constants')).error).toBeUndefined();
    await stdio.close(); // EOF on the server's stdin
    await sleep(500);
    expect(server.exitInfo).toBeUndefined();
    const tcp = await TcpClient.connect(server.port('tcp'));
    try {
      const outcome = await tcp.stream('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'count to 5' }, stream: true });
      expect(outcome.text).toBe(countTo(5));
    } finally {
      await tcp.close();
    }
    expect(server.exitInfo).toBeUndefined();
    const exit = await server.stop();
    expect(exit.code).toBe(0);
  });

  it('only stdio, no request at all: end of stdin exits 0', async () => {
    const server = await ServerProcess.start({ disable: [...NETWORK_OFF] });
    const started = Date.now();
    await server.stdio().close();
    const exit = await withTimeout(server.exited, 10_000, 'exit after end of stdin');
    expect(exit.code).toBe(0);
    expect(exit.signal).toBeNull();
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a server started with stdin on /dev/null keeps serving', async () => {
    const server = await ServerProcess.start({ stdin: 'devnull' });
    await sleep(1000);
    expect(server.exitInfo).toBeUndefined();
    const tcp = await TcpClient.connect(server.port('tcp'));
    try {
      expect((await tcp.request('rkllm_is_running', { handle: 'default' })).result).toEqual({ running: false });
    } finally {
      await tcp.close();
    }
    await waitUntil('still alive', () => server.exitInfo === undefined, 100);
    expect((await server.stop()).code).toBe(0);
  });
});
