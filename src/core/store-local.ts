// The object store on a local directory: one plain file per object, so a store can be browsed,
// copied and read with ordinary tools.
//
// Keys map to paths by the rule in store-local-keys.ts; checksums live in a sidecar beside each
// file (store-local-sidecar.ts); data is written durably by store-local-write.ts.
//
// Durability. The data is flushed (fdatasync) before its file is renamed into place, and then
// the folder, whose entry makes the object exist, and the parents of folders the put created.
// A put with `batch` leaves the folders to flush(), which flushes each once for all the puts
// before it: s3-put calls it before journaling objects and before a commit object.
import { constants, lstat, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { sha256b64 } from './digest';
import { eachLimited } from './each-limited';
import { IntegrityError, errorCode } from './errors';
import { LocalStoreErrors } from './store-local-errors';
import { encodeKey, walkKeys, type Found } from './store-local-keys';
import { describe, etagOf, mismatch, readMeta, sidecarOf, type Meta } from './store-local-sidecar';
import { DurableWriter } from './store-local-write';
import { digestOf, THREAD_HASH_BYTES, type ShaPool } from './sha-pool';
import { LocalPieceWrite } from './store-local-pieces';
import {
  NotFoundError, NULL_VERSION, StoreError, keyProblem, pageSizeOf,
  type GetOptions, type GetResult, type ListOptions, type ObjectInfo, type ObjectStore, type PieceWrite,
  type PutOptions, type PutResult, type RestoreOptions, type RestoreState, type UnfinishedWrite,
  type VersionChoice, type VersionInfo,
} from './store';
import { removeTempFile, staleTempFiles } from './store-local-stale';

// Stats and sidecar reads in flight while describing a page.
const DESCRIBE_JOBS = 16;

export class LocalStore implements ObjectStore {
  readonly url: string;
  private readonly locks = new Map<string, Promise<void>>();
  /** Folders whose entries puts with `batch` changed and flush() has not flushed yet. */
  private readonly unflushed = new Set<string>();

  private readonly errors: LocalStoreErrors;
  private readonly writer: DurableWriter;

  constructor(
    readonly root: string,
    /** Threads to hash large objects on, when the command has some. */
    private readonly sha?: ShaPool,
    /** False: no data or folder is flushed to disk (see DurableWriter). */
    fsync = true,
  ) {
    this.url = root;
    this.errors = new LocalStoreErrors(root);
    this.writer = new DurableWriter(root, this.errors, fsync);
  }

  /** The file of `key`, which lies inside the root whatever the key holds. */
  pathOf(key: string): string {
    const problem = keyProblem(key);
    if (problem) throw new StoreError(`${this.root}: ${problem}`, 'permanent', typeof key === 'string' ? key : undefined);
    const components = encodeKey(key);
    for (const c of components) {
      if (c === '' || c === '.' || c === '..' || c.includes('/') || c.includes('\0')) throw new Error(`key mapping produced ${JSON.stringify(c)} for ${JSON.stringify(key)}`);
    }
    return path.join(this.root, ...components);
  }

  async head(key: string, versionId?: string): Promise<ObjectInfo> {
    const file = this.pathOf(key);
    this.refuseVersion(key, versionId);
    const stat = await fsp.lstat(file).catch((err) => {
      throw this.errors.fs(err, key, 'reading');
    });
    if (!stat.isFile()) throw this.errors.notFound(key);
    return describe(key, stat, await readMeta(file), true);
  }

  private refuseVersion(key: string, versionId: string | undefined): void {
    if (versionId === undefined || versionId === NULL_VERSION) return;
    throw new NotFoundError(`${this.root}: no version ${JSON.stringify(versionId)} of object ${JSON.stringify(key)}: a directory keeps one version of each object, "${NULL_VERSION}"`, key);
  }

  async get(key: string, opts: GetOptions = {}): Promise<GetResult> {
    const file = this.pathOf(key);
    this.refuseVersion(key, opts.versionId);
    // A mismatch is read once more: a put may have replaced the object between the reads of
    // the sidecar and of the data.
    for (let attempt = 0; ; attempt++) {
      const meta = await readMeta(file);
      const { data, stat } = await this.read(key, file, opts.range, opts.buffer);
      const info = describe(key, stat, meta, true);
      const problem = meta && !opts.range ? mismatch(data, meta) : undefined;
      if (!problem) return { data, info };
      if (attempt === 0) continue;
      throw new IntegrityError(`${this.root}: object ${JSON.stringify(key)}: ${problem}: the file was changed or is damaged`);
    }
  }

  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<PutResult> {
    const file = this.pathOf(key);
    let sha256 = '';
    const check = () => {
      if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
        throw new IntegrityError(`${this.root}: object ${JSON.stringify(key)}: the data's SHA-256 is ${sha256}, expected ${opts.sha256}; nothing was stored`);
      }
    };
    // Unless the caller knows it (sha256Known): on a hashing thread when the command has some,
    // before the write (the bytes cannot be written while on the thread); else on this thread
    // while the thread pool writes. A temporary file never counts as stored, nor a mismatch.
    let hashAndCheck: (() => void) | undefined;
    if (opts.sha256Known && opts.sha256 !== undefined) sha256 = opts.sha256;
    else if (this.sha && data.length >= THREAD_HASH_BYTES) {
      ({ data, digest: sha256 } = await digestOf(Buffer.from(data.buffer, data.byteOffset, data.length), 'sha256', this.sha));
      check();
    } else {
      hashAndCheck = () => {
        sha256 = sha256b64(data);
        check();
      };
    }
    let folders: string[] = [];
    await this.locked(key, async () => {
      const written = await this.writer.writeTemp(key, path.dirname(file), data, true, hashAndCheck);
      folders = written.folders;
      await this.install(key, written.temp, { size: data.length, etag: etagOf(sha256), sha256 }, opts, folders);
    });
    // Marked only once stored: a flush() must not report as durable a put still under way.
    if (opts.batch) for (const d of folders) this.unflushed.add(d);
    return { etag: etagOf(sha256), sha256 };
  }

  async putPieces(key: string, size: number, pieceSize: number, opts: PutOptions = {}): Promise<PieceWrite> {
    const file = this.pathOf(key);
    const opened = await this.writer.openTemp(key, path.dirname(file));
    return new LocalPieceWrite(this.root, key, size, pieceSize, opts, opened, {
      flushes: this.writer.fsync,
      closeTemp: (handle) => this.writer.closeTemp(key, handle, true),
      install: async (sha256) => {
        await this.locked(key, () => this.install(key, opened.temp, { size, etag: etagOf(sha256), sha256 }, opts, opened.folders));
        if (opts.batch) for (const d of opened.folders) this.unflushed.add(d);
      },
    });
  }

  /**
   * Renames a flushed temporary file into place as `key`, with its sidecar; the caller holds the
   * key's lock. The temporary file is removed when that fails. The folders are flushed unless
   * `opts.batch`.
   */
  private async install(key: string, temp: string, meta: Meta, opts: PutOptions, folders: string[]): Promise<void> {
    if (opts.storageClass !== undefined) meta.storageClass = opts.storageClass;
    if (opts.metadata !== undefined) meta.metadata = opts.metadata;
    await this.writer.install(key, this.pathOf(key), temp, meta);
    if (!opts.batch) {
      await this.writer.syncFolders(folders).catch((err) => {
        throw this.errors.fs(err, key, 'flushing the folder of');
      });
    }
  }

  async flush(): Promise<void> {
    const folders = [...this.unflushed];
    this.unflushed.clear();
    await this.writer.syncFolders(folders).catch((err) => {
      for (const d of folders) this.unflushed.add(d);
      throw this.errors.fs(err, undefined, 'flushing');
    });
  }

  async delete(keys: string[]): Promise<void> {
    const files = keys.map((key) => ({ key, file: this.pathOf(key) }));
    await eachLimited(files, DESCRIBE_JOBS, ({ key, file }) =>
      this.locked(key, async () => {
        const dir = path.dirname(file);
        for (const f of [file, sidecarOf(file)]) {
          await fsp.unlink(f).catch((err) => {
            // Absent, or a directory of other keys: either way there is no such object.
            if (!['ENOENT', 'ENOTDIR', 'EISDIR', 'EPERM'].includes(errorCode(err) ?? '')) throw this.errors.fs(err, key, 'deleting');
          });
        }
        // Folders left empty go too, as a bucket has no empty folders; a put racing with this
        // recreates its folder.
        for (let d = dir; d !== this.root && d.startsWith(this.root + path.sep); d = path.dirname(d)) {
          if (!(await fsp.rmdir(d).then(() => true, () => false))) break;
        }
      }),
    );
  }

  /**
   * A directory never archives: whatever its storage class says, every object is readable. It
   * keeps one version of each, "null".
   */
  async restoreState(key: string, opts: VersionChoice = {}): Promise<RestoreState> {
    if (opts.versionId !== undefined && opts.versionId !== NULL_VERSION) {
      throw new NotFoundError(`${this.root}: no version ${JSON.stringify(opts.versionId)} of object ${JSON.stringify(key)} to restore: a directory keeps one version of each object, "${NULL_VERSION}"`, key);
    }
    await this.head(key);
    return 'readable';
  }

  async restore(key: string, opts?: RestoreOptions): Promise<RestoreState> {
    return this.restoreState(key, opts);
  }

  unfinishedWrites(prefix: string, before: Date): AsyncGenerator<UnfinishedWrite[]> {
    return staleTempFiles(this.root, prefix, before);
  }

  discardWrite(write: UnfinishedWrite): Promise<void> {
    return removeTempFile(this.root, write, (key) => this.pathOf(key)).catch((err) => {
      throw this.errors.fs(err, write.key, 'removing a temporary file of');
    });
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncGenerator<ObjectInfo[]> {
    const pageSize = pageSizeOf(opts);
    const stat = await fsp.stat(this.root).catch((err) => {
      if (errorCode(err) === 'ENOENT') throw new NotFoundError(`${this.root}: no such store: the directory does not exist`);
      throw this.errors.fs(err, undefined, 'listing');
    });
    if (!stat.isDirectory()) throw new StoreError(`${this.root}: not a directory`, 'permanent');
    let page: Found[] = [];
    for await (const found of walkKeys(this.root, '', prefix, opts.startAfter, (err) => this.errors.fs(err, undefined, 'listing'))) {
      page.push(found);
      if (page.length === pageSize) {
        yield await this.describePage(page);
        page = [];
      }
    }
    if (page.length) yield await this.describePage(page);
  }

  /** A directory keeps no history: each object is its only version, as in a bucket without versioning. */
  async *listVersions(prefix: string, opts: ListOptions = {}): AsyncGenerator<VersionInfo[]> {
    for await (const page of this.list(prefix, opts)) yield page.map((info) => ({ ...info, versionId: NULL_VERSION, latest: true }));
  }

  private async describePage(page: Found[]): Promise<ObjectInfo[]> {
    const infos = new Array<ObjectInfo | undefined>(page.length);
    await eachLimited(page.map((f, i) => ({ ...f, i })), DESCRIBE_JOBS, async ({ key, file, hasMeta, i }) => {
      const stat = await lstatQuick(file).catch((err) => {
        if (errorCode(err) === 'ENOENT') return undefined; // deleted while listing
        throw this.errors.fs(err, key, 'listing');
      });
      if (stat?.isFile()) infos[i] = describe(key, stat, hasMeta ? await readMeta(file) : undefined, false);
    });
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  private async read(key: string, file: string, range: GetOptions['range'], buffer: GetOptions['buffer']): Promise<{ data: Buffer; stat: Stats }> {
    const handle = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err) => {
      throw ['ELOOP', 'EISDIR'].includes(errorCode(err) ?? '') ? this.errors.notFound(key) : this.errors.fs(err, key, 'reading');
    });
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw this.errors.notFound(key);
      const start = range ? range.start : 0;
      const end = range ? Math.min(range.end ?? stat.size, stat.size) : stat.size;
      if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(end)) throw new RangeError(`bad range ${JSON.stringify(range)}`);
      const size = Math.max(0, end - start);
      const data = buffer?.(size)?.subarray(0, size) ?? Buffer.allocUnsafe(size);
      let got = 0;
      while (got < data.length) {
        const { bytesRead } = await handle.read(data, got, data.length - got, start + got);
        if (bytesRead === 0) throw new IntegrityError(`${this.root}: object ${JSON.stringify(key)}: the file shrank while being read`);
        got += bytesRead;
      }
      return { data, stat };
    } catch (err) {
      throw err instanceof StoreError || err instanceof IntegrityError || err instanceof RangeError ? err : this.errors.fs(err, key, 'reading');
    } finally {
      await handle.close();
    }
  }

  private async locked(key: string, work: () => Promise<void>): Promise<void> {
    const before = this.locks.get(key) ?? Promise.resolve();
    const run = before.then(work);
    const settled = run.catch(() => {});
    this.locks.set(key, settled);
    try {
      await run;
    } finally {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    }
  }
}

// The callback form: in a listing, fs.promises' per-call overhead (measured) was most of the
// time spent per object.
function lstatQuick(file: string): Promise<Stats> {
  return new Promise((resolve, reject) => lstat(file, (err, stat) => (err ? reject(err) : resolve(stat))));
}
