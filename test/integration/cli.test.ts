// The command: --version, --help, SIGTERM/SIGINT with runs going, and every start-up failure
// (port in use, unknown ABI, a file that is no runtime, an unreadable model, no runtime at all)
// as one clear message and a non-zero exit with nothing left half-started.

import { execFileSync } from 'child_process';
import * as dgram from 'dgram';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import {
  BIN,
  HOST,
  ServerProcess,
  TcpClient,
  WsClient,
  isListening,
  makeTempDir,
  runCli,
  stopAllServers,
  withTimeout,
} from './client';

jest.setTimeout(30_000);

const PACKAGE_VERSION: string = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;

const RKLLM_FUNCTIONS = [
  'rkllm_createDefaultParam',
  'rkllm_init',
  'rkllm_load_lora',
  'rkllm_load_prompt_cache',
  'rkllm_release_prompt_cache',
  'rkllm_destroy',
  'rkllm_run',
  'rkllm_run_async',
  'rkllm_abort',
  'rkllm_is_running',
  'rkllm_clear_kv_cache',
  'rkllm_get_kv_cache_size',
  'rkllm_set_chat_template',
  'rkllm_set_function_tools',
  'rkllm_set_cross_attn_params',
];

/** Free ports, found by binding to 0 (TCP and UDP both free at that number). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = net.createServer();
      probe.once('error', reject);
      probe.listen(0, HOST, () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, HOST, () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port found');
}

function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(port, HOST, () => socket.close(() => resolve(true)));
  });
}

/** A stack trace is not a clear message. */
function expectNoStack(stderr: string): void {
  expect(stderr).not.toMatch(/^\s+at .+[:(]\d+/m);
}

/** The start-up failure's message: pino's msg when stderr is JSON lines, the text otherwise. */
function messages(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      try {
        const record = JSON.parse(line) as { msg?: unknown; err?: { message?: unknown } };
        return [record.msg, record.err?.message].filter((m) => typeof m === 'string').join(' ');
      } catch {
        return line;
      }
    });
}

describe('rkllm-serve command line', () => {
  let scratch: string;

  beforeAll(() => {
    scratch = makeTempDir('cli');
  });

  afterAll(async () => {
    await stopAllServers();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('--version prints the package version and exits 0 (the bin runs as an executable)', async () => {
    const direct = await runCli(['--version'], { direct: true });
    expect(direct.code).toBe(0);
    expect(direct.stdout.trim()).toBe(PACKAGE_VERSION);
    const viaNode = await runCli(['--version']);
    expect(viaNode.stdout.trim()).toBe(PACKAGE_VERSION);
  });

  it('--help lists every flag and examples, and exits 0', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const flag of [
      '--runtime',
      '--runtime-abi',
      '--model',
      '--host',
      '--tcp-port',
      '--udp-port',
      '--http-port',
      '--ws-port',
      '--disable-stdio',
      '--disable-tcp',
      '--disable-udp',
      '--disable-http',
      '--disable-ws',
      '--config',
      '--models-dir',
      '--cache-dir',
      '--max-queue',
      '--enable-test-hooks',
      '--log-level',
      '--version',
      '--help',
    ]) {
      expect(help.stdout).toMatch(new RegExp(`${flag}\\b`));
    }
    expect(help.stdout).toMatch(/Examples:/);
    expect(help.stdout).toMatch(/rkllm-serve --runtime sim/);
    // The default ports are stated.
    for (const port of ['8080', '8081', '8082', '8083']) expect(help.stdout).toContain(port);
  });

  it('an unknown flag is one clear usage error and a non-zero exit', async () => {
    const result = await runCli(['--runtime', 'sim', '--bogus-flag']);
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toMatch(/bogus-flag/);
    expectNoStack(result.stderr);
  });

  it('SIGTERM with runs going and queued: exits 0 within 2 s and closes every socket', async () => {
    const server = await ServerProcess.start({ model: 'sim:rk3588-qwen2.5-1.5b', disable: ['stdio'], readyTimeoutMs: 30_000 });
    const tcp = await TcpClient.connect(server.port('tcp'));
    const ws = await WsClient.connect(server.port('websocket'));
    const running = tcp.stream('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'count to 50' }, stream: true }, { timeoutMs: 20_000 });
    running.catch(() => undefined);
    const queued = ws.stream('rkllm_run_async', { rkllm_input: { input_type: 0, prompt_input: 'count to 50' } }, { timeoutMs: 20_000 });
    queued.catch(() => undefined);
    await tcp.waitFor('two chunks', () => tcp.received.filter((r) => r.message.method === 'rkllm_result').length >= 2, 10_000);
    const sentAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await withTimeout(server.exited, 5000, 'exit after SIGTERM');
    expect(exit.at - sentAt).toBeLessThan(2000);
    expect(exit.code).toBe(0);
    expect(exit.signal).toBeNull();
    await tcp.waitClosed(2000);
    await ws.waitClosed(2000);
    expect(await isListening(server.port('tcp'))).toBe(false);
    expect(await isListening(server.port('http'))).toBe(false);
    expect(await isListening(server.port('websocket'))).toBe(false);
    expect(await udpPortFree(server.port('udp'))).toBe(true);
  });

  it('SIGINT when idle: exits 0 promptly', async () => {
    const server = await ServerProcess.start({ disable: ['stdio'] });
    const sentAt = Date.now();
    server.child.kill('SIGINT');
    const exit = await withTimeout(server.exited, 5000, 'exit after SIGINT');
    expect(exit.code).toBe(0);
    expect(exit.at - sentAt).toBeLessThan(2000);
  });

  describe('port in use: one clear message, a non-zero exit, nothing half-started', () => {
    it.each(['tcp', 'udp'] as const)('%s port taken', async (taken) => {
      const [tcpPort, udpPort, httpPort, wsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
      let blocker: net.Server | dgram.Socket;
      const busy = taken === 'tcp' ? tcpPort : udpPort;
      if (taken === 'tcp') {
        const server = net.createServer();
        await new Promise<void>((resolve) => server.listen(busy, HOST, () => resolve()));
        blocker = server;
      } else {
        const socket = dgram.createSocket('udp4');
        await new Promise<void>((resolve) => socket.bind(busy, HOST, () => resolve()));
        blocker = socket;
      }
      try {
        const result = await runCli(
          ['--runtime', 'sim', '--tcp-port', String(tcpPort), '--udp-port', String(udpPort), '--http-port', String(httpPort), '--ws-port', String(wsPort)],
          { timeoutMs: 10_000 },
        );
        expect(result.code).not.toBe(0);
        expect(result.code).not.toBeNull();
        const lines = messages(result.stderr).filter((m) => /in use|EADDRINUSE/i.test(m));
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(String(busy));
        expectNoStack(result.stderr);
        expect(result.stdout).toBe('');
        // Nothing is left listening on the ports it could take.
        if (taken !== 'tcp') expect(await isListening(tcpPort)).toBe(false);
        expect(await isListening(httpPort)).toBe(false);
        expect(await isListening(wsPort)).toBe(false);
        if (taken !== 'udp') expect(await udpPortFree(udpPort)).toBe(true);
      } finally {
        await new Promise<void>((resolve) => (blocker instanceof net.Server ? blocker.close(() => resolve()) : blocker.close(() => resolve())));
      }
    });
  });

  it('unknown ABI: a library exporting the 15 rkllm_ functions as stubs is refused clearly', async () => {
    const source = path.join(scratch, 'stub.c');
    const library = path.join(scratch, 'librkllmrt-stub.so');
    fs.writeFileSync(source, RKLLM_FUNCTIONS.map((name) => `int ${name}(void) { return -1; }\n`).join(''));
    execFileSync('cc', ['-shared', '-fPIC', '-o', library, source]);
    const result = await runCli(['--runtime', library, '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], { timeoutMs: 10_000 });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain(library);
    expect(result.stderr).toMatch(/ABI/);
    expect(result.stderr).toMatch(/--runtime-abi/);
    expect(result.stderr).not.toMatch(/listening/);
    expectNoStack(result.stderr);
  });

  it('a file that is not a runtime library: a clear message and a non-zero exit', async () => {
    const notALibrary = path.join(scratch, 'not-a-library.so');
    fs.writeFileSync(notALibrary, 'this is text, not an ELF shared object\n');
    const result = await runCli(['--runtime', notALibrary, '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], { timeoutMs: 10_000 });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain(notALibrary);
    expect(result.stderr).not.toMatch(/listening/);
    expectNoStack(result.stderr);
  });

  it('an unreadable model: a clear message naming it and a non-zero exit', async () => {
    const missing = path.join(scratch, 'no-such-model.rkllm');
    const result = await runCli(['--runtime', 'sim', '--model', missing, '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], {
      timeoutMs: 10_000,
    });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain(missing);
    expect(result.stderr).not.toMatch(/listening/);
    expectNoStack(result.stderr);

    const broken = path.join(scratch, 'broken-model.json');
    fs.writeFileSync(broken, '{ "format": "rkllm-emulated-model", "version": 1, ');
    const invalid = await runCli(['--runtime', 'sim', '--model', broken, '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], {
      timeoutMs: 10_000,
    });
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr).toContain(broken);
    expectNoStack(invalid.stderr);
  });

  it('no --runtime on a machine without librkllmrt: one paragraph naming --runtime sim', async () => {
    const env = { ...process.env };
    delete env.RKLLM_RUNTIME;
    delete env.LD_LIBRARY_PATH;
    const result = await runCli(['--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], { timeoutMs: 10_000, env });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    const said = messages(result.stderr).filter((m) => m.includes('--runtime sim'));
    expect(said).toHaveLength(1);
    // One paragraph: no blank line inside it.
    expect(said[0].trim()).not.toMatch(/\n\s*\n/);
    expect(said[0]).toMatch(/librkllmrt/);
    expect(result.stderr).not.toMatch(/listening/);
    expectNoStack(result.stderr);
  });

  it('--config: a JSON file of settings, the command line winning over it', async () => {
    const configPath = path.join(scratch, 'server.json');
    fs.writeFileSync(configPath, JSON.stringify({ transports: { udp: { enabled: false }, tcp: { port: 1 } }, maxQueue: 3 }));
    // The file disables UDP; the command line moves TCP back to a free port.
    const server = await ServerProcess.start({ args: ['--config', configPath], disable: ['stdio'], expect: ['tcp', 'http', 'websocket'] });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(server.ports.udp).toBeUndefined();
      expect(server.ports.tcp).not.toBe(1);
      const tcp = await TcpClient.connect(server.port('tcp'));
      expect((await tcp.request('rkllm_is_running', { handle: 'default' })).result).toEqual({ running: false });
      await tcp.close();
    } finally {
      await server.stop();
    }
    const typo = path.join(scratch, 'typo.json');
    fs.writeFileSync(typo, JSON.stringify({ maxQeue: 3 }));
    const refused = await runCli(['--runtime', 'sim', '--config', typo], { timeoutMs: 10_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/maxQeue/);
  });

  it('the bin is what package.json names', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
    expect(path.resolve(__dirname, '..', '..', pkg.bin['rkllm-serve'])).toBe(BIN);
    expect(fs.statSync(BIN).mode & 0o111).not.toBe(0);
  });
});
