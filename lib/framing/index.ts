// The framing both ends of every transport share: lines (stdio, TCP), server-sent events
// (HTTP with Accept: text/event-stream) and WebSocket message text. Nothing here knows JSON-RPC or sockets.

export { LineSplitter, type LineSink } from './line-splitter';
export { frameLine } from './line';
export { SseParser, formatSseEvent, type SseEvent, type SseSink } from './sse';
export { textOfFrame } from './websocket-text';
