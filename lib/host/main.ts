// The entry of a model host: a child process of the server that opens the runtime through
// lib/runtime and runs one model on it, so that a crash or a hang of librkllmrt ends this
// process and never the server's. It speaks the framed protocol of ./protocol on fd 3; fds 1 and
// 2 belong to the runtime's own log lines, which the server reads and logs. Nothing here writes
// to stdout.
//
// It never outlives the server: the kernel kills it when the server dies (PR_SET_PDEATHSIG,
// armed first thing), and it exits when fd 3 reaches its end. Its JavaScript thread stays free
// for that: every native call runs on the addon's own threads.

import * as net from 'net';
import { RkllmError } from '../errors';
import { loadNative } from '../native/load';
import type { Model } from '../runtime/model';
import type { Run } from '../runtime/run';
import { openRuntime, type OpenRuntimeOptions, type Runtime } from '../runtime/runtime';
import { HOST_PARENT_ENV, HOST_PROTOCOL_FD } from './host-env';
import {
  FRAME_JSON,
  FrameReader,
  asToHost,
  encodeJson,
  encodeTokens,
  type CallMessage,
  type FromHost,
  type RunMessage,
  type WireError,
} from './protocol';

let runtime: Runtime | undefined;
let model: Model | undefined;
const runs = new Map<number, Run>();

const parentPid = loadNative().setParentDeathSignal();
// The server may have died before the signal was armed: then this process has a new parent.
if (String(parentPid) !== process.env[HOST_PARENT_ENV]) process.exit(0);

const channel = new net.Socket({ fd: HOST_PROTOCOL_FD, readable: true, writable: true });
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(0));

function send(message: FromHost): void {
  channel.write(encodeJson(message));
}

function wireError(error: unknown): WireError {
  if (error instanceof RkllmError) {
    const wire: WireError = { message: error.message, code: error.code };
    if (error.field !== undefined) wire.field = error.field;
    if (error.reason !== undefined) wire.reason = error.reason;
    if (error.fn !== undefined) wire.fn = error.fn;
    if (error.returnCode !== undefined) wire.returnCode = error.returnCode;
    if (error.facts !== undefined) wire.facts = { ...error.facts };
    return wire;
  }
  return { message: error instanceof Error ? error.message : String(error), code: 'INTERNAL' };
}

function kvSizes(): number[] {
  return model && !model.destroyed ? model.getKvCacheSize() : [];
}

function loadedModel(): Model {
  if (!model) throw new RkllmError('no model is loaded in this host', 'INTERNAL');
  return model;
}

async function answer(call: CallMessage): Promise<unknown> {
  const args = call.args;
  switch (call.method) {
    case 'open':
      runtime = await openRuntime(args[0] as OpenRuntimeOptions);
      // Registered after the runtime's load-time teardown, so it runs before it: an exit() in the
      // library ends this host at once with the library's own code.
      loadNative().exitWithoutTeardown();
      return { info: runtime.info, defaults: runtime.createDefaultParam() };
    case 'init':
      if (!runtime) throw new RkllmError('the runtime is not open in this host', 'INTERNAL');
      model = await runtime.loadModel(args[0] as Parameters<Runtime['loadModel']>[0]);
      return null;
    case 'abort':
      return loadedModel().abort();
    case 'loadLora':
      return loadedModel().loadLora(args[0] as Parameters<Model['loadLora']>[0]);
    case 'loadPromptCache':
      return loadedModel().loadPromptCache(args[0] as string);
    case 'releasePromptCache':
      return loadedModel().releasePromptCache();
    case 'clearKvCache':
      return loadedModel().clearKvCache(args[0] as boolean, args[1] as number[] | undefined, args[2] as number[] | undefined);
    case 'setChatTemplate':
      return loadedModel().setChatTemplate(args[0] as string, args[1] as string, args[2] as string);
    case 'setFunctionTools':
      return loadedModel().setFunctionTools(args[0] as string, args[1] as string, args[2] as string);
    case 'setCrossAttnParams':
      return loadedModel().setCrossAttnParams(args[0] as Parameters<Model['setCrossAttnParams']>[0]);
    case 'destroy':
      return loadedModel().destroy();
  }
}

/** The server's thread limit, applied before what may start a thread (protocol.ts, Nproc). */
function applyThreadLimit(nproc: number | undefined): void {
  if (nproc !== undefined) loadNative().setThreadLimit(nproc);
}

function onCall(call: CallMessage): void {
  applyThreadLimit(call.nproc);
  answer(call).then(
    (value) => send({ type: 'reply', id: call.id, ok: true, value: value ?? null, kv: kvSizes() }),
    (error: unknown) => send({ type: 'reply', id: call.id, ok: false, error: wireError(error), kv: kvSizes() }),
  );
}

function onRun(message: RunMessage): void {
  let run: Run;
  try {
    run = loadedModel().run(message.input as Parameters<Model['run']>[0], message.infer as Parameters<Model['run']>[1]);
  } catch (error) {
    send({ type: 'end', run: message.run, status: 'error', error: wireError(error), kv: kvSizes() });
    return;
  }
  runs.set(message.run, run);
  // One frame per batch the addon delivered.
  run.onChunks((chunks) => channel.write(encodeTokens(message.run, chunks)));
  run.then(
    (result) => {
      runs.delete(message.run);
      send({ type: 'end', run: message.run, status: 'finish', perf: result.perf, kv: kvSizes() });
    },
    (error: unknown) => {
      runs.delete(message.run);
      if (error instanceof RkllmError && error.code === 'RUN_ABORTED') {
        send({ type: 'end', run: message.run, status: 'aborted', kv: kvSizes() });
      } else {
        send({ type: 'end', run: message.run, status: 'error', error: wireError(error), kv: kvSizes() });
      }
    },
  );
}

const reader = new FrameReader((kind, body) => {
  const message = kind === FRAME_JSON ? asToHost(JSON.parse(body.toString('utf8'))) : undefined;
  // The server never sends anything else: a frame that is not one of its messages means the
  // stream is broken, and this host with it.
  if (!message) process.exit(2);
  if (message.type === 'call') onCall(message);
  else if (message.type === 'run') onRun(message);
  else if (message.type === 'limits') applyThreadLimit(message.nproc);
  else {
    applyThreadLimit(message.nproc);
    runs.get(message.run)?.cancel();
  }
});

channel.on('data', (chunk: Buffer) => {
  try {
    reader.push(chunk);
  } catch {
    process.exit(2);
  }
});
