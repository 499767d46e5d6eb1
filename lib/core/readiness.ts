// Readiness, as GET /health reports it to a probe or a load balancer: whether requests sent now
// would be served. Liveness (the process answers at all) is the transport's own GET /livez.

import type { LoadingModel } from './residency';

/**
 * - loading: the start-up model is still loading (its requests wait for it; a balancer should
 *   send them elsewhere meanwhile);
 * - failed: the host of a catalog model (the start-up model, or one loaded on demand) gave up
 *   (--host-max-failures within --host-failure-window); a model a client loaded with rkllm_init
 *   serves that client only and leaves readiness alone;
 * - no_model: nothing loaded and no model a request could name (an empty catalog);
 * - ok: otherwise. A catalog model not loaded yet is idle, not unready: it loads on demand.
 */
export type ReadinessStatus = 'ok' | 'loading' | 'no_model' | 'failed';

export interface Readiness {
  readonly status: ReadinessStatus;
  /** Every load under way, the start-up model's and on-demand ones. */
  readonly loading: readonly LoadingModel[];
  /** Handles of the catalog models whose host has failed for good. */
  readonly failed: readonly string[];
}

export interface ReadinessFacts {
  readonly startupLoading: boolean;
  readonly loading: readonly LoadingModel[];
  readonly failed: readonly string[];
  readonly loadedModels: number;
  /** Whether the catalog has models a client could name (the emulated runtime's bundled fixtures do not count); asked only when nothing is loaded. */
  readonly servableCatalogModels: () => boolean;
}

export function readinessOf(facts: ReadinessFacts): Readiness {
  const status: ReadinessStatus =
    facts.failed.length > 0
      ? 'failed'
      : facts.startupLoading
        ? 'loading'
        : facts.loadedModels === 0 && !facts.servableCatalogModels()
          ? 'no_model'
          : 'ok';
  return { status, loading: facts.loading, failed: facts.failed };
}
