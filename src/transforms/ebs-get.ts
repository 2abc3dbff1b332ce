import { setMaxListeners } from 'node:events';
import { command, EXIT_STATUS_TEXT, type Context } from '../core/command';
import { BlockGetter } from '../core/ebs-block-get';
import { EbsSession, ebsFlags, ebsOptionsText, ebsSettings } from '../core/ebs-client';
import { listPages } from '../core/ebs-list';
import { planRecord } from '../core/ebs-records';
import { CorruptReply } from '../core/ebs-retry';
import { TokenRefresher } from '../core/ebs-tokens';
import { BufferPool } from '../core/buffer-pool';
import type { Encoder } from '../core/encode';
import { IntegrityError } from '../core/errors';
import { ShaPool } from '../core/sha-pool';
import { OrderedOutput } from '../core/ordered';
import { BLOCK_SIZE, PAYLOAD, ZERO_BLOCK_SHA256, isBlock, isVolume, type BlockRec, type Rec, type VolumeRec } from '../core/records';
import { badRecord, transform } from '../core/stage';

const DEFAULT_JOBS = 64;

const USAGE = `Usage: ebs-get [options] [FILE|-]

Attaches to every "block" record of an EBS manifest (from ebs-blocks or delta) its data, read
with GetSnapshotBlock from the snapshot its "volume" header names, using the record's block
token. Blocks are read in parallel and written out in input order. Each is checked: 524288
bytes, and a SHA-256 that matches the service's x-amz-Checksum and the record's "sha256" when
it has one. A block read as all zeros comes out marked "zero" without data, as file-blocks
writes it; the others carry "sha256" and their data.

Block tokens expire (after about seven days, and whenever the snapshot is listed again): a
block refused for its token is looked up in a fresh listing (one ListSnapshotBlocks page from
that block on) and read again.

A block known to be zero ("zero": true, or the SHA-256 of 512 KiB of zeros) is not read: it
passes on as a zero block. On an encrypted snapshot, or one whose encryption the header does
not give, such a block is still read when it has a token, because there the zero mark may come
from an absence, and absent blocks of an encrypted snapshot do not read as zeros. Blocks that
already carry data, and other records, pass through.

Requests go at most -j at a time, at a rate that starts at the per-snapshot quota (1,000/s)
and backs off when throttled; throttling, server errors, "Failed to read block data" and cut
connections are retried with jittered backoff. Memory holds at most -j blocks being read or
waiting for their turn to be written, and up to 32 spare block buffers.

Options:
${ebsOptionsText(DEFAULT_JOBS)}
  -h, --help           show this text

Examples:
  ebs-blocks snap-0123456789abcdef0 | ebs-get | file-write disk.img
  ebs-blocks snap-0123456789abcdef0 | ebs-get -j 128 | zstd-chunk | s3-put /backups/vol
  ebs-blocks snap-0123456789abcdef0 | delta --parent snap-0fedcba9876543210 | ebs-get | file-write --in-place copy.img

A permanent error (access denied, unknown snapshot, invalid token after a fresh listing) ends
the run with status 1, a block whose data does not match its checksum with status 5, each
naming the snapshot and block.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'ebs-get',
  usage: USAGE,
  flags: ebsFlags(),
  positionals: { max: 1 },
  async run(args, ctx) {
    const session = new EbsSession(ctx, ebsSettings(args, DEFAULT_JOBS));
    const reader = new BlockReader(ctx, session);
    try {
      await transform(ctx, { input: args._[0], frames: true }, async function* (batches, out) {
        const output = new OrderedOutput(session.settings.jobs);
        for await (const batch of batches) {
          for (const rec of batch) {
            if (isVolume(rec)) {
              reader.header(rec);
              if (!session.settings.dryRun) output.records(rec);
              continue;
            }
            if (!isBlock(rec) || rec[PAYLOAD]) {
              if (!session.settings.dryRun) output.records(rec);
              continue;
            }
            // Wait for room first: a read started and not yet queued would be lost, its failure
            // unhandled, if the stage ended at this yield.
            while (output.full) {
              await output.flush(out);
              yield* reader.send(out);
            }
            const job = reader.read(rec);
            if (!job) {
              if (!session.settings.dryRun) output.records(zeroBlock(rec));
              continue;
            }
            output.job(job.then((got) => [got]));
          }
          await output.flush(out);
          yield* reader.send(out);
        }
        await output.flush(out, true);
        if (session.settings.dryRun) {
          await reader.checkAccess();
          out.push(planRecord(ctx.command, { snapshotId: reader.snapshotId, calls: { GetSnapshotBlock: reader.planned }, blocks: reader.planned, bytes: reader.planned * BLOCK_SIZE }));
        }
        yield out.take();
        const retried = session.retry.summary();
        if (retried) ctx.log(`${reader.fetched} blocks read; ${retried}`);
      });
    } finally {
      session.close();
      await reader.close();
    }
  },
});

function zeroBlock(rec: BlockRec): Rec {
  const zero: Rec = { ...rec, sha256: ZERO_BLOCK_SHA256, zero: true };
  delete zero.len;
  return zero;
}

class BlockReader {
  snapshotId: string | undefined;
  private encrypted: boolean | undefined;
  private tokens: TokenRefresher | undefined;
  private previous = -1;
  planned = 0;
  fetched = 0;
  private readonly getter: BlockGetter;
  private readonly hashing = new ShaPool();
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  /**
   * The blocks' buffers, used again once written out: a fresh 512 KiB per block made the
   * garbage collector the largest cost of a read (V8 collects after every 64 MiB or so of
   * external memory).
   */
  private readonly payloads: BufferPool;

  constructor(
    private readonly ctx: Context,
    private readonly session: EbsSession,
  ) {
    this.getter = new BlockGetter(session);
    this.signal = AbortSignal.any([ctx.signal, this.stop.signal]);
    // Every request in flight listens on it.
    setMaxListeners(0, this.signal);
    this.payloads = new BufferPool(BLOCK_SIZE, 32);
  }

  /**
   * Hands out what is ready. The stage resumes this generator only once stdout took what was
   * yielded (a block is larger than a pipe's high-water mark, so each write waits for the
   * stream to drain): the blocks' buffers are free again.
   */
  *send(out: Encoder): Generator<Buffer[]> {
    const taken = out.take();
    yield taken;
    this.payloads.returned(taken);
  }

  /** Ends the reads still in flight (the stage ended early: a failure, or stdout went away). */
  close(): Promise<void> {
    this.stop.abort();
    return this.hashing.close();
  }

  header(rec: VolumeRec): void {
    const id = rec.snapshotId;
    if (id !== undefined && typeof id !== 'string') throw badRecord(this.ctx, rec, `"snapshotId" must be a string, got ${JSON.stringify(id)}`);
    if (id !== undefined && id === this.snapshotId) {
      // The same volume's header repeated: it may add what the first lacked.
      if (typeof rec.encrypted === 'boolean') this.encrypted = rec.encrypted;
      return;
    }
    this.snapshotId = id;
    this.encrypted = typeof rec.encrypted === 'boolean' ? rec.encrypted : undefined;
    this.tokens = id === undefined ? undefined : new TokenRefresher(this.session, id);
    this.previous = -1;
  }

  /** The read of one block, or undefined when it is known to be zero and need not be read. */
  read(rec: BlockRec): Promise<Rec> | undefined {
    if (!Number.isSafeInteger(rec.index) || rec.index < 0) throw badRecord(this.ctx, rec, `block record has an invalid "index": ${JSON.stringify(rec.index)}`);
    if (rec.token !== undefined && typeof rec.token !== 'string') throw badRecord(this.ctx, rec, `block ${rec.index}: "token" must be a string`);
    if (rec.sha256 !== undefined && typeof rec.sha256 !== 'string') throw badRecord(this.ctx, rec, `block ${rec.index}: "sha256" must be a base64 string`);
    const knownZero = rec.zero === true || rec.sha256 === ZERO_BLOCK_SHA256;
    if (knownZero && (rec.token === undefined || this.encrypted === false)) return undefined;
    if (rec.token === undefined) throw badRecord(this.ctx, rec, `block ${rec.index} has neither data nor a block token: list the snapshot with ebs-blocks (or delta) to read it`);
    if (this.snapshotId === undefined) throw badRecord(this.ctx, rec, `block ${rec.index} has a token but no volume header before it names its "snapshotId"`);
    if (rec.index <= this.previous) throw badRecord(this.ctx, rec, `block ${rec.index} comes after block ${this.previous}: blocks must be in ascending order`);
    this.previous = rec.index;
    this.planned++;
    if (this.session.settings.dryRun) return undefined;
    return this.fetch(rec, this.snapshotId, this.tokens!);
  }

  private async fetch(rec: BlockRec, snapshotId: string, tokens: TokenRefresher): Promise<Rec> {
    const index = rec.index;
    let token = tokens.current(index, rec.token as string) ?? (rec.token as string);
    const data = await this.session.retry.run(
      { op: 'GetSnapshotBlock', snapshotId, index },
      async () => {
        try {
          const reply = await this.getter.get(snapshotId, index, token, this.signal, this.payloads.take());
          const { data: body, sha256: actual } = await this.hashing.hash(reply.body);
          if (reply.checksum !== actual) throw new CorruptReply(`the data's SHA-256 is ${actual}, x-amz-Checksum says ${reply.checksum}`);
          return { body, actual };
        } catch (err) {
          // Not a failure to retry: the stage is over.
          if (this.stop.signal.aborted) throw new Error('ebs-get ended before this block was read');
          throw err;
        }
      },
      {
        rate: this.session.blockRate,
        recover: async (kind) => {
          if (kind !== 'block-token') return false;
          const fresh = await tokens.refresh(index, token);
          if (fresh === undefined) return false;
          token = fresh;
          return true;
        },
      },
    );
    this.fetched++;
    if (typeof rec.sha256 === 'string' && rec.sha256 !== data.actual) {
      throw new IntegrityError(`${snapshotId} block ${index}: the data's SHA-256 is ${data.actual}, the record says ${rec.sha256}`);
    }
    if (data.actual === ZERO_BLOCK_SHA256) {
      this.payloads.lend(data.body, 0);
      return zeroBlock(rec);
    }
    this.payloads.lend(data.body, 1);
    const got: Rec = { ...rec, sha256: data.actual, len: BLOCK_SIZE, [PAYLOAD]: data.body };
    delete got.zero;
    return got;
  }

  /** For a dry run: one listing page and one block read prove the credentials can read. */
  async checkAccess(): Promise<void> {
    if (this.snapshotId === undefined) return;
    for await (const page of listPages(this.session, this.snapshotId, { maxResults: 100, prefetch: false })) {
      const first = page.blocks[0];
      if (first?.token) await this.fetch({ type: 'block', index: first.index, token: first.token }, this.snapshotId, this.tokens!);
      return;
    }
  }
}
