// Writing an EBS snapshot: StartSnapshot (idempotent through a ClientToken, so a retried start
// never makes two snapshots), PutSnapshotBlock with the block's checksum, CompleteSnapshot with
// the block count and LINEAR checksum, and the wait for `completed` through EC2
// DescribeSnapshots. A dry run goes through the same steps without calling anything that writes.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand, type Tag } from '@aws-sdk/client-ebs';
import type { EbsSession } from './ebs-client';
import { describeSnapshot } from './ebs-list';
import { NOT_FOUND_WINDOW_MS } from './ebs-retry';
import { SluiceError } from './errors';

export interface StartRequest {
  volumeSize: number;
  parent?: string;
  description?: string;
  tags?: Tag[];
  timeoutMinutes: number;
}

// Polls of DescribeSnapshots while sealing: soon at first (small snapshots seal in seconds),
// then no more than one every 10 s (large ones take hours).
const FIRST_POLL_MS = 250;
const MAX_POLL_MS = 10_000;

export class SnapshotWriter {
  snapshotId = '';
  /** Calls made (or, in a dry run, that would be made), by operation. */
  readonly calls: Record<string, number> = {};
  private notFoundUntil: number | undefined;

  constructor(private readonly session: EbsSession) {}

  private get dry(): boolean {
    return this.session.settings.dryRun;
  }

  private count(op: string): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
  }

  async start(req: StartRequest): Promise<void> {
    this.count('StartSnapshot');
    if (this.dry) {
      // Reading the parent is the access check a dry run can make.
      if (req.parent) await describeSnapshot(this.session, req.parent);
      this.snapshotId = '(dry run)';
      return;
    }
    const clientToken = randomUUID();
    const out = await this.session.retry.run({ op: 'StartSnapshot', snapshotId: req.parent ? `new snapshot from ${req.parent}` : 'new snapshot' }, () =>
      this.session.ebs.send(
        new StartSnapshotCommand({
          VolumeSize: req.volumeSize,
          ParentSnapshotId: req.parent,
          Description: req.description,
          Tags: req.tags,
          Timeout: req.timeoutMinutes,
          ClientToken: clientToken,
        }),
        { abortSignal: this.session.ctx.signal },
      ),
    );
    if (!out.SnapshotId) throw new SluiceError('StartSnapshot: the reply has no SnapshotId');
    this.snapshotId = out.SnapshotId;
    // A snapshot just started can be "not found" for a while.
    this.notFoundUntil = Date.now() + NOT_FOUND_WINDOW_MS;
  }

  /** Continues a pending snapshot; resolves with its size in GiB. */
  async resume(snapshotId: string): Promise<number | undefined> {
    const info = await describeSnapshot(this.session, snapshotId);
    if (info.state !== 'pending') {
      throw new SluiceError(`${snapshotId} is ${info.state}${info.stateMessage ? ` (${info.stateMessage})` : ''}: only a pending snapshot can be resumed`);
    }
    // Only now is it this run's to finish (an error says how to resume it).
    this.snapshotId = snapshotId;
    return info.volumeSize;
  }

  async put(index: number, data: Buffer, sha256: string): Promise<void> {
    this.count('PutSnapshotBlock');
    if (this.dry) return;
    await this.session.retry.run(
      { op: 'PutSnapshotBlock', snapshotId: this.snapshotId, index },
      () =>
        this.session.ebs.send(
          new PutSnapshotBlockCommand({ SnapshotId: this.snapshotId, BlockIndex: index, BlockData: data, DataLength: data.length, Checksum: sha256, ChecksumAlgorithm: 'SHA256' }),
          { abortSignal: this.session.ctx.signal },
        ),
      { rate: this.session.blockRate, notFoundUntil: this.notFoundUntil },
    );
  }

  async complete(blocks: number, linear: string): Promise<void> {
    this.count('CompleteSnapshot');
    if (this.dry) return;
    await this.session.retry.run(
      { op: 'CompleteSnapshot', snapshotId: this.snapshotId },
      () =>
        this.session.ebs.send(
          new CompleteSnapshotCommand({
            SnapshotId: this.snapshotId,
            ChangedBlocksCount: blocks,
            Checksum: linear,
            ChecksumAlgorithm: 'SHA256',
            ChecksumAggregationMethod: 'LINEAR',
          }),
          { abortSignal: this.session.ctx.signal },
        ),
      { notFoundUntil: this.notFoundUntil },
    );
  }

  /** Waits until the snapshot leaves `pending`; throws unless it is `completed`. */
  async waitCompleted(): Promise<void> {
    let wait = FIRST_POLL_MS;
    for (;;) {
      const info = await describeSnapshot(this.session, this.snapshotId);
      if (info.state === 'completed') return;
      if (info.state !== 'pending') {
        throw new SluiceError(`${this.snapshotId}: the snapshot ended ${info.state}${info.stateMessage ? ` (${info.stateMessage})` : ''}`);
      }
      await sleep(wait, undefined, { signal: this.session.ctx.signal });
      wait = Math.min(MAX_POLL_MS, wait * 1.5);
    }
  }
}
