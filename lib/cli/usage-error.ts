// A mistake in how the command was called (a flag, the config file): printed as one line with a
// pointer to --help, and exit status 2, as shells expect of usage errors.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
