// The JSON-RPC method table's entries, with this front end's context (lib/rpc/define.ts) and two
// rules every method's params follow, derived from its schema rather than written per method:
// - a member the method does not have is refused by name (a misspelt or misplaced setting must
//   not be silently dropped); a method without params ignores what it is given, since nothing
//   there can be mistaken for a setting;
// - null for an optional member is that member left out (./absent-nulls).

import type { TObject } from '@sinclair/typebox';
import { defineMethod as defineEntry, type MethodEntry as Entry, type MethodSpec } from '../rpc/define';
import { compileNullDropper } from './absent-nulls';
import type { MethodContext } from './context';

export type MethodEntry = Entry<MethodContext>;

export function defineMethod<S extends TObject>(spec: MethodSpec<S, MethodContext>): MethodEntry {
  const takesParams = Object.keys(spec.params.properties).length > 0;
  const params: S = takesParams ? { ...spec.params, additionalProperties: false } : spec.params;
  return defineEntry({ ...spec, params, prepare: takesParams ? compileNullDropper(params) : undefined });
}
