// Accepting an inference request: the input and infer params made ready for the runtime (flat
// shorthand, prompt cache path confined), the job queued on its model, and its stream (if any)
// wired to the connection that asked — or to nobody, for a client that polls.

import type { RKLLMInferParam, RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { MethodContext } from '../methods/context';
import { invalidParams } from '../rpc/errors';
import type { ConnectionState } from './connections';
import type { JobOutcome } from './job';
import type { LoadedModel } from './models';
import type { WireRunResult } from './run-result';

export type RunMode = 'plain' | 'stream' | 'async';

/** The member of RKLLMInput each input_type needs. */
const INPUT_MEMBER_BY_TYPE = ['prompt_input', 'token_input', 'embed_input', 'multimodal_input'] as const;

const FLAT_INPUT_KEYS = ['input_type', 'role', 'enable_thinking', 'prompt_input', 'token_input', 'embed_input', 'multimodal_input'] as const;

export interface RunParams {
  rkllm_input?: RKLLMInput;
  input_type?: number;
  rkllm_infer_params?: PartialInferParam;
}

/** rkllm_input, or the same members given flat at the top of params. */
export function readInput(params: RunParams & Record<string, unknown>): RKLLMInput {
  let input: RKLLMInput;
  let prefix: string;
  if (params.rkllm_input !== undefined) {
    input = params.rkllm_input;
    prefix = 'rkllm_input.';
  } else if (params.input_type !== undefined) {
    const flat: Record<string, unknown> = {};
    for (const key of FLAT_INPUT_KEYS) if (params[key] !== undefined) flat[key] = params[key];
    input = flat as unknown as RKLLMInput;
    prefix = '';
  } else {
    throw invalidParams('rkllm_input', 'required (or give input_type and its input member at the top of params)');
  }
  const member = INPUT_MEMBER_BY_TYPE[input.input_type];
  if (member === undefined || input[member] === undefined) {
    throw invalidParams(`${prefix}${member ?? 'input_type'}`, `required when input_type is ${input.input_type}`);
  }
  return input;
}

/** rkllm_infer_params with a prompt cache path to save to confined to the cache directory. */
export function readInfer(context: MethodContext, infer: PartialInferParam | undefined): PartialInferParam | undefined {
  const cache = infer?.prompt_cache_params;
  if (!infer || !cache || !cache.save_prompt_cache) return infer;
  const path = context.core.paths.cacheFileToWrite('rkllm_infer_params.prompt_cache_params.prompt_cache_path', cache.prompt_cache_path);
  const confined: RKLLMInferParam['prompt_cache_params'] = { ...cache, prompt_cache_path: path };
  return { ...infer, prompt_cache_params: confined };
}

function answer(outcome: JobOutcome): WireRunResult {
  if (outcome.kind === 'finished') return outcome.result;
  throw outcome.error;
}

/**
 * Queues the run and says what to reply: the final result (a promise), or at once { stream_id }
 * for rkllm_run_async and for streaming runs of a connection that cannot be pushed to.
 */
export function startRun(context: MethodContext, loaded: LoadedModel, input: RKLLMInput, infer: PartialInferParam | undefined, mode: RunMode): unknown {
  const { core, connection } = context;
  loaded.scheduler.checkCapacity();
  const requestId = context.requestId ?? null;
  const pushable = connection.canPush;
  // A non-streaming run belongs to its connection (its close cancels it); so does a stream the
  // connection is pushed; a poll-only stream belongs to nobody and lives until it expires.
  const owner: ConnectionState | undefined = mode === 'plain' || pushable ? core.connections.stateOf(connection) : undefined;
  const stream = mode === 'plain' ? undefined : core.streams.create(requestId, pushable ? owner : undefined);

  const job = loaded.scheduler.submit({
    requestId,
    input,
    infer: infer ?? {},
    streaming: stream !== undefined,
    onChunk: stream ? (chunk) => stream.addToken(chunk) : undefined,
    onSettled: (outcome) => {
      if (stream) {
        stream.finish(outcome);
        core.streams.finished(stream);
      }
      if (owner) {
        owner.jobs.delete(job);
        core.connections.forgetIfIdle(owner);
      }
    },
  });
  if (owner && !job.settled) owner.jobs.add(job);
  if (stream) {
    stream.job = job;
    if (connection.holdUntilStreamsEnd) context.holdUntil(stream.ended);
  }

  if (mode === 'async' || (mode === 'stream' && !pushable)) return { stream_id: stream?.id };
  return job.done.then(answer);
}
