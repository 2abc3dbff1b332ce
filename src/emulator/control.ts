// The emulator's own API under /_emulator/: synthetic snapshots, forced token expiry, counters,
// runtime configuration and reset, for tests and rehearsals.
import { IncomingMessage, ServerResponse } from 'node:http';
import { FAULT_KINDS, FaultKind } from './chaos';
import { Emulator } from './context';
import { ApiError, invalid } from './errors';
import { parseJsonObject, readBody, sendJson } from './http';
import { QUOTA_NAMES, QuotaName } from './quotas';
import { addSynthetic } from './synthetic-snapshots';
import { parsePattern } from './synthetic';

function num(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !(v >= min && v <= max)) throw invalid('INVALID_PARAMETER_VALUE', `${what} must be a number between ${min} and ${max}.`);
  return v;
}

function configure(emu: Emulator, body: Record<string, unknown>): void {
  if (body.latencyMs !== undefined) emu.chaos.latencyMs = num(body.latencyMs, 'latencyMs', 0, 600000);
  if (body.jitterMs !== undefined) emu.chaos.jitterMs = num(body.jitterMs, 'jitterMs', 0, 600000);
  if (body.notFoundMs !== undefined) emu.chaos.notFoundMs = num(body.notFoundMs, 'notFoundMs', 0, 3600000);
  if (body.completionMs !== undefined) emu.completionMs = num(body.completionMs, 'completionMs', 0, 3600000);
  if (body.minuteMs !== undefined) emu.reg.minuteMs = num(body.minuteMs, 'minuteMs', 1, 60000);
  if (body.quotasEnabled !== undefined) {
    if (typeof body.quotasEnabled !== 'boolean') throw invalid('INVALID_PARAMETER_VALUE', 'quotasEnabled must be true or false.');
    emu.quotas.enabled = body.quotasEnabled;
  }
  const faults = (body.faults ?? {}) as Record<string, unknown>;
  for (const [kind, rate] of Object.entries(faults)) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw invalid('INVALID_PARAMETER_VALUE', `unknown fault ${kind}`);
    emu.chaos.rates[kind as FaultKind] = num(rate, kind, 0, 1);
  }
  const quotas = (body.quotas ?? {}) as Record<string, unknown>;
  for (const [name, n] of Object.entries(quotas)) {
    if (!(QUOTA_NAMES as string[]).includes(name)) throw invalid('INVALID_PARAMETER_VALUE', `unknown quota ${name}`);
    emu.quotas.set(name as QuotaName, n === null ? null : num(n, name, 0, 1e9));
  }
}

export async function controlRequest(emu: Emulator, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const route = `${req.method} ${path}`;
  if (route === 'GET /_emulator/stats') {
    return sendJson(res, 200, JSON.stringify({ requests: emu.requests, throttled: emu.throttled, faults: emu.chaos.counts, snapshots: emu.reg.snapshots.size }));
  }
  const body = parseJsonObject(await readBody(req, 1 << 20));
  if (route === 'POST /_emulator/snapshots') {
    const snap = addSynthetic(emu, {
      id: body.SnapshotId === undefined ? undefined : String(body.SnapshotId),
      size: num(body.VolumeSize, 'VolumeSize', 1, 65536),
      parent: body.ParentSnapshotId === undefined ? undefined : String(body.ParentSnapshotId),
      spec: {
        pattern: parsePatternOr400(body.Pattern ?? 'every2nd'),
        seed: body.Seed === undefined ? 1 : num(body.Seed, 'Seed', 0, 2 ** 32 - 1),
        zero: body.ZeroFraction === undefined ? 0 : num(body.ZeroFraction, 'ZeroFraction', 0, 1),
        sparse: body.SparseFraction === undefined ? 0 : num(body.SparseFraction, 'SparseFraction', 0, 1),
      },
    });
    return sendJson(res, 201, JSON.stringify({ SnapshotId: snap.id, VolumeSize: snap.volumeSize, Status: snap.status, ParentSnapshotId: snap.parentId, ...snap.synthetic }));
  }
  if (route === 'POST /_emulator/block-token') {
    const id = String(body.SnapshotId);
    const index = num(body.BlockIndex, 'BlockIndex', 0, 2 ** 32);
    return sendJson(res, 200, JSON.stringify({ BlockToken: emu.tokens.block(id, index, emu.tokens.issueTime()) }));
  }
  if (route === 'POST /_emulator/expire-tokens') {
    emu.tokens.expireAll();
    // Kept with the state, so a restart does not bring the expired tokens back.
    emu.reg.tokensExpiredThrough = emu.tokens.expiredThrough;
    emu.reg.changed();
  }
  else if (route === 'PUT /_emulator/config') configure(emu, body);
  else if (route === 'POST /_emulator/reset') emu.reg.reset();
  else throw new ApiError(404, 'UnknownOperationException', `No control operation ${route}.`);
  res.writeHead(204);
  res.end();
}

function parsePatternOr400(v: unknown) {
  try {
    return parsePattern(String(v));
  } catch (err) {
    throw invalid('INVALID_PARAMETER_VALUE', (err as Error).message);
  }
}
