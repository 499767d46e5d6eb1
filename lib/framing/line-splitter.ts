// Splits a byte stream into newline-terminated lines (stdio, TCP) with a bound on a line's length.
// A line may arrive in many chunks and a chunk may hold many lines. A line over the bound is never
// held in full: the splitter reports it once and discards bytes up to the next newline, which is
// where the stream is in step again, so the connection stays usable.

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

export interface LineSink {
  line(text: string): void;
  /** One line longer than the bound was dropped; `seenBytes` is how much of it had arrived. */
  overflow(seenBytes: number): void;
}

export class LineSplitter {
  private readonly maxLineBytes: number;
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Inside an over-long line: bytes are dropped until its newline. */
  private discarding = false;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Bytes of an unfinished line held (never more than the bound). */
  get pendingBytes(): number {
    return this.heldBytes;
  }

  push(chunk: Buffer, sink: LineSink): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.hold(chunk.subarray(start), sink);
        return;
      }
      const tail = chunk.subarray(start, newline);
      start = newline + 1;
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      const length = this.heldBytes + tail.length;
      if (length > this.maxLineBytes + 1) {
        // +1: a trailing '\r' of '\r\n' does not count against the bound.
        this.clear();
        sink.overflow(length);
        continue;
      }
      const bytes = this.held.length === 0 ? tail : Buffer.concat([...this.held, tail], length);
      this.clear();
      const end = bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN ? bytes.length - 1 : bytes.length;
      if (end > this.maxLineBytes) {
        sink.overflow(end);
        continue;
      }
      sink.line(bytes.toString('utf8', 0, end));
    }
  }

  /** End of input: an unterminated last line is still a line (`printf '{...}' | rkllm-serve`). */
  flush(sink: LineSink): void {
    if (this.discarding || this.heldBytes === 0) {
      this.discarding = false;
      this.clear();
      return;
    }
    this.push(Buffer.from([NEWLINE]), sink);
  }

  private hold(rest: Buffer, sink: LineSink): void {
    if (this.discarding || rest.length === 0) return;
    if (this.heldBytes + rest.length > this.maxLineBytes + 1) {
      const seen = this.heldBytes + rest.length;
      this.clear();
      this.discarding = true;
      sink.overflow(seen);
      return;
    }
    // A copy, so a short tail does not keep the whole socket chunk alive.
    this.held.push(Buffer.from(rest));
    this.heldBytes += rest.length;
  }

  private clear(): void {
    this.held = [];
    this.heldBytes = 0;
  }
}
