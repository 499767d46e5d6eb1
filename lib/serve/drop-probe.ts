// test_connection_drop: opens a real client of one transport to this server, starts a long
// streaming request on it, drops it abruptly, and watches the engine clean up. Graceful means:
// within a second the engine saw the connection close, the request ended as cancelled, and
// nothing of the connection (state, streams, requests) is left.
//
// The request must still be running when the connection drops, or there is nothing to cancel.
// On the emulated runtime, whose default model answers in microseconds, the probe therefore runs
// on a model of its own (sim:slow-abort: paced tokens, and an abort that takes a second to land,
// the hard case), loaded for the probe and destroyed after it, unless the client names a handle.

import { randomBytes } from 'crypto';
import type { ServerCore } from '../core/core';
import { RkllmError } from '../errors';
import type { TransportName } from '../rpc/connection';
import type { ClientDialer, DialedClient } from './dialers';

const DIAL_TIMEOUT_MS = 5000;
const REPLY_TIMEOUT_MS = 5000;
const GRACE_MS = 1000;
const PROBE_PROMPT = 'count to 1000000';
const PROBE_SIM_MODEL = { model_path: 'sim:slow-abort', max_context_len: 4096, max_new_tokens: 0 };

export interface DropReport {
  handled_gracefully: boolean;
  transport: TransportName;
  action: 'simulate_drop';
  /** The model the probe's request ran on. */
  handle: string;
  request_id: string;
  stream_id: string;
  connection_closed: boolean;
  cancelled: boolean;
  released: boolean;
  /** True when the request ended on its own before the drop (then nothing could be cancelled). */
  finished_before_drop: boolean;
  /** How long after the drop everything was released (null when it was not within the grace period). */
  released_ms: number | null;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RkllmError(`test_connection_drop: ${what} took more than ${ms} ms`, 'PROBE_FAILED')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The stream id from the reply to `requestId` (or from its first notification). */
function awaitStreamId(client: DialedClient, requestId: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.onMessage((text) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
        if (typeof message !== 'object' || message === null) continue;
        const { id, result, error, params } = message as Record<string, unknown>;
        if (id === requestId) {
          const streamId = (result as { stream_id?: unknown } | undefined)?.stream_id;
          if (typeof streamId === 'string') resolve(streamId);
          else reject(new RkllmError(`test_connection_drop: the probe request failed: ${JSON.stringify(error ?? result)}`, 'PROBE_FAILED'));
        }
        const notified = params as { request_id?: unknown; stream_id?: unknown } | undefined;
        if (notified?.request_id === requestId && typeof notified.stream_id === 'string') resolve(notified.stream_id);
      }
    });
  });
}

export async function probeConnectionDrop(
  core: ServerCore,
  dialers: ReadonlyMap<TransportName, ClientDialer>,
  transport: TransportName,
  handle: string | undefined,
): Promise<DropReport> {
  const dialer = dialers.get(transport);
  if (!dialer) throw new RkllmError(`no ${transport} transport is running in this server`, 'TRANSPORT_NOT_RUNNING', { facts: { transport } });
  const ownModel =
    handle === undefined && core.runtime.info.emulated
      ? await core.models.load(PROBE_SIM_MODEL, `drop-probe-${randomBytes(4).toString('hex')}`)
      : undefined;
  try {
    return await probe(core, transport, dialer, ownModel?.handle ?? core.models.resolve(handle).handle);
  } finally {
    if (ownModel) await core.models.destroy(ownModel).catch(() => undefined);
  }
}

async function probe(core: ServerCore, transport: TransportName, dialer: ClientDialer, handle: string): Promise<DropReport> {
  const client = await withTimeout(dialer.dial(), DIAL_TIMEOUT_MS, `dialling ${transport}`);
  const requestId = `drop-probe-${randomBytes(8).toString('hex')}`;
  let streamId: string;
  try {
    const streamIdReply = awaitStreamId(client, requestId);
    client.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: requestId,
        method: 'rkllm_run_async',
        params: { handle, rkllm_input: { input_type: 0, prompt_input: PROBE_PROMPT } },
      }),
    );
    streamId = await withTimeout(streamIdReply, REPLY_TIMEOUT_MS, 'the reply to the probe request');
  } catch (error) {
    client.drop();
    throw error;
  }

  const stream = core.streams.find(streamId);
  const connection = stream?.owner?.key;
  const job = stream?.job;
  const finishedBeforeDrop = job?.settled === true;
  const droppedAt = Date.now();
  client.drop();

  const closed = (): boolean => connection !== undefined && core.sessions.isClosed(connection);
  const cancelled = (): boolean => job !== undefined && job.outcome?.kind === 'ended';
  const released = (): boolean =>
    connection !== undefined && !core.sessions.has(connection) && core.streams.find(streamId) === undefined;
  while (!(closed() && cancelled() && released()) && Date.now() - droppedAt < GRACE_MS) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const graceful = closed() && cancelled() && released();
  const report: DropReport = {
    handled_gracefully: graceful,
    transport,
    action: 'simulate_drop',
    handle,
    request_id: requestId,
    stream_id: streamId,
    connection_closed: closed(),
    cancelled: cancelled(),
    released: released(),
    finished_before_drop: finishedBeforeDrop,
    released_ms: graceful ? Date.now() - droppedAt : null,
  };
  // A request that outlived the probe is stopped here so the model is free for whoever is next.
  if (!job?.settled) job?.cancel('cancel');
  core.logger.info(report, 'test_connection_drop');
  return report;
}
