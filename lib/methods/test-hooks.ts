// Methods that exist only when the server runs with test hooks (config.enableTestHooks).

import { Type } from '@sinclair/typebox';
import { RkllmError } from '../errors';
import { TRANSPORT_NAMES } from '../rpc/connection';
import { defineMethod, type MethodEntry } from './define';
import { Handle } from './schemas';

export const testHookMethods: MethodEntry[] = [
  defineMethod({
    name: 'test_connection_drop',
    description:
      'Test hook: dials this server over the named transport, starts a streaming request, drops the connection abruptly, and ' +
      'reports whether the engine cancelled the request and released the connection within a second.',
    params: Type.Object({
      transport: Type.Union(TRANSPORT_NAMES.map((name) => Type.Literal(name))),
      action: Type.Literal('simulate_drop'),
      handle: Handle,
    }),
    cheap: false,
    handler: ({ transport, handle }, { dropProbe }) => {
      if (!dropProbe) throw new RkllmError('this server has no connection-drop probe', 'TRANSPORT_NOT_RUNNING', { facts: { transport } });
      return dropProbe(transport, handle);
    },
  }),
];
