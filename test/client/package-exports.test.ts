// The package's entry points as a consumer sees them: `rkllm-serve` (the library) and
// `rkllm-serve/client`, from Node's require and from TypeScript under the old (node10) and the
// new (node16) module resolution, and the deep imports of dist/ that worked before "exports".
// The consumer is a scratch folder whose node_modules/rkllm-serve links to this checkout (dist/
// must be built: tsc runs before jest).

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const TSC = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

let consumer: string;

beforeAll(() => {
  consumer = fs.mkdtempSync(path.join(os.tmpdir(), 'rkllm-exports-'));
  fs.mkdirSync(path.join(consumer, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(REPO_ROOT, path.join(consumer, 'node_modules', 'rkllm-serve'));
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules', '@types', 'node'), path.join(consumer, 'node_modules', '@types', 'node'));
  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'exports-check', version: '1.0.0', private: true }));
});

afterAll(() => {
  if (consumer) fs.rmSync(consumer, { recursive: true, force: true });
});

function node(script: string): string {
  return execFileSync(process.execPath, ['-e', script], { cwd: consumer, encoding: 'utf8', timeout: 20_000 });
}

it('require() finds the library, the client and the deep paths of dist/', () => {
  const found = JSON.parse(
    node(`
      const client = require('rkllm-serve/client');
      const library = require('rkllm-serve');
      console.log(JSON.stringify({
        client: require.resolve('rkllm-serve/client'),
        library: require.resolve('rkllm-serve'),
        deep: require.resolve('rkllm-serve/dist/lib/runtime/run'),
        deepJs: require.resolve('rkllm-serve/dist/lib/errors.js'),
        clientExports: ['connect', 'RpcClient', 'TcpTransport', 'HttpTransport', 'RpcResponseError'].filter((name) => typeof client[name] === 'function'),
        libraryExports: ['openRuntime', 'RkllmError'].filter((name) => typeof library[name] === 'function'),
      }));
    `),
  ) as Record<string, unknown>;
  const dist = (file: string): string => fs.realpathSync(path.join(REPO_ROOT, 'dist', 'lib', file));
  expect(fs.realpathSync(found.client as string)).toBe(dist('client/index.js'));
  expect(fs.realpathSync(found.library as string)).toBe(dist('index.js'));
  expect(fs.realpathSync(found.deep as string)).toBe(dist('runtime/run.js'));
  expect(fs.realpathSync(found.deepJs as string)).toBe(dist('errors.js'));
  expect(found.clientExports).toEqual(['connect', 'RpcClient', 'TcpTransport', 'HttpTransport', 'RpcResponseError']);
  expect(found.libraryExports).toEqual(['openRuntime', 'RkllmError']);
});

it.each([
  ['node10', 'commonjs'],
  ['node16', 'node16'],
])('TypeScript (moduleResolution %s) types both entry points and a deep import', (resolution, module) => {
  fs.writeFileSync(
    path.join(consumer, 'consumer.ts'),
    [
      "import { connect, type RpcClient, type ResultChunk } from 'rkllm-serve/client';",
      "import { openRuntime, type RunChunk } from 'rkllm-serve';",
      "import type { RunResult } from 'rkllm-serve/dist/lib/runtime/run';",
      'export async function use(): Promise<void> {',
      "  const client: RpcClient = await connect('tcp://127.0.0.1:8080');",
      '  for await (const chunk of client.stream(\'rkllm_run_async\', {})) { const typed: ResultChunk = chunk; void typed; }',
      '  const pieces: RunChunk[] = []; const done: RunResult | undefined = undefined; void [pieces, done, openRuntime];',
      '  // @ts-expect-error: a chunk has no field of that name, so the types are really there',
      '  void (undefined as unknown as ResultChunk).no_such_field_here.x;',
      '}',
      '',
    ].join('\n'),
  );
  const args = [TSC, '--noEmit', '--strict', '--skipLibCheck', '--types', 'node', '--module', module, '--moduleResolution', resolution, 'consumer.ts'];
  let output = '';
  try {
    execFileSync(process.execPath, args, { cwd: consumer, encoding: 'utf8', timeout: 60_000 });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? error);
  }
  expect(output).toBe('');
}, 70_000);
