// What a method handler is given besides its params.

import type { Connection } from '../rpc/connection';
import type { RequestId } from '../rpc/envelope';
import type { ServerCore } from '../server/core';

export interface MethodContext {
  readonly core: ServerCore;
  readonly connection: Connection;
  /** The request's id; undefined for a notification. */
  readonly requestId: RequestId | undefined;
  /** HTTP event streams: the reply to this message waits until `ended` settles. */
  holdUntil(ended: Promise<void>): void;
}
