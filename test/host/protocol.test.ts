// The pipe between the server and a model host (lib/host/protocol.ts): token batches survive the
// binary frame whole (multi-byte text, empty text, logits, hidden layers), frames are found
// however the byte stream is cut, and what is not a message of the protocol is refused.

import { FRAME_JSON, FRAME_TOKENS, FrameReader, MAX_FRAME_BYTES, asFromHost, asToHost, decodeTokens, encodeJson, encodeTokens, type TokenEvent } from '../../lib/host/protocol';

const TOKENS: TokenEvent[] = [
  { kind: 'token', state: 0, text: 'café', token_id: 17, time_us: 123456789.5 },
  { kind: 'token', state: 1, text: '', token_id: -1, time_us: 1 },
  { kind: 'token', state: 0, text: '日本語 😀', token_id: 151935, time_us: 2, logits: { data: new Float32Array([0.5, -1.25, 3]), num_tokens: 1, vocab_size: 3 } },
  { kind: 'token', state: 0, text: 'x', token_id: 0, time_us: 3, last_hidden_layer: { data: new Float32Array([1, 2, 3, 4]), num_tokens: 2, embd_size: 2 } },
];

function framesOf(bytes: Buffer, cuts: number[]): Array<{ kind: number; body: Buffer }> {
  const frames: Array<{ kind: number; body: Buffer }> = [];
  const reader = new FrameReader((kind, body) => frames.push({ kind, body: Buffer.from(body) }));
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    reader.push(bytes.subarray(at, cut));
    at = cut;
  }
  return frames;
}

test('a tokens frame decodes to the same tokens', () => {
  const frame = encodeTokens(7, TOKENS);
  const [only] = framesOf(frame, []);
  expect(only.kind).toBe(FRAME_TOKENS);
  expect(decodeTokens(only.body)).toEqual({ run: 7, tokens: TOKENS });
});

test('frames are found however the stream is cut, one byte at a time included', () => {
  const stream = Buffer.concat([
    encodeJson({ type: 'reply', id: 1, ok: true, value: 0, kv: [3] }),
    encodeTokens(2, TOKENS),
    encodeJson({ type: 'end', run: 2, status: 'finish', kv: [9] }),
  ]);
  const everyByte = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
  for (const cuts of [[], [1], [3, 4, 5, 30], everyByte]) {
    const frames = framesOf(stream, cuts);
    expect(frames.map((frame) => frame.kind)).toEqual([FRAME_JSON, FRAME_TOKENS, FRAME_JSON]);
    expect(asFromHost(JSON.parse(frames[0].body.toString('utf8')))).toEqual({ type: 'reply', id: 1, ok: true, value: 0, kv: [3] });
    expect(decodeTokens(frames[1].body).tokens).toEqual(TOKENS);
    expect(asFromHost(JSON.parse(frames[2].body.toString('utf8')))).toMatchObject({ type: 'end', status: 'finish' });
  }
});

test('a frame length out of bounds, a cut tokens frame and a message of no schema are refused', () => {
  const huge = Buffer.alloc(5);
  huge.writeUInt32LE(MAX_FRAME_BYTES + 1, 0);
  expect(() => framesOf(huge, [])).toThrow(/out of bounds/);
  const body = encodeTokens(1, TOKENS).subarray(5);
  expect(() => decodeTokens(body.subarray(0, body.length - 3))).toThrow();
  expect(() => decodeTokens(Buffer.concat([body, Buffer.from([0])]))).toThrow(/trailing/);
  expect(asFromHost({ type: 'end', run: 1, status: 'exploded', kv: [] })).toBeUndefined();
  expect(asFromHost({ type: 'reply', id: -1, ok: true })).toBeUndefined();
  expect(asToHost({ type: 'call', id: 1, method: 'rm -rf', args: [] })).toBeUndefined();
  expect(asToHost({ type: 'call', id: 1, method: 'abort', args: [], nproc: 300 })).toEqual({ type: 'call', id: 1, method: 'abort', args: [], nproc: 300 });
});
