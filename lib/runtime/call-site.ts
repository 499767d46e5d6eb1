// Keeps the caller's stack on errors that surface asynchronously. A rejection from the native
// side carries no JavaScript frames, so the stack is captured when the call is made and put on
// the error when it fails (the pattern sharp uses).

export interface CallSite {
  /** The frames of the call, without the header line. */
  readonly frames: string;
}

/** Captures the stack above `boundary` (the public function being called). */
export function captureCallSite(boundary: Function): CallSite {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, boundary);
  const stack = holder.stack ?? '';
  const firstBreak = stack.indexOf('\n');
  return { frames: firstBreak === -1 ? '' : stack.slice(firstBreak) };
}

/** Gives `error` the caller's frames (keeping its own header line) and returns it. */
export function withCallSite<T>(error: T, site: CallSite): T {
  if (error instanceof Error && site.frames) {
    error.stack = `${error.name}: ${error.message}${site.frames}`;
  }
  return error;
}
