// What keeps web pages from driving the server through a browser on its machine or network, on
// both HTTP ports (HTTP and WebSocket):
// - Host: a page that rebinds its own DNS name to this machine (DNS rebinding) sends its own name
//   as Host. Only the names the server is reached by are accepted: the bound address, localhost
//   and the loopback addresses, the machine's own addresses when bound to a wildcard, and the
//   names in allowedHosts.
// - Origin: a browser names the page behind every cross-origin request and WebSocket upgrade.
//   Only the origins in allowedOrigins (and the server's own, Host for Host) get in; a request
//   without Origin (curl, SDKs, other programs) is not a page's and is let through.
// - CORS: an allowed origin gets its preflight answered and Access-Control-Allow-Origin on every
//   response; any other gets 403 before anything runs.
// The JSON content type that POSTs must carry is checked by the HTTP transport itself.

import type * as http from 'http';
import * as os from 'os';
import { RkllmError } from '../errors';
import { normalizeAddress } from './admission';

/** The browser-facing settings of the HTTP and WebSocket ports. */
export interface WebSettings {
  /** Host names accepted besides the server's own addresses ('*': any; '.example.lan': it and its subdomains). */
  readonly allowedHosts: readonly string[];
  /** Origins (scheme://host[:port]) whose pages may use the server ('*': any; 'null': sandboxed pages). */
  readonly allowedOrigins: readonly string[];
  /** A request's headers must arrive within this, from its first byte (or the connection's start). */
  readonly headersTimeoutMs: number;
  /** A whole request, body included, must arrive within this. */
  readonly bodyTimeoutMs: number;
  /** A keep-alive connection with no request in flight is closed after this. */
  readonly idleTimeoutMs: number;
}

/** How long the machine's own addresses are remembered (interfaces come and go with DHCP). */
const INTERFACE_CACHE_MS = 5000;
const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** What the guard decided about one request; an allowed Origin is echoed in Access-Control-Allow-Origin. */
export type GuardVerdict = { readonly allowed: true; readonly corsOrigin?: string } | { readonly allowed: false; readonly error: RkllmError };

export class WebGuard {
  private readonly anyHost: boolean;
  private readonly hostNames: Set<string>;
  private readonly hostSuffixes: string[];
  private readonly anyOrigin: boolean;
  private readonly origins: Set<string>;
  private boundHost: string | undefined;
  private interfaces: { names: Set<string>; at: number } | undefined;

  constructor(
    settings: Pick<WebSettings, 'allowedHosts' | 'allowedOrigins'>,
    /** The host the transport was told to bind to: a name there is one the server is reached by. */
    configuredHost: string,
  ) {
    const hosts = settings.allowedHosts.map((host) => host.trim().toLowerCase()).filter((host) => host !== '');
    this.anyHost = hosts.includes('*');
    this.hostSuffixes = hosts.filter((host) => host.startsWith('.')).map((host) => stripDot(host));
    this.hostNames = new Set([...LOOPBACK_NAMES, ...hosts.filter((host) => !host.startsWith('.')).map((host) => hostnameOf(host) ?? host)]);
    const configured = hostnameOf(configuredHost);
    if (configured !== undefined && !WILDCARDS.has(configuredHost)) this.hostNames.add(configured);
    this.anyOrigin = settings.allowedOrigins.includes('*');
    this.origins = new Set(settings.allowedOrigins.map((origin) => normalizeOrigin(origin) ?? origin));
  }

  /** The address actually bound, once listening: a wildcard admits the machine's own addresses. */
  bound(host: string): void {
    this.boundHost = host;
    const name = hostnameOf(host);
    if (name !== undefined && !WILDCARDS.has(host)) this.hostNames.add(name);
  }

  check(request: http.IncomingMessage): GuardVerdict {
    const host = request.headers.host;
    if (host !== undefined && !this.hostAllowed(host, request)) {
      const name = hostnameOf(host) ?? host;
      return {
        allowed: false,
        error: refusal(
          `the Host header "${host}" does not name this server, so the request is refused (a web page may have pointed its own name ` +
            `at this machine: DNS rebinding). If clients reach the server by that name, allow it with --allowed-hosts ${name}`,
          'allowed-hosts',
        ),
      };
    }
    const origin = request.headers.origin;
    if (origin === undefined) return { allowed: true };
    const normalized = normalizeOrigin(origin) ?? origin;
    if (this.anyOrigin || this.origins.has(normalized) || this.isOwnOrigin(normalized, host)) return { allowed: true, corsOrigin: origin };
    return {
      allowed: false,
      error: refusal(
        `requests from web pages at ${origin} are refused (a page could otherwise drive the server through the visitor's browser). ` +
          `To let pages of that origin use the server, start it with --allowed-origins ${normalized}`,
        'allowed-origins',
      ),
    };
  }

  private hostAllowed(header: string, request: http.IncomingMessage): boolean {
    if (this.anyHost) return true;
    const name = hostnameOf(header);
    if (name === undefined) return false;
    if (this.hostNames.has(name)) return true;
    if (this.hostSuffixes.some((suffix) => name === suffix || name.endsWith(`.${suffix}`))) return true;
    // The address this client connected to is this machine's, whatever the bind.
    if (name === hostnameOf(normalizeAddress(request.socket.localAddress))) return true;
    return this.boundHost !== undefined && WILDCARDS.has(this.boundHost) && this.ownAddresses().has(name);
  }

  /** The page was served by this server itself (the same scheme, host and port as the request). */
  private isOwnOrigin(origin: string, host: string | undefined): boolean {
    return host !== undefined && origin === normalizeOrigin(`http://${host}`);
  }

  private ownAddresses(): Set<string> {
    const now = Date.now();
    if (this.interfaces === undefined || now - this.interfaces.at > INTERFACE_CACHE_MS) {
      const names = new Set<string>();
      for (const entries of Object.values(os.networkInterfaces())) {
        for (const entry of entries ?? []) {
          const name = hostnameOf(entry.address.split('%')[0]);
          if (name !== undefined) names.add(name);
        }
      }
      this.interfaces = { names, at: now };
    }
    return this.interfaces.names;
  }
}

/** The CORS headers of a response to an allowed origin. */
export function corsHeaders(origin: string): Record<string, string> {
  return { 'access-control-allow-origin': origin, vary: 'Origin' };
}

/** The answer to a CORS preflight from an allowed origin: what the page may send. */
export function preflightHeaders(origin: string, request: http.IncomingMessage): Record<string, string> {
  const asked = request.headers['access-control-request-headers'];
  // Echo only a plain list of header names; anything else gets the headers our clients send.
  const allowHeaders = typeof asked === 'string' && /^[\w-]+(\s*,\s*[\w-]+)*$/.test(asked.trim()) ? asked.trim() : 'authorization, content-type, accept';
  const headers: Record<string, string> = {
    ...corsHeaders(origin),
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': allowHeaders,
    'access-control-max-age': '600',
  };
  // Chrome's Private Network Access asks before a public page talks to a private address.
  if (request.headers['access-control-request-private-network'] === 'true') headers['access-control-allow-private-network'] = 'true';
  return headers;
}

/** A CORS preflight: OPTIONS naming the method the page wants to use. */
export function isPreflight(request: http.IncomingMessage): boolean {
  return request.method === 'OPTIONS' && request.headers.origin !== undefined && request.headers['access-control-request-method'] !== undefined;
}

/** application/json, or any type ending in +json; parameters (charset) allowed. */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const type = header.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^[a-z0-9!#$&^_.-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(type);
}

/** An origin as browsers write it (lowercase scheme and host, no default port), or undefined if it is none. */
export function normalizeOrigin(origin: string): string | undefined {
  if (origin === 'null') return origin;
  try {
    const url = new URL(origin);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

/**
 * The host name of a Host header or an address, as a URL parser reads it ([::1] bracketed),
 * without port or final dot; undefined for anything that is not a plain host[:port].
 */
function hostnameOf(host: string): string | undefined {
  const bare = /^[0-9a-f:.]+$/i.test(host) && host.split(':').length > 2 ? `[${host}]` : host;
  if (!/^([a-z0-9_.~-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$/i.test(bare)) return undefined;
  try {
    const name = new URL(`http://${bare}/`).hostname;
    return name === '' ? undefined : stripDot(name);
  } catch {
    return undefined;
  }
}

function stripDot(name: string): string {
  return name.replace(/^\./, '').replace(/\.$/, '');
}

function refusal(detail: string, setting: string): RkllmError {
  return new RkllmError(detail, 'FORBIDDEN', { facts: { setting: `--${setting}` } });
}
