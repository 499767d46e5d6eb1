// The parts of templates and context fitting that need no model: which preset a model file's name
// suggests (names as they are published for RK3588), what a setting resolves to, and how the
// oldest turns are dropped to fit a context.

import { guessChatTemplate, resolveChatTemplate } from '../../lib/core/chat-templates';
import { TokenEstimator, fitConversation } from '../../lib/core/context-budget';
import { RkllmError } from '../../lib/errors';

describe('the preset a model name suggests', () => {
  it.each([
    ['Qwen2.5-1.5B-Instruct_W8A8_RK3588', 'chatml'],
    ['qwen3-0.6b-w8a8', 'chatml'],
    ['internlm2-chat-1_8b-rk3588', 'chatml'],
    ['MiniCPM3-4B-rk3588-w8a8', 'chatml'],
    ['MiniCPM4-0.5B', 'chatml'],
    ['MiniCPM-2B-dpo-bf16', 'minicpm'],
    ['Meta-Llama-3.1-8B-Instruct-w8a8', 'llama3'],
    ['Llama-3.2-1B-Instruct_rk3588', 'llama3'],
    ['gemma-3-1b-it-rk3588-1.2.0', 'gemma'],
    ['Phi-3.5-mini-instruct-w8a8', 'phi3'],
    ['DeepSeek-R1-Distill-Qwen-1.5B_W8A8_RK3588', 'deepseek-r1'],
    ['deepseek-r1-distill-llama-8b', 'deepseek-r1'],
  ])('%s: %s', (name, preset) => {
    expect(guessChatTemplate(name)).toBe(preset);
  });

  it.each(['TinyLlama-1.1B-Chat-v1.0', 'chatglm3-6b', 'Llama-2-7b-chat', 'instant', 'paced'])('%s: none', (name) => {
    expect(guessChatTemplate(name)).toBeUndefined();
  });

  it('prefers the setting over the name, and refuses an unknown preset naming the setting', () => {
    expect(resolveChatTemplate('gemma', 'Qwen2.5-1.5B')?.name).toBe('gemma');
    expect(resolveChatTemplate(undefined, 'instant')).toBeUndefined();
    let caught: unknown;
    try {
      resolveChatTemplate('vicuna' as never, 'x', 'models.0.chat_template');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RkllmError);
    expect((caught as RkllmError).field).toBe('models.0.chat_template');
    expect((caught as RkllmError).message).toMatch(/chatml, llama3, gemma, phi3, deepseek-r1, minicpm/);
  });
});

describe('fitting a conversation into the context', () => {
  const turns = (n: number) => Array.from({ length: n }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', size: 10 }));
  const cost = (kept: readonly { size: number }[]) => 5 + kept.reduce((sum, turn) => sum + turn.size, 0);

  it("with 'refuse' keeps everything and says whether it fits", () => {
    expect(fitConversation(turns(5), cost, 100, 0, 'refuse')).toMatchObject({ dropped: 0, promptTokens: 55, fits: true });
    expect(fitConversation(turns(5), cost, 50, 0, 'refuse')).toMatchObject({ dropped: 0, promptTokens: 55, fits: false });
  });

  it("with 'drop_oldest' drops whole turns from the front, never starting with an answer, keeping the last message", () => {
    const fit = fitConversation(turns(9), cost, 60, 10, 'drop_oldest');
    // 5 + 10 per message + 10 reserved <= 60: four messages at most, and the first kept is a user message.
    expect(fit.fits).toBe(true);
    expect(fit.dropped).toBe(6);
    expect(fit.kept.map((turn) => turn.role)).toEqual(['user', 'assistant', 'user']);
    const hopeless = fitConversation([{ role: 'user', size: 200 }], cost, 60, 0, 'drop_oldest');
    expect(hopeless).toMatchObject({ dropped: 0, fits: false });
  });

  it('estimates from UTF-8 bytes, then from what the model showed', () => {
    const estimator = new TokenEstimator();
    // 3 bytes a token until the model has run, plus 10%.
    expect(estimator.estimate('x'.repeat(300))).toBe(110);
    expect(estimator.estimate('')).toBe(0);
    estimator.learn('y'.repeat(400), 100);
    expect(estimator.bytesPerToken).toBe(4);
    expect(estimator.estimate('x'.repeat(400))).toBe(110);
    // Too short a prompt to learn from.
    estimator.learn('z'.repeat(20), 20);
    expect(estimator.bytesPerToken).toBe(4);
  });
});
