// A run's result as it goes on the wire: typed arrays become JSON arrays with their sizes.

import type { Perf } from '../native/binding';
import type { RunResult } from '../runtime/run';

export interface WireFloatBlock {
  data: number[];
  num_tokens: number;
}

export interface WireRunResult {
  text: string;
  token_count: number;
  state: number;
  perf: Perf;
  logits?: WireFloatBlock & { vocab_size: number };
  last_hidden_layer?: WireFloatBlock & { embd_size: number };
}

export function toWireResult(result: RunResult): WireRunResult {
  const wire: WireRunResult = { text: result.text, token_count: result.token_count, state: result.state, perf: result.perf };
  if (result.logits) {
    const { data, vocab_size, num_tokens } = result.logits;
    wire.logits = { data: Array.from(data), vocab_size, num_tokens };
  }
  if (result.last_hidden_layer) {
    const { data, embd_size, num_tokens } = result.last_hidden_layer;
    wire.last_hidden_layer = { data: Array.from(data), embd_size, num_tokens };
  }
  return wire;
}
