// The JSON-RPC method table's entries, with this front end's context (lib/rpc/define.ts).

import type { TObject } from '@sinclair/typebox';
import { defineMethod as defineEntry, type MethodEntry as Entry, type MethodSpec } from '../rpc/define';
import type { MethodContext } from './context';

export type MethodEntry = Entry<MethodContext>;

export function defineMethod<S extends TObject>(spec: MethodSpec<S, MethodContext>): MethodEntry {
  return defineEntry(spec);
}
