import { command, EXIT_STATUS_TEXT } from '../core/command';
import { isVolume, type Rec } from '../core/records';
import { badRecord, sink } from '../core/stage';
import { formatBytes } from '../core/units';
import { VolumeHeader } from '../core/volume-header';

const USAGE = `Usage: count [--human] [FILE|-]

Reads a whole stream and prints one "count" record on stdout:
  records       records before the trailer
  volumes       volume headers (a repeated header that completes the size is not counted)
  volumeBytes   sum of the volumes' sizes, where the header gives one
  blocks        block records; zeroBlocks of them are all zeros ("zero": true)
  objects       object records; objectsWithoutSize of them have no "size"; an object in
                pieces (frames with "offset", docs/FORMAT.md) counts once, its frames in pieces
  payloadBytes  bytes of payload the stream carries
  objectBytes   sum of the objects' "size" (as stored: compressed for a chunk)
  dataBytes     the size of the data the stream describes: blocks x blockSize, plus each
                object's size (its uncompressed "rawSize" for a compressed chunk), as the
                EBS list and diff sizes are reckoned
  nonZeroBytes  the same without the zero blocks
  other         counts of records of other types, by type
A stream that stops without its trailer is refused (status 3): its counts would be wrong.

Options:
  -H, --human  print one readable line instead of the record
  -h, --help   show this text

Examples:
  file-blocks disk.img | count --human
  s3-list s3://bkt/backups/disk | count | jq .dataBytes

${EXIT_STATUS_TEXT}
`;

export interface Counts {
  type: 'count';
  records: number;
  volumes: number;
  volumeBytes: number;
  blocks: number;
  zeroBlocks: number;
  objects: number;
  objectsWithoutSize: number;
  pieces: number;
  payloadBytes: number;
  objectBytes: number;
  dataBytes: number;
  nonZeroBytes: number;
  other: Record<string, number>;
}

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

class Counter {
  readonly counts: Counts = {
    type: 'count', records: 0, volumes: 0, volumeBytes: 0, blocks: 0, zeroBlocks: 0, objects: 0, objectsWithoutSize: 0, pieces: 0,
    payloadBytes: 0, objectBytes: 0, dataBytes: 0, nonZeroBytes: 0, other: {},
  };
  private readonly header = new VolumeHeader();
  private sizeCounted = false; // whether the current volume's size is already in volumeBytes

  constructor(private readonly bad: (rec: Rec, what: string) => Error) {}

  add(rec: Rec): void {
    const c = this.counts;
    c.records++;
    if (rec.len) c.payloadBytes += rec.len;
    if (rec.type === 'block') {
      const size = this.header.blockSize;
      c.blocks++;
      c.dataBytes += size;
      if (rec.zero === true) c.zeroBlocks++;
      else c.nonZeroBytes += size;
    } else if (rec.type === 'object') {
      if (rec.offset !== undefined) {
        if (!isSize(rec.offset)) throw this.bad(rec, `"offset" must be a non-negative integer, got ${JSON.stringify(rec.offset)}`);
        c.pieces++;
        // A later piece of an object counted at its first.
        if (rec.offset > 0) return;
      }
      c.objects++;
      if (rec.size !== undefined && !isSize(rec.size)) throw this.bad(rec, `"size" must be a non-negative integer, got ${JSON.stringify(rec.size)}`);
      if (rec.rawSize !== undefined && !isSize(rec.rawSize)) throw this.bad(rec, `"rawSize" must be a non-negative integer, got ${JSON.stringify(rec.rawSize)}`);
      if (rec.size === undefined) c.objectsWithoutSize++;
      else c.objectBytes += rec.size;
      const data = rec.rawSize ?? rec.size ?? 0;
      c.dataBytes += data;
      c.nonZeroBytes += data;
    } else if (isVolume(rec)) {
      if (this.header.take(rec)) {
        c.volumes++;
        this.sizeCounted = false;
      }
      const size = this.header.current?.size;
      if (!this.sizeCounted && isSize(size)) {
        c.volumeBytes += size;
        this.sizeCounted = true;
      }
    } else {
      c.other[rec.type] = (c.other[rec.type] ?? 0) + 1;
    }
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function humanLine(c: Counts): string {
  const parts = [
    `${plural(c.records, 'record')}: ${plural(c.volumes, 'volume')} (${formatBytes(c.volumeBytes)})`,
    `${plural(c.blocks, 'block')} (${c.zeroBlocks} zero)`,
    `${plural(c.objects, 'object')} (${formatBytes(c.objectBytes)} stored${c.pieces ? `; ${plural(c.pieces, 'piece')}` : ''})`,
  ];
  for (const [type, n] of Object.entries(c.other)) parts.push(`${n} ${type}`);
  return `${parts.join(', ')}; data ${formatBytes(c.dataBytes)}, non-zero ${formatBytes(c.nonZeroBytes)}, payload ${formatBytes(c.payloadBytes)}`;
}

export const main = command({
  name: 'count',
  usage: USAGE,
  flags: { boolean: ['human'], alias: { H: 'human' } },
  positionals: { max: 1 },
  async run(args, ctx) {
    const counter = new Counter((rec, what) => badRecord(ctx, rec, what));
    await sink(ctx, { input: args._[0] }, async (batches) => {
      for await (const batch of batches) for (const rec of batch) counter.add(rec);
    });
    const c = counter.counts;
    const text = args.human ? humanLine(c) : JSON.stringify(c);
    await new Promise<void>((resolve, reject) => process.stdout.write(text + '\n', (err) => (err ? reject(err) : resolve())));
  },
});
