// What the Ollama routes send the runtime, read back from the emulated runtime's echo-prompt
// model (it answers with the whole prompt as the runtime templated it): generate's system and
// prompt in the model's template, raw sent as written, and a chat longer than the context
// dropping its oldest turns (Ollama's default) where the OpenAI routes would refuse it.

import * as fs from 'fs';
import * as path from 'path';
import { Ollama } from 'ollama';
import { ServerProcess, makeTempDir, stopAllServers } from '../integration/client';

jest.setTimeout(30_000);

let dir: string;
let ollama: Ollama;

beforeAll(async () => {
  dir = makeTempDir('ollama-prompts');
  const config = path.join(dir, 'config.json');
  fs.writeFileSync(config, JSON.stringify({ model: { path: 'sim:echo-prompt', chat_template: 'chatml', max_context_len: 400, max_new_tokens: 200 } }));
  const server = await ServerProcess.start({ disable: ['stdio'], args: ['--runtime-abi', '1.3', '--config', config] });
  ollama = new Ollama({ host: `http://127.0.0.1:${server.port('http')}` });
});

afterAll(async () => {
  await stopAllServers();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the prompts of the Ollama routes', () => {
  it('templates generate: the system text and the prompt', async () => {
    const reply = await ollama.generate({ model: 'default', system: 'Be brief.', prompt: 'Hi', stream: false });
    expect(reply.response).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('sends raw prompts as written, and templates the next chat again', async () => {
    const raw = await ollama.generate({ model: 'default', prompt: '[exactly this]', raw: true, stream: false });
    expect(raw.response).toBe('[exactly this]');
    const chat = await ollama.chat({ model: 'default', messages: [{ role: 'user', content: 'Hi' }], stream: false });
    expect(chat.message.content).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('drops the oldest turns of a chat the context cannot hold', async () => {
    const long = 'word '.repeat(200);
    const messages = [
      { role: 'user', content: `first ${long}` },
      { role: 'assistant', content: `answer ${long}` },
      { role: 'user', content: 'last' },
    ];
    const reply = await ollama.chat({ model: 'default', messages, stream: false });
    expect(reply.message.content).toBe('<|im_start|>user\nlast<|im_end|>\n<|im_start|>assistant\n');
  });
});
