// Methods that describe the runtime and the server itself. All cheap, all answered from memory.

import { Type } from '@sinclair/typebox';
import { RKLLM_CONSTANTS } from '../runtime/constants';
import type { RKLLMParam } from '../native/binding';
import type { ServerCore } from '../core/core';
import { defineMethod, type MethodEntry } from './define';

const defaultsCache = new WeakMap<ServerCore, RKLLMParam>();
const constantsCache = new WeakMap<ServerCore, object>();

export const runtimeInfoMethods: MethodEntry[] = [
  defineMethod({
    name: 'rkllm_createDefaultParam',
    description: "The runtime's own RKLLMParam defaults (rkllm_createDefaultParam), extend_param nested.",
    params: Type.Object({}),
    cheap: true,
    handler: (_params, { core }) => {
      // Constant for the life of the runtime, so it is asked once.
      let defaults = defaultsCache.get(core);
      if (!defaults) {
        defaults = core.runtime.createDefaultParam();
        defaultsCache.set(core, defaults);
      }
      return defaults;
    },
  }),
  defineMethod({
    name: 'rkllm_get_constants',
    description:
      'The RKLLM enums by their C names, the runtime in use (path, ABI and how it was told, release, emulated or not), and each loaded model\'s host process ' +
      '(pid, state, restarts, resident memory, last failure).',
    params: Type.Object({}),
    cheap: true,
    handler: (_params, { core }) => {
      let constants = constantsCache.get(core);
      if (!constants) {
        const info = core.runtime.info;
        const runtime: Record<string, unknown> = { path: info.path, abi: info.abi, abi_source: info.abiSource, emulated: info.emulated };
        if (info.release !== undefined) runtime.release = info.release;
        if (info.note !== undefined) runtime.note = info.note;
        constants = { ...RKLLM_CONSTANTS, runtime };
        constantsCache.set(core, constants);
      }
      // The hosts change; the rest is constant.
      return { ...constants, models: core.hostReports() };
    },
  }),
  defineMethod({
    name: 'rkllm_list_functions',
    description: 'Every method this server answers, with its params as JSON Schema.',
    params: Type.Object({}),
    cheap: true,
    handler: (_params, { functionList }) => functionList,
  }),
];
