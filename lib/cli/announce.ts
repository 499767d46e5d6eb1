// The start-up lines, once every transport listens: the URLs to use, whether the API key is on,
// and a warning for each way the server is open to the network without a bound on who uses it.

import type { Logger } from 'pino';
import { isLoopback, type ServerConfig } from '../serve';
import { formatHostPort, type ListeningAddress } from '../transports/transport';

const SCHEME: Record<string, string> = { tcp: 'tcp', udp: 'udp', http: 'http', websocket: 'ws' };

export function announceUrls(config: ServerConfig, addresses: readonly ListeningAddress[], logger: Logger): void {
  const keyed = config.apiKey !== undefined;
  for (const address of addresses) {
    if (address.transport === 'stdio') {
      logger.info({ api: 'jsonrpc', transport: 'stdio' }, 'JSON-RPC on stdin/stdout (one message per line)');
      continue;
    }
    const url = `${SCHEME[address.transport]}://${formatHostPort(address.host, address.port)}${address.transport === 'http' ? '/' : ''}`;
    logger.info({ api: 'jsonrpc', url }, `JSON-RPC at ${url}`);
  }
  for (const address of addresses.filter((listening) => listening.transport === 'http')) {
    const base = `http://${formatHostPort(address.host, address.port)}`;
    logger.info({ api: 'openai', url: `${base}/v1` }, `OpenAI API at ${base}/v1`);
    logger.info({ api: 'ollama', url: `${base}/api` }, `Ollama API at ${base}/api`);
    logger.info({ api: 'web', url: `${base}/` }, `web page at ${base}/`);
    logger.info({ api: 'metrics', url: `${base}/metrics` }, `metrics at ${base}/metrics`);
  }
  logger.info({ api_key: keyed }, keyed ? 'API key on: required on every network transport (stdio is exempt)' : 'API key off');
  for (const address of addresses) {
    if (address.transport === 'stdio' || isLoopback(address.host)) continue;
    const where = `${address.transport} on ${formatHostPort(address.host, address.port)}`;
    if (!keyed) {
      logger.warn(
        { exposed: address.transport, host: address.host },
        `${where} is reachable from the network without an API key: anyone who reaches it can run and unload models; set --api-key (or RKLLM_SERVE_API_KEY), or --host 127.0.0.1`,
      );
    }
    if (address.transport === 'udp' && (config.udpRepliesPerSecond === 0 || config.udpReplyBytesPerSecond === 0)) {
      logger.warn(
        { exposed: address.transport, host: address.host, udp_replies_per_second: config.udpRepliesPerSecond, udp_reply_bytes_per_second: config.udpReplyBytesPerSecond },
        `${where} runs without a reply cap (${config.udpRepliesPerSecond === 0 ? '--udp-replies-per-second' : '--udp-reply-bytes-per-second'} 0): a peer, or a datagram forged in a peer's name, can make it send without bound; set --udp-replies-per-second and --udp-reply-bytes-per-second above 0, or --disable-udp`,
      );
    }
  }
}
