// The npm package works where there is no compiler: `npm pack`, install the tarball into an empty
// folder with a PATH that reaches node, npm and a shell but no cmake, make or C/C++ compiler, then
// `npx rkllm-serve --version` and one request to `--runtime sim` over TCP. Also pins what the
// tarball holds (both prebuild folders, the compiled library with its declarations, bin, the sim
// models, the systemd unit, README and licence) and that it has no install-time scripts.
// npm reaches the registry only for the package's own dependencies.

import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// Shared with scripts/arm64-qemu-check.sh: waits for the TCP listening line, asks "count to 20".
// eslint-disable-next-line @typescript-eslint/no-require-imports
const serverCheck = require('../../scripts/server-tcp-check.js') as {
  EXPECTED_TEXT: string;
  checkServer(logFile: string, timeoutMs: number): Promise<{ address: { host: string; port: number }; text: string }>;
};

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
const MANIFEST = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const INSTALL_TIMEOUT_MS = 300_000;
const COMPILER_TOOLS = ['cmake', 'make', 'cc', 'c++', 'gcc', 'g++', 'clang', 'clang++'];

/** Everything the tarball may hold, by path inside it. */
const ALLOWED_FILES: RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^bin\/rkllm-serve$/,
  /^dist\/lib\/.+\.(js|d\.ts)$/,
  /^prebuilds\/linux-(x64|arm64)\/(rkllm_serve\.node|librkllmrt-emulated-1\.(2|3|3\.1)\.so)$/,
  /^addon\/emulator\/models\/[^/]+\.json$/,
  /^web\/(index\.html|app\.js|style\.css)$/,
  /^systemd\/(rkllm-serve\.service|wait-ready\.js)$/,
];
const REQUIRED_FILES = [
  'package.json',
  'README.md',
  'LICENSE',
  'bin/rkllm-serve',
  'dist/lib/index.js',
  'dist/lib/index.d.ts',
  'dist/lib/cli/main.js',
  'addon/emulator/models/instant.json',
  'web/index.html',
  'web/app.js',
  'web/style.css',
  'systemd/rkllm-serve.service',
  'systemd/wait-ready.js',
  ...['linux-x64', 'linux-arm64'].flatMap((target) =>
    ['rkllm_serve.node', 'librkllmrt-emulated-1.2.so', 'librkllmrt-emulated-1.3.so', 'librkllmrt-emulated-1.3.1.so'].map(
      (file) => `prebuilds/${target}/${file}`,
    ),
  ),
];

let scratch: string;
let tarball: string;
let packedFiles: string[];
let appDir: string;
let restrictedEnv: NodeJS.ProcessEnv;

/** A bin folder with links to only what installing and running the package needs. */
function makeRestrictedPath(binDir: string): string {
  fs.mkdirSync(binDir);
  const nodeDir = path.dirname(process.execPath);
  const tools: Record<string, string> = {
    node: process.execPath,
    // npm runs bins through `sh -c`; env is how the bin's #! line finds node.
    sh: '/bin/sh',
    env: '/usr/bin/env',
  };
  for (const tool of ['npm', 'npx']) {
    const beside = path.join(nodeDir, tool);
    tools[tool] = fs.existsSync(beside) ? beside : execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
  }
  for (const [name, target] of Object.entries(tools)) fs.symlinkSync(target, path.join(binDir, name));
  return binDir;
}

function cleanEnv(pathValue: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathValue };
  // Nothing may steer the installed copy to the repository's binaries or runtime.
  delete env.RKLLM_SERVE_ADDON;
  delete env.RKLLM_RUNTIME;
  // npm's lifecycle variables from an outer `npm test` would confuse the inner npm.
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  return env;
}

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'rkllm-pack-'));
  // --ignore-scripts: dist/ and the prebuilds are already built (prepack and prepare would rebuild).
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], {
      cwd: PACKAGE_ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  ) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = path.join(scratch, packed[0].filename);
  packedFiles = packed[0].files.map((file) => file.path).sort();

  appDir = path.join(scratch, 'app');
  fs.mkdirSync(appDir);
  fs.writeFileSync(path.join(appDir, 'package.json'), JSON.stringify({ name: 'pack-install-check', version: '1.0.0', private: true }));
  restrictedEnv = cleanEnv(makeRestrictedPath(path.join(scratch, 'bin')));
}, 180_000);

afterAll(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

test('the tarball holds both prebuilds, the compiled library, bin, sim models, the web page, the systemd unit, README and licence only', () => {
  for (const required of REQUIRED_FILES) expect(packedFiles).toContain(required);
  const unexpected = packedFiles.filter((file) => !ALLOWED_FILES.some((pattern) => pattern.test(file)));
  expect(unexpected).toEqual([]);
});

test('the packed manifest has no install-time scripts', () => {
  const listing = execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' });
  const scripts = (JSON.parse(listing) as { scripts?: Record<string, string> }).scripts ?? {};
  for (const hook of ['preinstall', 'install', 'postinstall']) expect(scripts[hook]).toBeUndefined();
  // prepare runs when the package is installed from a folder or from git, and npm warns about it.
  for (const hook of ['preprepare', 'prepare', 'postprepare']) expect(scripts[hook]).toBeUndefined();
  expect(fs.existsSync(path.join(PACKAGE_ROOT, 'binding.gyp'))).toBe(false); // npm would node-gyp it
});

test('no compiler is reachable on the restricted PATH', () => {
  for (const tool of COMPILER_TOOLS) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { env: restrictedEnv, encoding: 'utf8' });
    expect({ tool, found: found.status === 0 }).toEqual({ tool, found: false });
  }
});

describe('installed from the tarball with no compiler', () => {
  beforeAll(() => {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], {
      cwd: appDir,
      env: restrictedEnv,
      timeout: INSTALL_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }, INSTALL_TIMEOUT_MS + 10_000);

  test('npx rkllm-serve --version prints the package version', () => {
    // `npx --no --`: never downloads, and hands every later argument to the bin, not to npm.
    const output = execFileSync('npx', ['--no', '--', 'rkllm-serve', '--version'], {
      cwd: appDir,
      env: restrictedEnv,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(output.trim()).toBe(MANIFEST.version);
  }, 70_000);

  test('npx rkllm-serve --runtime sim answers one request over TCP, from the installed prebuild', async () => {
    const logFile = path.join(scratch, 'server.log');
    const log = fs.openSync(logFile, 'w');
    // Its own process group (npx -> sh -> node), so the whole group is stopped afterwards.
    const server = spawn(
      'npx',
      ['--no', '--', 'rkllm-serve', '--runtime', 'sim', '--host', '127.0.0.1', '--tcp-port', '0',
        '--disable-stdio', '--disable-udp', '--disable-http', '--disable-ws'],
      { cwd: appDir, env: restrictedEnv, stdio: ['ignore', 'ignore', log], detached: true },
    );
    fs.closeSync(log);
    try {
      const { text } = await serverCheck.checkServer(logFile, 60_000);
      expect(text).toBe(serverCheck.EXPECTED_TEXT);
      const installedPrebuilds = fs.realpathSync(path.join(appDir, 'node_modules', MANIFEST.name, 'prebuilds', `linux-${process.arch}`));
      expect(fs.readFileSync(logFile, 'utf8')).toContain(installedPrebuilds);
    } finally {
      const exited = new Promise<void>((resolve) => (server.exitCode !== null ? resolve() : server.once('exit', () => resolve())));
      if (server.pid !== undefined && server.exitCode === null) process.kill(-server.pid, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
      clearTimeout(timer);
      if (server.pid !== undefined && server.exitCode === null) process.kill(-server.pid, 'SIGKILL');
    }
  }, 90_000);
});
