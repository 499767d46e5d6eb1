// One entry of the method table: its name, what it does, its params as a TypeBox schema (which
// validates the input, types the handler and is the JSON Schema rkllm_list_functions reports),
// and whether it is cheap (answered at once, never behind an inference, and still during
// shutdown).

import type { Static, TObject } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { MethodContext } from './context';

export interface MethodEntry {
  readonly name: string;
  readonly description: string;
  readonly params: TObject;
  readonly cheap: boolean;
  readonly validator: TypeCheck<TObject>;
  /** Params already passed the validator. May return a value or a promise of one. */
  readonly handler: (params: unknown, context: MethodContext) => unknown;
}

export interface MethodSpec<S extends TObject> {
  name: string;
  description: string;
  params: S;
  cheap: boolean;
  handler: (params: Static<S>, context: MethodContext) => unknown;
}

export function defineMethod<S extends TObject>(spec: MethodSpec<S>): MethodEntry {
  return {
    name: spec.name,
    description: spec.description,
    params: spec.params,
    cheap: spec.cheap,
    validator: TypeCompiler.Compile(spec.params) as unknown as TypeCheck<TObject>,
    handler: spec.handler as (params: unknown, context: MethodContext) => unknown,
  };
}
