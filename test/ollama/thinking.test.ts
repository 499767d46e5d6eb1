// The split of a reasoning model's answer into Ollama's `thinking` and `content`, whole and as
// it streams in pieces that cut the <think> marks anywhere.

import { ThinkingSplitter, splitThinking } from '../../lib/ollama/thinking';

const ANSWER = '<think>\nFirst I weigh it.\n</think>\n\nThe answer is 4.';

/** The answer streamed in pieces of `size` characters, joined back per part. */
function streamed(text: string, size: number): { thinking: string; content: string } {
  const splitter = new ThinkingSplitter(true);
  const joined = { thinking: '', content: '' };
  const take = (parts: { thinking?: string; content?: string }[]) => {
    for (const part of parts) {
      joined.thinking += part.thinking ?? '';
      joined.content += part.content ?? '';
    }
  };
  for (let at = 0; at < text.length; at += size) take(splitter.push(text.slice(at, at + size)));
  take(splitter.flush());
  return joined;
}

describe('thinking split', () => {
  it('splits a whole answer and trims the parts', () => {
    expect(splitThinking(ANSWER)).toEqual({ thinking: 'First I weigh it.', content: 'The answer is 4.' });
  });

  it('leaves an answer without a leading <think> as content', () => {
    expect(splitThinking('Just 4. <think>not this</think>')).toEqual({ thinking: undefined, content: 'Just 4. <think>not this</think>' });
  });

  it('counts an answer cut inside its thinking as thinking only', () => {
    expect(splitThinking('<think>still going')).toEqual({ thinking: 'still going', content: '' });
  });

  it.each([1, 2, 3, 5, 8, 100])('streams pieces of %i characters to the same split', (size) => {
    const whole = splitThinking(ANSWER);
    expect(streamed(ANSWER, size)).toEqual({ thinking: whole.thinking, content: whole.content });
  });

  it('passes text through unchanged when thinking is off', () => {
    const splitter = new ThinkingSplitter(false);
    expect(splitter.push('<think>x')).toEqual([{ content: '<think>x' }]);
    expect(splitter.flush()).toEqual([]);
  });
});
