// Runs work over items with at most `jobs` in flight: enough to keep the thread pool or a
// disk's queue busy, few enough not to open a file per item at once.

/** Calls `work` on every item, `jobs` at a time; rejects with the first failure. */
export async function eachLimited<T>(items: T[], jobs: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
}
