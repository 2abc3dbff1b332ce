/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of a string. `shard` assigns objects to shards with it,
 * so its output for a given key must never change.
 */
export function fnv1a32(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i];
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
