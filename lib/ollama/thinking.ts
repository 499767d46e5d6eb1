// A reasoning model's answer starts with its thinking in <think>...</think> (DeepSeek-R1, Qwen3,
// and the emulated runtime with enable_thinking). Ollama sends that part as `thinking`, apart
// from the `content`: this splits it, whole or as it streams.

const OPEN = '<think>';
const CLOSE = '</think>';

export interface AnswerPart {
  content?: string;
  thinking?: string;
}

/** The thinking and the content of a whole answer; without a leading <think> block, all of it is content. */
export function splitThinking(text: string): { thinking: string | undefined; content: string } {
  const start = text.trimStart();
  if (!start.startsWith(OPEN)) return { thinking: undefined, content: text };
  const end = start.indexOf(CLOSE);
  // Cut before </think> (by the token budget or a stop): all of it was thinking.
  if (end === -1) return { thinking: start.slice(OPEN.length).trim(), content: '' };
  return { thinking: start.slice(OPEN.length, end).trim(), content: start.slice(end + CLOSE.length).trimStart() };
}

/** Longest end of `text` that could be the start of `mark` (held back until the next delta tells). */
function partialMarkAtEnd(text: string, mark: string): number {
  for (let length = Math.min(mark.length - 1, text.length); length > 0; length -= 1) {
    if (mark.startsWith(text.slice(text.length - length))) return length;
  }
  return 0;
}

/**
 * The streamed form: each delta in, the parts that can be sent out. What is sent is always a
 * prefix of what splitThinking gives for the whole text so far, so the stream adds up to it
 * (leading whitespace of each part left out, as there).
 */
export class ThinkingSplitter {
  #text = '';
  #sentThinking = 0;
  #sentContent = 0;

  constructor(private readonly enabled: boolean) {}

  push(delta: string): AnswerPart[] {
    if (!this.enabled) return delta === '' ? [] : [{ content: delta }];
    this.#text += delta;
    return this.#release(false);
  }

  /** At the end: whatever was held back. */
  flush(): AnswerPart[] {
    return this.enabled ? this.#release(true) : [];
  }

  #release(final: boolean): AnswerPart[] {
    const parts: AnswerPart[] = [];
    const start = this.#text.trimStart();
    if (!start.startsWith(OPEN)) {
      // Still possibly the start of <think>: wait for more.
      if (!final && OPEN.startsWith(start)) return parts;
      this.#emit(parts, 'content', this.#text, final);
      return parts;
    }
    const body = start.slice(OPEN.length);
    const end = body.indexOf(CLOSE);
    const thinking = (end === -1 ? body.slice(0, body.length - (final ? 0 : partialMarkAtEnd(body, CLOSE))) : body.slice(0, end)).trimStart();
    this.#emit(parts, 'thinking', end === -1 && !final ? thinking : thinking.trimEnd(), final || end !== -1);
    if (end !== -1) this.#emit(parts, 'content', body.slice(end + CLOSE.length).trimStart(), final);
    return parts;
  }

  #emit(parts: AnswerPart[], kind: 'content' | 'thinking', whole: string, settled: boolean): void {
    // Trailing whitespace of thinking is held until its end is known (the whole split trims it).
    const releasable = kind === 'thinking' && !settled ? whole.trimEnd() : whole;
    const sent = kind === 'thinking' ? this.#sentThinking : this.#sentContent;
    if (releasable.length <= sent) return;
    parts.push({ [kind]: releasable.slice(sent) });
    if (kind === 'thinking') this.#sentThinking = releasable.length;
    else this.#sentContent = releasable.length;
  }
}
