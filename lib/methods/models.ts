// Methods that load, destroy and inspect models. rkllm_destroy and rkllm_abort reach every
// client of the model, so they ask the core's model-control policy first (--model-control).

import * as path from 'path';
import { Type } from '@sinclair/typebox';
import { reportLoadProgress } from '../core/load-progress';
import type { PartialParam } from '../runtime/param';
import { defineMethod, type MethodEntry } from './define';
import { controlledModel } from './model-state';
import { Handle, RKLLMParam } from './schemas';

type InitParam = (typeof RKLLMParam)['static'];

/** The param as the runtime takes it: the reserved bytes are no setting (they are always zero). */
function withoutReserved(param: InitParam): InitParam {
  if (param.extend_param?.reserved === undefined) return param;
  const extend = { ...param.extend_param };
  delete extend.reserved;
  return { ...param, extend_param: extend };
}

export const modelMethods: MethodEntry[] = [
  defineMethod({
    name: 'rkllm_init',
    description:
      'Loads a model (rkllm_init): param is merged over the runtime defaults. Optional handle names it; otherwise one is generated. ' +
      'extend_param.base_domain_id defaults to the lowest one no other model uses; so does the default value in a whole extend_param ' +
      '(rkllm_createDefaultParam passed back).',
    params: Type.Object({
      param: RKLLMParam,
      handle: Type.Optional(Type.String({ minLength: 1, description: 'Extension: the handle to load the model under' })),
    }),
    cheap: false,
    handler: async ({ param, handle }, { core, connection, notes }) => {
      // The same --max-loaded-models as the models loaded on demand: an idle one of those makes room.
      await core.residency.makeRoomForInit();
      const modelPath = core.paths.modelFile('param.model_path', param.model_path);
      const loading = core.models.load({ ...withoutReserved(param), model_path: modelPath } as PartialParam, handle);
      // A client's load takes as long as any (30-60 s on a board): the log shows it going on.
      const loaded = await reportLoadProgress(core.logger, { name: handle ?? path.basename(param.model_path), handle, path: param.model_path }, loading);
      core.control.loadedBy(loaded, connection);
      notes.model = loaded.handle;
      core.logger.info({ handle: loaded.handle, model: param.model_path, domain: loaded.domain }, 'model loaded');
      return { handle: loaded.handle, base_domain_id: loaded.domain };
    },
  }),
  defineMethod({
    name: 'rkllm_list_models',
    description:
      'Extension: every model a request may name (the catalog: the start-up model, the config file\'s models, the .rkllm files under --models-dir, ' +
      'sim:NAME on the emulated runtime), then the models loaded with rkllm_init; whether each is loaded, and its context length.',
    params: Type.Object({}),
    cheap: true,
    handler: async (_params, { core }) => ({
      models: (await core.residency.listing()).map((model) => ({
        name: model.name,
        aliases: model.aliases,
        source: model.source,
        ...(model.file === undefined ? {} : { file: model.file }),
        loaded: model.loaded,
        ...(model.handle === undefined ? {} : { handle: model.handle }),
        ...(model.context_length === undefined ? {} : { context_length: model.context_length }),
        ...(model.keep_alive_ms === undefined ? {} : { keep_alive_ms: model.keep_alive_ms }),
      })),
    }),
  }),
  defineMethod({
    name: 'rkllm_destroy',
    description: 'Unloads a model (rkllm_destroy). Its queued and running requests end with MODEL_DESTROYED.',
    params: Type.Object({ handle: Handle }),
    cheap: false,
    handler: async ({ handle }, context) => {
      const { core } = context;
      const loaded = controlledModel(context, handle, 'destroy');
      const code = await core.models.destroy(loaded);
      core.logger.info({ handle: loaded.handle }, 'model destroyed');
      return { return_code: code };
    },
  }),
  defineMethod({
    name: 'rkllm_abort',
    description:
      'Aborts the run going on this handle (rkllm_abort); its request ends as aborted. Queued requests stay queued. ' +
      "With --model-control owner, only the caller's own run is aborted; another client's is refused.",
    params: Type.Object({ handle: Handle }),
    cheap: false,
    handler: async ({ handle }, { core, connection }) => {
      const loaded = core.models.resolve(handle);
      if (core.control.policy === 'owner') {
        // Only the caller's own request, by its job: a native abort could land on the next run.
        core.control.abortTarget(loaded, connection)?.cancel('abort');
        return { return_code: 0 };
      }
      loaded.scheduler.noteAbort();
      return { return_code: await loaded.model.abort() };
    },
  }),
  defineMethod({
    name: 'rkllm_is_running',
    description: 'Whether a run is going on this handle (normalised across ABIs).',
    params: Type.Object({ handle: Handle }),
    cheap: true,
    handler: ({ handle }, { core }) => ({ running: core.models.resolve(handle).model.isRunning() }),
  }),
  defineMethod({
    name: 'rkllm_get_kv_cache_size',
    description: 'The KV cache size in tokens, one per batch entry (extend_param.n_batch).',
    params: Type.Object({ handle: Handle }),
    cheap: true,
    handler: ({ handle }, { core }) => ({ cache_sizes: core.models.resolve(handle).model.getKvCacheSize() }),
  }),
];
