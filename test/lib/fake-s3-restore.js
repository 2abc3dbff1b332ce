'use strict';
// A small S3 on 127.0.0.1 whose archived objects take a while to restore, which moto's do not
// (moto restores at once): just enough of HeadObject, RestoreObject and GetObject, path-style,
// for s3-restore's wait loop and s3-get. Each object is archived until a RestoreObject; then its
// next `restoringHeads` HEADs say ongoing-request="true", and after them it is readable.
const http = require('node:http');
const crypto = require('node:crypto');

const EXPIRY = 'Fri, 21 Dec 2040 00:00:00 GMT';

/**
 * Starts the server; resolves with { url, env, put(bucket, key, data, opts), object(bucket,
 * key), log, stop() }. `opts`: storageClass (default GLACIER), restoringHeads (default 2), and
 * `restoredByOthers` (RestoreObject replies 409 RestoreAlreadyInProgress, as when someone else
 * asked for it between a HEAD and the call, and the restore is under way all the same), and
 * `expiresFirstCopy` (the first restored copy is gone before any HEAD sees it: the object reads
 * as archived again, and only a second RestoreObject makes it readable).
 * `versionId` (the object is that version of its key, and the key's current object until another
 * put; requests that name a version, with ?versionId=, see only versions put with one).
 * `object(bucket, key, versionId?)` gives an object's (or version's) state: `state` ("archived", "restoring", "readable"), and the
 * count of `heads`, `restores` (RestoreObject calls) and `gets`. `log` lists every request as
 * "HEAD bucket/key", "RESTORE bucket/key", "GET bucket/key" (with "?versionId=ID" when the request
 * named a version), in arrival order. `onRequest`, when
 * set, is called after each request was answered.
 */
async function startFakeS3() {
  const objects = new Map();
  const versions = new Map();
  const fake = { log: [], onRequest: undefined };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const name = decodeURIComponent(url.pathname.slice(1));
      const version = url.searchParams.get('versionId');
      const obj = version === null ? objects.get(name) : versions.get(`${name}?versionId=${version}`);
      const op = req.method === 'POST' && url.searchParams.has('restore') ? 'RESTORE' : req.method;
      fake.log.push(`${op} ${name}${version === null ? '' : `?versionId=${version}`}`);
      if (!obj && version !== null) reply(res, 404, 'NoSuchVersion', 'The specified version does not exist.', req.method === 'HEAD');
      else if (!obj) reply(res, 404, 'NoSuchKey', 'The specified key does not exist.', req.method === 'HEAD');
      else if (op === 'HEAD') head(obj, res);
      else if (op === 'RESTORE') restore(obj, res);
      else if (op === 'GET') get(obj, res);
      else reply(res, 501, 'NotImplemented', `${req.method} is not implemented here`);
      fake.onRequest?.();
    });
  });

  function head(obj, res) {
    obj.heads++;
    if (obj.state === 'restoring') {
      if (obj.headsLeft > 0) obj.headsLeft--;
      else if (obj.expiresFirstCopy && obj.restores === 1) obj.state = 'archived';
      else obj.state = 'readable';
    }
    res.writeHead(200, headers(obj));
    res.end();
  }

  function restore(obj, res) {
    obj.restores++;
    if (obj.state === 'archived') {
      obj.state = 'restoring';
      obj.headsLeft = obj.restoringHeads;
      if (obj.restoredByOthers) return reply(res, 409, 'RestoreAlreadyInProgress', 'Object restore is already in progress');
      res.writeHead(202);
      return res.end();
    }
    if (obj.state === 'restoring') return reply(res, 409, 'RestoreAlreadyInProgress', 'Object restore is already in progress');
    res.writeHead(200);
    res.end();
  }

  function get(obj, res) {
    obj.gets++;
    if (obj.state !== 'readable') return reply(res, 403, 'InvalidObjectState', 'The operation is not valid for the object\'s storage class');
    res.writeHead(200, { ...headers(obj), 'Content-Length': obj.data.length });
    res.end(obj.data);
  }

  function headers(obj) {
    const h = {
      'Content-Length': obj.data.length,
      ETag: obj.etag,
      'Last-Modified': new Date(0).toUTCString(),
      'x-amz-storage-class': obj.storageClass,
    };
    if (obj.versionId !== undefined) h['x-amz-version-id'] = obj.versionId;
    if (obj.state === 'restoring') h['x-amz-restore'] = 'ongoing-request="true"';
    if (obj.state === 'readable' && obj.restores > 0) h['x-amz-restore'] = `ongoing-request="false", expiry-date="${EXPIRY}"`;
    return h;
  }

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return Object.assign(fake, {
    url,
    env: { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL_S3: '', AWS_ENDPOINT_URL: '', AWS_PROFILE: '' },
    put(bucket, key, data, { storageClass = 'GLACIER', restoringHeads = 2, restoredByOthers = false, expiresFirstCopy = false, versionId } = {}) {
      const etag = `"${crypto.createHash('md5').update(data).digest('hex')}"`;
      const state = storageClass === 'GLACIER' || storageClass === 'DEEP_ARCHIVE' ? 'archived' : 'readable';
      const obj = { data, etag, storageClass, restoringHeads, restoredByOthers, expiresFirstCopy, versionId, state, headsLeft: 0, heads: 0, restores: 0, gets: 0 };
      objects.set(`${bucket}/${key}`, obj);
      if (versionId !== undefined) versions.set(`${bucket}/${key}?versionId=${versionId}`, obj);
    },
    object(bucket, key, versionId) {
      return versionId === undefined ? objects.get(`${bucket}/${key}`) : versions.get(`${bucket}/${key}?versionId=${versionId}`);
    },
    stop() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  });
}

/** An S3 error reply; a HEAD's has no body, as S3's has none. */
function reply(res, status, code, message, noBody = false) {
  res.writeHead(status, { 'Content-Type': 'application/xml', 'x-amz-request-id': 'fake' });
  res.end(noBody ? undefined : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

module.exports = { startFakeS3 };
