// The HTTP routes of the front ends beside JSON-RPC, as the one HttpRoutes the transport takes:
// each request goes to the front end that owns its path (OpenAI's /v1, Ollama's /api, the web
// page's /, /web/* and /status).

import type * as http from 'http';
import type { HttpRoutes } from '../transports/http';

export class FrontEndRoutes implements HttpRoutes {
  readonly #frontEnds: readonly HttpRoutes[];

  constructor(frontEnds: readonly HttpRoutes[]) {
    this.#frontEnds = frontEnds;
  }

  owns(path: string, method?: string): boolean {
    return this.#owner(path, method) !== undefined;
  }

  isPublic(path: string, method?: string): boolean {
    return this.#owner(path, method)?.isPublic?.(path, method) === true;
  }

  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void {
    this.#owner(path, request.method)?.handle(request, response, path, body);
  }

  refuseUnauthorized(response: http.ServerResponse, path: string): void {
    (this.#owner(path) ?? this.#frontEnds[0]).refuseUnauthorized(response, path);
  }

  refuse(response: http.ServerResponse, status: number, message: string, code: string, path: string): void {
    (this.#owner(path) ?? this.#frontEnds[0]).refuse(response, status, message, code, path);
  }

  #owner(path: string, method?: string): HttpRoutes | undefined {
    return this.#frontEnds.find((frontEnd) => frontEnd.owns(path, method));
  }
}
