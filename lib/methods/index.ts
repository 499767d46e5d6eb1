// The JSON-RPC front end of the core: the method table (one file per area), the one error table,
// and the MessageHandler the transports hand messages to.

export { buildMethodTable, type MethodTableOptions } from './table';
export type { MethodEntry } from './define';
export type { MethodContext } from './context';
export { JsonRpcFrontEnd, type JsonRpcFrontEndOptions } from './front-end';
export { SERVER_ERRORS, serverError, toRpcError, type ServerErrorName } from './error-table';
export type { DropProbe } from './context';
