import { command, durationFlag, EXIT_STATUS_TEXT, sizeFlag, stringFlag, type Args } from '../core/command';
import { UsageError } from '../core/errors';
import type { Rec } from '../core/records';
import { transform } from '../core/stage';

const USAGE = `Usage: pick [CONDITION]... [FILE|-]

Keeps the records that meet every condition given and writes them, payloads included, with an
end trailer of its own, counted and digested over what it kept: the way to select records
inside a pipeline, where jq or grep would leave a stream the next stage refuses (its trailer
no longer matches, or is gone). The input's trailer is checked first, like every stage's: a cut
input is refused (status 3) and no trailer is written.

Volume headers always pass. Every other record, of any type, is kept only when it meets every
condition; a record without the field a condition reads does not meet it. Repeating --type,
--prefix or --field: one of the types, one of the prefixes, every field. Without conditions
every record is kept.

Options:
  --type T                the record's "type" is T (object, block, ...)
  --prefix P              its "key" begins with P (a key prefix, not a folder)
  --field NAME=VALUE      its field NAME equals VALUE: a string field as text, a number as a
                          number (size=0, blockCount=64), anything else by its JSON text
                          (zero=true); identifiers are strings (versionId=0012)
  --latest                "latest" is true: what the key reads as now (s3-list --versions)
  --not-latest            "latest" is false: a noncurrent version or marker (also --no-latest)
  --delete-markers        only delete markers ("deleteMarker": true)
  --no-delete-markers     no delete markers
  --newer-than WHEN       "mtime" strictly after WHEN: a date (2024-05-01, midnight UTC; a
                          time needs its zone: 2024-05-01T12:00:00Z) or an age before now,
                          in seconds or with s, m, h or d (90m, 24h, 7d)
  --older-than WHEN       "mtime" strictly before WHEN
  --larger-than SIZE      "size" strictly above SIZE: bytes, or with K, M or G (binary: 8M)
  --smaller-than SIZE     "size" strictly below SIZE
  -h, --help              show this text

Examples:
  s3-list --versions s3://bkt/data | pick --not-latest --no-delete-markers | s3-get | s3-put /restore
  s3-list --versions s3://bkt/data | pick --latest --delete-markers > deleted.manifest   # recoverable
  s3-list s3://bkt/logs | pick --prefix app/ --prefix web/ --older-than 90d | s3-delete s3://bkt/logs > deleted.journal
  s3-list /backups | pick --larger-than 1G --field storageClass=STANDARD | s3-copy --to s3://bkt/big > big.journal

${EXIT_STATUS_TEXT}
`;

type Condition = (rec: Rec) => boolean;

// A JSON number, as --field compares it with a number field.
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
// A date as --newer-than takes it; any other value is an age.
const DATE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/;
const ZONE = /(Z|[+-][0-9]{2}:?[0-9]{2})$/i;

function values(args: Args, name: string): string[] {
  const raw = args[name];
  return raw === undefined ? [] : (Array.isArray(raw) ? raw : [raw]).map(String);
}

/** A flag given both ways (--latest, --no-latest) is true or false; absent, neither. */
function tristate(args: Args, name: string): boolean | undefined {
  const value = args[name];
  return typeof value === 'boolean' ? value : undefined;
}

function fieldEquals(spec: string): Condition {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new UsageError(`--field must be NAME=VALUE, got ${JSON.stringify(spec)}`);
  const name = spec.slice(0, eq);
  const text = spec.slice(eq + 1);
  const number = NUMBER.test(text) ? Number(text) : undefined;
  return (rec) => {
    const value = rec[name];
    if (typeof value === 'string') return value === text;
    if (typeof value === 'number') return value === number;
    return value !== undefined && JSON.stringify(value) === text;
  };
}

/** The instant a --newer-than or --older-than names, in milliseconds; undefined if not given. */
function instantFlag(args: Args, name: string, now: number): number | undefined {
  const raw = stringFlag(args, name);
  if (raw === undefined) return undefined;
  const problem = `--${name} must be a date (2024-05-01, 2024-05-01T12:00:00Z) or an age (90m, 24h, 7d), got ${JSON.stringify(raw)}`;
  if (DATE.test(raw)) {
    const when = raw.length > 10 && !ZONE.test(raw) ? NaN : Date.parse(raw);
    if (Number.isNaN(when)) throw new UsageError(problem);
    return when;
  }
  try {
    return now - durationFlag(args, name, 0);
  } catch {
    throw new UsageError(problem);
  }
}

type Reading = (rec: Rec) => number | undefined;
const mtimeOf: Reading = (rec) => (typeof rec.mtime === 'string' ? Date.parse(rec.mtime) : undefined);
const sizeOf: Reading = (rec) => (typeof rec.size === 'number' ? rec.size : undefined);

/** A strict bound on what `read` gives; a record without it (or not a time: NaN) is not kept. */
function bound(read: Reading, limit: number | undefined, above: boolean): Condition[] {
  if (limit === undefined) return [];
  return [
    (rec) => {
      const value = read(rec);
      return value !== undefined && (above ? value > limit : value < limit);
    },
  ];
}

/** The conditions the arguments give, read at `now` (for ages). */
export function conditions(args: Args, now: number): Condition[] {
  const out: Condition[] = [];
  const types = values(args, 'type');
  if (types.length) out.push((rec) => types.includes(rec.type));
  const prefixes = values(args, 'prefix');
  if (prefixes.length) {
    out.push((rec) => {
      const key = rec.key;
      return typeof key === 'string' && prefixes.some((p) => key.startsWith(p));
    });
  }
  out.push(...values(args, 'field').map(fieldEquals));

  let latest = tristate(args, 'latest');
  if (args['not-latest']) {
    if (latest === true) throw new UsageError('--latest and --not-latest exclude each other');
    latest = false;
  }
  if (latest !== undefined) out.push((rec) => rec.latest === latest);
  const markers = tristate(args, 'delete-markers');
  if (markers !== undefined) out.push((rec) => (rec.deleteMarker === true) === markers);

  const size = (name: string) => {
    const value = sizeFlag(args, name, -1, 0, Number.MAX_SAFE_INTEGER);
    return value < 0 ? undefined : value;
  };
  out.push(...bound(mtimeOf, instantFlag(args, 'newer-than', now), true), ...bound(mtimeOf, instantFlag(args, 'older-than', now), false));
  out.push(...bound(sizeOf, size('larger-than'), true), ...bound(sizeOf, size('smaller-than'), false));
  return out;
}

export const main = command({
  name: 'pick',
  usage: USAGE,
  flags: {
    string: ['type', 'prefix', 'field', 'newer-than', 'older-than', 'larger-than', 'smaller-than'],
    repeatable: ['type', 'prefix', 'field'],
    boolean: ['latest', 'not-latest', 'delete-markers'],
    // Not given is neither true nor false: the default is a value that no flag sets.
    default: { latest: 'either', 'delete-markers': 'either' },
  },
  positionals: { max: 1 },
  async run(args, ctx) {
    const wanted = conditions(args, Date.now());
    await transform(ctx, { input: args._[0], frames: 'passed-on' }, async function* (batches, out) {
      for await (const batch of batches) {
        for (const rec of batch) {
          if (rec.type === 'volume' || wanted.every((meets) => meets(rec))) out.push(rec);
        }
        yield out.take();
      }
    });
  },
});
