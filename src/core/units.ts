// Human-readable figures for messages on stderr. Binary units: a block is 512 KiB, a chunk 32 MiB.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `1536` -> `1.50 KiB`; whole bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(2)} ${UNITS[unit]}`;
}

/** A rate in MiB/s, one decimal. */
export function formatRate(bytes: number, seconds: number): string {
  const rate = seconds > 0 ? bytes / seconds / 1048576 : 0;
  return `${rate.toFixed(1)} MiB/s`;
}

/** `75` -> `1m15s`; `7322` -> `2h02m`; under a minute with one decimal. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  return `${m}m${String(s).padStart(2, '0')}s`;
}
