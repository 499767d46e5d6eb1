// Writing one message as a line (stdio, TCP): the text and a newline. A text that holds a newline
// would reach the other side as two broken messages, so it is refused here instead. JSON.stringify
// never writes a raw newline (inside strings it is escaped).

import { invalidArgument } from '../errors';

export function frameLine(text: string): string {
  if (text.includes('\n')) {
    throw invalidArgument('text', 'must not hold a newline: one message is one line (send unframed bytes to write several)');
  }
  return text + '\n';
}
