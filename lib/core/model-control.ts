// Who may make the model-wide calls: rkllm_abort, rkllm_destroy, and the calls that change a
// model's state (LoRA, prompt cache, KV cache, chat template, function tools, cross-attention).
// Each of them reaches every client of the model, not only the caller. With the policy 'any' every
// client may make them on every model (one user on one machine). With 'owner':
//   - a model a client loaded with rkllm_init is that connection's while it stays open: only it
//     makes model-wide calls on it (once it closes, the model is shared);
//   - on any model, a call is refused while it would touch a request of another client: for
//     rkllm_abort the request running, for the others any request queued or running;
//   - the operator's model (--model) is never destroyed by a client.
// A "client" is a connection (its session key). Requests of nobody (poll-only streams, the
// OpenAI API) are another client's to everyone.

import { RkllmError } from '../errors';
import type { Job } from './job';
import type { LoadedModel } from './models';

export type ModelControlPolicy = 'any' | 'owner';

/** What a model-wide call other than rkllm_abort does: unload the model, or change its state. */
export type ModelAction = 'destroy' | 'state';

type RefusalReason = 'loaded_by_another_client' | 'startup_model' | 'requests_of_other_clients' | 'run_of_another_client';

function refused(loaded: LoadedModel, reason: RefusalReason, detail: string): RkllmError {
  return new RkllmError(`${detail} (--model-control owner)`, 'MODEL_CONTROL_REFUSED', { facts: { handle: loaded.handle, reason } });
}

export class ModelControl {
  readonly policy: ModelControlPolicy;
  readonly #isClosed: (client: object) => boolean;
  /** Models loaded with rkllm_init, by the connection that loaded them (undefined once it closed). */
  readonly #loaders = new WeakMap<LoadedModel, { client: object | undefined }>();
  /** Each model's requests still queued or running, with the client that sent each. */
  readonly #requests = new WeakMap<LoadedModel, Map<Job, object | undefined>>();

  constructor(policy: ModelControlPolicy, isClosed: (client: object) => boolean) {
    this.policy = policy;
    this.#isClosed = isClosed;
  }

  /** rkllm_init by this client loaded the model. */
  loadedBy(loaded: LoadedModel, client: object): void {
    this.#loaders.set(loaded, { client });
  }

  /** A request accepted on the model, sent by `client` (undefined: it belongs to nobody). */
  noteRequest(loaded: LoadedModel, job: Job, client: object | undefined): void {
    if (this.policy === 'any' || job.settled) return;
    let requests = this.#requests.get(loaded);
    if (!requests) this.#requests.set(loaded, (requests = new Map()));
    requests.set(job, client);
    const owned = requests;
    void job.done.then(() => owned.delete(job));
  }

  /** Throws MODEL_CONTROL_REFUSED when `client` may not unload the model or change its state now. */
  check(loaded: LoadedModel, client: object, action: ModelAction): void {
    if (this.policy === 'any') return;
    this.#checkLoader(loaded, client);
    if (action === 'destroy' && !this.#loaders.has(loaded)) {
      throw refused(loaded, 'startup_model', `the model '${loaded.handle}' is the operator's (loaded at start-up); clients may not destroy it`);
    }
    let others = 0;
    for (const [job, sender] of this.#requests.get(loaded) ?? []) if (sender !== client && !job.settled) others++;
    if (others > 0) {
      throw refused(
        loaded,
        'requests_of_other_clients',
        `${others} request${others === 1 ? '' : 's'} of other clients ${others === 1 ? 'is' : 'are'} queued or running on '${loaded.handle}'; try again once ${others === 1 ? 'it has' : 'they have'} ended`,
      );
    }
  }

  /**
   * rkllm_abort under 'owner': the caller's own request running on the model, or undefined when
   * nothing runs there; throws MODEL_CONTROL_REFUSED when another client's request is running.
   */
  abortTarget(loaded: LoadedModel, client: object): Job | undefined {
    this.#checkLoader(loaded, client);
    const running = loaded.scheduler.runningJob;
    if (!running || running.settled) return undefined;
    if (this.#requests.get(loaded)?.get(running) !== client) {
      throw refused(loaded, 'run_of_another_client', `the run going on '${loaded.handle}' is another client's; cancel your own requests with cancel instead`);
    }
    return running;
  }

  #checkLoader(loaded: LoadedModel, client: object): void {
    const loader = this.#loaders.get(loaded);
    if (!loader?.client || loader.client === client) return;
    if (this.#isClosed(loader.client)) {
      // Its connection is gone: the model is shared from now on.
      loader.client = undefined;
      return;
    }
    throw refused(loaded, 'loaded_by_another_client', `the model '${loaded.handle}' was loaded by another connection, which is still open; only it may make model-wide calls on it`);
  }
}
