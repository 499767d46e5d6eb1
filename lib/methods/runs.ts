// Accepting an inference request on the JSON-RPC wire: the input and infer params made ready
// for the runtime (the flat shorthands, prompt cache path confined), the run submitted to the core,
// and its stream pushed to the connection that asked, or kept for a client that polls.

import { RkllmError, invalidArgument } from '../errors';
import type { SubmittedRun } from '../core/core';
import type { Job } from '../core/job';
import type { ModelRun } from '../core/model-port';
import type { LoadedModel } from '../core/models';
import type { HeldFile, PathPolicy } from '../core/paths';
import { modelFileOf } from '../core/prompt-caches';
import type { WireRunResult } from '../core/run-result';
import type { RKLLMInferParam, RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { Stream } from '../core/stream';
import type { ErrorObject } from '../rpc/errors';
import type { MethodContext } from './context';
import { toRpcError } from './error-table';
import { INPUT_MEMBERS, RKLLMInferParams } from './schemas';

export type RunMode = 'plain' | 'stream' | 'async';

/** The member of RKLLMInput each input_type needs. */
const INPUT_MEMBER_BY_TYPE = ['prompt_input', 'token_input', 'embed_input', 'multimodal_input'] as const;

/**
 * The structs whose members may also be given at the top of params, as C-style clients write
 * them (`{"input_type":0,"prompt_input":"hi","mode":2}`): the member names, and the struct's name,
 * which the runtime puts before a field it reports ("rkllm_input.prompt_input").
 */
const FLAT_STRUCTS = [
  { name: 'rkllm_input', members: Object.keys(INPUT_MEMBERS) },
  { name: 'rkllm_infer_params', members: Object.keys(RKLLMInferParams.properties) },
] as const;

/** Runs whose client gave members at the top of params, and which: their errors name them so. */
const flatMembersOfJob = new WeakMap<Job, ReadonlySet<string>>();

/** A run as its request asks for it. */
export interface RunRequest {
  input: RKLLMInput;
  infer: PartialInferParam | undefined;
  /** The members the client gave at the top of params instead of inside their struct. */
  flat: ReadonlySet<string>;
}

/**
 * One struct of the request: its members at the top of params merged into the struct itself.
 * A member given in both places is refused, naming both: either could be the one meant.
 */
function mergeFlat(params: Record<string, unknown>, struct: (typeof FLAT_STRUCTS)[number], flat: Set<string>): Record<string, unknown> | undefined {
  const nested = params[struct.name] as Record<string, unknown> | undefined;
  let merged = nested;
  for (const member of struct.members) {
    const value = params[member];
    if (value === undefined) continue;
    if (nested?.[member] !== undefined) {
      throw invalidArgument(member, `given twice: at the top of params and as ${struct.name}.${member}; give it in one place`);
    }
    merged = { ...merged, [member]: value };
    flat.add(member);
  }
  return merged;
}

/** rkllm_input and rkllm_infer_params, each from its own member or from its members at the top of params. */
export function readRunRequest(params: Record<string, unknown>): RunRequest {
  const flat = new Set<string>();
  const [inputStruct, inferStruct] = FLAT_STRUCTS;
  const input = mergeFlat(params, inputStruct, flat) as RKLLMInput | undefined;
  const infer = mergeFlat(params, inferStruct, flat) as PartialInferParam | undefined;
  if (input?.input_type === undefined) {
    throw invalidArgument('rkllm_input', 'required (or give input_type and its input member at the top of params)');
  }
  const member = INPUT_MEMBER_BY_TYPE[input.input_type];
  if (member === undefined || input[member] === undefined) {
    const named = member ?? 'input_type';
    const field = params[inputStruct.name] === undefined ? named : `${inputStruct.name}.${named}`;
    throw invalidArgument(field, `required when input_type is ${input.input_type}`);
  }
  return { input, infer, flat };
}

/** rkllm_infer_params with a prompt cache path to save to confined to the cache directory. */
function readInfer(context: MethodContext, request: RunRequest): PartialInferParam | undefined {
  const { infer } = request;
  const cache = infer?.prompt_cache_params;
  if (!infer || !cache || !cache.save_prompt_cache) return infer;
  const path = context.core.paths.cacheFileToWrite(saveCacheField(request.flat), cache.prompt_cache_path);
  const confined: RKLLMInferParam['prompt_cache_params'] = { ...cache, prompt_cache_path: path };
  return { ...infer, prompt_cache_params: confined };
}

function saveCacheField(flat: ReadonlySet<string>): string {
  return `${flat.has('prompt_cache_params') ? '' : 'rkllm_infer_params.'}prompt_cache_params.prompt_cache_path`;
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
    private readonly field: string,
  ) {}

  /** The job's prepare step: the file opened, the infer params pointing at it. */
  open(input: RKLLMInput, infer: PartialInferParam): { input: RKLLMInput; infer: PartialInferParam } {
    const file = this.paths.openCacheFileToWrite(this.field, this.checkedPath);
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

function savedCacheOf(context: MethodContext, request: RunRequest, infer: PartialInferParam | undefined): SavedCache | undefined {
  const cache = infer?.prompt_cache_params;
  if (!cache || !cache.save_prompt_cache || cache.prompt_cache_path === undefined) return undefined;
  return new SavedCache(context.core.paths, cache.prompt_cache_path, saveCacheField(request.flat));
}

/** The error as this run's client wrote the field: a member given at the top of params has no struct name before it. */
export function asClientWrote(error: unknown, job: Job | undefined): unknown {
  const flat = job && flatMembersOfJob.get(job);
  if (!(error instanceof RkllmError) || flat === undefined || error.field === undefined) return error;
  const field = error.field;
  for (const struct of FLAT_STRUCTS) {
    if (!field.startsWith(`${struct.name}.`)) continue;
    const inner = field.slice(struct.name.length + 1);
    const member = /^[^.[]*/.exec(inner)![0];
    return flat.has(member) ? error.withField(inner) : error;
  }
  return error;
}

/** A stream's error as its client sees it on the wire (a last notification, a poll answer). */
export function streamErrorJson(stream: Stream, error: unknown): ErrorObject {
  return toRpcError(asClientWrote(error, stream.job)).toJSON();
}

/**
 * Queues the run and says what to reply: the final result (a promise), or at once { stream_id }
 * for rkllm_run_async and for streaming runs of a connection that cannot be pushed to.
 */
export function startRun(context: MethodContext, loaded: LoadedModel, request: RunRequest, mode: RunMode): unknown {
  const { core, connection } = context;
  const infer = readInfer(context, request);
  loaded.scheduler.checkCapacity();
  const pushable = connection.canPush;
  const stream = mode === 'plain' ? 'none' : pushable ? 'push' : 'poll';
  const savedCache = savedCacheOf(context, request, infer);
  const savedPath = infer?.prompt_cache_params?.prompt_cache_path;
  if (savedCache && savedPath !== undefined) core.promptCacheOwners.noteSaved(savedPath, modelFileOf(loaded));
  let job: Job | undefined;
  const submitted: SubmittedRun = core.submitRun(loaded, {
    requestId: context.requestId ?? null,
    input: request.input,
    infer: infer ?? {},
    // A plain run and a pushed stream belong to the connection; a poll-only stream to nobody.
    session: stream === 'poll' ? undefined : context.session(),
    stream,
    prepare: savedCache && (() => Promise.resolve(savedCache.open(request.input, infer ?? {}))),
    onSettled: savedCache && (() => savedCache.settled(job?.run)),
  });
  job = submitted.job;
  context.notes.model = loaded.handle;
  context.notes.run = submitted;
  if (request.flat.size > 0) flatMembersOfJob.set(submitted.job, request.flat);
  if (submitted.stream && connection.holdUntilStreamsEnd) context.holdUntil(submitted.stream.ended);
  if (mode === 'async' || (mode === 'stream' && !pushable)) return { stream_id: submitted.stream?.id };
  return submitted.result.catch((error: unknown): WireRunResult => {
    throw asClientWrote(error, submitted.job);
  });
}
