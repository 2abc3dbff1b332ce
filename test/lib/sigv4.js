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

/** A query as servers decode forms: an unescaped "+" is a space. */
const formDecode = (s) => decodeURIComponent(s.replace(/\+/g, ' '));

/**
 * Why a request to a service other than S3 (each path segment signed URI-encoded once more than
 * it is sent) is not signed by `key` (id, secret, session token) for `region` and `service`,
 * or undefined when it is. `body` is the request's body, whose SHA-256 the signature covers.
 */
function signatureProblem(req, { key, region, service, body = '' }) {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!auth) return `no SigV4 Authorization header: ${req.headers.authorization}`;
  const [, keyId, day, scopeRegion, scopeService, signedHeaders, signature] = auth;
  if (keyId !== key.id || scopeRegion !== region || scopeService !== service) return `credential scope ${keyId}/${scopeRegion}/${scopeService}`;
  const amzDate = req.headers['x-amz-date'];
  if (!amzDate?.startsWith(day)) return `x-amz-date ${amzDate} is not of ${day}`;
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return `host and x-amz-date must be signed: ${signedHeaders}`;
  if (req.headers['x-amz-security-token'] !== key.session || !names.includes('x-amz-security-token')) return 'the session token is missing or unsigned';
  const payload = sha256hex(body);
  const declared = req.headers['x-amz-content-sha256'];
  if (declared !== undefined && declared !== payload) return `x-amz-content-sha256 ${declared} is not the body's ${payload}`;
  const [rawPath, rawQuery = ''] = req.url.split('?');
  const canonicalPath = rawPath.split('/').map(escape).join('/');
  const headers = names.map((h) => `${h}:${String(req.headers[h]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, canonicalPath, canonicalQuery(rawQuery, formDecode), headers, signedHeaders, payload].join('\n');
  const expected = expectedSignature({ secret: key.secret, day, region, service, amzDate, canonical });
  return expected === signature ? undefined : `signature ${signature}, expected ${expected} for:\n${canonical}`;
}

/**
 * Why a request is not signed for S3 by `key` (id, secret) in `region`, or undefined when it
 * is. S3 signs the path as sent (each segment encoded once), and the x-amz-content-sha256 the
 * request declares must be the SHA-256 of `body`, the body that arrived.
 */
function s3SignatureProblem(req, body, key, region) {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!auth) return `no SigV4 Authorization header: ${req.headers.authorization}`;
  const [, keyId, day, scopeRegion, service, signedHeaders, signature] = auth;
  if (keyId !== key.id || scopeRegion !== region || service !== 's3') return `credential scope ${keyId}/${scopeRegion}/${service}`;
  const payload = req.headers['x-amz-content-sha256'];
  if (payload !== sha256hex(body)) return `x-amz-content-sha256 is ${payload}, the body's SHA-256 is ${sha256hex(body)}`;
  const names = signedHeaders.split(';');
  if (!names.includes('x-amz-content-sha256') || !names.includes('host')) return `x-amz-content-sha256 and host must be signed: ${signedHeaders}`;
  const [rawPath, rawQuery = ''] = req.url.split('?');
  const headers = names.map((h) => `${h}:${String(req.headers[h]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, rawPath, canonicalQuery(rawQuery, decodeURIComponent), headers, signedHeaders, payload].join('\n');
  const expected = expectedSignature({ secret: key.secret, day, region, service: 's3', amzDate: req.headers['x-amz-date'], canonical });
  return expected === signature ? undefined : `signature ${signature}, expected ${expected} for:\n${canonical}`;
}

module.exports = { sha256hex, hmac, escape, canonicalQuery, expectedSignature, formDecode, signatureProblem, s3SignatureProblem };
