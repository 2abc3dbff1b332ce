'use strict';
// The HTTP/1.1 client that reads replies straight into their buffers (src/core/raw-http.ts),
// against a TCP server on 127.0.0.1 that writes exactly the bytes each case needs: replies
// split at every byte, chunked and unframed bodies, interim replies, kept-alive sockets the
// server closes, connections cut mid-body, silence, aborts and replies that are not HTTP.
const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const path = require('node:path');
const { RawHttpPool } = require(path.join(__dirname, '..', 'dist', 'core', 'raw-http.js'));

/** A server that answers each request (its head, parsed) with whatever `answer` writes. */
async function server(answer) {
  const state = { connections: 0, requests: [] };
  const srv = net.createServer((socket) => {
    state.connections++;
    let buffered = '';
    socket.on('data', (data) => {
      buffered += data.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        const body = buffered.slice(end + 4, end + 4 + length);
        buffered = buffered.slice(end + 4 + length);
        const [method, target] = head.split(' ');
        const request = { method, target, head, body, n: state.requests.length };
        state.requests.push(request);
        answer(socket, request);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const url = new URL(`http://127.0.0.1:${srv.address().port}`);
  state.close = () => new Promise((resolve) => {
    srv.close(resolve);
    srv.closeAllConnections?.();
  });
  state.url = url;
  return state;
}

function reply(status, headers, body = '') {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return Buffer.concat([Buffer.from(`HTTP/1.1 ${status} X\r\n${lines}\r\n`, 'latin1'), Buffer.from(body)]);
}

/** Writes `bytes` one byte per write, each after a turn of the event loop. */
async function trickle(socket, bytes) {
  for (const byte of bytes) {
    socket.write(Buffer.from([byte]));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const options = { timeoutMs: 2000 };

test('a body is read into the buffer given for it, and the socket serves the next request', async () => {
  const payload = Buffer.alloc(300_000, 7);
  payload.write('start');
  const s = await server((socket, r) => socket.write(reply(200, { 'content-length': payload.length, 'x-amz-checksum': `n${r.n}` }, payload)));
  const pool = new RawHttpPool(s.url, options);
  try {
    for (let i = 0; i < 3; i++) {
      const into = Buffer.alloc(400_000);
      let asked;
      const got = await pool.request({ method: 'GET', target: `/blocks/${i}?t=a%2Bb`, headers: { 'x-one': 'v' }, bodyBuffer: (n) => ((asked = n), into) });
      assert.strictEqual(got.status, 200);
      assert.strictEqual(asked, payload.length);
      assert.strictEqual(got.body.buffer, into.buffer, 'the body is a view of the buffer given');
      assert.ok(got.body.equals(payload));
      assert.strictEqual(got.headers['x-amz-checksum'], `n${i}`);
    }
    assert.strictEqual(s.connections, 1, 'one kept-alive connection for all three');
    assert.match(s.requests[2].head, /^GET \/blocks\/2\?t=a%2Bb HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nx-one: v$/);
  } finally {
    pool.close();
    await s.close();
  }
});

test('a reply split at every byte, after an interim 100, with repeated headers', async () => {
  const s = await server(async (socket) => {
    await trickle(socket, Buffer.concat([reply(100, {}), reply(201, { 'content-length': 5, 'x-a': '1', 'X-A': '2' }, 'hello')]));
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    const got = await pool.request({ method: 'POST', target: '/', headers: {}, body: 'ünï' });
    assert.strictEqual(got.status, 201);
    assert.strictEqual(got.body.toString(), 'hello');
    assert.strictEqual(got.headers['x-a'], '1, 2');
    assert.strictEqual(s.requests[0].body, Buffer.from('ünï').toString('latin1'), 'the body is sent as UTF-8, with its byte length');
  } finally {
    pool.close();
    await s.close();
  }
});

test('chunked bodies, whole or split at every byte, with extensions and trailers', async () => {
  const chunked = '5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\ntrailer: x\r\n\r\n';
  const s = await server(async (socket, r) => {
    const bytes = reply(r.n === 1 ? 503 : 200, { 'transfer-encoding': 'chunked' }, chunked);
    if (r.n !== 1) socket.write(bytes);
    else await trickle(socket, bytes);
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    for (const status of [200, 503]) {
      const into = Buffer.alloc(64);
      const got = await pool.request({ method: 'GET', target: '/', headers: {}, bodyBuffer: () => into });
      assert.strictEqual(got.status, status);
      assert.strictEqual(got.body.toString(), 'hello world!');
      // A 2xx body lands in the buffer given for it, an error's does not.
      assert.strictEqual(got.body.buffer === into.buffer, status === 200);
    }
    assert.strictEqual(s.connections, 1);
    // A chunked body is held to maxBody.
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {}, maxBody: 11 }), (err) => err.code === 'EPROTO' && /a body over 11 bytes/.test(err.message));
  } finally {
    pool.close();
    await s.close();
  }
});

test('a body without a length runs to the end of the connection, which is not reused', async () => {
  const s = await server((socket, r) => socket.end(reply(r.n < 2 ? 500 : 200, { connection: 'close' }, '<Error><Code>InternalError</Code></Error>')));
  const pool = new RawHttpPool(s.url, options);
  try {
    for (let i = 0; i < 2; i++) {
      const got = await pool.request({ method: 'GET', target: '/', headers: {} });
      assert.strictEqual(got.status, 500);
      assert.strictEqual(got.body.toString(), '<Error><Code>InternalError</Code></Error>');
    }
    assert.strictEqual(s.connections, 2);
    const into = Buffer.alloc(100);
    const got = await pool.request({ method: 'GET', target: '/', headers: {}, bodyBuffer: (n) => (n === 41 ? into : Buffer.alloc(0)) });
    assert.strictEqual(got.body.buffer, into.buffer, 'a 2xx body gathered to the end lands in the buffer given for it');
    assert.strictEqual(got.body.toString(), '<Error><Code>InternalError</Code></Error>');
  } finally {
    pool.close();
    await s.close();
  }
});

test('a connection cut mid-body fails as ECONNRESET; a kept socket the server closed is replaced unseen', async () => {
  const s = await server((socket, r) => {
    if (r.n === 0) socket.write(reply(200, { 'content-length': 2 }, 'ok'));
    // The second request finds its socket closed by the server before any reply.
    else if (r.n === 1) socket.destroy();
    else if (r.n === 2) socket.write(reply(200, { 'content-length': 2 }, 'ok'));
    else socket.end(reply(200, { 'content-length': 100 }, 'only part'));
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    assert.strictEqual((await pool.request({ method: 'GET', target: '/', headers: {} })).body.toString(), 'ok');
    assert.strictEqual((await pool.request({ method: 'GET', target: '/', headers: {} })).body.toString(), 'ok');
    assert.strictEqual(s.requests.length, 3, 'the request was sent again on a new socket');
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => err.code === 'ECONNRESET' && /before the reply/.test(err.message));
    assert.strictEqual(s.requests.length, 4, 'a reply begun is not sent again here');
  } finally {
    pool.close();
    await s.close();
  }
});

test('silence times out; an abort ends the request at once; a refused connection says so', async () => {
  const s = await server(() => {});
  const pool = new RawHttpPool(s.url, { timeoutMs: 200 });
  try {
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), { name: 'TimeoutError' });
    const controller = new AbortController();
    const pending = pool.request({ method: 'GET', target: '/', headers: {} }, controller.signal);
    setTimeout(() => controller.abort(new Error('stopped here')), 20);
    await assert.rejects(pending, /stopped here/);
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }, controller.signal), /stopped here/);
  } finally {
    pool.close();
    await s.close();
  }
  const gone = new RawHttpPool(s.url, options);
  await assert.rejects(gone.request({ method: 'GET', target: '/', headers: {} }), { code: 'ECONNREFUSED' });
});

test('replies that are not HTTP as expected are refused, and so is a body longer than its buffer', async () => {
  const answers = [
    'SSH-2.0-OpenSSH\r\n\r\n',
    `HTTP/1.1 200 OK\r\nx: ${'y'.repeat(20_000)}\r\n\r\n`,
    'HTTP/1.1 200 OK\r\ncontent-length: 12x\r\n\r\n',
    'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 3000000\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789',
  ];
  const s = await server((socket, r) => socket.write(answers[r.n]));
  const pool = new RawHttpPool(s.url, options);
  const refused = (err) => err.code === 'EPROTO';
  try {
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => refused(err) && /not an HTTP\/1.x reply: "SSH-2.0-OpenSSH"/.test(err.message));
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => refused(err) && /head longer than/.test(err.message));
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => refused(err) && /Content-Length of "12x"/.test(err.message));
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => refused(err) && /malformed header line/.test(err.message));
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {}, bodyBuffer: () => Buffer.alloc(4) }), (err) => refused(err) && /10 bytes, where at most 4 fit/.test(err.message));
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => refused(err) && /chunk size "zz"/.test(err.message));
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {} }), (err) => refused(err) && /3000000 bytes, over 1048576/.test(err.message));
    const refuse = new Error('not a block');
    await assert.rejects(pool.request({ method: 'GET', target: '/', headers: {}, bodyBuffer: () => { throw refuse; } }), (err) => err === refuse);
  } finally {
    pool.close();
    await s.close();
  }
});

// Bytes past a reply's end are seen when they come in the same read as its last bytes (one
// write of the server's, here); a body's last 16 KiB are read so that they can be.
test('a reply that runs past its Content-Length retires the socket; the next reply is the real one', async () => {
  const body = Buffer.alloc(9_000, 1);
  const s = await server((socket, r) => {
    if (r.n === 0) socket.write(Buffer.concat([reply(200, { 'content-length': body.length }, body), reply(200, { 'content-length': 5 }, 'EVIL!')]));
    else socket.write(reply(200, { 'content-length': 5 }, 'good!'));
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    const into = Buffer.alloc(body.length);
    assert.ok((await pool.request({ method: 'GET', target: '/', headers: {}, bodyBuffer: () => into })).body.equals(body));
    assert.strictEqual((await pool.request({ method: 'GET', target: '/', headers: {} })).body.toString(), 'good!');
    assert.strictEqual(s.connections, 2, 'the first socket was not reused');
  } finally {
    pool.close();
    await s.close();
  }
});

test('a body to the connection\'s end after a longer one on the same socket; folded and odd headers', async () => {
  const s = await server((socket, r) => {
    if (r.n === 0) socket.write(reply(200, { 'content-length': 900_000, constructor: 'x', 'x-folded': 'one' }, Buffer.alloc(900_000)).toString('latin1').replace('x-folded: one\r\n', 'x-folded: one\r\n  two\r\n'), 'latin1');
    else socket.end(reply(200, { connection: 'Keep-Alive, close' }, Buffer.alloc(200_000, 2)));
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    const first = await pool.request({ method: 'GET', target: '/', headers: {}, bodyBuffer: (n) => Buffer.alloc(n) });
    assert.strictEqual(first.headers.constructor, 'x');
    assert.strictEqual(first.headers['x-folded'], 'one two');
    const second = await pool.request({ method: 'GET', target: '/', headers: {} });
    assert.strictEqual(second.body.length, 200_000, 'counted from zero, within the 1 MiB limit');
    assert.strictEqual(s.connections, 1);
  } finally {
    pool.close();
    await s.close();
  }
});

test('an error reply is never refused for its length: its first 1 MiB is kept, whatever maxBody says', async () => {
  const xml = '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
  const big = 'x'.repeat(1_200_000);
  const answers = [
    (socket) => socket.write(reply(503, { 'transfer-encoding': 'chunked' }, `${xml.length.toString(16)}\r\n${xml}\r\n0\r\n\r\n`)),
    (socket) => socket.end(reply(416, { connection: 'close' }, xml)),
    (socket) => socket.write(reply(500, { 'transfer-encoding': 'chunked' }, `${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`)),
    (socket) => socket.end(reply(500, { connection: 'close' }, big)),
  ];
  const s = await server((socket, r) => answers[r.n](socket));
  const pool = new RawHttpPool(s.url, options);
  try {
    for (const status of [503, 416]) {
      const got = await pool.request({ method: 'GET', target: '/', headers: {}, maxBody: 10 });
      assert.deepStrictEqual([got.status, got.body.toString()], [status, xml]);
    }
    for (let i = 0; i < 2; i++) {
      const got = await pool.request({ method: 'GET', target: '/', headers: {}, maxBody: 10 });
      assert.deepStrictEqual([got.status, got.body.length], [500, 1 << 20]);
    }
  } finally {
    pool.close();
    await s.close();
  }
});

test('a pool closed while a request is under way closes that socket when it ends', async () => {
  let release;
  const closed = [];
  const s = await server((socket) => {
    socket.on('close', () => closed.push(true));
    release = () => socket.write(reply(200, { 'content-length': 2 }, 'ok'));
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    const pending = pool.request({ method: 'GET', target: '/', headers: {} });
    while (!release) await new Promise((r) => setTimeout(r, 5));
    pool.close();
    release();
    assert.strictEqual((await pending).body.toString(), 'ok');
    for (let i = 0; i < 100 && !closed.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.strictEqual(closed.length, 1, 'the server saw the socket close');
  } finally {
    await s.close();
  }
});

/**
 * A reader of segments of `size` bytes with `buffers` buffers of its own, each handed out again
 * once the segment in it was "used" (copied out, after `delay` ms): the segments, in order.
 */
function segmentReader(size, buffers, length, delay = 0) {
  const free = Array.from({ length: buffers }, () => Buffer.alloc(size + 5, 0xee));
  const waiters = [];
  const parts = [];
  let paused = 0;
  return {
    parts,
    paused: () => paused,
    segments: {
      size,
      length,
      next() {
        if (free.length) return free.pop();
        paused++;
        return new Promise((resolve) => waiters.push(resolve));
      },
      filled(segment) {
        parts.push(Buffer.from(segment));
        const buffer = Buffer.from(segment.buffer, segment.byteOffset, size + 5);
        setTimeout(() => (waiters.length ? waiters.shift()(buffer) : free.push(buffer)), delay);
      },
    },
  };
}

test('a body read in segments: every segment whole and in order, through two buffers, the socket kept for the next request', async () => {
  const body = require('node:crypto').randomBytes(1_000_000);
  const s = await server((socket) => socket.write(reply(200, { 'content-length': body.length }, body)));
  const pool = new RawHttpPool(s.url, options);
  try {
    for (const delay of [0, 5]) {
      const reader = segmentReader(65536 * 2, 2, body.length, delay);
      const got = await pool.request({ method: 'GET', target: '/o', headers: {}, bodySegments: reader.segments });
      assert.strictEqual(got.status, 200);
      assert.strictEqual(got.body.length, 0, 'the body went to the segments');
      assert.deepStrictEqual(reader.parts.map((p) => p.length), [...Array(7).fill(131072), 1_000_000 - 7 * 131072]);
      assert.ok(Buffer.concat(reader.parts).equals(body));
      if (delay) assert.ok(reader.paused() > 0, 'the socket waited for a buffer');
    }
    assert.strictEqual(s.connections, 1);
  } finally {
    pool.close();
    await s.close();
  }
});

test('segments: a reply split at every byte, a body shorter than a segment, an error reply (not segmented), bytes past the end', async () => {
  const body = Buffer.from('x'.repeat(70_000) + 'end');
  // Its last segment is 100 bytes, which come in one read with the end of the one before.
  const smallLast = require('node:crypto').randomBytes(2 * 65536 + 100);
  const s = await server(async (socket, r) => {
    if (r.target === '/trickle') return trickle(socket, reply(200, { 'content-length': body.length }, body));
    if (r.target === '/short') return socket.write(reply(200, { 'content-length': 5 }, 'hello'));
    if (r.target === '/small-last') {
      // The reads stop 1,000 bytes before the second segment's end; the rest comes at once.
      socket.write(reply(200, { 'content-length': smallLast.length }, smallLast.subarray(0, 2 * 65536 - 1000)));
      await new Promise((resolve) => setTimeout(resolve, 20));
      return socket.write(smallLast.subarray(2 * 65536 - 1000));
    }
    if (r.target === '/extra') return socket.write(reply(200, { 'content-length': 5 }, 'hello, and more'));
    socket.write(reply(404, { 'content-length': 9 }, 'not found'));
  });
  const pool = new RawHttpPool(s.url, options);
  try {
    let reader = segmentReader(65536, 2, body.length);
    await pool.request({ method: 'GET', target: '/trickle', headers: {}, bodySegments: reader.segments });
    assert.deepStrictEqual(reader.parts.map((p) => p.length), [65536, body.length - 65536]);
    assert.ok(Buffer.concat(reader.parts).equals(body));
    reader = segmentReader(65536, 1, 5);
    await pool.request({ method: 'GET', target: '/short', headers: {}, bodySegments: reader.segments });
    assert.deepStrictEqual(reader.parts.map(String), ['hello']);
    for (let i = 0; i < 3; i++) {
      reader = segmentReader(65536, 3, smallLast.length);
      await pool.request({ method: 'GET', target: '/small-last', headers: {}, bodySegments: reader.segments });
      assert.ok(Buffer.concat(reader.parts).equals(smallLast), 'a short last segment read with the end of the one before');
    }
    reader = segmentReader(65536, 1, 5);
    const missing = await pool.request({ method: 'GET', target: '/nope', headers: {}, bodySegments: reader.segments });
    assert.strictEqual(missing.status, 404);
    assert.strictEqual(String(missing.body), 'not found', 'an error body comes whole, as always');
    assert.strictEqual(reader.parts.length, 0);
    const before = s.connections;
    reader = segmentReader(65536, 1, 5);
    await pool.request({ method: 'GET', target: '/extra', headers: {}, bodySegments: reader.segments });
    assert.deepStrictEqual(reader.parts.map(String), ['hello']);
    await pool.request({ method: 'GET', target: '/short', headers: {}, bodySegments: segmentReader(65536, 1, 5).segments });
    await assert.rejects(pool.request({ method: 'GET', target: '/short', headers: {}, bodySegments: segmentReader(65536, 1, 6).segments }), (err) => err.code === 'EPROTO' && /a body of 5 bytes, where 6 were asked for/.test(err.message));
    assert.strictEqual(s.connections, before + 1, 'a socket that sent bytes past a body is not used again');
  } finally {
    pool.close();
    await s.close();
  }
});

test('segments: a connection cut mid-body fails after the whole segments; a reader that fails fails the request; no timeout while the reader holds the socket', async () => {
  const body = Buffer.alloc(300_000, 3);
  const s = await server((socket, r) => {
    if (r.target === '/cut') {
      socket.write(reply(200, { 'content-length': body.length }, body.subarray(0, 200_000)));
      return setTimeout(() => socket.destroy(), 20);
    }
    socket.write(reply(200, { 'content-length': body.length }, body));
  });
  const pool = new RawHttpPool(s.url, { timeoutMs: 200 });
  try {
    let reader = segmentReader(65536, 8, body.length);
    await assert.rejects(pool.request({ method: 'GET', target: '/cut', headers: {}, bodySegments: reader.segments }), (err) => err.code === 'ECONNRESET');
    assert.deepStrictEqual(reader.parts.map((p) => p.length), [65536, 65536, 65536], 'the whole segments before the cut, no partial one');
    const failing = { size: 65536, length: body.length, next: () => Promise.reject(new Error('disk full')), filled() {} };
    await assert.rejects(pool.request({ method: 'GET', target: '/ok', headers: {}, bodySegments: failing }), /disk full/);
    // Each buffer comes back 300 ms after its segment: longer than the timeout, which must not
    // count while the socket waits for the reader.
    reader = segmentReader(65536, 1, body.length, 300);
    await pool.request({ method: 'GET', target: '/ok', headers: {}, bodySegments: reader.segments });
    assert.ok(Buffer.concat(reader.parts).equals(body));
  } finally {
    pool.close();
    await s.close();
  }
});
