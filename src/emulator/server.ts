// The HTTP server: routes the six EBS Direct operations, EC2 DescribeSnapshots and the control
// API, adding the configured latency and faults on the way.
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, internal } from './errors';
import { Emulator, Handler, Route, count } from './context';
import { controlRequest } from './control';
import { ec2Request } from './ec2';
import { readBody, sendError } from './http';
import { getSnapshotBlock, listChangedBlocks, listSnapshotBlocks } from './read-ops';
import { completeSnapshot, putSnapshotBlock, startSnapshot } from './write-ops';

const HANDLERS: Record<string, Handler> = {
  StartSnapshot: startSnapshot,
  PutSnapshotBlock: putSnapshotBlock,
  CompleteSnapshot: completeSnapshot,
  ListSnapshotBlocks: listSnapshotBlocks,
  ListChangedBlocks: listChangedBlocks,
  GetSnapshotBlock: getSnapshotBlock,
};

/** Operations that the block and list faults apply to. */
const FAULTABLE = new Set(['PutSnapshotBlock', 'GetSnapshotBlock', 'ListSnapshotBlocks', 'ListChangedBlocks']);

export function route(method: string, path: string): Route | undefined {
  const p = path.split('/');
  // p[0] is '' (the path starts with '/'); ids are decoded in case a client escaped them.
  if (p[1] !== 'snapshots') return undefined;
  if (p.length === 2) return method === 'POST' ? { op: 'StartSnapshot', id: '' } : undefined;
  const id = decodeURIComponent(p[2]);
  if (p.length === 4 && p[2] === 'completion' && method === 'POST') return { op: 'CompleteSnapshot', id: decodeURIComponent(p[3]) };
  if (p.length === 4 && p[3] === 'blocks' && method === 'GET') return { op: 'ListSnapshotBlocks', id };
  if (p.length === 4 && p[3] === 'changedblocks' && method === 'GET') return { op: 'ListChangedBlocks', id };
  if (p.length === 5 && p[3] === 'blocks') {
    if (method === 'GET') return { op: 'GetSnapshotBlock', id, index: p[4] };
    if (method === 'PUT') return { op: 'PutSnapshotBlock', id, index: p[4] };
  }
  return undefined;
}

async function handle(emu: Emulator, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  if (path.startsWith('/_emulator/')) return controlRequest(emu, req, res, path);
  if (path === '/' && req.method === 'POST') {
    count(emu.requests, 'DescribeSnapshots');
    return ec2Request(emu, res, (await readBody(req, 1 << 20)).toString('utf8'));
  }
  const r = route(req.method ?? 'GET', path);
  if (!r) throw new ApiError(404, 'UnknownOperationException', `No operation ${req.method} ${path}.`);
  count(emu.requests, r.op);
  const delay = emu.chaos.delay();
  if (delay > 0) await sleep(delay);
  if (FAULTABLE.has(r.op)) {
    if (emu.chaos.roll('internal')) throw internal();
    if (emu.chaos.roll('reset')) {
      req.socket.destroy();
      return;
    }
  }
  await HANDLERS[r.op](emu, req, res, r, query);
}

export function createEmulatorServer(emu: Emulator, log: (message: string) => void): Server {
  const server = createServer({ keepAlive: true }, (req, res) => {
    handle(emu, req, res).catch((err: unknown) => {
      if (err instanceof ApiError) return sendError(res, err);
      log(`${req.method} ${req.url}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      sendError(res, internal());
    });
  });
  // Clients keep connections open between bursts; the default 5 s would make them reconnect.
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  return server;
}
