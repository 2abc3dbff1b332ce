import { once } from 'node:events';
import { AddressInfo } from 'node:net';
import { EXIT_STATUS_TEXT, command } from '../core/command';
import { SluiceError, UsageError } from '../core/errors';
import { ApiError } from '../emulator/errors';
import { buildEmulator, parseOptions } from '../emulator/options';
import { createEmulatorServer } from '../emulator/server';
import { addSynthetic } from '../emulator/synthetic-snapshots';

const USAGE = `Usage: ebs-emulator [--host H] [--port N] [--region R] [--state DIR] [options]

Serves the EBS Direct APIs (StartSnapshot, PutSnapshotBlock, CompleteSnapshot,
ListSnapshotBlocks, ListChangedBlocks, GetSnapshotBlock) and EC2 DescribeSnapshots on one
port, with the service's paths, headers, status codes, errors, pagination, tokens, lineage and
quotas, for tests and rehearsals without an AWS account. Point clients at it with
--endpoint-url URL, or AWS_ENDPOINT_URL_EBS=URL and AWS_ENDPOINT_URL_EC2=URL; any credentials
and signing region are accepted. On start it prints one record on stdout,
  {"type":"endpoint","url":"http://127.0.0.1:PORT","region":"us-east-1","pid":PID}
and nothing more; logs go to stderr. Stop it with SIGTERM or SIGINT: it stops accepting,
finishes its state writes and exits 0.

Options:
  --host H               address to listen on (default 127.0.0.1)
  --port N               port (default 0: any free port; the record says which)
  --region R             region echoed in the record (default us-east-1)
  --state DIR            keep snapshots and block data in DIR (created if missing) so a restart
                         finds them; without it everything lives in memory
  --no-quotas            no rate or pending-snapshot quotas
  --quota NAME=N         set one quota (repeatable): get-snapshot, get-account, put-snapshot,
                         put-account (default 1000/s each), list-blocks, list-changed (50/s),
                         start, complete (10/s), pending (100 snapshots)
  --latency MS           added to every EBS request (default 0)
  --jitter MS            plus a uniform random 0..MS (default 0)
  --fault KIND=RATE      inject a fault with probability RATE (0..1) (repeatable): internal
                         (500 InternalServerException), read-block (ValidationException "Failed
                         to read block data" on GetSnapshotBlock), reset (the connection is cut),
                         slow (GetSnapshotBlock sends its body over 0.4 s), not-found-after-start
                         (that share of new snapshots answer puts and completes with 404 for
                         --not-found-ms after StartSnapshot); internal, reset and slow apply to
                         block and list requests
  --not-found-ms MS      length of the not-found window (default 2000)
  --completion-ms MS     delay between CompleteSnapshot and the state completed (default 200)
  --minute-ms MS         length of one minute of a StartSnapshot Timeout (default 60000), so the
                         time-out to error can be rehearsed quickly
  --block-token-ttl S    block token lifetime in seconds (default 604800, 7 days)
  --page-token-ttl S     NextToken lifetime in seconds (default 3600)
  --seed N               seed for jitter and faults, so a run repeats (default: random)
  --synthetic SPEC       add a completed synthetic snapshot whose blocks are computed on demand
                         (repeatable). SPEC is key=value,...: id=snap-<17 hex> (default: made
                         from SPEC and its place among the --synthetic flags, so it is the same
                         in every run),
                         size=GiB (1..65536), pattern=every|every2nd|every4th|every3rd4th|random|
                         zeros (default every2nd), seed=N, zero=FRACTION of listed blocks that
                         are zeros, sparse=FRACTION of blocks never written, parent=snap-...
  --encrypted            snapshots report Encrypted; unwritten blocks read as noise, not zeros
  --threads N            worker threads that make synthetic blocks and check put checksums
                         (default: the number of CPUs)
  -h, --help             this text

Pattern blocks hold, in the first 4 bytes of each selected 512-byte sector s, the value
s mod 2^32 (little-endian); every2nd selects s%2==0, every4th s%4==0, every3rd4th s%3==0 or
s%4==0.

Control API (JSON; not part of AWS):
  POST /_emulator/snapshots      {VolumeSize, Pattern, Seed, ZeroFraction, SparseFraction,
                                 ParentSnapshotId, SnapshotId} -> 201, a synthetic snapshot
  POST /_emulator/block-token    {SnapshotId, BlockIndex} -> 200 {BlockToken}, to read a block
                                 that is not listed
  POST /_emulator/expire-tokens  every token handed out so far is expired -> 204
  GET  /_emulator/stats          {requests, throttled, faults, snapshots}
  PUT  /_emulator/config         {latencyMs, jitterMs, faults: {KIND: RATE}, quotas: {NAME: N|null},
                                 quotasEnabled, completionMs, notFoundMs, minuteMs} -> 204
  POST /_emulator/reset          forget every snapshot -> 204

Examples:
  ebs-emulator --synthetic id=snap-00000000000000001,size=4,pattern=every2nd &
  ebs-emulator --state /var/tmp/ebs --latency 20 --jitter 30 --fault internal=0.01
  ebs-emulator --no-quotas --synthetic size=16384,pattern=random,sparse=0.5 | head -1

${EXIT_STATUS_TEXT}`;

export const main = command({
  name: 'ebs-emulator',
  usage: USAGE,
  flags: {
    string: ['host', 'port', 'region', 'state', 'quota', 'latency', 'jitter', 'fault', 'not-found-ms', 'completion-ms', 'minute-ms', 'block-token-ttl', 'page-token-ttl', 'seed', 'synthetic', 'threads'],
    boolean: ['quotas', 'encrypted'],
    repeatable: ['quota', 'fault', 'synthetic'],
    default: { quotas: true },
  },
  async run(args, ctx) {
    const options = parseOptions(args);
    const emu = buildEmulator(args, options);
    try {
      for (const s of options.synthetic) {
        // A restart with --state already holds the snapshots of the flags.
        if (s.id !== undefined && emu.reg.snapshots.has(s.id)) continue;
        addSynthetic(emu, s);
      }
    } catch (err) {
      emu.reg.close();
      await emu.workers.close();
      throw err instanceof ApiError ? new UsageError(`--synthetic: ${err.message}`) : err;
    }
    const server = createEmulatorServer(emu, ctx.log);
    const sweep = setInterval(() => emu.reg.refreshAll(), 1000);
    try {
      server.listen(options.port, options.host);
      await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
      const { port } = server.address() as AddressInfo;
      const host = options.host.includes(':') ? `[${options.host}]` : options.host;
      process.stdout.write(JSON.stringify({ type: 'endpoint', url: `http://${host}:${port}`, region: options.region, pid: process.pid }) + '\n');
      if (!ctx.signal.aborted) await once(ctx.signal, 'abort');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') throw new SluiceError(`cannot listen on ${options.host}:${options.port}: ${code}`);
      throw err;
    } finally {
      clearInterval(sweep);
      await stop(server);
      emu.reg.close();
      await emu.workers.close();
    }
  },
});

/** Stops accepting, lets requests in flight finish (up to 2 s), then cuts what is left. */
async function stop(server: import('node:http').Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), 2000);
  await closed;
  clearTimeout(timer);
}
