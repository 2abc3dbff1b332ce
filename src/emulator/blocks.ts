// Where written blocks live: in memory, or on disk under --state DIR as one sparse data file per
// snapshot (block i at offset i*524288) and an append-only index of (block index, SHA-256).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BLOCK_SIZE } from './limits';

/** Written blocks of one snapshot: index -> raw SHA-256. Rewrites replace the entry. */
export type BlockIndex = Map<number, Buffer>;

export interface BlockStore {
  /**
   * Stores a block whose length and checksum the caller has checked. The answer is the buffer
   * the caller may reuse: `data` when the store copied it, else the buffer it replaced (or none).
   */
  put(id: string, index: number, data: Buffer, sha: Buffer): Buffer | undefined;
  /** The data of a written block; `scratch` may be filled and returned. */
  read(id: string, index: number, scratch: Buffer): Buffer;
  index(id: string): BlockIndex;
  /** Makes the snapshot's blocks durable (before it is completed). */
  sync(id: string): Promise<void>;
  drop(id: string): void;
  /** Loads what a previous run left (disk store only). */
  load(id: string): void;
  close(): void;
}

/** The checksum index both stores keep in memory. */
abstract class IndexedBlocks {
  protected readonly sums = new Map<string, BlockIndex>();
  index(id: string): BlockIndex {
    let sums = this.sums.get(id);
    if (!sums) this.sums.set(id, (sums = new Map()));
    return sums;
  }
}

/**
 * Blocks in memory, each kept as the one buffer its body was received into (handed over by the
 * put), not as the many small buffers it arrived in: gigabytes held that way made garbage
 * collection the main cost of a put. A rewritten block's old buffer is handed back for reuse.
 */
export class MemoryBlocks extends IndexedBlocks implements BlockStore {
  private readonly data = new Map<string, Map<number, Buffer>>();

  put(id: string, index: number, block: Buffer, sha: Buffer): Buffer | undefined {
    let blocks = this.data.get(id);
    if (!blocks) this.data.set(id, (blocks = new Map()));
    const old = blocks.get(index);
    blocks.set(index, block);
    this.index(id).set(index, sha);
    return old;
  }
  async sync(): Promise<void> {}
  read(id: string, index: number): Buffer {
    const block = this.data.get(id)?.get(index);
    if (!block) throw new Error(`${id}: block ${index} is not stored`);
    return block;
  }
  drop(id: string): void {
    this.data.delete(id);
    this.sums.delete(id);
  }
  load(): void {}
  close(): void {}
}

const INDEX_RECORD = 4 + 32;
const fdatasync = promisify(fs.fdatasync);

export class DiskBlocks extends IndexedBlocks implements BlockStore {
  private readonly fds = new Map<string, { data: number; index: number; indexSize: number }>();

  constructor(private readonly dir: string) {
    super();
    fs.mkdirSync(dir, { recursive: true });
  }

  private files(id: string) {
    let f = this.fds.get(id);
    if (!f) {
      const data = fs.openSync(path.join(this.dir, `${id}.data`), fs.constants.O_RDWR | fs.constants.O_CREAT);
      const index = fs.openSync(path.join(this.dir, `${id}.index`), 'a');
      f = { data, index, indexSize: fs.fstatSync(index).size };
      this.fds.set(id, f);
    }
    return f;
  }

  // Writes go to the page cache synchronously: about 0.1 ms for a block, cheaper than a round
  // trip through the thread pool, and a put is answered only once its index record is written.
  put(id: string, index: number, data: Buffer, sha: Buffer): Buffer {
    const f = this.files(id);
    writeFully(f.data, data.subarray(0, BLOCK_SIZE), index * BLOCK_SIZE);
    const record = Buffer.allocUnsafe(INDEX_RECORD);
    record.writeUInt32LE(index, 0);
    sha.copy(record, 4);
    // The index is opened for appending: every record lands at the end whatever the position.
    writeFully(f.index, record, f.indexSize);
    f.indexSize += INDEX_RECORD;
    this.index(id).set(index, sha);
    return data;
  }

  read(id: string, index: number, scratch: Buffer): Buffer {
    const f = this.files(id);
    let done = 0;
    while (done < BLOCK_SIZE) {
      const n = fs.readSync(f.data, scratch, done, BLOCK_SIZE - done, index * BLOCK_SIZE + done);
      if (n === 0) break;
      done += n;
    }
    scratch.fill(0, done);
    return scratch;
  }

  // Puts are answered once in the page cache (an fsync each would cost more than the put);
  // a completed snapshot is flushed to the disk as a whole, so it survives a power loss too.
  async sync(id: string): Promise<void> {
    const f = this.fds.get(id);
    if (!f) return;
    await Promise.all([fdatasync(f.data), fdatasync(f.index)]);
  }

  load(id: string): void {
    const file = path.join(this.dir, `${id}.index`);
    if (!fs.existsSync(file)) return;
    const bytes = fs.readFileSync(file);
    const sums = this.index(id);
    // A torn last record (a crash mid-write) is ignored: its put was never answered.
    for (let o = 0; o + INDEX_RECORD <= bytes.length; o += INDEX_RECORD) {
      sums.set(bytes.readUInt32LE(o), Buffer.from(bytes.subarray(o + 4, o + INDEX_RECORD)));
    }
  }

  drop(id: string): void {
    const f = this.fds.get(id);
    if (f) {
      fs.closeSync(f.data);
      fs.closeSync(f.index);
      this.fds.delete(id);
    }
    this.sums.delete(id);
    for (const ext of ['data', 'index']) fs.rmSync(path.join(this.dir, `${id}.${ext}`), { force: true });
  }

  close(): void {
    for (const f of this.fds.values()) {
      fs.closeSync(f.data);
      fs.closeSync(f.index);
    }
    this.fds.clear();
  }
}

function writeFully(fd: number, data: Buffer, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}
