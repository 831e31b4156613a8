import { SgiovError } from '../../emulator/client/errors.js';

/** The errno name a driver call fails with ('' when it does not fail); other errors are thrown on. */
export function errnoOf(f: () => unknown): string {
  try {
    f();
    return '';
  } catch (e) {
    if (e instanceof SgiovError) return e.errno;
    throw e;
  }
}

/** The SgiovError a driver call throws (its errno and device code), or null when it does not throw. */
export function sgiovErrorOf(f: () => unknown): SgiovError | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof SgiovError) return e;
    throw e;
  }
}
