// The web page's files (the package's web/ folder), served from a fixed list: a URL names one of
// the files below or nothing, so no path a client writes ever reaches the file system. The files
// are read once, asynchronously, on the first request for any of them, and kept in memory.

import * as fs from 'fs/promises';
import * as path from 'path';

export interface StaticFile {
  readonly name: string;
  readonly contentType: string;
}

/** Every file the page is made of, by the name it has in web/ and in /web/<name>. */
export const WEB_FILES: readonly StaticFile[] = [
  { name: 'index.html', contentType: 'text/html; charset=utf-8' },
  { name: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  { name: 'style.css', contentType: 'text/css; charset=utf-8' },
];

/**
 * What every response of the page carries. Scripts, styles and requests come from this server
 * only, with nothing inline: a string that found its way into the page cannot run. The page may
 * not be framed (clickjacking), and a served file is never read as another type than its own.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export interface LoadedFile extends StaticFile {
  readonly body: Buffer;
}

export class StaticFiles {
  readonly #directory: string;
  readonly #byName = new Map<string, StaticFile>();
  #loading: Promise<Map<string, LoadedFile>> | undefined;

  constructor(directory: string, files: readonly StaticFile[] = WEB_FILES) {
    this.#directory = directory;
    for (const file of files) this.#byName.set(file.name, file);
  }

  /** Whether `name` is one of the files (a plain name from the list; nothing else is). */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The file by its name, read on the first call; rejects naming the file when the folder lacks one. */
  async get(name: string): Promise<LoadedFile | undefined> {
    if (!this.#byName.has(name)) return undefined;
    this.#loading ??= this.#load();
    return (await this.#loading).get(name);
  }

  async #load(): Promise<Map<string, LoadedFile>> {
    const loaded = new Map<string, LoadedFile>();
    for (const file of this.#byName.values()) {
      const location = path.join(this.#directory, file.name);
      try {
        loaded.set(file.name, { ...file, body: await fs.readFile(location) });
      } catch (error) {
        // Asked again on the next request: the folder may have been restored meanwhile.
        this.#loading = undefined;
        const detail = error instanceof Error ? error.message : String(error);
        throw new Error(`the web page's file ${location} could not be read (${detail}); the package's web/ folder is incomplete`);
      }
    }
    return loaded;
  }
}
