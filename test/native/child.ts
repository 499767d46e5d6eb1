// Runs a plain-JavaScript child Node process against the compiled library (dist/), with a bound.

import { execFileSync, spawn } from 'child_process';
import * as path from 'path';

export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
export const DIST_INDEX = path.join(PACKAGE_ROOT, 'dist', 'lib', 'index.js');

export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the bound passed and the child had to be killed. */
  timedOut: boolean;
  elapsedMs: number;
}

export function runChild(script: string, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, elapsedMs: Date.now() - started });
    });
  });
}

/** Compiles lib/ to dist/ (what `npm run build:ts` does), so children test the shipped code. */
export function buildDist(): void {
  const tsc = path.join(PACKAGE_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(PACKAGE_ROOT, 'tsconfig.json')], {
    cwd: PACKAGE_ROOT,
    stdio: 'pipe',
    timeout: 120_000,
  });
}
