// The errors of a local store, each naming the store's directory and the key concerned.
import { errorCode } from './errors';
import { NotFoundError, StoreError } from './store';

// Errors of a busy or briefly exhausted system, worth retrying; all else is permanent.
const TRANSIENT = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'EMFILE', 'ENFILE', 'ETIMEDOUT']);

export class LocalStoreErrors {
  constructor(readonly root: string) {}

  notFound(key: string): NotFoundError {
    return new NotFoundError(`${this.root}: no object ${JSON.stringify(key)}`, key);
  }

  /** A key that cannot be stored because the directory tree already holds it the other way. */
  clash(key: string, why: string): StoreError {
    return new StoreError(
      `${this.root}: cannot store ${JSON.stringify(key)}: ${why}, and a local directory cannot hold a key and keys under it ("a" and "a/b")`,
      'permanent',
      key,
    );
  }

  /** A file system error while `doing` something to `key` (or to the whole store). */
  fs(err: unknown, key: string | undefined, doing: string): StoreError {
    const code = errorCode(err) ?? '';
    const what = key === undefined ? this.root : `${this.root}: ${doing} ${JSON.stringify(key)}`;
    if (key !== undefined && (code === 'ENOENT' || code === 'ENOTDIR') && doing === 'reading') return this.notFound(key);
    return new StoreError(`${what}: ${(err as Error).message}`, TRANSIENT.has(code) ? 'transient' : 'permanent', key);
  }
}
