#!/usr/bin/env node
'use strict';
// Checks a running `rkllm-serve --runtime sim` from the outside: waits (bounded) for its TCP
// listening line in the stderr log file, sends one `rkllm_run` of "count to 20" over TCP and
// checks the answer is exactly "1, 2, ..., 20". Used by scripts/arm64-qemu-check.sh (the server
// runs under qemu, this client on the build machine) and by test/package/pack-install.test.ts.
// Plain CommonJS that Node 18 runs as it is (Debian bookworm's arm64 nodejs); the client is the
// package's own (lib/client), from this checkout's dist/.
//
// usage: server-tcp-check.js STDERR_LOG_FILE [TIMEOUT_MS]

const fs = require('fs');
const path = require('path');

const COUNT = 20;
const EXPECTED_TEXT = Array.from({ length: COUNT }, (_, i) => String(i + 1)).join(', ');

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The {host, port} of the first pino line `{transport: "tcp", host, port}` in a log text. */
function findTcpListening(logText) {
  for (const line of logText.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // a line still being written
    }
    if (entry.transport === 'tcp' && typeof entry.port === 'number' && typeof entry.host === 'string') {
      return { host: entry.host, port: entry.port };
    }
  }
  return undefined;
}

/** Polls the log file until the TCP listening line shows up or the deadline passes. */
async function waitForTcpListening(logFile, deadline) {
  for (;;) {
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    const address = findTcpListening(text);
    if (address) return address;
    if (Date.now() >= deadline) {
      throw new Error(`no tcp listening line in ${logFile} in time; it holds:\n${text || '(nothing)'}`);
    }
    await sleep(100);
  }
}

/** The package's own client (dist/lib/client, built by npm run build on this machine). */
function packageClient() {
  return require(path.join(__dirname, '..', 'dist', 'lib', 'client'));
}

/** Sends one JSON-RPC request over a fresh TCP connection and resolves with its reply. */
async function requestOverTcp(address, request, deadline) {
  const { TcpTransport, RpcClient } = packageClient();
  const timeoutMs = Math.max(1, deadline - Date.now());
  const client = new RpcClient(await TcpTransport.connect({ host: address.host, port: address.port, connectTimeoutMs: timeoutMs }));
  try {
    return await client.call(request.method, request.params, { id: request.id, timeoutMs: Math.max(1, deadline - Date.now()) });
  } finally {
    await client.close();
  }
}

/** The whole check; resolves with the answer's text, rejects with what went wrong. */
async function checkServer(logFile, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const address = await waitForTcpListening(logFile, deadline);
  const request = {
    jsonrpc: '2.0',
    id: 1,
    method: 'rkllm_run',
    params: { rkllm_input: { input_type: 0, prompt_input: `count to ${COUNT}` } },
  };
  const reply = await requestOverTcp(address, request, deadline);
  if (reply.error) throw new Error(`rkllm_run failed: ${JSON.stringify(reply.error)}`);
  const text = reply.result && reply.result.text;
  if (text !== EXPECTED_TEXT) throw new Error(`rkllm_run answered ${JSON.stringify(text)}, expected ${JSON.stringify(EXPECTED_TEXT)}`);
  return { address, text };
}

module.exports = { EXPECTED_TEXT, findTcpListening, checkServer };

if (require.main === module) {
  const logFile = process.argv[2];
  const timeoutMs = Number(process.argv[3] || 60000);
  if (!logFile) {
    console.error('usage: server-tcp-check.js STDERR_LOG_FILE [TIMEOUT_MS]');
    process.exit(2);
  }
  checkServer(logFile, timeoutMs).then(
    ({ address, text }) => console.log(`server-tcp-check: ${address.host}:${address.port} answered "${text}"`),
    (error) => {
      console.error(`server-tcp-check: ${error.message}`);
      process.exit(1);
    },
  );
}
