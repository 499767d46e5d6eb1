// Reply parking, measured (docs/security/e.md): attackers each send one large batch of
// rkllm_list_functions and never read the reply, while a control client on TCP times a cheap
// request. Prints one JSON line: the server's RSS before and at its peak, the control client's
// latencies, and how many attackers the server cut off.
// Usage: node dist/bench/security/parked-replies.js --transport tcp|http|websocket|stdio
//          [--attackers 6] [--members 10000] [--duration-ms 10000] [--server-args "--max-batch-length 10000"]

import { argument } from '../arguments';
import { BIN, killAllChildren, residentKiB, sleep, spawnTracked, stop, waitForLine, type RunningServer } from '../server/harness';
import { listFunctionsBatch, parkReply, quantile, timeControlRequests, type AttackTransport, type ParkedClient } from './parked-replies-clients';

const transport = argument('transport', 'tcp');
const attackers = Number(argument('attackers', '6'));
const members = Number(argument('members', '10000'));
const durationMs = Number(argument('duration-ms', '10000'));
const serverArgs = argument('server-args', '').split(' ').filter((word) => word !== '');

const SERVER_NAMES: Record<string, string> = { tcp: 'tcp', http: 'http', websocket: 'websocket' };
const PORT_FLAGS: Record<string, string> = { tcp: '--tcp-port', http: '--http-port', websocket: '--ws-port' };

/** rkllm-serve on the emulated runtime with TCP (the control) and the attacked transport. */
async function startServer(): Promise<RunningServer> {
  const network = [...new Set(['tcp', transport].filter((name) => name !== 'stdio'))];
  const args = [BIN, '--runtime', 'sim', '--disable-udp', ...serverArgs];
  for (const name of ['tcp', 'http', 'websocket']) args.push(...(network.includes(name) ? [PORT_FLAGS[name], '0'] : [`--disable-${name === 'websocket' ? 'ws' : name}`]));
  if (transport !== 'stdio') args.push('--disable-stdio');
  const child = spawnTracked(process.execPath, args, transport === 'stdio' ? ['pipe', 'pipe', 'pipe'] : ['ignore', 'ignore', 'pipe']);
  const ports: RunningServer['ports'] = {};
  await waitForLine(child.stderr!, 'the listening lines', 20_000, (line) => {
    try {
      const record = JSON.parse(line) as { transport?: string; port?: number; msg?: string };
      for (const name of network) if (record.transport === SERVER_NAMES[name] && typeof record.port === 'number') ports[name as 'tcp'] = record.port;
    } catch {
      // not a log line
    }
    return network.every((name) => ports[name as 'tcp'] !== undefined);
  });
  child.stderr!.resume();
  return { child, ports };
}

async function main(): Promise<void> {
  const server = await startServer();
  const pid = server.child.pid!;
  const parked: ParkedClient[] = [];
  try {
    await sleep(1000);
    const baselineKiB = residentKiB(pid);
    let peakKiB = baselineKiB;
    const sampler = setInterval(() => {
      try {
        peakKiB = Math.max(peakKiB, residentKiB(pid));
      } catch {
        // the server exited; the result says so
      }
    }, 100);
    const control = timeControlRequests(server.ports.tcp!, durationMs);
    await sleep(500);
    const batch = listFunctionsBatch(members);
    if (transport === 'stdio') {
      // The parent is the one stdio client: it writes the batch and never reads stdout.
      server.child.stdin!.write(batch + '\n');
    } else {
      for (let index = 0; index < attackers; index++) parked.push(await parkReply(transport as AttackTransport, server.ports[transport as 'tcp']!, batch));
    }
    const timings = await control;
    clearInterval(sampler);
    const exited = server.child.exitCode !== null || server.child.signalCode !== null;
    console.log(
      JSON.stringify({
        transport,
        attackers: transport === 'stdio' ? 1 : attackers,
        members,
        batchBytes: Buffer.byteLength(batch),
        serverArgs: serverArgs.join(' '),
        rssBaselineMiB: Math.round(baselineKiB / 1024),
        rssPeakMiB: Math.round(peakKiB / 1024),
        controlRequests: timings.latenciesMs.length,
        controlUnanswered: timings.unanswered,
        controlP50Ms: Number(quantile(timings.latenciesMs, 0.5).toFixed(2)),
        controlP99Ms: Number(quantile(timings.latenciesMs, 0.99).toFixed(2)),
        controlMaxMs: Number(Math.max(...timings.latenciesMs).toFixed(2)),
        attackersCutOff: parked.filter((client) => client.closed).length,
        serverExited: exited,
      }),
    );
  } finally {
    for (const client of parked) client.destroy();
    await stop(server);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  killAllChildren();
  process.exit(1);
});
