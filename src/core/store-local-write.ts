// The durable write path of a local store: data goes to a new temporary file in one write
// system call, is flushed (fdatasync) before the caller renames it into place, and then the
// folders whose entries make the object exist are flushed too: its folder, and the parent of
// every folder the put created.
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { eachLimited } from './each-limited';
import { IntegrityError, errorCode } from './errors';
import { syncDirectory } from './file-target';
import { TEMP, keyOf } from './store-local-keys';
import { sidecarOf, type Meta } from './store-local-sidecar';
import type { LocalStoreErrors } from './store-local-errors';
import { StoreError } from './store';
import { writeAll } from './write-all';

// Folder flushes in flight; the thread pool has 4 threads by default.
const SYNC_JOBS = 4;
// Folders known to exist, to skip a mkdir per put; forgotten past this many (any entry may be
// stale: a folder deleted since is made again when a temporary file cannot be opened in it).
const KNOWN_FOLDERS = 10000;

export class DurableWriter {
  private readonly folders = new Set<string>();

  constructor(
    readonly root: string,
    private readonly errors: LocalStoreErrors,
    /** False (s3-put --no-fsync): nothing is flushed; renames still put whole files in place. */
    readonly fsync = true,
  ) {}

  /**
   * Writes data to a new temporary file in `dir` (made if needed) in writes of 1 MiB (write-all.ts),
   * flushed to disk if `durable`; `meanwhile` runs on this thread while the thread pool writes,
   * and its throwing removes the file. Gives the file and the folders whose entries the put
   * changes: `dir`, and the parent of every folder it made.
   */
  async writeTemp(key: string, dir: string, data: Uint8Array, durable: boolean, meanwhile?: () => void): Promise<{ temp: string; folders: string[] }> {
    const { temp, folders, handle } = await this.openTemp(key, dir);
    const writing = writeAll(handle, data);
    try {
      try {
        meanwhile?.();
      } finally {
        // Settled either way before the file is closed or removed.
        await writing.catch((err) => {
          throw this.errors.fs(err, key, 'storing');
        });
      }
      await this.closeTemp(key, handle, durable);
    } catch (err) {
      await handle.close().catch(() => {});
      await fsp.unlink(temp).catch(() => {});
      throw err instanceof StoreError || err instanceof IntegrityError ? err : this.errors.fs(err, key, 'storing');
    }
    return { temp, folders };
  }

  /**
   * A new, empty temporary file in `dir` (made if needed), open for writing; gives it with the
   * folders whose entries the put changes: `dir`, and the parent of every folder it made.
   */
  async openTemp(key: string, dir: string): Promise<{ temp: string; folders: string[]; handle: fsp.FileHandle }> {
    for (let attempt = 0; ; attempt++) {
      const folders = await this.makeFolders(key, dir);
      const temp = path.join(dir, TEMP + randomBytes(8).toString('hex'));
      try {
        const handle = await fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
        return { temp, folders, handle };
      } catch (err) {
        // A delete emptied and removed the folder in between: make it again.
        if (errorCode(err) === 'ENOENT' && attempt < 3) {
          this.folders.delete(dir);
          continue;
        }
        throw this.errors.fs(err, key, 'storing');
      }
    }
  }

  /** Flushes a temporary file's data to disk if `durable`, and closes it. */
  async closeTemp(key: string, handle: fsp.FileHandle, durable: boolean): Promise<void> {
    if (durable && this.fsync) {
      await handle.datasync().catch((err) => {
        throw this.errors.fs(err, key, 'flushing');
      });
    }
    await handle.close();
  }

  /**
   * Renames a flushed temporary file into place as `file`, with its sidecar (checksums, storage
   * class, metadata). The temporary file is removed when that fails.
   */
  async install(key: string, file: string, temp: string, meta: Meta): Promise<void> {
    const dir = path.dirname(file);
    const metaFile = sidecarOf(file);
    let metaTemp: string | undefined;
    try {
      // Not flushed on its own: a sidecar lost in a crash reads as empty or unparsable, which
      // means "checksums unknown", never a wrong checksum. The folder's flush covers it.
      metaTemp = (await this.writeTemp(key, dir, Buffer.from(JSON.stringify(meta) + '\n'), false)).temp;
      // No moment shows new data with the old sidecar: between the two renames the object
      // has no sidecar, which means "checksums unknown".
      await fsp.unlink(metaFile).catch((err) => {
        if (errorCode(err) !== 'ENOENT') throw err;
      });
      await fsp.rename(temp, file).catch((err) => {
        if (errorCode(err) === 'EISDIR') throw this.errors.clash(key, `objects under "${key}/" exist`);
        throw err;
      });
      await fsp.rename(metaTemp, metaFile);
    } catch (err) {
      await fsp.unlink(temp).catch(() => {});
      if (metaTemp) await fsp.unlink(metaTemp).catch(() => {});
      throw err instanceof StoreError ? err : this.errors.fs(err, key, 'storing');
    }
  }

  /** Flushes folders' entries to disk, several at once (each waits on the disk's journal). */
  async syncFolders(folders: string[]): Promise<void> {
    if (!this.fsync) return;
    await eachLimited(folders, SYNC_JOBS, (d) =>
      syncDirectory(d).catch((err) => {
        // Deleted since: none of the objects it held remain to be kept.
        if (errorCode(err) !== 'ENOENT') throw err;
      }),
    );
  }

  /** Makes `dir` and its parents as needed; gives the folders whose entries must be flushed. */
  private async makeFolders(key: string, dir: string): Promise<string[]> {
    if (this.folders.has(dir)) return [dir];
    let first: string | undefined;
    try {
      first = await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      if (!['ENOTDIR', 'EEXIST'].includes(errorCode(err) ?? '')) throw this.errors.fs(err, key, 'storing');
      // Some folder on the way is a file: the object of a shorter key.
      const components = path.relative(this.root, dir).split(path.sep);
      for (let n = 1; n <= components.length; n++) {
        const stat = await fsp.lstat(path.join(this.root, ...components.slice(0, n))).catch(() => undefined);
        if (stat && !stat.isDirectory()) throw this.errors.clash(key, `object ${JSON.stringify(keyOf(components.slice(0, n)))} exists`);
      }
      throw this.errors.fs(err, key, 'storing');
    }
    if (this.folders.size >= KNOWN_FOLDERS) this.folders.clear();
    this.folders.add(dir);
    const folders = [dir];
    // A new folder exists only once its parent's entry for it is on disk too.
    if (first !== undefined) {
      for (let d = dir; d !== path.dirname(d) && d.length >= first.length; d = path.dirname(d)) folders.push(path.dirname(d));
    }
    return folders;
  }
}
