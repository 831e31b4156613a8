/** Errors of the TypeScript socket driver, with the device's status and socket-error names. */
import { ENUMS } from '../abi/abi.js';

export class SgiovError extends Error {
  constructor(
    message: string,
    readonly errno: string,
    readonly code = 0,
  ) {
    super(message);
  }
}

export const ERRNO_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(ENUMS.STATUS).map(([k, v]) => [v, k]),
);
export const SERR_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(ENUMS.SERR).map(([k, v]) => [v, k]),
);
