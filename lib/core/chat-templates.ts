// Chat templates: how a conversation becomes the text a model was trained on. RKLLM applies a
// template itself, as three strings given to rkllm_set_chat_template: the system prompt (prefilled
// only into an empty KV cache), a prefix and a postfix put around every input. So a template here
// is the marks that open and close each role's turn, from which those three strings follow, and
// from which earlier turns the cache does not hold can be written out in the model's own format.
//
// The presets and the exact text each produces are in docs/chat-templates.md; the front ends
// (OpenAI, JSON-RPC, Ollama) and model loading share them through this module.

import { Type, type Static } from '@sinclair/typebox';
import { invalidArgument } from '../errors';
import type { ModelPort } from './model-port';

/** What opens and closes one role's turn. */
export interface TurnMarks {
  readonly open: string;
  readonly close: string;
}

export interface ChatTemplatePreset {
  readonly name: ChatTemplatePresetName;
  /** The families it is for, as docs/chat-templates.md lists them. */
  readonly families: string;
  readonly system: TurnMarks;
  readonly user: TurnMarks;
  readonly assistant: TurnMarks;
  /**
   * The model's own template drops the reasoning of earlier answers (everything up to </think>),
   * as DeepSeek-R1's does: written-out history leaves it out too.
   */
  readonly dropsReasoning: boolean;
}

export const CHAT_TEMPLATE_PRESET_NAMES = ['chatml', 'llama3', 'gemma', 'phi3', 'deepseek-r1', 'minicpm'] as const;
export type ChatTemplatePresetName = (typeof CHAT_TEMPLATE_PRESET_NAMES)[number];

/** A template of the operator's own, in rkllm_set_chat_template's terms. */
export const CustomChatTemplateSchema = Type.Object(
  {
    system_prompt: Type.String({
      description:
        'The system turn; {system} in it stands for the request\'s system text, and without {system} it is a fixed system prompt requests cannot replace',
    }),
    prompt_prefix: Type.String({ description: 'Text before each user turn' }),
    prompt_postfix: Type.String({ description: 'Text after each user turn (opens the assistant turn)' }),
  },
  { additionalProperties: false },
);
export type CustomChatTemplate = Static<typeof CustomChatTemplateSchema>;

/** The `chat_template` setting of a model: a preset's name, or a custom template. */
export const ChatTemplateSettingSchema = Type.Union(
  [...CHAT_TEMPLATE_PRESET_NAMES.map((name) => Type.Literal(name)), CustomChatTemplateSchema],
  { description: `A preset (${CHAT_TEMPLATE_PRESET_NAMES.join(', ')}) or the three strings of rkllm_set_chat_template; default: guessed from the model name` },
);
export type ChatTemplateSetting = ChatTemplatePresetName | CustomChatTemplate;

/** The `truncation` setting of a model: what a front end does with a conversation the context cannot hold. */
export const TruncationSchema = Type.Union([Type.Literal('refuse'), Type.Literal('drop_oldest')], {
  description: "A chat longer than the context: 'refuse' it, or 'drop_oldest' turns (the system prompt stays)",
});
export type Truncation = Static<typeof TruncationSchema>;

const marks = (open: string, close: string): TurnMarks => ({ open, close });

export const CHAT_TEMPLATE_PRESETS: Readonly<Record<ChatTemplatePresetName, ChatTemplatePreset>> = {
  chatml: {
    name: 'chatml',
    families: 'Qwen 1.5 to 3, MiniCPM3 and 4, InternLM2, Yi and other ChatML models',
    system: marks('<|im_start|>system\n', '<|im_end|>\n'),
    user: marks('<|im_start|>user\n', '<|im_end|>\n'),
    assistant: marks('<|im_start|>assistant\n', '<|im_end|>\n'),
    dropsReasoning: false,
  },
  llama3: {
    name: 'llama3',
    families: 'Llama 3, 3.1, 3.2 and 3.3',
    system: marks('<|start_header_id|>system<|end_header_id|>\n\n', '<|eot_id|>'),
    user: marks('<|start_header_id|>user<|end_header_id|>\n\n', '<|eot_id|>'),
    assistant: marks('<|start_header_id|>assistant<|end_header_id|>\n\n', '<|eot_id|>'),
    dropsReasoning: false,
  },
  gemma: {
    name: 'gemma',
    families: 'Gemma, Gemma 2 and Gemma 3 (no system role: the system text is a user turn of its own)',
    system: marks('<start_of_turn>user\n', '<end_of_turn>\n'),
    user: marks('<start_of_turn>user\n', '<end_of_turn>\n'),
    assistant: marks('<start_of_turn>model\n', '<end_of_turn>\n'),
    dropsReasoning: false,
  },
  phi3: {
    name: 'phi3',
    families: 'Phi-3 and Phi-3.5',
    system: marks('<|system|>\n', '<|end|>\n'),
    user: marks('<|user|>\n', '<|end|>\n'),
    assistant: marks('<|assistant|>\n', '<|end|>\n'),
    dropsReasoning: false,
  },
  'deepseek-r1': {
    name: 'deepseek-r1',
    families: 'DeepSeek-R1 distills (DeepSeek-R1-Distill-Qwen, DeepSeek-R1-Distill-Llama)',
    system: marks('', ''),
    user: marks('<｜User｜>', ''),
    assistant: marks('<｜Assistant｜>', '<｜end▁of▁sentence｜>'),
    dropsReasoning: true,
  },
  minicpm: {
    name: 'minicpm',
    families: 'MiniCPM 1 and 2 (MiniCPM3 and 4 are ChatML)',
    system: marks('', ''),
    user: marks('<用户>', ''),
    assistant: marks('<AI>', ''),
    dropsReasoning: false,
  },
};

/** A template ready to use: the three strings of rkllm_set_chat_template and what history needs. */
export interface ChatTemplate {
  /** The preset's name, or 'custom'. */
  readonly name: ChatTemplatePresetName | 'custom';
  /** rkllm_set_chat_template's system prompt for a request's system text (undefined: none). */
  systemPrompt(text: string | undefined): string;
  readonly prefix: string;
  readonly postfix: string;
  /** What closes a user turn: the start of the postfix (the rest opens the answer). */
  readonly userClose: string;
  /** What closes an answer before the next prefix. */
  readonly assistantClose: string;
  readonly dropsReasoning: boolean;
}

function fromPreset(preset: ChatTemplatePreset): ChatTemplate {
  return {
    name: preset.name,
    systemPrompt: (text) => (text === undefined ? '' : preset.system.open + text + preset.system.close),
    prefix: preset.user.open,
    postfix: preset.user.close + preset.assistant.open,
    userClose: preset.user.close,
    assistantClose: preset.assistant.close,
    dropsReasoning: preset.dropsReasoning,
  };
}

const SYSTEM_PLACEHOLDER = '{system}';

function fromCustom(custom: CustomChatTemplate): ChatTemplate {
  const fixed = !custom.system_prompt.includes(SYSTEM_PLACEHOLDER);
  return {
    name: 'custom',
    systemPrompt: (text) => {
      if (fixed) return custom.system_prompt;
      return text === undefined ? '' : custom.system_prompt.split(SYSTEM_PLACEHOLDER).join(text);
    },
    prefix: custom.prompt_prefix,
    postfix: custom.prompt_postfix,
    // The custom form says nothing of how a turn closes: the postfix opens the answer, and the
    // model's own end token closes it.
    userClose: '',
    assistantClose: '',
    dropsReasoning: false,
  };
}

/**
 * The preset a model's name suggests (its file name or sim: name, any letter case), or undefined.
 * The checks run in this order because distills carry their base family in the name
 * (DeepSeek-R1-Distill-Qwen-1.5B) and MiniCPM3 and 4 moved to ChatML.
 */
export function guessChatTemplate(modelName: string): ChatTemplatePresetName | undefined {
  const name = modelName.toLowerCase();
  if (/deepseek[-_. ]?r1|r1[-_. ]?distill/.test(name)) return 'deepseek-r1';
  if (/minicpm[-_. ]?v?[34]/.test(name)) return 'chatml';
  if (name.includes('minicpm')) return 'minicpm';
  if (/llama[-_. ]?3/.test(name)) return 'llama3';
  if (name.includes('gemma')) return 'gemma';
  if (/phi[-_. ]?3/.test(name)) return 'phi3';
  if (/qwen|chatml|internlm|(^|[^a-z])yi[-_. ]/.test(name)) return 'chatml';
  return undefined;
}

export function isChatTemplatePresetName(value: string): value is ChatTemplatePresetName {
  return (CHAT_TEMPLATE_PRESET_NAMES as readonly string[]).includes(value);
}

/**
 * The template of a model: its setting (a preset's name or a custom template), else the preset
 * its name suggests, else undefined (the caller decides: the runtime's own template, or ChatML).
 * `field` names the setting in the error for an unknown preset.
 */
export function resolveChatTemplate(setting: ChatTemplateSetting | undefined, modelName: string, field = 'chat_template'): ChatTemplate | undefined {
  if (setting === undefined) {
    const guessed = guessChatTemplate(modelName);
    return guessed === undefined ? undefined : fromPreset(CHAT_TEMPLATE_PRESETS[guessed]);
  }
  if (typeof setting === 'string') {
    if (!isChatTemplatePresetName(setting)) {
      throw invalidArgument(field, `'${setting}' is not a chat template preset; use one of ${CHAT_TEMPLATE_PRESET_NAMES.join(', ')} or a custom {system_prompt, prompt_prefix, prompt_postfix}`);
    }
    return fromPreset(CHAT_TEMPLATE_PRESETS[setting]);
  }
  return fromCustom(setting);
}

/** The preset of a name, as a ready template. */
export function chatTemplatePreset(name: ChatTemplatePresetName): ChatTemplate {
  return fromPreset(CHAT_TEMPLATE_PRESETS[name]);
}

/** Sets a template on a model (rkllm_set_chat_template) with a request's system text, or none. */
export function applyChatTemplate(model: Pick<ModelPort, 'setChatTemplate'>, template: ChatTemplate, systemText: string | undefined): Promise<number> {
  return model.setChatTemplate(template.systemPrompt(systemText), template.prefix, template.postfix);
}

/** One turn of a conversation as text: its role and what it says (tool calls already written out). */
export interface TemplateTurn {
  role: 'user' | 'assistant' | 'tool';
  text: string;
}

/** A tool's answer in an earlier turn, in the tag rkllm_set_function_tools is given (Qwen's). */
function toolResponse(text: string, tag: string): string {
  return `<${tag}>\n${text}\n</${tag}>`;
}

function withoutReasoning(text: string): string {
  const end = text.lastIndexOf('</think>');
  return end === -1 ? text : text.slice(end + '</think>'.length).replace(/^\s+/, '');
}

/**
 * The one input of a run for a whole conversation the KV cache does not hold: the runtime wraps
 * it in prefix and postfix, so the text between them is every turn in the template's own marks,
 * the first turn's opening and the last one's closing left to the runtime. A conversation that
 * starts with an answer gets an empty user turn before it (the prefix always opens a user turn).
 * Tool answers are user turns wrapped in the tool response tag.
 */
export function renderConversation(template: ChatTemplate, turns: readonly TemplateTurn[], toolResponseTag: string): string {
  let text = '';
  // The runtime's prefix opened a user turn before the first one.
  let afterUser = true;
  turns.forEach((turn, index) => {
    if (turn.role === 'assistant') {
      // The postfix closes the user turn and opens the answer; after an answer, only the opening.
      text += afterUser ? template.postfix : template.postfix.slice(template.userClose.length);
      text += (template.dropsReasoning ? withoutReasoning(turn.text) : turn.text) + template.assistantClose;
      afterUser = false;
      return;
    }
    if (index > 0) text += afterUser ? template.userClose + template.prefix : template.prefix;
    // The last turn is the run's input: a tool answer there goes in as role "tool", unwrapped.
    text += turn.role === 'tool' && index < turns.length - 1 ? toolResponse(turn.text, toolResponseTag) : turn.text;
    afterUser = true;
  });
  return text;
}
