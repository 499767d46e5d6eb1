// One accepted inference request, from the moment the scheduler takes it until it is answered.
// It settles exactly once: finished, failed, or ended early (cancelled, timed out, aborted,
// model destroyed, shutdown). Whoever settles first wins; later news of the native run is ignored.

import type { RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { Run, RunChunk } from '../runtime/run';
import { serverError, type RpcError } from '../rpc/errors';
import type { RequestId } from '../rpc/envelope';
import type { WireRunResult } from './run-result';

/** Why a request ended before its run finished. */
export type EndReason = 'cancel' | 'connection_closed' | 'expired' | 'timeout' | 'abort' | 'model_destroyed' | 'shutdown';

export type JobOutcome =
  | { kind: 'finished'; result: WireRunResult }
  | { kind: 'failed'; error: RpcError }
  | { kind: 'ended'; reason: EndReason; error: RpcError };

export interface JobSpec {
  requestId: RequestId;
  input: RKLLMInput;
  infer: PartialInferParam;
  /** True when someone wants the chunks (a stream); otherwise only the result is kept. */
  streaming: boolean;
  onChunk?(chunk: RunChunk): void;
  onSettled?(outcome: JobOutcome): void;
  /**
   * Called when the job reaches the model, before its run starts, while no other run can start
   * on it: the place for model state a run depends on (chat template, tools, KV cache), which
   * must not change under a run queued earlier. It may replace input and infer. A rejection
   * fails the job; a job cancelled meanwhile never starts its run.
   */
  prepare?(): Promise<{ input: RKLLMInput; infer: PartialInferParam } | void>;
}

export function endedError(reason: EndReason): RpcError {
  switch (reason) {
    case 'timeout':
      return serverError('REQUEST_TIMEOUT', 'the request was still queued or running when the server timeout passed');
    case 'abort':
      return serverError('REQUEST_ABORTED', 'rkllm_abort stopped the run on this handle', { reason });
    case 'model_destroyed':
      return serverError('MODEL_DESTROYED', 'the model was destroyed while this request was queued or running');
    case 'shutdown':
      return serverError('SHUTTING_DOWN', 'the server cancelled this request while shutting down');
    case 'connection_closed':
      return serverError('REQUEST_CANCELLED', 'the connection that owned the request closed', { reason });
    case 'expired':
      return serverError('REQUEST_CANCELLED', 'nobody polled the stream before it expired', { reason });
    default:
      return serverError('REQUEST_CANCELLED', 'cancelled by a cancel request', { reason });
  }
}

let nextJobNumber = 1;

export class Job {
  readonly number = nextJobNumber++;
  readonly spec: JobSpec;
  state: 'queued' | 'running' | 'done' = 'queued';
  outcome: JobOutcome | undefined;
  run: Run | undefined;
  readonly done: Promise<JobOutcome>;
  #resolve!: (outcome: JobOutcome) => void;
  /** Set by the scheduler that holds the job. */
  cancelHook: ((job: Job, reason: EndReason) => boolean) | undefined;
  /** Noted before rkllm_abort so the run's end is reported as aborted, not as an error. */
  pendingReason: EndReason | undefined;

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

  /** First call wins; returns whether this call settled the job. */
  settle(outcome: JobOutcome): boolean {
    if (this.outcome !== undefined) return false;
    this.outcome = outcome;
    this.state = 'done';
    this.spec.onSettled?.(outcome);
    this.#resolve(outcome);
    return true;
  }
}
