// package.json as docs/install.md relies on it: where the project lives, and nothing that runs
// at install time (no prepare warning, nothing built behind the installer's back: a clone builds
// with an explicit `npm run build`, the published package carries its prebuilds).

import * as fs from 'fs';
import * as path from 'path';
import { REPO_ROOT } from './client';

const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
  repository?: { type: string; url: string };
  homepage?: string;
  bugs?: { url: string };
  files: string[];
  scripts: Record<string, string>;
};

test('the manifest says where the project lives', () => {
  expect(manifest.repository).toEqual({ type: 'git', url: 'git+https://github.com/rkllm-serve/rkllm-serve.git' });
  expect(manifest.homepage).toBe('https://github.com/rkllm-serve/rkllm-serve#readme');
  expect(manifest.bugs).toEqual({ url: 'https://github.com/rkllm-serve/rkllm-serve/issues' });
});

test('no script runs at install time', () => {
  for (const hook of ['preinstall', 'install', 'postinstall', 'preprepare', 'prepare', 'postprepare']) {
    expect({ hook, script: manifest.scripts[hook] }).toEqual({ hook, script: undefined });
  }
  // Building is explicit: the test command builds before it tests.
  expect(manifest.scripts.test).toMatch(/^npm run build && /);
});

test('the package ships the systemd unit and its readiness wait', () => {
  expect(manifest.files).toContain('systemd/');
  for (const file of ['rkllm-serve.service', 'wait-ready.js']) expect(fs.existsSync(path.join(REPO_ROOT, 'systemd', file))).toBe(true);
});
