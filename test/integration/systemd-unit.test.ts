// The systemd unit of docs/install.md ("Run on boot"): `rkllm-serve --print-systemd-unit` prints
// systemd/rkllm-serve.service with this installation's paths, systemd's own checker
// (`systemd-analyze verify`) finds nothing to say about it, and its readiness wait
// (systemd/wait-ready.js, the ExecStartPost) tells a ready server from one that is not there.

import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { systemdUnit } from '../../lib/cli/systemd-unit';
import { BIN, HOST, makeTempDir, REPO_ROOT, runCli, ServerProcess, stopAllServers, withTimeout } from './client';

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const WAIT_READY = path.join(REPO_ROOT, 'systemd', 'wait-ready.js');

let dir: string;
let unitText: string;
let unitPath: string;

function verify(file: string): { status: number | null; output: string } {
  const result = spawnSync(SYSTEMD_ANALYZE, ['verify', file], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

/** The value of each `Key=` line of the unit (the last one where a key repeats). */
function settings(text: string): Map<string, string> {
  const joined = text.replace(/\\\n\s*/g, '');
  const map = new Map<string, string>();
  for (const line of joined.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) map.set(match[1], match[2]);
  }
  return map;
}

beforeAll(async () => {
  if (!fs.existsSync(SYSTEMD_ANALYZE)) {
    throw new Error(`${SYSTEMD_ANALYZE} is missing: run 'bash scripts/install-test-deps.sh' (Debian's systemd package)`);
  }
  dir = makeTempDir('systemd');
  const printed = await runCli(['--print-systemd-unit']);
  expect(printed.code).toBe(0);
  unitText = printed.stdout;
  unitPath = path.join(dir, 'rkllm-serve.service');
  fs.writeFileSync(unitPath, unitText);
});

afterAll(async () => {
  await stopAllServers();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the printed unit runs this node and this bin, without stdio, as its own user, restarting on failure', () => {
  const unit = settings(unitText);
  expect(unitText).not.toMatch(/\{\{|\}\}/);
  // Only the Exec lines name this installation's paths; the comments stay as shipped.
  const withPaths = unitText.split('\n').filter((line) => line.includes(fs.realpathSync(BIN)));
  expect(withPaths.map((line) => line.split('=')[0])).toEqual(['ExecStart']);
  expect(unit.get('ExecStart')).toMatch(new RegExp(`^${fs.realpathSync(process.execPath)} ${fs.realpathSync(BIN)} --disable-stdio `));
  expect(unit.get('ExecStart')).toContain('--host ${RKLLM_SERVE_HOST}');
  expect(unit.get('ExecStartPost')).toBe(`${fs.realpathSync(process.execPath)} ${fs.realpathSync(WAIT_READY)} \${RKLLM_SERVE_HOST} 8082 170`);
  expect(unit.get('User')).toBe('rkllm');
  expect(unit.get('Restart')).toBe('on-failure');
  expect(unit.get('StartLimitBurst')).toBe('5');
  expect(Number(unit.get('TimeoutStartSec'))).toBeGreaterThanOrEqual(120);
  expect(unit.get('EnvironmentFile')).toBe('-/etc/rkllm-serve/rkllm-serve.env');
  expect(unit.get('NoNewPrivileges')).toBe('yes');
  expect(unit.get('ProtectSystem')).toBe('strict');
  // What would hide the NPU's device nodes from librkllmrt.
  for (const key of ['PrivateDevices', 'DevicePolicy', 'DeviceAllow', 'ProtectClock', 'MemoryDenyWriteExecute']) expect(unit.has(key)).toBe(false);
});

test('systemd-analyze verify has nothing to say about the printed unit', () => {
  expect(verify(unitPath)).toEqual({ status: 0, output: '' });
});

test('systemd-analyze verify does speak up when a line of the unit is broken', () => {
  // Guards the test above: a checker that says nothing about anything would prove nothing.
  const broken = path.join(dir, 'broken', 'rkllm-serve.service');
  fs.mkdirSync(path.dirname(broken));
  fs.writeFileSync(broken, unitText.replace(/^Restart=on-failure$/m, 'Restart=on-failur'));
  const result = verify(broken);
  expect(result.output).toMatch(/rkllm-serve\.service:\d+: Failed to parse service restart specifier/);
});

test('the readiness wait exits 0 once GET /health answers 200, and 1 with the reason when nothing answers', async () => {
  const server = await ServerProcess.start({ disable: ['stdio', 'tcp', 'udp', 'websocket'], expect: ['http'] });
  const ready = spawnSync(process.execPath, [WAIT_READY, HOST, String(server.port('http')), '10'], { encoding: 'utf8', timeout: 15_000 });
  expect({ status: ready.status, stderr: ready.stderr }).toEqual({ status: 0, stderr: '' });
  const port = server.port('http');
  await server.stop();
  const started = Date.now();
  const absent = spawnSync(process.execPath, [WAIT_READY, HOST, String(port), '2'], { encoding: 'utf8', timeout: 15_000 });
  expect(absent.status).toBe(1);
  expect(absent.stderr).toContain(`rkllm-serve is not ready after 2 s: GET http://${HOST}:${port}/health gave ECONNREFUSED`);
  expect(Date.now() - started).toBeLessThan(5000);
}, 40_000);

test('a node in a home folder gets ProtectHome=read-only and a note, and the unit still verifies', () => {
  // Node from a version manager lives in a home folder, which ProtectHome=yes would hide.
  const home = fs.mkdtempSync(path.join(os.homedir(), '.rkllm-unit-'));
  try {
    expect(home).toMatch(/^\/(home|root)\//);
    const node = path.join(home, 'node');
    fs.writeFileSync(node, '#!/bin/sh\n', { mode: 0o755 });
    const unit = systemdUnit(REPO_ROOT, node);
    expect(settings(unit.text).get('ProtectHome')).toBe('read-only');
    expect(settings(unit.text).get('ExecStart')).toMatch(new RegExp(`^${node} `));
    expect(unit.notes).toEqual([`${node} lies in a home folder, so the unit has ProtectHome=read-only; a system-wide node and install keep homes hidden`]);
    const file = path.join(dir, 'home', 'rkllm-serve.service');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, unit.text);
    expect(verify(file)).toEqual({ status: 0, output: '' });
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('paths with spaces, % or $ are quoted, and % escaped, so systemd runs that very file', () => {
  const odd = path.join(dir, 'odd dir %n $HOME');
  fs.mkdirSync(odd);
  const node = path.join(odd, 'node');
  fs.writeFileSync(node, '#!/bin/sh\n', { mode: 0o755 });
  const unit = systemdUnit(REPO_ROOT, node);
  expect(settings(unit.text).get('ExecStart')).toContain(`"${node.split('%').join('%%')}" `);
  const file = path.join(dir, 'odd', 'rkllm-serve.service');
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, unit.text);
  expect(verify(file)).toEqual({ status: 0, output: '' });
});

/** An Exec line's words as systemd makes them: `${VAR}` stays one word, `$VAR` splits at spaces. */
function execWords(line: string, env: Record<string, string>): string[] {
  return line.split(/\s+/).flatMap((word) => {
    const braced = /^\$\{(\w+)\}$/.exec(word);
    if (braced) return [env[braced[1]] ?? ''];
    const bare = /^\$(\w+)$/.exec(word);
    if (bare) return (env[bare[1]] ?? '').split(/\s+/).filter((part) => part !== '');
    return [word];
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function exitOf(command: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  return withTimeout(exited, timeoutMs, command.join(' ')).finally(() => child.exitCode === null && child.kill('SIGKILL'));
}

test("the unit's ExecStart, run as systemd would with the sim runtime, serves, and its ExecStartPost sees it ready", async () => {
  const unit = settings(unitText);
  const state = fs.mkdtempSync(path.join(dir, 'state-'));
  const cache = fs.mkdtempSync(path.join(dir, 'cache-'));
  fs.mkdirSync(path.join(state, 'models'));
  const port = await freePort();
  const env = {
    RKLLM_SERVE_HOST: HOST,
    RKLLM_SERVE_RUNTIME: 'sim',
    RKLLM_SERVE_MODEL: 'sim:instant',
    RKLLM_SERVE_ARGS: `--tcp-port 0 --udp-port 0 --ws-port 0 --http-port ${port}`,
  };
  // The unit's own directories, which systemd would create, stand in temporary folders.
  const start = execWords(unit.get('ExecStart')!, env).map((word) =>
    word === '/var/lib/rkllm-serve/models' ? path.join(state, 'models') : word === '/var/cache/rkllm-serve' ? cache : word,
  );
  const post = execWords(unit.get('ExecStartPost')!, env).map((word) => (word === '8082' ? String(port) : word));
  expect(start).toContain('--disable-stdio');
  expect(post.slice(-3)).toEqual([HOST, String(port), '170']);
  const server = spawn(start[0], start.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let serverLog = '';
  server.stderr!.on('data', (data: Buffer) => (serverLog += data.toString()));
  try {
    // Bounded by the test rather than by the 170 s the unit allows.
    const ready = await exitOf([...post.slice(0, -1), '20'], 25_000);
    expect({ code: ready.code, stderr: ready.stderr, serverLog: ready.code === 0 ? '' : serverLog }).toEqual({ code: 0, stderr: '', serverLog: '' });
    expect(server.exitCode).toBeNull();
  } finally {
    const gone = new Promise((resolve) => (server.exitCode !== null ? resolve(undefined) : server.once('exit', resolve)));
    server.kill('SIGTERM');
    await withTimeout(gone, 5000, 'the server to stop').catch(() => server.kill('SIGKILL'));
  }
}, 40_000);
