// The web page in a real browser: Debian's chromium, headless, driven by puppeteer-core (which
// downloads no browser) against a real bin/rkllm-serve on the emulated runtime. The page picks a
// catalog model, streams its answer (seen growing while the run goes on), stops it (the server's
// run ends), keeps the conversation across turns, and asks for the API key when the server has one.
// RKLLM_SERVE_SCREENSHOT=1 saves docs/images/web-page.png mid-chat (the README's picture).

// The functions handed to page.evaluate and friends run in the page: they are typed with the DOM.
/// <reference lib="dom" />

import * as fs from 'fs';
import * as path from 'path';
import puppeteer, { type Browser, type HTTPRequest, type Page } from 'puppeteer-core';
import { HttpClient, REPO_ROOT, ServerProcess, makeTempDir, sleep, stopAllServers, waitUntil } from '../integration/client';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = path.join(REPO_ROOT, 'docs', 'images', 'web-page.png');
const KEY = 'browser-test-key';
/** The catalog model the chat picks: an emulated model file under --models-dir. */
const PACED = 'qwen2.5-1.5b-emulated';
/** Bound on every wait for the page. */
const WAIT_MS = 15_000;

function requireChromium(): void {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(
      `the browser test needs Debian's chromium at ${CHROMIUM}: install it with \`bash scripts/install-test-deps.sh\` ` +
        '(or point CHROMIUM_PATH at a Chromium binary)',
    );
  }
}

async function launch(): Promise<Browser> {
  requireChromium();
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    // CI runs the tests as root, where Chromium's sandbox cannot start; the only page it opens
    // is the test's own server on 127.0.0.1.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,760'],
    defaultViewport: { width: 1280, height: 760 },
  });
}

/** A page that records what would make it fail quietly: script errors, CSP refusals, failed loads. */
async function openPage(browser: Browser, port: number): Promise<{ page: Page; problems: string[]; chatBodies: unknown[] }> {
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems: string[] = [];
  const chatBodies: unknown[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${String(error)}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('request', (request: HTTPRequest) => {
    if (request.url().endsWith('/v1/chat/completions') && request.method() === 'POST') chatBodies.push(JSON.parse(request.postData() ?? 'null'));
  });
  const response = await page.goto(`http://127.0.0.1:${port}/`, { waitUntil: 'load' });
  expect(response?.status()).toBe(200);
  return { page, problems, chatBodies };
}

async function answerText(page: Page): Promise<string> {
  return page.$$eval('.message.assistant .text', (nodes) => (nodes.length === 0 ? '' : (nodes[nodes.length - 1].textContent ?? '')));
}

async function chatState(page: Page): Promise<string> {
  return page.$eval('#chat-state', (node) => (node as HTMLElement).dataset.state ?? '');
}

async function waitForChatState(page: Page, state: string): Promise<void> {
  await page.waitForFunction((wanted) => document.getElementById('chat-state')?.dataset.state === wanted, { timeout: WAIT_MS }, state);
}

async function waitForOption(page: Page, model: string): Promise<void> {
  await page.waitForFunction((name) => Array.from(document.querySelectorAll('#model option')).some((option) => (option as HTMLOptionElement).value === name), { timeout: WAIT_MS }, model);
}

/** The state the status view shows for a model (it refreshes every 2 s). */
async function waitForModelState(page: Page, model: string, state: string): Promise<void> {
  await page.waitForFunction(
    (name, wanted) => Array.from(document.querySelectorAll('#models-table tr')).some((row) => (row as HTMLElement).dataset.model === name && row.querySelector('.state')?.textContent === wanted),
    { timeout: WAIT_MS },
    model,
    state,
  );
}

async function sendMessage(page: Page, text: string): Promise<void> {
  await page.click('#prompt');
  await page.keyboard.type(text);
  await page.click('#send');
}

describe('the web page in headless Chromium', () => {
  let browser: Browser;
  let modelsDir: string;

  beforeAll(async () => {
    browser = await launch();
    modelsDir = makeTempDir('web');
    // A model paced like a slow board (about 12 tokens/s), so its answer can be watched as it grows.
    const paced = { format: 'rkllm-emulated-model', version: 1, name: PACED, timing: { load_ms: 600, decode_ms_per_token: 80 } };
    fs.writeFileSync(path.join(modelsDir, `${PACED}.rkllm`), JSON.stringify(paced));
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stopAllServers();
    if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
  });

  describe('without an API key', () => {
    let server: ServerProcess;
    let http: HttpClient;

    beforeAll(async () => {
      server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio', 'tcp', 'udp', 'websocket'], args: ['--models-dir', modelsDir] });
      http = new HttpClient(server.port('http'));
    });
    afterAll(async () => {
      await http.close();
      await server.stop();
    });

    it('streams a catalog model\'s answer token by token, and Stop ends the run on the server', async () => {
      const { page, problems } = await openPage(browser, server.port('http'));
      await waitForOption(page, PACED);
      await page.select('#model', PACED);
      // A first turn, cut short by the max tokens setting.
      await page.click('#settings summary');
      await page.type('#max-tokens', '16');
      await sendMessage(page, 'Hello! Which board are you running on?');
      await waitForChatState(page, 'done');
      expect(await page.$eval('#chat-state', (node) => node.textContent)).toContain('cut at the token limit');
      await page.$eval('#max-tokens', (input) => ((input as HTMLInputElement).value = ''));
      await page.click('#settings summary');

      await sendMessage(page, 'Now count to 400, please.');

      // The answer grows while the run goes on: sampled several times before it ends.
      await waitUntil('the first tokens on the page', async () => (await answerText(page)).length > 0, WAIT_MS);
      const lengths: number[] = [];
      for (let sample = 0; sample < 5; sample++) {
        lengths.push((await answerText(page)).length);
        await sleep(300);
      }
      for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeGreaterThan(lengths[i - 1]);
      expect(await chatState(page)).toBe('streaming');
      expect(await answerText(page)).toMatch(/^1, 2, 3, /);
      // The status view sees the run.
      await waitForModelState(page, PACED, 'busy');
      expect((await http.raw('GET', '/status')).json.models).toContainEqual(expect.objectContaining({ name: PACED, state: 'busy', running: 1 }));

      if (process.env.RKLLM_SERVE_SCREENSHOT === '1') {
        fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
        // Down to the end of the page's panels, not the empty viewport below them.
        const height = await page.$eval('main', (main) => Math.ceil(main.getBoundingClientRect().bottom) + 16);
        await page.screenshot({ path: SCREENSHOT as `${string}.png`, clip: { x: 0, y: 0, width: 1280, height } });
      }

      await page.click('#stop');
      await waitForChatState(page, 'stopped');
      // The server's run ends: nothing running or queued, and the answer stops growing.
      await waitUntil(
        'the run to end on the server',
        async () => {
          const health = (await http.health()).json;
          return health.running === 0 && health.queued === 0;
        },
        5000,
      );
      const stoppedAt = await answerText(page);
      await sleep(500);
      expect(await answerText(page)).toBe(stoppedAt);
      // Stopped well before its end ("..., 399, 400").
      expect(stoppedAt).not.toMatch(/\b400$/);
      expect(await page.$eval('#stop', (button) => (button as HTMLButtonElement).disabled)).toBe(true);
      await waitForModelState(page, PACED, 'idle');
      expect(problems).toEqual([]);
      await page.close();
    }, 60_000);

    it('keeps the conversation, the system prompt and the settings across turns', async () => {
      const { page, problems, chatBodies } = await openPage(browser, server.port('http'));
      await waitForOption(page, 'default');
      await page.select('#model', 'default');
      await page.click('#settings summary');
      await page.type('#system', 'You count.');
      await page.type('#temperature', '0.5');
      await page.type('#max-tokens', '64');

      await sendMessage(page, 'count to 3');
      await waitForChatState(page, 'done');
      expect(await answerText(page)).toBe('1, 2, 3');
      await sendMessage(page, 'count to 5');
      await waitForChatState(page, 'done');
      await waitUntil('the second answer', async () => (await answerText(page)) === '1, 2, 3, 4, 5', WAIT_MS);

      expect(chatBodies).toHaveLength(2);
      expect(chatBodies[1]).toEqual({
        model: 'default',
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0.5,
        max_tokens: 64,
        messages: [
          { role: 'system', content: 'You count.' },
          { role: 'user', content: 'count to 3' },
          { role: 'assistant', content: '1, 2, 3' },
          { role: 'user', content: 'count to 5' },
        ],
      });
      expect(await page.$$eval('.message', (nodes) => nodes.length)).toBe(4);
      expect(problems).toEqual([]);
      await page.close();
    }, 60_000);
  });

  describe('with --api-key', () => {
    let server: ServerProcess;

    beforeAll(async () => {
      server = await ServerProcess.start({ model: 'sim:instant', disable: ['stdio', 'tcp', 'udp', 'websocket'], args: ['--api-key', KEY] });
    });
    afterAll(async () => {
      await server.stop();
    });

    it('asks for the key, then works with it', async () => {
      const { page, problems } = await openPage(browser, server.port('http'));
      await page.waitForSelector('#key-form:not([hidden])', { timeout: WAIT_MS });
      expect(await page.$$eval('#model option', (options) => options.length)).toBe(0);

      await page.type('#api-key', 'wrong-key');
      await page.click('#key-form button[type="submit"]');
      await page.waitForFunction(() => document.getElementById('key-reason')?.textContent?.includes('refused'), { timeout: WAIT_MS });

      await page.type('#api-key', KEY);
      await page.click('#key-form button[type="submit"]');
      await waitForOption(page, 'default');
      expect(await page.$eval('#key-form', (form) => (form as HTMLFormElement).hidden)).toBe(true);
      expect(await page.evaluate(() => sessionStorage.getItem('rkllm-serve.api-key'))).toBe(KEY);
      await page.waitForSelector('#models-table tr[data-model="default"]', { timeout: WAIT_MS });

      await sendMessage(page, 'count to 4');
      await waitForChatState(page, 'done');
      expect(await answerText(page)).toBe('1, 2, 3, 4');
      // The browser logs the two refused requests of each try without the key; nothing else.
      expect(problems.filter((problem) => !/status of 401/.test(problem))).toEqual([]);
      await page.close();
    }, 60_000);
  });
});
