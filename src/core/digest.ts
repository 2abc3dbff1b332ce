import { hash } from 'node:crypto';
import xxhash from 'xxhash-wasm';

type XXHashAPI = Awaited<ReturnType<typeof xxhash>>;
let api: XXHashAPI | undefined;

/** Compiles the xxHash module once per process; the runtime awaits it before a command runs. */
export async function initDigest(): Promise<void> {
  api ??= await xxhash();
}

/** A running xxh64 over the bytes of a stream's lines: the `digest` of the `end` trailer. */
export class LineDigest {
  private readonly state;
  constructor() {
    if (!api) throw new Error('initDigest() must run before a LineDigest is made');
    this.state = api.create64();
  }
  update(bytes: Uint8Array | string): void {
    this.state.update(bytes);
  }
  hex(): string {
    return this.state.digest().toString(16).padStart(16, '0');
  }
}

/** base64 SHA-256, the checksum form EBS uses for blocks. */
export function sha256b64(data: Uint8Array): string {
  return hash('sha256', data, 'base64');
}

export function sha256raw(data: Uint8Array): Buffer {
  return hash('sha256', data, 'buffer') as unknown as Buffer;
}
