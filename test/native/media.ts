// Multimodal inputs for the tests and what the emulated runtime answers to them. Its answer to a
// multimodal prompt containing "describe the media" reports, per block, the counts, an FNV-1a
// hash of every float it read and the bit patterns of the first and last ones, and the block's
// tags (docs/emulated-runtime.md, "Inputs"); computed here from what a test sends, a matching
// answer proves that every byte and string reached the runtime where the layout puts it.

import * as fs from 'fs';
import * as path from 'path';

export interface MediaBlock {
  kind: 'image' | 'video' | 'audio';
  /** n_image x n_image_tokens, n_video x n_frame_per_video x n_frame_tokens, n_audio x n_audio_tokens. */
  counts: number[];
  floats: Float32Array;
  /** start, end, content; left out on ABI 1.2, whose image block has none. */
  tags?: [string, string, string];
}

/** `count` floats that differ from each other's neighbours and from other seeds' (all exact in float32). */
export function patternFloats(count: number, seed: number): Float32Array {
  const floats = new Float32Array(count);
  for (let i = 0; i < count; i++) floats[i] = (((i * 7 + seed * 13) % 61) - 30) / 16;
  return floats;
}

/** The floats as the wire's base64 form: their little-endian bytes. */
export function toBase64(floats: Float32Array): string {
  const bytes = Buffer.alloc(floats.length * 4);
  floats.forEach((value, index) => bytes.writeFloatLE(value, index * 4));
  return bytes.toString('base64');
}

function fnv1a64(bytes: Uint8Array): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  return hash.toString(16).padStart(16, '0');
}

function bits(value: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeFloatLE(value, 0);
  return `0x${bytes.readUInt32LE(0).toString(16).padStart(8, '0')}`;
}

/** The emulated runtime's answer to "describe the media" for these blocks, in input order. */
export function describeMedia(blocks: MediaBlock[], embeddingSize: number): string {
  if (blocks.length === 0) return 'no media';
  return blocks
    .map(({ kind, counts, floats, tags }) => {
      const bytes = Buffer.alloc(floats.length * 4);
      floats.forEach((value, index) => bytes.writeFloatLE(value, index * 4));
      const read =
        `${kind}: ${counts.join(' x ')} tokens x ${embeddingSize} floats, fnv1a64 ${fnv1a64(bytes)}, ` +
        `first ${bits(floats[0])}, last ${bits(floats[floats.length - 1])}`;
      return tags === undefined ? read : `${read}, tags ${tags.map((tag) => JSON.stringify(tag)).join(' ')}`;
    })
    .join('; ');
}

/** The floats one block needs: counts multiplied, times the embedding size. */
export function blockFloats(counts: number[], embeddingSize: number, seed: number): Float32Array {
  return patternFloats(counts.reduce((a, b) => a * b, 1) * embeddingSize, seed);
}

/** Writes `<dir>/<name>.json`, an instant emulated model with the given embedding size; returns its path. */
export function writeEmbeddingModel(dir: string, name: string, embeddingSize: number): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      format: 'rkllm-emulated-model',
      version: 1,
      name,
      limits: { max_context_len: 4096, vocab_size: 151936, embedding_size: embeddingSize },
    }),
  );
  return file;
}
