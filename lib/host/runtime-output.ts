// What the runtime in a host prints on its stdout or stderr ("I rkllm: ...", "E RKNN: ..."),
// turned into the server's log lines tagged with the model. Lines are bounded: a longer one is
// logged in pieces of MAX_LINE_CHARS, so a runtime that never prints a newline cannot make the
// server hold an unbounded buffer.

import type { Logger } from 'pino';

const MAX_LINE_CHARS = 4096;

/** The level of a line by the runtime's own prefix: E error, W warning, anything else info. */
function levelOf(line: string): 'error' | 'warn' | 'info' {
  if (/^E\s/.test(line)) return 'error';
  if (/^W\s/.test(line)) return 'warn';
  return 'info';
}

export class RuntimeOutput {
  readonly #logger: Logger;
  /** The tag of each line, asked per line: a spare host is tagged with its model once it has one. */
  readonly #tag: () => Readonly<Record<string, unknown>>;
  #partial = '';

  constructor(logger: Logger, tag: () => Readonly<Record<string, unknown>>, stream: NodeJS.ReadableStream) {
    this.#logger = logger;
    this.#tag = tag;
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => this.#take(text));
    stream.on('end', () => this.#flush());
    // A pipe error means the host is gone; its exit is reported elsewhere.
    stream.on('error', () => undefined);
  }

  #take(text: string): void {
    let start = 0;
    for (;;) {
      const newline = text.indexOf('\n', start);
      if (newline === -1) break;
      this.#emit(this.#partial + text.slice(start, newline));
      this.#partial = '';
      start = newline + 1;
    }
    this.#partial += text.slice(start);
    while (this.#partial.length > MAX_LINE_CHARS) {
      this.#emit(this.#partial.slice(0, MAX_LINE_CHARS));
      this.#partial = this.#partial.slice(MAX_LINE_CHARS);
    }
  }

  #flush(): void {
    if (this.#partial !== '') this.#emit(this.#partial);
    this.#partial = '';
  }

  #emit(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') return;
    for (let at = 0; at < line.length; at += MAX_LINE_CHARS) {
      const piece = line.slice(at, at + MAX_LINE_CHARS);
      this.#logger[levelOf(line)](this.#tag(), `runtime: ${piece}`);
    }
  }
}
