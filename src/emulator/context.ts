// Everything a request handler needs, in one object.
import { IncomingMessage, ServerResponse } from 'node:http';
import { BlockWorkers } from './block-workers';
import { Chaos } from './chaos';
import { ApiError, invalid, snapshotNotFound } from './errors';
import { Quotas } from './quotas';
import { Registry, Snapshot } from './state';
import { Tokens } from './tokens';

export interface Emulator {
  reg: Registry;
  /** Threads that make synthetic blocks and hash put bodies. */
  workers: BlockWorkers;
  tokens: Tokens;
  quotas: Quotas;
  chaos: Chaos;
  region: string;
  /** Delay between CompleteSnapshot and the state `completed`. */
  completionMs: number;
  /** Every snapshot reports Encrypted (and reads noise where unwritten). */
  encrypted: boolean;
  requests: Record<string, number>;
  throttled: Record<string, number>;
  /** Puts being received, by "id index": a second one at the same time conflicts. */
  inflightPuts: Set<string>;
}

export interface Route {
  op: string;
  id: string;
  index?: string;
}

export type Handler = (emu: Emulator, req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams) => Promise<void> | void;

export function count(table: Record<string, number>, op: string): void {
  table[op] = (table[op] ?? 0) + 1;
}

/** Throws the throttling error after counting it. */
export function throttle(emu: Emulator, op: string, err: ApiError | undefined): void {
  if (!err) return;
  count(emu.throttled, op);
  throw err;
}

export function mustFind(emu: Emulator, id: string): Snapshot {
  const snap = emu.reg.get(id);
  if (!snap) throw snapshotNotFound(id);
  return snap;
}

/** Reads and lists need a completed snapshot. */
export function mustBeCompleted(emu: Emulator, id: string): Snapshot {
  const snap = mustFind(emu, id);
  if (snap.status !== 'completed') throw invalid('INVALID_SNAPSHOT_ID', `The snapshot '${id}' is ${snap.status}: only a completed snapshot can be read.`);
  return snap;
}

/** A block index of the path, within the snapshot's volume. */
export function blockIndexParam(text: string | undefined, blocks: number): number {
  if (text === undefined || !/^[0-9]+$/.test(text)) throw invalid('INVALID_PARAMETER_VALUE', `The block index ${JSON.stringify(text)} is not a whole number.`);
  const index = Number(text);
  if (index >= blocks) throw invalid('INVALID_BLOCK', `The block index ${index} is beyond the volume size extent (${blocks} blocks).`);
  return index;
}
