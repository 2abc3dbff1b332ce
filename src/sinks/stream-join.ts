import { createHash, type Hash } from 'node:crypto';
import { command, EXIT_STATUS_TEXT, type Context } from '../core/command';
import { sha256b64 } from '../core/digest';
import { IntegrityError, InvalidInputError, UsageError } from '../core/errors';
import { openFileTarget, type FileTarget } from '../core/file-target';
import { LINE, PAYLOAD, type Rec } from '../core/records';
import { isPiece, pieceRefusal } from '../core/object-pieces';
import { badRecord, integrityError, sink } from '../core/stage';
import { manifestKey, manifestProblem, parseLayoutKey, partKey, type StreamManifest } from '../core/stream-layout';

const USAGE = `Usage: stream-join [-f] [PATH]

Puts a byte stream that stream-chunk cut into objects back together: reads the object frames
on stdin (stream-chunk's output, or s3-list | s3-get of a store that holds them) and writes
the parts' bytes, in order, to stdout or to PATH. Each part is checked against its record's
size and SHA-256 as it comes; at the end, the parts are checked against NAME/stream.json, the
stream's manifest: their count, the total size, and the SHA-256 of the whole stream.

Parts must come in order, NAME/0000000000 first, each once, all under one NAME, followed by
the manifest (a store lists them so). A gap, a part twice or out of order, a key that is not
of the layout, a part after the manifest, a missing manifest, or a record without its data
is refused (status 4); a part or the whole stream that does not match its checksum or size
fails with status 5.

PATH is written under a temporary name beside it and renamed into place only after a valid
trailer and every check; on any failure it is removed and PATH is left as it was. An existing
PATH is refused unless -f replaces it. A block device is written in place. On stdout the
bytes go out as they are checked part by part, so a reader downstream has them before the
whole-stream check: only the status says the stream was whole (use PATH to get nothing unless
everything matched).

Memory holds the part being written.

Options:
  -f, --force              replace an existing PATH
  -h, --help               show this text

Examples:
  s3-list s3://bkt/zfs --prefix fs@monday/ | s3-get | stream-join | zfs receive tank/fs
  s3-list /backups/db | s3-get | stream-join db.dump
  pg_dump db | stream-chunk | stream-join copy.sql

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'stream-join',
  usage: USAGE,
  flags: { boolean: ['force'], alias: { f: 'force' } },
  positionals: { max: 1 },
  async run(args, ctx) {
    const path = args._[0];
    if (path === undefined || path === '-') {
      if (process.stdout.isTTY) throw new UsageError('stdout is a terminal: redirect it to a file or a pipe, or give a PATH');
      await sink(ctx, {}, (batches) => join(ctx, batches, new StdoutOutput()));
      return;
    }
    const target = await openFileTarget(path, { inPlace: false, truncate: false, force: args.force === true });
    try {
      await sink(ctx, {}, (batches) => join(ctx, batches, new FileOutput(target)));
    } catch (err) {
      await target.discard();
      throw err;
    }
  },
});

interface Output {
  write(data: Buffer, what: string): Promise<void>;
  commit(size: number): Promise<void>;
}

class StdoutOutput implements Output {
  write(data: Buffer): Promise<void> {
    // The callback comes once the bytes are handed on: one part in memory at a time.
    return new Promise((resolve, reject) => process.stdout.write(data, (err) => (err ? reject(err) : resolve())));
  }
  async commit(): Promise<void> {}
}

class FileOutput implements Output {
  private position = 0;
  constructor(private readonly target: FileTarget) {}
  async write(data: Buffer, what: string): Promise<void> {
    this.target.write(data, this.position, what);
    this.position += data.length;
    await this.target.ready(1);
  }
  async commit(size: number): Promise<void> {
    await this.target.commit(size);
  }
}

async function join(ctx: Context, batches: AsyncIterable<Rec[]>, output: Output): Promise<void> {
  const joiner = new Joiner(ctx);
  for await (const batch of batches) {
    for (const rec of batch) {
      const data = joiner.take(rec);
      if (data) await output.write(data, `object ${JSON.stringify(rec.key)}`);
    }
  }
  // The input's trailer was valid (sink() checked it): now the stream must be whole.
  joiner.finish();
  await output.commit(joiner.bytes);
}

class Joiner {
  private name: string | undefined;
  private next = 0;
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private manifest: StreamManifest | undefined;
  private manifestRec: Rec | undefined;
  private lastRec: Rec | undefined;

  constructor(private readonly ctx: Context) {}

  /** Checks one input record; gives the bytes to write, if it is a part. */
  take(rec: Rec): Buffer | undefined {
    const ctx = this.ctx;
    if (rec.type === 'block' || rec.type === 'volume') throw badRecord(ctx, rec, `a ${rec.type} record: stream-join takes the objects of stream-chunk (a block stream goes to file-write)`);
    if (rec.type !== 'object') return undefined;
    if (isPiece(rec)) throw badRecord(ctx, rec, pieceRefusal(rec));
    this.lastRec = rec;
    const key = rec.key;
    if (typeof key !== 'string') throw badRecord(ctx, rec, `an object without a string "key"`);
    const shown = JSON.stringify(key);
    const at = parseLayoutKey(key);
    if (!at) throw badRecord(ctx, rec, `object ${shown} is not of the stream layout (NAME/0000000000 ... NAME/stream.json)`);
    if (this.name === undefined) this.name = at.name;
    else if (at.name !== this.name) throw badRecord(ctx, rec, `object ${shown} belongs to stream ${JSON.stringify(at.name)}, this input is of stream ${JSON.stringify(this.name)}: join one stream at a time (s3-list --prefix NAME/)`);
    if (this.manifest) throw badRecord(ctx, rec, `object ${shown} comes after the stream's manifest ${JSON.stringify(manifestKey(this.name))}`);
    const data = rec[PAYLOAD] ?? (rec.len === 0 ? Buffer.alloc(0) : undefined);
    if (!data) throw badRecord(ctx, rec, `object ${shown} has no data: read it with s3-get first`);
    if (rec.size !== undefined && rec.size !== data.length) throw integrityError(ctx, rec, `object ${shown}: the record says ${JSON.stringify(rec.size)} bytes, the data has ${data.length}`);
    if (rec.sha256 !== undefined) {
      if (typeof rec.sha256 !== 'string') throw badRecord(ctx, rec, `object ${shown}: "sha256" must be a base64 string`);
      const actual = sha256b64(data);
      if (actual !== rec.sha256) throw integrityError(ctx, rec, `object ${shown}: the data's SHA-256 is ${actual}, the record says ${rec.sha256}`);
    }
    if ('manifest' in at) {
      this.manifest = this.parseManifest(rec, data);
      this.manifestRec = rec;
      return undefined;
    }
    if (at.part !== this.next) {
      const why = at.part < this.next ? 'is a duplicate or out of order' : `leaves a gap: part ${JSON.stringify(partKey(at.name, this.next))} is missing`;
      throw badRecord(ctx, rec, `object ${shown} ${why} (parts must come in order, each once)`);
    }
    this.next++;
    this.bytes += data.length;
    this.hash.update(data);
    return data;
  }

  private parseManifest(rec: Rec, data: Buffer): StreamManifest {
    let value: unknown;
    try {
      value = JSON.parse(data.toString('utf8'));
    } catch (err) {
      throw badRecord(this.ctx, rec, `object ${JSON.stringify(rec.key)}: not JSON (${(err as Error).message})`);
    }
    const problem = manifestProblem(value);
    if (problem) throw badRecord(this.ctx, rec, `object ${JSON.stringify(rec.key)}: not a stream manifest: ${problem}`);
    return value as StreamManifest;
  }

  /** After a valid trailer: the parts read must be the whole stream the manifest describes. */
  finish(): void {
    const where = `${this.ctx.command}: ${this.ctx.input ?? 'stdin'}`;
    if (!this.manifest || !this.manifestRec) {
      const what = this.name === undefined ? 'no object of the stream layout' : `no manifest ${JSON.stringify(manifestKey(this.name))} after the parts`;
      const line = this.lastRec?.[LINE];
      throw new InvalidInputError(`${where}${line === undefined ? '' : `:${line}`}: ${what}: the stream was not stored whole (was its upload interrupted?)`);
    }
    const m = this.manifest;
    const name = JSON.stringify(this.manifestRec.key);
    if (this.next !== m.parts) throw this.mismatch(`${name} counts ${m.parts} parts, ${this.next} came`);
    if (this.bytes !== m.size) throw this.mismatch(`${name} says ${m.size} bytes, the parts hold ${this.bytes}`);
    const actual = this.hash.digest('base64');
    if (actual !== m.sha256) throw this.mismatch(`the stream's SHA-256 is ${actual}, ${name} says ${m.sha256}`);
  }

  private mismatch(what: string): IntegrityError {
    return integrityError(this.ctx, this.manifestRec!, what);
  }
}
