// Suite: how many idle connections each network transport holds with the server's resident memory
// under a limit. One server per transport; bench/load/idle-connections.ts opens connections in
// steps, and after each step the server's VmRSS is read once it has settled.

import * as path from 'path';
import { DIST_BENCH, log, residentKiB, sleep, spawnTracked, startBaseline, startOurServer, type TransportName, withServer } from '../harness';
import type { Settings } from '../settings';

export const MEMORY_LIMIT_KIB = 100 * 1024;
/** Above the largest step, so that the server's own bound is not what ends the ramp. */
const SERVER_MAX_CONNECTIONS = 20_000;
/** How long the server gets to allocate for the last connections before its RSS is read. */
const SETTLE_MS = 500;
const RAMP_BOUND_MS = 120_000;

export interface ScaleRow {
  transport: TransportName;
  idleKiB: number;
  /** [open connections, server RSS KiB] for each step reached. */
  steps: Array<[number, number]>;
  /** The most connections seen open with RSS under the limit. */
  mostUnderLimit: number;
  /** Why the ramp ended: the limit, the search's cap, or a failure. */
  endedBy: string;
  /** Extra RSS per connection over the last step under the limit. */
  kibPerConnection: number;
}

export interface ScaleFigures {
  rows: ScaleRow[];
  /** Idle RSS of the bare TCP baseline: what a Node process with a listening socket costs anyway. */
  bareIdleKiB: number;
}

export const CAP_REACHED = "the search's cap";

async function bareNodeKiB(): Promise<number> {
  return withServer(
    () => startBaseline('tcp', 100),
    async (baseline) => {
      await sleep(SETTLE_MS);
      return residentKiB(baseline.child.pid!);
    },
  );
}

/** Steps the idle-connection client through `steps`, reading the server's RSS after each. */
function ramp(transport: TransportName, port: number, pid: number, steps: number[]): Promise<{ reached: Array<[number, number]>; endedBy: string }> {
  const client = spawnTracked(process.execPath, [path.join(DIST_BENCH, 'load', 'idle-connections.js'), '--transport', transport, '--port', String(port), '--steps', steps.join(',')], [
    'pipe',
    'pipe',
    'inherit',
  ]);
  const cap = steps[steps.length - 1];
  const reached: Array<[number, number]> = [];
  let endedBy = `${CAP_REACHED} (${cap.toLocaleString('en-US')})`;
  let pending = '';
  const exited = new Promise((resolve) => (client.exitCode !== null ? resolve(undefined) : client.once('exit', resolve)));
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scale ${transport}: the ramp did not end within ${RAMP_BOUND_MS} ms`)), RAMP_BOUND_MS);
    client.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`scale ${transport}: the client exited with ${code} before the ramp ended`));
    });
    client.stdout!.on('data', (data: Buffer) => {
      pending += data.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        let report: { open: number; failed?: string };
        try {
          report = JSON.parse(line) as typeof report;
        } catch {
          clearTimeout(timer);
          reject(new Error(`scale ${transport}: the client printed ${JSON.stringify(line.slice(0, 200))}`));
          return;
        }
        setTimeout(() => {
          const kib = residentKiB(pid);
          reached.push([report.open, kib]);
          log(`scale ${transport}: ${report.open} open, RSS ${(kib / 1024).toFixed(1)} MiB${report.failed ? ` (${report.failed})` : ''}`);
          if (report.failed) endedBy = `a failure: ${report.failed}`;
          else if (kib > MEMORY_LIMIT_KIB) endedBy = `the ${MEMORY_LIMIT_KIB / 1024} MiB limit`;
          if (report.failed || kib > MEMORY_LIMIT_KIB || report.open >= cap) {
            clearTimeout(timer);
            client.stdin!.end();
            resolve();
          } else {
            client.stdin!.write('next\n');
          }
        }, SETTLE_MS);
      }
    });
  });
  return done.then(
    async () => {
      await exited;
      return { reached, endedBy };
    },
    (error: unknown) => {
      client.kill('SIGKILL');
      throw error;
    },
  );
}

export async function measureScale(settings: Settings): Promise<ScaleFigures> {
  const rows: ScaleRow[] = [];
  for (const transport of ['tcp', 'udp', 'http', 'ws'] as const) {
    const row = await withServer(
      // The ramp measures what held connections cost, so none of the server's admission bounds
      // (connections, per address, the headers timeout of a socket that sends nothing) may end it.
      () =>
        startOurServer(
          [transport],
          ['--max-connections', String(SERVER_MAX_CONNECTIONS), '--max-connections-per-address', String(SERVER_MAX_CONNECTIONS), '--headers-timeout', String(RAMP_BOUND_MS)],
        ),
      async (server): Promise<ScaleRow> => {
        await sleep(SETTLE_MS);
        const pid = server.child.pid!;
        const idleKiB = residentKiB(pid);
        const { reached, endedBy } = await ramp(transport, server.ports[transport]!, pid, settings.scaleSteps);
        const under = reached.filter(([, kib]) => kib <= MEMORY_LIMIT_KIB);
        const lastUnder = under[under.length - 1];
        return {
          transport,
          idleKiB,
          steps: reached,
          mostUnderLimit: lastUnder ? lastUnder[0] : 0,
          endedBy,
          kibPerConnection: lastUnder && lastUnder[0] > 0 ? (lastUnder[1] - idleKiB) / lastUnder[0] : NaN,
        };
      },
    );
    rows.push(row);
  }
  return { rows, bareIdleKiB: await bareNodeKiB() };
}
