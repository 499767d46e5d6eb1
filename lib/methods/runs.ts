// Accepting an inference request on the JSON-RPC wire: the input and infer params made ready
// for the runtime (flat shorthand, prompt cache path confined), the run submitted to the core,
// and its stream pushed to the connection that asked, or kept for a client that polls.

import { RkllmError, invalidArgument } from '../errors';
import type { SubmittedRun } from '../core/core';
import type { Job } from '../core/job';
import type { ModelRun } from '../core/model-port';
import type { LoadedModel } from '../core/models';
import type { HeldFile, PathPolicy } from '../core/paths';
import type { WireRunResult } from '../core/run-result';
import type { RKLLMInferParam, RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { Stream } from '../core/stream';
import type { ErrorObject } from '../rpc/errors';
import type { MethodContext } from './context';
import { toRpcError } from './error-table';

export type RunMode = 'plain' | 'stream' | 'async';

/** The member of RKLLMInput each input_type needs. */
const INPUT_MEMBER_BY_TYPE = ['prompt_input', 'token_input', 'embed_input', 'multimodal_input'] as const;

const FLAT_INPUT_KEYS = ['input_type', 'role', 'enable_thinking', 'prompt_input', 'token_input', 'embed_input', 'multimodal_input'] as const;

/** The runtime names input fields under "rkllm_input."; a client that wrote them flat wrote them bare. */
const NESTED_INPUT_PREFIX = 'rkllm_input.';

/** Runs whose client gave the input flat, so their argument errors are named the same way. */
const flatInputJobs = new WeakSet<Job>();

export interface RunParams {
  rkllm_input?: RKLLMInput;
  input_type?: number;
  rkllm_infer_params?: PartialInferParam;
}

interface ReadInput {
  input: RKLLMInput;
  flat: boolean;
}

/** rkllm_input, or the same members given flat at the top of params. */
export function readInput(params: RunParams & Record<string, unknown>): ReadInput {
  let input: RKLLMInput;
  let flat: boolean;
  if (params.rkllm_input !== undefined) {
    input = params.rkllm_input;
    flat = false;
  } else if (params.input_type !== undefined) {
    const members: Record<string, unknown> = {};
    for (const key of FLAT_INPUT_KEYS) if (params[key] !== undefined) members[key] = params[key];
    input = members as unknown as RKLLMInput;
    flat = true;
  } else {
    throw invalidArgument('rkllm_input', 'required (or give input_type and its input member at the top of params)');
  }
  const member = INPUT_MEMBER_BY_TYPE[input.input_type];
  if (member === undefined || input[member] === undefined) {
    throw invalidArgument(`${flat ? '' : NESTED_INPUT_PREFIX}${member ?? 'input_type'}`, `required when input_type is ${input.input_type}`);
  }
  return { input, flat };
}

const SAVE_CACHE_FIELD = 'rkllm_infer_params.prompt_cache_params.prompt_cache_path';

/** rkllm_infer_params with a prompt cache path to save to confined to the cache directory. */
export function readInfer(context: MethodContext, infer: PartialInferParam | undefined): PartialInferParam | undefined {
  const cache = infer?.prompt_cache_params;
  if (!infer || !cache || !cache.save_prompt_cache) return infer;
  const path = context.core.paths.cacheFileToWrite(SAVE_CACHE_FIELD, cache.prompt_cache_path);
  const confined: RKLLMInferParam['prompt_cache_params'] = { ...cache, prompt_cache_path: path };
  return { ...infer, prompt_cache_params: confined };
}

/**
 * The prompt cache a run saves, opened when the run reaches the model (a symlink put in its place
 * since the check is not followed) and handed to the runtime as that open file; the descriptor is
 * held until the native run has ended, so the runtime can never write through a closed (or
 * reused) descriptor number.
 */
class SavedCache {
  #file: HeldFile | undefined;
  #settled = false;

  constructor(
    private readonly paths: PathPolicy,
    private readonly checkedPath: string,
  ) {}

  /** The job's prepare step: the file opened, the infer params pointing at it. */
  open(input: RKLLMInput, infer: PartialInferParam): { input: RKLLMInput; infer: PartialInferParam } {
    const file = this.paths.openCacheFileToWrite(SAVE_CACHE_FIELD, this.checkedPath);
    // Cancelled while being prepared: the run never starts.
    if (this.#settled) file.release();
    else this.#file = file;
    const cache: RKLLMInferParam['prompt_cache_params'] = { ...infer.prompt_cache_params!, prompt_cache_path: file.path };
    return { input, infer: { ...infer, prompt_cache_params: cache } };
  }

  /** The job settled; `run` is its native run, if it started. */
  settled(run: ModelRun | undefined): void {
    this.#settled = true;
    const release = (): void => this.#file?.release();
    if (run === undefined) release();
    else void Promise.resolve(run).then(release, release);
  }
}

function savedCacheOf(context: MethodContext, infer: PartialInferParam | undefined): SavedCache | undefined {
  const cache = infer?.prompt_cache_params;
  if (!cache || !cache.save_prompt_cache || cache.prompt_cache_path === undefined) return undefined;
  return new SavedCache(context.core.paths, cache.prompt_cache_path);
}

/** The error as this run's client wrote the field (the flat shorthand has no "rkllm_input."). */
export function asClientWrote(error: unknown, job: Job | undefined): unknown {
  if (!(error instanceof RkllmError) || job === undefined || !flatInputJobs.has(job)) return error;
  const field = error.field;
  return field?.startsWith(NESTED_INPUT_PREFIX) ? error.withField(field.slice(NESTED_INPUT_PREFIX.length)) : error;
}

/** A stream's error as its client sees it on the wire (a last notification, a poll answer). */
export function streamErrorJson(stream: Stream, error: unknown): ErrorObject {
  return toRpcError(asClientWrote(error, stream.job)).toJSON();
}

/**
 * Queues the run and says what to reply: the final result (a promise), or at once { stream_id }
 * for rkllm_run_async and for streaming runs of a connection that cannot be pushed to.
 */
export function startRun(context: MethodContext, loaded: LoadedModel, read: ReadInput, infer: PartialInferParam | undefined, mode: RunMode): unknown {
  const { core, connection } = context;
  loaded.scheduler.checkCapacity();
  const pushable = connection.canPush;
  const stream = mode === 'plain' ? 'none' : pushable ? 'push' : 'poll';
  const savedCache = savedCacheOf(context, infer);
  let job: Job | undefined;
  const submitted: SubmittedRun = core.submitRun(loaded, {
    requestId: context.requestId ?? null,
    input: read.input,
    infer: infer ?? {},
    // A plain run and a pushed stream belong to the connection; a poll-only stream to nobody.
    session: stream === 'poll' ? undefined : context.session(),
    stream,
    prepare: savedCache && (() => Promise.resolve(savedCache.open(read.input, infer ?? {}))),
    onSettled: savedCache && (() => savedCache.settled(job?.run)),
  });
  job = submitted.job;
  if (read.flat) flatInputJobs.add(submitted.job);
  if (submitted.stream && connection.holdUntilStreamsEnd) context.holdUntil(submitted.stream.ended);
  if (mode === 'async' || (mode === 'stream' && !pushable)) return { stream_id: submitted.stream?.id };
  return submitted.result.catch((error: unknown): WireRunResult => {
    throw asClientWrote(error, submitted.job);
  });
}
