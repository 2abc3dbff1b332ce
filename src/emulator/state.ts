// The snapshots: their metadata and lifecycle, held in memory and, with --state DIR, written
// atomically (temp file + rename) to DIR/snapshots.json; block data lives in a BlockStore.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockStore, DiskBlocks, MemoryBlocks } from './blocks';
import { SyntheticSpec } from './synthetic';

export type Status = 'pending' | 'completed' | 'error';

export interface Snapshot {
  id: string;
  volumeSize: number;
  parentId?: string;
  status: Status;
  /** ms since the epoch */
  startTime: number;
  description?: string;
  encrypted: boolean;
  kmsKeyArn?: string;
  tags?: { Key?: string; Value?: string }[];
  clientToken?: string;
  /** What the StartSnapshot request asked for, to tell a retry from a conflicting reuse of its ClientToken. */
  requestKey?: string;
  timeoutMinutes: number;
  progress: number;
  synthetic?: SyntheticSpec;
  /** Set by CompleteSnapshot: when the snapshot turns `completed`. */
  completeAt?: number;
  /** With the not-found-after-start fault: until when puts and completes answer 404. */
  notFoundUntil?: number;
}

interface SavedState {
  version: 1;
  secret: string;
  /** Tokens issued at or before this time were expired by the control API. */
  tokensExpiredThrough?: number;
  snapshots: Snapshot[];
}

export class Registry {
  readonly snapshots = new Map<string, Snapshot>();
  private readonly byClientToken = new Map<string, string>();
  /** Sorted own block indices of completed snapshots, built once they can no longer change. */
  private readonly sortedCache = new Map<string, Uint32Array>();
  readonly blocks: BlockStore;
  /** HMAC key of block and page tokens; kept in the state so tokens outlive a restart. */
  readonly secret: Buffer;
  tokensExpiredThrough = 0;
  private saveQueued = false;
  /** How long one minute of a StartSnapshot Timeout lasts (shortened for rehearsals). */
  minuteMs = 60000;

  constructor(private readonly stateDir?: string) {
    if (!stateDir) {
      this.blocks = new MemoryBlocks();
      this.secret = randomBytes(32);
      return;
    }
    fs.mkdirSync(stateDir, { recursive: true });
    this.blocks = new DiskBlocks(path.join(stateDir, 'blocks'));
    const saved = this.readSaved();
    this.secret = saved ? Buffer.from(saved.secret, 'hex') : randomBytes(32);
    this.tokensExpiredThrough = saved?.tokensExpiredThrough ?? 0;
    for (const snap of saved?.snapshots ?? []) {
      this.add(snap);
      if (!snap.synthetic) this.blocks.load(snap.id);
    }
    if (!saved) this.saveNow();
  }

  private file(): string {
    return path.join(this.stateDir!, 'snapshots.json');
  }

  private readSaved(): SavedState | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.file(), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const saved = JSON.parse(text) as SavedState;
    if (saved.version !== 1 || !Array.isArray(saved.snapshots)) throw new Error(`${this.file()}: not a state file of this version`);
    return saved;
  }

  add(snap: Snapshot): void {
    this.snapshots.set(snap.id, snap);
    if (snap.clientToken) this.byClientToken.set(snap.clientToken, snap.id);
    this.changed();
  }

  byToken(clientToken: string): Snapshot | undefined {
    const id = this.byClientToken.get(clientToken);
    return id === undefined ? undefined : this.get(id);
  }

  /** The snapshot with its status brought up to date (completion and Timeout happen lazily). */
  get(id: string, now = Date.now()): Snapshot | undefined {
    const snap = this.snapshots.get(id);
    if (snap) this.refresh(snap, now);
    return snap;
  }

  refresh(snap: Snapshot, now = Date.now()): void {
    if (snap.status !== 'pending') return;
    if (snap.completeAt !== undefined) {
      if (now >= snap.completeAt) {
        snap.status = 'completed';
        snap.progress = 100;
        this.changed();
      }
    } else if (now >= snap.startTime + snap.timeoutMinutes * this.minuteMs) {
      snap.status = 'error';
      this.changed();
    }
  }

  refreshAll(): void {
    const now = Date.now();
    for (const snap of this.snapshots.values()) this.refresh(snap, now);
  }

  pendingCount(): number {
    let n = 0;
    for (const snap of this.snapshots.values()) if (snap.status === 'pending') n++;
    return n;
  }

  /** Own written block indices, ascending (only asked of snapshots that no longer change). */
  sorted(snap: Snapshot): Uint32Array {
    let sorted = this.sortedCache.get(snap.id);
    if (!sorted || snap.status === 'pending') {
      sorted = Uint32Array.from(this.blocks.index(snap.id).keys()).sort();
      if (snap.status !== 'pending') this.sortedCache.set(snap.id, sorted);
    }
    return sorted;
  }

  newId(): string {
    for (;;) {
      const id = 'snap-' + randomBytes(9).toString('hex').slice(0, 17);
      if (!this.snapshots.has(id)) return id;
    }
  }

  reset(): void {
    for (const id of this.snapshots.keys()) this.blocks.drop(id);
    this.snapshots.clear();
    this.byClientToken.clear();
    this.sortedCache.clear();
    this.changed();
  }

  /** Metadata changed: write it out soon, once for a burst of changes. */
  changed(): void {
    if (!this.stateDir || this.saveQueued) return;
    this.saveQueued = true;
    setImmediate(() => this.saveNow());
  }

  saveNow(): void {
    this.saveQueued = false;
    if (!this.stateDir) return;
    const state: SavedState = { version: 1, secret: this.secret.toString('hex'), tokensExpiredThrough: this.tokensExpiredThrough, snapshots: [...this.snapshots.values()] };
    const tmp = `${this.file()}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(state));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file());
  }

  close(): void {
    if (this.saveQueued) this.saveNow();
    this.blocks.close();
  }
}
