'use strict';
// Streams of records for tests, made and read with the project's own encoder and decoder.
const { Decoder } = require('../../dist/core/decode.js');
const { Encoder } = require('../../dist/core/encode.js');
const { PAYLOAD } = require('../../dist/core/records.js');

/** A stream of the records (a `data` field becomes the payload), with its trailer unless told. */
function frames(records, { trailer = true } = {}) {
  const enc = new Encoder();
  for (const { data, ...rec } of records) enc.push(data === undefined ? rec : { ...rec, [PAYLOAD]: data });
  if (trailer) enc.end();
  return Buffer.concat(enc.take());
}

/** Records of an NDJSON stream (frames included), payloads as Buffers under PAYLOAD. */
function decodeAll(stdout) {
  const decoder = new Decoder({ command: 'test', source: 'stdout' });
  const records = [];
  decoder.push(stdout, records);
  decoder.finish();
  return records;
}

module.exports = { frames, decodeAll, PAYLOAD };
