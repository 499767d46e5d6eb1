// The settings of model hosts: the watchdog and the restart policy (ServerConfig extends these;
// docs/cli.md gives the flags and the reasoning behind each default).

export interface HostSettings {
  /** Opening the runtime and rkllm_init in a new host must end within this, or the host is hung. */
  hostInitTimeoutMs: number;
  /** While a run or call is outstanding, the host must deliver something (a token, an answer) within this. */
  hostRunTimeoutMs: number;
  /** A run asked to stop (abort, cancel) must end within this. */
  hostAbortTimeoutMs: number;
  /** This many host failures of one model within hostFailureWindowMs mark the model failed. */
  hostMaxFailures: number;
  hostFailureWindowMs: number;
}

export const DEFAULT_HOST_SETTINGS: HostSettings = {
  // A large model's rkllm_init takes 30-60 s on an RK3588 (rkllm-abi.md); three times the worst
  // report leaves room for slow storage.
  hostInitTimeoutMs: 180_000,
  // The longest silence of a healthy run is its prefill: about 10.6 ms per prompt token for a 6B
  // model (ChatGLM3-6B, 1353 ms for 128 tokens), so an 8,192-token prompt is about 87 s.
  hostRunTimeoutMs: 120_000,
  // rkllm_abort "can take over a second to land" (rkllm-abi.md): ten seconds is well past that.
  hostAbortTimeoutMs: 10_000,
  hostMaxFailures: 5,
  hostFailureWindowMs: 600_000,
};
