'use strict';
// pick, run as a real executable in bash pipes between the real commands: what it keeps, the
// trailer it writes (the next stage takes it), payloads passed through, cut input refused.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { PutBucketVersioningCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { decode } = require('../dist/core/decode.js');
const { PAYLOAD } = require('../dist/core/records.js');
const { S3Store } = require('../dist/core/store-s3.js');

const BLOCK = 524288;
const work = tmpdir('sluice-pick-');
const store = path.join(work, 'store');
const files = {
  app: crypto.randomBytes(2500), // logs/app: parts of 1000, 1000 and 500 bytes
  web: crypto.randomBytes(999), // logs/web: one part of 999
  dump: crypto.randomBytes(3000), // db/dump: three parts of 1000
};
const OLD = '2019-06-01T00:00:00Z';

/** The records of a command's output, payloads as `data`; rejects unless its trailer is valid. */
async function records(stdout) {
  const recs = [];
  for await (const batch of decode([stdout], { command: 'test', source: 'stdout' })) recs.push(...batch.map((r) => ({ ...r, data: r[PAYLOAD] })));
  return recs;
}

const keys = (recs) => recs.filter((r) => r.type === 'object').map((r) => r.key);

let listing;
/** The keys of the store's listing that `keep` selects, in listing order. */
async function expected(keep) {
  listing ??= await records((await ok(`s3-list ${store}`)).stdout);
  return keys(listing.filter(keep));
}

before(async () => {
  await initDigest();
  for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(work, name), data);
  await ok(
    [
      `stream-chunk --size 1000 --name logs/app ${work}/app | s3-put ${store} > /dev/null`,
      `stream-chunk --size 1000 --name logs/web ${work}/web | s3-put ${store} > /dev/null`,
      `stream-chunk --size 1000 --name db/dump ${work}/dump | s3-put ${store} > /dev/null`,
      // The db dump is old: its objects' files carry an old time, which is what the listing shows.
      `touch -d ${OLD} ${store}/db/dump/*`,
    ].join(' && '),
  );
});

describe('pick on a listing', () => {
  it('keeps what every condition selects, and ends with a trailer of its own that count takes', async () => {
    const cases = [
      ['--prefix logs/', (r) => r.key.startsWith('logs/')],
      ['--prefix logs/web/ --prefix db/', (r) => r.key.startsWith('logs/web/') || r.key.startsWith('db/')],
      ['--larger-than 999', (r) => r.size > 999],
      ['--smaller-than 1K --prefix logs/', (r) => r.size < 1024 && r.key.startsWith('logs/')],
      ['--field size=1000', (r) => r.size === 1000],
      ['--field size=1e3 --prefix logs/', (r) => r.size === 1000 && r.key.startsWith('logs/')],
      ['--field commit=true', (r) => r.commit === true],
      ['--field versionId=null', () => false], // only in a --versions listing
      ['--older-than 2020-01-01', (r) => r.key.startsWith('db/')],
      ['--newer-than 1d', (r) => !r.key.startsWith('db/')],
      [`--newer-than ${OLD}`, (r) => !r.key.startsWith('db/')], // strictly after
      ['--type object --type volume', () => true],
      ['--type block', () => false],
      ['', () => true],
    ];
    for (const [flags, keep] of cases) {
      const want = await expected((r) => r.type === 'object' && keep(r));
      const r = await ok(`s3-list ${store} | pick ${flags}`);
      assert.deepStrictEqual(keys(await records(r.stdout)), want, `pick ${flags}${account(r)}`);
      const counted = await ok(`s3-list ${store} | pick ${flags} | count`);
      assert.strictEqual(JSON.parse(counted.stdout.toString().split('\n')[0]).objects, want.length, `count after pick ${flags}${account(counted)}`);
    }
  });

  it('reads the fields of s3-list --versions: a directory lists every object as its latest version', async () => {
    const all = await expected(() => true);
    for (const [flags, want] of [
      ['--latest', all],
      ['--not-latest', []],
      ['--no-latest', []],
      ['--no-delete-markers', all],
      ['--delete-markers', []],
      ['--field versionId=null --latest --no-delete-markers', all],
    ]) {
      const r = await ok(`s3-list --versions ${store} | pick ${flags}`);
      assert.deepStrictEqual(keys(await records(r.stdout)), want, `pick ${flags}${account(r)}`);
    }
  });

  it('a picked listing goes on through s3-get into stream-join and s3-put, byte for byte', async () => {
    const out = path.join(work, 'app.joined');
    await ok(`s3-list ${store} | pick --prefix logs/app/ | s3-get | stream-join ${out}`);
    assert.ok(fs.readFileSync(out).equals(files.app), 'logs/app joined back');
    const copy = path.join(work, 'copy');
    await ok(`s3-list ${store} | pick --prefix db/ | s3-get | s3-put ${copy} > /dev/null`);
    await ok(`s3-list ${copy} | s3-get | stream-join ${out}.dump`);
    assert.ok(fs.readFileSync(`${out}.dump`).equals(files.dump), 'db/dump copied and joined back');
    assert.deepStrictEqual(keys(await records((await ok(`s3-list ${copy}`)).stdout)), await expected((r) => r.type === 'object' && r.key.startsWith('db/')));
  });

  it('frames keep their payloads: what is picked is what was read', async () => {
    const all = await records((await ok(`s3-list ${store} | s3-get`)).stdout);
    const r = await ok(`s3-list ${store} | s3-get | pick --prefix logs/ --larger-than 500`);
    const picked = await records(r.stdout);
    assert.deepStrictEqual(keys(picked), keys(all.filter((x) => x.key.startsWith('logs/') && x.size > 500)), account(r));
    for (const rec of picked) {
      const source = all.find((x) => x.key === rec.key);
      assert.ok(rec.data && rec.data.equals(source.data), `${rec.key}: the same bytes`);
      assert.strictEqual(rec.len, rec.data.length);
    }
  });
});

describe('pick on a block stream', () => {
  const img = path.join(work, 'disk.img');
  before(() => {
    // Four blocks: data, zeros, data, zeros (the last one partial).
    const data = Buffer.alloc(3 * BLOCK + 1000);
    crypto.randomBytes(BLOCK).copy(data, 0);
    crypto.randomBytes(BLOCK).copy(data, 2 * BLOCK);
    fs.writeFileSync(img, data);
  });

  it('the volume header always passes; without conditions the stream comes out as it went in', async () => {
    const r = await ok(`file-blocks ${img} | pick --field zero=true | strip`);
    assert.deepStrictEqual((await records(r.stdout)).map((x) => [x.type, x.index]), [['volume', undefined], ['block', 1], ['block', 3]], account(r));
    const none = await ok(`file-blocks ${img} | pick --prefix x`);
    assert.deepStrictEqual((await records(none.stdout)).map((x) => x.type), ['volume'], account(none));
    await ok(`file-blocks ${img} > ${work}/a.frames && pick ${work}/a.frames > ${work}/b.frames && cmp ${work}/a.frames ${work}/b.frames`);
  });

  it('picked blocks write a file holding exactly them', async () => {
    const out = path.join(work, 'first.img');
    await ok(`file-blocks ${img} | pick --field index=0 | file-write ${out}`);
    const want = Buffer.alloc(fs.statSync(img).size);
    fs.readFileSync(img).copy(want, 0, 0, BLOCK);
    assert.ok(fs.readFileSync(out).equals(want), 'block 0, and zeros where the others were');
  });
});

describe('pick refuses what every stage refuses', () => {
  it('a cut input: status 3, one line naming where, no trailer written, the next stage refuses too', async () => {
    const whole = (await ok(`s3-list ${store} | s3-get | wc -c`)).stdout.toString().trim();
    const output = path.join(work, 'cut.out');
    const r = await sh(`s3-list ${store} | s3-get | head -c ${Math.floor(Number(whole) / 2)} | pick --prefix logs/ > ${output}`);
    assert.strictEqual(r.code, 3, account(r));
    assert.match(r.stderr, /^pick: stdin:\d+: input ended without its end trailer.*\n$/, account(r));
    assert.ok(!fs.readFileSync(output).includes('"type":"end"'), 'no trailer');
    const next = await sh(`s3-list ${store} | head -c 300 | pick | count`);
    assert.deepStrictEqual(next.statuses.slice(-2), [3, 3], account(next));
    assert.strictEqual(next.stdout.length, 0, account(next));
  });

  it('a manifest filtered by hand no longer matches its trailer: status 4', async () => {
    const r = await sh(`s3-list ${store} | grep -v logs/web/ | pick --prefix logs/`);
    assert.strictEqual(r.code, 4, account(r));
    assert.match(r.stderr, /^pick: stdin:\d+: end record does not match the stream/, account(r));
  });

  it('| head -1 ends it quietly', async () => {
    const r = await sh(`s3-list ${store} | s3-get | pick --prefix logs/ | head -1 > /dev/null`);
    assert.ok(r.statuses.every((s) => s === 0), account(r));
    assert.strictEqual(r.stderr, '', account(r));
  });

  it('usage errors: status 2 and the usage on stderr; --help on stdout', async () => {
    for (const [args, message] of [
      ['--bogus', /unknown option --bogus/],
      ['--field size', /--field must be NAME=VALUE/],
      ['--field =1', /--field must be NAME=VALUE/],
      ['--latest --not-latest', /exclude each other/],
      ['--larger-than 3T', /--larger-than must be a number of bytes/],
      ['--newer-than yesterday', /--newer-than must be a date .* or an age/],
      ['--older-than 2024-05-01T12:00', /--older-than must be a date/], // a time without its zone
      ['--older-than 2024-13-45', /--older-than must be a date/],
      ['--smaller-than 1K --smaller-than 2K', /--smaller-than given more than once/],
      ['--prefix', /--prefix needs a value/],
      ['a b', /unexpected argument "b"/],
    ]) {
      const r = await sh(`pick ${args} < /dev/null`);
      assert.strictEqual(r.code, 2, `pick ${args}${account(r)}`);
      assert.match(r.stderr, new RegExp(`^pick: [^\\n]*${message.source}`), `pick ${args}${account(r)}`);
      assert.match(r.stderr, /\nUsage: pick /, 'the usage follows');
      assert.strictEqual(r.stdout.length, 0);
    }
    const help = await ok('pick --help');
    assert.match(help.stdout.toString(), /^Usage: pick [\s\S]*Examples:[\s\S]*EXIT STATUS\n {2}0 /, account(help));
  });
});

describe('pick on a versioned bucket (moto)', () => {
  let moto;
  let name;
  const versions = {};
  before(async () => {
    moto = await startMoto();
    moto.useEnv();
    name = 'versioned-pick';
    await moto.createBucket(name);
    const s3 = new S3Store(name, '');
    await s3.client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    for (const [key, text] of [['a', 'a, first'], ['a', 'a, second'], ['b', 'b, before its delete'], ['c', 'c, current']]) {
      versions[key] = [...(versions[key] ?? []), (await s3.put(key, Buffer.from(text))).versionId];
    }
    await s3.delete(['b']);
  });
  after(() => moto?.stop());

  it('--not-latest --no-delete-markers | s3-get | s3-put restores the versions before the current ones', async () => {
    const restore = path.join(work, 'restore');
    const r = await ok(`s3-list --versions s3://${name} | pick --not-latest --no-delete-markers | s3-get | s3-put ${restore}`, { env: moto.env });
    assert.deepStrictEqual(keys(await records(r.stdout)).sort(), ['a', 'b'], account(r));
    assert.strictEqual(fs.readFileSync(path.join(restore, 'a'), 'utf8'), 'a, first');
    assert.strictEqual(fs.readFileSync(path.join(restore, 'b'), 'utf8'), 'b, before its delete');
    assert.ok(!fs.existsSync(path.join(restore, 'c')), 'c has only its current version');
  });

  it('--latest --delete-markers: the keys deleted now; --field picks a version by its id', async () => {
    const r = await ok(`s3-list --versions s3://${name} | pick --latest --delete-markers`, { env: moto.env });
    const markers = await records(r.stdout);
    assert.deepStrictEqual(markers.map((x) => [x.key, x.deleteMarker, x.latest]), [['b', true, true]], account(r));
    const one = await ok(`s3-list --versions s3://${name} | pick --field versionId=${versions.a[0]} | s3-get`, { env: moto.env });
    const got = await records(one.stdout);
    assert.deepStrictEqual(got.map((x) => [x.key, x.versionId, x.data.toString()]), [['a', versions.a[0], 'a, first']], account(one));
  });
});
