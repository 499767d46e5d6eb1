// Telling that a UDP peer on this machine has gone. UDP has no close, and Linux does not report
// ICMP port-unreachable to an unconnected socket (it would need IP_RECVERR, which Node's dgram
// does not set): a send to a closed loopback port succeeds, and its callback and the socket's
// 'error' event stay silent. What Linux does offer is the list of bound UDP sockets of this
// network namespace in /proc/net/udp and /proc/net/udp6, so for a loopback peer the question "is
// its port still bound?" has a cheap, exact answer. Remote peers are left to idle expiry.

import { promises as fs } from 'fs';

const SOCKET_TABLES = ['/proc/net/udp', '/proc/net/udp6'];

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped form. */
export function isLoopbackAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return v4.startsWith('127.') || address === '::1';
}

/**
 * The local ports of every UDP socket bound in this network namespace, or undefined when the
 * tables cannot be read (not Linux, or /proc hidden), in which case nothing is concluded.
 */
export async function boundUdpPorts(): Promise<Set<number> | undefined> {
  const ports = new Set<number>();
  let readAny = false;
  for (const table of SOCKET_TABLES) {
    let text: string;
    try {
      text = await fs.readFile(table, 'latin1');
    } catch {
      continue;
    }
    readAny = true;
    addLocalPorts(text, ports);
  }
  return readAny ? ports : undefined;
}

/** Rows look like "  12: 0100007F:1F91 00000000:0000 07 ..."; the port is hex after the colon. */
export function addLocalPorts(table: string, ports: Set<number>): void {
  const lines = table.split('\n');
  for (let index = 1; index < lines.length; index++) {
    const fields = lines[index].trim().split(/\s+/);
    const local = fields[1];
    if (local === undefined) continue;
    const colon = local.lastIndexOf(':');
    if (colon === -1) continue;
    const port = Number.parseInt(local.slice(colon + 1), 16);
    if (Number.isInteger(port)) ports.add(port);
  }
}
