// Lineage: a snapshot's blocks are its own plus every ancestor's (the nearest one wins), and the
// changes between two related snapshots are the blocks written on the paths to their common
// ancestor.
import { blockCount, isListed } from './synthetic';
import { Registry, Snapshot } from './state';

export function chain(reg: Registry, snap: Snapshot): Snapshot[] {
  const out = [snap];
  for (let s = snap; s.parentId !== undefined; ) {
    const parent = reg.snapshots.get(s.parentId);
    if (!parent) break;
    out.push(parent);
    s = parent;
  }
  return out;
}

function layerHas(reg: Registry, layer: Snapshot, index: number): boolean {
  if (layer.synthetic) return index < blockCount(layer.volumeSize) && isListed(layer.synthetic, index);
  return reg.blocks.index(layer.id).has(index);
}

/** The first index >= from and < end that the layer holds, or -1. */
function layerNext(reg: Registry, layer: Snapshot, from: number, end: number): number {
  if (layer.synthetic) {
    const stop = Math.min(end, blockCount(layer.volumeSize));
    for (let i = from; i < stop; i++) if (isListed(layer.synthetic, i)) return i;
    return -1;
  }
  const sorted = reg.sorted(layer);
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < from) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] < end ? sorted[lo] : -1;
}

/** The first index >= from and < end held by any of the layers, or -1. */
export function nextIn(reg: Registry, layers: Snapshot[], from: number, end: number): number {
  let best = -1;
  for (const layer of layers) {
    const i = layerNext(reg, layer, from, best < 0 ? end : best);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** The layer whose data block `index` of the merged view shows, or undefined when unwritten. */
export function sourceOf(reg: Registry, layers: Snapshot[], index: number): Snapshot | undefined {
  for (const layer of layers) if (layerHas(reg, layer, index)) return layer;
  return undefined;
}

/** The layers whose blocks differ between `first` and `second`, or undefined when unrelated. */
export function changedLayers(reg: Registry, first: Snapshot, second: Snapshot): Snapshot[] | undefined {
  const a = chain(reg, first);
  const b = chain(reg, second);
  const common = b.findIndex((s) => a.includes(s));
  if (common < 0) return undefined;
  const commonA = a.indexOf(b[common]);
  return [...a.slice(0, commonA), ...b.slice(0, common)];
}
