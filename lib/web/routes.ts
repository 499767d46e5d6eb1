// The web page's routes on the HTTP transport: GET / (the page), GET /web/<file> (its script and
// style) and GET /status (the status view's JSON). The page's files are public, since the page
// must load to ask for the API key; /status is behind the key like the APIs the page calls.
// POST / stays JSON-RPC's: these routes do not own it.

import type * as http from 'http';
import type { ServerCore } from '../core/core';
import { writeJsonReply } from '../rpc/json-body';
import { SECURITY_HEADERS, StaticFiles } from './static-files';
import { statusReport } from './status';

const PAGE = 'index.html';
const FILES_PREFIX = '/web/';

/** The shape of this module's own answers (the page reads `error.message`). */
interface WebErrorBody {
  error: { message: string; code: string };
}

export class WebRoutes {
  readonly #core: ServerCore;
  readonly #files: StaticFiles;
  readonly #log: (error: unknown, path: string) => void;

  /** `directory`: the package's web/ folder. `log`: a failure to answer (a missing file). */
  constructor(core: ServerCore, directory: string, log: (error: unknown, path: string) => void = () => undefined) {
    this.#core = core;
    this.#files = new StaticFiles(directory);
    this.#log = log;
  }

  /** `/` for every method but POST (JSON-RPC's), `/status`, and everything under `/web/`. */
  owns(path: string, method?: string): boolean {
    if (path === '/') return method !== undefined && method !== 'POST';
    return path === '/status' || path === '/web' || path.startsWith(FILES_PREFIX);
  }

  /** The page and its files need no key; /status does. */
  isPublic(path: string): boolean {
    return path !== '/status';
  }

  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string): void {
    const method = request.method ?? 'GET';
    if (path === '/status') {
      if (method !== 'GET' && method !== 'HEAD') return this.#methodNotAllowed(response, method, path);
      statusReport(this.#core).then(
        (report) => writeJson(response, 200, report),
        (error: unknown) => this.#failed(response, error, path),
      );
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') return this.#methodNotAllowed(response, method, path);
    const name = path === '/' ? PAGE : path.slice(FILES_PREFIX.length);
    if (path !== '/' && (!path.startsWith(FILES_PREFIX) || !this.#files.has(name))) {
      writeError(response, 404, `no such file: ${path}; the web page is GET /`, 'not_found');
      return;
    }
    this.#files.get(name).then(
      (file) => {
        if (response.destroyed || response.headersSent || file === undefined) return;
        response.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.contentType, 'content-length': file.body.length, 'cache-control': 'no-cache' });
        response.end(file.body);
      },
      (error: unknown) => this.#failed(response, error, path),
    );
  }

  refuseUnauthorized(response: http.ServerResponse): void {
    writeError(response, 401, 'send the API key as "Authorization: Bearer <key>"', 'invalid_api_key');
  }

  refuse(response: http.ServerResponse, status: number, message: string, code: string): void {
    writeError(response, status, message, code);
  }

  #methodNotAllowed(response: http.ServerResponse, method: string, path: string): void {
    // `/` also takes POST, as JSON-RPC.
    const allowed = path === '/' ? 'GET, HEAD, POST' : 'GET, HEAD';
    writeError(response, 405, `${method} is not allowed on ${path}; use ${allowed}`, 'method_not_allowed', { allow: allowed });
  }

  #failed(response: http.ServerResponse, error: unknown, path: string): void {
    this.#log(error, path);
    writeError(response, 500, error instanceof Error ? error.message : String(error), 'internal_error');
  }
}

function writeJson(response: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  writeJsonReply(response, status, body, 'application/json', { ...SECURITY_HEADERS, ...headers, 'cache-control': 'no-store' });
}

function writeError(response: http.ServerResponse, status: number, message: string, code: string, headers: http.OutgoingHttpHeaders = {}): void {
  const body: WebErrorBody = { error: { message, code } };
  writeJson(response, status, body, headers);
}
