// The exit-code table. It only ever grows: scripts depend on these numbers.
export const EXIT = {
  OK: 0,
  FAILURE: 1, // an I/O or remote error, or anything not listed below
  USAGE: 2, // bad flags or arguments
  INCOMPLETE: 3, // the input ended without a valid `end` trailer: the upstream died
  INVALID_INPUT: 4, // the input is not a valid stream (garbage, wrong record, bad payload)
  INTEGRITY: 5, // data failed a check: checksum, length, size
  INTERRUPTED: 130, // SIGINT
  TERMINATED: 143, // SIGTERM
} as const;

export class SluiceError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.FAILURE) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad command line. The runtime prints the usage text after the message. */
export class UsageError extends SluiceError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** The input stopped before its `end` trailer: nothing may be committed from it. */
export class IncompleteInputError extends SluiceError {
  constructor(message: string) {
    super(message, EXIT.INCOMPLETE);
  }
}

/** The input is not a valid stream, or holds a record this command cannot take. */
export class InvalidInputError extends SluiceError {
  constructor(message: string) {
    super(message, EXIT.INVALID_INPUT);
  }
}

/** Data did not match its checksum, length or declared size. */
export class IntegrityError extends SluiceError {
  constructor(message: string) {
    super(message, EXIT.INTEGRITY);
  }
}

export function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}
