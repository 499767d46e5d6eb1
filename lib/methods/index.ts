// The method table: every method the server answers, assembled from one file per area. Dispatch,
// validation and rkllm_list_functions all read this table and nothing else.

import type { MethodEntry } from './define';
import { inferenceMethods } from './inference';
import { modelStateMethods } from './model-state';
import { modelMethods } from './models';
import { runtimeInfoMethods } from './runtime-info';
import { streamMethods } from './streams';
import { testHookMethods } from './test-hooks';

export type { MethodEntry } from './define';
export type { MethodContext } from './context';

export interface MethodTableOptions {
  enableTestHooks: boolean;
}

export function buildMethodTable(options: MethodTableOptions): ReadonlyMap<string, MethodEntry> {
  const entries = [
    ...runtimeInfoMethods,
    ...modelMethods,
    ...inferenceMethods,
    ...modelStateMethods,
    ...streamMethods,
    ...(options.enableTestHooks ? testHookMethods : []),
  ];
  return new Map(entries.map((entry) => [entry.name, entry]));
}

/** What rkllm_list_functions answers: name, description and params (JSON Schema) per method. */
export function describeMethods(table: ReadonlyMap<string, MethodEntry>): { name: string; description: string; params: unknown }[] {
  // A round trip through JSON drops TypeBox's symbol-keyed metadata, leaving plain JSON Schema.
  return [...table.values()].map((entry) => ({
    name: entry.name,
    description: entry.description,
    params: JSON.parse(JSON.stringify(entry.params)) as unknown,
  }));
}
