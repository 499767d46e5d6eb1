// The model's tool calls, as RKLLM's function-calling models write them (Qwen's format):
// `<tool_call>\n{"name": "NAME", "arguments": {...}}\n</tool_call>`, possibly several, possibly
// with text around them. A block that is not valid JSON with a name stays in the text.

import { randomBytes } from 'crypto';

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

const TOOL_CALL_BLOCK = /<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g;

export function parseToolCalls(text: string): { content: string | null; toolCalls: ToolCall[] } {
  const toolCalls: ToolCall[] = [];
  const rest = text.replace(TOOL_CALL_BLOCK, (block, json: string) => {
    let call: unknown;
    try {
      call = JSON.parse(json);
    } catch {
      return block;
    }
    const { name, arguments: args } = (call ?? {}) as { name?: unknown; arguments?: unknown };
    if (typeof name !== 'string' || name === '') return block;
    toolCalls.push({
      id: `call_${randomBytes(12).toString('hex')}`,
      type: 'function',
      // OpenAI sends arguments as a JSON string; some models already write them as one.
      function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) },
    });
    return '';
  });
  const content = rest.trim();
  return { content: toolCalls.length > 0 && content === '' ? null : toolCalls.length > 0 ? content : text, toolCalls };
}

/** A chat answer as the assistant's message, as the chat APIs give it back. */
export interface ChatReply {
  message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] };
  finishReason: 'stop' | 'length' | 'tool_calls';
}

/** With tools on, the calls the model wrote are parsed out of its text; otherwise the text is the answer. */
export function chatReplyOf(output: { text: string; finishReason: 'stop' | 'length' }, toolsActive: boolean): ChatReply {
  if (toolsActive) {
    const { content, toolCalls } = parseToolCalls(output.text);
    if (toolCalls.length > 0) return { message: { role: 'assistant', content, tool_calls: toolCalls }, finishReason: 'tool_calls' };
  }
  return { message: { role: 'assistant', content: output.text }, finishReason: output.finishReason };
}
