// Rehearsal controls: added latency with jitter and injected faults, drawn from one seeded
// generator so a run can be repeated.
export const FAULT_KINDS = ['internal', 'read-block', 'reset', 'slow', 'not-found-after-start'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** mulberry32: small, fast, and good enough for choosing delays and faults. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Chaos {
  latencyMs = 0;
  jitterMs = 0;
  notFoundMs = 2000;
  readonly rates: Partial<Record<FaultKind, number>> = {};
  readonly counts: Partial<Record<FaultKind, number>> = {};
  readonly random: () => number;

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  /** The delay to add to a request, in ms (0 when none is configured). */
  delay(): number {
    if (this.latencyMs <= 0 && this.jitterMs <= 0) return 0;
    return this.latencyMs + (this.jitterMs > 0 ? this.random() * this.jitterMs : 0);
  }

  /** Whether to inject `kind` now; counts what it injects. */
  roll(kind: FaultKind): boolean {
    const rate = this.rates[kind];
    if (!rate || this.random() >= rate) return false;
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    return true;
  }
}

/** Parses `KIND=RATE` of --fault. */
export function parseFault(text: string): [FaultKind, number] {
  const m = /^([a-z-]+)=([0-9.]+)$/.exec(text);
  const rate = m ? Number(m[2]) : NaN;
  if (!m || !(FAULT_KINDS as readonly string[]).includes(m[1]) || !(rate >= 0 && rate <= 1)) {
    throw new Error(`expected KIND=RATE with KIND one of ${FAULT_KINDS.join(', ')} and RATE 0..1, got ${JSON.stringify(text)}`);
  }
  return [m[1] as FaultKind, rate];
}
