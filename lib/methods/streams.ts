// poll and cancel: reading a stream's kept chunks, and stopping one request.

import { Type } from '@sinclair/typebox';
import { invalidArgument } from '../errors';
import { defineMethod, type MethodEntry } from './define';
import { toRpcError } from './error-table';
import { asClientWrote } from './runs';

export const streamMethods: MethodEntry[] = [
  defineMethod({
    name: 'poll',
    description:
      'The chunks of a stream: without from_seq, those no earlier poll returned; with it, every kept chunk from that seq on. ' +
      'done, and result or error, once the request has ended.',
    params: Type.Object({
      stream_id: Type.String({ minLength: 1 }),
      from_seq: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
    cheap: true,
    handler: ({ stream_id, from_seq }, { core }) => {
      const stream = core.streams.get(stream_id);
      core.streams.touch(stream);
      const { chunks, error, ...answer } = stream.poll(from_seq);
      const render = (failure: unknown) => toRpcError(asClientWrote(failure, stream.job)).toJSON();
      return {
        ...answer,
        chunks: chunks.map((chunk) => (chunk.error === undefined ? chunk : { ...chunk, error: render(chunk.error) })),
        ...(error === undefined ? {} : { error: render(error) }),
      };
    },
  }),
  defineMethod({
    name: 'cancel',
    description:
      'Stops one request, queued or running, and nothing else: by stream_id, or (extension) by the request_id of a request ' +
      'this connection sent. cancelled is false when it had already ended.',
    params: Type.Object({
      stream_id: Type.Optional(Type.String({ minLength: 1 })),
      request_id: Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()])),
    }),
    cheap: true,
    handler: ({ stream_id, request_id }, { core, connection }) => {
      if (stream_id !== undefined) {
        const stream = core.streams.get(stream_id);
        return { cancelled: stream.job?.cancel('cancel') ?? false };
      }
      if (request_id === undefined) throw invalidArgument('stream_id', 'required (or give request_id)');
      const job = core.sessions.find(connection)?.findJob(request_id);
      return { cancelled: job?.cancel('cancel') ?? false };
    },
  }),
];
