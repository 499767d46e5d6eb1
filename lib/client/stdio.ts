// stdio: newline-delimited JSON over any readable/writable pair. The usual pair is a child
// process's pipes (the parent writes the child's stdin and reads its stdout); an in-process pipe
// pair works the same. close() ends the writable, which the server reads as end of input.

import type { ChildProcess } from 'child_process';
import type { Readable, Writable } from 'stream';
import { invalidArgument } from '../errors';
import { LineStreamTransport, type LineStreamOptions } from './line-stream';

export interface StdioTransportOptions extends LineStreamOptions {
  /** Where the server's messages come from (a child's stdout). */
  readable: Readable;
  /** Where messages to the server go (a child's stdin). */
  writable: Writable;
}

export class StdioTransport extends LineStreamTransport {
  readonly kind = 'stdio' as const;

  constructor(options: StdioTransportOptions) {
    if (!options.readable || !options.writable) throw invalidArgument('stdio', 'needs both a readable and a writable stream');
    super(options.readable, options.writable, options);
  }

  /** The pipes of a child spawned with stdio ['pipe', 'pipe', ...]. */
  static ofChild(child: ChildProcess, options: LineStreamOptions = {}): StdioTransport {
    if (!child.stdin || !child.stdout) throw invalidArgument('child', 'was not spawned with stdin and stdout pipes');
    return new StdioTransport({ ...options, readable: child.stdout, writable: child.stdin });
  }
}
