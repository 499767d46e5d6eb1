#!/usr/bin/env node
'use strict';
// ExecStartPost of systemd/rkllm-serve.service: waits until the server's readiness route
// (GET /health) answers 200, so the unit counts as started only once its model is loaded.
// Usage: wait-ready.js HOST PORT SECONDS. Exits 0 when ready, 1 after SECONDS without it.
// A server still loading either does not listen yet or answers 503: both mean "ask again".
const http = require('http');

const POLL_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;

const [hostArg, portArg, secondsArg] = process.argv.slice(2);
const port = Number(portArg);
const seconds = Number(secondsArg ?? 170);
if (!hostArg || !Number.isInteger(port) || port < 1 || port > 65535 || !(seconds > 0)) {
  process.stderr.write('usage: wait-ready.js HOST PORT SECONDS (the address and HTTP port rkllm-serve serves on)\n');
  process.exit(2);
}
// A wildcard bind is reached over loopback.
const host = hostArg === '0.0.0.0' ? '127.0.0.1' : hostArg === '::' ? '::1' : hostArg;
const deadline = Date.now() + seconds * 1000;
let lastAnswer = 'no answer yet';

function ask() {
  const request = http.get({ host, port, path: '/health', timeout: REQUEST_TIMEOUT_MS }, (response) => {
    response.resume();
    if (response.statusCode === 200) process.exit(0);
    lastAnswer = `HTTP ${response.statusCode}`;
    again();
  });
  request.once('timeout', () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
  request.once('error', (error) => {
    lastAnswer = error.code ?? error.message;
    again();
  });
}

function again() {
  if (Date.now() + POLL_MS > deadline) {
    process.stderr.write(`rkllm-serve is not ready after ${seconds} s: GET http://${hostArg}:${port}/health gave ${lastAnswer}\n`);
    process.exit(1);
  }
  setTimeout(ask, POLL_MS);
}

ask();
