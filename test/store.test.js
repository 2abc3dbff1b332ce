'use strict';
// The local directory store: the shared contract, then what only a directory has (the rule that
// maps keys to paths, clashes, damaged files, foreign files).
const { describe, it } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { tmpdir } = require('./lib/run');
const { storeContract, byteOrder } = require('./lib/store-contract');
const { initDigest } = require('../dist/core/digest.js');
const { LocalStore } = require('../dist/core/store-local.js');
const { encodeKey, decodeName } = require('../dist/core/store-local-keys.js');
const { NotFoundError, StoreError, compareKeys, parseStoreUrl, openStore } = require('../dist/core/store.js');
const { IntegrityError, UsageError } = require('../dist/core/errors.js');

const ready = initDigest();

/** A store at SANDBOX/store; outside() names whatever appeared in SANDBOX beside it. */
async function makeStore() {
  await ready;
  const sandbox = tmpdir('sluice-store-');
  const root = path.join(sandbox, 'store');
  fs.mkdirSync(root);
  return {
    store: new LocalStore(root),
    root,
    outside: () => [
      ...fs.readdirSync(sandbox).filter((n) => n !== 'store'),
      ...['/tmp/sluice-escaped', '/escape'].filter((p) => fs.existsSync(p)),
    ],
  };
}

storeContract('local directory', makeStore);

/** Every file under `dir`, relative, sorted. */
function tree(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

async function listKeys(store, prefix = '') {
  const out = [];
  for await (const page of store.list(prefix)) out.push(...page.map((i) => i.key));
  return out;
}

describe('local store: keys to paths', () => {
  // The rule (store-local-keys.ts): split at "/"; in each segment write control characters, "%" and
  // "\" as %XX; write an empty segment, "." and ".." as "%", "%2E", "%2E%2E"; cut a segment
  // longer than 238 bytes into pieces, all but the last ending in "%+" (a directory).
  const CASES = [
    ['plain/key.txt', ['plain', 'key.txt']],
    ['a/../b c/%x/', ['a', '%2E%2E', 'b c', '%25x', '%']],
    ['./x', ['%2E', 'x']],
    ['/lead//dbl', ['%', 'lead', '%', 'dbl']],
    ['...', ['...']],
    ['back\\slash', ['back%5Cslash']],
    ['tab\tnl\nnul\u0000del\u007f', ['tab%09nl%0Anul%00del%7F']],
    ['ünï 文件 +=&?#*', ['ünï 文件 +=&?#*']],
    ['%.tmp.1', ['%25.tmp.1']],
    ['L'.repeat(300), ['L'.repeat(238) + '%+', 'L'.repeat(62)]],
    ['x'.repeat(237) + 'é', ['x'.repeat(237) + '%+', 'é']],
    ['%'.repeat(80), ['%25'.repeat(79) + '%+', '%25']],
    ['y'.repeat(238) + '.', ['y'.repeat(238) + '%+', '%2E']],
  ];
  for (const [key, components] of CASES) {
    it(`${JSON.stringify(key.length > 40 ? key.slice(0, 20) + '...' : key)} is stored at ${JSON.stringify(components.map((c) => (c.length > 30 ? c.slice(0, 8) + '...' : c)).join('/'))} and decodes back`, () => {
      assert.deepStrictEqual(encodeKey(key), components);
      let back = '';
      for (const name of components) {
        assert.ok(Buffer.byteLength(name) <= 240, `${name.length}-byte name`);
        const part = decodeName(name);
        back += part.fragment + (part.continues ? '' : '/');
      }
      assert.strictEqual(back.slice(0, -1), key);
    });
  }

  it('names that begin with "%." are the store\'s own; names it never writes are told apart', () => {
    assert.strictEqual(decodeName('%.tmp.0123'), null);
    assert.strictEqual(decodeName('%.meta.x'), null);
    for (const foreign of ['a%41', 'a%zz', '%2e', 'x%', '50%-off', '%20']) assert.strictEqual(decodeName(foreign), undefined, foreign);
  });

  it('compareKeys is UTF-8 byte order', () => {
    const keys = ['a', 'a-c', 'a/b', 'a0', '\uE000', '\u{1F600}', '\uFFFD', 'é', '', 'ab', '\u007f'];
    assert.deepStrictEqual([...keys].sort(compareKeys), [...keys].sort(byteOrder));
  });

  it('keys with control characters round-trip', async () => {
    const { store, root } = await makeStore();
    const keys = ['tab\there', 'nl\nhere', 'nul\u0000here', 'cr\rhere/\u0001'];
    for (const key of keys) await store.put(key, Buffer.from(JSON.stringify(key)));
    assert.deepStrictEqual(await listKeys(store), [...keys].sort(byteOrder));
    for (const key of keys) assert.strictEqual((await store.get(key)).data.toString(), JSON.stringify(key));
    for (const file of tree(root)) assert.doesNotMatch(file, /[\u0000-\u001f]/);
  });

  it('nothing is written outside the root, whatever the key', async () => {
    const { store, root, outside } = await makeStore();
    await store.put('../../../../tmp/sluice-escaped', Buffer.from('x'));
    await store.put('/escape', Buffer.from('x'));
    await store.put('..\\..\\win', Buffer.from('x'));
    assert.deepStrictEqual(outside(), []);
    assert.deepStrictEqual(tree(root), [
      '%.meta...%5C..%5Cwin',
      '%/%.meta.escape',
      '%/escape',
      '%2E%2E/%2E%2E/%2E%2E/%2E%2E/tmp/%.meta.sluice-escaped',
      '%2E%2E/%2E%2E/%2E%2E/%2E%2E/tmp/sluice-escaped',
      '..%5C..%5Cwin',
    ]);
  });
});

describe('local store: what only a directory has', () => {
  it('an object and objects under its key clash, with an error naming both', async () => {
    const { store } = await makeStore();
    await store.put('a', Buffer.from('file'));
    await assert.rejects(store.put('a/b', Buffer.from('x')), (err) => err instanceof StoreError && err.kind === 'permanent' && /"a\/b".*object "a" exists/.test(err.message));
    await store.put('c/d', Buffer.from('x'));
    await assert.rejects(store.put('c', Buffer.from('x')), (err) => err instanceof StoreError && /"c".*under "c\/" exist/.test(err.message));
    // A trailing slash is its own key ("folder" placeholders of S3 consoles), and no clash.
    await store.put('c/', Buffer.from(''));
    assert.deepStrictEqual(await listKeys(store), ['a', 'c/', 'c/d']);
  });

  it('a store whose directory does not exist lists as not found; a put makes it', async () => {
    const sandbox = tmpdir('sluice-store-');
    const store = new LocalStore(path.join(sandbox, 'new', 'store'));
    await assert.rejects(listKeys(store), (err) => err instanceof NotFoundError && /does not exist/.test(err.message));
    await store.put('k', Buffer.from('v'));
    assert.deepStrictEqual(await listKeys(store), ['k']);
  });

  it('a file changed in place, cut short or grown is an integrity error on get, naming the key', async () => {
    const { store, root } = await makeStore();
    const data = Buffer.alloc(4096, 7);
    for (const key of ['same-size', 'short', 'long', 'fine']) await store.put(key, data);
    const fd = fs.openSync(path.join(root, 'same-size'), 'r+');
    fs.writeSync(fd, Buffer.from([8]), 0, 1, 100);
    fs.closeSync(fd);
    fs.truncateSync(path.join(root, 'short'), 4000);
    fs.appendFileSync(path.join(root, 'long'), 'x');
    for (const key of ['same-size', 'short', 'long']) {
      await assert.rejects(store.get(key), (err) => err instanceof IntegrityError && err.exitCode === 5 && err.message.includes(`"${key}"`), key);
    }
    assert.ok((await store.get('fine')).data.equals(data));
    // A range cannot be checked against the whole object's checksum; it is read as it is.
    assert.strictEqual((await store.get('same-size', { range: { start: 100, end: 101 } })).data[0], 8);
  });

  it('an object without its sidecar (put by hand) is read, with checksums unknown', async () => {
    const { store, root } = await makeStore();
    fs.writeFileSync(path.join(root, 'by-hand'), 'hello');
    const head = await store.head('by-hand');
    assert.strictEqual(head.size, 5);
    assert.strictEqual(head.sha256, undefined);
    assert.strictEqual((await store.get('by-hand')).data.toString(), 'hello');
  });

  it('temporary files are never listed, and no put leaves one behind', async () => {
    const { store, root } = await makeStore();
    await store.put('d/x', Buffer.from('x'));
    fs.writeFileSync(path.join(root, '%.tmp.deadbeef'), 'a crashed write');
    fs.writeFileSync(path.join(root, 'd', '%.tmp.0'), 'another');
    assert.deepStrictEqual(await listKeys(store), ['d/x']);
    await assert.rejects(store.put('d/y', Buffer.from('y'), { sha256: 'wrong' }), IntegrityError);
    await assert.rejects(store.put('d/x/z', Buffer.from('z')), StoreError);
    assert.deepStrictEqual(tree(root), ['%.tmp.deadbeef', 'd/%.meta.x', 'd/%.tmp.0', 'd/x']);
  });

  it('a file with a name the store never writes stops a listing, naming it', async () => {
    const { store, root } = await makeStore();
    await store.put('ok', Buffer.from('x'));
    fs.writeFileSync(path.join(root, 'stray%zz'), 'x');
    await assert.rejects(listKeys(store), (err) => err instanceof StoreError && err.message.includes('stray%zz'));
  });

  it('a symbolic link is not an object', async () => {
    const { store, root } = await makeStore();
    await store.put('real', Buffer.from('x'));
    fs.symlinkSync('/etc/hostname', path.join(root, 'link'));
    await assert.rejects(store.get('link'), NotFoundError);
    await assert.rejects(store.head('link'), NotFoundError);
  });

  it('deleting the last object of a folder removes the folder, never the root', async () => {
    const { store, root } = await makeStore();
    await store.put('deep/er/est', Buffer.from('x'));
    await store.put('top', Buffer.from('x'));
    await store.delete(['deep/er/est', 'top']);
    assert.deepStrictEqual(fs.readdirSync(root), []);
  });
});

describe('store URLs', () => {
  it('parses directories, file URLs and s3 URLs', () => {
    assert.deepStrictEqual(parseStoreUrl('/backups/disk'), { kind: 'local', root: '/backups/disk' });
    assert.deepStrictEqual(parseStoreUrl('out'), { kind: 'local', root: path.resolve('out') });
    assert.deepStrictEqual(parseStoreUrl('./out/'), { kind: 'local', root: path.resolve('out') });
    assert.deepStrictEqual(parseStoreUrl('file:///backups/my%20disk'), { kind: 'local', root: '/backups/my disk' });
    assert.deepStrictEqual(parseStoreUrl('s3://bkt/vols'), { kind: 's3', bucket: 'bkt', prefix: 'vols/' });
    assert.deepStrictEqual(parseStoreUrl('s3://bkt/vols/'), { kind: 's3', bucket: 'bkt', prefix: 'vols/' });
    assert.deepStrictEqual(parseStoreUrl('s3://bkt'), { kind: 's3', bucket: 'bkt', prefix: '' });
  });

  it('refuses what is not a store URL', () => {
    for (const url of ['', '-', 'http://example.com/x', 'file://host/dir', 's3://', 's3://Bad_Bucket/x']) {
      assert.throws(() => parseStoreUrl(url), UsageError, url);
    }
  });

  it('opens a directory as a local store and an s3 URL as an S3 store, without I/O', () => {
    assert.ok(openStore('/x') instanceof LocalStore);
    const s3 = openStore('s3://bkt/x', { endpoint: 'http://127.0.0.1:9' });
    assert.strictEqual(s3.constructor.name, 'S3Store');
    assert.strictEqual(s3.url, 's3://bkt/x/');
    assert.strictEqual(openStore('s3://bkt').url, 's3://bkt/');
  });
});
