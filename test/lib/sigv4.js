'use strict';
// Pieces of a SigV4 verifier written from the specification, shared by the tests that check
// what sluice signs (ebs-get's own GetSnapshotBlock path, s3-put's declared payload hash).
const crypto = require('node:crypto');

const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
/** URI-encodes as SigV4 does: everything but A-Z a-z 0-9 - _ . ~ */
const escape = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The canonical query string of a raw query, its names and values decoded by `decode`. */
function canonicalQuery(rawQuery, decode) {
  return rawQuery
    .split('&')
    .filter(Boolean)
    .map((p) => p.split('=').map((x) => escape(decode(x))))
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v ?? ''}`)
    .join('&');
}

/** The expected signature for a canonical request, in a scope of day, region and service. */
function expectedSignature({ secret, day, region, service, amzDate, canonical }) {
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${day}/${region}/${service}/aws4_request`, sha256hex(canonical)].join('\n');
  const signingKey = [service, 'aws4_request'].reduce(hmac, hmac(hmac(`AWS4${secret}`, day), region));
  return hmac(signingKey, toSign).toString('hex');
}

module.exports = { sha256hex, hmac, escape, canonicalQuery, expectedSignature };
