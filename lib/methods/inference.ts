// rkllm_run and rkllm_run_async: queued on the model's scheduler, one on the NPU at a time. A
// run on the start-up model ("default", or no handle) while it is still loading waits for it
// (lib/core/residency.ts bounds the wait) instead of finding no model.

import { Type } from '@sinclair/typebox';
import { STARTUP_HANDLE } from '../core/catalog';
import { RkllmError } from '../errors';
import type { MethodContext } from './context';
import { defineMethod, type MethodEntry } from './define';
import { readRunRequest, startRun, type RunMode } from './runs';
import { Handle, INPUT_MEMBERS, RKLLMInferParams, RKLLMInput } from './schemas';

const RunParams = Type.Object({
  handle: Handle,
  rkllm_input: Type.Optional(RKLLMInput),
  rkllm_infer_params: Type.Optional(RKLLMInferParams),
  stream: Type.Optional(Type.Boolean({ description: 'rkllm_run only: push rkllm_result notifications before the result' })),
  // The flat shorthands: RKLLMInput's and RKLLMInferParam's members at the top of params.
  ...Type.Partial(Type.Object(INPUT_MEMBERS)).properties,
  ...RKLLMInferParams.properties,
});

type RunParamsType = (typeof RunParams)['static'];

function run(params: RunParamsType, context: MethodContext, mode: RunMode): unknown {
  const { core, connection } = context;
  const startup = params.handle === undefined || params.handle === STARTUP_HANDLE ? core.residency.startupLoading() : undefined;
  if (startup === undefined) {
    const loaded = core.models.resolve(params.handle);
    return startRun(context, loaded, readRunRequest(params), mode);
  }
  // Bad input is refused now, not after the load.
  const request = readRunRequest(params);
  return startup.then(() => {
    if (core.sessions.isClosed(connection)) {
      throw new RkllmError('the connection closed while the start-up model loaded', 'REQUEST_CANCELLED', { facts: { reason: 'connection_closed' } });
    }
    return startRun(context, core.models.resolve(params.handle), request, mode);
  });
}

export const inferenceMethods: MethodEntry[] = [
  defineMethod({
    name: 'rkllm_run',
    description:
      'Runs an inference and answers with the final result. With stream: true, rkllm_result notifications come first ' +
      '(a connection that cannot be pushed to gets { stream_id } at once and polls).',
    params: RunParams,
    cheap: false,
    handler: (params, context) => run(params, context, params.stream === true ? 'stream' : 'plain'),
  }),
  defineMethod({
    name: 'rkllm_run_async',
    description: 'Starts an inference and answers at once with { stream_id }; the output follows as rkllm_result notifications (or poll).',
    params: RunParams,
    cheap: false,
    handler: (params, context) => run(params, context, 'async'),
  }),
];
