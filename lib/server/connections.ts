// What the engine holds per connection: the requests it owns (cancelled when it closes) and the
// streams it is pushed (freed when it closes). A connection with nothing left is forgotten, so
// the count in stats() is of connections the engine really holds state for.

import type { Connection } from '../rpc/connection';
import type { Job } from './job';
import type { Stream } from './stream';

export class ConnectionState {
  readonly connection: Connection;
  readonly jobs = new Set<Job>();
  readonly streams = new Set<Stream>();

  constructor(connection: Connection) {
    this.connection = connection;
  }

  get idle(): boolean {
    return this.jobs.size === 0 && this.streams.size === 0;
  }
}

export class ConnectionRegistry {
  readonly #states = new Map<Connection, ConnectionState>();
  readonly #closed = new WeakSet<Connection>();

  get size(): number {
    return this.#states.size;
  }

  stateOf(connection: Connection): ConnectionState {
    let state = this.#states.get(connection);
    if (!state) {
      state = new ConnectionState(connection);
      this.#states.set(connection, state);
    }
    return state;
  }

  has(connection: Connection): boolean {
    return this.#states.has(connection);
  }

  isClosed(connection: Connection): boolean {
    return this.#closed.has(connection);
  }

  forgetIfIdle(state: ConnectionState): void {
    if (state.idle && this.#states.get(state.connection) === state) this.#states.delete(state.connection);
  }

  /** Marks it closed; returns its state (now forgotten) the first time, undefined after. */
  close(connection: Connection): ConnectionState | undefined {
    if (this.#closed.has(connection)) return undefined;
    this.#closed.add(connection);
    const state = this.#states.get(connection);
    this.#states.delete(connection);
    return state;
  }
}
