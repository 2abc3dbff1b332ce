// Data extents of a sparse file, so holes are skipped without being read. Node has no
// lseek(SEEK_DATA/SEEK_HOLE); a small native addon provides it where it builds. Without it the
// holes are read (they read as zeros, so the result is the same, only slower).

export interface Extent {
  start: number;
  end: number;
}

interface HolesAddon {
  seekData(fd: number, offset: number): number; // -1 when there is no data at or after offset
  seekHole(fd: number, offset: number): number;
}

let addon: HolesAddon | null | undefined;

function loadAddon(): HolesAddon | null {
  if (addon !== undefined) return addon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require('../../build/Release/sluice_holes.node') as HolesAddon;
  } catch {
    addon = null;
  }
  return addon;
}

export function holesSupported(): boolean {
  return loadAddon() !== null;
}

/**
 * The extents of `fd` that hold data, in order (found one at a time: a fragmented file may have
 * millions), or null when they cannot be found: the caller then reads everything.
 */
export function dataExtents(fd: number, size: number): Iterable<Extent> | null {
  const lib = loadAddon();
  if (!lib) return null;
  let first: number;
  try {
    first = lib.seekData(fd, 0);
  } catch {
    // A file system or file type without SEEK_DATA (EINVAL, EOPNOTSUPP): read everything.
    return null;
  }
  return (function* () {
    let start = first;
    while (start >= 0 && start < size) {
      const hole = lib.seekHole(fd, start);
      // No hole after data only if the file shrank meanwhile: the reader will find that out.
      const end = hole < 0 ? size : Math.min(hole, size);
      yield { start, end };
      if (end >= size) return;
      start = lib.seekData(fd, end);
    }
  })();
}
