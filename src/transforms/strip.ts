import { command, EXIT_STATUS_TEXT } from '../core/command';
import { PAYLOAD } from '../core/records';
import { transform } from '../core/stage';

const USAGE = `Usage: strip [FILE|-]

Drops every payload, turning a frame stream into a manifest: plain NDJSON that tee, jq, grep
and diff can read, and that can be replayed into a later stage. Records keep their checksums;
only "len" and the bytes after the line go. A line without a payload is checked and passed on
byte for byte as it came in; a line that had one is written again without its "len".

Options:
  -h, --help   show this text

Examples:
  file-blocks disk.img | strip > disk.manifest
  s3-list s3://bkt/vols | s3-get | strip | jq -c 'select(.size > 1e6)'

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'strip',
  usage: USAGE,
  positionals: { max: 1 },
  async run(args, ctx) {
    // strip reads nothing but payloads: a record without one goes out as the line it came in as.
    await transform(ctx, { input: args._[0], decode: { passLines: true } }, async function* (batches, out) {
      for await (const batch of batches) {
        for (const rec of batch) {
          if (rec[PAYLOAD]) delete rec[PAYLOAD]; // delete is a slow call even when there is nothing to delete
          out.push(rec);
        }
        yield out.take();
      }
    });
  },
});
