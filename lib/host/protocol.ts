// The pipe between the server and a model host (docs/architecture.md, "Model hosts"). Each frame
// is a 4-byte little-endian length (of what follows), one kind byte, then the body:
//
//   kind 1 JSON    one message of the schemas below, UTF-8 JSON
//   kind 2 TOKENS  a batch of one run's tokens, binary (encodeTokens): the host writes one frame
//                  per batch the addon delivered, never one per token
//
// Requests go in (call, run, cancel, limits), answers come out (reply, end, tokens). JSON messages are
// checked against their schema on arrival; a frame that fails a check ends the host (the stream
// can no longer be trusted).

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { NativeRunEvent } from '../native/binding';

export const FRAME_JSON = 1;
export const FRAME_TOKENS = 2;

/** The largest frame either side accepts: a logits batch of a big vocabulary fits many times over. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

const HEADER_BYTES = 5;

/** The model calls the host answers (the methods of lib/runtime's Model, plus opening the runtime). */
export const HOST_METHODS = [
  'open',
  'init',
  'abort',
  'loadLora',
  'loadPromptCache',
  'releasePromptCache',
  'clearKvCache',
  'setChatTemplate',
  'setFunctionTools',
  'setCrossAttnParams',
  'destroy',
] as const;
export type HostMethod = (typeof HOST_METHODS)[number];

const Json = Type.Unknown();

/**
 * The server's own soft RLIMIT_NPROC, sent with what may start a thread in the host (init,
 * abort, cancel): the host applies it first, so it starts no thread the server could not.
 */
const Nproc = Type.Optional(Type.Number({ minimum: 0 }));

/** Server to host: one call; answered by exactly one reply with the same id. */
export const CallMessage = Type.Object({
  type: Type.Literal('call'),
  id: Type.Integer({ minimum: 0 }),
  method: Type.Union(HOST_METHODS.map((name) => Type.Literal(name))),
  args: Type.Array(Json),
  nproc: Nproc,
});

/** Server to host: starts a run; its tokens and its end carry the same run number. */
export const RunMessage = Type.Object({
  type: Type.Literal('run'),
  run: Type.Integer({ minimum: 0 }),
  input: Json,
  infer: Json,
});

/** Server to host: stops a run, queued or running (its end follows, 'aborted'). */
export const CancelMessage = Type.Object({ type: Type.Literal('cancel'), run: Type.Integer({ minimum: 0 }), nproc: Nproc });

/** Server to host: the server's thread limit changed (prlimit --pid on the server): follow it. */
export const LimitsMessage = Type.Object({ type: Type.Literal('limits'), nproc: Type.Number({ minimum: 0 }) });

const WireError = Type.Object({
  message: Type.String(),
  code: Type.String(),
  field: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  fn: Type.Optional(Type.String()),
  returnCode: Type.Optional(Type.Number()),
  facts: Type.Optional(Type.Record(Type.String(), Json)),
});
export type WireError = Static<typeof WireError>;

const KvSizes = Type.Array(Type.Number());

/** Host to server: the answer to a call. `kv` is the KV cache size after it (getKvCacheSize). */
export const ReplyMessage = Type.Object({
  type: Type.Literal('reply'),
  id: Type.Integer({ minimum: 0 }),
  ok: Type.Boolean(),
  value: Type.Optional(Json),
  error: Type.Optional(WireError),
  kv: Type.Optional(KvSizes),
});

const Perf = Type.Object({
  prefill_time_ms: Type.Number(),
  prefill_tokens: Type.Number(),
  generate_time_ms: Type.Number(),
  generate_tokens: Type.Number(),
  memory_usage_mb: Type.Number(),
});

/** Host to server: a run ended (after its last tokens frame), with the KV cache size after it. */
export const EndMessage = Type.Object({
  type: Type.Literal('end'),
  run: Type.Integer({ minimum: 0 }),
  status: Type.Union([Type.Literal('finish'), Type.Literal('error'), Type.Literal('aborted')]),
  perf: Type.Optional(Perf),
  error: Type.Optional(WireError),
  kv: KvSizes,
});

export type CallMessage = Static<typeof CallMessage>;
export type RunMessage = Static<typeof RunMessage>;
export type CancelMessage = Static<typeof CancelMessage>;
export type LimitsMessage = Static<typeof LimitsMessage>;
export type ReplyMessage = Static<typeof ReplyMessage>;
export type EndMessage = Static<typeof EndMessage>;

export type ToHost = CallMessage | RunMessage | CancelMessage | LimitsMessage;
export type FromHost = ReplyMessage | EndMessage;

function checker<T extends TSchema>(schema: T): (value: unknown) => value is Static<T> {
  const compiled = TypeCompiler.Compile(schema);
  return (value): value is Static<T> => compiled.Check(value);
}

const toHostChecks = { call: checker(CallMessage), run: checker(RunMessage), cancel: checker(CancelMessage), limits: checker(LimitsMessage) };
const fromHostChecks = { reply: checker(ReplyMessage), end: checker(EndMessage) };

function typeOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? String((value as { type?: unknown }).type) : undefined;
}

/** A message from the server, or undefined when it matches no schema. */
export function asToHost(value: unknown): ToHost | undefined {
  const check = toHostChecks[typeOf(value) as keyof typeof toHostChecks];
  return check?.(value) ? (value as ToHost) : undefined;
}

/** A message from a host, or undefined when it matches no schema. */
export function asFromHost(value: unknown): FromHost | undefined {
  const check = fromHostChecks[typeOf(value) as keyof typeof fromHostChecks];
  return check?.(value) ? (value as FromHost) : undefined;
}

/** One JSON frame. */
export function encodeJson(message: ToHost | FromHost): Buffer {
  const text = JSON.stringify(message);
  const length = Buffer.byteLength(text);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32LE(length + 1, 0);
  frame[4] = FRAME_JSON;
  frame.write(text, HEADER_BYTES, 'utf8');
  return frame;
}

/** What a host sends of one token; the same members as the addon's token event. */
export type TokenEvent = Extract<NativeRunEvent, { kind: 'token' }>;
/** A token as the host has it (lib/runtime's RunChunk has these members and more). */
export type TokenFields = Omit<TokenEvent, 'kind'>;

const TOKEN_FIXED_BYTES = 1 + 1 + 4 + 8 + 4;
const BLOCK_FIXED_BYTES = 4 + 4 + 4;
const HAS_LOGITS = 1;
const HAS_HIDDEN = 2;

/**
 * A tokens frame: run u32, count u32, then per token state u8, flags u8, token_id i32, time_us
 * f64, text length u32 and its UTF-8 bytes, then the logits (flag 1) and the hidden layer (flag
 * 2) when present, each as its size u32, num_tokens u32, float count u32 and the floats.
 */
export function encodeTokens(run: number, tokens: readonly TokenFields[]): Buffer {
  let size = HEADER_BYTES + 8;
  for (const token of tokens) {
    size += TOKEN_FIXED_BYTES + Buffer.byteLength(token.text);
    if (token.logits) size += BLOCK_FIXED_BYTES + token.logits.data.byteLength;
    if (token.last_hidden_layer) size += BLOCK_FIXED_BYTES + token.last_hidden_layer.data.byteLength;
  }
  const frame = Buffer.allocUnsafe(size);
  frame.writeUInt32LE(size - 4, 0);
  frame[4] = FRAME_TOKENS;
  frame.writeUInt32LE(run, 5);
  frame.writeUInt32LE(tokens.length, 9);
  let at = 13;
  for (const token of tokens) {
    frame[at] = token.state;
    frame[at + 1] = (token.logits ? HAS_LOGITS : 0) | (token.last_hidden_layer ? HAS_HIDDEN : 0);
    frame.writeInt32LE(token.token_id, at + 2);
    frame.writeDoubleLE(token.time_us, at + 6);
    const written = token.text.length === 0 ? 0 : frame.write(token.text, at + TOKEN_FIXED_BYTES, 'utf8');
    frame.writeUInt32LE(written, at + 14);
    at += TOKEN_FIXED_BYTES + written;
    if (token.logits) at = writeBlock(frame, at, token.logits.vocab_size, token.logits.num_tokens, token.logits.data);
    if (token.last_hidden_layer) {
      const hidden = token.last_hidden_layer;
      at = writeBlock(frame, at, hidden.embd_size, hidden.num_tokens, hidden.data);
    }
  }
  return frame;
}

function writeBlock(frame: Buffer, at: number, width: number, numTokens: number, data: Float32Array): number {
  frame.writeUInt32LE(width, at);
  frame.writeUInt32LE(numTokens, at + 4);
  frame.writeUInt32LE(data.length, at + 8);
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(frame, at + 12);
  return at + 12 + data.byteLength;
}

/** A tokens frame's body (after the kind byte) read back; throws on a malformed one. */
export function decodeTokens(body: Buffer): { run: number; tokens: TokenEvent[] } {
  if (body.length < 8) throw new Error('tokens frame too short');
  const run = body.readUInt32LE(0);
  const count = body.readUInt32LE(4);
  const tokens: TokenEvent[] = new Array<TokenEvent>(count);
  let at = 8;
  for (let i = 0; i < count; i++) {
    if (at + TOKEN_FIXED_BYTES > body.length) throw new Error('tokens frame cut short');
    const state = body[at];
    const flags = body[at + 1];
    const textLength = body.readUInt32LE(at + 14);
    const textAt = at + TOKEN_FIXED_BYTES;
    if (textAt + textLength > body.length || (state !== 0 && state !== 1)) throw new Error('malformed token in tokens frame');
    const token: TokenEvent = {
      kind: 'token',
      state,
      text: textLength === 0 ? '' : body.toString('utf8', textAt, textAt + textLength),
      token_id: body.readInt32LE(at + 2),
      time_us: body.readDoubleLE(at + 6),
    };
    at = textAt + textLength;
    if (flags & HAS_LOGITS) {
      const block = readBlock(body, at);
      token.logits = { data: block.data, num_tokens: block.numTokens, vocab_size: block.width };
      at = block.next;
    }
    if (flags & HAS_HIDDEN) {
      const block = readBlock(body, at);
      token.last_hidden_layer = { data: block.data, num_tokens: block.numTokens, embd_size: block.width };
      at = block.next;
    }
    tokens[i] = token;
  }
  if (at !== body.length) throw new Error('tokens frame has trailing bytes');
  return { run, tokens };
}

function readBlock(body: Buffer, at: number): { width: number; numTokens: number; data: Float32Array; next: number } {
  if (at + BLOCK_FIXED_BYTES > body.length) throw new Error('float block cut short');
  const width = body.readUInt32LE(at);
  const numTokens = body.readUInt32LE(at + 4);
  const floats = body.readUInt32LE(at + 8);
  const start = at + BLOCK_FIXED_BYTES;
  const end = start + floats * 4;
  if (end > body.length) throw new Error('float block cut short');
  // Copied out: the frame's bytes are not aligned for a Float32Array and are reused.
  const data = new Float32Array(floats);
  Buffer.from(data.buffer).set(body.subarray(start, end));
  return { width, numTokens, data, next: end };
}

/** Splits a byte stream into frames; each frame's kind and body go to `onFrame`. */
export class FrameReader {
  readonly #onFrame: (kind: number, body: Buffer) => void;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(onFrame: (kind: number, body: Buffer) => void) {
    this.#onFrame = onFrame;
  }

  /** Throws when a frame's length is out of bounds (the stream is broken). */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (this.#buffered >= 4) {
      const head = this.#chunks[0].length >= 4 ? this.#chunks[0] : this.#joined();
      const length = head.readUInt32LE(0);
      if (length < 1 || length > MAX_FRAME_BYTES) throw new Error(`frame length ${length} is out of bounds`);
      if (this.#buffered < 4 + length) return;
      const first = this.#chunks[0].length >= 4 + length ? this.#chunks[0] : this.#joined();
      const kind = first[4];
      const body = first.subarray(HEADER_BYTES, 4 + length);
      if (first.length === 4 + length) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(4 + length);
      this.#buffered -= 4 + length;
      this.#onFrame(kind, body);
    }
  }

  #joined(): Buffer {
    const joined = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [joined];
    return joined;
  }
}
