// What reaches JavaScript when a token ends inside a UTF-8 character. The real runtime's WAITING
// callback may carry the character's first bytes or nothing, and its next NORMAL callback the
// rest or the whole character (docs/rkllm-abi.md, "What WAITING carries"). The addon's joiner is
// tested on exact bytes (joinCallbackTexts runs the worker's own joiner), then through the
// emulated runtime in each of its three `callbacks.waiting` styles.

import * as fs from 'fs';
import * as path from 'path';
import type { Model, RunChunk, Runtime } from '../../lib';
import { loadNative } from '../../lib/native/load';
import { ABIS, drain, makeScratchDir, openSim, removeScratchDir } from './helpers';

const REPLACEMENT = '\uFFFD';
const STYLES = ['partial-then-rest', 'partial-then-whole', 'empty-then-whole'] as const;
type Style = (typeof STYLES)[number];

/** Answers with characters of 2, 3 and 4 bytes that straddle the emulator's 4-byte tokens. */
const TEXTS: Record<string, string> = {
  CJK: '你好世界，日本語の文章です 東京',
  emoji: 'ok 😀👍🏽 🎉!',
  mixed: 'a😀b日本 naïve Grüße мир 你好 🎉x',
};

type Callback = { state: 0 | 1; bytes: Uint8Array };

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/ /g, ''), 'hex'));
}
function utf8(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text, 'utf8'));
}
function join(callbacks: Callback[]) {
  return loadNative().joinCallbackTexts(callbacks);
}
const normal = (bytes: Uint8Array): Callback => ({ state: 0, bytes });
const waiting = (bytes: Uint8Array): Callback => ({ state: 1, bytes });

/**
 * The callbacks a runtime of the given style sends for text cut into `size`-byte tokens: a token
 * whose bytes end inside a character is WAITING (the emulator's rule, written again here).
 */
function callbacksOf(text: string, size: number, style: Style): Callback[] {
  const bytes = Buffer.from(text, 'utf8');
  const out: Callback[] = [];
  let unsent = Buffer.alloc(0);
  for (let start = 0; start < bytes.length; start += size) {
    const token = bytes.subarray(start, Math.min(start + size, bytes.length));
    const end = start + token.length;
    const incomplete = end < bytes.length && (bytes[end] & 0xc0) === 0x80;
    if (style === 'partial-then-rest') {
      out.push({ state: incomplete ? 1 : 0, bytes: Uint8Array.from(token) });
      continue;
    }
    unsent = Buffer.concat([unsent, token]);
    if (incomplete) {
      out.push(waiting(style === 'empty-then-whole' ? new Uint8Array(0) : Uint8Array.from(token)));
    } else {
      out.push(normal(Uint8Array.from(unsent)));
      unsent = Buffer.alloc(0);
    }
  }
  return out;
}

describe("the joiner's rule, on exact bytes", () => {
  test('partial bytes then the rest: the NORMAL text starts with continuation bytes and is joined to them', () => {
    const { pieces, rest } = join([waiting(hex('e4bda0e5')), waiting(hex('a5bde4b8')), normal(hex('96e7958c'))]);
    expect(pieces).toEqual([
      { state: 1, text: '' },
      { state: 1, text: '' },
      { state: 0, text: '你好世界' },
    ]);
    expect(rest).toBe('');
  });

  test('partial bytes then the whole character: the NORMAL text starts a new character and the held bytes are dropped', () => {
    const { pieces } = join([waiting(hex('e4bda0e5')), waiting(hex('a5bde4b8')), normal(utf8('你好世界'))]);
    expect(pieces.map((piece) => piece.text)).toEqual(['', '', '你好世界']);
    expect(pieces.map((piece) => piece.state)).toEqual([1, 1, 0]);
    // A 4-byte character, re-sent after two and after three of its bytes.
    expect(join([waiting(hex('f09f')), normal(utf8('😀'))]).pieces[1]).toEqual({ state: 0, text: '😀' });
    expect(join([waiting(hex('f09f98')), normal(utf8('😀!'))]).pieces[1]).toEqual({ state: 0, text: '😀!' });
  });

  test('empty then the whole character: WAITING hands on nothing, NORMAL everything', () => {
    const { pieces, rest } = join([normal(utf8('ok')), waiting(new Uint8Array(0)), normal(utf8(' 😀'))]);
    expect(pieces).toEqual([
      { state: 0, text: 'ok' },
      { state: 1, text: '' },
      { state: 0, text: ' 😀' },
    ]);
    expect(rest).toBe('');
  });

  test('a WAITING callback hands on nothing, not even the whole characters in front of its partial bytes', () => {
    const { pieces } = join([waiting(utf8('a')), normal(utf8('b'))]);
    // "a" was WAITING and "b" starts a new character: "a" counts as re-sent in "b".
    expect(pieces).toEqual([
      { state: 1, text: '' },
      { state: 0, text: 'b' },
    ]);
    expect(join([waiting(hex('61f09f')), normal(hex('9880'))]).pieces).toEqual([
      { state: 1, text: '' },
      { state: 0, text: 'a😀' },
    ]);
  });

  test('a NORMAL text that itself ends inside a character is held whole until a later one completes it', () => {
    expect(join([normal(hex('61e4')), normal(hex('bda0')), normal(hex('62'))]).pieces).toEqual([
      { state: 1, text: '' },
      { state: 0, text: 'a你' },
      { state: 0, text: 'b' },
    ]);
    // Held by a NORMAL text, then continued by WAITING bytes, then finished by a NORMAL one.
    expect(join([normal(hex('61e4')), waiting(hex('bd')), normal(hex('a0'))]).pieces.map((piece) => piece.text)).toEqual(['', '', 'a你']);
    // A NORMAL text completes WAITING bytes and leaves a character of its own unfinished.
    expect(join([waiting(hex('e4bd')), normal(hex('a0e5')), normal(hex('a5bd'))]).pieces).toEqual([
      { state: 1, text: '' },
      { state: 1, text: '' },
      { state: 0, text: '你好' },
    ]);
  });

  test("a NORMAL text's unfinished character that a new character follows becomes U+FFFD; its whole characters stay", () => {
    expect(join([normal(hex('62e4bd')), normal(utf8('c'))]).pieces).toEqual([
      { state: 1, text: '' },
      { state: 0, text: `b${REPLACEMENT}c` },
    ]);
  });

  test('an empty NORMAL text while bytes are held keeps them held', () => {
    expect(join([waiting(hex('e4')), normal(new Uint8Array(0)), normal(hex('bda0'))]).pieces).toEqual([
      { state: 1, text: '' },
      { state: 1, text: '' },
      { state: 0, text: '你' },
    ]);
    expect(join([normal(new Uint8Array(0))]).pieces).toEqual([{ state: 0, text: '' }]);
  });

  test('nothing invalid reaches JavaScript: each byte that belongs to no character is one U+FFFD', () => {
    const cases: [string, string][] = [
      ['80', REPLACEMENT], // a continuation byte with nothing before it
      ['61 bf 62', `a${REPLACEMENT}b`],
      ['c0af', REPLACEMENT.repeat(2)], // overlong "/"
      ['e080af', REPLACEMENT.repeat(3)], // overlong "/" in three bytes
      ['eda080', REPLACEMENT.repeat(3)], // a UTF-16 surrogate
      ['f4908080', REPLACEMENT.repeat(4)], // above U+10FFFF
      ['f5 ff fe', REPLACEMENT.repeat(3)],
      ['e4 41', `${REPLACEMENT}A`], // a character cut short by a new one
      ['f09f98 f09f9880', `${REPLACEMENT}😀`],
    ];
    for (const [bytes, expected] of cases) {
      const { pieces, rest } = join([normal(hex(bytes))]);
      expect({ bytes, pieces, rest }).toEqual({ bytes, pieces: [{ state: 0, text: expected }], rest: '' });
    }
  });

  test("at the run's end, what is still held is handed on: whole characters as they are, an unfinished one as U+FFFD", () => {
    expect(join([waiting(hex('e4bda0e5'))]).rest).toBe(`你${REPLACEMENT}`);
    expect(join([normal(hex('61e4'))]).rest).toBe(`a${REPLACEMENT}`);
    expect(join([normal(utf8('done'))]).rest).toBe('');
  });

  test('a NUL byte ends a text, as it ends the C string the runtime passes', () => {
    expect(join([normal(hex('61 00 62'))]).pieces).toEqual([{ state: 0, text: 'a' }]);
  });

  test('bad arguments name the member', () => {
    const native = loadNative();
    expect(() => native.joinCallbackTexts('x' as never)).toThrow(/callbacks/);
    expect(() => native.joinCallbackTexts([{ state: 2 as never, bytes: new Uint8Array(0) }])).toThrow(/callbacks\[0\]\.state/);
    expect(() => native.joinCallbackTexts([{ state: 0, bytes: 'ab' as never }])).toThrow(/callbacks\[0\]\.bytes/);
  });

  test.each(Object.entries(TEXTS))('%s text cut into tokens of 1 to 5 bytes, sent in each style: the NORMAL texts join to it exactly', (_name, text) => {
    for (const style of STYLES) {
      for (let size = 1; size <= 5; size++) {
        const callbacks = callbacksOf(text, size, style);
        const { pieces, rest } = join(callbacks);
        const where = { style, size };
        expect({ ...where, rest }).toEqual({ ...where, rest: '' });
        expect({ ...where, text: pieces.map((piece) => piece.text).join('') }).toEqual({ ...where, text });
        for (const piece of pieces) if (piece.state === 1) expect({ ...where, piece }).toEqual({ ...where, piece: { state: 1, text: '' } });
        if (size > 1) expect(pieces.some((piece) => piece.state === 1)).toBe(true);
      }
    }
  });
});

describe.each(ABIS)('ABI %s: the emulated runtime in each WAITING style', (abi) => {
  let runtime: Runtime;
  let scratch: string;
  const models = new Map<Style, Model>();

  beforeAll(async () => {
    scratch = makeScratchDir(`utf8-waiting-${abi}`);
    runtime = await openSim(abi);
    for (const [index, style] of STYLES.entries()) {
      const file = path.join(scratch, `${style}.json`);
      fs.writeFileSync(file, JSON.stringify({ format: 'rkllm-emulated-model', version: 1, name: style, callbacks: { waiting: style } }));
      models.set(style, await runtime.loadModel({ model_path: file, extend_param: { base_domain_id: index } }));
    }
  }, 60_000);

  afterAll(async () => {
    for (const model of models.values()) if (!model.destroyed) await model.destroy();
    removeScratchDir(scratch);
  }, 60_000);

  /** Runs `echo: text` and checks the chunks; returns them. */
  async function echo(style: Style, text: string): Promise<RunChunk[]> {
    const run = models.get(style)!.run(`echo: ${text}`);
    const { chunks, error } = await drain(run, 1000);
    expect(error).toBeUndefined();
    const waitingChunks = chunks.filter((chunk) => chunk.state === 1);
    expect(waitingChunks.length).toBeGreaterThan(0);
    for (const chunk of waitingChunks) expect(chunk.text).toBe('');
    for (const chunk of chunks) expect(chunk.text).not.toContain(REPLACEMENT);
    expect(chunks.map((chunk) => chunk.text).join('')).toBe(text);
    const result = await run;
    expect(result.text).toBe(text);
    expect(result.token_count).toBe(chunks.length);
    return chunks;
  }

  test.each(STYLES.flatMap((style) => Object.keys(TEXTS).map((name) => [style, name] as const)))(
    '%s, %s text: exact text, WAITING chunks empty',
    async (style, name) => {
      await echo(style, TEXTS[name]);
    },
  );

  test('every style gives the same chunks: one per token, WAITING where the token ends inside a character', async () => {
    const seen = [];
    for (const style of STYLES) seen.push((await echo(style, TEXTS.mixed)).map((chunk) => [chunk.state, chunk.text]));
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
  });

  // "a😀" is the tokens "a" + 3 bytes (WAITING) and 1 byte; max_new_tokens 1 ends the run between them.
  test('a run cut right after a WAITING token: partial bytes end as U+FFFD, an empty WAITING leaves nothing', async () => {
    const ends: Record<string, string> = {};
    for (const [index, style] of STYLES.entries()) {
      const file = path.join(scratch, `${style}.json`);
      const model = await runtime.loadModel({ model_path: file, max_new_tokens: 1, extend_param: { base_domain_id: STYLES.length + index } });
      try {
        ends[style] = (await model.run('echo: a😀')).text;
      } finally {
        await model.destroy();
      }
    }
    expect(ends).toEqual({ 'partial-then-rest': `a${REPLACEMENT}`, 'partial-then-whole': `a${REPLACEMENT}`, 'empty-then-whole': '' });
  });
});
