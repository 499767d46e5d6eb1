// `stop` applied on the server: text is let through as it comes, except a tail that could still
// turn out to be the start of a stop sequence, which is held back until it cannot.

export class StopMatcher {
  readonly #stops: string[];
  readonly #hold: number;
  #pending = '';
  stopped = false;

  constructor(stops: string[]) {
    this.#stops = stops.filter((stop) => stop.length > 0);
    this.#hold = Math.max(0, ...this.#stops.map((stop) => stop.length - 1));
  }

  /** Takes the next piece of output; returns what can be passed on now. */
  push(text: string): string {
    if (this.stopped) return '';
    this.#pending += text;
    let cut = -1;
    for (const stop of this.#stops) {
      const at = this.#pending.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.stopped = true;
      const before = this.#pending.slice(0, cut);
      this.#pending = '';
      return before;
    }
    const keep = this.#heldTail();
    const out = this.#pending.slice(0, this.#pending.length - keep);
    this.#pending = this.#pending.slice(this.#pending.length - keep);
    return out;
  }

  /** The run ended: what was held back is not a stop sequence after all. */
  flush(): string {
    const rest = this.stopped ? '' : this.#pending;
    this.#pending = '';
    return rest;
  }

  /** The longest suffix of the pending text that is a proper prefix of some stop sequence. */
  #heldTail(): number {
    const limit = Math.min(this.#hold, this.#pending.length);
    for (let length = limit; length > 0; length--) {
      const tail = this.#pending.slice(this.#pending.length - length);
      if (this.#stops.some((stop) => stop.startsWith(tail))) return length;
    }
    return 0;
  }
}
