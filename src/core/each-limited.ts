// Runs work over items with at most `jobs` in flight: enough to keep the thread pool or a
// disk's queue busy, few enough not to open a file per item at once.

/**
 * Calls `work` on every item, `jobs` at a time; rejects with the first failure, once the work
 * in flight has settled: nothing is left running behind a caller that goes on to clean up (an
 * upload aborted while one of its parts is still being sent would keep that part).
 */
export async function eachLimited<T>(items: T[], jobs: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      try {
        await work(items[next++]);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  if (failure) throw failure.err;
}
