// C programmers write NULL for a pointer they do not pass, and their JSON ports send `null`
// (`lora_params: null`, `start_pos: null`, `extend_param.reserved: null`). Wherever a method's
// schema says a member is optional and null is not one of its values, a null there is taken as
// the member being absent. The rule is read off the schemas, once per method, so it holds for
// every member of every struct without being restated. Null keeps its own meaning where it has
// one: in a member whose schema accepts null (cancel's request_id: a request's id may be null),
// and in one marked with nullIsAValue (a model handle: C's NULL handle names no model, and must
// not be taken for "the only model loaded", or rkllm_destroy {handle: null} would unload a model
// nobody named).

import { KindGuard, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const NULL_IS_A_VALUE = Symbol('null is a value here');

/** Marks a member in which null is not "absent" (the schema says whether it is accepted). */
export function nullIsAValue<T extends TSchema>(schema: T): T {
  return { ...schema, [NULL_IS_A_VALUE]: true };
}

function nullMeansAbsent(member: TSchema, optional: boolean): boolean {
  return optional && (member as { [NULL_IS_A_VALUE]?: true })[NULL_IS_A_VALUE] !== true && !Value.Check(member, null);
}

/** Returns `value` with the absent nulls left out; the same object when there were none. */
export type NullDropper = (value: unknown) => unknown;

interface Member {
  /** A null here is the member left out. */
  readonly nullIsAbsent: boolean;
  /** The members below, if any can hold an absent null. */
  readonly inner: NullDropper | undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectDropper(members: ReadonlyMap<string, Member>): NullDropper {
  return (value) => {
    if (!isPlainObject(value)) return value;
    let copy: Record<string, unknown> | undefined;
    for (const key of Object.keys(value)) {
      const member = members.get(key);
      if (member === undefined) continue;
      const given = value[key];
      if (given === null && member.nullIsAbsent) {
        copy ??= { ...value };
        delete copy[key];
        continue;
      }
      if (member.inner === undefined) continue;
      const dropped = member.inner(given);
      if (dropped !== given) {
        copy ??= { ...value };
        copy[key] = dropped;
      }
    }
    return copy ?? value;
  };
}

function arrayDropper(items: NullDropper): NullDropper {
  return (value) => {
    if (!Array.isArray(value)) return value;
    let copy: unknown[] | undefined;
    for (let index = 0; index < value.length; index++) {
      const dropped = items(value[index]);
      if (dropped !== value[index]) {
        copy ??= [...value];
        copy[index] = dropped;
      }
    }
    return copy ?? value;
  };
}

/** A union: the value goes to the first variant of its own kind (object or array). */
function unionDropper(variants: readonly TSchema[]): NullDropper | undefined {
  const objectVariant = variants.find((variant) => KindGuard.IsObject(variant));
  const arrayVariant = variants.find((variant) => KindGuard.IsArray(variant));
  const forObject = objectVariant && compileNullDropper(objectVariant);
  const forArray = arrayVariant && compileNullDropper(arrayVariant);
  if (forObject === undefined && forArray === undefined) return undefined;
  return (value) => {
    if (Array.isArray(value)) return forArray ? forArray(value) : value;
    return forObject ? forObject(value) : value;
  };
}

/** The dropper for values of `schema`, or undefined when nothing under it can be an absent null. */
export function compileNullDropper(schema: TSchema): NullDropper | undefined {
  if (KindGuard.IsObject(schema)) {
    const required = new Set(schema.required ?? []);
    const members = new Map<string, Member>();
    for (const [key, member] of Object.entries(schema.properties)) {
      members.set(key, { nullIsAbsent: nullMeansAbsent(member, !required.has(key)), inner: compileNullDropper(member) });
    }
    return objectDropper(members);
  }
  if (KindGuard.IsArray(schema)) {
    // Arrays of numbers (embeddings, token ids) are never walked.
    const items = compileNullDropper(schema.items);
    return items && arrayDropper(items);
  }
  if (KindGuard.IsUnion(schema)) return unionDropper(schema.anyOf);
  return undefined;
}
