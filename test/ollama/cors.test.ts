// The transport's CORS allowlist (--allowed-origins) holds for the Ollama routes as for the
// others: an allowed page's preflight is answered and its requests carry the CORS header; any
// other page is refused in Ollama's shape.

import { HttpClient, ServerProcess, stopAllServers } from '../integration/client';

jest.setTimeout(30_000);

const PAGE = 'http://app.example:3000';
let http: HttpClient;

beforeAll(async () => {
  const server = await ServerProcess.start({ disable: ['stdio'], args: ['--allowed-origins', PAGE] });
  http = new HttpClient(server.port('http'));
});

afterAll(async () => {
  await http?.close();
  await stopAllServers();
});

describe('CORS on the Ollama routes', () => {
  it('answers an allowed origin\'s preflight', async () => {
    const reply = await http.raw('OPTIONS', '/api/chat', undefined, {
      origin: PAGE,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    expect(reply.status).toBeLessThan(300);
    expect(reply.headers['access-control-allow-origin']).toBe(PAGE);
    expect(String(reply.headers['access-control-allow-methods'])).toContain('POST');
  });

  it('sets the header on an allowed origin\'s request', async () => {
    const reply = await http.raw('GET', '/api/tags', undefined, { origin: PAGE });
    expect(reply.status).toBe(200);
    expect(reply.headers['access-control-allow-origin']).toBe(PAGE);
  });

  it('refuses another origin with 403 in Ollama\'s shape', async () => {
    const reply = await http.raw('GET', '/api/tags', undefined, { origin: 'http://evil.example' });
    expect(reply.status).toBe(403);
    expect(reply.json).toEqual({ error: expect.stringContaining('--allowed-origins') });
    expect(reply.headers['access-control-allow-origin']).toBeUndefined();
  });
});
