// Writing a whole buffer to a file, in slices.
import type * as fsp from 'node:fs/promises';

/**
 * The most one write call copies. The kernel copies each write into the page cache at once;
 * an 8 MiB write runs the copy from memory that left the CPU's caches long ago and makes the
 * kernel find large folios for it, and measured 1.5 to 5 times the system time of the same
 * bytes in 1 MiB writes (dd and node alike, ext4). A slice that fits the cache costs the same
 * as a smaller one, so the slice is 1 MiB.
 */
export const WRITE_SLICE = 1 << 20;

/** Writes all of `data` at `position` (or at the file's offset, when undefined). */
export async function writeAll(handle: fsp.FileHandle, data: Uint8Array, position?: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const length = Math.min(WRITE_SLICE, data.length - done);
    const at = position === undefined ? null : position + done;
    done += (await handle.write(data, done, length, at)).bytesWritten;
  }
}
