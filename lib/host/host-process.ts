// One model host process as the server sees it: spawned with the protocol on fd 3 and the
// runtime's stdout and stderr as pipes read into the log; calls matched to replies; token
// batches and run ends handed on; a watchdog that declares the host hung; and the one report of
// its end when that end was not asked for (a crash, an exit, a hang, a broken stream).

import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import type { Socket } from 'net';
import type { Logger } from 'pino';
import { RkllmError } from '../errors';
import { HOST_NODE_ENV, HOST_PARENT_ENV, hostMainPath, hostNodeCommand } from './host-env';
import {
  FRAME_JSON,
  FRAME_TOKENS,
  FrameReader,
  asFromHost,
  decodeTokens,
  encodeJson,
  type EndMessage,
  type HostMethod,
  type ReplyMessage,
  type TokenEvent,
} from './protocol';
import { RuntimeOutput } from './runtime-output';
import type { HostSettings } from './settings';

/** How a host ended without being asked to. */
export interface HostFailure {
  reason: 'crash' | 'exit' | 'hang' | 'protocol' | 'spawn';
  /** The signal that ended it (crash), when known. */
  signal?: string;
  /** Its exit code (exit), when known. */
  exitCode?: number;
  /** One sentence for the log and the client. */
  detail: string;
}

export interface HostEvents {
  onTokens(run: number, tokens: TokenEvent[]): void;
  onEnd(message: EndMessage): void;
  /** Called once, first thing when the host is found gone or hung; returns the error its pending calls get. */
  onFailure(failure: HostFailure): RkllmError;
}

interface PendingCall {
  method: HostMethod;
  sentAt: number;
  resolve(reply: ReplyMessage): void;
  reject(error: unknown): void;
}

/** Calls that may start a thread in the host: they carry the server's thread limit. */
const THREAD_STARTING: ReadonlySet<HostMethod> = new Set<HostMethod>(['init', 'abort']);

/**
 * This process's soft RLIMIT_NPROC, read at the moment it is needed (a limit changed from
 * outside, prlimit --pid, applies at once); undefined when unlimited or unreadable. A procfs
 * read, answered from the kernel's memory: it never waits on a disk.
 */
function ownThreadLimit(): number | undefined {
  try {
    const match = /^Max processes\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** After SIGTERM, how long a host has before SIGKILL. */
const TERM_GRACE_MS = 500;
/** After the pipe ends or the process exits, how long to wait for the other before reporting. */
const EXIT_SETTLE_MS = 200;

export class HostProcess {
  readonly pid: number | undefined;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  readonly #child: ChildProcess;
  /** The protocol pipe; missing only when spawning failed before the pipes were made. */
  readonly #channel: Socket | undefined;
  readonly #settings: HostSettings;
  #events: HostEvents;
  readonly #logger: Logger;
  #tag: Readonly<Record<string, unknown>>;
  readonly #calls = new Map<number, PendingCall>();
  /** Runs sent and not ended: when each was asked to stop, if it was. */
  readonly #runs = new Map<number, { stopAskedAt: number | undefined }>();
  #nextCall = 1;
  /** The thread limit last handed to the host (undefined until one was). */
  #sentNproc: number | undefined;
  #lastHeard = Date.now();
  #watchdog: NodeJS.Timeout | undefined;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  #channelClosed = false;
  /** Set by the first frame from the host: before it, an exit means the host never started. */
  #heard = false;
  #settleTimer: NodeJS.Timeout | undefined;
  /** Set once the end is known: asked for (ending) or not (failed). */
  #ending = false;
  #failed = false;

  constructor(settings: HostSettings, events: HostEvents, logger: Logger, tag: Readonly<Record<string, unknown>>) {
    this.#settings = settings;
    this.#events = events;
    this.#logger = logger;
    const [node, ...nodeArgs] = hostNodeCommand();
    this.#child = spawn(node, [...nodeArgs, hostMainPath()], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      // A process group of its own: a Ctrl-C in the terminal, or a signal sent to the server's
      // group, is the server's to act on (it ends its hosts itself as it shuts down).
      detached: true,
      env: { ...process.env, [HOST_PARENT_ENV]: String(process.pid) },
    });
    this.pid = this.#child.pid;
    this.#tag = { ...tag, host_pid: this.pid };
    this.exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.on('exit', (code, signal) => {
      this.#exit = { code, signal };
      this.#settle();
    });
    this.#child.on('error', (error: NodeJS.ErrnoException) => {
      // Spawning failed (EAGAIN at the process limit, ENOMEM): no 'exit' follows.
      this.#fail({ reason: 'spawn', detail: `the model host could not be started: ${error.message}` }, error.code === 'EAGAIN');
    });
    // An idle host never keeps the server's event loop alive (as an idle in-process model does
    // not); the protocol pipe is referenced while something is pending on it.
    this.#child.unref();
    for (const output of [this.#child.stdout, this.#child.stderr]) {
      if (!output) continue;
      (output as Socket).unref();
      const stream = output === this.#child.stdout ? 'stdout' : 'stderr';
      new RuntimeOutput(logger, () => ({ ...this.#tag, stream }), output);
    }
    this.#channel = (this.#child.stdio[3] as Socket | null) ?? undefined;
    this.#channel?.unref();
    const reader = new FrameReader((kind, body) => this.#onFrame(kind, body));
    this.#channel?.on('data', (chunk: Buffer) => {
      if (this.#failed) return;
      try {
        reader.push(chunk);
      } catch (error) {
        this.#declareBroken(error);
      }
    });
    this.#channel?.on('error', () => undefined);
    this.#channel?.on('close', () => {
      this.#channelClosed = true;
      this.#settle();
    });
    const shortest = Math.min(settings.hostInitTimeoutMs, settings.hostRunTimeoutMs, settings.hostAbortTimeoutMs);
    this.#watchdog = setInterval(() => this.#watch(), Math.min(1000, Math.max(10, Math.floor(shortest / 10))));
    this.#watchdog.unref();
  }

  /** Hands the host's events, and the tag of its log lines, to a new owner (a spare host taken for a model, or given back). */
  bind(events: HostEvents, tag: Readonly<Record<string, unknown>>): void {
    this.#events = events;
    this.#tag = { ...tag, host_pid: this.pid };
  }

  /** True once the host was found gone or hung (its failure was reported). */
  get hasFailed(): boolean {
    return this.#failed;
  }

  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /** Sends a call; resolves with its reply (ok or not), rejects when the host fails first. */
  call(method: HostMethod, args: unknown[]): Promise<ReplyMessage> {
    if (this.#failed || this.#ending) return Promise.reject(new RkllmError('the model host has ended', 'RUNTIME_FAILED'));
    const id = this.#nextCall++;
    this.#noteBusy();
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { method, sentAt: Date.now(), resolve, reject });
      const nproc = THREAD_STARTING.has(method) ? this.#noteNproc(ownThreadLimit()) : undefined;
      this.#channel?.write(encodeJson(nproc === undefined ? { type: 'call', id, method, args } : { type: 'call', id, method, args, nproc }));
    });
  }

  startRun(run: number, input: unknown, infer: unknown): void {
    this.#noteBusy();
    this.#runs.set(run, { stopAskedAt: undefined });
    this.#channel?.write(encodeJson({ type: 'run', run, input, infer }));
  }

  cancelRun(run: number): void {
    this.#noteStop(run);
    const nproc = this.#noteNproc(ownThreadLimit());
    this.#channel?.write(encodeJson(nproc === undefined ? { type: 'cancel', run } : { type: 'cancel', run, nproc }));
  }

  /** rkllm_abort is on its way: every run now going must end within the abort timeout. */
  noteAbort(): void {
    for (const run of this.#runs.keys()) this.#noteStop(run);
  }

  /** Resident memory of the host (VmRSS) in bytes, read off the JS thread; undefined once gone. */
  async rssBytes(): Promise<number | undefined> {
    if (this.pid === undefined || this.#exit) return undefined;
    try {
      const status = await fsp.readFile(`/proc/${this.pid}/status`, 'utf8');
      const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      return match ? Number(match[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Ends the host on purpose: the pipe is closed (the host exits at its end), SIGKILL if it has
   * not exited within graceMs. Resolves once it has exited. No failure is reported.
   */
  async end(graceMs: number): Promise<void> {
    this.#ending = true;
    this.#channel?.end();
    this.#rejectCalls(new RkllmError('the model host was ended', 'MODEL_DESTROYED'));
    if (!this.#exit && this.pid !== undefined) {
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.#stopWatchdog();
  }

  #noteBusy(): void {
    // The silence a watchdog measures starts when the host is given something to do.
    if (this.#idle()) {
      this.#lastHeard = Date.now();
      this.#channel?.ref();
    }
  }

  #idle(): boolean {
    return this.#calls.size === 0 && this.#runs.size === 0;
  }

  #unrefWhenIdle(): void {
    if (this.#idle()) this.#channel?.unref();
  }

  #noteStop(run: number): void {
    const entry = this.#runs.get(run);
    if (entry && entry.stopAskedAt === undefined) entry.stopAskedAt = Date.now();
  }

  #onFrame(kind: number, body: Buffer): void {
    this.#heard = true;
    this.#lastHeard = Date.now();
    if (kind === FRAME_TOKENS) {
      const { run, tokens } = decodeTokens(body);
      this.#events.onTokens(run, tokens);
      return;
    }
    const message = kind === FRAME_JSON ? asFromHost(JSON.parse(body.toString('utf8'))) : undefined;
    if (!message) throw new Error(`the model host sent a frame that is no message of the protocol (kind ${kind})`);
    if (message.type === 'reply') {
      const call = this.#calls.get(message.id);
      if (!call) return;
      this.#calls.delete(message.id);
      this.#unrefWhenIdle();
      call.resolve(message);
    } else {
      this.#runs.delete(message.run);
      this.#unrefWhenIdle();
      this.#events.onEnd(message);
    }
  }

  #noteNproc(nproc: number | undefined): number | undefined {
    if (nproc !== undefined) this.#sentNproc = nproc;
    return nproc;
  }

  #watch(): void {
    if (this.#failed || this.#ending) return;
    // A limit handed over and changed since (raised again, say): the host follows, so a native
    // call that waits for a thread (an abort at the limit) can get one.
    if (this.#sentNproc !== undefined) {
      const nproc = ownThreadLimit();
      if (nproc !== undefined && nproc !== this.#sentNproc) {
        this.#sentNproc = nproc;
        this.#channel?.write(encodeJson({ type: 'limits', nproc }));
      }
    }
    const now = Date.now();
    const { hostInitTimeoutMs, hostRunTimeoutMs, hostAbortTimeoutMs } = this.#settings;
    for (const call of this.#calls.values()) {
      if ((call.method === 'open' || call.method === 'init') && now - call.sentAt > hostInitTimeoutMs) {
        this.#declareHung(`rkllm_init did not return within ${hostInitTimeoutMs} ms (--host-init-timeout)`);
        return;
      }
    }
    for (const run of this.#runs.values()) {
      if (run.stopAskedAt !== undefined && now - run.stopAskedAt > hostAbortTimeoutMs) {
        this.#declareHung(`a run asked to stop had not ended after ${hostAbortTimeoutMs} ms (--host-abort-timeout)`);
        return;
      }
    }
    const initOnly = [...this.#calls.values()].every((call) => call.method === 'open' || call.method === 'init');
    const busy = this.#runs.size > 0 || (this.#calls.size > 0 && !initOnly);
    if (busy && now - this.#lastHeard > hostRunTimeoutMs) {
      this.#declareHung(`the runtime gave no callback for ${hostRunTimeoutMs} ms (--host-run-timeout)`);
    }
  }

  #declareHung(detail: string): void {
    this.#fail({ reason: 'hang', detail });
    this.#terminate();
  }

  #declareBroken(error: unknown): void {
    const detail = `the model host broke the protocol: ${error instanceof Error ? error.message : String(error)}`;
    this.#fail({ reason: 'protocol', detail });
    this.#terminate();
  }

  /** SIGTERM, then SIGKILL after a short grace: a hung native call may ignore the first. */
  #terminate(): void {
    if (this.#exit || this.pid === undefined) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), TERM_GRACE_MS);
    timer.unref();
    void this.exited.then(() => clearTimeout(timer));
    this.#channel?.destroy();
  }

  /** The process exited or its pipe closed: once both are seen (or shortly after one), the end is known. */
  #settle(): void {
    if (this.#exit && this.#channelClosed) this.#stopWatchdog();
    if (this.#ending || this.#failed) return;
    if (this.#exit && this.#channelClosed) {
      clearTimeout(this.#settleTimer);
      this.#fail(this.#describeExit());
      return;
    }
    // The pipe ends first when the host dies; its exit status follows within moments (and the
    // other way round: the last frames may still be in the pipe when 'exit' arrives).
    this.#settleTimer ??= setTimeout(() => {
      if (!this.#ending && !this.#failed) {
        this.#fail(this.#describeExit());
        if (!this.#exit) this.#terminate();
      }
    }, EXIT_SETTLE_MS);
  }

  #describeExit(): HostFailure {
    const exit = this.#exit;
    // A host that never sent a frame did not get through opening the runtime.
    if (exit && exit.code !== null && !this.#heard) {
      return {
        reason: 'spawn',
        exitCode: exit.code,
        detail: `the model host exited with code ${exit.code} before it answered anything: its Node did not start, or the runtime ended it while loading (see the host's stderr in the log, and ${HOST_NODE_ENV})`,
      };
    }
    if (exit?.signal) return { reason: 'crash', signal: exit.signal, detail: `the runtime crashed: the model host was killed by ${exit.signal}` };
    if (exit && exit.code !== null) {
      return { reason: 'exit', exitCode: exit.code, detail: `the model host exited with code ${exit.code} (the runtime called exit)` };
    }
    return { reason: 'crash', detail: 'the model host closed its pipe and stopped answering' };
  }

  #fail(failure: HostFailure, exhausted = false): void {
    if (this.#failed || this.#ending) return;
    this.#failed = true;
    this.#logger.error({ ...this.#tag, reason: failure.reason, signal: failure.signal, exit_code: failure.exitCode }, failure.detail);
    let error = this.#events.onFailure(failure);
    if (exhausted) error = new RkllmError(failure.detail, 'RESOURCE_EXHAUSTED');
    this.#rejectCalls(error);
    this.#runs.clear();
    this.#channel?.unref();
  }

  #rejectCalls(error: RkllmError): void {
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) call.reject(error);
  }

  #stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }
}
