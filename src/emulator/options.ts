// The command line of ebs-emulator, checked and turned into a running configuration.
import { Args, intFlag, stringFlag } from '../core/command';
import { UsageError } from '../core/errors';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { BlockWorkers } from './block-workers';
import { Chaos, parseFault } from './chaos';
import { Emulator } from './context';
import { Quotas, parseQuota } from './quotas';
import { Registry } from './state';
import { SyntheticRequest, parseSyntheticSpec } from './synthetic';
import { Tokens } from './tokens';

export interface Options {
  host: string;
  port: number;
  region: string;
  state?: string;
  synthetic: SyntheticRequest[];
}

function list(args: Args, name: string): string[] {
  const v = args[name];
  return v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
}

function parsed<T>(flag: string, text: string, parse: (t: string) => T): T {
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(`--${flag} ${text}: ${(err as Error).message}`);
  }
}

export function parseOptions(args: Args): Options {
  return {
    host: stringFlag(args, 'host') ?? '127.0.0.1',
    port: intFlag(args, 'port', 0, 0, 65535),
    region: stringFlag(args, 'region') ?? 'us-east-1',
    state: stringFlag(args, 'state'),
    synthetic: list(args, 'synthetic').map((text, position) => {
      const request = parsed('synthetic', text, parseSyntheticSpec);
      // Without an id, one derived from the flag, so a restart with --state finds the snapshot
      // it made the first time rather than adding another.
      request.id ??= `snap-${createHash('sha256').update(`${position} ${text}`).digest('hex').slice(0, 17)}`;
      return request;
    }),
  };
}

/** The emulator's state and controls as the flags set them. */
export function buildEmulator(args: Args, options: Options): Emulator {
  const seed = intFlag(args, 'seed', Math.floor(Math.random() * 2 ** 32), 0, 2 ** 32 - 1);
  const chaos = new Chaos(seed);
  chaos.latencyMs = intFlag(args, 'latency', 0);
  chaos.jitterMs = intFlag(args, 'jitter', 0);
  chaos.notFoundMs = intFlag(args, 'not-found-ms', 2000);
  for (const f of list(args, 'fault')) {
    const [kind, rate] = parsed('fault', f, parseFault);
    chaos.rates[kind] = rate;
  }
  const quotas = new Quotas();
  quotas.enabled = args.quotas !== false;
  for (const q of list(args, 'quota')) {
    const [name, n] = parsed('quota', q, parseQuota);
    quotas.set(name, n);
  }
  const reg = new Registry(options.state);
  reg.minuteMs = intFlag(args, 'minute-ms', 60000, 1, 60000);
  const tokens = new Tokens(reg.secret, intFlag(args, 'block-token-ttl', 604800, 1) * 1000, intFlag(args, 'page-token-ttl', 3600, 1) * 1000, reg.tokensExpiredThrough);
  return {
    reg,
    workers: new BlockWorkers(intFlag(args, 'threads', availableParallelism(), 1, 64)),
    tokens,
    quotas,
    chaos,
    region: options.region,
    completionMs: intFlag(args, 'completion-ms', 200),
    encrypted: args.encrypted === true,
    requests: {},
    throttled: {},
    inflightPuts: new Set(),
  };
}
