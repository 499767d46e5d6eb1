// `rkllm-serve`: reads the settings, creates the server (runtime opened), starts every enabled
// transport, then loads the start-up model (requests for it wait meanwhile; /health says
// loading), and shuts all of it down on SIGINT/SIGTERM, or when stdin ends and stdio was the
// only transport. Start-up failures are one message on stderr and a non-zero exit with nothing
// left running (a model that fails to load: after the transports are closed again).

import * as fs from 'fs';
import * as path from 'path';
import * as tty from 'tty';
import type { Logger } from 'pino';
import { isRkllmError } from '../errors';
import { packageRoot } from '../package-root';
import { createLogger, createServer, createTransports, dialersFor, type RkllmServer, type ServerConfig } from '../serve';
import type { TransportManager } from '../transports/manager';
import type { CloseReason } from '../transports/stream-peer';
import { settleWithin, TransportStartError, type ListeningAddress } from '../transports/transport';
import { announceUrls } from './announce';
import { parseCommandLine } from './options';
import { systemdUnit } from './systemd-unit';
import { UsageError } from './usage-error';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** Slack for closing sockets after the engine's own bounded shutdown. */
const TRANSPORT_STOP_SLACK_MS = 400;
/** Shutdown always ends by then, whatever hangs (the issue asks for two seconds). */
const MIN_HARD_EXIT_MS = 1900;

const PORT_FLAG: Record<string, string> = { tcp: '--tcp-port', udp: '--udp-port', http: '--http-port', websocket: '--ws-port' };
const DISABLE_FLAG: Record<string, string> = {
  stdio: '--disable-stdio',
  tcp: '--disable-tcp',
  udp: '--disable-udp',
  http: '--disable-http',
  websocket: '--disable-ws',
};

export function packageVersion(): string {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    return manifest.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** One clear message on stderr (not a log line: this is for the person who typed the command). */
function printError(message: string): void {
  process.stderr.write(`rkllm-serve: ${message}\n`);
}

/** Stdout belongs to the stdio transport: a stray console.log must not corrupt its protocol. */
function keepStdoutForProtocol(): void {
  const toStderr = (...args: unknown[]): void => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

function describeStartError(error: TransportStartError): string {
  const hints: string[] = [];
  if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
    const portFlag = PORT_FLAG[error.transport];
    if (portFlag) hints.push(`choose another port with ${portFlag} (0 picks a free one)`);
  }
  if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') hints.push('choose another address with --host');
  hints.push(`switch ${error.transport} off with ${DISABLE_FLAG[error.transport] ?? '--disable-' + error.transport}`);
  return `${error.message}. To fix it, ${hints.join(', or ')}.`;
}

class Service {
  private server: RkllmServer | undefined;
  private transports: TransportManager | undefined;
  private stopping = false;

  constructor(
    private readonly config: ServerConfig,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    try {
      this.server = await createServer(this.config, this.logger, { deferStartupModel: true });
    } catch (error) {
      printError(error instanceof Error ? error.message : String(error));
      this.exit(EXIT_FAILURE);
      return;
    }
    const server = this.server;
    this.transports = createTransports(server, { onStdioPeerGone: (reason) => this.stdioPeerGone(reason) });
    let addresses: ListeningAddress[];
    try {
      addresses = await this.transports.startAll();
    } catch (error) {
      printError(error instanceof TransportStartError ? describeStartError(error) : error instanceof Error ? error.message : String(error));
      await settleWithin(server.shutdown(), this.config.shutdownTimeoutMs);
      this.exit(EXIT_FAILURE);
      return;
    }
    announceUrls(this.config, addresses, this.logger);
    if (this.config.enableTestHooks) {
      for (const [name, dialer] of dialersFor(this.transports, addresses, this.config.apiKey)) server.registerDialer(name, dialer);
    }
    try {
      await server.loadStartupModel();
    } catch (error) {
      // A signal meanwhile is a shutdown under way, not a failure.
      if (this.stopping) return;
      printError(error instanceof Error ? error.message : String(error));
      this.stopping = true;
      this.armHardExit(EXIT_FAILURE);
      await this.shutDown(server, EXIT_FAILURE);
    }
  }

  /** SIGINT/SIGTERM, or stdin ended with stdio the only transport. */
  stop(why: string): void {
    if (this.stopping) {
      if (why === 'SIGINT' || why === 'SIGTERM') {
        this.logger.warn({ signal: why }, 'second signal: exiting now');
        this.exit(EXIT_OK);
      }
      return;
    }
    this.stopping = true;
    this.logger.info({ reason: why, mode: this.config.shutdownMode }, 'shutting down');
    this.armHardExit(EXIT_OK);

    if (this.server === undefined) {
      // Still opening the runtime or loading the model: nothing is served yet, and the addon's
      // exit hook stops a model worker that is still loading.
      this.exit(EXIT_OK);
      return;
    }
    void this.shutDown(this.server);
  }

  /** A shutdown that has not finished by then exits anyway, with `code`. */
  private armHardExit(code: number): void {
    const hardExitMs = Math.max(MIN_HARD_EXIT_MS, this.config.shutdownTimeoutMs + TRANSPORT_STOP_SLACK_MS);
    setTimeout(() => {
      this.logger.warn({ afterMs: hardExitMs }, 'shutdown did not finish in time; exiting anyway');
      this.exit(code);
    }, hardExitMs).unref();
  }

  private async shutDown(server: RkllmServer, code = EXIT_OK): Promise<void> {
    // Order matters: no new peers; runs cancelled or finished while their peers can still hear
    // the end; models destroyed (server.shutdown); then every socket closed.
    this.transports?.stopAccepting();
    await settleWithin(server.shutdown(), this.config.shutdownTimeoutMs + 100);
    await this.transports?.stopAll();
    this.logger.info('stopped');
    this.exit(code);
  }

  private stdioPeerGone(reason: CloseReason): void {
    const others = this.transports?.transports.filter((transport) => transport.name !== 'stdio') ?? [];
    if (others.length === 0) {
      this.stop(`stdin ${reason}`);
      return;
    }
    this.logger.info({ transport: 'stdio', reason }, 'stdio closed; the other transports go on serving');
  }

  private exit(code: number): void {
    this.logger.flush?.();
    process.exit(code);
  }
}

export async function main(args: readonly string[] = process.argv.slice(2)): Promise<void> {
  let config: ServerConfig;
  let printSystemdUnit: boolean;
  let stdioNote: string | undefined;
  try {
    ({ config, printSystemdUnit, stdioNote } = parseCommandLine(args, packageVersion(), { stdinIsTty: tty.isatty(0) }));
  } catch (error) {
    if (error instanceof UsageError || (error instanceof Error && error.name === 'YError')) {
      printError(`${error.message}\nRun 'rkllm-serve --help' for the options.`);
      process.exit(EXIT_USAGE);
    }
    throw error;
  }
  if (printSystemdUnit) {
    const unit = systemdUnit();
    process.stdout.write(unit.text);
    for (const note of unit.notes) process.stderr.write(`rkllm-serve: note: ${note}\n`);
    return;
  }
  if (config.transports.stdio.enabled) keepStdoutForProtocol();
  const logger = createLogger(config.logLevel, config.logFormat);
  if (stdioNote !== undefined) logger.info({ transport: 'stdio', enabled: config.transports.stdio.enabled }, stdioNote);
  const service = new Service(config, logger);
  process.on('SIGINT', () => service.stop('SIGINT'));
  process.on('SIGTERM', () => service.stop('SIGTERM'));
  try {
    await service.start();
  } catch (error) {
    // Nothing above should throw; if it does, say so in one message rather than a stack alone.
    printError(isRkllmError(error) || error instanceof Error ? error.message : String(error));
    logger.error({ err: error }, 'start-up failed');
    process.exit(EXIT_FAILURE);
  }
}
