'use strict';
// ebs-emulator with independent clients: Debian's aws-cli v2 (/usr/bin/aws, botocore's own
// serializers and parsers) for the main operations, and the SDK configured only by
// AWS_ENDPOINT_URL_EBS / AWS_ENDPOINT_URL_EC2.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const E = require('./lib/emulator');
const { BLOCK, blockOf, b64sha, linearChecksum, awsCli, AWS_CLI } = E;
const { tmpdir, ROOT } = require('./lib/run');
const { StartSnapshotCommand } = require('@aws-sdk/client-ebs');

const work = tmpdir('sluice-emu-cli-');
let emu;
before(async () => {
  emu = await E.startEmulator(['--no-quotas', '--completion-ms', '50']);
});
after(() => emu.stop());

/** `aws ebs|ec2 ARGS --endpoint-url URL --output json`, parsed; throws with stderr on failure. */
async function aws(...args) {
  const r = await awsCli([...args, '--endpoint-url', emu.url, '--output', 'json']);
  if (r.code !== 0) throw new Error(`aws ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : {};
}

test('aws-cli v2 is installed at /usr/bin/aws (apt-get install awscli)', () => {
  // These checks need Debian's aws-cli: a missing one is a failure, never a silent skip.
  assert.ok(fs.existsSync(AWS_CLI), `${AWS_CLI} is missing: install it with apt-get install awscli`);
});

test('aws ebs: start, put (file path), complete with the LINEAR aggregate, list, get to an outfile', async () => {
  const blocks = new Map([[0, blockOf('cli-0')], [9, Buffer.alloc(BLOCK)], [2047, blockOf('cli-last')]]);
  const started = await aws('ebs', 'start-snapshot', '--volume-size', '1', '--description', 'from aws-cli', '--timeout', '60');
  assert.match(started.SnapshotId, /^snap-[0-9a-f]{17}$/);
  assert.equal(started.Status, 'pending');
  assert.equal(started.BlockSize, BLOCK);
  assert.equal(started.VolumeSize, 1);
  const id = started.SnapshotId;

  // aws-cli takes a second or more to start on a busy machine: independent calls run side by side.
  await Promise.all(
    [...blocks].map(async ([i, data]) => {
      const file = path.join(work, `block-${i}`);
      fs.writeFileSync(file, data);
      const put = await aws('ebs', 'put-snapshot-block', '--snapshot-id', id, '--block-index', String(i), '--block-data', file,
        '--data-length', String(BLOCK), '--checksum', b64sha(data), '--checksum-algorithm', 'SHA256', '--progress', '10');
      assert.equal(put.Checksum, b64sha(data));
      assert.equal(put.ChecksumAlgorithm, 'SHA256');
    }),
  );
  const done = await aws('ebs', 'complete-snapshot', '--snapshot-id', id, '--changed-blocks-count', String(blocks.size),
    '--checksum', linearChecksum(blocks), '--checksum-algorithm', 'SHA256', '--checksum-aggregation-method', 'LINEAR');
  assert.equal(done.Status, 'pending');

  // Wait with aws ec2 describe-snapshots: the EC2 query protocol and XML through botocore.
  let desc;
  for (let n = 0; n < 100; n++) {
    desc = (await aws('ec2', 'describe-snapshots', '--snapshot-ids', id)).Snapshots[0];
    if (desc.State !== 'pending') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(desc.State, 'completed');
  assert.equal(desc.VolumeSize, 1);
  assert.equal(desc.Progress, '100%');
  assert.equal(desc.Description, 'from aws-cli');

  const listed = await aws('ebs', 'list-snapshot-blocks', '--snapshot-id', id, '--max-results', '100');
  assert.deepEqual(listed.Blocks.map((b) => b.BlockIndex), [0, 9, 2047]);
  assert.equal(listed.VolumeSize, 1);
  assert.equal(listed.BlockSize, BLOCK);
  assert.ok(listed.ExpiryTime, 'ExpiryTime parsed');

  const reads = listed.Blocks.map(async ({ BlockIndex, BlockToken }) => {
    const out = path.join(work, `got-${BlockIndex}`);
    const got = await aws('ebs', 'get-snapshot-block', '--snapshot-id', id, '--block-index', String(BlockIndex), '--block-token', BlockToken, out);
    assert.equal(Number(got.DataLength), BLOCK, 'DataLength (this botocore prints header integers as strings)');
    assert.equal(got.Checksum, b64sha(blocks.get(BlockIndex)));
    assert.equal(got.ChecksumAlgorithm, 'SHA256');
    assert.ok(fs.readFileSync(out).equals(blocks.get(BlockIndex)), `block ${BlockIndex} in ${out}`);
  });

  // A child through aws-cli, and its changed blocks against the parent.
  const [{ SnapshotId: child }] = await Promise.all([aws('ebs', 'start-snapshot', '--volume-size', '2', '--parent-snapshot-id', id), ...reads]);
  const file = path.join(work, 'child-9');
  fs.writeFileSync(file, blockOf('cli-child-9'));
  await aws('ebs', 'put-snapshot-block', '--snapshot-id', child, '--block-index', '9', '--block-data', file,
    '--data-length', String(BLOCK), '--checksum', b64sha(blockOf('cli-child-9')), '--checksum-algorithm', 'SHA256');
  await aws('ebs', 'complete-snapshot', '--snapshot-id', child, '--changed-blocks-count', '1');
  assert.equal((await E.waitSettled(emu.ec2(), child)).State, 'completed');
  const changed = await aws('ebs', 'list-changed-blocks', '--first-snapshot-id', id, '--second-snapshot-id', child);
  assert.deepEqual(changed.ChangedBlocks.map((b) => b.BlockIndex), [9]);
  assert.ok(changed.ChangedBlocks[0].FirstBlockToken && changed.ChangedBlocks[0].SecondBlockToken);
  const out = path.join(work, 'child-got-9');
  await aws('ebs', 'get-snapshot-block', '--snapshot-id', child, '--block-index', '9', '--block-token', changed.ChangedBlocks[0].SecondBlockToken, out);
  assert.ok(fs.readFileSync(out).equals(blockOf('cli-child-9')));
});

test('aws ebs: service errors reach aws-cli with their type and message', async () => {
  const { SnapshotId: id } = await emu.ebs().send(new StartSnapshotCommand({ VolumeSize: 1 }));
  const file = path.join(work, 'bad');
  fs.writeFileSync(file, blockOf('bad'));
  const [bad, missing, ec2] = await Promise.all([
    awsCli(['ebs', 'put-snapshot-block', '--snapshot-id', id, '--block-index', '0', '--block-data', file,
      '--data-length', String(BLOCK), '--checksum', b64sha(blockOf('other')), '--checksum-algorithm', 'SHA256', '--endpoint-url', emu.url]),
    awsCli(['ebs', 'list-snapshot-blocks', '--snapshot-id', 'snap-0123456789abcdef0', '--endpoint-url', emu.url]),
    awsCli(['ec2', 'describe-snapshots', '--snapshot-ids', 'snap-0123456789abcdef0', '--endpoint-url', emu.url]),
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /\(ValidationException\) when calling the PutSnapshotBlock operation/);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /\(ResourceNotFoundException\) when calling the ListSnapshotBlocks operation/);
  assert.notEqual(ec2.code, 0);
  assert.match(ec2.stderr, /\(InvalidSnapshot\.NotFound\) when calling the DescribeSnapshots operation/);
});

test('the SDK finds the emulator through AWS_ENDPOINT_URL_EBS and AWS_ENDPOINT_URL_EC2 alone', async () => {
  // A separate process: the SDK reads these variables when a client is made without an endpoint.
  const script = `
    const { EBSClient, StartSnapshotCommand } = require('@aws-sdk/client-ebs');
    const { EC2Client, DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');
    (async () => {
      const { SnapshotId } = await new EBSClient({}).send(new StartSnapshotCommand({ VolumeSize: 1 }));
      const out = await new EC2Client({}).send(new DescribeSnapshotsCommand({ SnapshotIds: [SnapshotId] }));
      console.log(JSON.stringify({ SnapshotId, State: out.Snapshots[0].State }));
    })().catch((e) => { console.error(e); process.exitCode = 1; });`;
  const env = { ...process.env, AWS_ENDPOINT_URL_EBS: emu.url, AWS_ENDPOINT_URL_EC2: emu.url, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true' };
  const out = await new Promise((resolve, reject) =>
    execFile(process.execPath, ['-e', script], { cwd: ROOT, env }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
  const { SnapshotId, State } = JSON.parse(out);
  assert.match(SnapshotId, /^snap-[0-9a-f]{17}$/);
  assert.equal(State, 'pending');
});
