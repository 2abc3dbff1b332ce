import minimist from 'minimist';
import { initDigest } from './digest';
import { EXIT, SluiceError, UsageError, errorCode } from './errors';

export interface FlagSpec {
  /** Flags that take a value. Values stay strings: ids like `0012` must not become numbers. */
  string?: string[];
  boolean?: string[];
  /** String flags that may be given more than once; their value is then an array. */
  repeatable?: string[];
  alias?: Record<string, string>;
  default?: Record<string, string | boolean>;
}

export interface CommandSpec {
  name: string;
  /** The literal usage text: synopsis, description, options, examples, exit statuses. */
  usage: string;
  flags?: FlagSpec;
  /** Bounds on the number of positional arguments. */
  positionals?: { min?: number; max?: number };
  run(args: Args, ctx: Context): Promise<void>;
}

export interface Args {
  _: string[];
  [flag: string]: unknown;
}

export interface Context {
  command: string;
  /** Aborted by SIGINT or SIGTERM: pass it to every pipeline and request. */
  signal: AbortSignal;
  /** What the stage reads (`stdin` or a path), set by the stage helpers, for messages. */
  input?: string;
  /** A line on stderr, prefixed with the command name. */
  log(message: string): void;
}

/** The exit-status section every usage text ends with. */
export const EXIT_STATUS_TEXT = `EXIT STATUS
  0    success (also when the reader of stdout went away)
  1    failure: I/O or remote error
  2    usage error
  3    the input ended without its end trailer; nothing was committed
  4    the input is not a valid stream
  5    integrity: a checksum, length or size did not match
  130  interrupted (SIGINT); 143 terminated (SIGTERM)`;

export function command(spec: CommandSpec): (argv: string[]) => Promise<void> {
  return (argv) => runCommand(spec, argv);
}

async function runCommand(spec: CommandSpec, argv: string[]): Promise<void> {
  const controller = new AbortController();
  let stdoutGone = false;
  let caughtSignal: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    // A second signal means the clean shutdown is stuck: leave now.
    if (caughtSignal) process.exit(signalExit(sig));
    caughtSignal = sig;
    controller.abort(new SluiceError(`${spec.name}: ${sig === 'SIGINT' ? 'interrupted' : 'terminated'}`, signalExit(sig)));
  };
  const onStdoutError = (err: Error) => {
    if (errorCode(err) === 'EPIPE') stdoutGone = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', onStdoutError);
  const ctx: Context = {
    command: spec.name,
    signal: controller.signal,
    log: (message) => process.stderr.write(`${spec.name}: ${message}\n`),
  };
  try {
    const args = parseArgs(spec, argv);
    if (args.help) {
      process.stdout.write(spec.usage.endsWith('\n') ? spec.usage : spec.usage + '\n');
      return;
    }
    await initDigest();
    await spec.run(args, ctx);
    process.exitCode = EXIT.OK;
  } catch (err) {
    if (stdoutGone || (errorCode(err) === 'EPIPE' && !caughtSignal)) {
      // The reader of our output has gone (`| head`): a normal, quiet end.
      process.exitCode = EXIT.OK;
    } else if (caughtSignal) {
      process.stderr.write(`${spec.name}: ${caughtSignal === 'SIGINT' ? 'interrupted' : 'terminated'}\n`);
      process.exitCode = signalExit(caughtSignal);
    } else {
      reportError(spec, err);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function reportError(spec: CommandSpec, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  const prefixed = message.startsWith(`${spec.name}:`) ? message : `${spec.name}: ${message}`;
  if (err instanceof UsageError) {
    process.stderr.write(`${prefixed}\n\n${spec.usage.endsWith('\n') ? spec.usage : spec.usage + '\n'}`);
  } else {
    process.stderr.write(`${prefixed}\n`);
    if (process.env.SLUICE_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  }
  process.exitCode = err instanceof SluiceError ? err.exitCode : EXIT.FAILURE;
}

function signalExit(sig: NodeJS.Signals): number {
  return sig === 'SIGINT' ? EXIT.INTERRUPTED : EXIT.TERMINATED;
}

export function parseArgs(spec: CommandSpec, argv: string[]): Args {
  const flags = spec.flags ?? {};
  const strings = flags.string ?? [];
  const booleans = ['help', ...(flags.boolean ?? [])];
  const alias = { help: 'h', ...(flags.alias ?? {}) };
  const known = new Set<string>([...strings, ...booleans, ...Object.keys(alias), ...Object.values(alias)]);
  const unknown: string[] = [];
  const parsed = minimist(argv, {
    string: ['_', ...strings],
    boolean: booleans,
    alias,
    default: flags.default,
    '--': false,
    unknown: (arg) => {
      if (!arg.startsWith('-') || arg === '-') return true;
      const name = arg.replace(/^--?(no-)?/, '').replace(/=.*$/, '');
      // A cluster of short flags (-qv) is only valid if every letter is known.
      const names = /^-[^-]/.test(arg) && name.length > 1 ? name.split('') : [name];
      if (names.every((n) => known.has(n))) return true;
      unknown.push(arg);
      return false;
    },
  });
  if (unknown.length) throw new UsageError(`unknown option ${unknown[0]}`);
  for (const name of strings) {
    if (Array.isArray(parsed[name]) && !flags.repeatable?.includes(name)) throw new UsageError(`--${name} given more than once`);
    if (parsed[name] === '' && !(flags.default && name in flags.default)) {
      throw new UsageError(`--${name} needs a value`);
    }
  }
  const positionals = (parsed._ as unknown[]).map(String);
  const min = spec.positionals?.min ?? 0;
  const max = spec.positionals?.max ?? 0;
  if (!parsed.help) {
    if (positionals.length < min) throw new UsageError(`expected ${min === max ? min : `at least ${min}`} argument${min === 1 ? '' : 's'}`);
    if (positionals.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])}`);
  }
  return { ...parsed, _: positionals };
}

/** An integer flag within bounds, or a usage error naming the flag. */
export function intFlag(args: Args, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = args[name];
  if (raw === undefined || raw === '') return fallback;
  const text = String(raw);
  if (!/^[0-9]+$/.test(text)) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(text)}`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function stringFlag(args: Args, name: string): string | undefined {
  const raw = args[name];
  return raw === undefined || raw === '' ? undefined : String(raw);
}

/** A size flag: bytes, or K, M, G (binary multiples, `8M`, `64MiB`), within bounds. */
export function sizeFlag(args: Args, name: string, fallback: number, min: number, max: number): number {
  const raw = stringFlag(args, name);
  if (raw === undefined) return fallback;
  const m = /^([0-9]+)([KMG]?)(?:i?B)?$/i.exec(raw);
  if (!m) throw new UsageError(`--${name} must be a number of bytes, optionally with K, M or G, got ${JSON.stringify(raw)}`);
  const value = Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
  if (!(value >= min && value <= max)) throw new UsageError(`--${name} must be between ${sizeText(min)} and ${sizeText(max)}, got ${raw}`);
  return value;
}

function sizeText(bytes: number): string {
  for (const [unit, scale] of [['G', 1 << 30], ['M', 1 << 20], ['K', 1 << 10]] as const) {
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return bytes === 1 ? '1 byte' : `${bytes} bytes`;
}

/** A duration flag: seconds, or with s, m, h or d (`90s`, `30m`, `24h`, `7d`); in milliseconds. */
export function durationFlag(args: Args, name: string, fallbackMs: number): number {
  const raw = stringFlag(args, name);
  if (raw === undefined) return fallbackMs;
  const m = /^([0-9]+)([smhd]?)$/.exec(raw);
  if (!m) throw new UsageError(`--${name} must be a duration: a number of seconds, or with s, m, h or d (24h, 7d), got ${JSON.stringify(raw)}`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'] * 1000;
}
