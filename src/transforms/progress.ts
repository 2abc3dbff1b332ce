import { performance } from 'node:perf_hooks';
import { command, EXIT_STATUS_TEXT, intFlag, stringFlag } from '../core/command';
import { isVolume, type Rec } from '../core/records';
import { transform } from '../core/stage';
import { formatBytes, formatDuration, formatRate } from '../core/units';
import { VolumeHeader } from '../core/volume-header';

const USAGE = `Usage: progress [-q] [--interval SECONDS] [--label TEXT] [FILE|-]

Passes a stream through unchanged, payloads included, and reports on stderr how far it has
got: records, blocks, payload bytes and their rate. When the volume header gives the volume's
size ("blocks" or "size"), also the percentage and an ETA, from the highest block index
reached (blocks arrive in ascending order; a compressed chunk counts up to its last block).

On a terminal the report is one line, redrawn in place a few times a second. Otherwise a line
is printed every --interval seconds. Either way a summary line follows at the end. The clock
is read once per batch of records, never per record.

Options:
  -q, --quiet          print only the summary at the end
  --interval SECONDS   seconds between lines when stderr is not a terminal (default 10)
  --label TEXT         start each line with TEXT instead of "progress" (for several in one pipe)
  -h, --help           show this text

Examples:
  file-blocks /dev/nvme1n1 | progress | zstd-chunk | s3-put s3://bkt/disk > put.journal
  s3-list s3://bkt/data | s3-get | progress --label download --interval 60 | s3-put /mirror

${EXIT_STATUS_TEXT}
`;

// A terminal line redrawn more often than this only flickers.
const TTY_REDRAW_MS = 250;

class Meter {
  records = 0;
  blocks = 0;
  objects = 0;
  bytes = 0;
  private readonly header = new VolumeHeader();
  private reached = 0; // highest block index + 1 in the current volume
  private firstReached: number | undefined; // where this run started in it (a resumed run skips some)
  private firstAt = 0;
  readonly start = performance.now();

  add(rec: Rec): void {
    this.records++;
    if (rec.len) this.bytes += rec.len;
    let end: number | undefined;
    if (rec.type === 'block') {
      this.blocks++;
      if (typeof rec.index === 'number') end = rec.index + 1;
    } else if (rec.type === 'object') {
      this.objects++;
      if (typeof rec.firstBlock === 'number' && typeof rec.blockCount === 'number') end = rec.firstBlock + rec.blockCount;
    } else if (isVolume(rec) && this.header.take(rec)) {
      this.reached = 0;
      this.firstReached = undefined;
    }
    if (end !== undefined && end > this.reached) {
      if (this.firstReached === undefined) {
        this.firstReached = end - 1;
        this.firstAt = performance.now();
      }
      this.reached = end;
    }
  }

  line(now: number, final: boolean): string {
    const elapsed = (now - this.start) / 1000;
    const parts = [`${this.records} records`];
    if (this.blocks) parts.push(`${this.blocks} blocks`);
    if (this.objects) parts.push(`${this.objects} objects`);
    parts.push(`${formatBytes(this.bytes)}`, formatRate(this.bytes, elapsed));
    const total = this.header.totalBlocks;
    if (final) {
      parts.push(`in ${formatDuration(elapsed)}`);
    } else if (total) {
      parts.push(`${((100 * Math.min(this.reached, total)) / total).toFixed(1)}% of ${total} blocks`);
      parts.push(`ETA ${this.eta(now, total)}`);
    } else {
      parts.push(formatDuration(elapsed));
    }
    return `${final ? 'done: ' : ''}${parts.join(', ')}`;
  }

  private eta(now: number, total: number): string {
    if (this.firstReached === undefined) return '?';
    const covered = this.reached - this.firstReached;
    const seconds = (now - this.firstAt) / 1000;
    if (covered <= 0 || seconds <= 0) return '?';
    return formatDuration((Math.max(0, total - this.reached) * seconds) / covered);
  }
}

export const main = command({
  name: 'progress',
  usage: USAGE,
  flags: { string: ['interval', 'label'], boolean: ['quiet'], alias: { q: 'quiet' } },
  positionals: { max: 1 },
  async run(args, ctx) {
    const label = stringFlag(args, 'label') ?? 'progress';
    const tty = process.stderr.isTTY === true;
    const everyMs = tty ? TTY_REDRAW_MS : intFlag(args, 'interval', 10, 1, 86400) * 1000;
    const quiet = args.quiet === true;
    const meter = new Meter();
    let onScreen = false; // a terminal line without its newline yet
    const show = (text: string, final: boolean) => {
      if (tty) {
        process.stderr.write(`\r${label}: ${text}\x1b[K${final ? '\n' : ''}`);
        onScreen = !final;
      } else {
        process.stderr.write(`${label}: ${text}\n`);
      }
    };
    let nextAt = meter.start + everyMs;
    try {
      await transform(ctx, { input: args._[0], frames: 'passed-on' }, async function* (batches, out) {
        for await (const batch of batches) {
          for (const rec of batch) {
            meter.add(rec);
            out.push(rec);
          }
          if (!quiet) {
            const now = performance.now();
            if (now >= nextAt) {
              show(meter.line(now, false), false);
              nextAt = now + everyMs;
            }
          }
          yield out.take();
        }
      });
    } catch (err) {
      if (onScreen) process.stderr.write('\n');
      throw err;
    }
    show(meter.line(performance.now(), true), true);
  },
});
