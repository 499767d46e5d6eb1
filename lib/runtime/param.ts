// Builds a complete RKLLMParam from a caller's partial one: checked field by field (a JSON-RPC
// client's typo must come back as an error naming the field, not be ignored), then merged over
// the runtime's own defaults, extend_param merged field by field.

import type { TObject } from '@sinclair/typebox';
import type { AbiName, ExtendParam, RKLLMParam } from '../native/binding';
import * as Structs from '../native/structs';
import { argumentError as invalid } from './argument-error';

/** What callers pass: any subset of RKLLMParam, model_path required, extend_param partial. */
export type PartialParam = Partial<Omit<RKLLMParam, 'model_path' | 'extend_param'>> & {
  model_path: string;
  extend_param?: Partial<ExtendParam>;
};

interface FieldSpec {
  kind: Structs.CType;
  /** Set when the field exists in some ABIs only. */
  onlyIn?: readonly AbiName[];
}

/** The scalar members of a struct, by name (nested structs are left to their own table). */
function fieldSpecs(struct: TObject): Readonly<Record<string, FieldSpec>> {
  const specs: Record<string, FieldSpec> = {};
  for (const [name, member] of Object.entries(struct.properties)) {
    const kind = Structs.cTypeOf(member);
    if (kind === undefined) continue;
    const onlyIn = Structs.onlyInAbi(member);
    specs[name] = onlyIn === undefined ? { kind } : { kind, onlyIn };
  }
  return specs;
}

const PARAM_FIELDS = fieldSpecs(Structs.RKLLMParam);
const EXTEND_FIELDS = fieldSpecs(Structs.ExtendParam);

const INTEGER_RANGES: Readonly<Record<Exclude<Structs.CType, 'string' | 'boolean' | 'float'>, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  size: [0, 2 ** 53],
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkValue(field: string, spec: FieldSpec, value: unknown): void {
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string') throw invalid(field, `expected a string, got ${describe(value)}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw invalid(field, `expected a boolean, got ${describe(value)}`);
      return;
    case 'float':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw invalid(field, `expected a finite number, got ${describe(value)}`);
      }
      return;
    default: {
      const [min, max] = INTEGER_RANGES[spec.kind];
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        throw invalid(field, `expected an integer in ${min}..${max} (${spec.kind}), got ${describe(value)}`);
      }
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Checks `given` against `fields`; undefined members count as absent. */
function checkFields(
  prefix: string,
  given: Record<string, unknown>,
  fields: Readonly<Record<string, FieldSpec>>,
  abi: AbiName,
  skip: ReadonlySet<string>,
): void {
  for (const [key, value] of Object.entries(given)) {
    if (skip.has(key) || value === undefined) continue;
    const field = `${prefix}.${key}`;
    const spec = Object.prototype.hasOwnProperty.call(fields, key) ? fields[key] : undefined;
    if (!spec) throw invalid(field, 'not a field of RKLLMParam');
    if (spec.onlyIn && !spec.onlyIn.includes(abi)) {
      throw invalid(field, `exists in ABI ${spec.onlyIn.join(' and ')} only; this runtime speaks ABI ${abi}`);
    }
    checkValue(field, spec, value);
  }
}

/** The members of `given` that are set, except `leaveOut`. */
function setMembers(given: Record<string, unknown>, leaveOut?: string): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(given)) {
    if (value !== undefined && key !== leaveOut) result[key] = value;
  }
  return result;
}

/**
 * Validates `given` for `abi` and merges it over `defaults`. `resolveModelPath` maps the caller's
 * model_path to the file to open (it may throw for an unknown 'sim:NAME').
 */
export function buildParam(
  given: unknown,
  defaults: RKLLMParam,
  abi: AbiName,
  resolveModelPath: (modelPath: string) => string,
): RKLLMParam {
  if (!isPlainObject(given)) throw invalid('param', `expected an object, got ${describe(given)}`);
  checkFields('param', given, PARAM_FIELDS, abi, new Set(['extend_param']));
  if (given.model_path === undefined) throw invalid('param.model_path', 'required');
  if (given.model_path === '') throw invalid('param.model_path', 'must not be empty');

  const extend = given.extend_param;
  if (extend !== undefined && !isPlainObject(extend)) {
    throw invalid('param.extend_param', `expected an object, got ${describe(extend)}`);
  }
  if (extend) checkFields('param.extend_param', extend, EXTEND_FIELDS, abi, new Set());

  // Every member was checked against the field tables above, so the casts below hold.
  return {
    ...defaults,
    ...(setMembers(given, 'extend_param') as Partial<RKLLMParam>),
    model_path: resolveModelPath(given.model_path as string),
    extend_param: { ...defaults.extend_param, ...(setMembers(extend ?? {}) as Partial<ExtendParam>) },
  };
}
