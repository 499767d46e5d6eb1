// RKLLM_SERVE_HOST_NODE: the command that runs a model host's Node (how the arm64 check under
// qemu-user starts its hosts). A wrapper given there is what starts every host; a bad value stops
// the server at start-up, naming the variable.

import * as fs from 'fs';
import * as path from 'path';
import { ServerProcess, TcpClient, makeTempDir, runCli } from '../integration/client';

it('starts the model hosts through the command given, which then answers runs', async () => {
  const dir = makeTempDir('host-node');
  const marker = path.join(dir, 'started');
  // A wrapper of its own: notes each start, then runs this Node with the host's arguments.
  const wrapper = path.join(dir, 'wrapper.sh');
  fs.writeFileSync(wrapper, `#!/bin/sh\necho started >> ${JSON.stringify(marker)}\nexec ${JSON.stringify(process.execPath)} "$@"\n`, { mode: 0o755 });
  const server = await ServerProcess.start({ runtime: 'sim', model: 'sim:instant', env: { RKLLM_SERVE_HOST_NODE: JSON.stringify([wrapper]) } });
  try {
    const client = await TcpClient.connect(server.port('tcp'));
    try {
      const reply = await client.request('rkllm_run', { rkllm_input: { input_type: 0, prompt_input: 'count to 3' } });
      expect((reply.result as { text: string }).text).toBe('1, 2, 3');
    } finally {
      await client.close();
    }
    expect(fs.readFileSync(marker, 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(1);
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('says so when the command given does not start a host at all', async () => {
  const run = await runCli(['--runtime', 'sim', '--model', 'sim:instant', '--disable-stdio', '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], {
    env: { RKLLM_SERVE_HOST_NODE: JSON.stringify(['/bin/sh', '-c', 'exit 7']) },
  });
  expect(run.code).not.toBe(0);
  expect(run.stderr).toContain('the model host exited with code 7 before it answered anything');
});

it.each(['not json', '[]', '["node", 3]', '{"command":"node"}'])('refuses RKLLM_SERVE_HOST_NODE=%s at start-up, naming it', async (value) => {
  const run = await runCli(['--runtime', 'sim', '--model', 'sim:instant', '--disable-stdio', '--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'], {
    env: { RKLLM_SERVE_HOST_NODE: value },
  });
  expect(run.code).not.toBe(0);
  expect(run.stderr).toContain('RKLLM_SERVE_HOST_NODE');
});
