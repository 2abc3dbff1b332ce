// Opaque block and page tokens: a payload bound to what they may be used for, an issue time (for
// forced expiry) and an expiry, sealed with an HMAC, so a foreign or altered token is refused.
import { createHmac, timingSafeEqual } from 'node:crypto';

const MAC_BYTES = 16;

export class Tokens {
  private lastIssued = 0;

  /** `expiredThrough`: tokens issued at or before this time (ms) are expired (kept in --state). */
  constructor(
    private readonly secret: Buffer,
    public blockTtlMs: number,
    public pageTtlMs: number,
    public expiredThrough = 0,
  ) {}

  /** An issue time later than any forced expiry, so a token handed out after it stays valid. */
  issueTime(): number {
    this.lastIssued = Math.max(Date.now(), this.expiredThrough + 1, this.lastIssued);
    return this.lastIssued;
  }

  expireAll(): void {
    this.expiredThrough = Math.max(Date.now(), this.lastIssued);
  }

  private seal(fields: string): string {
    const mac = createHmac('sha256', this.secret).update(fields).digest().subarray(0, MAC_BYTES);
    return Buffer.concat([Buffer.from(fields), mac]).toString('base64url');
  }

  /** The fields of a genuine, unexpired token, or undefined. */
  private open(token: string, kind: string): string[] | undefined {
    let raw: Buffer;
    try {
      raw = Buffer.from(token, 'base64url');
    } catch {
      return undefined;
    }
    if (raw.length <= MAC_BYTES) return undefined;
    const fields = raw.subarray(0, raw.length - MAC_BYTES);
    const mac = createHmac('sha256', this.secret).update(fields).digest().subarray(0, MAC_BYTES);
    if (!timingSafeEqual(mac, raw.subarray(raw.length - MAC_BYTES))) return undefined;
    const parts = fields.toString().split('|');
    if (parts[0] !== kind) return undefined;
    const issued = Number(parts[1]);
    const expiry = Number(parts[2]);
    if (issued <= this.expiredThrough || Date.now() >= expiry) return undefined;
    return parts.slice(3);
  }

  block(snapshotId: string, index: number, issued: number): string {
    return this.seal(`b|${issued}|${issued + this.blockTtlMs}|${snapshotId}|${index}`);
  }

  blockExpiry(issued: number): number {
    return issued + this.blockTtlMs;
  }

  checkBlock(token: string, snapshotId: string, index: number): boolean {
    const f = this.open(token, 'b');
    return f !== undefined && f[0] === snapshotId && f[1] === String(index);
  }

  /** A page token for `op` over (first, second) continuing at `next`. */
  page(op: string, second: string, first: string, next: number, maxResults: number): string {
    const issued = this.issueTime();
    return this.seal(`p|${issued}|${issued + this.pageTtlMs}|${op}|${second}|${first}|${next}|${maxResults}`);
  }

  /** The next index and page size a page token carries, or undefined if it is not valid here. */
  checkPage(token: string, op: string, second: string, first: string): { next: number; maxResults: number } | undefined {
    const f = this.open(token, 'p');
    if (!f || f[0] !== op || f[1] !== second || f[2] !== first) return undefined;
    return { next: Number(f[3]), maxResults: Number(f[4]) };
  }
}
