// The "object" records zstd-chunk makes: a chunk's key in the store layout and its checksums,
// and the default layout's volume.json, whose totals count the chunks of this run and of the
// earlier runs whose journals were given (a resumed upload still describes the whole volume).
import type { Context } from './command';
import { IntegrityError, InvalidInputError, UsageError } from './errors';
import { defaultChunkKey, fspChunkName, fspPrefix, parseDefaultKey, VOLUME_KEY, volumeDocument, type LayoutName } from './layout';
import { sha256b64 } from './digest';
import type { DoneSet } from './journal';
import { BLOCK_SIZE, PAYLOAD, type ObjectRec } from './records';
import type { VolumeHeader } from './volume-header';
import type { CompressResult } from './zstd-pool';

/** The blocks of the chunk being gathered. */
export interface Gathering {
  first: number;
  raw: Buffer;
  zero: boolean[];
  /** The SHA-256 each block's record gives, or null. */
  claims: (string | null)[];
  lines: number[];
  zeros: number;
}

export class ChunkRecords {
  private readonly totals = { chunks: 0, dataBlocks: 0 };
  /** Chunk keys that journals of earlier runs say are stored already (counted in the totals). */
  private readonly stored = new Set<string>();
  private fspFolder: string | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly opts: { layout: LayoutName; snapshotId?: string },
    private readonly header: VolumeHeader,
  ) {}

  /** Counts the chunks an earlier run stored (its journal) into volume.json's totals. */
  countStored(done: DoneSet): void {
    for (const key of done.keys.keys()) {
      const chunk = parseDefaultKey(key);
      if (chunk?.kind !== 'chunk' || chunk.prefix !== '' || this.stored.has(key)) continue;
      this.stored.add(key);
      this.totals.chunks++;
      this.totals.dataBlocks += chunk.blockCount;
    }
  }

  chunkRecord(c: Gathering, count: number, r: CompressResult): ObjectRec {
    if (r.badBlock >= 0) {
      const index = c.first + r.badBlock;
      throw new IntegrityError(
        `zstd-chunk: ${this.ctx.input ?? 'stdin'}:${c.lines[r.badBlock]}: block ${index}: SHA-256 of the data is ${r.badBlockSha256}, the record says ${c.claims[r.badBlock]}`,
      );
    }
    const fsp = this.opts.layout === 'fsp';
    const chunk = { firstBlock: c.first, blockCount: count, checksum: fsp ? r.rawSha256! : r.blocksSha256 };
    const rec: ObjectRec = {
      type: 'object',
      key: fsp ? `${this.fspFolderName(c)}/${fspChunkName(chunk)}` : defaultChunkKey(chunk),
      size: r.frame.length,
      codec: 'zstd',
      firstBlock: c.first,
      blockCount: count,
      rawSize: count * BLOCK_SIZE,
    };
    if (!this.stored.has(rec.key)) {
      this.totals.chunks++;
      this.totals.dataBlocks += count;
    }
    if (fsp) rec.rawSha256 = r.rawSha256;
    rec.blocksSha256 = r.blocksSha256;
    rec.sha256 = r.sha256;
    rec[PAYLOAD] = r.frame;
    return rec;
  }

  private fspFolderName(c: Gathering): string {
    if (this.fspFolder) return this.fspFolder;
    const h = this.header.current!;
    const id = this.opts.snapshotId ?? (typeof h.snapshotId === 'string' ? h.snapshotId : undefined);
    if (!id) throw new InvalidInputError(`zstd-chunk: ${this.ctx.input ?? 'stdin'}: the fsp layout needs a snapshot id: the volume header has no "snapshotId"; give --snapshot-id`);
    if (/[/.]/.test(id) || id === '') throw new UsageError(`snapshot id ${JSON.stringify(id)} cannot name an FSP folder (no "/" or "." allowed)`);
    if (typeof h.size !== 'number') {
      throw new InvalidInputError(
        `zstd-chunk: ${this.ctx.input ?? 'stdin'}:${c.lines[0]}: the fsp layout names keys by the volume's size in GiB, and the header does not give the size (a stream read from stdin): write it to a file first`,
      );
    }
    this.fspFolder = fspPrefix(id, h.size);
    return this.fspFolder;
  }

  volumeObject(): ObjectRec {
    const h = this.header.current;
    if (!h) throw new InvalidInputError(`zstd-chunk: ${this.ctx.input ?? 'stdin'}: no "volume" record: the input is not a block stream`);
    if (typeof h.size !== 'number') throw new InvalidInputError(`zstd-chunk: ${this.ctx.input ?? 'stdin'}: the stream never gave the volume's size`);
    const header = { ...h, blocks: Math.ceil(h.size / BLOCK_SIZE) };
    const body = Buffer.from(JSON.stringify(volumeDocument(header, this.totals), null, 2) + '\n');
    return { type: 'object', key: VOLUME_KEY, size: body.length, sha256: sha256b64(body), commit: true, [PAYLOAD]: body };
  }
}
