// The server's logger: pino to stderr, written synchronously so that nothing is lost on exit and
// stdout stays free for the stdio transport's protocol. In a terminal the lines are pino-pretty's
// (local times, no pid or hostname); elsewhere (a service, a pipe, a log shipper) one JSON object
// per line, as pino writes them. pino-pretty runs in this process as a plain function over each
// line (prettyFactory), not as a worker transport: the same synchronous write to fd 2 either way.

import pino, { type DestinationStream, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { ServerConfig } from './config';

export type LogFormat = ServerConfig['logFormat'];

/** 'auto' settled: pretty when stderr is a terminal. */
export function resolveLogFormat(format: LogFormat, stderrIsTty = process.stderr.isTTY === true): 'pretty' | 'json' {
  if (format === 'auto') return stderrIsTty ? 'pretty' : 'json';
  return format;
}

function prettyStream(colorize: boolean): DestinationStream {
  const destination = pino.destination({ fd: 2, sync: true });
  // A request line's message already says its route and status (lib/serve/request-log.ts): not repeated.
  const prettify = prettyFactory({ colorize, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,front_end,route,status', singleLine: true });
  return {
    write: (line: string) => {
      destination.write(prettify(line));
    },
  };
}

export function createLogger(level: ServerConfig['logLevel'] = 'info', format: LogFormat = 'auto'): Logger {
  if (resolveLogFormat(format) === 'pretty') return pino({ level, base: undefined }, prettyStream(process.stderr.isTTY === true));
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
