import { command, EXIT_STATUS_TEXT } from '../core/command';
import { EbsSession, ebsFlags, ebsOptionsText, ebsSettings } from '../core/ebs-client';
import { describeIfAllowed, listPages, MAX_PAGE } from '../core/ebs-list';
import { planRecord, snapshotHeader, snapshotIdArg } from '../core/ebs-records';
import { source } from '../core/stage';

const USAGE = `Usage: ebs-blocks [options] SNAPSHOT-ID

Lists the blocks of a completed EBS snapshot (ListSnapshotBlocks) as a block manifest: a
"volume" header with the snapshot id, size, block size and encryption, then one "block"
record per written block with its index and block token, in ascending order, then the end
trailer. Blocks never written are not listed (they read as zeros); no data is read: pipe the
manifest into ebs-get for that, or into delta to keep what changed since another snapshot.

Pages of 10,000 blocks are listed one after another, the next asked for while this one is
written out; memory stays a few MiB whatever the volume's size (a 16 TiB snapshot lists
33.5 M blocks). An expired page token makes the listing go on from the last block listed.
The encryption comes from EC2 DescribeSnapshots; without permission for it the header leaves
"encrypted" out (readers then take it as unknown).

Options:
${ebsOptionsText(1)}
  -h, --help           show this text

Examples:
  ebs-blocks snap-0123456789abcdef0 | ebs-get | file-write disk.img
  ebs-blocks snap-0123456789abcdef0 | delta --parent snap-0fedcba9876543210 | ebs-get | zstd-chunk | s3-put /backups/vol
  ebs-blocks --endpoint-url http://127.0.0.1:8080 snap-00000000000000001 | count --human

A permanent error (no such snapshot, access denied) ends the run at once with status 1 and a
message naming the snapshot; throttling and server errors are retried.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'ebs-blocks',
  usage: USAGE,
  flags: ebsFlags(),
  positionals: { min: 1, max: 1 },
  async run(args, ctx) {
    const snapshotId = snapshotIdArg(args._[0], 'SNAPSHOT-ID');
    const session = new EbsSession(ctx, ebsSettings(args, 1));
    try {
      await source(ctx, {}, async function* (out) {
        const described = await describeIfAllowed(session, snapshotId);
        const pages = listPages(session, snapshotId, { maxResults: session.settings.dryRun ? 100 : MAX_PAGE });
        let listed = 0;
        let headerWritten = false;
        for await (const page of pages) {
          if (!headerWritten) {
            const header = snapshotHeader(snapshotId, page.volumeSize, described?.encrypted);
            if (session.settings.dryRun) {
              out.push(planRecord(ctx.command, { snapshotId, calls: { ListSnapshotBlocks: Math.max(1, Math.ceil((header.blocks as number) / MAX_PAGE)) }, blocks: header.blocks as number, upTo: true }));
              yield out.take();
              return;
            }
            out.push(header);
            headerWritten = true;
          }
          for (const b of page.blocks) out.push({ type: 'block', index: b.index, token: b.token });
          listed += page.blocks.length;
          yield out.take();
        }
        const retried = session.retry.summary();
        if (retried) ctx.log(`${snapshotId}: ${listed} blocks listed; ${retried}`);
      });
    } finally {
      session.close();
    }
  },
});
