// Every command of the toolkit, with its one-line summary for `sluice --help`. Compositions are
// bash scripts in bin/ (pipelines of the other commands), not modules under src/.
export interface CommandEntry {
  name: string;
  kind: 'sources' | 'transforms' | 'sinks' | 'compositions' | 'servers';
  summary: string;
}

export const COMMANDS: CommandEntry[] = [
  { name: 'file-blocks', kind: 'sources', summary: 'a file, block device or stdin as 512 KiB block frames' },
  { name: 'ebs-blocks', kind: 'sources', summary: 'list an EBS snapshot\'s blocks (with tokens) as a block manifest' },
  { name: 's3-list', kind: 'sources', summary: 'list the objects under a store URL as object records' },
  { name: 'stream-chunk', kind: 'sources', summary: 'any byte stream into numbered objects with checksums and a manifest' },
  { name: 'delta', kind: 'transforms', summary: 'keep the blocks of a snapshot that differ from a parent; zeros where it lost blocks' },
  { name: 'ebs-get', kind: 'transforms', summary: 'attach EBS snapshot blocks\' data, read in parallel and verified' },
  { name: 'zstd-chunk', kind: 'transforms', summary: 'blocks into zstd-compressed objects of up to 64 blocks' },
  { name: 'zstd-unchunk', kind: 'transforms', summary: 'zstd-compressed objects back into verified blocks' },
  { name: 's3-get', kind: 'transforms', summary: 'attach each object\'s data from its store, verified' },
  { name: 's3-restore', kind: 'transforms', summary: 'restore archived (GLACIER, DEEP_ARCHIVE) objects and wait until they are readable' },
  { name: 'strip', kind: 'transforms', summary: 'drop payloads: frames in, manifest out' },
  { name: 'progress', kind: 'transforms', summary: 'pass records through, showing rate, totals and ETA on stderr' },
  { name: 'skip', kind: 'transforms', summary: 'drop records a journal says are done (resume a run)' },
  { name: 'shard', kind: 'transforms', summary: 'keep one shard of N, for running a job in parallel' },
  { name: 'pick', kind: 'transforms', summary: 'keep the records that meet conditions (type, key, field, version, age, size); new trailer' },
  { name: 'file-write', kind: 'sinks', summary: 'write blocks to files or devices at their offsets' },
  { name: 'ebs-put', kind: 'sinks', summary: 'write block frames into a new EBS snapshot and complete it; print a journal' },
  { name: 's3-put', kind: 'sinks', summary: 'write object frames to a store URL; print what was written' },
  { name: 's3-copy', kind: 'sinks', summary: 'copy listed objects to another store, server-side within S3; print what was copied' },
  { name: 's3-delete', kind: 'sinks', summary: 'delete the objects a whole listing or journal names, after its trailer; print what was deleted' },
  { name: 'stream-join', kind: 'sinks', summary: 'stream-chunk\'s objects back into the exact byte stream, verified' },
  { name: 'count', kind: 'sinks', summary: 'count records, blocks, bytes and non-zero bytes' },
  { name: 'ebs-size', kind: 'compositions', summary: 'the blocks and bytes a snapshot holds, or that differ from a parent' },
  { name: 'ebs-download', kind: 'compositions', summary: 'a snapshot into a file or block device' },
  { name: 'ebs-deltadownload', kind: 'compositions', summary: 'what changed between two snapshots, onto a copy of the first' },
  { name: 'ebs-upload', kind: 'compositions', summary: 'a file or block device into a new snapshot' },
  { name: 'ebs-copy', kind: 'compositions', summary: 'a snapshot into a new one in another region, account or endpoint' },
  { name: 'ebs-sync', kind: 'compositions', summary: 'what changed between two snapshots, onto a copy of the first elsewhere' },
  { name: 'ebs-multiclone', kind: 'compositions', summary: 'a snapshot into several files or devices at once' },
  { name: 'ebs-fanout', kind: 'compositions', summary: 'one read, one new snapshot per region or endpoint at once' },
  { name: 'ebs-movetos3', kind: 'compositions', summary: 'a snapshot into an object store as compressed chunks' },
  { name: 'ebs-getfroms3', kind: 'compositions', summary: 'compressed chunks from a store into a new snapshot, a file or a device' },
  { name: 'ebs-emulator', kind: 'servers', summary: 'an EBS Direct API server (and EC2 DescribeSnapshots) for tests and rehearsals' },
];
