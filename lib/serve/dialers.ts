// Real clients of the server's own transports, for test_connection_drop: the probe dials one,
// starts a stream on it and drops it as a crashed client would. Each dialer is the package's own
// client (lib/client) pointed at the address the transport actually bound; stdio, which has one
// real peer (the parent), gets an in-process pipe pair attached to its transport instead.

import { PassThrough } from 'stream';
import { HttpTransport, StdioTransport, TcpTransport, UdpTransport, WebSocketTransport, type ClientTransport } from '../client';
import type { TransportName } from '../rpc/connection';
import type { TransportManager } from '../transports/manager';
import { dialableHost, formatHostPort, type ListeningAddress } from '../transports/transport';

/** A real client of one transport, opened by the server to itself (test hooks only). */
export interface DialedClient {
  /** Sends one message: a line (stdio/TCP), a datagram, a frame, or an HTTP body (SSE). */
  send(text: string): void;
  /** Every message the server sends back, as text. */
  onMessage(listener: (text: string) => void): void;
  /** Drops the connection abruptly: no goodbye, as a crashed client would. */
  drop(): void;
}

export interface ClientDialer {
  dial(): Promise<DialedClient>;
}

function asDialed(transport: ClientTransport): DialedClient {
  return {
    // A send that fails (the peer was dropped) is the probe's to notice through its bounded waits.
    send: (text) => void transport.send(text).catch(() => undefined),
    onMessage: (listener) => void transport.onText(listener),
    drop: () => transport.drop(),
  };
}

function dialerOf(address: ListeningAddress, manager: TransportManager, apiKey: string | undefined): ClientDialer | undefined {
  const host = dialableHost(address.host);
  const where = formatHostPort(host, address.port);
  switch (address.transport) {
    case 'tcp':
      return { dial: async () => asDialed(await TcpTransport.connect({ host, port: address.port })) };
    case 'udp':
      return { dial: async () => asDialed(await UdpTransport.open({ host, port: address.port, bindAddress: host })) };
    case 'websocket':
      return { dial: async () => asDialed(await WebSocketTransport.connect({ url: `ws://${where}/`, apiKey })) };
    case 'http':
      // Each message is its own POST with an event stream back, as an SSE client would do.
      return { dial: () => Promise.resolve(asDialed(new HttpTransport({ url: `http://${where}/`, eventStream: true, apiKey, agent: false }))) };
    case 'stdio': {
      const stdio = manager.stdio;
      if (!stdio) return undefined;
      return {
        dial: () => {
          const toServer = new PassThrough();
          const toClient = new PassThrough();
          stdio.attachPeer(toServer, toClient);
          return Promise.resolve(asDialed(new StdioTransport({ readable: toClient, writable: toServer })));
        },
      };
    }
  }
}

/** A dialer for each transport that was started. */
export function dialersFor(
  manager: TransportManager,
  addresses: readonly ListeningAddress[],
  apiKey: string | undefined,
): Map<TransportName, ClientDialer> {
  const dialers = new Map<TransportName, ClientDialer>();
  for (const address of addresses) {
    const dialer = dialerOf(address, manager, apiKey);
    if (dialer) dialers.set(address.transport, dialer);
  }
  return dialers;
}
