// The client media the load clients open: the package's own (lib/client), one per transport name
// of the bench (ws for WebSocket; http is an SSE event stream per request).

import { HttpTransport, TcpTransport, UdpTransport, WebSocketTransport, type ClientTransport } from '../../lib/client';

export function openMedium(transport: string, host: string, port: number): Promise<ClientTransport> {
  switch (transport) {
    case 'tcp':
      return TcpTransport.connect({ host, port });
    case 'udp':
      return UdpTransport.open({ host, port });
    case 'ws':
      return WebSocketTransport.connect({ url: `ws://${host}:${port}/` });
    case 'http':
      // Each request is its own POST with an event stream back, as an SSE client does.
      return Promise.resolve(new HttpTransport({ url: `http://${host}:${port}/`, eventStream: true }));
    default:
      return Promise.reject(new Error(`unknown transport ${transport}`));
  }
}
