// Start-up as a board owner and a load balancer see it: the transports are bound before the
// start-up model loads (a port conflict is reported at once; probes get answers during a load of
// 30-60 s on a board), requests for the model wait for its load and are then answered, every load
// logs its progress, GET /health is a readiness probe (503 loading, failed, no_model) and
// GET /livez a liveness probe; stdio is off when stdin is a terminal (script(1) gives the
// server a pseudo-terminal here).

import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import {
  BIN,
  HOST,
  HttpClient,
  REPO_ROOT,
  ServerProcess,
  TcpClient,
  countTo,
  isParseError,
  makeTempDir,
  runCli,
  sleep,
  stopAllServers,
  waitUntil,
  withTimeout,
  writePacedModel,
} from './client';

jest.setTimeout(60_000);

interface Health {
  status: string;
  model_loaded: boolean;
  loading?: { name: string; handle: string; elapsed_s: number; waiting: number }[];
  failed?: string[];
}

const scratch = makeTempDir('startup');

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, HOST, () => resolve()));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A model of our own whose rkllm_init takes `loadMs` (docs/emulated-runtime.md). */
function slowModel(name: string, loadMs: number): string {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  return writePacedModel(dir, { load_ms: loadMs, prefill_ms_per_token: 0, decode_ms_per_token: 0 });
}

function chat(port: number, model: string, content: string): Promise<{ status: number; body: any; at: number }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model, messages: [{ role: 'user', content }] });
    const request = http.request(
      { host: HOST, port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, agent: false },
      (response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(parts).toString('utf8')), at: Date.now() }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function messages(server: ServerProcess): string[] {
  return server.logs.map((record) => String(record.msg));
}

describe('start-up order: bind first, then load', () => {
  afterEach(async () => {
    await stopAllServers();
  });

  it('answers probes during the load, holds requests for the model until it is loaded, and logs its progress', async () => {
    const LOAD_MS = 6500;
    const model = slowModel('slow-6s', LOAD_MS);
    const spawnedAt = Date.now();
    const server = await ServerProcess.start({ model, waitReady: false, readyTimeoutMs: 5000 });
    const boundAfter = Date.now() - spawnedAt;
    // Bound long before the model could have loaded.
    expect(boundAfter).toBeLessThan(LOAD_MS - 1500);
    expect(server.ready).toBe(false);
    const control = new HttpClient(server.port('http'));
    const tcp = await TcpClient.connect(server.port('tcp'));
    try {
      const live = await control.raw('GET', '/livez');
      expect(live.status).toBe(200);
      expect(live.json).toEqual({ status: 'alive' });

      const loading = await control.health();
      expect(loading.status).toBe(503);
      const body = loading.json as Health;
      expect(body.status).toBe('loading');
      expect(body.model_loaded).toBe(false);
      expect(body.loading).toEqual([expect.objectContaining({ name: 'default', handle: 'default' })]);
      expect(body.loading![0].elapsed_s).toBeGreaterThanOrEqual(0);
      expect(body.loading![0].elapsed_s).toBeLessThan(LOAD_MS / 1000);

      // Sent during the load: an OpenAI chat naming "default", and a JSON-RPC run naming no handle.
      const openai = chat(server.port('http'), 'default', 'count to 5');
      const jsonRpc = tcp.request('rkllm_run', { input_type: 0, prompt_input: 'count to 3' }, { timeoutMs: 20_000 }).then((reply) => ({ reply, at: Date.now() }));
      const waiting = await waitUntil(
        'both requests waiting for the load',
        async () => {
          const health = (await control.health()).json as Health;
          return health.loading?.[0]?.waiting === 2 ? health : undefined;
        },
        LOAD_MS,
      );
      expect(waiting!.status).toBe('loading');
      expect(server.ready).toBe(false);

      const [answered, ran] = await Promise.all([openai, jsonRpc]);
      expect(answered.status).toBe(200);
      expect(answered.body.choices[0].message.content).toBe(countTo(5));
      expect(ran.reply.error).toBeUndefined();
      expect(ran.reply.result.text).toBe(countTo(3));
      // Answered after the load, not refused before it.
      expect(answered.at - spawnedAt).toBeGreaterThanOrEqual(LOAD_MS);
      expect(ran.at - spawnedAt).toBeGreaterThanOrEqual(LOAD_MS);

      await server.waitFor('the ready line', () => server.ready, 5000);
      const ready = await control.health();
      expect(ready.status).toBe(200);
      expect((ready.json as Health).status).toBe('ok');
      expect((ready.json as Health).loading).toBeUndefined();

      // Progress: the start with the path, a line every 5 s, the end with the time.
      const lines = messages(server);
      const start = lines.findIndex((line) => line === `loading default from ${model}`);
      const still = lines.findIndex((line) => line === 'still loading default (5 s)');
      const done = lines.findIndex((line) => /^loaded default in \d+\.\d s$/.test(line));
      expect(start).toBeGreaterThan(lines.findIndex((line) => /^http listening/.test(line)));
      expect(still).toBeGreaterThan(start);
      expect(done).toBeGreaterThan(still);
      const seconds = Number(/in (\d+\.\d) s/.exec(lines[done])![1]);
      expect(seconds).toBeGreaterThanOrEqual((LOAD_MS - 100) / 1000);
      expect(seconds).toBeLessThan(LOAD_MS / 1000 + 5);
      expect(lines.filter((line) => line.startsWith('still loading default')).length).toBeGreaterThanOrEqual(1);
    } finally {
      await tcp.close();
      await control.close();
    }
  });

  it('the wait for the load is bounded like the queue: --max-queue beyond is refused at once, --request-timeout ends a wait', async () => {
    const LOAD_MS = 4000;
    const TIMEOUT_MS = 1500;
    const model = slowModel('slow-4s', LOAD_MS);
    const server = await ServerProcess.start({ model, waitReady: false, args: ['--max-queue', '1', '--request-timeout', String(TIMEOUT_MS)] });
    const tcp = await TcpClient.connect(server.port('tcp'));
    const control = new HttpClient(server.port('http'));
    try {
      const run = (n: number) => {
        const sent = Date.now();
        return tcp.request('rkllm_run', { input_type: 0, prompt_input: `count to ${n}` }, { timeoutMs: 10_000 }).then((reply) => ({ reply, ms: Date.now() - sent }));
      };
      // One to run and --max-queue 1 behind it may wait; the third is refused at once.
      const first = run(2);
      const second = run(3);
      await waitUntil('two requests waiting', async () => ((await control.health()).json as Health).loading?.[0]?.waiting === 2, 2000, 20);
      const third = await run(4);
      expect(third.reply.error?.code).toBe(-32001);
      expect(third.ms).toBeLessThan(500);
      expect(JSON.stringify(third.reply.error?.data)).toMatch(/waiting for 'default' to load/);
      // The two waiting give up at the request timeout, before the load ends.
      for (const waited of await Promise.all([first, second])) {
        expect(waited.reply.error?.code).toBe(-32008);
        expect(waited.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
        expect(waited.ms).toBeLessThan(LOAD_MS);
      }
      // Once loaded, the model serves as usual.
      await server.waitFor('the ready line', () => server.ready, LOAD_MS + 5000);
      expect((await run(2)).reply.result.text).toBe(countTo(2));
    } finally {
      await tcp.close();
      await control.close();
    }
  });

  it('a port conflict fails at once, before the model is loaded', async () => {
    const LOAD_MS = 30_000;
    const model = slowModel('slow-30s', LOAD_MS);
    const busy = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(busy, HOST, () => resolve()));
    try {
      const result = await runCli(['--runtime', 'sim', '--model', model, '--tcp-port', String(busy), '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], {
        timeoutMs: 15_000,
      });
      expect(result.code).toBe(1);
      // Well before the load could have ended: the load never started.
      expect(result.ms).toBeLessThan(LOAD_MS / 3);
      expect(result.stderr).toContain(String(busy));
      expect(result.stderr).toMatch(/in use/);
      expect(result.stderr).not.toMatch(/loading default/);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('a start-up model that fails to load: the one-paragraph error and a non-zero exit, after the transports were bound and closed', async () => {
    const result = await runCli(['--runtime', 'sim', '--model', 'sim:faulty-init', '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], {
      timeoutMs: 15_000,
    });
    expect(result.code).toBe(1);
    const paragraph = result.stderr.indexOf("rkllm-serve: Could not load the start-up model 'sim:faulty-init'");
    expect(paragraph).toBeGreaterThan(-1);
    expect(result.stderr.indexOf('http listening')).toBeGreaterThan(-1);
    expect(result.stderr.indexOf('http listening')).toBeLessThan(paragraph);
    expect(result.stderr).toMatch(/could not load default after \d+\.\d s/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
  });

  it('a model whose host has failed makes /health 503 failed; /livez stays 200', async () => {
    const server = await ServerProcess.start({ model: 'sim:crash-midstream', args: ['--host-max-failures', '1'] });
    const control = new HttpClient(server.port('http'));
    try {
      expect((await control.health()).status).toBe(200);
      const crashed = await control.request('rkllm_run', { input_type: 0, prompt_input: 'count to 40' }, { timeoutMs: 15_000 });
      expect(crashed.error?.data).toMatchObject({ reason: 'crash', restarting: false });
      const failed = await waitUntil(
        '/health to say failed',
        async () => {
          const reply = await control.health();
          return (reply.json as Health).status === 'failed' ? reply : undefined;
        },
        5000,
      );
      expect(failed!.status).toBe(503);
      expect((failed!.json as Health).failed).toEqual(['default']);
      const live = await control.raw('GET', '/livez');
      expect(live.status).toBe(200);
      expect(live.json).toEqual({ status: 'alive' });
    } finally {
      await control.close();
    }
  });

  it('no model to serve is 503 no_model; a catalog model not loaded yet is an idle server, 200 ok', async () => {
    const empty = await ServerProcess.start({ model: 'none' });
    const control = new HttpClient(empty.port('http'));
    try {
      const none = await control.health();
      expect(none.status).toBe(503);
      expect((none.json as Health).status).toBe('no_model');
      expect((await control.raw('GET', '/livez')).status).toBe(200);
      // A client loads one: ready.
      const init = await control.request('rkllm_init', { handle: 'mine', param: { model_path: 'sim:instant' } }, { timeoutMs: 15_000 });
      expect(init.error).toBeUndefined();
      const loaded = await control.health();
      expect(loaded.status).toBe(200);
      expect((loaded.json as Health).status).toBe('ok');
    } finally {
      await control.close();
    }

    const models = path.join(scratch, 'catalog');
    fs.mkdirSync(models, { recursive: true });
    fs.writeFileSync(path.join(models, 'tiny.rkllm'), fs.readFileSync(path.join(REPO_ROOT, 'addon', 'emulator', 'models', 'instant.json')));
    const idle = await ServerProcess.start({ model: 'none', args: ['--models-dir', models] });
    const idleControl = new HttpClient(idle.port('http'));
    try {
      const health = await idleControl.health();
      expect(health.status).toBe(200);
      expect((health.json as Health).status).toBe('ok');
      expect((health.json as Health).model_loaded).toBe(false);
    } finally {
      await idleControl.close();
    }
  });
});

/** The server under script(1): stdin and stdout are a pseudo-terminal, stderr a file (JSON log lines). */
class TtyServer {
  readonly child: ChildProcess;
  readonly logFile: string;
  output = '';

  constructor(args: string[], name: string) {
    this.logFile = path.join(scratch, `${name}.log`);
    const command = [process.execPath, BIN, '--runtime', 'sim', '--log-level', 'info', ...args].map((part) => `'${part}'`).join(' ');
    this.child = spawn('script', ['-qec', `exec ${command} 2>'${this.logFile}'`, '/dev/null'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (data: Buffer) => (this.output += data.toString('utf8')));
  }

  logs(): Record<string, unknown>[] {
    if (!fs.existsSync(this.logFile)) return [];
    return fs
      .readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async waitReady(): Promise<Record<string, unknown>[]> {
    const logs = await waitUntil('the server under a terminal to be ready', () => (this.logs().some((record) => record.ready === true) ? this.logs() : undefined), 15_000);
    return logs!;
  }

  type(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** SIGTERM to the server (its pid is in its log lines); script ends with it. */
  async stop(): Promise<void> {
    const pid = this.logs().find((record) => typeof record.pid === 'number')?.pid as number | undefined;
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    const exited = new Promise<void>((resolve) => (this.child.exitCode !== null || this.child.signalCode !== null ? resolve() : this.child.once('exit', () => resolve())));
    await withTimeout(exited, 5000, 'script to exit after the server').catch(() => this.child.kill('SIGKILL'));
  }
}

describe('stdio and a terminal', () => {
  const ttys: TtyServer[] = [];
  afterEach(async () => {
    await Promise.all(ttys.splice(0).map((tty) => tty.stop()));
    await stopAllServers();
  });

  it('stdin a terminal: stdio is off, a start-up line says how to turn it on, and a line typed gets no answer', async () => {
    const tty = new TtyServer(['--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], 'tty-off');
    ttys.push(tty);
    const logs = await tty.waitReady();
    const note = logs.find((record) => record.transport === 'stdio' && record.enabled === false);
    expect(note?.msg).toBe('stdio is off because stdin is a terminal; --enable-stdio serves JSON-RPC there anyway');
    expect(logs.some((record) => record.msg === 'stdio ready')).toBe(false);

    tty.type('hello');
    tty.type(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'rkllm_get_constants' }));
    // The other transports serve meanwhile: a reply there proves the server read its events.
    const tcpPort = logs.find((record) => record.transport === 'tcp' && typeof record.port === 'number')!.port as number;
    const tcp = await TcpClient.connect(tcpPort);
    try {
      expect((await tcp.request('rkllm_get_constants')).error).toBeUndefined();
    } finally {
      await tcp.close();
    }
    await sleep(500);
    // The terminal echoes what was typed; nothing answers it.
    expect(tty.output).toContain('hello');
    expect(tty.output).not.toContain('-32700');
    expect(tty.output).not.toContain('"result"');
  });

  it('stdin a terminal with --enable-stdio, or with every other transport off: stdio answers there', async () => {
    const forced = new TtyServer(['--enable-stdio', '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], 'tty-forced');
    const only = new TtyServer(['--disable-tcp', '--disable-udp', '--disable-http', '--disable-ws'], 'tty-only');
    ttys.push(forced, only);
    const [forcedLogs, onlyLogs] = await Promise.all([forced.waitReady(), only.waitReady()]);
    expect(forcedLogs.some((record) => record.msg === 'stdio ready')).toBe(true);
    expect(forcedLogs.some((record) => record.transport === 'stdio' && record.enabled !== undefined)).toBe(false);
    expect(onlyLogs.find((record) => record.transport === 'stdio' && record.enabled === true)?.msg).toBe(
      'stdin is a terminal and every other transport is off, so stdio serves it: one JSON-RPC request per line',
    );
    for (const tty of [forced, only]) {
      tty.type(JSON.stringify({ jsonrpc: '2.0', id: 'typed', method: 'rkllm_run', params: { input_type: 0, prompt_input: 'count to 4' } }));
      await waitUntil('the answer on the terminal', () => tty.output.includes(`"text":"${countTo(4)}"`), 10_000);
    }
  });

  it('stdin a pipe: stdio answers, a parse error included', async () => {
    const server = await ServerProcess.start({ disable: ['udp', 'websocket'] });
    const stdio = server.stdio();
    stdio.sendRaw('hello\n');
    expect(isParseError(await stdio.waitFor('the parse error', isParseError, 5000))).toBe(true);
    expect(server.logs.some((record) => record.transport === 'stdio' && record.enabled !== undefined)).toBe(false);
  });
});
