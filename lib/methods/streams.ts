// poll and cancel: reading a stream's kept chunks a page at a time, and stopping one request.
// Both reach a pushed stream only from the connection it is pushed to, and a poll-only stream
// from anyone holding its id (128 random bits: holding it is the proof).

import { Type } from '@sinclair/typebox';
import { invalidArgument } from '../errors';
import { defineMethod, type MethodEntry } from './define';
import { streamErrorJson } from './runs';

export const streamMethods: MethodEntry[] = [
  defineMethod({
    name: 'poll',
    description:
      'A page of the chunks of a stream: without from_seq, from where earlier polls ended; with it, every kept chunk from that seq on; ' +
      'at most max_chunks (bounded by the server). next_seq is where the next page starts; done, and result or error, come with ' +
      'the page that reaches the end of an ended request. A pushed stream answers only its own connection.',
    params: Type.Object({
      stream_id: Type.String({ minLength: 1 }),
      from_seq: Type.Optional(Type.Integer({ minimum: 0 })),
      max_chunks: Type.Optional(Type.Integer({ minimum: 1, description: "Chunks per page; more than the server's maximum means its maximum" })),
    }),
    cheap: true,
    handler: ({ stream_id, from_seq, max_chunks }, { core, connection }) => {
      const stream = core.streams.forClient(stream_id, connection);
      core.streams.touch(stream);
      const limit = core.settings.maxPollChunks;
      const { chunks, error, ...answer } = stream.poll(from_seq, Math.min(max_chunks ?? limit, limit));
      const render = (failure: unknown) => streamErrorJson(stream, failure);
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
      'Stops one request, queued or running, and nothing else: by stream_id (a pushed stream only from its own connection), or ' +
      '(extension) by the request_id of a request this connection sent. cancelled is false when it had already ended.',
    params: Type.Object({
      stream_id: Type.Optional(Type.String({ minLength: 1 })),
      request_id: Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()])),
    }),
    cheap: true,
    handler: ({ stream_id, request_id }, { core, connection }) => {
      if (stream_id !== undefined) {
        const stream = core.streams.forClient(stream_id, connection);
        return { cancelled: stream.job?.cancel('cancel') ?? false };
      }
      if (request_id === undefined) throw invalidArgument('stream_id', 'required (or give request_id)');
      const job = core.sessions.find(connection)?.findJob(request_id);
      return { cancelled: job?.cancel('cancel') ?? false };
    },
  }),
];
