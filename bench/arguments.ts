// Reads `--name value` from the command line of a bench script or load client. Without a
// fallback the argument is required, and its absence stops the script with a clear error.
export function argument(name: string, fallback?: string): string {
  const index = process.argv.indexOf(`--${name}`);
  if (index !== -1 && index + 1 < process.argv.length) return process.argv[index + 1];
  if (fallback === undefined) throw new Error(`missing --${name}`);
  return fallback;
}
