// Prompt caches: the KV state of several conversations per model, kept on disk with the
// runtime's own means, so a conversation that comes back after another one (another user, a
// side request such as Open WebUI's title prompt) does not pay for its whole history again.
//
// A chat run on an empty KV cache carries the whole conversation as its prompt; it saves a
// prompt cache at the end of its prefill (prompt_cache_params.save_prompt_cache) into a file of
// this store, recorded under the messages it covers. A later request whose history extends
// those messages loads the file (rkllm_load_prompt_cache) before its run, and the runtime
// prefills only what follows the cached prefix. Only runs on an empty KV cache save: there the
// prompt is the whole prefix, whatever the runtime's file holds beyond it.
//
// The files are the server's own: one directory per server process under the configured
// directory (left over by a process that died: removed at the next start), one subdirectory per
// loaded model (removed when the model is unloaded: a cache is never loaded into another
// model), and one byte budget over all of them, least recently used out first. Nothing depends
// on a file being there: a file gone, changed or refused by the runtime means a full prefill.
//
// Every file operation is asynchronous (the JS thread never waits on storage).

import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import type { Logger } from 'pino';

export interface PromptCacheSettings {
  /** Where the server keeps its prompt caches; undefined: no prompt caches. */
  readonly dir: string | undefined;
  /** The most bytes the files may hold at once, over every model; 0: no prompt caches. */
  readonly maxBytes: number;
}

export interface PromptCacheEntry {
  readonly file: string;
  /** The model state the prompt was made under: template strings and tools, as JSON. */
  readonly stateKey: string;
  /** The normalised messages the cached prompt covers, ending with the turn the run answered. */
  readonly messages: readonly string[];
  /** Tokens the saving run prefilled: all of its prompt, on an empty KV cache. */
  readonly tokens: number;
  readonly bytes: number;
  lastUsed: number;
}

/** A save the runtime was asked for, not yet known to have happened. */
export interface PendingSave {
  readonly file: string;
  readonly stateKey: string;
  readonly messages: readonly string[];
}

/** A directory name of this store's: the pid of the process that made it, and a random part. */
const PROCESS_DIR = /^(\d+)-[0-9a-f]{8}$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isPrefixOf(prefix: readonly string[], messages: readonly string[]): boolean {
  return prefix.length <= messages.length && prefix.every((entry, index) => entry === messages[index]);
}

export class PromptCacheStore {
  readonly #settings: PromptCacheSettings;
  readonly #logger: Logger;
  readonly #models = new Map<object, ModelPromptCaches>();
  #opening: Promise<string | undefined> | undefined;
  #closed = false;

  constructor(settings: PromptCacheSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
  }

  get enabled(): boolean {
    return this.#settings.dir !== undefined && this.#settings.maxBytes > 0 && !this.#closed;
  }

  /** The caches of one loaded model (the key is its LoadedModel); undefined when caching is off. */
  forModel(key: object, name: string): ModelPromptCaches | undefined {
    if (!this.enabled) return undefined;
    let caches = this.#models.get(key);
    if (!caches) {
      caches = new ModelPromptCaches(this, name, this.#logger);
      this.#models.set(key, caches);
    }
    return caches;
  }

  /** The model is gone: its files go too. */
  async forget(key: object): Promise<void> {
    const caches = this.#models.get(key);
    if (!caches) return;
    this.#models.delete(key);
    await caches.removeAll();
  }

  /** Bytes held over every model. */
  get bytes(): number {
    let total = 0;
    for (const caches of this.#models.values()) total += caches.bytes;
    return total;
  }

  /** This process's directory, made at first use; undefined when it cannot be made (logged once). */
  processDir(): Promise<string | undefined> {
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<string | undefined> {
    const base = this.#settings.dir!;
    try {
      await fsp.mkdir(base, { recursive: true, mode: 0o700 });
      await this.#removeOrphans(base);
      const dir = path.join(base, `${process.pid}-${randomBytes(4).toString('hex')}`);
      await fsp.mkdir(dir, { mode: 0o700 });
      return dir;
    } catch (error) {
      this.#logger.warn({ err: error, dir: base }, 'prompt caches are off: their directory could not be made');
      this.#closed = true;
      return undefined;
    }
  }

  async #removeOrphans(base: string): Promise<void> {
    for (const name of await fsp.readdir(base)) {
      const match = PROCESS_DIR.exec(name);
      if (!match || Number(match[1]) === process.pid || pidAlive(Number(match[1]))) continue;
      await fsp.rm(path.join(base, name), { recursive: true, force: true });
      this.#logger.debug({ dir: name }, 'removed the prompt caches of a server process that is gone');
    }
  }

  /** Least recently used files out until the budget holds with `room` bytes to spare; `keep` stays whatever its age. */
  async evict(keep: PromptCacheEntry | undefined, room = 0): Promise<void> {
    while (this.bytes + room > this.#settings.maxBytes) {
      let oldest: { caches: ModelPromptCaches; entry: PromptCacheEntry } | undefined;
      for (const caches of this.#models.values()) {
        for (const entry of caches.entries) {
          if (entry !== keep && (!oldest || entry.lastUsed < oldest.entry.lastUsed)) oldest = { caches, entry };
        }
      }
      if (!oldest) return;
      await oldest.caches.drop(oldest.entry, 'evicted (the prompt cache budget is full)', 'debug');
    }
  }

  /** Shutdown: every file of this process goes. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#models.clear();
    const dir = this.#opening ? await this.#opening : undefined;
    if (dir !== undefined) await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }

  get maxBytes(): number {
    return this.#settings.maxBytes;
  }
}

/** The prompt caches of one loaded model. */
export class ModelPromptCaches {
  readonly #store: PromptCacheStore;
  readonly #name: string;
  readonly #logger: Logger;
  #entries: PromptCacheEntry[] = [];
  #dir: Promise<string | undefined> | undefined;
  #files = 0;
  #removed = false;
  /** Bytes per prompt token of the last file saved (the runtime's KV bytes per token, plus its header). */
  #bytesPerToken: number | undefined;

  constructor(store: PromptCacheStore, name: string, logger: Logger) {
    this.#store = store;
    this.#name = name;
    this.#logger = logger;
  }

  get entries(): readonly PromptCacheEntry[] {
    return this.#entries;
  }

  get bytes(): number {
    return this.#entries.reduce((sum, entry) => sum + entry.bytes, 0);
  }

  /** The entry covering the longest prefix of `messages` made under `stateKey`. */
  longest(stateKey: string, messages: readonly string[]): PromptCacheEntry | undefined {
    if (this.#removed) return undefined;
    let best: PromptCacheEntry | undefined;
    for (const entry of this.#entries) {
      if (entry.stateKey !== stateKey || !isPrefixOf(entry.messages, messages)) continue;
      if (!best || entry.messages.length > best.messages.length) best = entry;
    }
    return best;
  }

  /** Whether the entry's file is still the one saved (it exists with its size); else it is dropped. */
  async check(entry: PromptCacheEntry): Promise<boolean> {
    const size = await fsp.stat(entry.file).then(
      (stat) => stat.size,
      () => undefined,
    );
    if (size === entry.bytes) return true;
    await this.drop(entry, size === undefined ? 'its file is gone' : `its file changed size (${entry.bytes} -> ${size} bytes)`, 'warn');
    return false;
  }

  /**
   * Where the next save goes, with room made for it first so the budget holds while the runtime
   * writes: `tokens` (an estimate of the prompt) at the bytes per token of this model's last
   * save. Undefined: no save (the directory cannot be made).
   */
  async nextFile(tokens: number): Promise<string | undefined> {
    if (this.#removed) return undefined;
    if (this.#bytesPerToken !== undefined) {
      // An estimate: a file that comes out larger than the whole budget is not kept (commit).
      await this.#store.evict(undefined, Math.min(Math.ceil(tokens * this.#bytesPerToken), this.#store.maxBytes));
    }
    this.#dir ??= this.#makeDir();
    const dir = await this.#dir;
    return dir === undefined ? undefined : path.join(dir, `${++this.#files}.cache`);
  }

  async #makeDir(): Promise<string | undefined> {
    const parent = await this.#store.processDir();
    if (parent === undefined) return undefined;
    const dir = await fsp.mkdtemp(path.join(parent, `${this.#name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}-`));
    return dir;
  }

  /** The run saved its prompt cache: the file is recorded (its size read from disk) and the budget enforced. */
  async commit(save: PendingSave, tokens: number): Promise<void> {
    try {
      await this.#commit(save, tokens);
    } catch (error) {
      this.#logger.warn({ err: error, model: this.#name }, 'a prompt cache could not be recorded');
    }
  }

  async #commit(save: PendingSave, tokens: number): Promise<void> {
    const stat = await fsp.stat(save.file).catch(() => undefined);
    if (!stat) {
      this.#logger.warn({ model: this.#name, file: save.file }, 'the runtime saved no prompt cache where it was asked to');
      return;
    }
    if (this.#removed) {
      await fsp.rm(save.file, { force: true });
      return;
    }
    if (stat.size > this.#store.maxBytes) {
      this.#logger.debug({ model: this.#name, bytes: stat.size }, 'a prompt cache larger than the whole budget is not kept');
      await fsp.rm(save.file, { force: true });
      return;
    }
    // Of the same conversation's earlier saves only the latest stays (an edit of the last message
    // or a regenerate of the last answer starts from it); a save of the same messages replaces it.
    const earlier = this.#entries
      .filter((entry) => entry.stateKey === save.stateKey && isPrefixOf(entry.messages, save.messages))
      .sort((a, b) => b.messages.length - a.messages.length);
    const keptEarlier = earlier.find((entry) => entry.messages.length < save.messages.length);
    for (const old of earlier) if (old !== keptEarlier) await this.drop(old, 'superseded by a later save of its conversation', 'debug');
    if (tokens > 0) this.#bytesPerToken = stat.size / tokens;
    const entry: PromptCacheEntry = { ...save, tokens, bytes: stat.size, lastUsed: Date.now() };
    this.#entries.push(entry);
    this.#logger.debug({ model: this.#name, tokens, bytes: stat.size, messages: save.messages.length }, 'prompt cache saved');
    await this.#store.evict(entry);
  }

  /** A save that did not happen or is not wanted (the run failed or was cut). */
  async discard(save: PendingSave): Promise<void> {
    await fsp.rm(save.file, { force: true }).catch(() => undefined);
  }

  async drop(entry: PromptCacheEntry, reason: string, level: 'debug' | 'warn'): Promise<void> {
    this.#entries = this.#entries.filter((kept) => kept !== entry);
    this.#logger[level]({ model: this.#name, file: path.basename(entry.file), tokens: entry.tokens }, `prompt cache dropped: ${reason}`);
    await fsp.rm(entry.file, { force: true }).catch(() => undefined);
  }

  /** No more saves or loads for this model (its runtime failed in a run that saved one). */
  async turnOff(reason: string): Promise<void> {
    if (this.#removed) return;
    this.#logger.warn({ model: this.#name, reason }, 'prompt caches are off for this model: the runtime failed in a run that saved one');
    await this.removeAll();
  }

  async removeAll(): Promise<void> {
    this.#removed = true;
    this.#entries = [];
    const dir = this.#dir ? await this.#dir : undefined;
    if (dir !== undefined) await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** What ties a prompt cache to its model: the model file it was loaded from (the handle for one without). */
export function modelFileOf(loaded: { readonly handle: string; readonly param: { readonly model_path?: string } }): string {
  return loaded.param.model_path ?? loaded.handle;
}

/** Files remembered per server (the oldest forgotten beyond this). */
const REMEMBERED_OWNERS = 4096;

/**
 * Which model saved each prompt cache a JSON-RPC client had saved in the cache directory: a
 * cache holds one model's KV state, so loading it into another model is refused by name rather
 * than handed to a runtime that may not check (files saved before this server started are not
 * known here and go to the runtime as they are).
 */
export class PromptCacheOwners {
  readonly #owners = new Map<string, string>();

  noteSaved(file: string, model: string): void {
    this.#owners.delete(file);
    this.#owners.set(file, model);
    if (this.#owners.size > REMEMBERED_OWNERS) this.#owners.delete(this.#owners.keys().next().value as string);
  }

  /** The model (its file, or its handle) that saved `file`; undefined: not saved through this server. */
  ownerOf(file: string): string | undefined {
    return this.#owners.get(file);
  }
}
