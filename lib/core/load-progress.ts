// The log lines of one model load: "loading X" when it starts, "still loading X (10 s)" every
// few seconds (rkllm_init reads the whole file and takes 30-60 s on a board, and says nothing
// meanwhile), and "loaded X in 31.2 s" or a failure line at the end. The timer never holds the
// process and is cleared on every outcome.

import type { Logger } from 'pino';

/** How often a load still under way is reported. */
export const LOAD_PROGRESS_INTERVAL_MS = 5000;

export interface LoadSubject {
  /** The model's name, as requests name it. */
  readonly name: string;
  /** What rkllm_init is given (a file path or sim:NAME). */
  readonly path: string;
  /** The registry handle it loads under (unknown yet for an rkllm_init that lets the server name it). */
  readonly handle?: string;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

/** Logs the progress of `load` and settles as it does. */
export function reportLoadProgress<T>(logger: Logger, subject: LoadSubject, load: Promise<T>, intervalMs = LOAD_PROGRESS_INTERVAL_MS): Promise<T> {
  const started = Date.now();
  const fields = { model: subject.name, handle: subject.handle, path: subject.path };
  logger.info(fields, `loading ${subject.name} from ${subject.path}`);
  const timer = setInterval(() => {
    const elapsed = Date.now() - started;
    logger.info({ ...fields, elapsed_ms: elapsed }, `still loading ${subject.name} (${Math.round(elapsed / 1000)} s)`);
  }, intervalMs);
  timer.unref();
  return load.then(
    (value) => {
      clearInterval(timer);
      const ms = Date.now() - started;
      logger.info({ ...fields, ms }, `loaded ${subject.name} in ${seconds(ms)} s`);
      return value;
    },
    (error: unknown) => {
      clearInterval(timer);
      const ms = Date.now() - started;
      const detail = error instanceof Error ? error.message : String(error);
      const code = (error as { code?: unknown } | undefined)?.code;
      // A load given up because the server stops is no failure of the model.
      const level = code === 'SHUTTING_DOWN' ? 'info' : 'error';
      logger[level]({ ...fields, ms, code }, `could not load ${subject.name} after ${seconds(ms)} s: ${detail}`);
      throw error;
    },
  );
}
