// The layering of lib/ that `npm run lint:deps` holds (dependency-cruiser). Layers, from the
// foundation up; a module may import its own layer and the layers before it, never after:
//
//   lib/errors.ts, lib/auth.ts, lib/package-root.ts → lib/native/ → lib/runtime/ → lib/host/ → lib/core/ → lib/rpc/ →
//   lib/methods/, lib/openai/, lib/ollama/, lib/web/ → lib/framing/, lib/transports/ → lib/client/ → lib/serve/ →
//   lib/cli/ → lib/index.ts
//
// with tighter fences where a layer must stay independent of what sits before it: lib/rpc/ (the
// JSON-RPC engine) imports nothing else of lib/, the media (framing, transports) only errors,
// auth, rpc and framing, and the client only errors, rpc and framing. Type-only imports count (tsPreCompilationDeps): a type is a
// coupling too.

const base = ['^lib/errors\\.ts$', '^lib/auth\\.ts$', '^lib/package-root\\.ts$'];
const auth = '^lib/auth\\.ts$';
const errors = '^lib/errors\\.ts$';
const native = '^lib/native/';
const runtime = '^lib/runtime/';
const host = '^lib/host/';
const core = '^lib/core/';
const rpc = '^lib/rpc/';
const methods = '^lib/methods/';
const openai = '^lib/openai/';
const ollama = '^lib/ollama/';
const web = '^lib/web/';
const framing = '^lib/framing/';
const transports = '^lib/transports/';
const client = '^lib/client/';
const serve = '^lib/serve/';
const cli = '^lib/cli/';
const index = '^lib/index\\.ts$';
const everyLayer = [...base, native, runtime, host, core, rpc, methods, openai, ollama, web, framing, transports, client, serve, cli, index];

/** A rule that lets modules matching `from` import, inside lib/, only what matches `allowed`. */
function mayImportOnly(name, comment, from, allowed) {
  return { name, comment, severity: 'error', from: { path: from }, to: { path: '^lib/', pathNot: allowed } };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      // A cycle makes load order matter and lets no module in it be understood or moved alone.
      name: 'no-circular',
      comment: 'lib/ has no circular imports, type-only ones included.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      // The package ships dist/lib only; test/ and bench/ are not in it.
      name: 'lib-not-to-test-or-bench',
      comment: 'lib/ never imports test/ or bench/.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(test|bench)/' },
    },
    {
      // A module outside every layer would escape all the rules below: put it in a layer.
      name: 'lib-module-in-a-layer',
      comment: 'Every module of lib/ belongs to one of the layers named in .dependency-cruiser.cjs.',
      severity: 'error',
      from: { path: '^lib/', pathNot: everyLayer },
      to: { path: '^lib/' },
    },
    {
      name: 'lib-module-in-a-layer-imported',
      comment: 'Every module of lib/ belongs to one of the layers named in .dependency-cruiser.cjs.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^lib/', pathNot: everyLayer },
    },
    // The foundation: the error class, the API key check and finding the package root.
    mayImportOnly('base-imports-only-base', 'lib/errors.ts, lib/auth.ts and lib/package-root.ts import only each other.', base, base),
    // The typed face of the addon: knows nothing of what is built on it.
    mayImportOnly('native-imports-only-base', 'lib/native/ imports only errors and package-root.', native, [...base, native]),
    // The library API over the addon.
    mayImportOnly('runtime-imports-down-only', 'lib/runtime/ imports only base and native.', runtime, [...base, native, runtime]),
    // Model hosts: the child process's entry and the server's side of it (spawn, protocol,
    // watchdog, restart, the proxy ports). Over the library API; knows nothing of the server.
    mayImportOnly('host-imports-down-only', 'lib/host/ imports only base, native and runtime.', host, [...base, native, runtime, host]),
    // Models by handle, schedulers, streams: the server's state, with no wire format in it.
    mayImportOnly('core-imports-down-only', 'lib/core/ imports only base, native, runtime and host.', core, [...base, native, runtime, host, core]),
    // The JSON-RPC 2.0 engine stands alone, so it can be tested and reused without a model.
    mayImportOnly('rpc-imports-nothing-of-lib', 'lib/rpc/ imports nothing of lib/ outside itself.', rpc, [rpc]),
    // The front ends over the core: each its own protocol; neither knows the other.
    mayImportOnly(
      'methods-imports-down-only',
      'lib/methods/ imports base, native, runtime, host, core and rpc; never lib/openai/ or lib/ollama/.',
      methods,
      [...base, native, runtime, host, core, rpc, methods],
    ),
    mayImportOnly(
      'openai-imports-down-only',
      'lib/openai/ imports base, native, runtime, host, core and rpc; never lib/methods/ or lib/ollama/.',
      openai,
      [...base, native, runtime, host, core, rpc, openai],
    ),
    mayImportOnly(
      'ollama-imports-down-only',
      'lib/ollama/ imports base, native, runtime, host, core and rpc; never lib/methods/ or lib/openai/.',
      ollama,
      [...base, native, runtime, host, core, rpc, ollama],
    ),
    // The web page's routes: its files and the status view, over the core like the front ends.
    mayImportOnly(
      'web-imports-down-only',
      'lib/web/ imports base, native, runtime, host, core and rpc; never another front end.',
      web,
      [...base, native, runtime, host, core, rpc, web],
    ),
    // The media carry messages and know no model: they reach the engine through lib/rpc/ only.
    mayImportOnly(
      'framing-is-media-only',
      'lib/framing/ imports only lib/errors.ts, lib/rpc/ and itself.',
      framing,
      [errors, rpc, framing],
    ),
    mayImportOnly(
      'transports-are-media-only',
      'lib/transports/ imports only lib/errors.ts, lib/auth.ts, lib/rpc/, lib/framing/ and itself; never core, methods, openai, runtime, native.',
      transports,
      [errors, auth, rpc, framing, transports],
    ),
    // The client library speaks the wire, so it needs the envelope and framing, nothing server-side.
    mayImportOnly(
      'client-imports-wire-only',
      'lib/client/ imports only lib/errors.ts, lib/rpc/, lib/framing/ and itself.',
      client,
      [errors, rpc, framing, client],
    ),
    // The composition root wires every layer before it together; only the command line and the
    // package's API sit above it.
    mayImportOnly(
      'serve-is-below-cli',
      'lib/serve/ imports any layer before it; never lib/cli/ or lib/index.ts.',
      serve,
      [...base, native, runtime, host, core, rpc, methods, openai, ollama, web, framing, transports, client, serve],
    ),
    mayImportOnly(
      'cli-is-below-index',
      'lib/cli/ imports any layer before it; never lib/index.ts.',
      cli,
      [...base, native, runtime, host, core, rpc, methods, openai, ollama, web, framing, transports, client, serve, cli],
    ),
    // lib/index.ts, the package's API, may import anything: no rule for it.
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
