// Shared by the native suites: opening the emulated runtime, loading sim models on distinct
// domains, collecting a run's chunks with a bound, and scratch folders.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ABI_NAMES, openRuntime, RkllmError, type AbiName, type Model, type PartialParam, type Run, type RunChunk, type Runtime } from '../../lib';

export const ABIS: AbiName[] = ['1.2', '1.3'];
/** Every ABI, 1.3.1 included: for the suites whose assertions hold for each (ABIS is for those
 * that tell 1.2 from 1.3 by name). */
export const ALL_ABIS: AbiName[] = [...ABI_NAMES];

export function openSim(abi: AbiName): Promise<Runtime> {
  return openRuntime({ path: 'sim', abi });
}

// Two live models need distinct base_domain_id values; the lowest free one keeps ids small.
const domainsInUse = new Set<number>();
const modelDomains = new Map<Model, number>();

function takeDomain(): number {
  let id = 0;
  while (domainsInUse.has(id)) id++;
  domainsInUse.add(id);
  return id;
}

/** Loads a sim model on a domain of its own (freed again by destroyModel). */
export function loadSim(runtime: Runtime, name: string, param: Partial<PartialParam> = {}): Promise<Model> {
  return loadModelFile(runtime, `sim:${name}`, param);
}

/** Loads a model by its path ('sim:NAME' or an emulated model file) on a domain of its own. */
export async function loadModelFile(runtime: Runtime, modelPath: string, param: Partial<PartialParam> = {}): Promise<Model> {
  const domain = takeDomain();
  try {
    const model = await runtime.loadModel({
      ...param,
      model_path: modelPath,
      extend_param: { base_domain_id: domain, ...param.extend_param },
    });
    modelDomains.set(model, domain);
    return model;
  } catch (error) {
    domainsInUse.delete(domain);
    throw error;
  }
}

/** Destroys the model unless it already is, and frees its domain. */
export async function destroyModel(model: Model | undefined): Promise<void> {
  if (!model) return;
  try {
    if (!model.destroyed) await model.destroy();
  } finally {
    const domain = modelDomains.get(model);
    if (domain !== undefined) domainsInUse.delete(domain);
    modelDomains.delete(model);
  }
}

/** Iterates a run to its end, never taking more than `limit` chunks; returns chunks and the end. */
export async function drain(
  run: Run,
  limit = 1_000_000,
  onChunk?: (chunk: RunChunk, index: number) => void,
): Promise<{ chunks: RunChunk[]; error?: unknown }> {
  const chunks: RunChunk[] = [];
  try {
    for await (const chunk of run) {
      onChunk?.(chunk, chunks.length);
      chunks.push(chunk);
      if (chunks.length >= limit) throw new Error(`more than ${limit} chunks`);
    }
  } catch (error) {
    return { chunks, error };
  }
  return { chunks };
}

/** The `count to n` answer of the emulated models. */
export function countText(n: number): string {
  return Array.from({ length: n }, (_, i) => String(i + 1)).join(', ');
}

/** Resolves with the error a promise rejects with; fails the test if it resolves. */
export async function rejectionOf(promise: PromiseLike<unknown>): Promise<RkllmError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(RkllmError);
    return error as RkllmError;
  }
  throw new Error('expected a rejection, but it resolved');
}

export function makeScratchDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rkllm-serve-${label}-`));
}

export function removeScratchDir(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

/** Waits until `condition` holds, checking every few ms, for at most `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
