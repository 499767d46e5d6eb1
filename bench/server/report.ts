// The generated parts of the "Whole server" section of docs/benchmarks.md. The section is prose
// written by hand with named regions between markers; the bench rewrites what is inside each
// region (the figures, the settings they were made with, the command, the machine and the date)
// and leaves everything outside alone.

import * as fs from 'fs';
import { TRANSPORT_LABEL, type TransportName } from './harness';
import type { Results } from './results';
import { CAP_REACHED, MEMORY_LIMIT_KIB } from './suites/scale';
import { PACED_MODEL } from './suites/streaming';

export const RATIO_TARGET = 0.7;
/** Tokens per second to one streaming client (issue 10): 250,000 over TCP and WebSocket, 150,000 over HTTP SSE. */
const STREAM_TARGET_TOKENS_PER_SECOND: Partial<Record<TransportName, number>> = { tcp: 250_000, ws: 250_000, http: 150_000 };
const streamTarget = (transport: TransportName): number => STREAM_TARGET_TOKENS_PER_SECOND[transport] ?? 250_000;
const LATENCY_P99_TARGET_MS = 1;
const ADDED_TTFT_TARGET_MS = 2;
/** The chart's file name, next to the document that shows it. */
const CHART_FILE_NAME = 'benchmarks-chart.svg';

export const REGION_NAMES = ['run', 'cheap-requests', 'streaming-throughput', 'streaming-latency', 'scale'] as const;
export type RegionName = (typeof REGION_NAMES)[number];

const MARKER_PREFIX = '<!-- server-bench:';
export const beginMarker = (name: string): string => `${MARKER_PREFIX}begin ${name} -->`;
export const endMarker = (name: string): string => `${MARKER_PREFIX}end ${name} -->`;

const integer = (value: number): string => Math.round(value).toLocaleString('en-US');
const fixed = (value: number | null, digits: number): string => (value !== null && Number.isFinite(value) ? value.toFixed(digits) : '-');
const mib = (kib: number): string => (kib / 1024).toFixed(1);
const label = (transport: TransportName): string => TRANSPORT_LABEL[transport];
/** Free text in a table cell: a "|" would end the cell. */
const cell = (text: string): string => text.replace(/\|/g, '\\|');
const list = (items: string[]): string => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`);

function describeSteps(steps: number[]): string {
  const first = steps[0];
  const regular = steps.every((step, index) => step === first * (index + 1));
  return regular && steps.length > 2 ? `steps of ${integer(first)} up to ${integer(steps[steps.length - 1])}` : `steps to ${list(steps.map(integer))}`;
}

function runRegion(results: Results): string[] {
  const { settings } = results;
  const lines: string[] = [];
  if (settings.quick) {
    lines.push('**Quick mode** (`--quick`): shortened runs that check the bench works end to end.', 'These figures are not for comparison; rerun without `--quick` for figures to keep.', '');
  }
  const limit = results.openFilesLimit === null ? 'no open-files limit' : `open-files limit ${integer(results.openFilesLimit)}`;
  lines.push(
    `Command: \`${results.command}\` (${settings.secondsPerCell} s per cheap-request round, ${settings.rounds} round${settings.rounds === 1 ? '' : 's'} per cell).`,
    `Machine: ${results.machine}; ${limit}; ${results.date}.`,
    `The run took ${Math.round(results.durationSeconds)} s.`,
  );
  return lines;
}

function cheapRequestsRegion(results: Results): string[] {
  const { settings } = results;
  const { rows, replyBytes } = results.cheap;
  const rounds = settings.rounds === 1 ? 'one round per cell' : `${settings.rounds} rounds per cell alternating ours and the baseline, each side's best round shown with its own latencies`;
  const lines = [
    `Each client keeps one request in flight for ${settings.secondsPerCell} s; ${rounds}.`,
    `The baseline's reply is ${replyBytes} bytes for id 1, the size of our reply.`,
    '',
    '| transport | clients | ours (req/s) | median (ms) | p99 (ms) | baseline (req/s) | median (ms) | p99 (ms) | ratio |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${label(row.transport)} | ${row.clients} | ${integer(row.ours.requestsPerSecond)} | ${fixed(row.ours.medianMs, 3)} | ${fixed(row.ours.p99Ms, 3)} | ` +
        `${integer(row.baseline.requestsPerSecond)} | ${fixed(row.baseline.medianMs, 3)} | ${fixed(row.baseline.p99Ms, 3)} | **${fixed(row.ratio, 2)}** |`,
    );
  }
  const udp = rows.filter((row) => row.transport === 'udp');
  if (udp.length > 0) {
    const lost = udp.reduce((sum, row) => sum + (row.ours.lost ?? 0) + (row.baseline.lost ?? 0), 0);
    lines.push('', `UDP datagrams lost over all UDP cells: ${integer(lost)}.`);
  }
  lines.push('', `![Requests/s of rkllm-serve as a fraction of the bare baseline, per transport and client count](${CHART_FILE_NAME})`, '');
  const missed = rows.filter((row) => !(row.ratio >= RATIO_TARGET));
  lines.push(
    missed.length === 0
      ? `Target (a ratio of ${RATIO_TARGET} or more) met in every cell.`
      : `Target (a ratio of ${RATIO_TARGET} or more) **missed** in ${missed.length} of ${rows.length} cells: ` +
          `${missed.map((row) => `${label(row.transport)} × ${row.clients} (${fixed(row.ratio, 2)})`).join(', ')}.`,
  );
  return lines;
}

function streamingThroughputRegion(results: Results): string[] {
  const { settings } = results;
  const rows = results.streaming.throughput;
  const cases = settings.streamCases.map(({ clients, prompt }) => {
    const row = rows.find((candidate) => candidate.clients === clients);
    const tokens = row ? ` (${integer(row.tokens / clients)} tokens${clients === 1 ? '' : ' each'})` : '';
    return clients === 1 ? `one client running \`${prompt}\`${tokens}` : `${clients} clients each starting \`${prompt}\`${tokens} at once`;
  });
  const lines = [
    `After a warm-up run of \`${settings.streamWarmUpPrompt}\` per transport: ${list(cases)}.`,
    '',
    '| transport | clients | tokens | seconds | tokens/s | server CPU (vCPUs busy) | server CPU per token (µs) |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const cpuPerTokenUs = (row.serverCpuShare / row.tokensPerSecond) * 1e6;
    lines.push(
      `| ${label(row.transport)} | ${row.clients} | ${integer(row.tokens)} | ${fixed(row.seconds, 3)} | ${integer(row.tokensPerSecond)} | ${fixed(row.serverCpuShare, 2)} | ${fixed(cpuPerTokenUs, 1)} |`,
    );
  }
  const slow = rows.filter((row) => row.clients === 1 && !(row.tokensPerSecond >= streamTarget(row.transport)));
  const target = `Target (${integer(streamTarget('tcp'))} tokens/s to one TCP or WebSocket client, ${integer(streamTarget('http'))} over HTTP SSE)`;
  lines.push(
    '',
    slow.length === 0
      ? `${target} met on every transport.`
      : `${target} **missed**: ${slow.map((row) => `${label(row.transport)} ${integer(row.tokensPerSecond)}`).join(', ')} tokens/s.`,
  );
  return lines;
}

function streamingLatencyRegion(results: Results): string[] {
  const { settings } = results;
  const rows = results.streaming.latency;
  const runs = settings.latencyRuns === 1 ? 'one run' : `${settings.latencyRuns} runs in a row`;
  const lines = [
    `\`${settings.latencyPrompt}\` on \`${PACED_MODEL}\`, ${runs} on one connection per transport.`,
    '',
    '| transport | tokens | median (ms) | p99 (ms) | max (ms) | added TTFT, median of runs (ms) | added TTFT, max (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${label(row.transport)} | ${row.tokens} | ${fixed(row.medianMs, 3)} | ${fixed(row.p99Ms, 3)} | ${fixed(row.maxMs, 3)} | ${fixed(row.ttftAddedMedianMs, 3)} | ${fixed(row.ttftAddedMaxMs, 3)} |`,
    );
  }
  const p99Missed = rows.filter((row) => !(row.p99Ms < LATENCY_P99_TARGET_MS)).map((row) => label(row.transport));
  const ttftMissed = rows.filter((row) => !(row.ttftAddedMaxMs < ADDED_TTFT_TARGET_MS)).map((row) => label(row.transport));
  lines.push(
    '',
    `p99 target (under ${LATENCY_P99_TARGET_MS} ms) ${p99Missed.length === 0 ? 'met on every transport' : `**missed** on ${list(p99Missed)}`}.`,
    `Added TTFT target (under ${ADDED_TTFT_TARGET_MS} ms on every run) ${ttftMissed.length === 0 ? 'met on every transport' : `**missed** on ${list(ttftMissed)} (worst run)`}.`,
  );
  return lines;
}

function scaleRegion(results: Results): string[] {
  const { settings } = results;
  const { rows, bareIdleKiB } = results.scale;
  const limit = `${MEMORY_LIMIT_KIB / 1024} MiB`;
  const lines = [
    `Ramp: ${describeSteps(settings.scaleSteps)} connections; limit ${limit} of server RSS.`,
    '',
    `| transport | idle RSS (MiB) | most open under ${limit} | RSS there (MiB) | KiB per connection | search ended by |`,
    '|---|---:|---:|---:|---:|---|',
  ];
  for (const row of rows) {
    const at = row.steps.find(([open]) => open === row.mostUnderLimit);
    const capped = row.endedBy.startsWith(CAP_REACHED) ? '+' : '';
    lines.push(
      `| ${label(row.transport)} | ${mib(row.idleKiB)} | ${integer(row.mostUnderLimit)}${capped} | ${at ? mib(at[1]) : '-'} | ${fixed(row.kibPerConnection, 1)} | ${cell(row.endedBy)} |`,
    );
  }
  lines.push('| stdio | - | 1 | - | - | one stdin per process |', '');
  const ws = rows.find((row) => row.transport === 'ws');
  const firstStep = ws?.steps[0];
  if (ws && firstStep) {
    lines.push(`Server RSS idle (WebSocket only): ${mib(ws.idleKiB)} MiB; with ${integer(firstStep[0])} idle WebSocket connections: ${mib(firstStep[1])} MiB.`);
  }
  lines.push(`The bare TCP baseline (a Node process with one listening socket) is ${mib(bareIdleKiB)} MiB idle.`);
  return lines;
}

export function renderRegions(results: Results): Record<RegionName, string> {
  return {
    run: runRegion(results).join('\n'),
    'cheap-requests': cheapRequestsRegion(results).join('\n'),
    'streaming-throughput': streamingThroughputRegion(results).join('\n'),
    'streaming-latency': streamingLatencyRegion(results).join('\n'),
    scale: scaleRegion(results).join('\n'),
  };
}

/**
 * Replaces what is between each region's begin and end markers in `document` with the region's
 * text, and leaves the rest of it byte for byte. Every region must appear exactly once, in one
 * piece; a marker of a region this bench does not write is an error too (a stale region would
 * keep old figures that look current).
 */
export function rewriteRegions(document: string, regions: Record<string, string>): string {
  const known = new Set(Object.keys(regions));
  for (const match of document.matchAll(/<!-- server-bench:(?:begin|end) (\S+) -->/g)) {
    if (!known.has(match[1])) throw new Error(`the document has a region "${match[1]}" that the bench does not write; remove its markers`);
  }
  let next = document;
  for (const [name, body] of Object.entries(regions)) {
    const begin = beginMarker(name);
    const end = endMarker(name);
    const start = next.indexOf(begin);
    const stop = next.indexOf(end);
    if (start === -1 || stop === -1) {
      throw new Error(`the document has no region "${name}": put the lines ${begin} and ${end} where its figures belong`);
    }
    if (next.indexOf(begin, start + 1) !== -1 || next.indexOf(end, stop + 1) !== -1) throw new Error(`the document has region "${name}" more than once`);
    if (stop < start) throw new Error(`the document's end marker of region "${name}" comes before its begin marker`);
    if (next.slice(start + begin.length, stop).includes(MARKER_PREFIX)) throw new Error(`the document's region "${name}" has another region's marker inside it`);
    // Blank lines around the body, so that Markdown reads it as blocks of its own.
    next = `${next.slice(0, start + begin.length)}\n\n${body}\n\n${next.slice(stop)}`;
  }
  return next;
}

export function writeReport(documentPath: string, results: Results): void {
  const current = fs.readFileSync(documentPath, 'utf8');
  let next: string;
  try {
    next = rewriteRegions(current, renderRegions(results));
  } catch (error) {
    throw new Error(`${documentPath}: ${(error as Error).message}`);
  }
  fs.writeFileSync(documentPath, next);
}
