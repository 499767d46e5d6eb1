// INVALID_ARGUMENT as the library layer words it: "field: reason", with both also given as the
// error's structured fields.

import { RkllmError } from '../errors';

export function argumentError(field: string, reason: string): RkllmError {
  return new RkllmError(`${field}: ${reason}`, 'INVALID_ARGUMENT', { field, reason });
}
