// EC2 DescribeSnapshots (query protocol, XML), enough for clients that wait for completion.
import { randomUUID } from 'node:crypto';
import { ServerResponse } from 'node:http';
import { Emulator } from './context';
import { OWNER_ID } from './limits';
import { Snapshot } from './state';

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function ec2Error(res: ServerResponse, code: string, message: string): void {
  send(res, 400, `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${xml(message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`);
}

function item(snap: Snapshot): string {
  const progress = snap.status === 'completed' ? 100 : snap.progress;
  return (
    `<item><snapshotId>${snap.id}</snapshotId><volumeId>vol-ffffffff</volumeId><status>${snap.status}</status>` +
    `<startTime>${new Date(snap.startTime).toISOString()}</startTime><progress>${progress}%</progress>` +
    `<ownerId>${OWNER_ID}</ownerId><volumeSize>${snap.volumeSize}</volumeSize>` +
    `<description>${xml(snap.description ?? '')}</description><encrypted>${snap.encrypted}</encrypted>` +
    (snap.kmsKeyArn ? `<kmsKeyId>${xml(snap.kmsKeyArn)}</kmsKeyId>` : '') +
    (snap.tags?.length ? `<tagSet>${snap.tags.map((t) => `<item><key>${xml(t.Key ?? '')}</key><value>${xml(t.Value ?? '')}</value></item>`).join('')}</tagSet>` : '') +
    `<storageTier>standard</storageTier></item>`
  );
}

/** Answers a POST / form body: DescribeSnapshots, or InvalidAction for anything else. */
export function ec2Request(emu: Emulator, res: ServerResponse, body: string): void {
  const form = new URLSearchParams(body);
  const action = form.get('Action');
  if (action !== 'DescribeSnapshots') return ec2Error(res, 'InvalidAction', `The action ${action ?? '(none)'} is not valid for this web service.`);
  const ids: string[] = [];
  for (const [key, value] of form) if (/^SnapshotId\.\d+$/.test(key)) ids.push(value);
  let snaps: Snapshot[];
  if (ids.length) {
    const missing = ids.filter((id) => !emu.reg.get(id));
    if (missing.length) return ec2Error(res, 'InvalidSnapshot.NotFound', `The snapshot '${missing.join("', '")}' does not exist.`);
    snaps = ids.map((id) => emu.reg.get(id)!);
  } else {
    emu.reg.refreshAll();
    snaps = [...emu.reg.snapshots.values()];
  }
  send(
    res,
    200,
    `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomUUID()}</requestId>` +
      `<snapshotSet>${snaps.map(item).join('')}</snapshotSet></DescribeSnapshotsResponse>`,
  );
}
