// The web page of rkllm-serve: a chat over the server's own OpenAI API (GET /v1/models,
// POST /v1/chat/completions streamed as server-sent events) and a status view (GET /status).
// Everything it fetches is on this server. Text from the server or the user only ever reaches
// the page as textContent, never as markup.

const KEY_STORAGE = 'rkllm-serve.api-key';
const STATUS_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);
const ui = {
  serverLine: $('server-line'),
  keyForm: $('key-form'),
  keyReason: $('key-reason'),
  keyInput: $('api-key'),
  model: $('model'),
  refreshModels: $('refresh-models'),
  clear: $('clear'),
  system: $('system'),
  temperature: $('temperature'),
  maxTokens: $('max-tokens'),
  messages: $('messages'),
  composer: $('composer'),
  prompt: $('prompt'),
  send: $('send'),
  stop: $('stop'),
  chatState: $('chat-state'),
  facts: $('server-facts'),
  modelsBody: document.querySelector('#models-table tbody'),
  runsBody: document.querySelector('#runs-table tbody'),
  runsEmpty: $('runs-empty'),
};

/** The server answered 401: the page has asked for the key, and the caller stops. */
class Unauthorized extends Error {}

/** The turns so far, as the API takes them (the system prompt is added per request). */
let history = [];
/** The request being answered: { controller }. */
let current;
let statusTimer;
let statusInFlight = false;

// ---------------------------------------------------------------------------------------------
// Talking to the server

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) ?? '';
}

async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  const key = apiKey();
  if (key !== '') headers.set('authorization', `Bearer ${key}`);
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401) {
    askForKey(key === '' ? 'This server needs an API key (--api-key).' : 'The server refused that API key: enter the right one.');
    throw new Unauthorized('the API key is missing or wrong');
  }
  return response;
}

/** The message of an error answer: OpenAI's, the status route's and Ollama's shapes all carry one. */
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (typeof body?.error?.message === 'string') return body.error.message;
    if (typeof body?.error === 'string') return body.error;
  } catch {
    // Not JSON: the status says enough.
  }
  return `HTTP ${response.status} ${response.statusText}`;
}

/** Calls onEvent with each JSON event of a server-sent event stream, until `data: [DONE]` or its end. */
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffered.search(/\r?\n\r?\n/)) !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data === '') continue;
      if (data === '[DONE]') {
        await reader.cancel();
        return;
      }
      try {
        onEvent(JSON.parse(data));
      } catch (error) {
        await reader.cancel();
        throw error;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The API key

function askForKey(reason) {
  ui.keyReason.textContent = reason;
  ui.keyForm.hidden = false;
  ui.keyInput.focus();
}

ui.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, ui.keyInput.value.trim());
  ui.keyInput.value = '';
  ui.keyForm.hidden = true;
  void start();
});

// ---------------------------------------------------------------------------------------------
// Models

async function loadModels() {
  const response = await api('/v1/models');
  if (!response.ok) throw new Error(await errorMessage(response));
  const { data } = await response.json();
  const chosen = ui.model.value;
  ui.model.replaceChildren(
    ...data.map((model) => {
      const option = document.createElement('option');
      option.value = model.id;
      option.textContent = model.loaded ? `${model.id} (loaded)` : model.id;
      return option;
    }),
  );
  if (data.some((model) => model.id === chosen)) ui.model.value = chosen;
  if (data.length === 0) setChatState('error', 'The server lists no models.');
}

ui.refreshModels.addEventListener('click', () => {
  loadModels().catch(reportFailure);
});

// ---------------------------------------------------------------------------------------------
// Chat

function setChatState(state, text) {
  ui.chatState.dataset.state = state;
  ui.chatState.textContent = text;
}

function addMessage(role, text) {
  const item = document.createElement('li');
  item.className = `message ${role}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : ui.model.value;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  item.append(who, body);
  ui.messages.append(item);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  return item;
}

function addNote(item, text) {
  const note = document.createElement('span');
  note.className = 'note';
  note.textContent = text;
  item.append(note);
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.model.disabled = busy;
  ui.clear.disabled = busy;
}

function numberField(input) {
  const value = input.value.trim();
  return value === '' ? undefined : Number(value);
}

async function send() {
  const text = ui.prompt.value.trim();
  if (text === '' || current !== undefined) return;
  const model = ui.model.value;
  if (model === '') {
    setChatState('error', 'Pick a model first.');
    return;
  }
  ui.prompt.value = '';
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const item = addMessage('assistant', '');
  const textNode = item.querySelector('.text');
  item.classList.add('streaming');

  const messages = [];
  const system = ui.system.value.trim();
  if (system !== '') messages.push({ role: 'system', content: system });
  messages.push(...history);
  const request = { model, messages, stream: true, stream_options: { include_usage: true } };
  const temperature = numberField(ui.temperature);
  if (temperature !== undefined) request.temperature = temperature;
  const maxTokens = numberField(ui.maxTokens);
  if (maxTokens !== undefined) request.max_tokens = maxTokens;

  const controller = new AbortController();
  current = { controller };
  setBusy(true);
  setChatState('waiting', `Waiting for ${model}… (a model that is not loaded loads first)`);
  const sentAt = performance.now();
  let firstAt;
  let answer = '';
  let finish;
  let usage;
  try {
    const response = await api('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(request),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await readEvents(response.body, (event) => {
      if (event.error) throw new Error(event.error.message);
      if (event.usage) usage = event.usage;
      const choice = event.choices?.[0];
      const delta = choice?.delta?.content;
      if (typeof delta === 'string' && delta !== '') {
        firstAt ??= performance.now();
        answer += delta;
        textNode.textContent = answer;
        ui.messages.scrollTop = ui.messages.scrollHeight;
        setChatState('streaming', `${model} is answering… (first token after ${Math.round(firstAt - sentAt)} ms)`);
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    });
    const took = (performance.now() - sentAt) / 1000;
    const tokens = usage?.completion_tokens;
    const pace = tokens !== undefined && firstAt !== undefined && performance.now() > firstAt ? ` at ${(tokens / ((performance.now() - firstAt) / 1000)).toFixed(1)} tokens/s` : '';
    const summary = `${tokens ?? '?'} tokens in ${took.toFixed(1)} s${pace}${finish === 'length' ? ', cut at the token limit' : ''}`;
    addNote(item, summary);
    setChatState('done', `Done: ${summary}.`);
  } catch (error) {
    if (controller.signal.aborted) {
      addNote(item, 'stopped');
      setChatState('stopped', 'Stopped: the server cancels the run when the page lets go of the request.');
    } else {
      item.classList.add('failed');
      addNote(item, error instanceof Unauthorized ? 'needs the API key' : error.message);
      setChatState('error', error instanceof Unauthorized ? 'Enter the API key above, then send again.' : `Failed: ${error.message}`);
    }
  } finally {
    item.classList.remove('streaming');
    current = undefined;
    setBusy(false);
    // What was answered, even in part, is the model's turn; a turn with no answer is taken back.
    if (answer !== '') history.push({ role: 'assistant', content: answer });
    else history.pop();
    void refreshStatus();
  }
}

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  void send();
});

ui.prompt.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    void send();
  }
});

ui.stop.addEventListener('click', () => current?.controller.abort());

ui.clear.addEventListener('click', () => {
  history = [];
  ui.messages.replaceChildren();
  setChatState('idle', 'Ready.');
});

// ---------------------------------------------------------------------------------------------
// Status

function bytes(count) {
  if (count === null || count === undefined) return '–';
  if (count >= 1024 ** 3) return `${(count / 1024 ** 3).toFixed(1)} GiB`;
  return `${Math.round(count / 1024 ** 2)} MiB`;
}

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const hours = Math.floor(s / 3600);
  return hours < 48 ? `${hours} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(hours / 24)} days ${hours % 24} h`;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function badge(text) {
  const td = document.createElement('td');
  const span = document.createElement('span');
  span.className = `state ${text}`;
  span.textContent = text.replace('_', ' ');
  td.append(span);
  return td;
}

function renderStatus(status) {
  const facts = [
    ['Uptime', duration(status.uptime_s)],
    ['Runtime', `${status.runtime.emulated ? 'emulated' : status.runtime.release ?? 'librkllmrt'} (ABI ${status.runtime.abi})`],
    ['Running', String(status.queue.running)],
    ['Queued', String(status.queue.queued)],
    ['Server memory', bytes(status.memory.rss_bytes)],
    ['Model hosts', bytes(status.memory.model_hosts_rss_bytes)],
    ['System', `${bytes(status.memory.system_total_bytes - status.memory.system_free_bytes)} used of ${bytes(status.memory.system_total_bytes)}`],
  ];
  if (status.shutting_down) facts.unshift(['State', 'shutting down']);
  ui.facts.replaceChildren(
    ...facts.flatMap(([name, value]) => {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value;
      return [dt, dd];
    }),
  );
  ui.serverLine.textContent = `up ${duration(status.uptime_s)} · ${status.queue.running} running · ${status.queue.queued} queued`;

  ui.modelsBody.replaceChildren(
    ...status.models.map((model) => {
      const row = document.createElement('tr');
      row.dataset.model = model.name;
      row.append(cell(model.name), badge(model.state), cell(`${model.running} / ${model.queued}`, 'num'), cell(bytes(model.host?.rss_bytes), 'num'));
      return row;
    }),
  );

  ui.runsEmpty.hidden = status.recent.length > 0;
  ui.runsBody.replaceChildren(
    ...status.recent.map((run) => {
      const row = document.createElement('tr');
      const tokens = run.generated_tokens === null ? '–' : `${run.prompt_tokens ?? '?'} → ${run.generated_tokens}`;
      row.append(
        cell(new Date(run.ended_at).toLocaleTimeString()),
        cell(run.route),
        cell(run.model ?? '–'),
        badge(run.outcome),
        cell(tokens, 'num'),
        cell(run.ttft_ms === null ? '–' : `${Math.round(run.ttft_ms)} ms`, 'num'),
        cell(run.tokens_per_second === null ? '–' : run.tokens_per_second.toFixed(1), 'num'),
      );
      return row;
    }),
  );
}

/** One refresh at a time; the next is due STATUS_EVERY_MS after it (none while the key is missing). */
async function refreshStatus() {
  if (statusInFlight) return;
  statusInFlight = true;
  clearTimeout(statusTimer);
  try {
    // A tab in the background asks nothing of the server.
    if (!document.hidden) {
      const response = await api('/status');
      if (!response.ok) throw new Error(await errorMessage(response));
      renderStatus(await response.json());
    }
  } catch (error) {
    if (error instanceof Unauthorized) return; // Asked again once the key is given.
    ui.serverLine.textContent = `status unavailable: ${error.message}`;
  } finally {
    statusInFlight = false;
  }
  statusTimer = setTimeout(refreshStatus, STATUS_EVERY_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) void refreshStatus();
});

// ---------------------------------------------------------------------------------------------

function reportFailure(error) {
  if (error instanceof Unauthorized) return;
  setChatState('error', `Failed: ${error.message}`);
}

async function start() {
  try {
    await loadModels();
    if (current === undefined && ui.chatState.dataset.state !== 'done') setChatState('idle', 'Ready.');
  } catch (error) {
    reportFailure(error);
  }
  await refreshStatus();
}

void start();
