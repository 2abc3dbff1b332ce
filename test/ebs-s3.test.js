'use strict';
// ebs-movetos3 and ebs-getfroms3 on the real S3 protocol: snapshots on an ebs-emulator moved into
// a bucket on moto's S3 server in both layouts, and read back into a file and into a new
// snapshot, for each Flexible Snapshot Proxy test pattern. Every result is compared byte for byte.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { ok, describe, tmpdir } = require('./lib/run');
const { startEmulator, emulatorEnv } = require('./lib/emulator');
const { startMoto } = require('./lib/moto');
const { writePattern } = require('./lib/pattern');

const BLOCK = 524288;
const GIB = 1 << 30;
// Each pattern's image: 40 blocks and a partial one, a hole (blocks 10-12) and a zeroed block (20).
const SIZE = 40 * BLOCK + 3000;
const PATTERNS = ['every', 'every2nd', 'every4th', 'every3rd4th'];
const work = tmpdir('sluice-ebs-s3-');

let emulator;
let moto;
let env;
test.before(async () => {
  [emulator, moto] = await Promise.all([startEmulator(['--completion-ms', '50', '--no-quotas']), startMoto()]);
  await moto.createBucket('vols');
  // The EBS side goes to the emulator (its environment), the store side to moto (the flag).
  env = emulatorEnv(emulator);
});
test.after(() => Promise.all([emulator?.stop(), moto?.stop()]));

const must = (script) => ok(script, { env });
const completedId = (r) =>
  r.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((x) => x.type === 'snapshot' && x.status === 'completed').snapshotId;

function image(pattern) {
  const img = path.join(work, `${pattern}.img`);
  writePattern(img, SIZE, pattern, { holes: [[10 * BLOCK, 13 * BLOCK]] });
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, Buffer.alloc(BLOCK), 0, BLOCK, 20 * BLOCK);
  fs.closeSync(fd);
  return img;
}

/** `restored` holds `img`, then zeros up to the volume's whole GiB. */
async function assertHolds(restored, img) {
  assert.strictEqual(fs.statSync(restored).size, GIB, `${restored} is the volume's size`);
  await ok(`cmp -n ${SIZE} ${img} ${restored} && cmp -n ${GIB - SIZE} -i ${SIZE}:0 ${restored} /dev/zero`);
}

for (const pattern of PATTERNS) {
  test(`${pattern}: a snapshot into s3:// and back, both layouts, into a file and into a new snapshot`, async () => {
    const img = image(pattern);
    const id = completedId(await must(`ebs-upload ${img}`));
    const s3 = `--s3-endpoint-url ${moto.url}`;
    for (const layout of ['default', 'fsp']) {
      const store = `s3://vols/${pattern}-${layout}`;
      const moved = await must(`ebs-movetos3 ${s3} --layout ${layout} ${id} ${store}`);
      assert.match(moved.stdout.toString(), /"type":"object"/, `objects written${describe(moved)}`);
      // FSP's layout keeps only whole GiB: the true size is given back with --size.
      const url = layout === 'fsp' ? `${store}/${id}.1` : store;
      const size = layout === 'fsp' ? `--size ${GIB}` : '';
      const out = path.join(work, `${pattern}-${layout}.img`);
      await must(`ebs-getfroms3 ${s3} --layout ${layout} ${size} ${url} ${out}`);
      await assertHolds(out, img);
      const back = completedId(await must(`ebs-getfroms3 ${s3} --layout ${layout} ${size} ${url} --to-snapshot`));
      const downloaded = path.join(work, `${pattern}-${layout}-snap.img`);
      await must(`ebs-download ${back} ${downloaded}`);
      await assertHolds(downloaded, img);
      fs.rmSync(out);
      fs.rmSync(downloaded);
    }
  });
}
