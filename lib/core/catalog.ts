// The catalog: every model a request may name. In order of precedence: the start-up model
// (handle "default"), the models of the config file, every .rkllm file under the models
// directories (named from its file, with optional settings in a sidecar JSON file beside it:
// qwen2.5-1.5b-instruct-w8a8.rkllm and qwen2.5-1.5b-instruct-w8a8.json), and, on the emulated
// runtime, its bundled sim:NAME models. A name taken by an earlier entry is not given to a later
// one; a file already in the catalog through an earlier entry is not listed twice.
//
// The directories are read with fs.promises (never blocking the JS thread), again when a listing
// is older than RESCAN_MS or a name is not found, so a file copied in while the server runs is
// found without a restart.

import { promises as fsp } from 'fs';
import * as path from 'path';
import type { Logger } from 'pino';
import { isSimModelPath, listSimModels } from '../runtime/emulated';
import {
  DEFAULT_KEEP_ALIVE_MS,
  KEEP_FOREVER,
  ModelSettingsSchema,
  checkSettings,
  modelNameFromFile,
  namesOf,
  resolveSettings,
  type ModelEntry,
  type ModelSettings,
  type ResolvedModelSettings,
} from './model-settings';

/** The handle of the start-up model, as docs/protocol.md promises. */
export const STARTUP_HANDLE = 'default';
/** A listing older than this is read again. */
const RESCAN_MS = 2000;
/** Readings of the directories start at most this often. */
const MIN_RESCAN_MS = 100;
/** How deep under a models directory .rkllm files are looked for. */
const MAX_DEPTH = 4;
/** Files looked at per directory tree, so a huge tree cannot stall a listing. */
const MAX_FILES = 10_000;

export type CatalogSource = 'startup' | 'config' | 'models-dir' | 'sim';

export interface CatalogEntry {
  /** The name it is listed under. */
  readonly name: string;
  /** Every name it answers to (the name first). */
  readonly names: readonly string[];
  /** The registry handle it is loaded under. */
  readonly handle: string;
  readonly source: CatalogSource;
  /** What rkllm_init is given: a file path, or 'sim:NAME'. */
  readonly modelPath: string;
  /** The file as listed: relative to its models directory, or the path given in the settings. */
  readonly file: string;
  /** Where relative LoRA paths of its settings are taken from. */
  readonly directory: string;
  readonly settings: ResolvedModelSettings;
}

export interface CatalogSettings {
  /** Directories scanned for .rkllm files. */
  readonly modelsDirs: readonly string[];
  /** The models of the config file (beside the start-up model). */
  readonly models: readonly ModelEntry[];
  /** Settings of the command line's model flags: under each catalog model's own, over the start-up model's. */
  readonly modelDefaults: ModelSettings;
  /** Whether the bundled sim:NAME models are in the catalog (the runtime is the emulated one). */
  readonly emulated: boolean;
}

function sameFile(a: string, b: string): boolean {
  return isSimModelPath(a) || isSimModelPath(b) ? a === b : path.resolve(a) === path.resolve(b);
}

/** A listing shows the operator's own files by name only: where they live is nobody else's business. */
function shownFile(modelPath: string): string {
  return isSimModelPath(modelPath) ? modelPath : path.basename(modelPath);
}

export class Catalog {
  readonly #settings: CatalogSettings;
  readonly #logger: Logger;
  #startup: CatalogEntry | undefined;
  #configured: CatalogEntry[];
  #sim: CatalogEntry[];
  #scanned: CatalogEntry[] = [];
  /** When the last finished reading of the directories started. */
  #scannedAt = 0;
  #scan: { readonly startedAt: number; readonly done: Promise<void> } | undefined;
  /** Sidecars and names already warned about, so a rescan does not repeat the warning. */
  readonly #warned = new Set<string>();

  constructor(settings: CatalogSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
    this.#configured = settings.models.map((entry) => {
      const resolved = resolveSettings({ path: entry.path }, [settings.modelDefaults, entry], {
        name: modelNameFromFile(entry.path),
        keepAliveMs: DEFAULT_KEEP_ALIVE_MS,
      });
      return this.#entry(resolved, 'config', entry.path, shownFile(entry.path), path.dirname(path.resolve(entry.path)));
    });
    // The bundled sim models are a handful of small files read once, at start-up.
    this.#sim = settings.emulated
      ? listSimModels().map((name) => {
          const modelPath = `sim:${name}`;
          const resolved = resolveSettings({ path: modelPath }, [settings.modelDefaults], { name: modelPath, keepAliveMs: DEFAULT_KEEP_ALIVE_MS });
          return this.#entry(resolved, 'sim', modelPath, modelPath, process.cwd());
        })
      : [];
  }

  /** The model loaded at start-up: the command line's model flags win over its config-file settings. */
  setStartup(entry: ModelEntry): CatalogEntry {
    const resolved = resolveSettings(entry, [this.#settings.modelDefaults], { name: STARTUP_HANDLE, keepAliveMs: KEEP_FOREVER });
    // Listed under its own name when it has one (--alias gives it one), and always answering to "default".
    const name = entry.name ?? resolved.aliases[0] ?? STARTUP_HANDLE;
    const named = { ...resolved, name, aliases: [...new Set([...resolved.aliases, STARTUP_HANDLE, modelNameFromFile(entry.path)])].filter((n) => n !== name) };
    const directory = isSimModelPath(entry.path) ? process.cwd() : path.dirname(path.resolve(entry.path));
    this.#startup = { ...this.#entry(named, 'startup', entry.path, shownFile(entry.path), directory), handle: STARTUP_HANDLE };
    return this.#startup;
  }

  get startup(): CatalogEntry | undefined {
    return this.#startup;
  }

  /** Every entry, in precedence order, each name given once. */
  async entries(): Promise<CatalogEntry[]> {
    if (Date.now() - this.#scannedAt > RESCAN_MS) await this.#rescan(Date.now());
    return this.#merge();
  }

  /**
   * Whether the catalog holds a model a client could name, the emulated runtime's bundled
   * fixtures left out (the listings leave them out too), as of the last reading of the
   * directories; a reading older than RESCAN_MS is started for the next call.
   */
  hasServableModels(): boolean {
    if (Date.now() - this.#scannedAt > RESCAN_MS) this.#rescan(Date.now()).catch(() => undefined);
    return this.#merge().some((entry) => entry.source !== 'sim');
  }

  /** The entry a name belongs to; a miss reads the directories again first (a file may just have arrived). */
  async find(name: string): Promise<CatalogEntry | undefined> {
    const known = this.#merge().find((entry) => entry.names.includes(name));
    if (known) return known;
    await this.#rescan(Date.now());
    return this.#merge().find((entry) => entry.names.includes(name));
  }

  #entry(settings: ResolvedModelSettings, source: CatalogSource, modelPath: string, file: string, directory: string): CatalogEntry {
    return { name: settings.name, names: namesOf(settings), handle: settings.name, source, modelPath, file, directory, settings };
  }

  #merge(): CatalogEntry[] {
    const taken = new Set<string>();
    const merged: CatalogEntry[] = [];
    const candidates = [...(this.#startup ? [this.#startup] : []), ...this.#configured, ...this.#scanned, ...this.#sim];
    for (const entry of candidates) {
      const free = entry.names.filter((name) => !taken.has(name));
      const same = merged.findIndex((earlier) => sameFile(earlier.modelPath, entry.modelPath));
      if (same !== -1) {
        // One file, one model: the earlier entry answers to the later one's names as well.
        for (const name of free) taken.add(name);
        if (free.length > 0) merged[same] = { ...merged[same], names: [...merged[same].names, ...free] };
        continue;
      }
      if (!free.includes(entry.name)) {
        this.#warnOnce(`name:${entry.name}:${entry.modelPath}`, { model: entry.file, name: entry.name }, 'a model name is taken by an earlier catalog entry; this one is left out');
        continue;
      }
      for (const name of free) taken.add(name);
      merged.push(free.length === entry.names.length ? entry : { ...entry, names: free });
    }
    return merged;
  }

  /**
   * Resolves once a reading of the directories that started at `since` or later has finished.
   * Readings are shared and at most one starts per MIN_RESCAN_MS, so a flood of unknown names
   * costs a few directory walks a second, not one each.
   */
  async #rescan(since: number): Promise<void> {
    for (;;) {
      if (this.#scannedAt >= since) return;
      const current = this.#scan;
      if (current) {
        await current.done;
        if (current.startedAt >= since) return;
        continue;
      }
      const wait = this.#scannedAt + MIN_RESCAN_MS - Date.now();
      if (wait > 0) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        continue;
      }
      const startedAt = Date.now();
      const scan = {
        startedAt,
        done: this.#readDirectories().finally(() => {
          this.#scan = undefined;
          this.#scannedAt = startedAt;
        }),
      };
      this.#scan = scan;
      await scan.done;
      return;
    }
  }

  async #readDirectories(): Promise<void> {
    const found: CatalogEntry[] = [];
    for (const dir of this.#settings.modelsDirs) {
      const files: string[] = [];
      await this.#walk(path.resolve(dir), 0, files);
      files.sort();
      for (const file of files) {
        const entry = await this.#fileEntry(path.resolve(dir), file);
        if (entry) found.push(entry);
      }
    }
    this.#scanned = found;
  }

  async #walk(dir: string, depth: number, files: string[]): Promise<void> {
    let children;
    try {
      children = await fsp.readdir(dir, { withFileTypes: true });
    } catch (error) {
      this.#warnOnce(`dir:${dir}`, { dir, err: (error as NodeJS.ErrnoException).code }, 'a models directory cannot be read');
      return;
    }
    for (const child of children) {
      if (files.length >= MAX_FILES) return;
      const full = path.join(dir, child.name);
      if (child.isDirectory() && depth < MAX_DEPTH) await this.#walk(full, depth + 1, files);
      else if ((child.isFile() || child.isSymbolicLink()) && /\.rkllm$/i.test(child.name)) files.push(full);
    }
  }

  async #fileEntry(root: string, file: string): Promise<CatalogEntry | undefined> {
    const sidecar = file.replace(/\.rkllm$/i, '.json');
    let settings: ModelSettings = {};
    let text: string | undefined;
    try {
      text = await fsp.readFile(sidecar, 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      try {
        settings = checkSettings(ModelSettingsSchema, JSON.parse(text), path.basename(sidecar));
      } catch (error) {
        // A board owner's typo: the model is left out and the log says where, rather than loading it with settings it does not have.
        this.#warnOnce(`sidecar:${sidecar}:${text.length}`, { sidecar, err: (error as Error).message }, 'a model settings file is not valid; its model is left out');
        return undefined;
      }
    }
    const resolved = resolveSettings({ path: file }, [this.#settings.modelDefaults, settings], {
      name: modelNameFromFile(file),
      keepAliveMs: DEFAULT_KEEP_ALIVE_MS,
    });
    return this.#entry(resolved, 'models-dir', file, path.relative(root, file), path.dirname(file));
  }

  #warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#logger.warn(fields, message);
  }
}

/** What a listing says of one model, for every front end to render in its own shape. */
export interface ModelListing {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly source: CatalogSource | 'rkllm_init';
  /** The file, as the catalog lists it; undefined for rkllm_init's models. */
  readonly file: string | undefined;
  readonly loaded: boolean;
  /** The registry handle while loaded. */
  readonly handle: string | undefined;
  /** Its max_context_len: the setting for catalog models, undefined for rkllm_init's (their param is the client's). */
  readonly context_length: number | undefined;
  /** -1: kept forever; undefined for rkllm_init's. */
  readonly keep_alive_ms: number | undefined;
  /** While loaded and idle: when its last request ended (ms since the epoch), where its keep-alive counts from. */
  readonly idle_since?: number;
}
