// The method table: every method the server answers, assembled from one file per area. Dispatch,
// validation and rkllm_list_functions all read this table and nothing else.

import { chatMethods } from './chat';
import type { MethodEntry } from './define';
import { inferenceMethods } from './inference';
import { modelStateMethods } from './model-state';
import { modelMethods } from './models';
import { runtimeInfoMethods } from './runtime-info';
import { streamMethods } from './streams';
import { testHookMethods } from './test-hooks';

export interface MethodTableOptions {
  enableTestHooks: boolean;
}

export function buildMethodTable(options: MethodTableOptions): ReadonlyMap<string, MethodEntry> {
  const entries = [
    ...runtimeInfoMethods,
    ...modelMethods,
    ...inferenceMethods,
    ...chatMethods,
    ...modelStateMethods,
    ...streamMethods,
    ...(options.enableTestHooks ? testHookMethods : []),
  ];
  return new Map(entries.map((entry) => [entry.name, entry]));
}
