'use strict';
// The stream codec in-process: any chunking decodes to the same records, limits hold at their
// exact boundary, every error names its line, and the encoder's output decodes back to its input.
const test = require('node:test');
const assert = require('node:assert');
const { initDigest, LineDigest } = require('../dist/core/digest.js');
const { Decoder, decode } = require('../dist/core/decode.js');
const { Encoder } = require('../dist/core/encode.js');
const { PAYLOAD, LINE, SOURCE } = require('../dist/core/records.js');
const { LineScanner } = require('../dist/core/line-scan.js');
const { IncompleteInputError, InvalidInputError } = require('../dist/core/errors.js');

const OPTS = { command: 'codec-test', source: 'stdin' };


/** A deterministic pseudo-random generator (xorshift32), so a failure can be replayed. */
function random(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

function randomBytes(n, seed) {
  const next = random(seed);
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = Math.floor(next() * 256);
  return buf;
}

/**
 * A stream written by hand from the format's rules, independent of the Encoder: each part is a
 * line (string or Buffer, without its newline) or a payload (`{ payload }`). The trailer counts
 * the lines and payloads given and digests the lines' bytes.
 */
function stream(parts, { trailer = true, patch = {} } = {}) {
  const digest = new LineDigest();
  const out = [];
  let records = 0;
  let bytes = 0;
  for (const part of parts) {
    if (part.payload) {
      out.push(part.payload);
      bytes += part.payload.length;
      continue;
    }
    const line = Buffer.concat([Buffer.from(part), Buffer.from('\n')]);
    digest.update(line);
    out.push(line);
    records++;
  }
  if (trailer) {
    const end = { type: 'end', format: 1, records, bytes, digest: digest.hex(), ...patch };
    out.push(Buffer.from(JSON.stringify(end) + '\n'));
  }
  return Buffer.concat(out);
}

/** Decodes the chunks with one Decoder; returns its records and the decoder, or throws. */
function decodeChunks(chunks, opts = {}) {
  const decoder = new Decoder({ ...OPTS, ...opts });
  const records = [];
  for (const chunk of chunks) decoder.push(chunk, records);
  decoder.finish();
  return { records, decoder };
}

/** What a decoded record is, for comparisons: fields, line and payload. */
function summary(rec) {
  return { json: JSON.stringify(rec), line: rec[LINE], payload: rec[PAYLOAD] ? rec[PAYLOAD].toString('hex') : null };
}

function splitAt(buf, positions) {
  const chunks = [];
  let from = 0;
  for (const p of positions) {
    chunks.push(buf.subarray(from, p));
    from = p;
  }
  chunks.push(buf.subarray(from));
  return chunks;
}

function randomChunks(buf, seed, maxChunk) {
  const next = random(seed);
  const chunks = [];
  for (let pos = 0; pos < buf.length; ) {
    const n = 1 + Math.floor(next() * maxChunk);
    chunks.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return chunks;
}

/** Asserts that `fn` throws a `cls` whose message is `codec-test: stdin:LINE: ...` matching `what`. */
function throwsAt(fn, cls, line, what) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err && err.constructor.name}: ${err && err.message}`);
    assert.strictEqual(err.message.split('\n').length, 1, `one line: ${err.message}`);
    const prefix = `codec-test: stdin:${line}: `;
    assert.ok(err.message.startsWith(prefix), `expected "${prefix}...", got: ${err.message}`);
    assert.match(err.message.slice(prefix.length), what);
    return true;
  });
}

// A stream with every awkward thing in it: payloads of many sizes holding newlines and the bytes
// of a "len" key, a zero-length len, a "len" in a string, an escaped "len" key, text that is not
// ASCII and bytes that are not UTF-8 before payloads, a nested list of objects.
const MIXED_PARTS = [
  '{"type":"volume","format":1,"source":"disk","size":3145728,"blockSize":524288,"blocks":6}',
  '{"type":"block","index":0,"sha256":"a","len":1}',
  { payload: Buffer.from('\n') },
  '{"type":"block","index":1,"sha256":"B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=","zero":true}',
  '{"type":"block","index":2,"sha256":"b","len":37}',
  { payload: Buffer.from('line\n{"type":"end","len":5}\n"len"\n\n\nx') },
  '{"type":"block","index":3,"len":0}',
  '{"type":"object","key":"notes/len\\"s.txt","note":"has \\"len\\": 3 in it"}',
  '{"type":"object","key":"clé/ünï/日本.txt","size":5,"len":5}',
  { payload: Buffer.from('été') },
  Buffer.concat([Buffer.from('{"type":"object","key":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('","size":0}')]),
  '{"type":"object","key":"escaped","l\\u0065n":6}',
  { payload: Buffer.from('ab\ncd\n') },
  '{"type":"block","index":4,"sha256":"c","len":3000}',
  { payload: randomBytes(3000, 7) },
  '{"type":"object","key":"nested","parts":[{"a":1},{"b":[{},{}]}],"text":"},{"}',
  '{"type":"future","anything":{"x":[1,2,3]}}',
  '{"type":"object","key":"ünïcödé at the end"}',
];
let MIXED;

test.before(async () => {
  await initDigest();
  MIXED = stream(MIXED_PARTS);
});

test('a stream decodes to the records, lines and payloads it holds', () => {
  const { records, decoder } = decodeChunks([MIXED]);
  assert.strictEqual(records.length, 13);
  assert.strictEqual(decoder.records, 13);
  assert.strictEqual(decoder.payloadBytes, 1 + 37 + 5 + 6 + 3000);
  assert.deepStrictEqual(
    records.map((r) => r[LINE]),
    Array.from({ length: 13 }, (_, i) => i + 1),
  );
  assert.strictEqual(records[1][PAYLOAD].toString(), '\n');
  assert.strictEqual(records[3][PAYLOAD].toString(), 'line\n{"type":"end","len":5}\n"len"\n\n\nx');
  assert.strictEqual(records[4][PAYLOAD], undefined, 'len 0 carries no payload');
  assert.strictEqual(records[6].key, 'clé/ünï/日本.txt');
  assert.strictEqual(records[6][PAYLOAD].toString(), 'été');
  assert.strictEqual(records[7].key, '\ufffd\ufffd\ufffd');
  assert.strictEqual(records[8].len, 6, 'an escaped "len" key is still the len');
  assert.strictEqual(records[8][PAYLOAD].toString(), 'ab\ncd\n');
  assert.ok(records[9][PAYLOAD].equals(randomBytes(3000, 7)));
  assert.deepStrictEqual(records[10].parts, [{ a: 1 }, { b: [{}, {}] }]);
  assert.strictEqual(records[12].key, 'ünïcödé at the end');
  assert.strictEqual(decoder.trailer.records, 13);
});

test('any split into two chunks decodes the same', () => {
  const want = decodeChunks([MIXED]).records.map(summary);
  for (let p = 0; p <= MIXED.length; p++) {
    const got = decodeChunks(splitAt(MIXED, [p])).records.map(summary);
    assert.deepStrictEqual(got, want, `split at byte ${p}`);
  }
});

test('one byte at a time decodes the same', () => {
  const want = decodeChunks([MIXED]).records.map(summary);
  const bytes = Array.from({ length: MIXED.length }, (_, i) => MIXED.subarray(i, i + 1));
  assert.deepStrictEqual(decodeChunks(bytes).records.map(summary), want);
});

test('random chunkings decode the same, and so does a small line limit', () => {
  const want = decodeChunks([MIXED]).records.map(summary);
  for (let seed = 1; seed <= 300; seed++) {
    const chunks = randomChunks(MIXED, seed, seed % 3 === 0 ? 7 : 400);
    assert.deepStrictEqual(decodeChunks(chunks).records.map(summary), want, `seed ${seed}`);
    // The longest line of MIXED is under 120 bytes: a limit near it cuts runs of lines short.
    assert.deepStrictEqual(decodeChunks(chunks, { maxLine: 120 }).records.map(summary), want, `seed ${seed}, maxLine 120`);
  }
});

/**
 * Decodes `input` as input-reader.ts reads: the bulk of a payload straight into the buffer the
 * decoder gives (readTarget), everything else into one scratch buffer lent to push() and then
 * overwritten; each read takes 1 to `maxRead` bytes.
 */
function decodeInPlace(input, seed, maxRead, opts = {}) {
  const next = random(seed);
  const decoder = new Decoder({ ...OPTS, ...opts });
  const records = [];
  const scratch = Buffer.alloc(maxRead);
  for (let pos = 0; pos < input.length; ) {
    const target = decoder.readTarget(4);
    const into = target ?? scratch;
    const n = Math.min(1 + Math.floor(next() * maxRead), into.length, input.length - pos);
    input.copy(into, 0, pos, pos + n);
    pos += n;
    if (target) decoder.filled(n, records);
    else {
      decoder.push(scratch.subarray(0, n), records, true);
      scratch.fill(0xaa);
    }
  }
  decoder.finish();
  return { records, decoder };
}

test('read in place: payloads filled where the decoder says, the rest through a reused scratch buffer, decode the same', () => {
  const want = decodeChunks([MIXED]).records.map(summary);
  for (let seed = 1; seed <= 200; seed++) {
    const { records, decoder } = decodeInPlace(MIXED, seed, seed % 4 === 0 ? 5 : 700);
    assert.deepStrictEqual(records.map(summary), want, `seed ${seed}`);
    assert.strictEqual(decoder.payloadBytes, 1 + 37 + 5 + 6 + 3000);
  }
  // Passed-on lines keep their bytes after the scratch buffer was overwritten.
  const lines = MIXED_PARTS.filter((p) => !p.payload).map((p) => Buffer.concat([Buffer.from(p), Buffer.from('\n')]));
  for (let seed = 1; seed <= 50; seed++) {
    const { records } = decodeInPlace(MIXED, seed, 300, { passLines: true });
    const passed = records.filter((r) => r[SOURCE]);
    assert.ok(passed.length > 0);
    for (const rec of passed) assert.ok(rec[SOURCE].bytes.subarray(rec[SOURCE].start, rec[SOURCE].end).equals(lines[rec[LINE] - 1]), `seed ${seed} line ${rec[LINE]}`);
    assert.deepStrictEqual(records.map((r) => [r.type, r[LINE], r[PAYLOAD]?.toString('hex')]), decodeChunks([MIXED]).records.map((r) => [r.type, r[LINE], r[PAYLOAD]?.toString('hex')]));
  }
});

test('decode() yields the records of each chunk as one batch and checks the end', async () => {
  async function* chunks() {
    yield* splitAt(MIXED, [10, 200, 900]);
  }
  const batches = [];
  for await (const batch of decode(chunks(), OPTS)) batches.push(batch);
  assert.ok(batches.length > 1 && batches.length <= 4, `batches: ${batches.length}`);
  assert.deepStrictEqual(batches.flat().map(summary), decodeChunks([MIXED]).records.map(summary));

  async function* cut() {
    yield MIXED.subarray(0, 300);
  }
  await assert.rejects(async () => {
    for await (const batch of decode(cut(), OPTS)) void batch;
  }, IncompleteInputError);
});

test('a payload split over many chunks arrives whole', () => {
  const payload = randomBytes(200000, 3);
  const buf = stream(['{"type":"block","index":0,"len":200000}', { payload }, '{"type":"block","index":1}']);
  for (const size of [1000, 65536, 199999]) {
    const { records } = decodeChunks(randomChunks(buf, size, size));
    assert.strictEqual(records.length, 2);
    assert.ok(records[0][PAYLOAD].equals(payload), `chunks up to ${size} bytes`);
    assert.strictEqual(records[1][LINE], 2);
  }
});

test('the line limit holds at its exact boundary, in one chunk and across chunks', () => {
  const lineOf = (n) => {
    const head = '{"type":"object","key":"';
    return head + 'k'.repeat(n - head.length - 2) + '"}';
  };
  assert.strictEqual(lineOf(100).length, 100);
  const fits = stream(['{"type":"volume"}', lineOf(100), '{"type":"x"}']);
  const over = stream(['{"type":"volume"}', lineOf(101), '{"type":"x"}']);
  for (const chunking of ['whole', 'bytes', 'random']) {
    const cut = (buf) => (chunking === 'whole' ? [buf] : chunking === 'bytes' ? randomChunks(buf, 1, 1) : randomChunks(buf, 9, 60));
    assert.strictEqual(decodeChunks(cut(fits), { maxLine: 100 }).records.length, 3, chunking);
    throwsAt(() => decodeChunks(cut(over), { maxLine: 100 }), InvalidInputError, 2, /^line longer than 100 bytes$/);
  }
});

test('a line without end is refused as soon as it passes the limit, not at the end of input', () => {
  const decoder = new Decoder({ ...OPTS, maxLine: 1000 });
  const out = [];
  decoder.push(Buffer.from('{"type":"volume"}\n'), out);
  const chunk = Buffer.alloc(64, 'a');
  let fed = 0;
  assert.throws(
    () => {
      for (let i = 0; i < 100000; i++) {
        decoder.push(chunk, out);
        fed += chunk.length;
      }
    },
    (err) => err instanceof InvalidInputError && err.message === 'codec-test: stdin:2: line longer than 1000 bytes',
  );
  assert.ok(fed <= 1000, `refused only after ${fed} bytes`);
  assert.strictEqual(out.length, 1);
});

test('invalid input is refused with an error naming its line', () => {
  const valid = ['{"type":"volume","format":1}', '{"type":"block","index":0}'];
  const cases = [
    ['random bytes', Buffer.concat([randomBytes(5000, 11), Buffer.from('\n')]), 1, /^not a JSON record: "/],
    ['a JSON array', stream([...valid, '[1,2,3]']), 3, /^not a JSON object: "\[1,2,3\]"$/],
    ['a scalar', stream([...valid, '42']), 3, /^not a JSON object: "42"$/],
    ['a string', stream([...valid, '"block"']), 3, /^not a JSON object: /],
    ['null', stream([...valid, 'null']), 3, /^not a JSON object: "null"$/],
    ['an empty line', stream([...valid, '']), 3, /^not a JSON record: ""$/],
    ['half a record', stream([...valid, '{"type":"block",']), 3, /^not a JSON record: /],
    ['a record without type', stream([...valid, '{"index":1}']), 3, /^record has no "type"$/],
    ['an empty type', stream([...valid, '{"type":""}']), 3, /^record has no "type"$/],
    ['a type that is not a string', stream([...valid, '{"type":7}']), 3, /^record has no "type"$/],
    ['a fractional len', stream([...valid, '{"type":"block","len":1.5}']), 3, /^"len" must be a non-negative integer, got 1\.5$/],
    ['a negative len', stream([...valid, '{"type":"block","len":-3}']), 3, /^"len" must be a non-negative integer, got -3$/],
    ['a len that is a string', stream([...valid, '{"type":"block","len":"3"}']), 3, /^"len" must be a non-negative integer, got "3"$/],
    ['a newer format', stream(['{"type":"volume","format":2}']), 1, /^stream format 2 is newer than this reader \(1\)$/],
    ['a newer format later on', stream([...valid, '{"type":"object","key":"k","format":9}']), 3, /^stream format 9 is newer/],
    ['a record count that does not match', stream(valid, { patch: { records: 3 } }), 3, /^end record does not match the stream: it counts 3 records, the stream had 2$/],
    ['a byte count that does not match', stream(valid, { patch: { bytes: 1 } }), 3, /^end record does not match the stream: it counts 1 payload bytes, the stream had 0$/],
    ['a digest that does not match', stream(valid, { patch: { digest: '0123456789abcdef' } }), 3, /^end record does not match the stream: its digest 0123456789abcdef does not match [0-9a-f]{16}$/],
    ['a payload too large', stream(['{"type":"block","len":1000}']), 1, /^payload of 1000 bytes is larger than the limit of 999$/, { maxPayload: 999 }],
  ];
  for (const [what, buf, line, message, opts] of cases) {
    for (const chunks of [[buf], randomChunks(buf, line, 5)]) {
      assert.doesNotThrow(() => {
        throwsAt(() => decodeChunks(chunks, opts), InvalidInputError, line, message);
      }, what);
    }
  }
});

test('a changed line fails the digest, even with the counts right', () => {
  const buf = stream(['{"type":"block","index":0}', '{"type":"block","index":1}']);
  const changed = Buffer.from(buf.toString().replace('"index":1', '"index":7'));
  throwsAt(() => decodeChunks([changed]), InvalidInputError, 3, /digest/);
});

test('data after the end record is refused at the line where it starts', () => {
  const buf = stream(['{"type":"block","index":0}']);
  for (const extra of ['{"type":"block","index":1}\n', '\n', 'x']) {
    throwsAt(() => decodeChunks([Buffer.concat([buf, Buffer.from(extra)])]), InvalidInputError, 3, /^data after the end record$/);
    throwsAt(() => decodeChunks([buf, Buffer.from(extra)]), InvalidInputError, 3, /^data after the end record$/);
  }
  // A second, complete stream glued on is data after the end too.
  throwsAt(() => decodeChunks([Buffer.concat([buf, buf])]), InvalidInputError, 3, /^data after the end record$/);
});

test('input that stops before its end record is incomplete (status 3), wherever it stops', () => {
  const buf = stream(['{"type":"volume"}', '{"type":"block","index":0,"len":100}', { payload: Buffer.alloc(100, 1) }, '{"type":"block","index":1}']);
  const cases = [
    [stream(['{"type":"volume"}', '{"type":"block","index":0}'], { trailer: false }), 3, /no end record/],
    [buf.subarray(0, buf.indexOf('\n') + 1), 2, /no end record/],
    [buf.subarray(0, 5), 1, /last line has no newline/],
    [buf.subarray(0, buf.length - 3), 4, /last line has no newline/],
    [Buffer.from('{"type":"block","index":0,"len":100}\nshort'), 1, /payload ended after 5 of 100 bytes/],
    [Buffer.alloc(0), 1, /no end record/],
  ];
  for (const [input, line, what] of cases) {
    for (const chunks of [[input], randomChunks(input, 5, 3)]) {
      throwsAt(() => decodeChunks(chunks), IncompleteInputError, line, what);
    }
  }
  assert.strictEqual(new IncompleteInputError('x').exitCode, 3);
  assert.strictEqual(new InvalidInputError('x').exitCode, 4);
});

test('allowIncomplete takes the whole records of a cut stream and drops the partial rest', () => {
  const parts = ['{"type":"object","key":"a"}', '{"type":"object","key":"b","len":4}', { payload: Buffer.from('data') }, '{"type":"object","key":"c"}'];
  const whole = stream(parts, { trailer: false });
  const keys = (buf) => decodeChunks(randomChunks(buf, buf.length, 4), { allowIncomplete: true }).records.map((r) => r.key);
  assert.deepStrictEqual(keys(whole), ['a', 'b', 'c']);
  assert.deepStrictEqual(keys(whole.subarray(0, whole.length - 5)), ['a', 'b'], 'a partial last line');
  assert.deepStrictEqual(keys(whole.subarray(0, whole.indexOf('data') + 2)), ['a'], 'a partial payload');
  assert.deepStrictEqual(keys(Buffer.alloc(0)), []);
  // A trailer that is there is still checked, and garbage is still refused.
  throwsAt(() => decodeChunks([stream(parts, { patch: { records: 9 } })], { allowIncomplete: true }), InvalidInputError, 4, /it counts 9 records/);
  throwsAt(() => decodeChunks([Buffer.from('{"type":"a"}\n[]\n{"type":"b"')], { allowIncomplete: true }), InvalidInputError, 2, /not a JSON object/);
});

test('the encoder writes what the decoder reads back, with a trailer that checks out', () => {
  const payload = randomBytes(5000, 5);
  const input = [
    { type: 'volume', format: 1, source: '0012', size: 5000, blockSize: 524288, blocks: 1 },
    { type: 'block', index: 0, sha256: 'x', [PAYLOAD]: payload },
    { type: 'block', index: 1, sha256: 'y', len: 77 }, // no payload: the len goes
    { type: 'block', index: 2, len: 3, [PAYLOAD]: Buffer.from('12345') }, // the len follows the payload
    { type: 'object', key: 'clé', size: 0, [PAYLOAD]: Buffer.alloc(0) },
    { type: 'object', key: 'odd "},{" key', tags: [{ a: 1 }, { b: 2 }] },
  ];
  const expect = input.map((r) => ({ ...r }));
  const enc = new Encoder();
  for (const rec of input) enc.push(rec);
  assert.strictEqual(enc.records, 6);
  assert.strictEqual(enc.payloadBytes, 5005);
  assert.ok(enc.pending > 0);
  const first = enc.take();
  assert.strictEqual(enc.pending, 0);
  enc.end({ note: 'extra', records: -1 });
  assert.throws(() => enc.end(), /twice/);
  const buf = Buffer.concat([...first, ...enc.take()]);

  for (const chunks of [[buf], randomChunks(buf, 1, 100)]) {
    const { records, decoder } = decodeChunks(chunks);
    assert.strictEqual(records.length, 6);
    assert.strictEqual(records[0].source, '0012');
    assert.ok(records[1][PAYLOAD].equals(payload));
    assert.strictEqual(records[1].len, 5000);
    assert.ok(!('len' in records[2]), 'a len without a payload is removed');
    assert.strictEqual(records[3].len, 5);
    assert.strictEqual(records[3][PAYLOAD].toString(), '12345');
    assert.strictEqual(records[4].len, 0, 'an empty payload is len 0');
    assert.strictEqual(records[4][PAYLOAD], undefined);
    assert.deepStrictEqual(records[5].tags, [{ a: 1 }, { b: 2 }]);
    assert.strictEqual(records[5].key, 'odd "},{" key');
    const t = decoder.trailer;
    assert.strictEqual(t.type, 'end');
    assert.strictEqual(t.format, 1);
    assert.strictEqual(t.note, 'extra');
    assert.strictEqual(t.records, 6, 'the counts are the encoder\'s own');
    assert.strictEqual(t.bytes, 5005);
    assert.match(t.digest, /^[0-9a-f]{16}$/);
  }
  // Lines are the records as JSON.stringify writes them.
  assert.ok(buf.subarray(0, buf.indexOf('\n') + 1).equals(Buffer.from(JSON.stringify(expect[0]) + '\n')));
  assert.ok(buf.includes(JSON.stringify({ type: 'block', index: 1, sha256: 'y' }) + '\n'));
  assert.ok(buf.includes('\n' + JSON.stringify(expect[5]) + '\n'));
});

test('the encoder writes each record as JSON.stringify does, whatever a batch holds', () => {
  const batches = [
    [{ type: 'block', index: 0 }, { type: 'block', index: 1 }],
    [{ type: 'object', key: 'a},{b' }, { type: 'object', key: 'c' }], // the separator in a string
    [{ type: 'object', key: 'n', parts: [{ x: 1 }, { y: 2 }] }, { type: 'block', index: 2 }], // nested
    [{ type: 'object', key: 'k', when: new Date(0) }, { type: 'x', toJSON: () => ({ type: 'y', made: true }) }],
    [{ type: 'object', key: 'line\nbreak', nested: { deep: [[{}], [{}]] } }, { type: 'z', s: '\u2028}\n,{' }],
    // Not objects when serialized: the breaks between records are not "},{" then.
    [{ type: 'x', toJSON: () => 5 }, { type: 'b', parts: [{}, {}] }],
    [['not', 'a', 'record'], { type: 'b', parts: [{}, {}] }],
    Array.from({ length: 3000 }, (_, i) => ({ type: 'block', index: i, sha256: `s${i}` })),
  ];
  for (const batch of batches) {
    const want = batch.map((r) => JSON.stringify(r) + '\n').join('');
    const enc = new Encoder();
    for (const rec of batch) enc.push(rec);
    const got = Buffer.concat(enc.take()).toString();
    assert.strictEqual(got, want);
  }
});

test('records read and written again give the same bytes and trailer', () => {
  const { records } = decodeChunks([MIXED]);
  const enc = new Encoder();
  for (const rec of records) enc.push(rec);
  enc.end();
  const again = Buffer.concat(enc.take());
  const second = decodeChunks(randomChunks(again, 3, 50)).records;
  assert.deepStrictEqual(second.map((r) => JSON.stringify(r)), records.map((r) => JSON.stringify(r)));
  assert.deepStrictEqual(
    second.map((r) => r[PAYLOAD] && r[PAYLOAD].toString('hex')),
    records.map((r) => r[PAYLOAD] && r[PAYLOAD].toString('hex')),
  );
});

// Lines a stage passes on unchanged (DecodeOptions.passLines) are checked by LineScanner instead
// of JSON.parse. It may leave any line to JSON.parse, but must never vouch for a line that
// JSON.parse refuses, or give a type other than JSON.parse's.

/** What LineScanner says of a line, next to what JSON.parse does with it. */
function scanAndParse(scanner, line) {
  const buf = Buffer.isBuffer(line) ? line : Buffer.from(line);
  // Framed by other bytes, as lines are inside a chunk: the scanner must keep to [start, end).
  const framed = Buffer.concat([Buffer.from('{"x":'), buf, Buffer.from('\n"]}')]);
  const type = scanner.type(framed, 5, 5 + buf.length);
  let parsed;
  let error;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    error = err;
  }
  return { type, parsed, error };
}

/** Fails unless the scanner's answer agrees with JSON.parse (undefined always does). */
function assertScanAgrees(scanner, line) {
  const { type, parsed, error } = scanAndParse(scanner, line);
  if (type === undefined) return false;
  const shown = JSON.stringify(Buffer.isBuffer(line) ? line.toString('latin1') : line);
  assert.strictEqual(error, undefined, `the scanner took a line JSON.parse refuses: ${shown}`);
  assert.ok(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), `not an object: ${shown}`);
  assert.strictEqual(parsed.type, type, `type of ${shown}`);
  assert.ok(!Object.hasOwn(parsed, 'len') && !Object.hasOwn(parsed, 'format'), `len or format in ${shown}`);
  return true;
}

const SCANNED = [
  '{"type":"block","index":0,"sha256":"jC34/gDKOR0ioNuQYs7zuZkNvsGGpKRCDCb0oOi4/V4="}',
  '{"type":"block","index":7,"sha256":"B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=","zero":true}',
  '{"type":"object","key":"a/b c.txt","size":123,"mtime":"2024-01-02T03:04:05.000Z","etag":"\\"abc\\""}',
  '{"type":"object","key":"clé/日本","size":0,"tags":[{"a":1},{"b":[{},[],null]}],"meta":{}}',
  ' \t{ "type" : "x" , "n" : -0.5e+10 , "m" : [ 1 , 2.0 , -3E-2 , true , false , null ] } \r',
  '{"type":"x","s":"\\u00e9\\n\\t\\"\\\\\\/\\b\\f\\r","e":[]}',
  '{"type":"first","type":"second"}',
  '{"sub":{"type":7,"len":3,"format":2},"type":"t"}',
];

test('the line scanner gives the type of ordinary lines, as JSON.parse would', () => {
  const scanner = new LineScanner();
  for (const line of SCANNED) assert.ok(assertScanAgrees(scanner, line), `expected the scanner to take ${line}`);
  assert.strictEqual(scanAndParse(scanner, SCANNED[6]).type, 'second', 'the last of two keys wins, as in JSON.parse');
  // Invalid UTF-8 in a string is what JSON.parse sees as U+FFFD: valid either way.
  assert.ok(assertScanAgrees(scanner, Buffer.concat([Buffer.from('{"type":"o","k":"'), Buffer.from([0xff, 0xc3, 0x80, 0xe2]), Buffer.from('"}')])));
});

test('the line scanner leaves to JSON.parse every line it is not sure of', () => {
  const scanner = new LineScanner();
  const refused = [
    '', ' ', '{}', '[]', '[{"type":"x"}]', '"x"', '42', 'null', '{"type":"x"', '{"type":"x"}}', '{"type":"x"} x',
    '{"type":"x",}', '{"type":"x",,"a":1}', '{,"type":"x"}', '{"type" "x"}', '{"type":"x" "a":1}', '{type:"x"}',
    "{'type':'x'}", '{"type":"x","a":01}', '{"type":"x","a":1.}', '{"type":"x","a":.5}', '{"type":"x","a":+1}',
    '{"type":"x","a":-}', '{"type":"x","a":1e}', '{"type":"x","a":0x10}', '{"type":"x","a":tru}', '{"type":"x","a":nul}',
    '{"type":"x","a":True}', '{"type":"x","a":NaN}', '{"type":"x","a":[1,]}', '{"type":"x","a":[,1]}', '{"type":"x","a":{"b"}}',
    '{"type":"x","a":"\\x"}', '{"type":"x","a":"\\u12"}', '{"type":"x","a":"\\u12g4"}', '{"type":"x","a":"tab\there"}',
    '{"type":"x","a":"\u0001"}', '\u00a0{"type":"x"}', '\ufeff{"type":"x"}', '{"type":"x"}\u00a0', '{"type":"x"}\v',
    // Valid, but the decoder needs JSON.parse for these: no type, an odd type, len, format, escaped keys, deep nesting.
    '{"index":1}', '{"type":""}', '{"type":7}', '{"type":null}', '{"type":["x"]}', '{"type":"\\u0078"}', '{"type":"é"}',
    '{"type":"x","len":0}', '{"type":"volume","format":1}', '{"t\\u0079pe":"x"}', '{"type":"x","l\\u0065n":5}',
    '{"type":"x","d":' + '['.repeat(40) + ']'.repeat(40) + '}',
  ];
  for (const line of refused) {
    assert.strictEqual(scanAndParse(scanner, line).type, undefined, `expected the scanner to leave ${JSON.stringify(line)} to JSON.parse`);
  }
});

test('the line scanner never takes a line JSON.parse refuses: 200,000 mutated lines', () => {
  const scanner = new LineScanner();
  const next = random(2024);
  const pick = (n) => Math.floor(next() * n);
  // Bytes that matter to JSON's grammar, and some that must never appear outside strings.
  const alphabet = Buffer.from('{}[]",:\\ \t\r0123456789.-+eEtrufalsnbxy/\u00e9');
  const extra = [0x00, 0x0b, 0x1f, 0x7f, 0x80, 0xc3, 0xff];
  const seeds = SCANNED.map((line) => Buffer.from(line));
  let taken = 0;
  let valid = 0;
  for (let n = 0; n < 200000; n++) {
    let line = seeds[pick(seeds.length)];
    for (let edits = 1 + pick(3); edits > 0; edits--) {
      const at = pick(line.length + 1);
      const byte = next() < 0.9 ? alphabet[pick(alphabet.length)] : extra[pick(extra.length)];
      const kind = pick(4);
      if (kind === 0) line = Buffer.concat([line.subarray(0, at), Buffer.from([byte]), line.subarray(at)]);
      else if (kind === 1) line = Buffer.concat([line.subarray(0, at), line.subarray(at + 1)]);
      else if (kind === 2 && at < line.length) line = Buffer.concat([line.subarray(0, at), Buffer.from([byte]), line.subarray(at + 1)]);
      else line = Buffer.concat([line.subarray(0, at), line.subarray(pick(line.length), pick(line.length + 1)), line.subarray(at)]);
    }
    if (line.includes(0x0a)) continue;
    if (assertScanAgrees(scanner, line)) taken++;
    if (scanAndParse(scanner, line).error === undefined) valid++;
  }
  // The comparison means something only if many mutants were valid and taken.
  assert.ok(taken > 10000 && valid > taken, `taken ${taken}, valid ${valid}`);
});

// MIXED plus lines that JSON.stringify would write differently: passed on, they keep their bytes.
const ODD_LINES = [
  ' { "type" : "block" , "index" : 1.50e1 , "sha256" : "x" } ',
  '{"type":"object","key":"\\u00e9t\\u00e9","size":1e400,"big":12345678901234567890}',
  '{"type":"block","index":2,"index":3}',
];

test('passLines: lines come out as they went in, for any chunking', () => {
  const parts = [...MIXED_PARTS.slice(0, -1), ...ODD_LINES, ...MIXED_PARTS.slice(-1)];
  const input = stream(parts);
  const want = decodeChunks([input]).records.map((r) => [r.type, r[LINE]]);
  const lines = parts.filter((p) => !p.payload).map((p) => Buffer.concat([Buffer.from(p), Buffer.from('\n')]));
  const chunkings = [
    [input],
    Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1)),
    ...Array.from({ length: 60 }, (_, seed) => randomChunks(input, seed + 1, seed % 2 ? 9 : 300)),
  ];
  for (const chunks of chunkings) {
    const { records, decoder } = decodeChunks(chunks, { passLines: true });
    assert.deepStrictEqual(records.map((r) => [r.type, r[LINE]]), want);
    assert.strictEqual(decoder.payloadBytes, 1 + 37 + 5 + 6 + 3000);
    let passed = 0;
    for (const rec of records) {
      const source = rec[SOURCE];
      if (!source) continue;
      passed++;
      assert.deepStrictEqual(Object.keys(rec), ['type'], 'a passed record has its type only');
      // Checked after the whole input is read: a line that spanned chunks was copied aside.
      assert.ok(source.bytes.subarray(source.start, source.end).equals(lines[rec[LINE] - 1]), `line ${rec[LINE]}`);
    }
    // Not passed: lines with len or format, or with an escaped key.
    assert.strictEqual(passed, 9);
  }
});

test('passLines: the encoder writes passed lines byte for byte between serialized ones', () => {
  const parts = ['{"type":"volume","format":1}', ...ODD_LINES, '{"type":"block","index":9,"len":3}', { payload: Buffer.from('abc') }, ...ODD_LINES];
  const input = stream(parts);
  for (const chunks of [[input], randomChunks(input, 4, 20)]) {
    const { records } = decodeChunks(chunks, { passLines: true });
    const enc = new Encoder();
    for (const rec of records) {
      delete rec[PAYLOAD]; // what strip does
      enc.push(rec);
    }
    enc.end();
    const out = Buffer.concat(enc.take());
    // The line that lost its payload is serialized again, without its len; every other line,
    // and the trailer, are byte for byte those of a stream of the same lines.
    const expected = stream([parts[0], ...ODD_LINES, '{"type":"block","index":9}', ...ODD_LINES]);
    assert.strictEqual(out.toString('latin1'), expected.toString('latin1'));
  }
  // Consecutive lines of one chunk go out as one view of it, not a buffer per line.
  const enc = new Encoder();
  for (const rec of decodeChunks([stream(ODD_LINES)], { passLines: true }).records) enc.push(rec);
  assert.strictEqual(enc.take().length, 1);
  const withPayload = decodeChunks([stream(ODD_LINES)], { passLines: true }).records[0];
  withPayload[PAYLOAD] = Buffer.from('x');
  assert.throws(() => new Encoder().push(withPayload), /cannot take a payload/);
});

test('passLines: invalid lines get the same located errors as without it', () => {
  const valid = ['{"type":"volume","format":1}', '{"type":"block","index":0}'];
  const bad = ['[1,2,3]', '{"index":1}', '{"type":""}', '{"type":"block",}', '{"type":"block"} x', '{"type":"b","len":-1}', '{"type":"b","format":2}', '\u0000'];
  for (const line of bad) {
    const input = stream([...valid, line, ...valid]);
    let expected;
    try {
      decodeChunks([input]);
    } catch (err) {
      expected = err.message;
    }
    assert.ok(expected, `${line} is refused`);
    for (const chunks of [[input], randomChunks(input, 2, 7)]) {
      assert.throws(() => decodeChunks(chunks, { passLines: true }), (err) => err instanceof InvalidInputError && err.message === expected, line);
    }
  }
  const changed = Buffer.from(stream(valid).toString().replace('"index":0', '"index":1'));
  throwsAt(() => decodeChunks([changed], { passLines: true }), InvalidInputError, 3, /digest/);
  // A trailer without "format" is still the trailer: checked, and nothing may follow it.
  const noFormat = Buffer.from(stream(valid).toString().replace('"format":1,"records"', '"records"'));
  assert.strictEqual(decodeChunks([noFormat], { passLines: true }).decoder.trailer.records, 2);
  const miscounted = Buffer.from(noFormat.toString().replace('"records":2', '"records":5'));
  throwsAt(() => decodeChunks([miscounted], { passLines: true }), InvalidInputError, 3, /it counts 5 records/);
  throwsAt(() => decodeChunks([noFormat, Buffer.from('{"type":"block"}\n')], { passLines: true }), InvalidInputError, 4, /^data after the end record$/);
});
