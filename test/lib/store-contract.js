'use strict';
// The object store contract (src/core/store.ts), as one suite run against every implementation.
// makeStore() gives a fresh, empty, existing store: { store, outside?(), partSize? }, where
// outside() lists any file the store made outside its own root (for stores that live in a file
// system) and partSize is the size above which the store writes and reads an object in parts.
const { describe, it } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const { StoreError, NotFoundError } = require('../../dist/core/store.js');
const { IntegrityError } = require('../../dist/core/errors.js');

const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');

/** Keys any S3 store holds; none may lead outside a directory store's root. */
const EDGE_KEYS = [
  'plain',
  'with space',
  'plus+sign',
  'per%cent',
  '%41',
  '%2E',
  '%',
  '%+',
  'back\\slash',
  'ünïcödé/файл/文件',
  '\u{1F600}emoji',
  '\uE000private',
  'a-c',
  'a/b',
  'a0',
  '../escape',
  '../../../../tmp/sluice-escaped',
  './dot',
  'x/./y',
  'x/../y',
  'p/..',
  'p/.',
  'p/...',
  '//double//slash',
  '/leading',
  'trailing/',
  '%.tmp.1234',
  '%.meta.plain',
  '.hidden',
  'L'.repeat(300),
  'M'.repeat(1024),
  '%'.repeat(1024),
  'é'.repeat(512),
  // Long segments cut at different places, with a short sibling between them in key order.
  'x'.repeat(237) + '%zz',
  'x'.repeat(237) + 'a',
  'x'.repeat(237) + 'éé',
];

/** Every page of a listing; `method` is "list" or "listVersions". */
async function listAll(store, prefix = '', opts = {}, method = 'list') {
  const pages = [];
  for await (const page of store[method](prefix, opts)) pages.push(page);
  return pages;
}

async function keys(store, prefix = '', opts = {}, method = 'list') {
  return (await listAll(store, prefix, opts, method)).flat().map((i) => i.key);
}

const versionKeys = (store, prefix = '', opts = {}) => keys(store, prefix, opts, 'listVersions');

/** A version id of S3's form that no store holds. */
const UNKNOWN_VERSION = '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY';

async function rejectsWith(promise, Class, pattern) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.constructor.name}: ${err && err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/**
 * `gaps` names what a store's test server is known to get wrong, as a reason: those tests run,
 * and are reported, as to-do rather than failures. Known: `versionsAfterAbsentKey`.
 */
function storeContract(name, makeStore, gaps = {}) {
  describe(`object store contract: ${name}`, () => {
    it('put, head, get and list agree on size, etag and sha256', async () => {
      const { store } = await makeStore();
      const data = crypto.randomBytes(100000);
      const put = await store.put('dir/obj', data, { metadata: { owner: 'me' } });
      assert.strictEqual(put.sha256, sha256(data));
      // ETags are opaque (S3: an MD5 or a multipart form): quoted, and the same for the same
      // content in one store, is all the contract says.
      assert.match(put.etag, /^"[^"]+"$/);
      assert.strictEqual((await store.put('dir/same', Buffer.from(data))).etag, put.etag);
      await store.delete(['dir/same']);
      const head = await store.head('dir/obj');
      assert.strictEqual(head.key, 'dir/obj');
      assert.strictEqual(head.size, data.length);
      assert.strictEqual(head.etag, put.etag);
      assert.ok(head.mtime instanceof Date && !Number.isNaN(head.mtime.getTime()));
      assert.deepStrictEqual(head.metadata, { owner: 'me' });
      const got = await store.get('dir/obj');
      assert.ok(got.data.equals(data));
      assert.strictEqual(got.info.size, data.length);
      const [listed] = (await listAll(store)).flat();
      assert.strictEqual(listed.key, 'dir/obj');
      assert.strictEqual(listed.size, data.length);
      assert.strictEqual(listed.etag, put.etag);
    });

    it('puts with batch are stored and readable at once; flush() then makes them durable', async () => {
      const { store } = await makeStore();
      const puts = await Promise.all(['b/1', 'b/2', 'c/d/3'].map((key) => store.put(key, Buffer.from(key), { batch: true })));
      assert.deepStrictEqual(puts.map((p) => p.sha256), ['b/1', 'b/2', 'c/d/3'].map((key) => sha256(Buffer.from(key))));
      assert.deepStrictEqual(await keys(store), ['b/1', 'b/2', 'c/d/3']);
      assert.strictEqual((await store.get('c/d/3')).data.toString(), 'c/d/3');
      await store.flush();
      await store.flush(); // nothing left to flush is no error
    });

    it('a put replaces the object whole', async () => {
      const { store } = await makeStore();
      await store.put('k', Buffer.from('first version, longer'));
      await store.put('k', Buffer.from('second'));
      assert.strictEqual((await store.get('k')).data.toString(), 'second');
      assert.strictEqual((await store.head('k')).size, 6);
      assert.deepStrictEqual(await keys(store), ['k']);
    });

    it('a missing object is a NotFoundError naming the key', async () => {
      const { store } = await makeStore();
      await store.put('there', Buffer.from('x'));
      for (const op of [() => store.get('not/there'), () => store.head('not/there'), () => store.get('there/below')]) {
        await rejectsWith(op(), NotFoundError, /not\/there|there\/below/);
      }
      await assert.rejects(store.get('nope'), (err) => err.kind === 'not-found');
    });

    it('ranged gets return the bytes asked for, clipped to the object', async () => {
      const { store } = await makeStore();
      const data = Buffer.from('0123456789');
      await store.put('r', data);
      const range = async (start, end) => (await store.get('r', { range: { start, end } })).data.toString();
      assert.strictEqual(await range(0, 4), '0123');
      assert.strictEqual(await range(3, 5), '34');
      assert.strictEqual(await range(7), '789');
      assert.strictEqual(await range(8, 100), '89');
      assert.strictEqual(await range(10), '');
      assert.strictEqual(await range(25, 30), '');
    });

    it('empty objects are stored, listed and read', async () => {
      const { store } = await makeStore();
      const put = await store.put('empty', Buffer.alloc(0));
      assert.strictEqual(put.sha256, sha256(Buffer.alloc(0)));
      assert.strictEqual((await store.get('empty')).data.length, 0);
      const [info] = (await listAll(store)).flat();
      assert.strictEqual(info.size, 0);
    });

    it('objects larger than one part round-trip, whole and in ranges across parts', async () => {
      const { store, partSize = 5 << 20 } = await makeStore();
      const data = crypto.randomBytes(2 * partSize + 4321);
      const put = await store.put('big/object', data, { metadata: { kind: 'big' } });
      assert.strictEqual(put.sha256, sha256(data));
      const got = await store.get('big/object');
      assert.ok(got.data.equals(data), 'the data read back differs');
      assert.strictEqual(got.info.size, data.length);
      assert.strictEqual(got.info.sha256, put.sha256);
      assert.deepStrictEqual((await store.head('big/object')).metadata, { kind: 'big' });
      for (const [start, end] of [[partSize - 7, partSize + 9], [2 * partSize - 1, undefined], [0, partSize + 1]]) {
        const { data: part } = await store.get('big/object', { range: { start, end } });
        assert.ok(part.equals(data.subarray(start, end)), `range ${start}-${end}`);
      }
      const [listed] = (await listAll(store, 'big/')).flat();
      assert.strictEqual(listed.size, data.length);
      assert.strictEqual(listed.etag, put.etag);
    });

    it('keys with spaces, unicode, +, %, .., ., // and up to 1024 bytes round-trip, and stay inside the store', async () => {
      const { store, outside } = await makeStore();
      for (const [i, key] of EDGE_KEYS.entries()) await store.put(key, Buffer.from(`object ${i}`));
      for (const [i, key] of EDGE_KEYS.entries()) {
        assert.strictEqual((await store.get(key)).data.toString(), `object ${i}`, JSON.stringify(key));
      }
      assert.deepStrictEqual(await keys(store), [...EDGE_KEYS].sort(byteOrder));
      if (outside) assert.deepStrictEqual(outside(), [], 'files made outside the store');
    });

    it('invalid keys are refused with an error naming the problem, and store nothing', async () => {
      const { store, outside } = await makeStore();
      const bad = ['', 'K'.repeat(1025), 'é'.repeat(513), 'lone\uD800surrogate'];
      for (const key of bad) {
        await rejectsWith(store.put(key, Buffer.from('x')), StoreError, /empty|bytes long|not valid Unicode/);
      }
      assert.deepStrictEqual(await keys(store), []);
      if (outside) assert.deepStrictEqual(outside(), []);
    });

    it('lists in UTF-8 byte order across pages', async () => {
      const { store } = await makeStore();
      const names = ['b', 'a-c', 'a/b', 'a/c/d', 'a0', 'A', '~', 'é', '\u{1F600}', '\uFFFD', 'a/b0', 'a/b-', 'z/y/x/w'];
      for (let i = 0; i < 12; i++) names.push(`n/${String(i).padStart(2, '0')}`);
      for (const key of [...names].reverse()) await store.put(key, Buffer.from(key));
      const pages = await listAll(store, '', { pageSize: 4 });
      assert.ok(pages.length >= Math.ceil(names.length / 4), `${pages.length} pages`);
      for (const page of pages) assert.ok(page.length >= 1 && page.length <= 4, `page of ${page.length}`);
      assert.deepStrictEqual(pages.flat().map((i) => i.key), [...names].sort(byteOrder));
    });

    it('lists under a prefix and after a key, as S3 does', async () => {
      const { store } = await makeStore();
      for (const key of ['a-', 'ab/c', 'a/b', 'a/c', 'a/c0/d', 'a/cd', 'b/a', 'b/b']) await store.put(key, Buffer.from(key));
      const all = await keys(store);
      assert.strictEqual(all.length, 8);
      const expect = (prefix, startAfter) => all.filter((k) => k.startsWith(prefix) && (startAfter === undefined || byteOrder(k, startAfter) > 0));
      for (const [prefix, startAfter] of [['a/', undefined], ['a', undefined], ['a/c', undefined], ['b', 'b/a'], ['', 'a/b'], ['', 'a/bz'], ['', 'zzz'], ['a/', 'a'], ['nothing/', undefined]]) {
        assert.deepStrictEqual(await keys(store, prefix, { startAfter, pageSize: 2 }), expect(prefix, startAfter), `prefix ${prefix} after ${startAfter}`);
      }
    });

    it('deletes, and ignores keys that are not there', async () => {
      const { store } = await makeStore();
      for (const key of ['d/1', 'd/2', 'd/sub/3', 'e']) await store.put(key, Buffer.from(key));
      await store.delete(['d/1', 'd/sub/3', 'never/was', 'd']);
      assert.deepStrictEqual(await keys(store), ['d/2', 'e']);
      await rejectsWith(store.get('d/1'), NotFoundError);
      await store.delete(['d/2', 'e']);
      assert.deepStrictEqual(await keys(store), []);
      await store.put('d/sub/3', Buffer.from('again'));
      assert.deepStrictEqual(await keys(store), ['d/sub/3']);
    });

    it('an object put without a storage class is readable: restore asks for nothing; a missing one is not found', async () => {
      const { store } = await makeStore();
      await store.put('warm', Buffer.from('warm'));
      assert.strictEqual(await store.restoreState('warm'), 'readable');
      assert.strictEqual(await store.restore('warm', { days: 1, tier: 'Standard' }), 'readable');
      assert.strictEqual((await store.get('warm')).data.toString(), 'warm');
      await rejectsWith(store.restoreState('absent'), NotFoundError);
      await rejectsWith(store.restore('absent', { days: 1, tier: 'Standard' }), NotFoundError);
    });

    it('a put whose data does not match the given sha256 stores nothing and keeps the old object', async () => {
      const { store } = await makeStore();
      await store.put('old', Buffer.from('old data'));
      const wrong = sha256(Buffer.from('something else'));
      await rejectsWith(store.put('old', Buffer.from('new data'), { sha256: wrong }), IntegrityError, /old/);
      await rejectsWith(store.put('new', Buffer.from('new data'), { sha256: wrong }), IntegrityError, /new/);
      assert.strictEqual((await store.get('old')).data.toString(), 'old data');
      assert.deepStrictEqual(await keys(store), ['old']);
      const ok = await store.put('new', Buffer.from('new data'), { sha256: sha256(Buffer.from('new data')) });
      assert.strictEqual(ok.sha256, sha256(Buffer.from('new data')));
    });

    it('a listing during puts shows only whole objects, never a write in progress', async () => {
      const { store } = await makeStore();
      const size = 1 << 20;
      const data = (i) => Buffer.alloc(size, i);
      const writes = [];
      for (let i = 0; i < 24; i++) writes.push(store.put(`w/${String(i).padStart(2, '0')}`, data(i)));
      const seen = new Set();
      let done = false;
      Promise.all(writes).then(() => (done = true), () => (done = true));
      while (!done) {
        for (const info of (await listAll(store)).flat()) {
          assert.match(info.key, /^w\/\d\d$/);
          assert.strictEqual(info.size, size, `${info.key} listed at ${info.size} bytes`);
          seen.add(info.key);
        }
      }
      await Promise.all(writes);
      assert.strictEqual((await keys(store)).length, 24);
      for (let i = 0; i < 24; i += 7) assert.ok((await store.get(`w/${String(i).padStart(2, '0')}`)).data.equals(data(i)));
    });

    it('concurrent puts of one key leave one of them, whole', async () => {
      const { store } = await makeStore();
      const versions = [1, 2, 3, 4, 5].map((i) => Buffer.alloc(300000 + i, i));
      await Promise.all(versions.map((v) => store.put('same', v)));
      const got = await store.get('same');
      assert.ok(versions.some((v) => v.equals(got.data)));
      assert.strictEqual((await store.head('same')).size, got.data.length);
    });

    // What every store lists the same way: a directory, and a bucket that never had versioning.
    // Several versions of a key and delete markers are S3's alone (test/s3-versions.test.js).
    it('listVersions lists each object once, as version "null" and latest, with what list() gives, in key order across pages', async () => {
      const { store } = await makeStore();
      const names = ['b', 'a-c', 'a/b', 'a/c/d', 'a0', 'A', '~', 'é', '\u{1F600}', 'a/b0', 'a/b-', 'z/y/x/w', 'gone'];
      for (let i = 0; i < 6; i++) names.push(`n/${i}`);
      for (const key of [...names].reverse()) await store.put(key, Buffer.from(key));
      await store.put('b', Buffer.from('b, replaced'));
      await store.delete(['gone']);
      const current = names.filter((k) => k !== 'gone').sort(byteOrder);
      const listed = (await listAll(store)).flat();
      const pages = await listAll(store, '', { pageSize: 4 }, 'listVersions');
      assert.ok(pages.length >= Math.ceil(current.length / 4), `${pages.length} pages`);
      for (const page of pages) assert.ok(page.length >= 1 && page.length <= 4, `page of ${page.length}`);
      const versions = pages.flat();
      assert.deepStrictEqual(versions.map((v) => v.key), current);
      for (const [i, v] of versions.entries()) {
        assert.strictEqual(v.versionId, 'null', v.key);
        assert.strictEqual(v.latest, true, v.key);
        assert.ok(v.deleteMarker !== true, v.key);
        assert.ok(v.mtime instanceof Date && !Number.isNaN(v.mtime.getTime()), v.key);
        assert.deepStrictEqual([v.size, v.etag], [listed[i].size, listed[i].etag], v.key);
      }
      assert.strictEqual(versions.find((v) => v.key === 'b').size, 'b, replaced'.length);
    });

    const prefixedVersions = async (cases) => {
      const { store } = await makeStore();
      for (const key of ['a-', 'ab/c', 'a/b', 'a/c', 'a/c0/d', 'a/cd', 'b/a', 'b/b']) await store.put(key, Buffer.from(key));
      for (const [prefix, startAfter] of cases) {
        const opts = { startAfter, pageSize: 2 };
        assert.deepStrictEqual(await versionKeys(store, prefix, opts), await keys(store, prefix, opts), `prefix ${prefix} after ${startAfter}`);
      }
      return store;
    };

    it('listVersions under a prefix and after a stored key gives the keys list() gives', async () => {
      const store = await prefixedVersions([['a/', undefined], ['a', undefined], ['a/c', undefined], ['b', 'b/a'], ['', 'a/b'], ['', 'b/b'], ['a/', 'a-'], ['nothing/', undefined]]);
      await assert.rejects(versionKeys(store, '', { pageSize: 0 }), RangeError);
      await assert.rejects(versionKeys(store, '', { pageSize: 1001 }), RangeError);
    });

    it('listVersions after a key that is not stored gives the keys list() gives', { todo: gaps.versionsAfterAbsentKey }, async () => {
      await prefixedVersions([['', 'a/bz'], ['', 'a/c/'], ['b', 'a'], ['', 'zzz'], ['a/', 'a']]);
    });

    it('get() of version "null" reads the object, whole and in ranges; any other version is a NotFoundError naming key and version', async () => {
      const { store, partSize = 5 << 20 } = await makeStore();
      const data = crypto.randomBytes(partSize + 1000);
      await store.put('v/obj', data);
      await store.put('v/small', Buffer.from('0123456789'));
      const whole = await store.get('v/obj', { versionId: 'null' });
      assert.ok(whole.data.equals(data), 'version "null" read whole');
      assert.strictEqual(whole.info.size, data.length);
      const { data: range } = await store.get('v/obj', { versionId: 'null', range: { start: partSize - 5, end: partSize + 5 } });
      assert.ok(range.equals(data.subarray(partSize - 5, partSize + 5)), 'version "null" read in a range');
      assert.strictEqual((await store.get('v/small', { versionId: 'null' })).data.toString(), '0123456789');
      for (const opts of [{ versionId: UNKNOWN_VERSION }, { versionId: UNKNOWN_VERSION, range: { start: 0, end: 4 } }]) {
        await rejectsWith(store.get('v/small', opts), NotFoundError, new RegExp(`^(?=.*"v/small")(?=.*${UNKNOWN_VERSION.replace(/\+/g, '\\+')})`));
      }
      await rejectsWith(store.get('v/absent', { versionId: 'null' }), NotFoundError, /"v\/absent"/);
    });

    it('listVersions and get() of version "null" keep keys with spaces, unicode, +, %, .., // and up to 1024 bytes exactly', async () => {
      const { store } = await makeStore();
      for (const [i, key] of EDGE_KEYS.entries()) await store.put(key, Buffer.from(`object ${i}`));
      const sorted = [...EDGE_KEYS].sort(byteOrder);
      // Pages of 7 put odd keys at page ends, where S3 continues after them.
      assert.deepStrictEqual(await versionKeys(store, '', { pageSize: 7 }), sorted);
      for (const startAfter of ['with space', '%', '%+', 'plus+sign', 'ünïcödé/файл/文件', 'x'.repeat(237) + 'a', 'M'.repeat(1024)]) {
        assert.deepStrictEqual(await versionKeys(store, '', { startAfter, pageSize: 3 }), sorted.filter((k) => byteOrder(k, startAfter) > 0), `after ${JSON.stringify(startAfter)}`);
      }
      for (const prefix of ['%', 'p/', 'x/.', 'ü', '/']) {
        assert.deepStrictEqual(await versionKeys(store, prefix), sorted.filter((k) => k.startsWith(prefix)), `prefix ${JSON.stringify(prefix)}`);
      }
      for (const [i, key] of EDGE_KEYS.entries()) {
        assert.strictEqual((await store.get(key, { versionId: 'null' })).data.toString(), `object ${i}`, JSON.stringify(key));
      }
    });
  });
}

module.exports = { storeContract, EDGE_KEYS, byteOrder };
