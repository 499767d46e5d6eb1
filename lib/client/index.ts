// rkllm-serve/client: a JSON-RPC client of rkllm-serve over every transport it serves. A
// ClientTransport per medium (framing and sockets, no JSON-RPC) and one RpcClient over any of
// them; connect(url) puts the two together. See docs/client.md.

export { connect, DEFAULT_PORTS, type ConnectOptions } from './connect';
export { RpcClient, DEFAULT_TIMEOUT_MS, type RpcClientOptions, type CallOptions, type BatchEntry, type NotifyOptions } from './rpc-client';
export { ResultStream, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_POLL_INTERVAL_MS, type StreamOptions } from './result-stream';
export { ClientError, RpcResponseError, isClientError, type ClientErrorCode } from './errors';
export {
  CALL_STATE,
  isFinalChunk,
  type IncomingMessage,
  type ReplyMessage,
  type RequestId,
  type ErrorObject,
  type ResultChunk,
} from './messages';
export { TransportBase, type ClientTransport, type CloseInfo, type SendOptions, type TransportKind } from './transport';
export { LineStreamTransport, DEFAULT_MAX_LINE_BYTES, DEFAULT_CLOSE_TIMEOUT_MS, type LineStreamOptions } from './line-stream';
export { StdioTransport, type StdioTransportOptions } from './stdio';
export { TcpTransport, DEFAULT_CONNECT_TIMEOUT_MS, type TcpTransportOptions } from './tcp';
export { UdpTransport, MAX_DATAGRAM_BYTES, type UdpTransportOptions } from './udp';
export { WebSocketTransport, DEFAULT_MAX_FRAME_BYTES, type WebSocketTransportOptions } from './websocket';
export { HttpTransport, DEFAULT_MAX_RESPONSE_BYTES, type HttpTransportOptions } from './http';
