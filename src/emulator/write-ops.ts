// StartSnapshot, PutSnapshotBlock, CompleteSnapshot.
import { createHash } from 'node:crypto';
import { ApiError, invalid, snapshotNotFound } from './errors';
import { Emulator, Handler, blockIndexParam, count, mustFind, throttle } from './context';
import { epochSeconds, parseJsonObject, readBlockBody, readBody, sendJson, wholeParam } from './http';
import { BLOCK_SIZE, DEFAULT_TIMEOUT_MINUTES, MAX_TIMEOUT_MINUTES, MAX_VOLUME_GIB, MIN_TIMEOUT_MINUTES, OWNER_ID } from './limits';
import { Snapshot } from './state';
import { blockCount } from './synthetic';

export function startResponse(snap: Snapshot): string {
  return JSON.stringify({
    Description: snap.description,
    SnapshotId: snap.id,
    OwnerId: OWNER_ID,
    Status: snap.status,
    StartTime: epochSeconds(snap.startTime),
    VolumeSize: snap.volumeSize,
    BlockSize: BLOCK_SIZE,
    Tags: snap.tags,
    ParentSnapshotId: snap.parentId,
    KmsKeyArn: snap.kmsKeyArn,
    SseType: snap.encrypted ? (snap.kmsKeyArn ? 'sse-kms' : 'sse-ebs') : 'none',
  });
}

function optionalString(body: Record<string, unknown>, name: string, max: number): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max) throw invalid('INVALID_PARAMETER_VALUE', `${name} must be a string of at most ${max} characters.`);
  return v;
}

function wholeField(body: Record<string, unknown>, name: string, min: number, max: number, reason: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(reason, `${name} must be a whole number between ${min} and ${max}, got ${JSON.stringify(v)}.`);
  return v;
}

export const startSnapshot: Handler = async (emu, req, res) => {
  throttle(emu, 'StartSnapshot', emu.quotas.accountRequest('start', 'StartSnapshot'));
  const body = parseJsonObject(await readBody(req, 1 << 20));
  const volumeSize = wholeField(body, 'VolumeSize', 1, MAX_VOLUME_GIB, 'INVALID_VOLUME_SIZE');
  if (volumeSize === undefined) throw invalid('INVALID_PARAMETER_VALUE', 'VolumeSize is required.');
  const timeoutMinutes = wholeField(body, 'Timeout', MIN_TIMEOUT_MINUTES, MAX_TIMEOUT_MINUTES, 'INVALID_PARAMETER_VALUE') ?? DEFAULT_TIMEOUT_MINUTES;
  const description = optionalString(body, 'Description', 255);
  const parentId = optionalString(body, 'ParentSnapshotId', 64);
  const clientToken = optionalString(body, 'ClientToken', 255);
  const kmsKeyArn = optionalString(body, 'KmsKeyArn', 2048);
  if (body.Encrypted !== undefined && typeof body.Encrypted !== 'boolean') throw invalid('INVALID_PARAMETER_VALUE', 'Encrypted must be true or false.');
  const tags = body.Tags;
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'object' && t !== null))) throw invalid('INVALID_TAG', 'Tags must be a list of {Key, Value}.');
  const requestKey = JSON.stringify([volumeSize, parentId, description, body.Encrypted ?? false, kmsKeyArn, timeoutMinutes, tags ?? null]);
  if (clientToken !== undefined) {
    const earlier = emu.reg.byToken(clientToken);
    if (earlier) {
      if (earlier.requestKey !== requestKey) throw new ApiError(409, 'ConflictException', `The client token ${clientToken} was used before with a different request.`);
      return sendJson(res, 201, startResponse(earlier));
    }
  }
  let encrypted = emu.encrypted || body.Encrypted === true || kmsKeyArn !== undefined;
  if (parentId !== undefined) {
    const parent = emu.reg.get(parentId);
    if (!parent) throw snapshotNotFound(parentId);
    if (parent.status !== 'completed') throw invalid('INVALID_SNAPSHOT_ID', `The parent snapshot '${parentId}' is ${parent.status}, not completed.`);
    if (volumeSize < parent.volumeSize) throw invalid('INVALID_VOLUME_SIZE', `VolumeSize ${volumeSize} is smaller than the parent snapshot's ${parent.volumeSize} GiB.`);
    encrypted ||= parent.encrypted;
  }
  const limit = emu.quotas.pendingLimit();
  if (limit !== undefined && emu.reg.pendingCount() >= limit) {
    count(emu.throttled, 'StartSnapshot');
    throw new ApiError(402, 'ServiceQuotaExceededException', `The account already has ${limit} pending snapshots, its limit.`);
  }
  const now = Date.now();
  const snap: Snapshot = {
    id: emu.reg.newId(),
    volumeSize,
    parentId,
    status: 'pending',
    startTime: now,
    description,
    encrypted,
    kmsKeyArn,
    tags: tags as Snapshot['tags'],
    clientToken,
    requestKey,
    timeoutMinutes,
    progress: 0,
  };
  if (emu.chaos.roll('not-found-after-start')) snap.notFoundUntil = now + emu.chaos.notFoundMs;
  emu.reg.add(snap);
  sendJson(res, 201, startResponse(snap));
};

/** A pending snapshot that exists (and is past any injected not-found window). */
function mustBeWritable(emu: Emulator, id: string): Snapshot {
  const snap = mustFind(emu, id);
  if (snap.notFoundUntil !== undefined && Date.now() < snap.notFoundUntil) throw snapshotNotFound(id);
  if (snap.status !== 'pending' || snap.completeAt !== undefined) {
    const state = snap.status === 'pending' ? 'being completed' : snap.status;
    throw invalid('INVALID_SNAPSHOT_ID', `The snapshot '${id}' is ${state}: only a pending snapshot can be written.`);
  }
  return snap;
}

export const putSnapshotBlock: Handler = async (emu, req, res, route) => {
  throttle(emu, 'PutSnapshotBlock', emu.quotas.blockRequest('put', route.id, 'PutSnapshotBlock'));
  const h = req.headers;
  const dataLength = wholeParam('x-amz-Data-Length', h['x-amz-data-length'], 0, Number.MAX_SAFE_INTEGER);
  if (dataLength === undefined) throw invalid('INVALID_PARAMETER_VALUE', 'The x-amz-Data-Length header is required.');
  if (dataLength !== BLOCK_SIZE) throw invalid('INVALID_PARAMETER_VALUE', `x-amz-Data-Length must be ${BLOCK_SIZE}, got ${dataLength}.`);
  const checksum = h['x-amz-checksum'];
  if (typeof checksum !== 'string' || checksum === '') throw invalid('INVALID_PARAMETER_VALUE', 'The x-amz-Checksum header is required.');
  if (h['x-amz-checksum-algorithm'] !== 'SHA256') throw invalid('INVALID_PARAMETER_VALUE', `x-amz-Checksum-Algorithm must be SHA256, got ${JSON.stringify(h['x-amz-checksum-algorithm'] ?? null)}.`);
  const progress = wholeParam('x-amz-Progress', h['x-amz-progress'], 0, 100);
  const snap = mustBeWritable(emu, route.id);
  const index = blockIndexParam(route.index, blockCount(snap.volumeSize));
  const key = `${snap.id} ${index}`;
  if (emu.inflightPuts.has(key)) throw invalid('CONFLICTING_BLOCK_UPDATE', `Block ${index} of ${snap.id} is being written by another request.`);
  emu.inflightPuts.add(key);
  try {
    const body = await readBlockBody(req, BLOCK_SIZE, emu.workers);
    let spare: Buffer | undefined = body.data;
    try {
      if (body.size !== dataLength) throw invalid('INVALID_BLOCK', `Block ${index}: the body is ${body.size} bytes, x-amz-Data-Length says ${dataLength}.`);
      if (body.checksum !== checksum) throw invalid('INVALID_BLOCK', `Block ${index}: the SHA-256 of the data does not match x-amz-Checksum.`);
      // The snapshot may have been completed or timed out while the body arrived.
      mustBeWritable(emu, route.id);
      spare = emu.reg.blocks.put(snap.id, index, body.data, Buffer.from(checksum, 'base64'));
    } finally {
      // Only a pending snapshot's block is replaced, and pending snapshots are never read: no
      // response is still sending a replaced buffer.
      if (spare) emu.workers.give(spare);
    }
    if (progress !== undefined && progress !== snap.progress) {
      snap.progress = progress;
      emu.reg.changed();
    }
  } finally {
    emu.inflightPuts.delete(key);
  }
  res.writeHead(201, { 'x-amz-checksum': checksum, 'x-amz-checksum-algorithm': 'SHA256', 'content-length': 0 });
  res.end();
};

export const completeSnapshot: Handler = async (emu, req, res, route) => {
  throttle(emu, 'CompleteSnapshot', emu.quotas.accountRequest('complete', 'CompleteSnapshot'));
  const snap = mustFind(emu, route.id);
  if (snap.notFoundUntil !== undefined && Date.now() < snap.notFoundUntil) throw snapshotNotFound(route.id);
  if (snap.status === 'error') throw invalid('INVALID_SNAPSHOT_ID', `The snapshot '${snap.id}' is in the error state.`);
  const h = req.headers;
  const changed = wholeParam('x-amz-ChangedBlocksCount', h['x-amz-changedblockscount'], 0, Number.MAX_SAFE_INTEGER);
  if (changed === undefined) throw invalid('INVALID_PARAMETER_VALUE', 'The x-amz-ChangedBlocksCount header is required.');
  if (snap.status === 'completed' || snap.completeAt !== undefined) return sendJson(res, 202, JSON.stringify({ Status: snap.status }));
  const written = emu.reg.blocks.index(snap.id);
  if (changed !== written.size) throw invalid('INVALID_PARAMETER_VALUE', `x-amz-ChangedBlocksCount is ${changed}, but ${written.size} blocks were written to ${snap.id}.`);
  const checksum = h['x-amz-checksum'];
  if (checksum !== undefined) {
    if (h['x-amz-checksum-algorithm'] !== 'SHA256') throw invalid('INVALID_PARAMETER_VALUE', 'x-amz-Checksum-Algorithm must be SHA256.');
    if (h['x-amz-checksum-aggregation-method'] !== 'LINEAR') throw invalid('INVALID_PARAMETER_VALUE', 'x-amz-Checksum-Aggregation-Method must be LINEAR.');
    const linear = createHash('sha256');
    for (const index of emu.reg.sorted(snap)) linear.update(written.get(index)!);
    if (linear.digest('base64') !== checksum) throw invalid('INVALID_PARAMETER_VALUE', `The LINEAR aggregate checksum does not match the ${written.size} blocks written to ${snap.id}.`);
  }
  await emu.reg.blocks.sync(snap.id);
  // Requests answered while the blocks were flushed: another completion, or a put.
  if (snap.completeAt !== undefined || snap.status !== 'pending') return sendJson(res, 202, JSON.stringify({ Status: snap.status }));
  if (written.size !== changed) throw invalid('INVALID_PARAMETER_VALUE', `x-amz-ChangedBlocksCount is ${changed}, but ${written.size} blocks were written to ${snap.id}.`);
  snap.completeAt = Date.now() + emu.completionMs;
  emu.reg.refresh(snap);
  emu.reg.changed();
  sendJson(res, 202, JSON.stringify({ Status: snap.status }));
};
