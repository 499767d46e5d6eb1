// Chat templates through the real server: every preset gives the prompt text docs/chat-templates.md
// documents, read back from the emulated runtime's echo_prompt model (it answers with the whole
// prompt as the runtime templated it). Presets are picked from the model's file name, or by the
// chat_template setting; a custom template by setting.

import * as fs from 'fs';
import * as path from 'path';
import { makeTempDir, runCli, stopAllServers } from '../integration/client';
import { startOpenAiServer, type OpenAiServer } from './helpers';

jest.setTimeout(30_000);

const ECHO_MODEL = { format: 'rkllm-emulated-model', version: 1, answers: { echo_prompt: true } };

/** Each preset: a model file name it is guessed from, and the documented text of a first turn, a next turn and a replayed conversation. */
interface PresetCase {
  file: string;
  /** System "Be brief.", user "Hi": the whole first prompt. */
  first: string;
  /** The next user turn "And you?" on the same cache: the system prompt is not prefilled again. */
  next: string;
  /** user "Hi", assistant "Hello.", user "Bye" with system "Be brief.", on an empty cache. */
  replay: string;
}

const PRESETS: Record<string, PresetCase> = {
  chatml: {
    file: 'Qwen2.5-1.5B-Instruct-rk3588-w8a8.json',
    first: '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    next: '<|im_start|>user\nAnd you?<|im_end|>\n<|im_start|>assistant\n',
    replay:
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n' +
      '<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n',
  },
  llama3: {
    file: 'Llama-3.2-1B-Instruct-rk3588.json',
    first:
      '<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\n',
    next: '<|start_header_id|>user<|end_header_id|>\n\nAnd you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    replay:
      '<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\n',
  },
  gemma: {
    file: 'gemma-2-2b-it-rk3588.json',
    first: '<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n',
    next: '<start_of_turn>user\nAnd you?<end_of_turn>\n<start_of_turn>model\n',
    replay:
      '<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n' +
      '<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n',
  },
  phi3: {
    file: 'Phi-3-mini-4k-instruct.json',
    first: '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n',
    next: '<|user|>\nAnd you?<|end|>\n<|assistant|>\n',
    replay: '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n',
  },
  'deepseek-r1': {
    file: 'DeepSeek-R1-Distill-Qwen-1.5B_W8A8_RK3588.json',
    first: 'Be brief.<｜User｜>Hi<｜Assistant｜>',
    next: '<｜User｜>And you?<｜Assistant｜>',
    replay: 'Be brief.<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>',
  },
  minicpm: {
    file: 'MiniCPM-2B-sft-rk3588.json',
    first: 'Be brief.<用户>Hi<AI>',
    next: '<用户>And you?<AI>',
    replay: 'Be brief.<用户>Hi<AI>Hello.<用户>Bye<AI>',
  },
};

async function chat(harness: OpenAiServer, model: string, messages: { role: 'system' | 'user' | 'assistant'; content: string }[]) {
  const completion = await harness.openai.chat.completions.create({ model, messages });
  return completion.choices[0].message.content ?? '';
}

describe('chat template presets, guessed from the model file name', () => {
  let harness: OpenAiServer;
  let dir: string;

  beforeAll(async () => {
    dir = makeTempDir('templates');
    for (const preset of Object.values(PRESETS)) fs.writeFileSync(path.join(dir, preset.file), JSON.stringify(ECHO_MODEL));
    harness = await startOpenAiServer({ args: ['--runtime-abi', '1.3', '--models-dir', dir] });
    for (const [name, preset] of Object.entries(PRESETS)) {
      const reply = await harness.rpc.request('rkllm_init', { param: { model_path: path.join(dir, preset.file) }, handle: name });
      if (reply.error) throw new Error(`rkllm_init ${name}: ${JSON.stringify(reply.error)}`);
    }
  });

  afterAll(async () => {
    await harness?.rpc.close();
    await stopAllServers();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, preset] of Object.entries(PRESETS)) {
    it(`${name}: the first turn, the next turn on the cache, and a replayed conversation`, async () => {
      const system = { role: 'system' as const, content: 'Be brief.' };
      const first = await chat(harness, name, [system, { role: 'user', content: 'Hi' }]);
      expect(first).toBe(preset.first);
      const next = await chat(harness, name, [system, { role: 'user', content: 'Hi' }, { role: 'assistant', content: first }, { role: 'user', content: 'And you?' }]);
      expect(next).toBe(preset.next);
      // Another conversation: the cache is cleared and the whole of it goes in as one prompt.
      const replay = await chat(harness, name, [system, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Bye' }]);
      expect(replay).toBe(preset.replay);
    });
  }

  it('applies the preset without a system message too (no system turn)', async () => {
    expect(await chat(harness, 'phi3', [{ role: 'user', content: 'Hi' }])).toBe('<|user|>\nHi<|end|>\n<|assistant|>\n');
  });

  it('leaves out the reasoning of earlier DeepSeek-R1 answers, as its own template does', async () => {
    const replay = await chat(harness, 'deepseek-r1', [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '<think>\nA greeting.\n</think>\n\nHello.' },
      { role: 'user', content: 'Bye' },
    ]);
    expect(replay).toBe('<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>');
  });
});

describe('chat templates by setting', () => {
  let dir: string;

  beforeAll(() => {
    dir = makeTempDir('template-setting');
  });

  afterAll(async () => {
    await stopAllServers();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serverWith(chatSettings: unknown): Promise<OpenAiServer> {
    const config = path.join(dir, `config-${Date.now()}.json`);
    fs.writeFileSync(config, JSON.stringify({ model: { path: 'sim:echo-prompt', ...(chatSettings as object) } }));
    return startOpenAiServer({ args: ['--runtime-abi', '1.3', '--config', config] });
  }

  it('uses the preset the setting names, whatever the model is called', async () => {
    const harness = await serverWith({ chat_template: 'llama3' });
    try {
      expect(await chat(harness, 'default', [{ role: 'user', content: 'Hi' }])).toBe(
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
      );
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
    }
  });

  it('sets the template at load as well: a JSON-RPC run on the start-up model is templated', async () => {
    const harness = await serverWith({ chat_template: 'phi3' });
    try {
      const reply = await harness.rpc.request('rkllm_run', { input_type: 0, prompt_input: 'Hi' });
      expect(reply.error).toBeUndefined();
      expect((reply.result as { text: string }).text).toBe('<|user|>\nHi<|end|>\n<|assistant|>\n');
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
    }
  });

  it('uses a custom template: {system} stands for the system text', async () => {
    const harness = await serverWith({ chat_template: { system_prompt: '[SYS]{system}[/SYS]\n', prompt_prefix: '[U]', prompt_postfix: '[/U][A]' } });
    try {
      expect(await chat(harness, 'default', [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }])).toBe('[SYS]Be brief.[/SYS]\n[U]Hi[/U][A]');
      // Replayed: the custom form has no closing marks of its own.
      expect(
        await chat(harness, 'default', [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello.' },
          { role: 'user', content: 'Bye' },
        ]),
      ).toBe('[U]Hi[/U][A]Hello.[U]Bye[/U][A]');
    } finally {
      await harness.rpc.close();
      await harness.server.stop();
    }
  });

  it('refuses an unknown preset in the config file, naming the setting', async () => {
    const config = path.join(dir, 'bad.json');
    fs.writeFileSync(config, JSON.stringify({ model: { path: 'sim:echo-prompt', chat_template: 'vicuna' } }));
    const run = await runCli(['--runtime', 'sim', '--config', config]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/model\.chat_template/);
  });
});
