// A WebSocket message's data (ws's RawData: one Buffer, fragments, or an ArrayBuffer) as text,
// the same on the client and the server.

import type WebSocket from 'ws';

export function textOfFrame(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
