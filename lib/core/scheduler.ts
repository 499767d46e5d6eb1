// One model's inferences: one on the NPU at a time, the rest in a bounded FIFO queue. Requests
// can end early (cancel, closed connection, timeout, destroy, shutdown) whether queued or
// running; a running one is answered at once and its native run is stopped, and the next run
// starts only once the native one has really ended (the NPU is still busy until then).

import { RkllmError } from '../errors';
import { Job, endedError, toDomainError, type EndReason, type JobOutcome, type JobSpec } from './job';
import type { ModelPort, ModelRun } from './model-port';
import { toWireResult } from './run-result';

export interface SchedulerLimits {
  /** Requests waiting beyond the running one. */
  maxQueue: number;
  /** 0 = no limit. */
  requestTimeoutMs: number;
}

export class Scheduler {
  readonly #model: ModelPort;
  readonly #limits: SchedulerLimits;
  readonly #queue: Job[] = [];
  /** The job whose native run occupies the model (it may already be answered). */
  #busy: Job | undefined;
  #closedWith: EndReason | undefined;

  constructor(model: ModelPort, limits: SchedulerLimits) {
    this.#model = model;
    this.#limits = limits;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** 1 while a native run occupies the model. */
  get running(): number {
    return this.#busy ? 1 : 0;
  }

  get runningJob(): Job | undefined {
    return this.#busy;
  }

  /** Throws (QUEUE_FULL, MODEL_DESTROYED, SHUTTING_DOWN) without side effects when it cannot take one. */
  checkCapacity(): void {
    if (this.#closedWith) throw endedError(this.#closedWith);
    if (this.#busy && this.#queue.length >= this.#limits.maxQueue) {
      throw new RkllmError(`${this.#queue.length} requests are already waiting on this model (limit ${this.#limits.maxQueue})`, 'QUEUE_FULL', {
        facts: { limit: this.#limits.maxQueue },
      });
    }
  }

  /** Accepts a request (after checkCapacity) and starts it if the model is free. */
  submit(spec: JobSpec): Job {
    this.checkCapacity();
    const job = new Job(spec);
    job.cancelHook = (target, reason) => this.#cancel(target, reason);
    if (this.#limits.requestTimeoutMs > 0) {
      const timer = setTimeout(() => job.cancel('timeout'), this.#limits.requestTimeoutMs);
      timer.unref();
      void job.done.then(() => clearTimeout(timer));
    }
    if (this.#busy) this.#queue.push(job);
    else this.#start(job);
    return job;
  }

  /** Marks the running request so that the abort that follows reports it as aborted. */
  noteAbort(): void {
    if (this.#busy && !this.#busy.settled) this.#busy.pendingReason = 'abort';
  }

  /** Ends every queued and running request, and refuses new ones from now on. */
  close(reason: EndReason): void {
    this.#closedWith = reason;
    this.endAll(reason);
  }

  endAll(reason: EndReason): void {
    for (const job of this.#queue.splice(0)) job.settle({ kind: 'ended', reason, error: endedError(reason) });
    this.#busy?.cancel(reason);
  }

  /** Resolves once no native run occupies the model (or after timeoutMs). */
  async idle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#busy || this.#queue.length > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  #cancel(job: Job, reason: EndReason): boolean {
    const index = this.#queue.indexOf(job);
    if (index !== -1) this.#queue.splice(index, 1);
    const settled = job.settle({ kind: 'ended', reason, error: endedError(reason) });
    // The native run is stopped too; its late end is ignored (the job is already settled).
    if (job === this.#busy) job.run?.cancel();
    return settled;
  }

  #start(job: Job): void {
    this.#busy = job;
    job.state = 'running';
    const done = job.spec.prepare ? this.#prepareThenDrive(job) : this.#drive(job, this.#runOf(job, job.spec));
    void done.then(() => {
      this.#busy = undefined;
      this.#startNext();
    });
  }

  #runOf(job: Job, { input, infer }: Pick<JobSpec, 'input' | 'infer'>): ModelRun {
    const run = this.#model.run(input, infer);
    job.run = run;
    job.runStartedAt = performance.now();
    const onChunks = job.spec.onChunks;
    if (job.spec.streaming && onChunks) {
      run.onChunks((chunks) => {
        job.firstTokenAt ??= performance.now();
        job.firstTokenUs ??= chunks[0]?.time_us;
        job.lastTokenUs = chunks[chunks.length - 1]?.time_us ?? job.lastTokenUs;
        // Answered early (cancelled, finished early): its run is being stopped; nothing more goes out.
        if (!job.settled) onChunks(chunks);
      });
    }
    return run;
  }

  /** The model stays busy through prepare, so nothing else runs between it and its run. */
  async #prepareThenDrive(job: Job): Promise<void> {
    let prepared: Pick<JobSpec, 'input' | 'infer'> = job.spec;
    try {
      prepared = (await job.spec.prepare?.()) ?? job.spec;
    } catch (error) {
      job.settle({ kind: 'failed', error: toDomainError(error) });
      return;
    }
    if (job.settled) return;
    await this.#drive(job, this.#runOf(job, prepared));
  }

  #startNext(): void {
    const next = this.#queue.shift();
    if (next) this.#start(next);
  }

  /** Follows the run to its end; never rejects. */
  async #drive(job: Job, run: ModelRun): Promise<void> {
    let outcome: JobOutcome;
    try {
      outcome = { kind: 'finished', result: toWireResult(await run) };
    } catch (error) {
      outcome = this.#failure(job, error);
    }
    job.settle(outcome);
  }

  #failure(job: Job, error: unknown): JobOutcome {
    if (error instanceof RkllmError && error.code === 'RUN_ABORTED') {
      // Nobody here asked for it: rkllm_abort from this server, or the model being destroyed.
      const reason: EndReason = job.pendingReason ?? (this.#model.destroyed ? 'model_destroyed' : 'abort');
      return { kind: 'ended', reason, error: endedError(reason) };
    }
    return { kind: 'failed', error: toDomainError(error) };
  }
}
