// The clients of the core: one Session per connection of a front end, the one owner of what
// that connection holds — the requests it sent (cancelled when it closes) and the streams it is
// pushed (freed when it closes). A session with nothing left is forgotten, so the count in
// stats() is of connections the core really holds state for.

import type { Job } from './job';
import type { Stream, StreamOwner, StreamSink } from './stream';

export type { StreamSink } from './stream';

export class Session implements StreamOwner {
  /** The front end's own object for the connection (the core never looks inside it). */
  readonly key: object;
  readonly sink: StreamSink;
  readonly #jobs = new Set<Job>();
  readonly #streams = new Set<Stream>();
  readonly #onIdle: (session: Session) => void;

  constructor(key: object, sink: StreamSink, onIdle: (session: Session) => void) {
    this.key = key;
    this.sink = sink;
    this.#onIdle = onIdle;
  }

  get idle(): boolean {
    return this.#jobs.size === 0 && this.#streams.size === 0;
  }

  get jobs(): ReadonlySet<Job> {
    return this.#jobs;
  }

  get streams(): ReadonlySet<Stream> {
    return this.#streams;
  }

  /** The session owns the job until it settles. */
  holdJob(job: Job): void {
    if (job.settled) return;
    this.#jobs.add(job);
    void job.done.then(() => {
      this.#jobs.delete(job);
      if (this.idle) this.#onIdle(this);
    });
  }

  holdStream(stream: Stream): void {
    this.#streams.add(stream);
  }

  /** The stream was removed (expired, cleared): the session lets go of it. */
  dropStream(stream: Stream): void {
    if (this.#streams.delete(stream) && this.idle) this.#onIdle(this);
  }

  /** The request with this client id, if the session still holds it. */
  findJob(requestId: unknown): Job | undefined {
    for (const job of this.#jobs) if (job.spec.requestId === requestId) return job;
    return undefined;
  }
}

export class SessionRegistry {
  readonly #sessions = new Map<object, Session>();
  readonly #closed = new WeakSet<object>();

  get size(): number {
    return this.#sessions.size;
  }

  /** The key's session, opened on first use. */
  open(key: object, sink: StreamSink): Session {
    let session = this.#sessions.get(key);
    if (!session) {
      session = new Session(key, sink, (idle) => this.#forgetIfIdle(idle));
      this.#sessions.set(key, session);
    }
    return session;
  }

  find(key: object): Session | undefined {
    return this.#sessions.get(key);
  }

  has(key: object): boolean {
    return this.#sessions.has(key);
  }

  isClosed(key: object): boolean {
    return this.#closed.has(key);
  }

  /** Marks it closed; returns its session (now forgotten) the first time, undefined after. */
  close(key: object): Session | undefined {
    if (this.#closed.has(key)) return undefined;
    this.#closed.add(key);
    const session = this.#sessions.get(key);
    this.#sessions.delete(key);
    return session;
  }

  #forgetIfIdle(session: Session): void {
    if (session.idle && this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
  }
}
