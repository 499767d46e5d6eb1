// The server's logger: pino to stderr, written synchronously so that nothing is lost on exit and
// stdout stays free for the stdio transport's protocol.

import pino, { type Logger } from 'pino';
import type { ServerConfig } from './config';

export function createLogger(level: ServerConfig['logLevel'] = 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
