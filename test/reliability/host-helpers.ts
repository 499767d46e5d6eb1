// Shared by the model-host suites: what the server says of its hosts, waiting for a restart,
// a bystander client that keeps using another model meanwhile, and the processes on the machine.

import * as fs from 'fs';
import { countTo, sleep, waitUntil, type RpcClient } from '../integration/client';

export const RUNTIME_FAILED = -32026;

/** One entry of rkllm_get_constants' `models` (and /health's `model_hosts`). */
export interface HostReport {
  handle: string;
  pid: number | null;
  state: 'loading' | 'ready' | 'running' | 'restarting' | 'failed';
  restarts: number;
  rss_bytes: number | null;
  last_failure: { reason: string; signal: string | null; exit_code: number | null; detail: string; at: string } | null;
}

export async function hostReports(client: RpcClient): Promise<HostReport[]> {
  const reply = await client.request('rkllm_get_constants', {}, { timeoutMs: 5000 });
  if (reply.error) throw new Error(`rkllm_get_constants failed: ${JSON.stringify(reply.error)}`);
  return reply.result.models as HostReport[];
}

export async function hostOf(client: RpcClient, handle: string): Promise<HostReport> {
  const report = (await hostReports(client)).find((entry) => entry.handle === handle);
  if (!report) throw new Error(`no host reported for the model '${handle}'`);
  return report;
}

/** Waits (bounded) until the model's host is ready again after `restarts` restarts. */
export async function waitRestarted(client: RpcClient, handle: string, restarts: number, timeoutMs = 15_000): Promise<HostReport> {
  const ready = await waitUntil(
    `the host of '${handle}' ready after ${restarts} restarts`,
    async () => {
      const report = await hostOf(client, handle);
      return report.state === 'ready' && report.restarts >= restarts ? report : undefined;
    },
    timeoutMs,
    20,
  );
  return ready!;
}

/** Whether a process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The children of `pid` in state Z (exited, not reaped). */
export function zombieChildren(pid: number): number[] {
  const zombies: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && Number(fields[1]) === pid) zombies.push(Number(entry));
  }
  return zombies;
}

/** Live children of `pid`. */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && isAlive(Number(entry))) children.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/** A client that runs "count to 3" on another model in a loop until stopped: it must never fail. */
export function keepBusy(client: RpcClient, handle: string): { stop(): Promise<{ served: number; failures: unknown[] }> } {
  let stopping = false;
  let served = 0;
  const failures: unknown[] = [];
  const loop = (async () => {
    for (let i = 0; i < 10_000 && !stopping; i++) {
      const reply = await client.request('rkllm_run', { handle, rkllm_input: { input_type: 0, prompt_input: 'count to 3' } }, { timeoutMs: 5000 }).catch((error: unknown) => ({ error }));
      if ('result' in reply && reply.result?.text === countTo(3)) served++;
      else failures.push(reply);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      return { served, failures };
    },
  };
}
