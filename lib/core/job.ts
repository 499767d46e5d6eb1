// One accepted inference request, from the moment the scheduler takes it until it is answered.
// It settles exactly once: finished, failed, or ended early (cancelled, timed out, aborted,
// model destroyed, shutdown). Whoever settles first wins; later news of the native run is ignored.

import { RkllmError } from '../errors';
import type { RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { RunChunk } from '../runtime/run';
import type { ModelRun } from './model-port';
import type { WireRunResult } from './run-result';

/** The id a client gave its request (JSON-RPC's id), echoed on what the request produces. */
export type RequestId = string | number | null;

/** Why a request ended before its run finished. */
export type EndReason = 'cancel' | 'connection_closed' | 'expired' | 'timeout' | 'abort' | 'model_destroyed' | 'shutdown';

export type JobOutcome =
  | { kind: 'finished'; result: WireRunResult }
  | { kind: 'failed'; error: RkllmError }
  | { kind: 'ended'; reason: EndReason; error: RkllmError };

export interface JobSpec {
  requestId: RequestId;
  input: RKLLMInput;
  infer: PartialInferParam;
  /** True when someone wants the chunks (a stream); otherwise only the result is kept. */
  streaming: boolean;
  /** The chunks of a streaming job, in the runtime's batches; never called after the job settled. */
  onChunks?(chunks: readonly RunChunk[]): void;
  onSettled?(outcome: JobOutcome): void;
  /**
   * Called when the job reaches the model, before its run starts, while no other run can start
   * on it: the place for model state a run depends on (chat template, tools, KV cache), which
   * must not change under a run queued earlier. It may replace input and infer. A rejection
   * fails the job; a job cancelled meanwhile never starts its run.
   */
  prepare?(): Promise<{ input: RKLLMInput; infer: PartialInferParam } | void>;
}

export function endedError(reason: EndReason): RkllmError {
  switch (reason) {
    case 'timeout':
      return new RkllmError('the request was still queued or running when the server timeout passed', 'REQUEST_TIMEOUT');
    case 'abort':
      return new RkllmError('rkllm_abort stopped the run on this handle', 'REQUEST_ABORTED', { facts: { reason } });
    case 'model_destroyed':
      return new RkllmError('the model was destroyed while this request was queued or running', 'MODEL_DESTROYED');
    case 'shutdown':
      return new RkllmError('the server cancelled this request while shutting down', 'SHUTTING_DOWN');
    case 'connection_closed':
      return new RkllmError('the connection that owned the request closed', 'REQUEST_CANCELLED', { facts: { reason } });
    case 'expired':
      return new RkllmError('nobody polled the stream before it expired', 'REQUEST_CANCELLED', { facts: { reason } });
    default:
      return new RkllmError('cancelled by a cancel request', 'REQUEST_CANCELLED', { facts: { reason } });
  }
}

/** Anything thrown under a job as the domain error (a foreign error is the server's own fault). */
export function toDomainError(error: unknown): RkllmError {
  if (error instanceof RkllmError) return error;
  const wrapped = new RkllmError(error instanceof Error ? error.message : String(error), 'INTERNAL');
  if (error instanceof Error && error.stack) wrapped.stack = error.stack;
  return wrapped;
}

let nextJobNumber = 1;

export class Job {
  readonly number = nextJobNumber++;
  readonly spec: JobSpec;
  state: 'queued' | 'running' | 'done' = 'queued';
  outcome: JobOutcome | undefined;
  run: ModelRun | undefined;
  readonly done: Promise<JobOutcome>;
  #resolve!: (outcome: JobOutcome) => void;
  /** Set by the scheduler that holds the job. */
  cancelHook: ((job: Job, reason: EndReason) => boolean) | undefined;
  /** Noted before rkllm_abort so the run's end is reported as aborted, not as an error. */
  pendingReason: EndReason | undefined;
  /** For request records: performance.now() when its native run started and when its first token came (streaming jobs). */
  runStartedAt: number | undefined;
  firstTokenAt: number | undefined;
  /** The runtime's own times (RunChunk.time_us, CLOCK_MONOTONIC) of its first and latest tokens (streaming jobs). */
  firstTokenUs: number | undefined;
  lastTokenUs: number | undefined;

  constructor(spec: JobSpec) {
    this.spec = spec;
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get settled(): boolean {
    return this.outcome !== undefined;
  }

  /** Stops the request, queued or running. False when it has already been answered. */
  cancel(reason: EndReason): boolean {
    if (this.outcome !== undefined) return false;
    return this.cancelHook ? this.cancelHook(this, reason) : this.settle({ kind: 'ended', reason, error: endedError(reason) });
  }

  /**
   * Answers the request now with what it has (a stop sequence matched, a token budget used up)
   * and stops its native run; the model is free again once that run has really ended.
   */
  finishEarly(result: WireRunResult): boolean {
    return this.settle({ kind: 'finished', result });
  }

  /**
   * First call wins; returns whether this call settled the job. A job answered while its run goes
   * on stops that run at once, so the model is free for the next job as soon as the runtime lets
   * go (not a decode step later); a run that has ended ignores the cancel.
   */
  settle(outcome: JobOutcome): boolean {
    if (this.outcome !== undefined) return false;
    this.outcome = outcome;
    this.state = 'done';
    this.run?.cancel();
    this.spec.onSettled?.(outcome);
    this.#resolve(outcome);
    return true;
  }
}
