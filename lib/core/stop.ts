// `stop` applied on the server: text is let through as it comes, except a tail that could still
// turn out to be the start of a stop sequence, which is held back until it cannot. Each stop
// sequence is followed with its Knuth-Morris-Pratt failure table, so each character of output is
// looked at a bounded number of times per sequence, whatever the sequences are: the work is linear
// in the output (a naive rescan of the held tail per token is quadratic, and a long stop string
// made it block the event loop for seconds). The answer is cut where a sequence is first
// complete, so where it is cut never depends on how the output was split into tokens.

/** The longest stop sequence accepted (UTF-16 code units); the API refuses longer ones with a 400. */
export const MAX_STOP_LENGTH = 1024;

class StopSequence {
  readonly text: string;
  /** failure[i]: the length of the longest proper prefix of text[0..i] that is also a suffix of it. */
  readonly #failure: Int32Array;
  /** How many characters of `text` the output ends with now. */
  matched = 0;

  constructor(text: string) {
    this.text = text;
    this.#failure = new Int32Array(text.length);
    let length = 0;
    for (let index = 1; index < text.length; index++) {
      const char = text.charCodeAt(index);
      while (length > 0 && text.charCodeAt(length) !== char) length = this.#failure[length - 1];
      if (text.charCodeAt(length) === char) length += 1;
      this.#failure[index] = length;
    }
  }

  /** Takes the next character of output; true when the whole sequence has just been seen. */
  step(char: number): boolean {
    let matched = this.matched;
    // A complete match never stays: the matcher stops there.
    while (matched > 0 && this.text.charCodeAt(matched) !== char) matched = this.#failure[matched - 1];
    if (this.text.charCodeAt(matched) === char) matched += 1;
    this.matched = matched;
    return matched === this.text.length;
  }
}

export class StopMatcher {
  readonly #stops: StopSequence[];
  /** Output not passed on yet, oldest first, from index #heldStart on. */
  #held: string[] = [];
  #heldStart = 0;
  #heldLength = 0;
  stopped = false;

  constructor(stops: string[]) {
    this.#stops = stops.filter((stop) => stop.length > 0).map((stop) => new StopSequence(stop));
  }

  /** Takes the next piece of output; returns what can be passed on now. */
  push(text: string): string {
    if (this.stopped) return '';
    if (this.#stops.length === 0) return text;
    for (let index = 0; index < text.length; index++) {
      const char = text.charCodeAt(index);
      for (const stop of this.#stops) {
        if (!stop.step(char)) continue;
        this.stopped = true;
        // Everything before the sequence's first character goes out; the rest never does.
        const before = this.#heldLength + index + 1 - stop.text.length;
        this.#hold(text);
        const out = this.#release(before);
        this.#held = [];
        this.#heldStart = 0;
        this.#heldLength = 0;
        return out;
      }
    }
    let keep = 0;
    for (const stop of this.#stops) keep = Math.max(keep, stop.matched);
    this.#hold(text);
    return this.#release(this.#heldLength - keep);
  }

  /** The run ended: what was held back is not a stop sequence after all. */
  flush(): string {
    const rest = this.stopped ? '' : this.#release(this.#heldLength);
    this.#held = [];
    this.#heldStart = 0;
    this.#heldLength = 0;
    return rest;
  }

  #hold(text: string): void {
    if (text.length === 0) return;
    this.#held.push(text);
    this.#heldLength += text.length;
  }

  /** Takes the first `count` held characters out, in order. */
  #release(count: number): string {
    if (count <= 0) return '';
    const pieces: string[] = [];
    let left = count;
    while (left > 0) {
      const piece = this.#held[this.#heldStart];
      if (piece.length <= left) {
        pieces.push(piece);
        left -= piece.length;
        this.#heldStart += 1;
      } else {
        pieces.push(piece.slice(0, left));
        this.#held[this.#heldStart] = piece.slice(left);
        left = 0;
      }
    }
    this.#heldLength -= count;
    // Drop the released slots now and then, so the array stays as long as what it holds.
    if (this.#heldStart > 64 && this.#heldStart * 2 > this.#held.length) {
      this.#held = this.#held.slice(this.#heldStart);
      this.#heldStart = 0;
    }
    return pieces.length === 1 ? pieces[0] : pieces.join('');
  }
}
