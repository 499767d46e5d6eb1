// Generated malformed messages for the fuzz suite, and the answer the server owes each one.
// Everything random comes from a seeded PRNG (mulberry32), so a failure names its seed and case
// index and reproduces exactly: RELIABILITY_SEED=<seed> npx jest test/reliability/fuzz.test.ts.

import type { Transport } from '../integration/client';

/** mulberry32: small, fast, and good enough to spread fuzz cases; never used for anything secret. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const STANDARD_CODES = { parse: -32700, invalidRequest: -32600, methodNotFound: -32601, invalidParams: -32602 } as const;
export const MESSAGE_TOO_LARGE = -32014;

/** What one fuzz case must earn. */
export type Expectation =
  /** One JSON-RPC error with one of these codes, its id one of ids (null when the message could not be read as a request). */
  | { kind: 'error'; codes: number[]; ids: unknown[] }
  /** One successful reply to this id (the message was odd but valid), optionally with this text. */
  | { kind: 'result'; id: unknown; text?: string }
  /** A batch reply: an array of this many errors with this code. */
  | { kind: 'batchError'; code: number; length: number }
  /** The transport closes this connection (WebSocket close code), and only this one. */
  | { kind: 'close'; closeCode: number };

export interface FuzzCase {
  label: string;
  /** Bytes of the message, without framing (a newline is added for stdio and TCP). */
  payload: Buffer;
  expect: Expectation;
  /** HTTP only: an oversize body may be answered with 413 or, when the server closes first, a reset. */
  oversize?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Wrong types from the server's own JSON Schemas (rkllm_list_functions)

interface Schema {
  type?: string;
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  items?: Schema;
  maximum?: number;
}

export interface MethodSchema {
  name: string;
  params: Schema;
}

/** One property somewhere inside a method's params: its path and the JSON types it accepts. */
export interface PropertySlot {
  method: string;
  path: (string | number)[];
  types: Set<string>;
  bounded: boolean;
}

function typesOf(schema: Schema): Set<string> {
  const types = new Set<string>();
  if (schema.type) types.add(schema.type);
  for (const branch of schema.anyOf ?? []) for (const t of typesOf(branch)) types.add(t);
  return types;
}

export function propertySlots(methods: MethodSchema[]): PropertySlot[] {
  const slots: PropertySlot[] = [];
  const walk = (method: string, schema: Schema, path: (string | number)[]) => {
    for (const [name, child] of Object.entries(schema.properties ?? {})) {
      const childPath = [...path, name];
      const types = typesOf(child);
      // A schema without a type accepts anything: there is no wrong type to send.
      if (types.size > 0) slots.push({ method, path: childPath, types, bounded: typeof child.maximum === 'number' });
      if (child.properties) walk(method, child, childPath);
      if (child.items && child.items.properties) walk(method, child.items, [...childPath, 0]);
      else if (child.items && typesOf(child.items).size > 0) {
        slots.push({ method, path: [...childPath, 0], types: typesOf(child.items), bounded: typeof child.items.maximum === 'number' });
      }
    }
  };
  for (const method of methods) walk(method.name, method.params, []);
  return slots;
}

/** Values of every JSON type; wrongValuesFor keeps those the slot does not accept. */
const SAMPLE_VALUES: { type: string; value: unknown }[] = [
  { type: 'string', value: 'not-the-right-type' },
  { type: 'fraction', value: 1.5 },
  { type: 'integer', value: 7 },
  { type: 'boolean', value: true },
  { type: 'null', value: null },
  { type: 'object', value: { unexpected: 1 } },
  { type: 'array', value: [1, 'two'] },
];

export function wrongValuesFor(slot: PropertySlot): unknown[] {
  const accepts = (type: string) => {
    if (type === 'fraction') return slot.types.has('number');
    if (type === 'integer') return slot.types.has('integer') || slot.types.has('number');
    return slot.types.has(type);
  };
  return SAMPLE_VALUES.filter((sample) => !accepts(sample.type)).map((sample) => sample.value);
}

/** params holding value at path, e.g. ['rkllm_input','token_input',0] -> { rkllm_input: { token_input: [value] } }. */
export function paramsAt(path: (string | number)[], value: unknown): Record<string, unknown> {
  let inner: unknown = value;
  for (let i = path.length - 1; i >= 0; i--) {
    const key = path[i];
    inner = typeof key === 'number' ? [inner] : { [key]: inner };
  }
  return inner as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// The generator

export interface GeneratorOptions {
  transport: Transport;
  maxMessageBytes: number;
  slots: PropertySlot[];
  /** Every wrong value of every slot (true), or one seeded pick per slot (false). */
  fullTypeMatrix: boolean;
  randomCases: number;
  truncatedCases: number;
}

const VALID_TEMPLATES: Record<string, unknown>[] = [
  { jsonrpc: '2.0', id: 1, method: 'rkllm_run', params: { handle: 'default', rkllm_input: { input_type: 0, prompt_input: 'echo: hello' }, stream: true } },
  { jsonrpc: '2.0', id: 'abc', method: 'rkllm_init', params: { param: { model_path: 'sim:instant', max_context_len: 4096 } } },
  { jsonrpc: '2.0', id: 3, method: 'poll', params: { stream_id: 'st-1', from_seq: 0 } },
  { jsonrpc: '2.0', id: 4, method: 'rkllm_set_function_tools', params: { system_prompt: '', tools: [{ type: 'function' }], tool_response_str: 'x' } },
];

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

export function generateCases(random: () => number, options: GeneratorOptions): FuzzCase[] {
  const { transport } = options;
  const isWs = transport === 'websocket';
  const int = (n: number) => Math.floor(random() * n);
  const cases: FuzzCase[] = [];
  let nextId = 0;
  const id = () => `fuzz-${transport}-${++nextId}`;
  const parseError: Expectation = { kind: 'error', codes: [STANDARD_CODES.parse], ids: [null] };
  // WebSocket text frames must be UTF-8: ws itself closes with 1007 before the engine sees them.
  const badUtf8Outcome = (otherwise: Expectation): Expectation => (isWs ? { kind: 'close', closeCode: 1007 } : otherwise);

  // Random bytes. Never a newline or CR (stdio/TCP would split them into several messages, or a
  // blank line that earns no answer), and never a leading space. WebSocket gets random valid
  // UTF-8 text instead; its invalid-UTF-8 cases are below.
  for (let i = 0; i < options.randomCases; i++) {
    const length = 1 + int(200);
    let payload: Buffer;
    if (isWs) {
      const chars = Array.from({ length }, () => String.fromCodePoint(int(4) === 0 ? 0x80 + int(0x2000) : 0x21 + int(0x5e)));
      payload = Buffer.from(chars.join(''));
    } else {
      payload = Buffer.alloc(length);
      for (let b = 0; b < length; b++) {
        let byte = int(256);
        while (byte === 0x0a || byte === 0x0d) byte = int(256);
        payload[b] = byte;
      }
      payload[0] = 0x21 + int(0x5e); // printable, so the line is never blank
    }
    // Random text is, at best, a JSON scalar: a parse error or an invalid request, both unaddressed.
    cases.push({ label: `random bytes #${i}`, payload, expect: { kind: 'error', codes: [STANDARD_CODES.parse, STANDARD_CODES.invalidRequest], ids: [null] } });
  }

  // Truncated JSON: a proper prefix of an object is never valid JSON.
  for (let i = 0; i < options.truncatedCases; i++) {
    const whole = JSON.stringify(VALID_TEMPLATES[int(VALID_TEMPLATES.length)]);
    cases.push({ label: `truncated #${i}`, payload: Buffer.from(whole.slice(0, 1 + int(whole.length - 1))), expect: parseError });
  }

  // Deep nesting, each several times so it also lands between other kinds of message.
  const depth = 10_000;
  const objectDepth = Math.min(4000, Math.floor((options.maxMessageBytes - 200) / 6));
  for (let round = 0; round < 3; round++) {
    cases.push({ label: `${depth} unclosed [`, payload: Buffer.from('['.repeat(depth)), expect: parseError });
    // A batch whose one member is an array: one -32600 in a batch reply.
    cases.push({ label: `${depth} nested arrays`, payload: Buffer.from('['.repeat(depth) + ']'.repeat(depth)), expect: { kind: 'batchError', code: STANDARD_CODES.invalidRequest, length: 1 } });
    const deepId = id();
    const deepObject = '{"a":'.repeat(objectDepth) + '1' + '}'.repeat(objectDepth);
    cases.push({
      label: `${objectDepth} nested objects inside rkllm_input`,
      payload: Buffer.from(`{"jsonrpc":"2.0","id":"${deepId}","method":"rkllm_run","params":{"rkllm_input":{"input_type":0,"prompt_input":"x","a":${deepObject}}}}`),
      expect: { kind: 'error', codes: [STANDARD_CODES.invalidParams], ids: [deepId] },
    });
    cases.push({
      label: `${objectDepth} nested objects as id`,
      payload: Buffer.from(`{"jsonrpc":"2.0","id":${deepObject},"method":"rkllm_get_constants"}`),
      expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest], ids: [null] },
    });
  }

  // Wrong types for every parameter of every method.
  for (const slot of options.slots) {
    const wrong = wrongValuesFor(slot);
    const chosen = options.fullTypeMatrix ? wrong : [wrong[int(wrong.length)]];
    for (const value of chosen) {
      const caseId = id();
      cases.push({
        label: `${slot.method} ${slot.path.join('.')} = ${JSON.stringify(value)}`,
        payload: json({ jsonrpc: '2.0', id: caseId, method: slot.method, params: paramsAt(slot.path, value) }),
        expect: { kind: 'error', codes: [STANDARD_CODES.invalidParams], ids: [caseId] },
      });
    }
  }

  // Huge numbers: in every bounded integer parameter (out of range), and as ids (echoed).
  const hugeLiterals = ['1e308', '-1e308', '18446744073709551616', '1e400'];
  for (const slot of options.slots.filter((s) => s.bounded)) {
    for (const literal of hugeLiterals) {
      const caseId = id();
      const params = JSON.stringify(paramsAt(slot.path, '__HUGE__')).replace('"__HUGE__"', literal);
      cases.push({
        label: `${slot.method} ${slot.path.join('.')} = ${literal}`,
        payload: Buffer.from(`{"jsonrpc":"2.0","id":"${caseId}","method":"${slot.method}","params":${params}}`),
        expect: { kind: 'error', codes: [STANDARD_CODES.invalidParams], ids: [caseId] },
      });
    }
  }
  for (const literal of ['1e308', '-1e308', '18446744073709551616']) {
    cases.push({
      label: `id ${literal}`,
      payload: Buffer.from(`{"jsonrpc":"2.0","id":${literal},"method":"rkllm_get_constants"}`),
      expect: { kind: 'result', id: JSON.parse(literal) },
    });
  }

  // Invalid UTF-8: in the structure (not JSON), in a method name, inside a prompt string (decoded
  // with U+FFFD replacement, so the request is valid and echoes it).
  for (let i = 0; i < 10; i++) {
    const structureId = id();
    cases.push({
      label: `invalid UTF-8 between members #${i}`,
      payload: Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":"${structureId}",`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"method":"poll"}')]),
      expect: badUtf8Outcome(parseError),
    });
    const methodId = id();
    cases.push({
      label: `invalid UTF-8 in a method name #${i}`,
      payload: Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":"${methodId}","method":"rkllm_`), Buffer.from([0xc0, 0xaf]), Buffer.from('run"}')]),
      expect: badUtf8Outcome({ kind: 'error', codes: [STANDARD_CODES.methodNotFound], ids: [methodId] }),
    });
    const promptId = id();
    cases.push({
      label: `invalid UTF-8 in a prompt #${i}`,
      payload: Buffer.concat([
        Buffer.from(`{"jsonrpc":"2.0","id":"${promptId}","method":"rkllm_run","params":{"handle":"default","rkllm_input":{"input_type":0,"prompt_input":"echo: bad `),
        Buffer.from([0xff]),
        Buffer.from('"}}}'),
      ]),
      expect: badUtf8Outcome({ kind: 'result', id: promptId, text: 'bad \ufffd' }),
    });
  }

  // Wrong shapes that are valid JSON.
  const shapeId = () => id();
  for (let i = 0; i < 3; i++) {
    const unknownMethod = shapeId();
    const arrayParams = shapeId();
    const stringParams = shapeId();
    cases.push({ label: 'empty object', payload: json({}), expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest], ids: [null] } });
    cases.push({ label: 'empty batch', payload: json([]), expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest], ids: [null] } });
    cases.push({ label: 'null', payload: json(null), expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest], ids: [null] } });
    cases.push({ label: 'jsonrpc 1.0', payload: json({ jsonrpc: '1.0', id: 5, method: 'poll' }), expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest], ids: [null, 5] } });
    cases.push({ label: 'numeric method', payload: json({ jsonrpc: '2.0', id: 6, method: 42 }), expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest], ids: [null, 6] } });
    cases.push({ label: 'unknown method', payload: json({ jsonrpc: '2.0', id: unknownMethod, method: 'rkllm_nope' }), expect: { kind: 'error', codes: [STANDARD_CODES.methodNotFound], ids: [unknownMethod] } });
    cases.push({ label: 'array params', payload: json({ jsonrpc: '2.0', id: arrayParams, method: 'rkllm_get_constants', params: [1] }), expect: { kind: 'error', codes: [STANDARD_CODES.invalidParams], ids: [arrayParams] } });
    cases.push({ label: 'string params', payload: json({ jsonrpc: '2.0', id: stringParams, method: 'rkllm_get_constants', params: 'x' }), expect: { kind: 'error', codes: [STANDARD_CODES.invalidRequest, STANDARD_CODES.invalidParams], ids: [null, stringParams] } });
  }

  // Oversize: a line/datagram/body/frame beyond --max-message-bytes.
  for (let i = 0; i < 4; i++) {
    const size = options.maxMessageBytes + 1 + int(options.maxMessageBytes);
    // UDP cannot carry more than 65,507 bytes; stay below that.
    const bytes = transport === 'udp' ? Math.min(size, 65_000) : size;
    const payload = Buffer.from(`{"jsonrpc":"2.0","id":"big","method":"rkllm_run","params":{"prompt_input":"${'x'.repeat(bytes)}"}}`);
    const expectation: Expectation = isWs ? { kind: 'close', closeCode: 1009 } : { kind: 'error', codes: [MESSAGE_TOO_LARGE], ids: [null] };
    cases.push({ label: `oversize ${payload.length} bytes #${i}`, payload, expect: expectation, oversize: true });
  }

  // Shuffle (seeded) so that every kind of message follows every other.
  for (let i = cases.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [cases[i], cases[j]] = [cases[j], cases[i]];
  }
  return cases;
}
