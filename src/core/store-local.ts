// The object store on a local directory: one plain file per object, so a store can be browsed,
// copied and read with ordinary tools.
//
// Keys map to paths by the rule in store-local-keys.ts.
//
// Checksums. A put computes the SHA-256 of the data (in one pass, on this thread while the
// thread pool writes the same bytes) and keeps it in a small JSON sidecar beside the file, so a
// listing has checksums without reading data, and a get can prove that the bytes are still those
// written (a recomputed checksum would only describe whatever the file now holds). The ETag is
// the SHA-256 in hex: an MD5 as well would be a second pass over every object (about twice the
// SHA-256's cost with SHA-NI), and ETags are opaque (store.ts). Sidecars written with an MD5
// ETag by earlier versions stay valid. A missing sidecar (a crash mid-put, a file copied in by
// hand) means "checksums unknown", never a wrong checksum.
//
// Durability. The data is flushed (fdatasync) before its file is renamed into place, and then
// the folder, whose entry makes the object exist, and the parents of folders the put created.
// A put with `batch` leaves the folders to flush(), which flushes each once for all the puts
// before it: s3-put calls it before journaling objects and before a commit object.
import { randomBytes } from 'node:crypto';
import { constants, lstat, promises as fsp, readFile, type Stats } from 'node:fs';
import path from 'node:path';
import { sha256b64 } from './digest';
import { IntegrityError, errorCode } from './errors';
import { META, TEMP, encodeKey, keyOf, walkKeys, type Found } from './store-local-keys';
import {
  NotFoundError,
  StoreError,
  keyProblem,
  type GetOptions,
  type GetResult,
  type ListOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
} from './store';

const DEFAULT_PAGE = 1000;
// Stats and sidecar reads in flight while describing a page.
const DESCRIBE_JOBS = 16;
// Folder flushes in flight; the thread pool has 4 threads by default.
const SYNC_JOBS = 4;
// Folders known to exist, to skip a mkdir per put; forgotten past this many (any entry may be
// stale: a folder deleted since is made again when a temporary file cannot be opened in it).
const KNOWN_FOLDERS = 10000;
// Errors of a busy or briefly exhausted system, worth retrying; all else is permanent.
const TRANSIENT = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'EMFILE', 'ENFILE', 'ETIMEDOUT']);

interface Meta {
  size: number;
  etag: string;
  sha256: string;
  storageClass?: string;
  metadata?: Record<string, string>;
}

export class LocalStore implements ObjectStore {
  readonly url: string;
  private readonly locks = new Map<string, Promise<void>>();
  private readonly folders = new Set<string>();
  /** Folders whose entries puts with `batch` changed and flush() has not flushed yet. */
  private readonly unflushed = new Set<string>();

  constructor(readonly root: string) {
    this.url = root;
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

  async head(key: string): Promise<ObjectInfo> {
    const file = this.pathOf(key);
    const stat = await fsp.lstat(file).catch((err) => {
      throw this.fsError(err, key, 'reading');
    });
    if (!stat.isFile()) throw this.notFound(key);
    return describe(key, stat, await readMeta(file), true);
  }

  async get(key: string, opts: GetOptions = {}): Promise<GetResult> {
    const file = this.pathOf(key);
    // A mismatch is read once more: a put may have replaced the object between the reads of
    // the sidecar and of the data.
    for (let attempt = 0; ; attempt++) {
      const meta = await readMeta(file);
      const { data, stat } = await this.read(key, file, opts.range);
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
    // Checked while the data is being written: a temporary file never counts as stored, and a
    // mismatch removes it before anything is renamed into place.
    const hashAndCheck = () => {
      sha256 = sha256b64(data);
      if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
        throw new IntegrityError(`${this.root}: object ${JSON.stringify(key)}: the data's SHA-256 is ${sha256}, expected ${opts.sha256}; nothing was stored`);
      }
    };
    const dir = path.dirname(file);
    const metaFile = path.join(dir, META + path.basename(file));
    let folders: string[] = [];
    await this.locked(key, async () => {
      const written = await this.writeTemp(key, dir, data, true, hashAndCheck);
      folders = written.folders;
      const temp = written.temp;
      const meta: Meta = { size: data.length, etag: etagOf(sha256), sha256 };
      if (opts.storageClass !== undefined) meta.storageClass = opts.storageClass;
      if (opts.metadata !== undefined) meta.metadata = opts.metadata;
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
          if (errorCode(err) === 'EISDIR') throw this.clash(key, `objects under "${key}/" exist`);
          throw err;
        });
        await fsp.rename(metaTemp, metaFile);
      } catch (err) {
        await fsp.unlink(temp).catch(() => {});
        if (metaTemp) await fsp.unlink(metaTemp).catch(() => {});
        throw err instanceof StoreError ? err : this.fsError(err, key, 'storing');
      }
      if (!opts.batch) {
        await this.syncFolders(folders).catch((err) => {
          throw this.fsError(err, key, 'flushing the folder of');
        });
      }
    });
    // Marked only once stored: a flush() must not report as durable a put still under way.
    if (opts.batch) for (const d of folders) this.unflushed.add(d);
    return { etag: etagOf(sha256), sha256 };
  }

  async flush(): Promise<void> {
    const folders = [...this.unflushed];
    this.unflushed.clear();
    await this.syncFolders(folders).catch((err) => {
      for (const d of folders) this.unflushed.add(d);
      throw this.fsError(err, undefined, 'flushing');
    });
  }

  /** Flushes folders' entries to disk, several at once (each waits on the disk's journal). */
  private async syncFolders(folders: string[]): Promise<void> {
    await eachLimited(folders, SYNC_JOBS, (d) =>
      syncDirectory(d).catch((err) => {
        // Deleted since: none of the objects it held remain to be kept.
        if (errorCode(err) !== 'ENOENT') throw err;
      }),
    );
  }

  async delete(keys: string[]): Promise<void> {
    const files = keys.map((key) => ({ key, file: this.pathOf(key) }));
    await eachLimited(files, DESCRIBE_JOBS, ({ key, file }) =>
      this.locked(key, async () => {
        const dir = path.dirname(file);
        for (const name of [path.basename(file), META + path.basename(file)]) {
          await fsp.unlink(path.join(dir, name)).catch((err) => {
            // Absent, or a directory of other keys: either way there is no such object.
            if (!['ENOENT', 'ENOTDIR', 'EISDIR', 'EPERM'].includes(errorCode(err) ?? '')) throw this.fsError(err, key, 'deleting');
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

  async *list(prefix: string, opts: ListOptions = {}): AsyncGenerator<ObjectInfo[]> {
    const pageSize = opts.pageSize ?? DEFAULT_PAGE;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw new RangeError(`page size must be 1 to 1000, got ${pageSize}`);
    const stat = await fsp.stat(this.root).catch((err) => {
      if (errorCode(err) === 'ENOENT') throw new NotFoundError(`${this.root}: no such store: the directory does not exist`);
      throw this.fsError(err, undefined, 'listing');
    });
    if (!stat.isDirectory()) throw new StoreError(`${this.root}: not a directory`, 'permanent');
    let page: Found[] = [];
    for await (const found of walkKeys(this.root, '', prefix, opts.startAfter, (err) => this.fsError(err, undefined, 'listing'))) {
      page.push(found);
      if (page.length === pageSize) {
        yield await this.describePage(page);
        page = [];
      }
    }
    if (page.length) yield await this.describePage(page);
  }


  private async describePage(page: Found[]): Promise<ObjectInfo[]> {
    const infos = new Array<ObjectInfo | undefined>(page.length);
    await eachLimited(page.map((f, i) => ({ ...f, i })), DESCRIBE_JOBS, async ({ key, file, hasMeta, i }) => {
      const stat = await lstatQuick(file).catch((err) => {
        if (errorCode(err) === 'ENOENT') return undefined; // deleted while listing
        throw this.fsError(err, key, 'listing');
      });
      if (stat?.isFile()) infos[i] = describe(key, stat, hasMeta ? await readMeta(file) : undefined, false);
    });
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  private async read(key: string, file: string, range: GetOptions['range']): Promise<{ data: Buffer; stat: Stats }> {
    const handle = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err) => {
      throw ['ELOOP', 'EISDIR'].includes(errorCode(err) ?? '') ? this.notFound(key) : this.fsError(err, key, 'reading');
    });
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw this.notFound(key);
      const start = range ? range.start : 0;
      const end = range ? Math.min(range.end ?? stat.size, stat.size) : stat.size;
      if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(end)) throw new RangeError(`bad range ${JSON.stringify(range)}`);
      const data = Buffer.allocUnsafe(Math.max(0, end - start));
      let got = 0;
      while (got < data.length) {
        const { bytesRead } = await handle.read(data, got, data.length - got, start + got);
        if (bytesRead === 0) throw new IntegrityError(`${this.root}: object ${JSON.stringify(key)}: the file shrank while being read`);
        got += bytesRead;
      }
      return { data, stat };
    } catch (err) {
      throw err instanceof StoreError || err instanceof IntegrityError || err instanceof RangeError ? err : this.fsError(err, key, 'reading');
    } finally {
      await handle.close();
    }
  }

  /**
   * Writes data to a new temporary file in `dir` (made if needed) with one write system call,
   * flushed to disk if `durable`; `meanwhile` runs on this thread while the thread pool writes,
   * and its throwing removes the file. Gives the file and the folders whose entries the put
   * changes: `dir`, and the parent of every folder it made.
   */
  private async writeTemp(key: string, dir: string, data: Uint8Array, durable: boolean, meanwhile?: () => void): Promise<{ temp: string; folders: string[] }> {
    for (let attempt = 0; ; attempt++) {
      const folders = await this.makeFolders(key, dir);
      const temp = path.join(dir, TEMP + randomBytes(8).toString('hex'));
      let handle: fsp.FileHandle;
      try {
        handle = await fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
      } catch (err) {
        // A delete emptied and removed the folder in between: make it again.
        if (errorCode(err) === 'ENOENT' && attempt < 3) {
          this.folders.delete(dir);
          continue;
        }
        throw this.fsError(err, key, 'storing');
      }
      const writing = writeAll(handle, data);
      try {
        try {
          meanwhile?.();
        } finally {
          // Settled either way before the file is closed or removed.
          await writing.catch((err) => {
            throw this.fsError(err, key, 'storing');
          });
        }
        if (durable) {
          await handle.datasync().catch((err) => {
            throw this.fsError(err, key, 'flushing');
          });
        }
        await handle.close();
      } catch (err) {
        await handle.close().catch(() => {});
        await fsp.unlink(temp).catch(() => {});
        throw err instanceof StoreError || err instanceof IntegrityError ? err : this.fsError(err, key, 'storing');
      }
      return { temp, folders };
    }
  }

  /** Makes `dir` and its parents as needed; gives the folders whose entries must be flushed. */
  private async makeFolders(key: string, dir: string): Promise<string[]> {
    if (this.folders.has(dir)) return [dir];
    let first: string | undefined;
    try {
      first = await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      if (!['ENOTDIR', 'EEXIST'].includes(errorCode(err) ?? '')) throw this.fsError(err, key, 'storing');
      // Some folder on the way is a file: the object of a shorter key.
      const components = path.relative(this.root, dir).split(path.sep);
      for (let n = 1; n <= components.length; n++) {
        const stat = await fsp.lstat(path.join(this.root, ...components.slice(0, n))).catch(() => undefined);
        if (stat && !stat.isDirectory()) throw this.clash(key, `object ${JSON.stringify(keyOf(components.slice(0, n)))} exists`);
      }
      throw this.fsError(err, key, 'storing');
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

  private notFound(key: string): NotFoundError {
    return new NotFoundError(`${this.root}: no object ${JSON.stringify(key)}`, key);
  }

  private clash(key: string, why: string): StoreError {
    return new StoreError(
      `${this.root}: cannot store ${JSON.stringify(key)}: ${why}, and a local directory cannot hold a key and keys under it ("a" and "a/b")`,
      'permanent',
      key,
    );
  }

  private fsError(err: unknown, key: string | undefined, doing: string): StoreError {
    const code = errorCode(err) ?? '';
    const what = key === undefined ? this.root : `${this.root}: ${doing} ${JSON.stringify(key)}`;
    if (key !== undefined && (code === 'ENOENT' || code === 'ENOTDIR') && doing === 'reading') return this.notFound(key);
    return new StoreError(`${what}: ${(err as Error).message}`, TRANSIENT.has(code) ? 'transient' : 'permanent', key);
  }
}

// The callback forms: in a listing, fs.promises' per-call overhead (measured) was most of the
// time spent per object.
function lstatQuick(file: string): Promise<Stats> {
  return new Promise((resolve, reject) => lstat(file, (err, stat) => (err ? reject(err) : resolve(stat))));
}

async function readMeta(file: string): Promise<Meta | undefined> {
  const sidecar = path.join(path.dirname(file), META + path.basename(file));
  const text = await new Promise<string | undefined>((resolve) => readFile(sidecar, 'utf8', (err, data) => resolve(err ? undefined : data)));
  if (text === undefined) return undefined;
  try {
    const meta = JSON.parse(text) as Meta;
    return typeof meta.sha256 === 'string' && typeof meta.etag === 'string' && Number.isSafeInteger(meta.size) ? meta : undefined;
  } catch {
    return undefined; // a damaged sidecar vouches for nothing
  }
}

function describe(key: string, stat: Stats, meta: Meta | undefined, withMetadata: boolean): ObjectInfo {
  const info: ObjectInfo = { key, size: stat.size, mtime: stat.mtime };
  if (meta) {
    info.etag = meta.etag;
    info.sha256 = meta.sha256;
    if (meta.storageClass !== undefined) info.storageClass = meta.storageClass;
    if (withMetadata && meta.metadata !== undefined) info.metadata = meta.metadata;
  }
  return info;
}

function mismatch(data: Buffer, meta: Meta): string | undefined {
  if (data.length !== meta.size) return `${data.length} bytes stored, ${meta.size} were written`;
  const sha = sha256b64(data);
  if (sha !== meta.sha256) return `its SHA-256 is ${sha}, ${meta.sha256} was written`;
  return undefined;
}

async function eachLimited<T>(items: T[], jobs: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
}

/** The ETag of an object with this base64 SHA-256: the digest in hex, quoted as S3 quotes ETags. */
function etagOf(sha256: string): string {
  return `"${Buffer.from(sha256, 'base64').toString('hex')}"`;
}

async function writeAll(handle: fsp.FileHandle, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length; ) done += (await handle.write(data, done, data.length - done)).bytesWritten;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
