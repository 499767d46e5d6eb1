// An HTTP front end's JSON: the request body read into one object checked against the route's
// schema, and a JSON reply written whole. What is wrong with a body is said as a problem each
// front end turns into its own error (OpenAI's and Ollama's differ in shape and wording).

import type { OutgoingHttpHeaders } from 'http';
import type { TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { MAX_NESTING_DEPTH, pathTooDeep } from './depth';

export type JsonBodyProblem =
  | { kind: 'invalid_json' }
  | { kind: 'not_an_object' }
  /** Parts of a body are serialised again (tools): a depth JSON.stringify cannot take is the client's mistake. */
  | { kind: 'too_deep'; param: string; limit: number }
  /** The first member the schema refuses, as a dotted path (null: the body itself). */
  | { kind: 'invalid_value'; param: string | null; message: string };

/** The body as the route's object, or what is wrong with it. `empty`: what an empty body stands for (undefined: invalid JSON). */
export function readJsonBody<T>(body: string, check: TypeCheck<TSchema>, empty?: string): { value: T } | { problem: JsonBodyProblem } {
  let value: unknown;
  try {
    value = JSON.parse(body === '' && empty !== undefined ? empty : body);
  } catch {
    return { problem: { kind: 'invalid_json' } };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: { kind: 'not_an_object' } };
  const tooDeep = pathTooDeep(value);
  if (tooDeep !== undefined) return { problem: { kind: 'too_deep', param: tooDeep.join('.'), limit: MAX_NESTING_DEPTH } };
  const first = check.Errors(value).First();
  if (first) return { problem: { kind: 'invalid_value', param: first.path.slice(1).replace(/\//g, '.') || null, message: first.message } };
  return { value: value as T };
}

/** What writeJsonReply needs of a response (node's http.ServerResponse has it). */
export interface JsonReplyTarget {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  end(text: string): unknown;
}

/** One JSON reply with its length (and `headers` besides); nothing when the client is gone or a reply has begun. */
export function writeJsonReply(
  response: JsonReplyTarget,
  status: number,
  body: unknown,
  contentType: string,
  headers: OutgoingHttpHeaders = {},
): void {
  if (response.headersSent || response.destroyed) return;
  const text = JSON.stringify(body);
  response.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
