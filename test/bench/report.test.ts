// The server bench's report: the regions it writes into docs/benchmarks.md and how it rewrites
// them in place, leaving the hand-written prose around them alone.

import * as fs from 'fs';
import * as path from 'path';
import { beginMarker, endMarker, REGION_NAMES, renderRegions, rewriteRegions } from '../../bench/server/report';
import { sampleResults } from './fixtures';

const DOC = path.join(__dirname, '..', '..', 'docs', 'benchmarks.md');

/** The document with every region's body removed: what the bench must never touch. */
function outsideRegions(document: string): string {
  return document.replace(/(<!-- server-bench:begin (\S+) -->)[\s\S]*?(<!-- server-bench:end \2 -->)/g, '$1$3');
}

describe('rewriteRegions', () => {
  const document = ['# Title', 'prose before', beginMarker('a'), 'old a', endMarker('a'), 'prose between', beginMarker('b'), endMarker('b'), 'prose after', ''].join('\n');

  it('replaces what is between the markers and keeps the rest byte for byte', () => {
    const next = rewriteRegions(document, { a: 'new a\nsecond line', b: 'new b' });
    expect(next).toBe(
      ['# Title', 'prose before', beginMarker('a'), '', 'new a', 'second line', '', endMarker('a'), 'prose between', beginMarker('b'), '', 'new b', '', endMarker('b'), 'prose after', ''].join('\n'),
    );
  });

  it('gives the same document when run twice with the same regions', () => {
    const once = rewriteRegions(document, { a: 'x', b: 'y' });
    expect(rewriteRegions(once, { a: 'x', b: 'y' })).toBe(once);
  });

  it('takes region text with $ patterns literally', () => {
    expect(rewriteRegions(document, { a: "$& $' $1", b: '' })).toContain("\n$& $' $1\n");
  });

  it('refuses a document without one of the regions, naming the markers to add', () => {
    expect(() => rewriteRegions(document, { a: 'x', b: 'y', c: 'z' })).toThrow(`the document has no region "c": put the lines ${beginMarker('c')} and ${endMarker('c')}`);
  });

  it('refuses a region that appears twice', () => {
    expect(() => rewriteRegions(document + [beginMarker('a'), endMarker('a')].join('\n'), { a: 'x', b: 'y' })).toThrow('region "a" more than once');
  });

  it('refuses a region the bench does not write, which would keep stale figures', () => {
    expect(() => rewriteRegions(document, { a: 'x' })).toThrow('region "b" that the bench does not write');
  });

  it('refuses markers in the wrong order or one region inside another', () => {
    expect(() => rewriteRegions([endMarker('a'), beginMarker('a')].join('\n'), { a: 'x' })).toThrow('comes before its begin marker');
    const nested = [beginMarker('a'), beginMarker('b'), endMarker('b'), endMarker('a')].join('\n');
    expect(() => rewriteRegions(nested, { a: 'x', b: 'y' })).toThrow(`region "a" has another region's marker inside it`);
  });
});

describe('renderRegions', () => {
  it('writes every region the document has', () => {
    expect(Object.keys(renderRegions(sampleResults())).sort()).toEqual([...REGION_NAMES].sort());
  });

  it('states the command, the machine, the date and the settings of the run', () => {
    const { run } = renderRegions(sampleResults());
    expect(run).toContain('Command: `npm run bench:server` (3 s per cheap-request round, 2 rounds per cell).');
    expect(run).toContain('Machine: 2 vCPUs (Test CPU), 4 GiB, Node v20.0.0, Linux 6.0 x64; open-files limit 20,000; 2030-01-02.');
    expect(run).not.toContain('Quick mode');
  });

  it('marks a quick run as not for comparison', () => {
    const results = sampleResults();
    const { run } = renderRegions({ ...results, settings: { ...results.settings, quick: true, rounds: 1 } });
    expect(run).toMatch(/^\*\*Quick mode\*\* \(`--quick`\)/);
    expect(run).toContain('not for comparison');
  });

  it('lists the cheap-request cells under the target, with a NaN ratio counted as missed', () => {
    const results = sampleResults();
    results.cheap.rows[2].ratio = NaN;
    const region = renderRegions(results)['cheap-requests'];
    expect(region).toContain('| TCP | 1 | 8,000 | 0.100 | 0.500 | 10,000 | 0.100 | 0.400 | **-** |');
    expect(region).toContain('**missed** in 4 of 10 cells: stdio × 16 (0.50), TCP × 1 (-), HTTP × 1 (0.50), HTTP × 16 (0.50).');
    expect(region).toContain('UDP datagrams lost over all UDP cells: 10.');
    expect(region).toContain('](benchmarks-chart.svg)');
  });

  it('says the target is met when every cell is at or over it', () => {
    const results = sampleResults();
    for (const row of results.cheap.rows) row.ratio = 0.7;
    expect(renderRegions(results)['cheap-requests']).toContain('Target (a ratio of 0.7 or more) met in every cell.');
  });

  it('gives the streaming cases with tokens per client and the server CPU per token', () => {
    const region = renderRegions(sampleResults())['streaming-throughput'];
    expect(region).toContain(
      'After a warm-up run of `count to 20` per transport: one client running `count to 500` (1,490 tokens) and 8 clients each starting `count to 20` (50 tokens each) at once.',
    );
    // 0.75 vCPUs over 149,000 tokens/s: 5.0 µs of CPU per token.
    expect(region).toContain('| TCP | 1 | 1,490 | 0.010 | 149,000 | 0.75 | 5.0 |');
    expect(region).toContain('**missed**: TCP 149,000 tokens/s.');
  });

  it('judges each latency target on its own', () => {
    const region = renderRegions(sampleResults())['streaming-latency'];
    expect(region).toContain('`count to 5` on `sim:rk3588-qwen2.5-1.5b`, 2 runs in a row on one connection per transport.');
    expect(region).toContain('p99 target (under 1 ms) **missed** on WebSocket.');
    expect(region).toContain('Added TTFT target (under 2 ms on every run) **missed** on TCP (worst run).');
  });

  it('marks a search that reached its cap with "+", and keeps a "|" in a failure inside its cell', () => {
    const region = renderRegions(sampleResults()).scale;
    expect(region).toContain('Ramp: steps of 1,000 up to 3,000 connections; limit 100 MiB of server RSS.');
    expect(region).toContain('| TCP | 64.0 | 3,000+ | 79.0 | 5.1 | the search\'s cap (3,000) |');
    expect(region).toContain('| UDP | 64.0 | 1,000 | 87.9 | 24.5 | the 100 MiB limit |');
    expect(region).toContain('| HTTP | 64.0 | 1,000 | 68.4 | 4.5 | a failure: refused \\| reset |');
    expect(region).toContain('with 1,000 idle WebSocket connections: 72.0 MiB.');
    expect(region).toContain('is 50.0 MiB idle.');
  });
});

describe('docs/benchmarks.md', () => {
  const current = fs.readFileSync(DOC, 'utf8');

  it('has every region of the report once, and a rewrite touches nothing outside them', () => {
    const next = rewriteRegions(current, renderRegions(sampleResults()));
    expect(outsideRegions(next)).toBe(outsideRegions(current));
    expect(next).toContain('open-files limit 20,000; 2030-01-02.');
  });

  it('links the SVG chart, which exists', () => {
    expect(current).toContain('](benchmarks-chart.svg)');
    expect(fs.existsSync(path.join(path.dirname(DOC), 'benchmarks-chart.svg'))).toBe(true);
  });
});
