// One entry of a method table: its name, what it does, its params as a TypeBox schema (which
// validates the input, types the handler and is the JSON Schema a listing reports), and whether
// it is cheap (answered at once, never behind an inference, and still during shutdown), and what
// the front end makes of the params before they are validated (prepare). The context type C is
// the front end's: the engine only passes it through.

import type { Static, TObject } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';

export interface MethodEntry<C> {
  readonly name: string;
  readonly description: string;
  readonly params: TObject;
  readonly cheap: boolean;
  readonly validator: TypeCheck<TObject>;
  /** Applied to the params before the validator sees them; returns what the validator checks. */
  readonly prepare: ((params: unknown) => unknown) | undefined;
  /** Params already passed the validator. May return a value or a promise of one. */
  readonly handler: (params: unknown, context: C) => unknown;
}

export interface MethodSpec<S extends TObject, C> {
  name: string;
  description: string;
  params: S;
  cheap: boolean;
  prepare?: (params: unknown) => unknown;
  handler: (params: Static<S>, context: C) => unknown;
}

export function defineMethod<S extends TObject, C>(spec: MethodSpec<S, C>): MethodEntry<C> {
  return {
    name: spec.name,
    description: spec.description,
    params: spec.params,
    cheap: spec.cheap,
    validator: TypeCompiler.Compile(spec.params) as unknown as TypeCheck<TObject>,
    prepare: spec.prepare,
    handler: spec.handler as (params: unknown, context: C) => unknown,
  };
}

/** name, description and params (plain JSON Schema) of every entry, for a method listing. */
export function describeMethods<C>(table: ReadonlyMap<string, MethodEntry<C>>): { name: string; description: string; params: unknown }[] {
  // A round trip through JSON drops TypeBox's symbol-keyed metadata, leaving plain JSON Schema.
  return [...table.values()].map((entry) => ({
    name: entry.name,
    description: entry.description,
    params: JSON.parse(JSON.stringify(entry.params)) as unknown,
  }));
}
