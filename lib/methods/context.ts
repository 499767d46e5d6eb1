// What a method handler is given besides its params.

import type { ChatSettingsSource } from '../core/chat-model';
import type { ServerCore, SubmittedRun } from '../core/core';
import type { RunFigures } from '../core/request-records';
import type { Session } from '../core/sessions';
import type { Connection } from '../rpc/connection';
import type { RequestId } from '../rpc/envelope';
import type { TransportName } from '../rpc/connection';

/** What a handler learns of its call for the request's record: the model it ran on, its run. */
export interface CallNotes {
  model?: string;
  run?: SubmittedRun;
  /** A run whose figures the handler read itself (rkllm_chat's generation), once it has ended. */
  figures?: RunFigures;
}

/** What test_connection_drop runs: the composition root's probe, which dials real clients. */
export type DropProbe = (transport: TransportName, handle: string | undefined) => Promise<unknown>;

export interface MethodContext {
  readonly core: ServerCore;
  readonly connection: Connection;
  /** The request's id; undefined for a notification. */
  readonly requestId: RequestId | undefined;
  /** HTTP event streams: the reply to this message waits until `ended` settles. */
  holdUntil(ended: Promise<void>): void;
  /** The connection's session in the core, opened on first use. */
  session(): Session;
  /** What rkllm_list_functions answers. */
  readonly functionList: readonly unknown[];
  /** Each model's chat template and truncation settings, as the chat front ends see them (rkllm_chat). */
  readonly chatSettings: ChatSettingsSource;
  /** test_connection_drop (test hooks only). */
  readonly dropProbe: DropProbe | undefined;
  /** Filled by the handler for the request's record (./records.ts). */
  readonly notes: CallNotes;
}
