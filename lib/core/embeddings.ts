// Embeddings from the runtime's last hidden layer (rkllm_run in RKLLM_INFER_GET_LAST_HIDDEN_LAYER
// mode): one run per input, its text sent as written (no chat template, lib/core/conversation.ts
// planRaw), on a clean cache it leaves clean. The runtime gives one row of embd_size floats per
// prompt token (last_hidden_layer.num_tokens rows); the embedding is their mean, scaled to
// length 1, as Ollama's /api/embed returns unit vectors (and OpenAI's embeddings are). Shared by
// the Ollama and OpenAI front ends.

import { planRaw } from './conversation';
import type { ServerCore } from './core';
import type { LoadedModel } from './models';
import type { WireRunResult } from './run-result';
import { RkllmError } from '../errors';
import { RKLLMInferMode } from '../runtime/constants';

export interface Embedding {
  vector: number[];
  /** perf.prefill_tokens of its run. */
  promptTokens: number;
}

/** Mean of the rows, then L2-normalised; a zero vector stays zero. */
export function meanPool(data: readonly number[], embdSize: number, numTokens: number): number[] {
  const pooled = new Array<number>(embdSize).fill(0);
  const rows = Math.max(1, numTokens);
  for (let row = 0; row < numTokens; row += 1) {
    for (let column = 0; column < embdSize; column += 1) pooled[column] += data[row * embdSize + column];
  }
  let norm = 0;
  for (let column = 0; column < embdSize; column += 1) {
    pooled[column] /= rows;
    norm += pooled[column] * pooled[column];
  }
  norm = Math.sqrt(norm);
  return norm === 0 ? pooled : pooled.map((value) => value / norm);
}

function vectorOf(result: WireRunResult): number[] {
  const hidden = result.last_hidden_layer;
  if (!hidden || hidden.num_tokens < 1) throw new RkllmError('the runtime returned no hidden layer for the input', 'RUN_FAILED');
  return meanPool(hidden.data, hidden.embd_size, hidden.num_tokens);
}

/** One input's embedding; queued on the model like any run (QUEUE_FULL, SHUTTING_DOWN thrown at once). */
export function embed(core: ServerCore, loaded: LoadedModel, text: string): { done: Promise<Embedding>; cancel(): void } {
  const { job, result } = core.submitRun(loaded, {
    requestId: null,
    input: { input_type: 0, prompt_input: '' },
    infer: {},
    session: undefined,
    stream: 'none',
    prepare: planRaw(loaded, text, { mode: RKLLMInferMode.RKLLM_INFER_GET_LAST_HIDDEN_LAYER }),
  });
  const done = result.then((wire) => ({ vector: vectorOf(wire), promptTokens: wire.perf.prefill_tokens }));
  return { done, cancel: () => void job.cancel('connection_closed') };
}

/**
 * The inputs' embeddings, one run after another (each queued on the model like any run), in
 * order. cancel() stops the run in progress and settles `done` with its error; a refusal at
 * submission (QUEUE_FULL, SHUTTING_DOWN) rejects `done` too.
 */
export function embedInputs(core: ServerCore, loaded: LoadedModel, inputs: readonly string[]): { done: Promise<Embedding[]>; cancel(): void } {
  let current: { cancel(): void } | undefined;
  let cancelled = false;
  const done = (async () => {
    const embeddings: Embedding[] = [];
    for (const input of inputs) {
      if (cancelled) throw new RkllmError('the request went away', 'REQUEST_CANCELLED');
      const run = embed(core, loaded, input);
      current = run;
      embeddings.push(await run.done);
    }
    return embeddings;
  })();
  return {
    done,
    cancel: () => {
      cancelled = true;
      current?.cancel();
    },
  };
}
